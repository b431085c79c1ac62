-- traceflow schema, version 5 (issue 13): connections, the two directions of a TCP conversation together.
--   captures.community_id_seed: the Community ID seed the capture was ingested with (`ingest --community-id-seed`);
--   flows.community_id:         Community ID v1 of the flow's key, the same for both directions;
--   frames.conn_no:             the frame's connection (connections.conn_no); NULL when not a TCP packet;
--   connections:                one row per connection, tshark's `tcp.stream` partition (see src/conn/track.rs),
--                               with Zeek's conn.log fields.
-- Flows stored before this version get their Community ID here (seed 0, which they were ingested without);
-- their captures' connections are built from their frames after this script (src/store/open.rs).

ALTER TABLE captures ADD COLUMN community_id_seed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE flows ADD COLUMN community_id TEXT;
UPDATE flows SET community_id = traceflow_community_id(src, sport, dst, dport, 0);
ALTER TABLE frames ADD COLUMN conn_no INTEGER;

CREATE TABLE connections (
    capture_id       INTEGER NOT NULL,
    conn_no          INTEGER NOT NULL,         -- creation order within the capture, from 1 (tcp.stream + 1)
    community_id     TEXT    NOT NULL,
    orig_h           TEXT    NOT NULL,         -- originator: sender of the first SYN without ACK, else of the
    orig_p           INTEGER NOT NULL,         -- first frame
    resp_h           TEXT    NOT NULL,
    resp_p           INTEGER NOT NULL,
    first_frame      INTEGER NOT NULL,
    last_frame       INTEGER NOT NULL,
    first_ns         INTEGER NOT NULL,
    last_ns          INTEGER NOT NULL,
    orig_pkts        INTEGER NOT NULL,
    orig_frame_bytes INTEGER NOT NULL,         -- sum of the originator's frame lengths on the wire
    orig_bytes       INTEGER NOT NULL,         -- sum of its TCP payload lengths (Zeek's orig_bytes)
    resp_pkts        INTEGER NOT NULL,
    resp_frame_bytes INTEGER NOT NULL,
    resp_bytes       INTEGER NOT NULL,
    conn_state       TEXT    NOT NULL,         -- Zeek's conn_state
    history          TEXT    NOT NULL,         -- Zeek's history letters (upper case: originator)
    flows            TEXT    NOT NULL,         -- flows.flow_no of the directed flows holding its frames, comma-separated
    PRIMARY KEY (capture_id, conn_no)
) WITHOUT ROWID;
CREATE INDEX connections_community_id ON connections(community_id);
