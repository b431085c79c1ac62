-- traceflow schema: deleting a capture deletes its rows. `DELETE FROM captures WHERE id = ?` in plain SQL (or
-- `traceflow forget`) used to leave its frames, flows and paths behind: the REFERENCES clauses of version 1 are
-- only enforced with PRAGMA foreign_keys = ON, which sqlite3, Datasette and every other client leave off. A
-- trigger runs whoever deletes. Tables added later that are keyed by capture_id add their own DELETE here (in a
-- new migration: DROP TRIGGER, CREATE TRIGGER).

CREATE TRIGGER captures_delete_rows AFTER DELETE ON captures
BEGIN
    DELETE FROM frame_data    WHERE capture_id = OLD.id;
    DELETE FROM frames        WHERE capture_id = OLD.id;
    DELETE FROM connections   WHERE capture_id = OLD.id;
    DELETE FROM flows         WHERE capture_id = OLD.id;
    DELETE FROM interfaces    WHERE capture_id = OLD.id;
    DELETE FROM capture_paths WHERE capture_id = OLD.id;
END;

-- Orphans an older traceflow's users may have left with such a DELETE go now.
DELETE FROM frame_data    WHERE capture_id NOT IN (SELECT id FROM captures);
DELETE FROM frames        WHERE capture_id NOT IN (SELECT id FROM captures);
DELETE FROM connections   WHERE capture_id NOT IN (SELECT id FROM captures);
DELETE FROM flows         WHERE capture_id NOT IN (SELECT id FROM captures);
DELETE FROM interfaces    WHERE capture_id NOT IN (SELECT id FROM captures);
DELETE FROM capture_paths WHERE capture_id NOT IN (SELECT id FROM captures);
