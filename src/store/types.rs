//! The shared types of the read side: captures and their listings, index entries, flow groups, frames and
//! interfaces, as both backends return them.

use serde::Serialize;

use super::error::QueryError;
use super::row::Cols;

/// A `captures` row with every path of its content, as `traceflow captures --format json` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct CaptureInfo {
    /// `captures.id`.
    pub id: i64,
    /// Base name of the file it was first indexed from.
    pub name: String,
    /// Absolute path it was first indexed from.
    pub path: String,
    /// Every path this content was seen under.
    pub paths: Vec<String>,
    /// Bytes on disk (compressed size for .gz/.zst).
    pub size: i64,
    /// `pcap` or `pcapng`.
    pub format: Option<String>,
    /// `none`, `gzip` or `zstd`.
    pub compression: Option<String>,
    /// Distinct LINKTYPE values, comma-separated.
    pub linktypes: Option<String>,
    /// Every frame of the file, TCP or not.
    pub frames: i64,
    /// Frames that are TCP packets.
    pub tcp_frames: i64,
    /// Flows traced in the capture.
    pub flows: i64,
    /// Time of the first frame, RFC 3339 UTC with ns (`iso_time`); `None` without frames.
    pub first_time: Option<String>,
    /// Time of the last frame, as `first_time`.
    pub last_time: Option<String>,
    /// Byte offset where a cut-off or damaged file stopped; `None` if it was read whole.
    pub truncated_at: Option<i64>,
    /// Why the file stopped there.
    pub truncated_why: Option<String>,
    /// True when frame bytes are in the database (`ingest --embed`).
    pub embedded: bool,
    /// xxh3-128 of the file's bytes, hex.
    pub hash: Option<String>,
    /// When it was indexed, UTC (`2024-01-31T12:00:00.000Z`).
    pub ingested_at: String,
}

/// (id, first frame time, last frame time in ns) of a capture; the times are `None` without frames.
pub type CaptureSpan = (i64, Option<i64>, Option<i64>);

/// The columns of `traceflow captures` that fit a terminal.
#[derive(Clone, Debug, Serialize)]
pub struct CaptureBrief {
    /// `captures.id`.
    pub id: i64,
    /// Base name of the file it was first indexed from.
    pub name: String,
    /// Format, with `+gzip` or `+zstd` when compressed.
    pub format: String,
    /// Distinct LINKTYPE values, comma-separated.
    pub linktypes: String,
    /// Every frame of the file, TCP or not.
    pub frames: i64,
    /// Flows traced in the capture.
    pub flows: i64,
    /// Time of the first frame (RFC 3339), empty without frames.
    pub first_time: String,
    /// `ok`, or where the file was truncated.
    pub status: String,
}

impl From<&CaptureInfo> for CaptureBrief {
    fn from(c: &CaptureInfo) -> Self {
        let mut format = c.format.clone().unwrap_or_default();
        if let Some(z) = c.compression.as_deref().filter(|z| *z != "none") {
            format = format!("{format}+{z}");
        }
        CaptureBrief {
            id: c.id,
            name: c.name.clone(),
            format,
            linktypes: c.linktypes.clone().unwrap_or_default(),
            frames: c.frames,
            flows: c.flows,
            first_time: c.first_time.clone().unwrap_or_default(),
            status: match c.truncated_at {
                Some(at) => format!("truncated at byte {at}"),
                None => "ok".into(),
            },
        }
    }
}

/// Decimal places of every time and duration a listing prints (`captures`, `flows`, `connections`,
/// `--group-by`), in every format: 9, the stored nanoseconds, whatever the captures' resolutions, so that one
/// column never mixes 6- and 9-digit fractions and every command prints a time alike. (The dumps keep PyPCAPKit's
/// per-capture form.)
pub const LISTING_DIGITS: u8 = 9;

/// ISO 8601 UTC with the stored nanoseconds, e.g. `2013-11-25T14:55:58.387631000Z`.
pub fn iso_time(ns: i64) -> String {
    crate::capture::Timestamp::from_ns(ns, LISTING_DIGITS).rfc3339()
}

/// A row of the captures listing (columns as [`captures`] selects them) as a [`CaptureInfo`].
pub(crate) fn capture_info(r: &dyn Cols) -> Result<CaptureInfo, QueryError> {
    let paths = r.opt_text(17)?;
    Ok(CaptureInfo {
        id: r.int(0)?,
        name: r.text(1)?,
        path: r.text(2)?,
        paths: paths
            .map(|p| p.split('\n').map(String::from).collect())
            .unwrap_or_default(),
        size: r.int(3)?,
        format: r.opt_text(4)?,
        compression: r.opt_text(5)?,
        linktypes: r.opt_text(6)?,
        frames: r.int(7)?,
        tcp_frames: r.int(8)?,
        flows: r.int(9)?,
        first_time: r.opt_int(10)?.map(iso_time),
        last_time: r.opt_int(11)?.map(iso_time),
        truncated_at: r.opt_int(12)?,
        truncated_why: r.opt_text(13)?,
        embedded: r.int(14)? != 0,
        hash: r.opt_text(15)?,
        ingested_at: r.text(16)?,
    })
}

