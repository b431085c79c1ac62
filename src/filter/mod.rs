//! The flow filter language of `traceflow flows`: parsed into an [`Expr`], compiled to a SQL condition whose
//! every value is a bound parameter, and evaluated in Rust on a [`FlowFacts`] (the tests' oracle).
//!
//! Close to what users type for tcpdump/BPF and Stenographer:
//!
//! ```text
//! host A | src host A | dst host A          IPv4 or IPv6; host matches either end
//! net CIDR | src net CIDR | dst net CIDR
//! port N | src port N | dst port N | portrange N-M (with src/dst too)
//! after T | before T                        the flow overlaps the time window
//! capture NAME|ID | label LABEL
//! community-id 1:BASE64                     Community ID v1 (the same for both directions)
//! syn | fin | rst                           the flow has a frame with that flag
//! open | closed
//! packets|bytes|payload|duration  > >= < <= = !=  VALUE   (duration: 10s, 1.5s, 250ms, 2m, 1h)
//! conn-state S0 REJ ...                    the connection's Zeek conn_state is one of these
//! history LETTERS | history = LETTERS      its Zeek history contains LETTERS (case counts) / is exactly that
//! orig-bytes|resp-bytes|orig-pkts|resp-pkts  > >= < <= = !=  N   its Zeek byte and packet counts
//! conn CAPTURE:N | uid CXXXX                one connection: the listing's number in a capture, or its uid
//! and | or | not | ( ... )                  also && || !
//! ```
//!
//! T is RFC 3339 (`2024-03-01T10:00:00Z`, `2024-03-01T10:00` with no zone meaning UTC, `+02:00` zones), a date
//! (`2024-03-01`), epoch seconds with a fraction (`1700000000.25`), or relative to now (`3h ago`, `15m ago`,
//! `2d ago`, `30s ago`).

mod parse;
mod sql;
pub mod terms;
mod time;

use std::net::IpAddr;

use crate::key::{addr_key, is_v4ish, net_bits};

pub use parse::parse;
pub(crate) use parse::parse_duration;
pub use sql::{compile, Compiled, FLOW_CONNECTION, THE_CONNECTION};
pub use time::parse_time;

/// Which end of a flow a host, net or port names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// The flow's source (`src host A`).
    Src,
    /// The flow's destination (`dst host A`).
    Dst,
    /// Either end (`host A`).
    Either,
}

/// A numeric field of a flow that can be compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// Frames of the flow.
    Packets,
    /// Sum of the frames' original lengths.
    Bytes,
    /// Sum of the TCP segment lengths.
    Payload,
    /// Last frame time minus first frame time, in ns.
    Duration,
}

/// A numeric field of a connection (Zeek's conn.log names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnField {
    /// `orig_bytes`: the sequence space the originator used.
    OrigBytes,
    /// `resp_bytes`.
    RespBytes,
    /// `orig_pkts`.
    OrigPkts,
    /// `resp_pkts`.
    RespPkts,
}

impl ConnField {
    /// The `connections` column.
    pub fn column(self) -> &'static str {
        match self {
            ConnField::OrigBytes => "orig_bytes",
            ConnField::RespBytes => "resp_bytes",
            ConnField::OrigPkts => "orig_pkts",
            ConnField::RespPkts => "resp_pkts",
        }
    }
}

/// Zeek's conn_state values (`scripts/base/protocols/conn/main.zeek`).
pub const CONN_STATES: [&str; 13] = [
    "S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH", "SHR", "OTH",
];

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `=` or `==`
    Eq,
    /// `!=`
    Ne,
}

impl Cmp {
    /// The SQL operator.
    pub fn sql(self) -> &'static str {
        match self {
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
            Cmp::Lt => "<",
            Cmp::Le => "<=",
            Cmp::Eq => "=",
            Cmp::Ne => "<>",
        }
    }

    /// `a OP b`.
    pub fn holds(self, a: i64, b: i64) -> bool {
        match self {
            Cmp::Gt => a > b,
            Cmp::Ge => a >= b,
            Cmp::Lt => a < b,
            Cmp::Le => a <= b,
            Cmp::Eq => a == b,
            Cmp::Ne => a != b,
        }
    }
}

/// The TCP flags a flow may have seen (`syn`, `fin`, `rst`), as bits of `tcp_flags`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flag {
    /// SYN (0x02).
    Syn,
    /// FIN (0x01).
    Fin,
    /// RST (0x04).
    Rst,
}

impl Flag {
    /// The flag's bit in `frames.tcp_flags` and `flows.flags`.
    pub fn bit(self) -> i64 {
        match self {
            Flag::Fin => 0x01,
            Flag::Syn => 0x02,
            Flag::Rst => 0x04,
        }
    }
}

