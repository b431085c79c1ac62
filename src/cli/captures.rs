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

pub use crate::decode::numbers::linktype_name;

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
