-- traceflow schema, version 3: what `traceflow flows FILTER` needs to answer by host, net and flag at once.
--   flags:   the TCP flags of all of a flow's frames, ORed (syn/fin/rst filters);
--   src_key, dst_key: each address as 16 bytes that sort as the address does (IPv4 as ::ffff:a.b.c.d), so that
--            `net CIDR` is a range of bytes.
-- Flows stored before this version get them here, from their frames and their address text.

ALTER TABLE flows ADD COLUMN flags INTEGER NOT NULL DEFAULT 0;
ALTER TABLE flows ADD COLUMN src_key BLOB;
ALTER TABLE flows ADD COLUMN dst_key BLOB;

UPDATE flows SET
    src_key = traceflow_addr_key(src),
    dst_key = traceflow_addr_key(dst),
    flags = coalesce((
        SELECT max(fr.tcp_flags & 1) | max(fr.tcp_flags & 2) | max(fr.tcp_flags & 4) | max(fr.tcp_flags & 8)
             | max(fr.tcp_flags & 16) | max(fr.tcp_flags & 32) | max(fr.tcp_flags & 64)
             | max(fr.tcp_flags & 128) | max(fr.tcp_flags & 256)
        FROM frames fr
        WHERE fr.capture_id = flows.capture_id AND fr.number BETWEEN flows.first_frame AND flows.last_frame
          AND fr.flow_no = flows.flow_no), 0);

-- No index on the keys yet: two B-trees of random 16-byte keys made the benchmark's first load 25-35% slower
-- (issue 12 allows 10%), so `flows` scans `flows` for now.
