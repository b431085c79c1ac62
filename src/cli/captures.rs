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
    let conn = store::open_read(db)?;
    let rows = read::captures(&conn)?;
    let format = args.format.unwrap_or_else(default_format);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let written = if format == RowFormat::Table {
        // People get the columns that fit a terminal; json/jsonl carry everything.
        let brief: Vec<_> = rows.iter().map(read::CaptureBrief::from).collect();
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
