//! Connections as Zeek's conn.log: the TSV of Zeek's ASCII writer (`connections --format zeek`) and its JSON
//! lines (`--format zeek-json`, Zeek's `LogAscii::use_json`), with Zeek's field order and types, so that
//! `zeek-cut`, `zat` and other conn.log readers take them as they are.
//!
//! Fields traceflow has no value for are unset, as Zeek leaves them: `service` (no application analyzers),
//! `local_orig` / `local_resp` (no `Site::local_nets`), `missed_bytes` (Zeek counts content gaps its reassembler
//! reports; without reassembly that is not known: see docs/zeek.md), `tunnel_parents` (the tunnels' own
//! connections are not tracked). The `uid` is derived from the connection itself (its Community ID, first frame
//! time and number in its capture), so the same capture gives the same uids in any database.

use std::io::{self, Write};

use crate::store::read::ConnRow;

/// Zeek's conn.log fields in Zeek's order, with the community-id package's `community_id` last.
const FIELDS: [(&str, &str); 22] = [
    ("ts", "time"),
    ("uid", "string"),
    ("id.orig_h", "addr"),
    ("id.orig_p", "port"),
    ("id.resp_h", "addr"),
    ("id.resp_p", "port"),
    ("proto", "enum"),
    ("service", "string"),
    ("duration", "interval"),
    ("orig_bytes", "count"),
    ("resp_bytes", "count"),
    ("conn_state", "string"),
    ("local_orig", "bool"),
    ("local_resp", "bool"),
    ("missed_bytes", "count"),
    ("history", "string"),
    ("orig_pkts", "count"),
    ("orig_ip_bytes", "count"),
    ("resp_pkts", "count"),
    ("resp_ip_bytes", "count"),
    ("tunnel_parents", "set[string]"),
    ("community_id", "string"),
];

/// Zeek's `#unset_field` and `#empty_field`.
const UNSET: &str = "-";
const EMPTY: &str = "(empty)";

/// The connection's uid ([`crate::conn::uid::uid`]).
pub fn uid(r: &ConnRow) -> String {
    crate::conn::uid::uid(&r.community_id, r.first_ns, r.conn)
}

/// Nanoseconds as Zeek writes a `time` or `interval`: seconds with 6 decimals (rounded to the microsecond).
fn secs(ns: i64) -> String {
    let us = (i128::from(ns) + 500).div_euclid(1000);
    let (s, frac) = (us.div_euclid(1_000_000), us.rem_euclid(1_000_000));
    format!("{s}.{frac:06}")
}

/// A string value as Zeek's ASCII writer escapes it: the separator, the set separator, backslash and
/// non-printable bytes as `\xHH`, an empty string as `(empty)`, a lone `-` escaped so it is not unset.
fn tsv_string(s: &str) -> String {
    if s.is_empty() {
        return EMPTY.to_string();
    }
    if s == UNSET {
        return "\\x2d".to_string();
    }
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b == b'\t' || b == b',' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            out.push_str(&format!("\\x{b:02x}"));
        } else {
            out.push(char::from(b));
        }
    }
    out
}

/// The `#open` / `#close` time: Zeek reading a trace writes network time, `%Y-%m-%d-%H-%M-%S` (UTC here).
fn log_time(ns: i64) -> String {
    let t = crate::capture::Timestamp::from_ns(ns, 0).rfc3339();
    // "YYYY-MM-DDTHH:MM:SSZ"
    t.trim_end_matches('Z').replace(['T', ':'], "-")
}

/// The values of one row, in [`FIELDS`] order; `None` is unset.
fn values(r: &ConnRow) -> [Option<String>; 22] {
    let count = |n: i64| Some(n.to_string());
    [
        Some(secs(r.first_ns)),
        Some(uid(r)),
        Some(r.orig_h.clone()),
        Some(r.orig_p.to_string()),
        Some(r.resp_h.clone()),
        Some(r.resp_p.to_string()),
        Some("tcp".into()),
        None,
        Some(secs(r.last_ns - r.first_ns)),
        count(r.orig_bytes),
        count(r.resp_bytes),
        Some(r.conn_state.clone()),
        None,
        None,
        None,
        Some(r.history.clone()),
        count(r.orig_pkts),
        r.orig_ip_bytes.and_then(count),
        count(r.resp_pkts),
        r.resp_ip_bytes.and_then(count),
        None,
        Some(r.community_id.clone()),
    ]
}

/// Writes connections as a Zeek TSV conn.log: the header block, one line per row, the `#close` line.
pub struct TsvLog<W: Write> {
    out: W,
    header: bool,
    /// The latest end time written (for `#close`).
    last_ns: Option<i64>,
}

impl<W: Write> TsvLog<W> {
    /// A log writing to `out`.
    pub fn new(out: W) -> TsvLog<W> {
        TsvLog {
            out,
            header: false,
            last_ns: None,
        }
    }

    fn write_header(&mut self, open_ns: i64) -> io::Result<()> {
        let names: Vec<&str> = FIELDS.iter().map(|f| f.0).collect();
        let types: Vec<&str> = FIELDS.iter().map(|f| f.1).collect();
        write!(
            self.out,
            "#separator \\x09\n#set_separator\t,\n#empty_field\t{EMPTY}\n#unset_field\t{UNSET}\n#path\tconn\n\
             #open\t{}\n#fields\t{}\n#types\t{}\n",
            log_time(open_ns),
            names.join("\t"),
            types.join("\t")
        )?;
        self.header = true;
        Ok(())
    }

    /// Writes one connection.
    pub fn row(&mut self, r: &ConnRow) -> io::Result<()> {
        if !self.header {
            self.write_header(r.first_ns)?;
        }
        self.last_ns = Some(self.last_ns.map_or(r.last_ns, |t| t.max(r.last_ns)));
        let cells: Vec<String> = values(r)
            .into_iter()
            .zip(FIELDS)
            .map(|(v, (_, ty))| match v {
                None => UNSET.to_string(),
                Some(v) if ty == "string" => tsv_string(&v),
                Some(v) => v,
            })
            .collect();
        writeln!(self.out, "{}", cells.join("\t"))
    }

    /// Ends the log: the header if no row came (network time unknown: the epoch), then `#close`.
    pub fn finish(mut self) -> io::Result<W> {
        if !self.header {
            self.write_header(0)?;
        }
        writeln!(self.out, "#close\t{}", log_time(self.last_ns.unwrap_or(0)))?;
        Ok(self.out)
    }
}

/// Writes one connection as a line of Zeek's JSON log: the fields in Zeek's order, unset ones left out, times
/// and intervals as numbers of seconds (6 decimals, as in the TSV), ports and counts as integers.
pub fn json_line(out: &mut impl Write, r: &ConnRow) -> io::Result<()> {
    let mut line = String::with_capacity(400);
    line.push('{');
    for (v, (name, ty)) in values(r).into_iter().zip(FIELDS) {
        let Some(v) = v else { continue };
        if line.len() > 1 {
            line.push(',');
        }
        line.push('"');
        line.push_str(name);
        line.push_str("\":");
        match ty {
            "time" | "interval" | "port" | "count" => line.push_str(&v),
            _ => line.push_str(&serde_json::to_string(&v).map_err(io::Error::from)?),
        }
    }
    line.push_str("}\n");
    out.write_all(line.as_bytes())
}