/// A parsed filter.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// Every flow (the empty filter).
    All,
    /// `host A`: the address at that end.
    Host(Dir, IpAddr),
    /// `net CIDR`: an address in the network (`prefix` bits of `addr`).
    Net(Dir, IpAddr, u8),
    /// `port N` / `portrange N-M`: a port in `lo..=hi`.
    Port(Dir, u16, u16),
    /// `after T`: the flow's last frame is at or after T (ns since the epoch).
    After(i64),
    /// `before T`: the flow's first frame is at or before T (ns since the epoch).
    Before(i64),
    /// `capture NAME|ID`.
    Capture(String),
    /// `label LABEL`.
    Label(String),
    /// `community-id 1:...`: the flow's Community ID (both directions of a connection have the same).
    CommunityId(String),
    /// `syn`, `fin`, `rst`.
    Flag(Flag),
    /// `open` (true) or `closed` (false).
    Open(bool),
    /// `packets > N` and the like.
    Compare(Field, Cmp, i64),
    /// `conn-state S0 REJ`: the connection's conn_state is one of these (for a flow: the connection holding its
    /// first frame).
    ConnState(Vec<String>),
    /// `history LETTERS` (contains, `false`) or `history = LETTERS` (exactly, `true`).
    History(String, bool),
    /// `orig-bytes > N` and the like, on the connection.
    ConnCompare(ConnField, Cmp, i64),
    /// `conn CAPTURE:N`: connection N (the listing's `conn`) of the capture named (base name or id).
    Conn(String, i64),
    /// `uid CXXXX`: the connection whose conn.log uid this is, and the (capture_id, conn_no) it names, found by
    /// the store's `resolve_uids` (a hash cannot be inverted in SQL); none until then.
    Uid(String, Vec<(i64, i64)>),
    /// `A and B`.
    And(Box<Expr>, Box<Expr>),
    /// `A or B`.
    Or(Box<Expr>, Box<Expr>),
    /// `not A`.
    Not(Box<Expr>),
}

impl Expr {
    /// The operands of the chain of `and` (`or`) at the top of `self`: `a and (b and c)` is a, b, c; `self` alone
    /// when it is neither. Without recursion: a chain built by hand (not by [`parse`], which balances them) may be
    /// as deep as it is long.
    pub(crate) fn chain(&self) -> Vec<&Expr> {
        fn same<'a>(top: &Expr, x: &'a Expr) -> Option<(&'a Expr, &'a Expr)> {
            match (top, x) {
                (Expr::And(..), Expr::And(a, b)) | (Expr::Or(..), Expr::Or(a, b)) => Some((a, b)),
                _ => None,
            }
        }
        let mut out = Vec::new();
        let mut todo = vec![self];
        while let Some(x) = todo.pop() {
            match same(self, x) {
                Some((a, b)) => {
                    todo.push(b);
                    todo.push(a);
                }
                None => out.push(x),
            }
        }
        out
    }

    /// What a matching flow must be in, as stored buckets (`trace::buckets`): each entry is a set of buckets, and
    /// a flow that matches is in one bucket of every set. Empty when the filter names no host, port or IPv4 network
    /// that every match must have (then every flow is a candidate).
    pub fn bucket_sets(&self) -> Vec<Vec<u32>> {
        use crate::key::buckets::{addr_bucket, net16_buckets, port_bucket, NET16_BASE};
        // A 16th of the address (or port) buckets.
        const MAX_HASHED_BUCKETS: usize = 256;
        match self {
            Expr::Host(_, a) => vec![vec![addr_bucket(a)]],
            // A wide port range is most of the buckets: not worth reading.
            Expr::Port(_, lo, hi) if hi - lo < 256 => {
                let mut v: Vec<u32> = (*lo..=*hi).map(port_bucket).collect();
                v.sort_unstable();
                v.dedup();
                vec![v]
            }
            Expr::Net(_, a, p) => net16_buckets(a, *p)
                .map(|(v, _)| vec![v])
                .unwrap_or_default(),
            Expr::And(..) => self.chain().iter().flat_map(|t| t.bucket_sets()).collect(),
            // A match of an `or` matches one operand: it is in the first set of that one's. A long `or` of hosts
            // or ports (a blocklist) is in most address or port buckets, each read by a query of its own per
            // capture: not worth reading (as a wide port range). /16 buckets come in runs, one query each.
            Expr::Or(..) => {
                let mut v: Vec<u32> = Vec::new();
                for t in self.chain() {
                    match t.bucket_sets().into_iter().next() {
                        Some(first) => v.extend(first),
                        None => return Vec::new(),
                    }
                }
                v.sort_unstable();
                v.dedup();
                if v.iter().filter(|&&b| b < NET16_BASE).count() > MAX_HASHED_BUCKETS {
                    return Vec::new();
                }
                vec![v]
            }
            _ => Vec::new(),
        }
    }

    /// True when the flows in the buckets of [`Expr::bucket_sets`] (in one bucket of every set) are exactly the
    /// matches, not only candidates: `net` terms of either end on IPv4 /8 to /16 (exact /16 lists), and `and`/`or`
    /// of such terms. A count of such a filter needs no SQL.
    pub fn buckets_are_exact(&self) -> bool {
        match self {
            Expr::Net(Dir::Either, a, p) => {
                matches!(crate::key::buckets::net16_buckets(a, *p), Some((_, true)))
            }
            Expr::And(..) => self.chain().iter().all(|t| t.buckets_are_exact()),
            // `or` keeps only the first set of each operand, and none when their union is too wide to read.
            Expr::Or(..) => {
                self.chain()
                    .iter()
                    .all(|t| t.buckets_are_exact() && t.bucket_sets().len() == 1)
                    && !self.bucket_sets().is_empty()
            }
            _ => false,
        }
    }
}

