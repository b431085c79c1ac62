//! The contract between the commands and a database: [`Backend`] holds every read they make, [`CaptureSink`]
//! the writer's calls, and [`Caps`] what differs between the databases that callers must know about. SQLite
//! (`store::sqlite`) and PostgreSQL (`store::postgres`) implement it; everything above `store` sees only this.

use std::collections::{HashMap, VecDeque};

use super::error::{QueryError, StoreError};
use super::page::PageKey;
use super::rows::{ConnRow, FlowRow, FlowSort, GroupBy, GroupRow};
use super::sink::{CaptureEnd, CaptureSource, Forgotten, FrameRow, Outcome};
use super::types::{CaptureInfo, CapturePath, CaptureRow, FrameRef, Iface};
use crate::filter::Compiled;

/// What a database does differently, for the callers that must act on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    /// A parked flow's row is written when it is parked and replaced in place when the flow ends (SQLite); else
    /// parked flows are written once, when they end.
    pub parked_rows: bool,
    /// Several captures can be written at once, each through a connection of its own.
    pub parallel_writers: bool,
    /// Connections are built while reading: the read commands never write, so they cannot build them later.
    pub connections_at_ingest: bool,
    /// Deleted rows leave free pages in a file that `VACUUM` returns to the file system (else the server's
    /// autovacuum reuses the space).
    pub vacuum_reclaims: bool,
}

/// Reads the frames of flows and connections, with whatever the database prepares once for many of them.
pub trait FrameWalk {
    /// Appends the frames of flow `flow_no` of `capture_id` to `out`, in frame order, calling `note` with each
    /// frame's number and the flow its row names (when the database records that per frame); returns the flow's
    /// first frame and packet count as `flows` records them, which the caller checks the frames against.
    fn flow(
        &mut self,
        capture_id: i64,
        flow_no: i64,
        out: &mut Vec<FrameRef>,
        note: &mut dyn FnMut(u64, Option<i64>),
    ) -> Result<(i64, i64), QueryError>;

    /// Appends the frames of connection `conn_no` of `capture_id` to `out`, in frame order.
    fn connection(
        &mut self,
        capture_id: i64,
        conn_no: i64,
        out: &mut Vec<FrameRef>,
    ) -> Result<(), QueryError>;

    /// Where a flow's frames were found, for the message about a damaged database.
    fn found_in(&self) -> &'static str;
}

/// The frame bytes stored in the database (`ingest --embed`).
pub trait EmbeddedFrames {
    /// The stored bytes of frame `number` of `capture_id`; `None` when there are none.
    fn frame_data(&mut self, capture_id: i64, number: i64) -> Result<Option<Vec<u8>>, QueryError>;
}

/// Writes one capture in one transaction: nothing of it is visible until [`CaptureSink::finish`] commits.
pub trait CaptureSink {
    /// Writes frames, the flows closed meanwhile, and (with --embed) the frames' bytes in frame order.
    fn add(
        &mut self,
        frames: &[FrameRow],
        flows: &[crate::trace::FlowRecord],
        data: &[u8],
    ) -> Result<(), StoreError>;
    /// Writes connections.
    fn add_connections(&mut self, conns: &[crate::conn::ConnRecord]) -> Result<(), StoreError>;
    /// Adds an endpoint tally to the capture's.
    fn add_endpoints(
        &mut self,
        rows: &[crate::trace::endpoints::EndpointRow],
    ) -> Result<(), StoreError>;
    /// Stores parts of the capture's flow bucket lists.
    fn add_buckets(&mut self, rows: &[crate::trace::buckets::BucketRow]) -> Result<(), StoreError>;
    /// Records the Community ID seed the capture's flows and connections were made with.
    fn set_community_id_seed(&mut self, seed: u16) -> Result<(), StoreError>;
    /// Completes the capture and commits.
    fn finish(self: Box<Self>, end: CaptureEnd) -> Result<Outcome, StoreError>;
}

