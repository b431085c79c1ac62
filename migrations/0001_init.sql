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

CREATE TABLE flows (
    capture_id    INTEGER NOT NULL,
    flow_no       INTEGER NOT NULL,            -- creation order within the capture, from 1
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
-- Finds a flow from its label: the label's time is the flow's first frame time.
CREATE INDEX flows_first_ns ON flows(first_ns);

-- The TraceFlow label of each flow: `{src}_{sport}-{dst}_{dport}-{repr(float(first frame time))}`, with `:` made
-- `.` for IPv6. Several flows may share a label (pcapkit then writes them to one output file).
CREATE TABLE labels (
    capture_id INTEGER NOT NULL,
    flow_no    INTEGER NOT NULL,
    label      TEXT    NOT NULL,
    PRIMARY KEY (capture_id, flow_no)
) WITHOUT ROWID;

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
    prev_in_flow INTEGER,                      -- the flow's previous frame; NULL for a flow's first frame
    PRIMARY KEY (capture_id, number)
) WITHOUT ROWID;
-- No index on flow_no: keeping one up to date was a fifth of the ingest. A flow's frames are found by walking
-- prev_in_flow back from flows.last_frame (see the README), or by a range scan between first_frame and last_frame.

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
JOIN labels l ON l.capture_id = fr.capture_id AND l.flow_no = fr.flow_no;

-- The index tuple: per capture, open flows in creation order, then closed flows in closing order. Each row is
-- one flow; `frames` lists its frame numbers in frame order. Select a capture and sort:
--   SELECT label, frames FROM flow_index WHERE capture_id = ? ORDER BY closed, position;
CREATE VIEW flow_index AS
SELECT fl.capture_id,
       fl.flow_no,
       l.label,
       g.frames,
       fl.closed_frame IS NOT NULL AS closed,
       coalesce(fl.closed_frame, fl.first_frame) AS position
FROM (SELECT capture_id, flow_no, group_concat(number) AS frames
      FROM (SELECT capture_id, flow_no, number FROM frames WHERE flow_no IS NOT NULL
            ORDER BY capture_id, flow_no, number)
      GROUP BY capture_id, flow_no) g
JOIN flows fl ON fl.capture_id = g.capture_id AND fl.flow_no = g.flow_no
JOIN labels l ON l.capture_id = g.capture_id AND l.flow_no = g.flow_no;