/// Dropped without recursion: a chain built by hand may be as deep as it is long.
impl Drop for Expr {
    fn drop(&mut self) {
        let mut todo: Vec<Expr> = Vec::new();
        let take = |e: &mut Expr, todo: &mut Vec<Expr>| match e {
            Expr::And(a, b) | Expr::Or(a, b) => {
                todo.push(std::mem::replace(a.as_mut(), Expr::All));
                todo.push(std::mem::replace(b.as_mut(), Expr::All));
            }
            Expr::Not(a) => todo.push(std::mem::replace(a.as_mut(), Expr::All)),
            _ => {}
        };
        take(self, &mut todo);
        while let Some(mut e) = todo.pop() {
            take(&mut e, &mut todo);
        }
    }
}

/// A bad filter: what was expected, and where (a byte offset into the filter text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad filter at column {}: {message}\n  {text}\n  {caret}", .at + 1)]
pub struct FilterError {
    /// What is wrong, and what was expected.
    pub message: String,
    /// Byte offset of the offending word.
    pub at: usize,
    /// The filter as given, or the part of it around the offending word when it is long (`...` marks a cut).
    pub text: String,
    /// Spaces and `^` under the offending word.
    pub caret: String,
}

/// Characters of the filter shown on either side of the offending word: a blocklist of thousands of terms is not
/// echoed whole under its error.
const SHOWN_AROUND: usize = 40;

impl FilterError {
    pub(crate) fn new(
        text: &str,
        at: usize,
        len: usize,
        message: impl Into<String>,
    ) -> FilterError {
        let at_c = at.min(text.len());
        let col = text[..at_c].chars().count();
        let width = text[at_c..]
            .chars()
            .take(len.clamp(1, 2 * SHOWN_AROUND))
            .count()
            .max(1);
        let total = text.chars().count();
        let (from, to) = (
            col.saturating_sub(SHOWN_AROUND),
            (col + width + SHOWN_AROUND).min(total),
        );
        let mut shown: String = text.chars().skip(from).take(to - from).collect();
        let mut indent = col - from;
        if from > 0 {
            shown.insert_str(0, "...");
            indent += 3;
        }
        if to < total {
            shown.push_str("...");
        }
        FilterError {
            message: message.into(),
            at,
            text: shown,
            caret: format!("{}{}", " ".repeat(indent), "^".repeat(width)),
        }
    }
}

/// What the Rust evaluation of a filter needs to know of one flow.
#[derive(Clone, Debug)]
pub struct FlowFacts {
    /// The capture's id and the names it is known by (base names of its paths).
    pub capture_id: i64,
    /// Base names the capture was indexed under.
    pub capture_names: Vec<String>,
    /// TraceFlow's label.
    pub label: String,
    /// Source address.
    pub src: IpAddr,
    /// Source port.
    pub sport: u16,
    /// Destination address.
    pub dst: IpAddr,
    /// Destination port.
    pub dport: u16,
    /// First and last frame times, ns since the epoch.
    pub first_ns: i64,
    /// Last frame time, ns since the epoch.
    pub last_ns: i64,
    /// Frames.
    pub packets: i64,
    /// Sum of original frame lengths.
    pub bytes: i64,
    /// Sum of TCP segment lengths.
    pub payload: i64,
    /// OR of the TCP flags of its frames.
    pub flags: i64,
    /// Whether a FIN closed it.
    pub closed: bool,
    /// Community ID v1 of its key, with its capture's seed.
    pub community_id: String,
    /// The connection holding its first frame, when known.
    pub conn: Option<ConnFacts>,
}

/// What the connection terms read of a connection.
#[derive(Clone, Debug, Default)]
pub struct ConnFacts {
    /// The connection's number in its capture.
    pub conn_no: i64,
    /// Zeek's conn_state.
    pub conn_state: String,
    /// Zeek's history.
    pub history: String,
    /// Zeek's orig_bytes, resp_bytes, orig_pkts, resp_pkts.
    pub orig_bytes: i64,
    /// resp_bytes.
    pub resp_bytes: i64,
    /// orig_pkts.
    pub orig_pkts: i64,
    /// resp_pkts.
    pub resp_pkts: i64,
}

