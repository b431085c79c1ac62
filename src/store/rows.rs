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

/// What `--group-by` makes one row of (`flows` and `connections`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GroupBy {
    /// The source address (of a connection: the originator's).
    Src,
    /// The destination address (of a connection: the responder's).
    Dst,
    /// The two addresses, either way round (as tshark's `-z conv` pairs them): columns `a` and `b`, `a` the lower.
    Pair,
    /// The source port (of a connection: the originator's).
    Sport,
    /// The destination port (of a connection: the responder's).
    Dport,
    /// The capture.
    Capture,
    /// Zeek's conn_state (of a flow: its connection's, as the `conn-state` filter term finds it).
    ConnState,
}

/// The flow's connection's state: the connection of its first frame, which the `conn-state` filter term finds
/// through the Community ID and the frame span ([`crate::filter::FLOW_CONNECTION`]). Here it is the first of the
/// flow's connections in `connection_flows` (a key's connections follow each other, so the one holding its first
/// frame is the earliest that holds any), one primary-key seek a flow: the Community ID's index meets every
/// capture's connections of that key (figures in BENCHMARKS.md). A test holds the two equal.
const FLOW_CONN_STATE: &str = "(SELECT k.conn_state FROM connection_flows cf JOIN connections k \
     ON k.capture_id = cf.capture_id AND k.conn_no = cf.conn_no \
     WHERE cf.capture_id = f.capture_id AND cf.flow_no = f.flow_no ORDER BY cf.conn_no LIMIT 1)";

