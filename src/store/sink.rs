//! What the writer is handed and what it answers, on either backend: the rows of one capture, where it came
//! from and how it ended, the outcome of writing it, what `forget` removed, and how an ingest journals.

use crate::capture::{Interface, Truncation};

/// A frame row as the tracer produced it.
#[derive(Clone, Debug)]
pub struct FrameRow {
    /// Frame number, from 1, in file order across pcapng sections.
    pub number: u64,
    /// Frame time, ns since the epoch.
    pub ts_ns: i64,
    /// Bytes of the frame captured in the file.
    pub caplen: u32,
    /// Length of the frame on the wire, in bytes.
    pub origlen: u32,
    /// Index of the frame's interface (`interfaces.iface`).
    pub iface: u32,
    /// Byte offset of the record in the (decompressed) file.
    pub offset: u64,
    /// The TCP columns; `None` when the frame is not a TCP packet.
    pub tcp: Option<TcpRow>,
}

/// The TCP columns of a frame row.
#[derive(Clone, Copy, Debug)]
pub struct TcpRow {
    /// The flow the frame belongs to (`flows.flow_no`, from 1).
    pub flow_no: u32,
    /// The flow's previous frame (`frames.prev_in_flow`).
    pub prev_frame: Option<u64>,
    /// TCP flags, 9 bits: NS CWR ECE URG ACK PSH RST SYN FIN.
    pub flags: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Window; `None` when the header is cut off before it.
    pub win: Option<u16>,
    /// TCP segment length, in bytes.
    pub payload_len: u32,
    /// The connection the frame belongs to (`connections.conn_no`, from 1); `None` when connections are built
    /// later, from the frame rows.
    pub conn_no: Option<u32>,
}

/// Where a capture came from.
#[derive(Clone, Debug)]
pub struct CaptureSource {
    /// Base name of the file (`stdin` for standard input).
    pub name: String,
    /// Absolute path (`-` for standard input).
    pub path: String,
    /// Bytes on disk when listed (compressed size for .gz/.zst; 0 for standard input).
    pub size: u64,
    /// Modification time when listed, ns since the epoch; `None` when not known.
    pub mtime_ns: Option<i64>,
}

/// What the reader knows once the capture is fully read.
#[derive(Clone, Debug)]
pub struct CaptureEnd {
    /// `pcap` or `pcapng`.
    pub format: &'static str,
    /// `none`, `gzip` or `zstd`.
    pub compression: &'static str,
    /// Every interface seen, by index.
    pub interfaces: Vec<Interface>,
    /// Every frame read, TCP or not.
    pub frames: u64,
    /// Frames that are TCP packets.
    pub tcp_frames: u64,
    /// Flows traced.
    pub flows: u64,
    /// Time of the first frame, ns since the epoch; `None` without frames.
    pub first_ns: Option<i64>,
    /// Time of the last frame, ns since the epoch; `None` without frames.
    pub last_ns: Option<i64>,
    /// Where and why the capture ended early; `None` if it was read whole.
    pub truncation: Option<Truncation>,
    /// xxh3-128 of the bytes read, hex.
    pub hash: String,
    /// Bytes read and the mtime after the read: what is recorded, so that the cheap skip and dumps match the
    /// bytes that were indexed even when the file changed while it was read.
    pub size: u64,
    /// The file's mtime after the read, ns since the epoch; `None` when not known.
    pub mtime_ns: Option<i64>,
    /// The file's size or mtime changed between its listing and the end of its read.
    pub changed: bool,
}

impl CaptureEnd {
    /// The distinct link types of the capture's interfaces, ascending and comma-separated (`captures.linktypes`).
    pub fn linktypes(&self) -> String {
        let mut lts: Vec<u32> = self.interfaces.iter().map(|i| i.linktype).collect();
        lts.sort_unstable();
        lts.dedup();
        lts.iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// What writing a capture did.
#[derive(Debug)]
pub enum Outcome {
    /// The capture was indexed as a new `captures` row.
    Indexed {
        /// Its `captures.id`.
        id: i64,
        /// What the reader found.
        end: CaptureEnd,
        /// Captures indexed from this path before, with other content (see `write_capture`).
        superseded: Vec<Superseded>,
    },
    /// The same content is already in the database under `name`; this path was added to it.
    /// The same content is already in the database under `name`; this path was added to it.
    AlreadyIndexed {
        /// `captures.id` of the capture that has it.
        id: i64,
        /// That capture's name.
        name: String,
    },
}

/// What became of the capture a path was indexed as, when the path is indexed again with new content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Superseded {
    /// It was known under this path only: deleted, the new content replaces it.
    Replaced(i64),
    /// It is still known under other paths: it stays, only this path moved to the new capture.
    PathMoved(i64),
}

/// What `forget` removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Forgotten {
    /// Captures deleted.
    pub captures: u64,
    /// Their frames.
    pub frames: u64,
    /// Their flows.
    pub flows: u64,
    /// Bytes of free pages in the file after the delete: what `VACUUM` would give back to the file system.
    pub reclaimable: u64,
}

/// How an ingest writes its transactions (see `begin_ingest`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Journal {
    /// Write-ahead log: readers keep reading while captures are written.
    Wal,
    /// Rollback journal, for the first load into an empty database.
    BulkLoad,
}
