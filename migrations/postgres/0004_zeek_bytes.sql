-- Zeek's byte counts for connections, as SQLite's migration 0011: orig_bytes / resp_bytes are Zeek's (the
-- sequence space each side used) for connections stored from this version on; orig_payload_bytes /
-- resp_payload_bytes the payload sums; orig_ip_bytes / resp_ip_bytes the IP total lengths.
-- PostgreSQL builds connections at ingest only, so rows stored before keep their payload sums in orig_bytes
-- (copied into the new columns too) and have no IP lengths (NULL).

ALTER TABLE connections ADD COLUMN orig_payload_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE connections ADD COLUMN resp_payload_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE connections ADD COLUMN orig_ip_bytes BIGINT;
ALTER TABLE connections ADD COLUMN resp_ip_bytes BIGINT;
UPDATE connections SET orig_payload_bytes = orig_bytes, resp_payload_bytes = resp_bytes;
