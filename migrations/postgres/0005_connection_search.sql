-- Schema 4 on PostgreSQL: connection searches read the flow buckets, and sorted listings with a limit walk an
-- index, as SQLite's schema 11 does.
--   connection_flows: which connections each directed flow belongs to (a flow can belong to several), the inverse
--                     of connections.flow_nos. A search for a host or port finds its flows through flow_buckets,
--                     then their connections here, instead of testing every connection of every capture. The
--                     ingest writes it from connections.flow_nos once a capture's connections are copied (one
--                     statement); forget deletes it with the capture's other rows.
--   connections_by_*: each an ORDER BY of `connections --sort` (src/store/rows.rs, conn_order), so that
--                     `--sort bytes --limit 20` reads 20 connections in order instead of sorting them all.

CREATE TABLE connection_flows (
    capture_id BIGINT NOT NULL,
    flow_no    BIGINT NOT NULL,
    conn_no    BIGINT NOT NULL,
    PRIMARY KEY (capture_id, flow_no, conn_no)
);

INSERT INTO connection_flows (capture_id, flow_no, conn_no)
SELECT DISTINCT x.capture_id, n, x.conn_no FROM connections x, unnest(x.flow_nos) n;

CREATE INDEX connections_by_time     ON connections (first_ns, capture_id, conn_no);
CREATE INDEX connections_by_bytes    ON connections ((orig_frame_bytes + resp_frame_bytes) DESC, first_ns, capture_id, conn_no);
CREATE INDEX connections_by_packets  ON connections ((orig_pkts + resp_pkts) DESC, first_ns, capture_id, conn_no);
CREATE INDEX connections_by_duration ON connections ((last_ns - first_ns) DESC, first_ns, capture_id, conn_no);

-- A plain `DELETE FROM captures` removes every row of the capture, now from connection_flows too.
CREATE OR REPLACE FUNCTION captures_delete_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM frame_data         WHERE capture_id = OLD.id;
    DELETE FROM frame_chunks       WHERE capture_id = OLD.id;
    DELETE FROM connection_flows   WHERE capture_id = OLD.id;
    DELETE FROM connections        WHERE capture_id = OLD.id;
    DELETE FROM flows              WHERE capture_id = OLD.id;
    DELETE FROM endpoint_protocols WHERE capture_id = OLD.id;
    DELETE FROM flow_buckets       WHERE capture_id = OLD.id;
    DELETE FROM interfaces         WHERE capture_id = OLD.id;
    DELETE FROM capture_paths      WHERE capture_id = OLD.id;
    RETURN OLD;
END $$;
