-- traceflow schema, version 9 (issue 17): a flow's label is no longer stored when its key and first time give it.
-- A label is `{src}_{sport}-{dst}_{dport}-{repr(float(first time))}` (`:` made `.` for IPv6); of a SYN scan's
-- 218-byte flow rows it was 52 bytes, a fifth of the database. For every time with whole microseconds (pcap's
-- usual resolution) the repr is the seconds, a point and the microseconds without trailing zeros, so rows written
-- from this version on store the label as '' whenever that rule gives it exactly (the ingest compares the two), and
-- the full text otherwise (ns times, times before 1970 or in exponent notation). Rows stored before keep theirs.
--
-- The table is renamed, not copied: the upgrade is instant and keeps every index on it, also one a user made.
-- `flows` becomes a view with the same columns in the same order, so SQL written against `flows` (the README's,
-- Datasette's, a user's own views) reads the same labels. traceflow itself reads through a temporary view of the
-- same name that builds the label in Rust (src/store/open.rs): SQLite's string functions take about 2 us a row.

PRAGMA legacy_alter_table = ON;     -- views that name `flows` (ours and any of the user's) keep naming `flows`
ALTER TABLE flows RENAME TO flow_rows;
PRAGMA legacy_alter_table = OFF;

CREATE VIEW flows AS
SELECT capture_id,
       flow_no,
       CASE WHEN label <> '' THEN label
            ELSE replace(src, ':', '.') || '_' || sport || '-' || replace(dst, ':', '.') || '_' || dport || '-'
                 || (first_ns / 1000000000) || '.'
                 || coalesce(nullif(rtrim(substr(first_ns % 1000000000 / 1000 + 1000000, 2), '0'), ''), '0')
       END AS label,
       src, sport, dst, dport, first_frame, last_frame, closed_frame, packets, bytes, payload_bytes, first_ns,
       last_ns, flags, src_key, dst_key, community_id
FROM flow_rows;

-- A trigger's body is not a view's: its `DELETE FROM flows` would now name the view. Same trigger, on flow_rows.
DROP TRIGGER captures_delete_rows;
CREATE TRIGGER captures_delete_rows AFTER DELETE ON captures
BEGIN
    DELETE FROM frame_data         WHERE capture_id = OLD.id;
    DELETE FROM frames             WHERE capture_id = OLD.id;
    DELETE FROM connections        WHERE capture_id = OLD.id;
    DELETE FROM flow_rows          WHERE capture_id = OLD.id;
    DELETE FROM endpoint_protocols WHERE capture_id = OLD.id;
    DELETE FROM flow_buckets       WHERE capture_id = OLD.id;
    DELETE FROM interfaces         WHERE capture_id = OLD.id;
    DELETE FROM capture_paths      WHERE capture_id = OLD.id;
END;
