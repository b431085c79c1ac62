//! Parks idle open flows in a private temporary SQLite database, so the tracer's memory stays bounded however
//! many flows a capture leaves open (connections that never send FIN stay open to the end, as in TraceFlow).
//!
//! The tracer moves its least recently seen flows here when it holds too many. Every frame whose flow is not in
//! memory must ask whether it was parked: a fixed-size Bloom filter answers "no" without touching the database
//! for nearly all of them (new flows), so parking costs one lookup per frame of a parked flow, not per frame.

use std::net::IpAddr;

use rusqlite::{params, Connection, OptionalExtension};

use super::flow::{FlowKey, OpenFlow};
use crate::capture::Timestamp;

/// 64-bit words in the Bloom filter: 4 MiB whatever the capture. A key sets 3 bits of one word (one cache miss
/// per lookup). False positives: about 1 in 10^5 at a million parked flows, 1 in 50 at ten million; each costs
/// one index lookup, never a wrong answer.
const BLOOM_WORDS: usize = 1 << 19;

/// Pages of the temporary database kept in memory (negative: KiB), beyond which it goes to a temporary file.
const CACHE_KIB: i64 = 4096;

/// Parking or taking back an open flow in the temporary database failed.
#[derive(Debug, thiserror::Error)]
#[error("parking open flows in a temporary database: {0}")]
pub struct SpillError(#[from] rusqlite::Error);

pub(super) struct Spill {
    conn: Connection,
    bloom: Vec<u64>,
    parked: usize,
}

/// A key as bytes (on the stack: this runs for every frame of a flow not in memory).
struct KeyBytes {
    buf: [u8; 38],
    len: usize,
}

impl KeyBytes {
    fn push(&mut self, b: &[u8]) {
        self.buf[self.len..self.len + b.len()].copy_from_slice(b);
        self.len += b.len();
    }

    fn push_addr(&mut self, a: &IpAddr) {
        match a {
            IpAddr::V4(v4) => {
                self.push(&[4]);
                self.push(&v4.octets());
            }
            IpAddr::V6(v6) => {
                self.push(&[6]);
                self.push(&v6.octets());
            }
        }
    }

    fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// The key as bytes: family and address, port, for each end. Distinct keys give distinct bytes.
fn encode_key(key: &FlowKey) -> KeyBytes {
    let mut out = KeyBytes {
        buf: [0; 38],
        len: 0,
    };
    out.push_addr(&key.0);
    out.push(&key.1.to_be_bytes());
    out.push_addr(&key.2);
    out.push(&key.3.to_be_bytes());
    out
}

fn decode_addr(b: &[u8]) -> Option<(IpAddr, &[u8])> {
    match b.split_first()? {
        (4, rest) if rest.len() >= 4 => {
            let o: [u8; 4] = rest[..4].try_into().ok()?;
            Some((IpAddr::from(o), &rest[4..]))
        }
        (6, rest) if rest.len() >= 16 => {
            let o: [u8; 16] = rest[..16].try_into().ok()?;
            Some((IpAddr::from(o), &rest[16..]))
        }
        _ => None,
    }
}

fn decode_key(b: &[u8]) -> Option<FlowKey> {
    let (src, rest) = decode_addr(b)?;
    let sport = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?);
    let (dst, rest) = decode_addr(&rest[2..])?;
    let dport = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?);
    Some((src, sport, dst, dport))
}

