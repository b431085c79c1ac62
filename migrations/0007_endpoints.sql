-- traceflow schema: every IP address of a capture, whatever its protocol. Flows are TCP only, so "which captures
-- hold host X" asked of flows missed hosts that sent only UDP, ICMP, ESP... Each IP header of each frame counts
-- for its source and its destination (a tunnel counts once per level, as tshark's `-z endpoints,ip` does), under
-- the protocol it carries.

CREATE TABLE endpoint_protocols (
    capture_id INTEGER NOT NULL,
    address    TEXT    NOT NULL,               -- standard text form, as flows.src
    protocol   INTEGER NOT NULL,               -- IP protocol number (IPv6: after the extension headers)
    frames     INTEGER NOT NULL,               -- frames with this address in an IP header carrying this protocol
    bytes      INTEGER NOT NULL,               -- their original lengths
    PRIMARY KEY (capture_id, address, protocol)
) WITHOUT ROWID;
-- "Which captures hold this address": one lookup, not a scan of every capture's rows.
CREATE INDEX endpoint_protocols_address ON endpoint_protocols(address);

-- 1 when the capture was indexed by a traceflow that records endpoints: before this version none were, and an
-- address missing from such a capture says nothing.
ALTER TABLE captures ADD COLUMN has_endpoints INTEGER NOT NULL DEFAULT 0;

-- One row per address and capture: frames and bytes over all its protocols, and the protocols by name (in
-- protocol order: the primary key, or the address index, which holds it too, is read in order). A WHERE on address
-- or capture_id reaches the table through the view, so `WHERE address = ?` is one index lookup.
CREATE VIEW endpoints AS
SELECT e.capture_id,
       c.name AS capture,
       e.address,
       sum(e.frames) AS frames,
       sum(e.bytes) AS bytes,
       group_concat(CASE e.protocol
                        WHEN 1 THEN 'ICMP' WHEN 2 THEN 'IGMP' WHEN 4 THEN 'IPIP' WHEN 6 THEN 'TCP'
                        WHEN 17 THEN 'UDP' WHEN 41 THEN 'IPv6' WHEN 47 THEN 'GRE' WHEN 50 THEN 'ESP'
                        WHEN 51 THEN 'AH' WHEN 58 THEN 'ICMPv6' WHEN 89 THEN 'OSPF' WHEN 103 THEN 'PIM'
                        WHEN 112 THEN 'VRRP' WHEN 132 THEN 'SCTP' WHEN 136 THEN 'UDPLite'
                        ELSE CAST(e.protocol AS TEXT) END, ',') AS protocols
FROM endpoint_protocols e
JOIN captures c ON c.id = e.capture_id
GROUP BY e.capture_id, e.address;

DROP TRIGGER captures_delete_rows;
CREATE TRIGGER captures_delete_rows AFTER DELETE ON captures
BEGIN
    DELETE FROM frame_data         WHERE capture_id = OLD.id;
    DELETE FROM frames             WHERE capture_id = OLD.id;
    DELETE FROM connections        WHERE capture_id = OLD.id;
    DELETE FROM flows              WHERE capture_id = OLD.id;
    DELETE FROM endpoint_protocols WHERE capture_id = OLD.id;
    DELETE FROM interfaces         WHERE capture_id = OLD.id;
    DELETE FROM capture_paths      WHERE capture_id = OLD.id;
END;
