//! `traceflow captures`: lists the indexed captures.

use std::io::Write;
use std::path::Path;

use super::output::{default_format, write_rows, RowFormat};
use super::Error;
use crate::store::{self, read};

/// `traceflow captures` arguments.
#[derive(clap::Args, Debug)]
pub struct CapturesArgs {
    /// Output format [default: table on a terminal, json otherwise].
    #[arg(long, value_enum)]
    pub format: Option<RowFormat>,
}

/// Prints the captures of the database at `db`.
pub fn run(db: &Path, args: &CapturesArgs) -> Result<u8, Error> {
    let conn = store::Db::open_read(&store::Target::of(db))?;
    let rows = read::captures(&conn)?;
    let format = args.format.unwrap_or_else(default_format);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let written = if format == RowFormat::Table {
        // People get the columns that fit a terminal; json/jsonl carry everything.
        let brief: Vec<_> = rows
            .iter()
            .map(|r| {
                let mut b = read::CaptureBrief::from(r);
                b.linktypes = linktype_names(&b.linktypes);
                b
            })
            .collect();
        write_rows(&mut out, &brief, format)
    } else {
        write_rows(&mut out, &rows, format)
    };
    match written.and_then(|()| out.flush()) {
        // `traceflow captures | head -1`: the reader has what it wanted.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        Err(source) => Err(Error::Io {
            what: "writing stdout".into(),
            source,
        }),
        Ok(()) => Ok(0),
    }
}

/// libpcap's name of a link type (`tcpdump -L`, `pcap_datalink_val_to_name`): what people know them by.
pub fn linktype_name(linktype: u32) -> Option<&'static str> {
    use crate::decode::numbers::*;
    Some(match linktype {
        LINKTYPE_NULL => "NULL",
        LINKTYPE_ETHERNET => "EN10MB",
        LINKTYPE_PPP => "PPP",
        LINKTYPE_FDDI => "FDDI",
        LINKTYPE_RAW_12 | LINKTYPE_RAW_14 | LINKTYPE_RAW => "RAW",
        LINKTYPE_PPP_HDLC => "PPP_SERIAL",
        LINKTYPE_PPP_ETHER => "PPP_ETHER",
        LINKTYPE_C_HDLC => "C_HDLC",
        LINKTYPE_IEEE802_11 => "IEEE802_11",
        LINKTYPE_FRELAY => "FRELAY",
        LINKTYPE_LOOP => "LOOP",
        LINKTYPE_LINUX_SLL => "LINUX_SLL",
        LINKTYPE_RADIOTAP => "IEEE802_11_RADIO",
        LINKTYPE_PPI => "PPI",
        LINKTYPE_IPV4 => "IPV4",
        LINKTYPE_IPV6 => "IPV6",
        LINKTYPE_NFLOG => "NFLOG",
        LINKTYPE_LINUX_SLL2 => "LINUX_SLL2",
        LINKTYPE_ARCNET_LINUX => "ARCNET_LINUX",
        LINKTYPE_JUNIPER_ETHER => "JUNIPER_ETHER",
        LINKTYPE_IPOIB => "IPOIB",
        _ => return None,
    })
}

/// `1,276` as `EN10MB,LINUX_SLL2`; a link type without a name stays a number.
fn linktype_names(list: &str) -> String {
    list.split(',')
        .filter(|t| !t.is_empty())
        .map(
            |t| match t.trim().parse::<u32>().ok().and_then(linktype_name) {
                Some(n) => n.to_string(),
                None => t.to_string(),
            },
        )
        .collect::<Vec<_>>()
        .join(",")
}
