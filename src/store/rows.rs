//! The rows of the searches and their output: flows (`flows`), groups (`--group-by`) and connections
//! (`connections`), with their JSON and the builders that make them from either backend's result rows.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use super::error::QueryError;
use super::row::Cols;
use super::types::LISTING_DIGITS;

/// One flow as `traceflow flows` lists it. Its times, duration, flags and state are kept as numbers and shown
/// only when the row is written: listing every flow makes millions of these, and each text kept was an
/// allocation per row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowRow {
    /// The capture's id.
    pub capture_id: i64,
    /// The capture's name, shared by its flows.
    pub capture: Arc<str>,
    /// The source and destination addresses, then the label, in one allocation ([`FlowRow::label`], ...): a label
    /// stored as '' is made from the two addresses already in it.
    text: String,
    /// Where the destination address starts in `text`.
    dst_at: usize,
    /// Where the label starts.
    label_at: usize,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Frames.
    pub packets: i64,
    /// Sum of the frames' original lengths.
    pub bytes: i64,
    /// Sum of the TCP segment lengths.
    pub payload_bytes: i64,
    /// The TCP flags seen (the `flags` column's bits; shown as [`flag_names`]).
    pub flag_bits: i64,
    /// A FIN closed it.
    pub closed: bool,
    /// Decimal places of the capture's own times (listings print [`LISTING_DIGITS`] whatever they are).
    pub digits: u8,
    /// First frame time in ns since the epoch.
    pub first_ns: i64,
    /// Last frame time in ns.
    pub last_ns: i64,
    /// The flow's number in its capture.
    pub flow_no: i64,
}

impl FlowRow {
    /// TraceFlow's label.
    pub fn label(&self) -> &str {
        &self.text[self.label_at..]
    }

    /// Source address.
    pub fn src(&self) -> &str {
        &self.text[..self.dst_at]
    }

    /// Destination address.
    pub fn dst(&self) -> &str {
        &self.text[self.dst_at..self.label_at]
    }

    /// First frame time, RFC 3339 UTC with [`LISTING_DIGITS`] places.
    pub fn first_time(&self) -> String {
        crate::capture::Timestamp::from_ns(self.first_ns, LISTING_DIGITS).rfc3339()
    }

    /// Last frame time, likewise.
    pub fn last_time(&self) -> String {
        crate::capture::Timestamp::from_ns(self.last_ns, LISTING_DIGITS).rfc3339()
    }

    /// Last minus first frame time, in seconds (exact decimal).
    pub fn duration(&self) -> String {
        crate::capture::duration_text(self.first_ns, self.last_ns, LISTING_DIGITS)
    }

    /// `closed` (a FIN closed it) or `open`.
    pub fn state(&self) -> &'static str {
        if self.closed {
            "closed"
        } else {
            "open"
        }
    }

    /// The row as one JSON object appended to `out`, exactly as serde_json writes [`Serialize`]'s form (a test
    /// holds them equal), written by hand: serde_json's escaping of each string was the largest cost of listing
    /// every flow, and these strings almost never need it.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        use crate::capture::put_digits;
        fn int(out: &mut Vec<u8>, v: i64) {
            if v < 0 {
                out.push(b'-');
            }
            put_digits(out, v.unsigned_abs(), 1);
        }
        let time = |out: &mut Vec<u8>, ns: i64| {
            out.push(b'"');
            crate::capture::Timestamp::from_ns(ns, LISTING_DIGITS).write_rfc3339(out);
            out.push(b'"');
        };
        out.extend_from_slice(b"{\"capture\":");
        json_str(out, &self.capture);
        out.extend_from_slice(b",\"label\":");
        json_str(out, self.label());
        out.extend_from_slice(b",\"src\":");
        json_str(out, self.src());
        out.extend_from_slice(b",\"sport\":");
        int(out, i64::from(self.sport));
        out.extend_from_slice(b",\"dst\":");
        json_str(out, self.dst());
        out.extend_from_slice(b",\"dport\":");
        int(out, i64::from(self.dport));
        out.extend_from_slice(b",\"first_time\":");
        time(out, self.first_ns);
        out.extend_from_slice(b",\"last_time\":");
        time(out, self.last_ns);
        out.extend_from_slice(b",\"duration\":\"");
        crate::capture::write_duration(out, self.first_ns, self.last_ns, LISTING_DIGITS);
        out.extend_from_slice(b"\",\"packets\":");
        int(out, self.packets);
        out.extend_from_slice(b",\"bytes\":");
        int(out, self.bytes);
        out.extend_from_slice(b",\"payload_bytes\":");
        int(out, self.payload_bytes);
        out.extend_from_slice(b",\"flags\":\"");
        write_flag_names(self.flag_bits, out);
        out.extend_from_slice(b"\",\"state\":\"");
        out.extend_from_slice(self.state().as_bytes());
        out.extend_from_slice(b"\"}");
    }
}

