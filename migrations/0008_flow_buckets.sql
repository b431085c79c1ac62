-- traceflow schema: each capture's flows by bucket of address and of port (src/trace/buckets.rs), so that
-- `traceflow flows 'host A and port P'` reads the flows of A's and P's buckets instead of all of them. A row is one
-- part of one bucket's list of flow numbers (LEB128 varints of their differences, ascending).

CREATE TABLE flow_buckets (
    capture_id INTEGER NOT NULL,
    bucket     INTEGER NOT NULL,               -- 0-4095: by address; 4096-8191: 4096 + (port & 4095)
    part       INTEGER NOT NULL,               -- a capture of millions of flows stores a list in several parts
    flow_nos   BLOB    NOT NULL,
    PRIMARY KEY (capture_id, bucket, part)
) WITHOUT ROWID;

-- 1 when the capture's buckets are stored: captures indexed before this version are read whole.
ALTER TABLE captures ADD COLUMN has_buckets INTEGER NOT NULL DEFAULT 0;

DROP TRIGGER captures_delete_rows;
CREATE TRIGGER captures_delete_rows AFTER DELETE ON captures
BEGIN
    DELETE FROM frame_data         WHERE capture_id = OLD.id;
    DELETE FROM frames             WHERE capture_id = OLD.id;
    DELETE FROM connections        WHERE capture_id = OLD.id;
    DELETE FROM flows              WHERE capture_id = OLD.id;
    DELETE FROM endpoint_protocols WHERE capture_id = OLD.id;
    DELETE FROM flow_buckets       WHERE capture_id = OLD.id;
    DELETE FROM interfaces         WHERE capture_id = OLD.id;
    DELETE FROM capture_paths      WHERE capture_id = OLD.id;
END;
