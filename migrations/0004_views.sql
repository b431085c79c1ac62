-- traceflow schema, version 4: views for people and for tools such as Datasette or the sqlite3 shell, with times
-- as RFC 3339 text (UTC, in ns) and names joined in, so that pointing a browser at the file is useful at once.
-- They read the tables as they are; nothing is stored twice.

-- A time in ns since the epoch as RFC 3339 with 9 decimals: seconds by floor division, so times before 1970 are
-- right too. (Written out in each view: SQLite has no user functions that other readers would have.)
CREATE VIEW flow_list AS
SELECT c.name AS capture,
       f.capture_id,
       f.flow_no,
       f.label,
       f.src, f.sport, f.dst, f.dport,
       strftime('%Y-%m-%dT%H:%M:%S', (f.first_ns - ((f.first_ns % 1000000000) + 1000000000) % 1000000000) / 1000000000, 'unixepoch')
           || printf('.%09dZ', ((f.first_ns % 1000000000) + 1000000000) % 1000000000) AS first_time,
       strftime('%Y-%m-%dT%H:%M:%S', (f.last_ns - ((f.last_ns % 1000000000) + 1000000000) % 1000000000) / 1000000000, 'unixepoch')
           || printf('.%09dZ', ((f.last_ns % 1000000000) + 1000000000) % 1000000000) AS last_time,
       (f.last_ns - f.first_ns) / 1e9 AS duration_s,
       f.packets,
       f.bytes,
       f.payload_bytes,
       rtrim(CASE WHEN f.flags & 2 THEN 'SYN,' ELSE '' END || CASE WHEN f.flags & 16 THEN 'ACK,' ELSE '' END
             || CASE WHEN f.flags & 8 THEN 'PSH,' ELSE '' END || CASE WHEN f.flags & 1 THEN 'FIN,' ELSE '' END
             || CASE WHEN f.flags & 4 THEN 'RST,' ELSE '' END || CASE WHEN f.flags & 32 THEN 'URG,' ELSE '' END
             || CASE WHEN f.flags & 64 THEN 'ECE,' ELSE '' END || CASE WHEN f.flags & 128 THEN 'CWR,' ELSE '' END
             || CASE WHEN f.flags & 256 THEN 'NS,' ELSE '' END, ',') AS flags,
       CASE WHEN f.closed_frame IS NULL THEN 'open' ELSE 'closed' END AS state
FROM flows f JOIN captures c ON c.id = f.capture_id;

CREATE VIEW capture_list AS
SELECT c.id, c.name, c.path, c.size, c.format, c.compression, c.linktypes, c.frames, c.tcp_frames, c.flows,
       strftime('%Y-%m-%dT%H:%M:%S', (c.first_ns - ((c.first_ns % 1000000000) + 1000000000) % 1000000000) / 1000000000, 'unixepoch')
           || printf('.%09dZ', ((c.first_ns % 1000000000) + 1000000000) % 1000000000) AS first_time,
       strftime('%Y-%m-%dT%H:%M:%S', (c.last_ns - ((c.last_ns % 1000000000) + 1000000000) % 1000000000) / 1000000000, 'unixepoch')
           || printf('.%09dZ', ((c.last_ns % 1000000000) + 1000000000) % 1000000000) AS last_time,
       CASE WHEN c.truncated_at IS NULL THEN 'ok' ELSE 'truncated at byte ' || c.truncated_at END AS status,
       c.embedded,
       c.ingested_at
FROM captures c;
