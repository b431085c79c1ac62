-- Schema 2 on PostgreSQL: frames packed into chunks of up to 1,024 consecutive frames, one row per chunk with an
-- array per column, and `frames` a view over them with the same columns as before.
--
-- Why: one row per frame cost the server about 2.7 us a frame in COPY (a heap tuple with its 24-byte header, WAL,
-- a primary-key entry), more than SQLite's whole ingest of the same capture. On the benchmark capture's 1.28M
-- frames, COPY into the old table took 2.8 s and into this one 0.95 s (lz4), and the table and its key take 60 MB
-- instead of 198 MB. Readers that want a flow's frames read only the chunks between its first and last frame
-- (`frames_between` below); ad-hoc SQL keeps using `frames` as a table.

CREATE TABLE frame_chunks (
    capture_id   BIGINT    NOT NULL,
    first_number BIGINT    NOT NULL,           -- element i (from 1) of every array is frame first_number + i - 1
    last_number  BIGINT    NOT NULL,
    ts_ns        BIGINT[]  NOT NULL,
    origlen      BIGINT[]  NOT NULL,
    file_offset  BIGINT[]  NOT NULL,
    flow_no      BIGINT[]  NOT NULL,           -- elements NULL for frames that are not TCP packets, as in frames
    seq          BIGINT[]  NOT NULL,
    ack          BIGINT[]  NOT NULL,
    prev_in_flow BIGINT[]  NOT NULL,
    conn_no      BIGINT[]  NOT NULL,
    caplen       INTEGER[] NOT NULL,
    iface        INTEGER[] NOT NULL,
    tcp_flags    INTEGER[] NOT NULL,
    win          INTEGER[] NOT NULL,
    payload_len  INTEGER[] NOT NULL,
    PRIMARY KEY (capture_id, first_number),
    -- Readers find the chunks of frames lo..hi as first_number in (lo - 1024, hi]: the bound is part of the schema.
    CHECK (last_number >= first_number AND last_number - first_number < 1024)
);

