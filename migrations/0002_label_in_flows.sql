-- traceflow schema, version 2: a flow's label moves into its `flows` row. Version 1 wrote two rows per flow (flows
-- and labels, both keyed by capture_id, flow_no); one row is less work for an ingest's writer. `labels` stays, as
-- a view, so SQL written against version 1 still reads the same rows. flows_first_ns gains capture_id.

DROP VIEW tcp_frames;
DROP VIEW flow_index;

CREATE TABLE flows_v2 (
    capture_id    INTEGER NOT NULL,
    flow_no       INTEGER NOT NULL,            -- creation order within the capture, from 1
    label         TEXT    NOT NULL,            -- TraceFlow's label, see the labels view below
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
INSERT INTO flows_v2
SELECT f.capture_id, f.flow_no, l.label, f.src, f.sport, f.dst, f.dport, f.first_frame, f.last_frame,
       f.closed_frame, f.packets, f.bytes, f.payload_bytes, f.first_ns, f.last_ns
FROM flows f JOIN labels l ON l.capture_id = f.capture_id AND l.flow_no = f.flow_no
ORDER BY f.capture_id, f.flow_no;
DROP TABLE labels;
DROP TABLE flows;
ALTER TABLE flows_v2 RENAME TO flows;
-- Finds a flow from its label: the label's time is the flow's first frame time. Keyed by capture first, so a new
-- capture's entries go after the others' instead of between them (captures of the same hour overlap in time).
CREATE INDEX flows_first_ns ON flows(capture_id, first_ns);

-- The TraceFlow label of each flow: `{src}_{sport}-{dst}_{dport}-{repr(float(first frame time))}`, with `:` made
-- `.` for IPv6. Several flows may share a label (pcapkit then writes them to one output file).
CREATE VIEW labels AS SELECT capture_id, flow_no, label FROM flows;

-- TCP frames with their flow's key and label, for ad-hoc SQL.
CREATE VIEW tcp_frames AS
SELECT fr.*, fl.label, fl.src, fl.sport, fl.dst, fl.dport
FROM frames fr
JOIN flows fl ON fl.capture_id = fr.capture_id AND fl.flow_no = fr.flow_no;

-- The index tuple: per capture, open flows in creation order, then closed flows in closing order. Each row is
-- one flow; `frames` lists its frame numbers in frame order. Select a capture and sort:
--   SELECT label, frames FROM flow_index WHERE capture_id = ? ORDER BY closed, position;
CREATE VIEW flow_index AS
SELECT fl.capture_id,
       fl.flow_no,
       fl.label,
       g.frames,
       fl.closed_frame IS NOT NULL AS closed,
       coalesce(fl.closed_frame, fl.first_frame) AS position
FROM (SELECT capture_id, flow_no, group_concat(number) AS frames
      FROM (SELECT capture_id, flow_no, number FROM frames WHERE flow_no IS NOT NULL
            ORDER BY capture_id, flow_no, number)
      GROUP BY capture_id, flow_no) g
JOIN flows fl ON fl.capture_id = g.capture_id AND fl.flow_no = g.flow_no;