impl GroupBy {
    /// The group's columns in a grouping of flows: (name, SQL expression on `flows f` / `captures c`).
    pub(crate) fn keys(self) -> Vec<(&'static str, String)> {
        // Pairs are ordered by the sortable key, so that 10.0.0.2 < 10.0.0.10 and each pair has one spelling.
        let v: &[(&'static str, &str)] = match self {
            GroupBy::Src => &[("src", "f.src")],
            GroupBy::Dst => &[("dst", "f.dst")],
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
            GroupBy::ConnState => &[("conn_state", FLOW_CONN_STATE)],
        };
        v.iter().map(|&(n, e)| (n, e.to_string())).collect()
    }

    /// The group's columns in a grouping of connections (`connections x`): named as the connection's columns.
    /// `lower` is the dialect's "address A sorts at or before B" for a pair (`{a}` and `{b}` in it), as the
    /// flows' address keys sort.
    pub(crate) fn conn_keys(self, lower: &str) -> Vec<(&'static str, String)> {
        let pair = lower.replace("{a}", "x.orig_h").replace("{b}", "x.resp_h");
        match self {
            GroupBy::Src => vec![("orig_h", "x.orig_h".into())],
            GroupBy::Dst => vec![("resp_h", "x.resp_h".into())],
            GroupBy::Pair => vec![
                (
                    "a",
                    format!("CASE WHEN {pair} THEN x.orig_h ELSE x.resp_h END"),
                ),
                (
                    "b",
                    format!("CASE WHEN {pair} THEN x.resp_h ELSE x.orig_h END"),
                ),
            ],
            GroupBy::Sport => vec![("orig_p", "x.orig_p".into())],
            GroupBy::Dport => vec![("resp_p", "x.resp_p".into())],
            GroupBy::Capture => vec![(
                "capture",
                "(SELECT c.name FROM captures c WHERE c.id = x.capture_id)".into(),
            )],
            GroupBy::ConnState => vec![("conn_state", "x.conn_state".into())],
        }
    }
}

/// The order of groups for a `--sort` (none: most bytes first), over the columns of [`grouped_sql`]'s inner
/// query; ties go by the keys, ascending (`collate` after each text key: PostgreSQL's bytewise order, SQLite's own).
/// A sort that means nothing for a group is refused in one line.
pub(crate) fn group_order(
    sort: Option<FlowSort>,
    keys: &[(&'static str, String)],
    collate: &str,
) -> Result<String, QueryError> {
    let first = match sort {
        None | Some(FlowSort::Bytes) => "g.bytes DESC",
        Some(FlowSort::Packets) => "g.packets DESC",
        Some(FlowSort::Time) => "g.first_ns",
        Some(FlowSort::Duration) => {
            return Err(QueryError::Usage(
                "--sort duration means nothing for groups: with --group-by, sort by bytes (the default), packets or time"
                    .into(),
            ))
        }
    };
    let mut order = vec![first.to_string()];
    for (i, (name, _)) in keys.iter().enumerate() {
        let numeric = matches!(*name, "sport" | "dport" | "orig_p" | "resp_p");
        // NULL (a flow whose connection is not built) last, on both backends.
        order.push(format!("g.k{i} IS NULL"));
        order.push(if numeric {
            format!("g.k{i}")
        } else {
            format!("g.k{i}{collate}")
        });
    }
    Ok(order.join(", "))
}

/// A grouping query: `with` (a `WITH` clause or nothing), then `keys` over `from` (which names the rows `f` or
/// `x` and ends with the filter's WHERE) with `totals` (count, packets, bytes, payload, first and last ns, digits:
/// [`flow_totals`], [`conn_totals`]), in `order` ([`group_order`]), then `limit` (a LIMIT clause or nothing).
pub(crate) fn grouped_sql(
    with: &str,
    keys: &[(&'static str, String)],
    totals: &str,
    from: &str,
    order: &str,
    limit: &str,
) -> String {
    let select: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(i, (_, e))| format!("{e} AS k{i}"))
        .collect();
    let group: Vec<String> = (1..=keys.len()).map(|i| i.to_string()).collect();
    format!(
        "{with} SELECT * FROM (SELECT {}, {totals} {from} GROUP BY {}) g ORDER BY {order} {limit}",
        select.join(", "),
        group.join(", "),
    )
}

/// The totals of a group of flows `f`; `cast` follows each sum (PostgreSQL's sum of BIGINT is NUMERIC). The
/// precision column is a constant: listings print [`LISTING_DIGITS`] places whatever the captures' precision.
pub(crate) fn flow_totals(cast: &str) -> String {
    format!(
        "count(*) AS n, sum(f.packets){cast} AS packets, sum(f.bytes){cast} AS bytes, \
         sum(f.payload_bytes){cast} AS payload, min(f.first_ns) AS first_ns, max(f.last_ns) AS last_ns, \
         9 AS digits"
    )
}

/// The `FROM` of a grouping of flows `f`, up to the filter's condition `cond`: the flows of the captures there
/// are, joined to their capture `c` only when a key names it (the join costs a third of grouping every flow).
pub(crate) fn flows_from(source: &str, by: GroupBy, cond: &str) -> String {
    if by == GroupBy::Capture {
        format!("FROM {source} f JOIN captures c ON c.id = f.capture_id WHERE {cond}")
    } else {
        format!("FROM {source} f WHERE f.capture_id IN (SELECT id FROM captures) AND ({cond})")
    }
}

/// The totals of a group of connections `x`: packets and bytes count both directions, as `connections --sort`
/// counts them (bytes: the frames' lengths).
pub(crate) fn conn_totals(cast: &str) -> String {
    format!(
        "count(*) AS n, sum(x.orig_pkts + x.resp_pkts){cast} AS packets, \
         sum(x.orig_frame_bytes + x.resp_frame_bytes){cast} AS bytes, \
         sum(x.orig_payload_bytes + x.resp_payload_bytes){cast} AS payload, min(x.first_ns) AS first_ns, \
         max(x.last_ns) AS last_ns, 9 AS digits"
    )
}

/// One row of `--group-by`: the group's key columns, then its totals.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupRow {
    /// The key columns, by name (`src`, `a` and `b`, `dport`, `conn_state`, ...).
    pub keys: Vec<(&'static str, serde_json::Value)>,
    /// What the group counts, and the name of that column: `flows` or `connections`.
    pub unit: &'static str,
    /// Flows (or connections) in the group.
    pub count: i64,
    /// Their frames.
    pub packets: i64,
    /// Sum of their frames' original lengths.
    pub bytes: i64,
    /// Sum of their TCP segment lengths.
    pub payload_bytes: i64,
    /// The earliest first frame time, RFC 3339 UTC with [`LISTING_DIGITS`] places.
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
        m.serialize_entry(self.unit, &self.count)?;
        m.serialize_entry("packets", &self.packets)?;
        m.serialize_entry("bytes", &self.bytes)?;
        m.serialize_entry("payload_bytes", &self.payload_bytes)?;
        m.serialize_entry("first_time", &self.first_time)?;
        m.serialize_entry("last_time", &self.last_time)?;
        m.end()
    }
}

/// A row of a grouping query ([`grouped_sql`]): the keys, then count, packets, bytes, payload, first and last
/// time, digits.
pub(crate) fn group_row(
    r: &dyn Cols,
    keys: &[(&'static str, String)],
    unit: &'static str,
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
        unit,
        count: r.int(n)?,
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
    /// Originator address (Zeek's: the sender of the first frame unless Zeek's rules flipped the roles).
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
    /// Frames from the originator (Zeek's orig_pkts).
    pub orig_pkts: i64,
    /// Zeek's orig_bytes: the sequence space the originator used.
    pub orig_bytes: i64,
    /// Its TCP payload lengths, summed (retransmissions included).
    pub orig_payload_bytes: i64,
    /// Zeek's orig_ip_bytes: its IP total lengths, summed (null when not known).
    pub orig_ip_bytes: Option<i64>,
    /// Its wire lengths, summed.
    pub orig_frame_bytes: i64,
    /// Frames from the responder.
    pub resp_pkts: i64,
    /// Zeek's resp_bytes.
    pub resp_bytes: i64,
    /// Its TCP payload lengths, summed.
    pub resp_payload_bytes: i64,
    /// Zeek's resp_ip_bytes.
    pub resp_ip_bytes: Option<i64>,
    /// Its wire lengths, summed.
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
        orig_payload_bytes: r.int(20)?,
        orig_ip_bytes: r.opt_int(22)?,
        orig_frame_bytes: r.int(12)?,
        resp_pkts: r.int(13)?,
        resp_bytes: r.int(14)?,
        resp_payload_bytes: r.int(21)?,
        resp_ip_bytes: r.opt_int(23)?,
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