/// The stored flow bucket lists (`trace::buckets`), which the query planner ([`super::plan`]) reads.
pub trait BucketLists {
    /// (id, flows, has_buckets) of every capture whose flows have bucket lists (`has_buckets >= 1`).
    fn bucket_captures(&self) -> Result<Vec<(i64, i64, i64)>, QueryError>;
    /// Appends the stored lists of buckets `lo..=hi` of capture `capture_id` to `out`, one blob per part.
    fn bucket_lists(
        &self,
        capture_id: i64,
        lo: u32,
        hi: u32,
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), QueryError>;
}

/// Every read the commands make, and the writes of `forget` and an ingest. Errors of the reads are
/// [`QueryError`]s, of the writes [`StoreError`]s naming the database.
pub trait Backend: BucketLists {
    /// What this database does differently.
    fn caps(&self) -> Caps;

    // -- Captures

    /// Every capture in the database, by id.
    fn captures(&self) -> Result<Vec<CaptureInfo>, QueryError>;
    /// Every capture name (base names of every path too), for the closest-name hint.
    fn capture_names(&self) -> Result<Vec<String>, QueryError>;
    /// The captures that have flows but no connections (indexed without `ingest --connections` on SQLite), by
    /// id: (id, name).
    fn captures_without_connections(&self) -> Result<Vec<(i64, String)>, QueryError>;
    /// Whether a capture has this id.
    fn capture_exists(&self, id: i64) -> Result<bool, QueryError>;
    /// Captures indexed from the path `a` or `b`.
    fn captures_at_path(&self, a: &str, b: &str) -> Result<Vec<i64>, QueryError>;
    /// Captures indexed from a file of this base name.
    fn captures_named(&self, name: &str) -> Result<Vec<i64>, QueryError>;
    /// (id, name) of one capture, or of every capture by id.
    fn capture_ids(&self, capture: Option<i64>) -> Result<Vec<(i64, String)>, QueryError>;
    /// The name of capture `id`, if there is one.
    fn capture_name(&self, id: i64) -> Result<Option<String>, QueryError>;
    /// The `captures` row of capture `id`.
    fn capture_row(&self, id: i64) -> Result<CaptureRow, QueryError>;
    /// Every path a capture was seen under, in the order they were added.
    fn capture_paths(&self, capture_id: i64) -> Result<Vec<CapturePath>, QueryError>;
    /// (first frame time, id) of every capture, in that order: the order captures join a time merge.
    fn captures_by_time(&self) -> Result<VecDeque<(i64, i64)>, QueryError>;
    /// The interfaces of a capture, by `interfaces.iface`.
    fn interfaces(&self, capture_id: i64) -> Result<HashMap<u32, Iface>, QueryError>;
    /// Every interface of every capture: (linktype, snaplen, tsresol).
    fn all_interfaces(&self) -> Result<Vec<(u32, u32, u8)>, QueryError>;
    /// The `if_tsresol` of each interface of a capture, by interface number.
    fn tsresols(&self, capture_id: i64) -> Result<Vec<u8>, QueryError>;
    /// Where the last TCP record of a capture ends (`file_offset + caplen`); `None` without TCP frames.
    fn last_tcp_end(&self, capture_id: i64) -> Result<Option<i64>, QueryError>;
    /// (id, first frame time, last frame time) of every capture, oldest first (by first frame time, then id;
    /// captures without frames first): the order retention forgets them in.
    fn capture_spans(&self) -> Result<Vec<crate::store::types::CaptureSpan>, QueryError>;
    /// Bytes the database's rows take now: what `forget --keep-size` compares with its limit (SQLite: the
    /// file's pages less the free ones; PostgreSQL: the database's size, which counts deleted rows until
    /// autovacuum reuses their space).
    fn database_size(&self) -> Result<u64, QueryError>;
    /// A capture already indexed from this exact path with the same size and mtime (the cheap skip).
    fn known_path(&self, src: &CaptureSource) -> Result<Option<(i64, String)>, StoreError>;

    // -- The index tuple