/// `s` as a JSON string appended to `out`: copied as it is when nothing in it needs escaping (serde_json escapes
/// only `"`, `\\` and control characters), through serde_json otherwise.
fn json_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else if serde_json::to_writer(&mut *out, s).is_err() {
        // Writing to a Vec cannot fail; keep the output valid JSON regardless.
        out.extend_from_slice(b"\"\"");
    }
}

impl Serialize for FlowRow {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut m = ser.serialize_struct("FlowRow", 14)?;
        m.serialize_field("capture", &*self.capture)?;
        m.serialize_field("label", self.label())?;
        m.serialize_field("src", self.src())?;
        m.serialize_field("sport", &self.sport)?;
        m.serialize_field("dst", self.dst())?;
        m.serialize_field("dport", &self.dport)?;
        m.serialize_field("first_time", &self.first_time())?;
        m.serialize_field("last_time", &self.last_time())?;
        m.serialize_field("duration", &self.duration())?;
        m.serialize_field("packets", &self.packets)?;
        m.serialize_field("bytes", &self.bytes)?;
        m.serialize_field("payload_bytes", &self.payload_bytes)?;
        m.serialize_field("flags", &flag_names(self.flag_bits))?;
        m.serialize_field("state", self.state())?;
        m.end()
    }
}

/// TCP flag bits and names, in the order tshark lists them.
const FLAG_NAMES: [(i64, &str); 9] = [
    (0x002, "SYN"),
    (0x010, "ACK"),
    (0x008, "PSH"),
    (0x001, "FIN"),
    (0x004, "RST"),
    (0x020, "URG"),
    (0x040, "ECE"),
    (0x080, "CWR"),
    (0x100, "NS"),
];