-- lz4 (PostgreSQL 14 and later, when built with it, as Debian's is) compresses a chunk about as well as pglz at a
-- third of its cost. Older or other servers keep pglz: the same data, a slower ingest.
DO $$
DECLARE
    c TEXT;
BEGIN
    FOREACH c IN ARRAY ARRAY['ts_ns', 'origlen', 'file_offset', 'flow_no', 'seq', 'ack', 'prev_in_flow', 'conn_no',
                             'caplen', 'iface', 'tcp_flags', 'win', 'payload_len'] LOOP
        EXECUTE format('ALTER TABLE frame_chunks ALTER COLUMN %I SET COMPRESSION lz4', c);
    END LOOP;
EXCEPTION WHEN OTHERS THEN
    NULL;
END $$;

-- The frames written by schema 1, packed: each run of consecutive numbers (traceflow writes every frame, so a
-- capture is one run) cut at multiples of 1,024.
INSERT INTO frame_chunks
SELECT capture_id, min(number), max(number),
       array_agg(ts_ns ORDER BY number), array_agg(origlen ORDER BY number), array_agg(file_offset ORDER BY number),
       array_agg(flow_no ORDER BY number), array_agg(seq ORDER BY number), array_agg(ack ORDER BY number),
       array_agg(prev_in_flow ORDER BY number), array_agg(conn_no ORDER BY number),
       array_agg(caplen ORDER BY number), array_agg(iface ORDER BY number), array_agg(tcp_flags ORDER BY number),
       array_agg(win ORDER BY number), array_agg(payload_len ORDER BY number)
FROM (SELECT *, number - row_number() OVER (PARTITION BY capture_id ORDER BY number) AS run FROM frames) f
GROUP BY capture_id, run, (number - 1) / 1024;

DROP VIEW tcp_frames;
DROP VIEW flow_index;
DROP TABLE frames;

-- One row per frame, as schema 1's table (the same columns in the same order).
CREATE VIEW frames AS
SELECT c.capture_id,
       c.first_number + u.i - 1 AS number,
       u.ts_ns, u.origlen, u.file_offset, u.flow_no, u.seq, u.ack, u.prev_in_flow, u.conn_no,
       u.caplen, u.iface, u.tcp_flags, u.win, u.payload_len
FROM frame_chunks c
CROSS JOIN LATERAL unnest(c.ts_ns, c.origlen, c.file_offset, c.flow_no, c.seq, c.ack, c.prev_in_flow, c.conn_no,
                          c.caplen, c.iface, c.tcp_flags, c.win, c.payload_len)
    WITH ORDINALITY AS u(ts_ns, origlen, file_offset, flow_no, seq, ack, prev_in_flow, conn_no,
                         caplen, iface, tcp_flags, win, payload_len, i);

-- The frames numbered lo..hi of capture cap, reading only the chunks that hold them (a condition on the view's
-- number cannot reach the chunks' key). The planner inlines it into the calling query.
CREATE FUNCTION frames_between(cap BIGINT, lo BIGINT, hi BIGINT) RETURNS SETOF frames
LANGUAGE sql STABLE AS $$
    SELECT c.capture_id,
           c.first_number + u.i - 1,
           u.ts_ns, u.origlen, u.file_offset, u.flow_no, u.seq, u.ack, u.prev_in_flow, u.conn_no,
           u.caplen, u.iface, u.tcp_flags, u.win, u.payload_len
    FROM frame_chunks c
    CROSS JOIN LATERAL unnest(c.ts_ns, c.origlen, c.file_offset, c.flow_no, c.seq, c.ack, c.prev_in_flow,
                              c.conn_no, c.caplen, c.iface, c.tcp_flags, c.win, c.payload_len)
        WITH ORDINALITY AS u(ts_ns, origlen, file_offset, flow_no, seq, ack, prev_in_flow, conn_no,
                             caplen, iface, tcp_flags, win, payload_len, i)
    WHERE c.capture_id = cap AND c.first_number > lo - 1024 AND c.first_number <= hi
      AND c.first_number + u.i - 1 BETWEEN lo AND hi
$$;

-- Schema 1's views over frames, as they were.
CREATE VIEW tcp_frames AS
SELECT fr.*, fl.label, fl.src, fl.sport, fl.dst, fl.dport
FROM frames fr
JOIN flows fl ON fl.capture_id = fr.capture_id AND fl.flow_no = fr.flow_no;

CREATE VIEW flow_index AS
SELECT fl.capture_id,
       fl.flow_no,
       fl.label,
       g.frames,
       fl.closed_frame IS NOT NULL AS closed,
       coalesce(fl.closed_frame, fl.first_frame) AS position
FROM (SELECT capture_id, flow_no, string_agg(number::text, ',' ORDER BY number) AS frames
      FROM frames WHERE flow_no IS NOT NULL
      GROUP BY capture_id, flow_no) g
JOIN flows fl ON fl.capture_id = g.capture_id AND fl.flow_no = g.flow_no;

-- A plain `DELETE FROM captures` removes every row of the capture, now from frame_chunks.
CREATE OR REPLACE FUNCTION captures_delete_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM frame_data         WHERE capture_id = OLD.id;
    DELETE FROM frame_chunks       WHERE capture_id = OLD.id;
    DELETE FROM connections        WHERE capture_id = OLD.id;
    DELETE FROM flows              WHERE capture_id = OLD.id;
    DELETE FROM endpoint_protocols WHERE capture_id = OLD.id;
    DELETE FROM flow_buckets       WHERE capture_id = OLD.id;
    DELETE FROM interfaces         WHERE capture_id = OLD.id;
    DELETE FROM capture_paths      WHERE capture_id = OLD.id;
    RETURN OLD;
END $$;
