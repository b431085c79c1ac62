-- traceflow schema: connection searches read the flow buckets, and sorted listings with a limit walk an index.
--   connection_flows: which connections each directed flow belongs to (a flow can belong to several, e.g. one
--                     that goes on after a RST), the inverse of connections.flows. A search for a host or port
--                     finds its flows through flow_buckets, then their connections here, instead of testing
--                     every connection of every capture.
--   connections_by_*: each an ORDER BY of `connections --sort` (src/store/rows.rs, conn_order), so that
--                     `--sort bytes --limit 20` reads 20 connections in order instead of sorting them all.
-- The table is derived from connections.flows by triggers, whoever writes (ingest, the connections build, SQL
-- typed by hand): a row inserted maps its flows, a row deleted unmaps them.

CREATE TABLE connection_flows (
    capture_id INTEGER NOT NULL,
    flow_no    INTEGER NOT NULL,
    conn_no    INTEGER NOT NULL,
    PRIMARY KEY (capture_id, flow_no, conn_no)
) WITHOUT ROWID;

INSERT OR IGNORE INTO connection_flows (capture_id, flow_no, conn_no)
SELECT x.capture_id, j.value, x.conn_no FROM connections x, json_each('[' || x.flows || ']') j;

CREATE TRIGGER connections_map_flows AFTER INSERT ON connections
BEGIN
    INSERT OR IGNORE INTO connection_flows (capture_id, flow_no, conn_no)
    SELECT NEW.capture_id, j.value, NEW.conn_no FROM json_each('[' || NEW.flows || ']') j;
END;

CREATE TRIGGER connections_unmap_flows AFTER DELETE ON connections
BEGIN
    DELETE FROM connection_flows
    WHERE capture_id = OLD.capture_id AND conn_no = OLD.conn_no
      AND flow_no IN (SELECT value FROM json_each('[' || OLD.flows || ']'));
END;

-- A capture's mapping goes before its connections, whose own trigger then finds nothing left to delete.
DROP TRIGGER captures_delete_rows;
CREATE TRIGGER captures_delete_rows AFTER DELETE ON captures
BEGIN
    DELETE FROM frame_data         WHERE capture_id = OLD.id;
    DELETE FROM frames             WHERE capture_id = OLD.id;
    DELETE FROM connection_flows   WHERE capture_id = OLD.id;
    DELETE FROM connections        WHERE capture_id = OLD.id;
    DELETE FROM flow_rows          WHERE capture_id = OLD.id;
    DELETE FROM endpoint_protocols WHERE capture_id = OLD.id;
    DELETE FROM flow_buckets       WHERE capture_id = OLD.id;
    DELETE FROM interfaces         WHERE capture_id = OLD.id;
    DELETE FROM capture_paths      WHERE capture_id = OLD.id;
END;

-- The primary key (capture_id, conn_no) ends every index entry, so each index gives conn_order's whole order.
CREATE INDEX connections_by_time     ON connections (first_ns);
CREATE INDEX connections_by_bytes    ON connections (orig_frame_bytes + resp_frame_bytes DESC, first_ns);
CREATE INDEX connections_by_packets  ON connections (orig_pkts + resp_pkts DESC, first_ns);
CREATE INDEX connections_by_duration ON connections (last_ns - first_ns DESC, first_ns);