/// The names of the TCP flags set in `flags`, most significant last as tshark lists them.
pub fn flag_names(flags: i64) -> String {
    let mut out = Vec::with_capacity(24);
    write_flag_names(flags, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// [`flag_names`] appended to `out`.
fn write_flag_names(flags: i64, out: &mut Vec<u8>) {
    let mut first = true;
    for (bit, name) in FLAG_NAMES {
        if flags & bit != 0 {
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(name.as_bytes());
        }
    }
}

/// Orders of `traceflow flows --sort`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FlowSort {
    /// By first frame time (then capture and flow number).
    Time,
    /// Most bytes first.
    Bytes,
    /// Most packets first.
    Packets,
    /// Longest first.
    Duration,
}

/// The columns of a flow row, as [`flow_row`] reads them.
pub(crate) const FLOW_COLUMNS: &str =
    "f.capture_id, f.label, f.src, f.sport, f.dst, f.dport, f.first_ns, f.last_ns, \
     f.packets, f.bytes, f.payload_bytes, f.flags, f.closed_frame IS NOT NULL, f.flow_no";

/// Each capture's name and the decimal places of its times, by capture id.
pub(crate) type CaptureFacts = HashMap<i64, (Arc<str>, u8)>;

/// A [`FLOW_COLUMNS`] row as a [`FlowRow`]; `None` for a flow whose capture row is gone (deleted in plain SQL),
/// which is not listed, as a join would drop it.
pub(crate) fn flow_row(r: &dyn Cols, caps: &CaptureFacts) -> Result<Option<FlowRow>, QueryError> {
    let capture_id = r.int(0)?;
    let Some((capture, digits)) = caps.get(&capture_id) else {
        return Ok(None);
    };
    let digits = *digits;
    let (first_ns, last_ns) = (r.int(6)?, r.int(7)?);
    let mut text = String::with_capacity(96);
    r.push_text(2, &mut text)?;
    let dst_at = text.len();
    r.push_text(4, &mut text)?;
    let label_at = text.len();
    let (sport, dport) = (port(r.int(3)?)?, port(r.int(5)?)?);
    r.push_text(1, &mut text)?;
    if text.len() == label_at {
        let flow_no = r.int(13)?;
        push_stored_label(&mut text, dst_at, sport, dport, first_ns, || {
            format!("flow {flow_no} of capture {capture_id}")
        })?;
    }
    Ok(Some(FlowRow {
        capture_id,
        capture: capture.clone(),
        text,
        dst_at,
        label_at,
        sport,
        dport,
        packets: r.int(8)?,
        bytes: r.int(9)?,
        payload_bytes: r.int(10)?,
        flag_bits: r.int(11)?,
        closed: r.boolean(12)?,
        digits,
        first_ns,
        last_ns,
        flow_no: r.int(13)?,
    }))
}

/// The label of a row that stores it as '' (schema 9), appended to `text`, which holds the row's two addresses
/// (the destination's from `dst_at`): the `flows` view's rule, from its key and first time. The ingest writes ''
/// only for times from 1970 on; `whose` names the row when a damaged one has none.
pub(crate) fn push_stored_label(
    text: &mut String,
    dst_at: usize,
    sport: u16,
    dport: u16,
    first_ns: i64,
    whose: impl FnOnce() -> String,
) -> Result<(), QueryError> {
    if crate::key::label::push_view_label_after_addrs(text, dst_at, sport, dport, first_ns) {
        Ok(())
    } else {
        Err(QueryError::Corrupt(format!(
            "{} has no label and a time before 1970",
            whose()
        )))
    }
}

/// A port column, refused when the database holds something no port is.
pub(crate) fn port(v: i64) -> Result<u16, QueryError> {
    u16::try_from(v).map_err(|_| QueryError::Corrupt(format!("port {v} is not a TCP port")))
}

/// What `traceflow flows --group-by` makes one row of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GroupBy {
    /// The source address.
    Src,
    /// The destination address.
    Dst,
    /// The two addresses, either way round (as tshark's `-z conv` pairs them): columns `a` and `b`, `a` the lower.
    Pair,
    /// The source port.
    Sport,
    /// The destination port.
    Dport,
    /// The capture.
    Capture,
}

impl GroupBy {
    /// The group's columns: (name, SQL expression on `flows f` / `captures c`).
    pub(crate) fn keys(self) -> &'static [(&'static str, &'static str)] {
        match self {
            GroupBy::Src => &[("src", "f.src")],
            GroupBy::Dst => &[("dst", "f.dst")],
            // Ordered by the sortable key, so that 10.0.0.2 < 10.0.0.10 and each pair has one spelling.
            GroupBy::Pair => &[
                (
                    "a",
                    "CASE WHEN f.src_key <= f.dst_key THEN f.src ELSE f.dst END",
                ),
                (
                    "b",
                    "CASE WHEN f.src_key <= f.dst_key THEN f.dst ELSE f.src END",
                ),
            ],
            GroupBy::Sport => &[("sport", "f.sport")],
            GroupBy::Dport => &[("dport", "f.dport")],
            GroupBy::Capture => &[("capture", "c.name")],
        }
    }
}