    /// Visits one capture's index rows in index order: the label and the frame numbers as comma-separated
    /// text.
    fn index_rows(
        &self,
        capture_id: i64,
        visit: &mut dyn FnMut(&str, &str) -> Result<(), QueryError>,
    ) -> Result<(), QueryError>;
    /// Visits the TCP frames of a capture in frame order, for the two-way index: (number, ts_ns, iface, flags,
    /// src, sport, dst, dport).
    #[allow(clippy::type_complexity)]
    fn twoway_frames(
        &self,
        capture_id: i64,
        visit: &mut dyn FnMut(i64, i64, u32, u16, &str, u16, &str, u16),
    ) -> Result<(), QueryError>;

    // -- Labels, flows and connections of one capture

    /// (capture id, flow_no, capture name) of every flow labelled `label` whose first frame time is in
    /// `lo..=hi`, in `capture` or in any, by capture and then index order.
    fn flows_labelled(
        &self,
        capture: Option<i64>,
        label: &str,
        lo: i64,
        hi: i64,
    ) -> Result<Vec<(i64, i64, String)>, QueryError>;
    /// Every distinct label (of one capture, or of all), for the closest-label hint.
    fn labels(&self, capture: Option<i64>) -> Result<Vec<String>, QueryError>;
    /// The connections that frames of a flow belong to.
    fn flow_connections(&self, capture_id: i64, flow_no: i64) -> Result<Vec<i64>, QueryError>;
    /// (conn_no, flows as comma-separated flow numbers, label of the flow holding its first frame) of every
    /// connection of a capture, in connection order.
    fn conn_group_rows(
        &self,
        capture_id: i64,
    ) -> Result<Vec<(i64, String, Option<String>)>, QueryError>;
    /// (flow_no, label) of every flow of a capture, in index order.
    fn flow_labels(&self, capture_id: i64) -> Result<Vec<(i64, String)>, QueryError>;
    /// A flow's first frame.
    fn flow_first_frame(&self, capture_id: i64, flow_no: i64) -> Result<i64, QueryError>;

    // -- Frames, for dumps

    /// A reader of flows' and connections' frames.
    fn frame_walk(&self) -> Result<Box<dyn FrameWalk + '_>, QueryError>;
    /// A reader of the frame bytes stored with `ingest --embed`.
    fn embedded_frames(&self) -> Result<Box<dyn EmbeddedFrames + '_>, QueryError>;

    // -- Searches

    /// Visits every flow that matches `filter`, in `sort` order, at most `limit`, one row at a time
    /// (see [`super::read::search_flows`]).
    fn search_flows(
        &self,
        filter: &Compiled,
        sort: FlowSort,
        limit: Option<u64>,
        visit: &mut dyn FnMut(FlowRow) -> Result<(), QueryError>,
    ) -> Result<(), QueryError>;
    /// How many flows match `filter`.
    fn count_flows(&self, filter: &Compiled) -> Result<i64, QueryError>;
    /// Visits one row per group of the flows that match `filter`, in `sort`'s order of groups (none: most bytes
    /// first), then by key.
    fn group_flows(
        &self,
        filter: &Compiled,
        by: GroupBy,
        sort: Option<FlowSort>,
        limit: Option<u64>,
        visit: &mut dyn FnMut(GroupRow) -> Result<(), QueryError>,
    ) -> Result<(), QueryError>;
    /// Visits one row per group of the connections that have a flow matching `filter`, ordered as
    /// [`Backend::group_flows`] orders groups.
    fn group_connections(
        &self,
        filter: &Compiled,
        by: GroupBy,
        sort: Option<FlowSort>,
        limit: Option<u64>,
        visit: &mut dyn FnMut(GroupRow) -> Result<(), QueryError>,
    ) -> Result<(), QueryError>;
    /// The SQL a search runs, each with the database's plan for it (`flows --explain`).
    fn explain_flows(&self, filter: &Compiled) -> Result<Vec<(String, Vec<String>)>, QueryError>;
    /// The SQL a connection search runs (the listing in `sort` order, and the count), each with the database's
    /// plan for it.
    fn explain_connections(
        &self,
        filter: &Compiled,
        sort: FlowSort,
    ) -> Result<Vec<(String, Vec<String>)>, QueryError>;
    /// The next page of a capture's flows that match `filter` after flow_no `after`: (flow_no, first_frame).
    fn flow_page(
        &self,
        filter: &Compiled,
        capture_id: i64,
        after: i64,
    ) -> Result<Vec<(i64, i64)>, QueryError>;
    /// Visits every connection that has a flow matching `filter`, in `sort` order, at most `limit`.
    fn search_connections(
        &self,
        filter: &Compiled,
        sort: FlowSort,
        limit: Option<u64>,
        visit: &mut dyn FnMut(ConnRow) -> Result<(), QueryError>,
    ) -> Result<(), QueryError>;
    /// How many connections have a flow matching `filter`.
    fn count_connections(&self, filter: &Compiled) -> Result<i64, QueryError>;

