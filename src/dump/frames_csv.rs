//! `query --flow LABEL --format csv` (also with `--both`): one row per frame, with the TCP header fields tshark's
//! `-T fields` gives (`frame.number`, `frame.time_epoch`, `tcp.flags.str`, `tcp.seq_raw`, `tcp.ack_raw`,
//! `frame.len`, `frame.cap_len`, `tcp.len`) and the frame's direction in its connection.

use std::collections::HashMap;
use std::io::Write;

use crate::store::read::{FlowFrames, FlowGroup};
use crate::store::Db;

use super::DumpError;

/// The header line.
pub const HEADER: &str = "number,time,direction,flags,seq,ack,frame_len,cap_len,tcp_len";

/// tshark's `tcp.flags.str` (12 places: three reserved bits, then N C E U A P R S F), `.` for a flag not set,
/// as tshark writes `·`.
pub fn flags_text(bits: i64) -> String {
    const NAMES: [(i64, char); 9] = [
        (0x100, 'N'),
        (0x080, 'C'),
        (0x040, 'E'),
        (0x020, 'U'),
        (0x010, 'A'),
        (0x008, 'P'),
        (0x004, 'R'),
        (0x002, 'S'),
        (0x001, 'F'),
    ];
    let mut s = String::from("...");
    for (bit, c) in NAMES {
        s.push(if bits & bit != 0 { c } else { '.' });
    }
    s
}

/// Writes the frames of `g` as CSV rows in frame order. Direction: `>` when the frame's sender is its
/// connection's originator (Zeek's, as `connections` lists `orig_h`/`orig_p`), `<` when it is the responder; a
/// frame of a capture without connections counts from the sender of the first frame written.
pub fn write(db: &Db, g: &FlowGroup, w: &mut dyn Write, path: &str) -> Result<(), DumpError> {
    let mut frames = Vec::new();
    FlowFrames::new(db)?.group(g, &mut frames)?;
    frames.sort_unstable_by_key(|f| f.number);
    let numbers: Vec<u64> = frames.iter().map(|f| f.number).collect();
    let tcp: HashMap<u64, crate::store::types::FrameTcp> = db
        .frame_tcp(g.capture_id, &numbers)?
        .into_iter()
        .map(|t| (t.number, t))
        .collect();
    let mut origs: HashMap<i64, Option<(String, i64)>> = HashMap::new();
    let mut first_sender: Option<(String, i64)> = None;
    let werr = |source| DumpError::Write {
        path: path.to_string(),
        source,
    };
    writeln!(w, "{HEADER}").map_err(werr)?;
    for f in &frames {
        let Some(t) = tcp.get(&f.number) else {
            continue;
        };
        let sender = (t.src.clone(), t.sport);
        let orig = match t.conn_no {
            Some(c) => match origs.get(&c) {
                Some(o) => o.clone(),
                None => {
                    let o = db
                        .connection_row(g.capture_id, c)?
                        .map(|r| (r.orig_h, i64::from(r.orig_p)));
                    origs.insert(c, o.clone());
                    o
                }
            },
            None => None,
        };
        let orig = orig
            .or_else(|| first_sender.clone())
            .unwrap_or_else(|| sender.clone());
        first_sender.get_or_insert_with(|| sender.clone());
        let dir = if sender == orig { '>' } else { '<' };
        writeln!(
            w,
            "{},{},{dir},{},{},{},{},{},{}",
            f.number,
            crate::capture::Timestamp::from_ns(f.ts_ns, crate::store::types::LISTING_DIGITS)
                .rfc3339(),
            flags_text(t.flags),
            t.seq,
            t.ack,
            f.origlen,
            f.caplen,
            t.payload_len
        )
        .map_err(werr)?;
    }
    Ok(())
}