/// One row of `traceflow flows --group-by`: the group's key columns, then its totals.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupRow {
    /// The key columns, by name (`src`, `a` and `b`, `dport`, ...).
    pub keys: Vec<(&'static str, serde_json::Value)>,
    /// Flows in the group.
    pub flows: i64,
    /// Their frames.
    pub packets: i64,
    /// Sum of their frames' original lengths.
    pub bytes: i64,
    /// Sum of their TCP segment lengths.
    pub payload_bytes: i64,
    /// The earliest first frame time, RFC 3339 UTC with the finest precision of the group's captures.
    pub first_time: String,
    /// The latest last frame time, likewise.
    pub last_time: String,
}

impl Serialize for GroupRow {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.keys.len() + 6))?;
        for (k, v) in &self.keys {
            m.serialize_entry(k, v)?;
        }
        m.serialize_entry("flows", &self.flows)?;
        m.serialize_entry("packets", &self.packets)?;
        m.serialize_entry("bytes", &self.bytes)?;
        m.serialize_entry("payload_bytes", &self.payload_bytes)?;
        m.serialize_entry("first_time", &self.first_time)?;
        m.serialize_entry("last_time", &self.last_time)?;
        m.end()
    }
}

/// A row of [`group_flows`]' query: the keys, then flows, packets, bytes, payload, first and last time, digits.
pub(crate) fn group_row(
    r: &dyn Cols,
    keys: &[(&'static str, &'static str)],
) -> Result<GroupRow, QueryError> {
    let n = keys.len();
    let mut kv = Vec::with_capacity(n);
    for (i, (name, _)) in keys.iter().enumerate() {
        kv.push((*name, r.key(i)?));
    }
    // Column n + 6, the captures' finest precision, is not printed: listings print LISTING_DIGITS.
    let digits = LISTING_DIGITS;
    Ok(GroupRow {
        keys: kv,
        flows: r.int(n)?,
        packets: r.int(n + 1)?,
        bytes: r.int(n + 2)?,
        payload_bytes: r.int(n + 3)?,
        first_time: crate::capture::Timestamp::from_ns(r.int(n + 4)?, digits).rfc3339(),
        last_time: crate::capture::Timestamp::from_ns(r.int(n + 5)?, digits).rfc3339(),
    })
}

/// One connection as `traceflow connections` lists it (a `connections` row, with its flows' labels).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ConnRow {
    /// The capture's id.
    #[serde(skip)]
    pub capture_id: i64,
    /// The capture's name.
    pub capture: String,
    /// The connection's number in its capture, from 1 (tshark's `tcp.stream` + 1 within that capture).
    pub conn: i64,
    /// Community ID v1.
    pub community_id: String,
    /// Originator address (the sender of the first SYN without ACK, else of the first frame).
    pub orig_h: String,
    /// Originator port.
    pub orig_p: u16,
    /// Responder address.
    pub resp_h: String,
    /// Responder port.
    pub resp_p: u16,
    /// First frame time, RFC 3339 UTC with [`LISTING_DIGITS`] places.
    pub first_time: String,
    /// Last frame time, likewise.
    pub last_time: String,
    /// Last minus first frame time, in seconds (exact decimal).
    pub duration: String,
    /// Frames from the originator.
    pub orig_pkts: i64,
    /// Their TCP payload bytes (Zeek's orig_bytes).
    pub orig_bytes: i64,
    /// Their wire lengths, summed.
    pub orig_frame_bytes: i64,
    /// Frames from the responder.
    pub resp_pkts: i64,
    /// Their TCP payload bytes.
    pub resp_bytes: i64,
    /// Their wire lengths, summed.
    pub resp_frame_bytes: i64,
    /// Zeek's conn_state.
    pub conn_state: String,
    /// Zeek's history.
    pub history: String,
    /// Labels of the directed flows holding its frames.
    pub flows: Vec<String>,
    /// First frame time, ns (for paging; not listed).
    #[serde(skip)]
    pub first_ns: i64,
    /// Last frame time, ns (not listed).
    #[serde(skip)]
    pub last_ns: i64,
}