/// One entry of the index tuple, as pcapkit's `Index(fpout, index, label)`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct IndexEntry {
    /// The capture's name, set when the index of every capture is listed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture: Option<String>,
    /// The file the flow was dumped to (`--dump DIR`); `None` otherwise.
    pub fpout: Option<String>,
    /// The flow's frame numbers (from 1), in frame order.
    pub index: Vec<u64>,
    /// The flow's TraceFlow label.
    pub label: String,
}

/// A frame to fetch, as the frames table records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameRef {
    /// Frame number, from 1.
    pub number: u64,
    /// Frame time, ns since the epoch.
    pub ts_ns: i64,
    /// Bytes of the frame captured in the file.
    pub caplen: u32,
    /// Length of the frame on the wire, in bytes.
    pub origlen: u32,
    /// Index of the frame's interface (`interfaces.iface`).
    pub iface: u32,
    /// Byte offset of the record in the decompressed stream.
    pub offset: u64,
}

/// A TCP frame's header fields as the frames table records them, and the sender its flow names
/// (`query --flow LABEL --format csv`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameTcp {
    /// Frame number, from 1.
    pub number: u64,
    /// The 9 flag bits: NS CWR ECE URG ACK PSH RST SYN FIN.
    pub flags: i64,
    /// Sequence number, raw (not relative).
    pub seq: i64,
    /// Acknowledgment number, raw.
    pub ack: i64,
    /// TCP payload length.
    pub payload_len: i64,
    /// The frame's connection, when connections are built.
    pub conn_no: Option<i64>,
    /// Sender address and port (of the frame's flow).
    pub src: String,
    /// Sender port.
    pub sport: i64,
}

/// The flows of one capture that share a label: one dump.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowGroup {
    /// `captures.id` of the capture the flows are in.
    pub capture_id: i64,
    /// The label they share.
    pub label: String,
    /// flow_no of each flow, in index order.
    pub flows: Vec<i64>,
    /// `query --both`: when not empty, the dump is these connections' frames (both directions, in frame order)
    /// instead of the flows'.
    pub conns: Vec<i64>,
}

/// Index order of a capture's flows (`flows` as `f`): open flows in creation order, then closed flows in closing
/// order. The one place that order is written; INDEX_SQL spells the same with `fl`.
pub(crate) const INDEX_ORDER: &str =
    "f.closed_frame IS NOT NULL, coalesce(f.closed_frame, f.first_frame)";

/// A capture's interfaces: (linktype, snaplen, tsresol) by iface number.
#[derive(Clone, Copy, Debug)]
pub struct Iface {
    /// LINKTYPE value.
    pub linktype: u32,
    /// Snapshot length.
    pub snaplen: u32,
    /// pcapng `if_tsresol` byte (6 = µs, 9 = ns).
    pub tsresol: u8,
}

/// The captures row of the capture being dumped.
#[derive(Clone, Debug)]
pub struct CaptureRow {
    /// `captures.id`.
    pub id: i64,
    /// Base name of the file it was first indexed from.
    pub name: String,
    /// Absolute path it was first indexed from.
    pub path: String,
    /// Bytes on disk when indexed (compressed size for .gz/.zst).
    pub size: i64,
    /// Modification time when indexed, ns since the epoch; `None` when not known (standard input).
    pub mtime_ns: Option<i64>,
    /// xxh3-128 of the file's bytes, hex.
    pub hash: Option<String>,
    /// True when frame bytes are in `frame_data` (`ingest --embed`).
    pub embedded: bool,
}

/// One path a capture was seen under: (path, base name, size, mtime_ns) as `capture_paths` records it.
pub type CapturePath = (String, String, i64, Option<i64>);

/// The captures that have flows but no connections, (id, name) in id order: the same SQL on both backends.
pub(crate) const CAPTURES_WITHOUT_CONNECTIONS: &str = "SELECT c.id, c.name FROM captures c
     WHERE NOT EXISTS (SELECT 1 FROM connections x WHERE x.capture_id = c.id)
       AND EXISTS (SELECT 1 FROM flows f WHERE f.capture_id = c.id)
     ORDER BY c.id";
