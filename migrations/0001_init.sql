-- traceflow schema, version 1. Migrations are append-only: never edit this file once shipped, add a new one.

-- One row per distinct capture content (files with the same bytes are one capture, see capture_paths).
CREATE TABLE captures (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL,            -- base name of the file it was first indexed from
    path          TEXT    NOT NULL,            -- absolute path it was first indexed from
    size          INTEGER NOT NULL,            -- bytes on disk (compressed size for .gz/.zst)
    mtime_ns      INTEGER,                     -- modification time when indexed, ns since the epoch
    hash          TEXT,                        -- xxh3-128 of the file's bytes, hex
    format        TEXT,                        -- 'pcap' or 'pcapng'
    compression   TEXT,                        -- 'none', 'gzip' or 'zstd'
    linktypes     TEXT,                        -- distinct LINKTYPE values, comma-separated
    frames        INTEGER NOT NULL DEFAULT 0,  -- every frame of the file, TCP or not
    tcp_frames    INTEGER NOT NULL DEFAULT 0,
    flows         INTEGER NOT NULL DEFAULT 0,
    first_ns      INTEGER,                     -- time of the first and last frame, ns since the epoch
    last_ns       INTEGER,
    truncated_at  INTEGER,                     -- byte offset where a cut-off or damaged file stopped; NULL if whole
    truncated_why TEXT,
    embedded      INTEGER NOT NULL DEFAULT 0,  -- 1 when frame bytes are in frame_data (ingest --embed)
    ingested_at   TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE UNIQUE INDEX captures_hash ON captures(hash);

-- Every path a capture's content was seen under.
CREATE TABLE capture_paths (
    capture_id INTEGER NOT NULL REFERENCES captures(id) ON DELETE CASCADE,
    path       TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    size       INTEGER NOT NULL,
    mtime_ns   INTEGER,
    PRIMARY KEY (capture_id, path)
);
CREATE INDEX capture_paths_path ON capture_paths(path);
CREATE INDEX capture_paths_name ON capture_paths(name);

-- Interfaces of a capture: one for pcap, one per interface description block for pcapng.
CREATE TABLE interfaces (
    capture_id INTEGER NOT NULL,
    iface      INTEGER NOT NULL,               -- index across all sections, from 0
    linktype   INTEGER NOT NULL,
    snaplen    INTEGER NOT NULL,
    tsresol    INTEGER NOT NULL,               -- pcapng if_tsresol byte (6 = µs, 9 = ns)
    PRIMARY KEY (capture_id, iface)
) WITHOUT ROWID;

-- Distinct flow labels; several flows may share one (pcapkit writes them to the same output file).
CREATE TABLE labels (
    id    INTEGER PRIMARY KEY,
    label TEXT NOT NULL UNIQUE
);

CREATE TABLE flows (
    capture_id    INTEGER NOT NULL,
    flow_no       INTEGER NOT NULL,            -- creation order within the capture, from 1
    label_id      INTEGER NOT NULL REFERENCES labels(id),
    src           TEXT    NOT NULL,            -- directed key, addresses in standard text form
    sport         INTEGER NOT NULL,
    dst           TEXT    NOT NULL,
    dport         INTEGER NOT NULL,
    first_frame   INTEGER NOT NULL,
    last_frame    INTEGER NOT NULL,
    closed_frame  INTEGER,                     -- the FIN frame that closed the flow; NULL if open at the end
    packets       INTEGER NOT NULL,
    bytes         INTEGER NOT NULL,            -- sum of original frame lengths
    payload_bytes INTEGER NOT NULL,            -- sum of TCP segment lengths
    first_ns      INTEGER NOT NULL,
    last_ns       INTEGER NOT NULL,
    PRIMARY KEY (capture_id, flow_no)
) WITHOUT ROWID;
CREATE INDEX flows_label ON flows(label_id);

-- One row per frame of the capture, TCP or not. TCP fields are NULL for frames that are not TCP packets.
CREATE TABLE frames (
    capture_id  INTEGER NOT NULL,
    number      INTEGER NOT NULL,              -- from 1, in file order, across pcapng sections
    ts_ns       INTEGER NOT NULL,              -- ns since the epoch
    caplen      INTEGER NOT NULL,
    origlen     INTEGER NOT NULL,
    iface       INTEGER NOT NULL,              -- interfaces.iface
    file_offset INTEGER NOT NULL,              -- byte offset of the record in the (decompressed) file
    flow_no     INTEGER,                       -- flows.flow_no; NULL when not a TCP packet
    tcp_flags   INTEGER,                       -- 9 bits: NS CWR ECE URG ACK PSH RST SYN FIN
    seq         INTEGER,
    ack         INTEGER,
    win         INTEGER,
    payload_len INTEGER,                       -- TCP segment length
    PRIMARY KEY (capture_id, number)
) WITHOUT ROWID;
CREATE INDEX frames_flow ON frames(capture_id, flow_no, number) WHERE flow_no IS NOT NULL;

-- Frame bytes, only for captures ingested with --embed.
CREATE TABLE frame_data (
    capture_id INTEGER NOT NULL,
    number     INTEGER NOT NULL,
    data       BLOB    NOT NULL,
    PRIMARY KEY (capture_id, number)
);

-- TCP frames with their flow's key and label, for ad-hoc SQL.
CREATE VIEW tcp_frames AS
SELECT fr.*, l.label, fl.src, fl.sport, fl.dst, fl.dport
FROM frames fr
JOIN flows fl ON fl.capture_id = fr.capture_id AND fl.flow_no = fr.flow_no
JOIN labels l ON l.id = fl.label_id;

-- The index tuple: per capture, open flows in creation order, then closed flows in closing order.
CREATE VIEW flow_index AS
SELECT fl.capture_id,
       fl.flow_no,
       row_number() OVER (PARTITION BY fl.capture_id
                          ORDER BY fl.closed_frame IS NOT NULL, coalesce(fl.closed_frame, fl.first_frame)) AS position,
       l.label,
       (SELECT group_concat(number) FROM (SELECT fr.number FROM frames fr
                                          WHERE fr.capture_id = fl.capture_id AND fr.flow_no = fl.flow_no
                                          ORDER BY fr.number)) AS frames
FROM flows fl
JOIN labels l ON l.id = fl.label_id;