/// The ORDER BY of a connection listing.
pub(crate) fn conn_order(sort: FlowSort) -> &'static str {
    match sort {
        FlowSort::Time => "x.first_ns, x.capture_id, x.conn_no",
        FlowSort::Bytes => {
            "x.orig_frame_bytes + x.resp_frame_bytes DESC, x.first_ns, x.capture_id, x.conn_no"
        }
        FlowSort::Packets => "x.orig_pkts + x.resp_pkts DESC, x.first_ns, x.capture_id, x.conn_no",
        FlowSort::Duration => "x.last_ns - x.first_ns DESC, x.first_ns, x.capture_id, x.conn_no",
    }
}

/// A row of [`search_connections`]' query as a [`ConnRow`].
pub(crate) fn conn_row(r: &dyn Cols) -> Result<ConnRow, QueryError> {
    // Column 19, the capture's precision, is not printed: listings print LISTING_DIGITS.
    let digits = LISTING_DIGITS;
    let (first_ns, last_ns) = (r.int(8)?, r.int(9)?);
    let labels = r.opt_text(18)?;
    Ok(ConnRow {
        capture_id: r.int(0)?,
        capture: r.text(1)?,
        conn: r.int(2)?,
        community_id: r.text(3)?,
        orig_h: r.text(4)?,
        orig_p: port(r.int(5)?)?,
        resp_h: r.text(6)?,
        resp_p: port(r.int(7)?)?,
        first_time: crate::capture::Timestamp::from_ns(first_ns, digits).rfc3339(),
        last_time: crate::capture::Timestamp::from_ns(last_ns, digits).rfc3339(),
        duration: crate::capture::duration_text(first_ns, last_ns, digits),
        orig_pkts: r.int(10)?,
        orig_bytes: r.int(11)?,
        orig_frame_bytes: r.int(12)?,
        resp_pkts: r.int(13)?,
        resp_bytes: r.int(14)?,
        resp_frame_bytes: r.int(15)?,
        conn_state: r.text(16)?,
        history: r.text(17)?,
        flows: labels
            .map(|l| l.split('\n').map(String::from).collect())
            .unwrap_or_default(),
        first_ns,
        last_ns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The hand-written JSON of a flow row is serde_json's, byte for byte, whatever its strings and numbers
        /// (quotes, backslashes, control characters, non-ASCII; times before 1970 and past the calendar).
        #[test]
        fn flow_json_is_serdes(
            capture in "\\PC{0,12}|[\\x00-\\x7f]{0,12}",
            label in "\\PC{0,12}|[\\x00-\\x7f]{0,12}",
            src in "[0-9a-f.:\"\\\\]{0,8}",
            nums in proptest::array::uniform5(proptest::prelude::any::<i64>()),
            ports in proptest::prelude::any::<(u16, u16)>(),
            flag_bits in 0i64..0x400,
            closed in proptest::prelude::any::<bool>(),
            digits in 0u8..=9,
            first_ns in proptest::prop_oneof![-4_000_000_000_000_000_000i64..4_000_000_000_000_000_000, 1_700_000_000_000_000_000i64..1_700_000_100_000_000_000],
            span in 0i64..1_000_000_000_000,
        ) {
            let row = FlowRow {
                capture_id: nums[0],
                capture: Arc::from(capture.as_str()),
                dst_at: src.len(),
                label_at: 2 * src.len(),
                text: format!("{src}{src}{label}"),
                sport: ports.0,
                dport: ports.1,
                packets: nums[1],
                bytes: nums[2],
                payload_bytes: nums[3],
                flag_bits,
                closed,
                digits,
                first_ns,
                last_ns: first_ns.saturating_add(span),
                flow_no: nums[4],
            };
            let mut mine = Vec::new();
            row.write_json(&mut mine);
            proptest::prop_assert_eq!(String::from_utf8(mine).unwrap(), serde_json::to_string(&row).unwrap());
        }
    }
}