    // -- Pages and the time histogram (`traceflow serve`)

    /// Visits at most `limit` flows that match `filter` after `after` (the last row of the previous page), by
    /// `sort`'s value, largest first, then by (first time, capture, flow_no).
    fn flows_page(
        &self,
        filter: &Compiled,
        sort: FlowSort,
        after: Option<&PageKey>,
        limit: u64,
        visit: &mut dyn FnMut(FlowRow) -> Result<(), QueryError>,
    ) -> Result<(), QueryError>;
    /// Visits at most `limit` connections that have a flow matching `filter` after `after`, as
    /// [`Backend::flows_page`] orders flows.
    fn connections_page(
        &self,
        filter: &Compiled,
        sort: FlowSort,
        after: Option<&PageKey>,
        limit: u64,
        visit: &mut dyn FnMut(ConnRow) -> Result<(), QueryError>,
    ) -> Result<(), QueryError>;
    /// How many flows that match `filter` overlap each of `buckets` equal parts of `lo..hi` (ns): a flow counts in
    /// every part its first..last frame time touches.
    fn flow_histogram(
        &self,
        filter: &Compiled,
        lo: i64,
        hi: i64,
        buckets: usize,
    ) -> Result<Vec<i64>, QueryError>;
    /// Connection `conn_no` of capture `capture_id`, if there is one.
    fn connection_row(&self, capture_id: i64, conn_no: i64) -> Result<Option<ConnRow>, QueryError>;

    // -- Writes

    /// Prepares the database for an ingest whose first capture is `first_big` (SQLite bulk-loads an empty
    /// file); says how it will be written.
    fn begin_ingest(&self, first_big: bool) -> Result<super::Journal, StoreError>;
    /// Ends what [`Backend::begin_ingest`] began (SQLite returns to WAL).
    fn end_ingest(&self) -> Result<(), StoreError>;
    /// Another connection to the same database, for one more writer ([`Caps::parallel_writers`]).
    fn reconnect(&self) -> Result<super::Db, StoreError>;

    /// Deletes the captures `ids` and all their rows in one transaction: all of them go, or none.
    fn forget(&self, ids: &[i64]) -> Result<Forgotten, StoreError>;
    /// As [`Backend::forget`], and then, in the same transaction, the captures of `oldest` in that order while
    /// the rows take more than `limit` bytes (see [`Backend::database_size`]; PostgreSQL, which cannot measure
    /// inside a transaction, estimates each capture's share from its rows). Returns what went and how many of
    /// `oldest`.
    fn forget_to_size(
        &self,
        ids: &[i64],
        oldest: &[i64],
        limit: u64,
    ) -> Result<(Forgotten, usize), StoreError>;
    /// Starts writing a capture read from `src`: its `captures` row, inside a new transaction.
    fn begin_capture<'c>(
        &'c self,
        src: &CaptureSource,
        force: bool,
        embed: bool,
    ) -> Result<Box<dyn CaptureSink + 'c>, StoreError>;
}
