-- traceflow schema: Zeek's byte counts for connections.
--   connections.orig_bytes / resp_bytes:   now Zeek's: the sequence space each side used (src/conn/seqspace.rs),
--                                          where they were the payload sums;
--   connections.orig_payload_bytes / ...:  the sum of each side's TCP payload lengths (what orig_bytes was);
--   connections.orig_ip_bytes / ...:       Zeek's orig_ip_bytes: the sum of the IP total lengths; NULL when the
--                                          connections were built from frame rows without the capture file.
-- Connections stored before this version were counted by the old rules: they are removed here, and
-- `traceflow ingest --connections` builds them again from the frames (src/store/sqlite/connections.rs), which
-- also writes frames.conn_no again (the partition is the same).

ALTER TABLE connections ADD COLUMN orig_payload_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE connections ADD COLUMN resp_payload_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE connections ADD COLUMN orig_ip_bytes INTEGER;
ALTER TABLE connections ADD COLUMN resp_ip_bytes INTEGER;
DELETE FROM connections;