/// Whether `net`/`prefix` is an IPv4 network: written as IPv4, or as an IPv4-mapped IPv6 network of at least 96
/// bits (`::ffff:10.0.0.0/104` is `10.0.0.0/8`). A shorter IPv6 prefix is an IPv6 network even when its address
/// is mapped: `::ffff:0.0.0.0/8` is `::/8`, only the first 8 bits count.
pub(crate) fn net_is_v4(net: &IpAddr, prefix: u8) -> bool {
    match net {
        IpAddr::V4(_) => true,
        IpAddr::V6(v6) => prefix >= 96 && v6.to_ipv4_mapped().is_some(),
    }
}

/// Whether `a` is in the network `net`/`prefix`. As in tcpdump, an IPv6 network holds IPv6 addresses only (so
/// `net ::/0` is every IPv6 flow, and `net ::/8` does not hold the IPv4 hosts that traceflow keys under
/// ::ffff:0:0/96); IPv4 and IPv4-mapped IPv6 compare as one, so an IPv4 network ([`net_is_v4`]) holds both.
pub fn in_net(a: &IpAddr, net: &IpAddr, prefix: u8) -> bool {
    if is_v4ish(a) != net_is_v4(net, prefix) {
        return false;
    }
    let (a, n) = (addr_key(a), addr_key(net));
    let bits = net_bits(net, prefix) as usize;
    let full = bits / 8;
    if a[..full] != n[..full] {
        return false;
    }
    let rest = bits % 8;
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        a[full] & mask == n[full] & mask
    }
}

impl Expr {
    /// Evaluates the filter on one flow, in Rust: the oracle the SQL compilation is tested against.
    pub fn matches(&self, f: &FlowFacts) -> bool {
        let ends = |d: Dir, test: &dyn Fn(&IpAddr, u16) -> bool| match d {
            Dir::Src => test(&f.src, f.sport),
            Dir::Dst => test(&f.dst, f.dport),
            Dir::Either => test(&f.src, f.sport) || test(&f.dst, f.dport),
        };
        match self {
            Expr::All => true,
            Expr::Host(d, a) => ends(*d, &|x, _| addr_key(x) == addr_key(a)),
            Expr::Net(d, n, p) => ends(*d, &|x, _| in_net(x, n, *p)),
            Expr::Port(d, lo, hi) => ends(*d, &|_, p| (*lo..=*hi).contains(&p)),
            Expr::After(t) => f.last_ns >= *t,
            Expr::Before(t) => f.first_ns <= *t,
            Expr::Capture(c) => {
                c.parse::<i64>().is_ok_and(|id| id == f.capture_id)
                    || f.capture_names.iter().any(|n| n == c)
            }
            Expr::Label(l) => f.label == *l,
            Expr::CommunityId(c) => f.community_id == *c,
            Expr::Flag(fl) => f.flags & fl.bit() != 0,
            Expr::Open(open) => f.closed != *open,
            Expr::Compare(field, cmp, v) => {
                let x = match field {
                    Field::Packets => f.packets,
                    Field::Bytes => f.bytes,
                    Field::Payload => f.payload,
                    Field::Duration => f.last_ns - f.first_ns,
                };
                cmp.holds(x, *v)
            }
            Expr::ConnState(states) => f
                .conn
                .as_ref()
                .is_some_and(|c| states.contains(&c.conn_state)),
            Expr::History(h, exact) => f.conn.as_ref().is_some_and(|c| {
                if *exact {
                    c.history == *h
                } else {
                    c.history.contains(h.as_str())
                }
            }),
            Expr::Conn(cap, n) => {
                Expr::Capture(cap.clone()).matches(f)
                    && f.conn.as_ref().is_some_and(|c| c.conn_no == *n)
            }
            Expr::Uid(_, named) => f
                .conn
                .as_ref()
                .is_some_and(|c| named.contains(&(f.capture_id, c.conn_no))),
            Expr::ConnCompare(field, cmp, v) => f.conn.as_ref().is_some_and(|c| {
                let x = match field {
                    ConnField::OrigBytes => c.orig_bytes,
                    ConnField::RespBytes => c.resp_bytes,
                    ConnField::OrigPkts => c.orig_pkts,
                    ConnField::RespPkts => c.resp_pkts,
                };
                cmp.holds(x, *v)
            }),
            Expr::And(..) => self.chain().iter().all(|t| t.matches(f)),
            Expr::Or(..) => self.chain().iter().any(|t| t.matches(f)),
            Expr::Not(a) => !a.matches(f),
        }
    }
}