impl Spill {
    pub(super) fn new() -> Result<Spill, SpillError> {
        // "" is a private temporary database: in memory up to its cache size, then in a file that SQLite deletes
        // when the connection closes.
        let conn = Connection::open("")?;
        conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
        conn.pragma_update(None, "journal_mode", "OFF")?;
        conn.pragma_update(None, "synchronous", "OFF")?;
        conn.execute_batch(
            // Rows are appended; of the two small indexes, only the one on the key's hash takes random inserts.
            "CREATE TABLE parked (
                flow_no INTEGER NOT NULL, sec INTEGER NOT NULL, frac INTEGER NOT NULL, digits INTEGER NOT NULL,
                first_frame INTEGER NOT NULL, last_frame INTEGER NOT NULL, packets INTEGER NOT NULL,
                bytes INTEGER NOT NULL, payload_bytes INTEGER NOT NULL, last_ns INTEGER NOT NULL,
                flags INTEGER NOT NULL, key BLOB NOT NULL, hash INTEGER NOT NULL
             );
             CREATE INDEX parked_hash ON parked(hash);
             -- Draining in creation order walks this index: no sorter, whose memory grew by ~30 MB on a 2x
             -- capture's 160k parked flows.
             CREATE INDEX parked_flow_no ON parked(flow_no);",
        )?;
        Ok(Spill {
            conn,
            bloom: vec![0; BLOOM_WORDS],
            parked: 0,
        })
    }

    /// The key's hash, and its Bloom word and bits.
    fn hash(key: &KeyBytes) -> (u64, usize, u64) {
        let h = xxhash_rust::xxh3::xxh3_64(key.as_slice());
        let word = (h >> 40) as usize % BLOOM_WORDS;
        let bits = (1u64 << (h & 63)) | (1u64 << ((h >> 6) & 63)) | (1u64 << ((h >> 12) & 63));
        (h, word, bits)
    }

    /// Parks flows (each key at most once: the tracer holds a flow either in memory or here).
    pub(super) fn park(
        &mut self,
        flows: impl IntoIterator<Item = (FlowKey, OpenFlow)>,
    ) -> Result<(), SpillError> {
        let tx = self.conn.transaction()?;
        {
            let mut ins = tx.prepare_cached(
                "INSERT INTO parked VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?;
            for (key, f) in flows {
                let k = encode_key(&key);
                let (h, word, bits) = Self::hash(&k);
                self.bloom[word] |= bits;
                ins.execute(params![
                    f.flow_no,
                    f.first_ts.sec,
                    f.first_ts.frac as i64,
                    f.first_ts.digits,
                    f.first_frame as i64,
                    f.last_frame as i64,
                    f.packets as i64,
                    f.bytes as i64,
                    f.payload_bytes as i64,
                    f.last_ns,
                    f.flags,
                    k.as_slice(),
                    h as i64
                ])?;
                self.parked += 1;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Takes a parked flow back, if this key has one.
    pub(super) fn take(&mut self, key: &FlowKey) -> Result<Option<OpenFlow>, SpillError> {
        if self.parked == 0 {
            return Ok(None);
        }
        let k = encode_key(key);
        let (h, word, bits) = Self::hash(&k);
        if self.bloom[word] & bits != bits {
            return Ok(None);
        }
        let found = self
            .conn
            .prepare_cached(
                "SELECT flow_no, sec, frac, digits, first_frame, last_frame, packets, bytes, payload_bytes, last_ns, flags,
                        rowid
                 FROM parked WHERE hash = ?1 AND key = ?2",
            )?
            .query_row(params![h as i64, k.as_slice()], |r| {
                Ok((row_to_flow(r)?, r.get::<_, i64>(11)?))
            })
            .optional()?;
        let Some((flow, rowid)) = found else {
            return Ok(None);
        };
        self.conn
            .prepare_cached("DELETE FROM parked WHERE rowid = ?1")?
            .execute([rowid])?;
        self.parked -= 1;
        Ok(Some(flow))
    }

    /// Hands every parked flow to `each`, in creation order.
    pub(super) fn drain(
        &mut self,
        each: &mut dyn FnMut(FlowKey, OpenFlow),
    ) -> Result<(), SpillError> {
        let mut st = self.conn.prepare(
            "SELECT flow_no, sec, frac, digits, first_frame, last_frame, packets, bytes, payload_bytes, last_ns, flags,
                    key
             FROM parked ORDER BY flow_no",
        )?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let flow = row_to_flow(r)?;
            let k: Vec<u8> = r.get(11)?;
            let key = decode_key(&k).ok_or_else(|| {
                rusqlite::Error::InvalidColumnType(11, "key".into(), rusqlite::types::Type::Blob)
            })?;
            each(key, flow);
        }
        self.parked = 0;
        Ok(())
    }
}

fn row_to_flow(r: &rusqlite::Row<'_>) -> rusqlite::Result<OpenFlow> {
    Ok(OpenFlow {
        flow_no: r.get(0)?,
        first_ts: Timestamp {
            sec: r.get(1)?,
            frac: r.get::<_, i64>(2)? as u64,
            digits: r.get(3)?,
        },
        first_frame: r.get::<_, i64>(4)? as u64,
        last_frame: r.get::<_, i64>(5)? as u64,
        packets: r.get::<_, i64>(6)? as u64,
        bytes: r.get::<_, i64>(7)? as u64,
        payload_bytes: r.get::<_, i64>(8)? as u64,
        last_ns: r.get(9)?,
        flags: r.get(10)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_bytes() {
        let keys: [FlowKey; 2] = [
            (
                "10.0.0.1".parse().unwrap(),
                1,
                "10.0.0.2".parse().unwrap(),
                65535,
            ),
            (
                "::ffff:1.2.3.4".parse().unwrap(),
                80,
                "2001:db8::1".parse().unwrap(),
                0,
            ),
        ];
        for k in keys {
            assert_eq!(decode_key(encode_key(&k).as_slice()), Some(k));
        }
    }
}
