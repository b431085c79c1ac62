//! `traceflow._native`: the Python bindings of the traceflow library. Each call opens the database for itself (a
//! read snapshot per call, as each CLI command takes), does its work on a thread of its own with the GIL
//! released, and polls for Ctrl-C meanwhile; the Python package (`python/traceflow`) builds the public API on
//! these functions.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyFileExistsError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use traceflow::dump::{self, DumpError, DumpFormat, DumpOptions};
use traceflow::filter;
use traceflow::ingest::{self as run_ingest, Cancel, Options};
use traceflow::store::{self, read, Db, QueryError, StoreError, Target};

mod rows;

use rows::{ConnIter, Connection, Flow, FlowIter};

create_exception!(
    traceflow,
    TraceflowError,
    PyException,
    "A traceflow operation failed (database, capture or dump); the message says what, where and what to do."
);
create_exception!(
    traceflow,
    FilterError,
    TraceflowError,
    "A filter did not parse: `column` is where (from 1, as the CLI counts), `caret` marks it under `text`."
);

/// Any error of the library as a Python exception (`TraceflowError`, `FileExistsError` for a file a dump would
/// replace).
pub(crate) fn py_err(e: impl Into<Failure>) -> PyErr {
    match e.into() {
        Failure::Exists(m) => PyFileExistsError::new_err(m),
        Failure::Other(m) => TraceflowError::new_err(m),
    }
}

/// What went wrong, as the Python side raises it.
pub(crate) enum Failure {
    /// A file a dump would have replaced.
    Exists(String),
    /// Anything else, with its one-line message.
    Other(String),
}

impl From<QueryError> for Failure {
    fn from(e: QueryError) -> Failure {
        Failure::Other(e.to_string())
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        Failure::Other(e.to_string())
    }
}

impl From<traceflow::cli::Error> for Failure {
    fn from(e: traceflow::cli::Error) -> Failure {
        Failure::Other(e.to_string())
    }
}

/// The database at `db` opened for reading, once every capture has its connections (else the CLI's message
/// naming `ingest --connections`, which `Database.ingest([], connections=True)` runs).
pub(crate) fn open_with_connections(db: &str) -> Result<Db, Failure> {
    let target = Target::of(Path::new(db));
    let conn = Db::open_read(&target)?;
    traceflow::cli::require_connections(&conn, &target)?;
    Ok(conn)
}

impl From<DumpError> for Failure {
    fn from(e: DumpError) -> Failure {
        match e {
            DumpError::Exists { .. } => Failure::Exists(e.to_string()),
            e => Failure::Other(e.to_string()),
        }
    }
}

/// Runs `work` on a thread of its own without the GIL, checking for signals (Ctrl-C) every 50 ms. On a signal,
/// `stop` asks the work to end, the call waits for it (a capture being written rolls back, a dump removes its
/// partial files) and raises the signal's exception (`KeyboardInterrupt`).
pub(crate) fn blocking<T: Send + 'static>(
    py: Python<'_>,
    stop: impl Fn(),
    work: impl FnOnce() -> T + Send + 'static,
) -> PyResult<T> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let handle = std::thread::spawn(move || {
        let _ = tx.send(work());
    });
    let result = loop {
        match py.allow_threads(|| rx.recv_timeout(Duration::from_millis(50))) {
            Ok(v) => break Ok(v),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                if let Err(e) = py.check_signals() {
                    stop();
                    let _ = py.allow_threads(|| rx.recv());
                    break Err(e);
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                break Err(PyRuntimeError::new_err(
                    "traceflow: the worker thread stopped without a result (a bug: please report it)",
                ))
            }
        }
    };
    let _ = handle.join();
    result
}

/// The database at `db` (a SQLite path or a `postgresql://` URL), opened for reading.
pub(crate) fn open_read(db: &str) -> Result<Db, Failure> {
    Ok(Db::open_read(&Target::of(Path::new(db)))?)
}

/// A filter parsed and compiled, or `FilterError` with its column and caret.
pub(crate) fn compile(text: &str) -> PyResult<filter::Compiled> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    match filter::parse(text, now) {
        Ok(e) => Ok(filter::compile(&e)),
        Err(e) => Python::with_gil(|py| {
            // From 1, as the command line says it (`bad filter at column N`).
            let column = e.at + 1;
            let err = FilterError::new_err(e.to_string());
            let v = err.value(py);
            v.setattr("message", &e.message)?;
            v.setattr("column", column)?;
            v.setattr("caret", &e.caret)?;
            v.setattr("text", &e.text)?;
            Err(err)
        }),
    }
}

/// `time`, `bytes`, `packets` or `duration`.
pub(crate) fn sort_of(sort: Option<&str>) -> PyResult<read::FlowSort> {
    Ok(match sort.unwrap_or("time") {
        "time" => read::FlowSort::Time,
        "bytes" => read::FlowSort::Bytes,
        "packets" => read::FlowSort::Packets,
        "duration" => read::FlowSort::Duration,
        s => {
            return Err(PyValueError::new_err(format!(
                "sort={s:?}: use 'time', 'bytes', 'packets' or 'duration'"
            )))
        }
    })
}

/// A dump format by its name (PyPCAPKit's aliases too: `cap`, `xml`, `txt`).
fn format_of(name: &str) -> PyResult<DumpFormat> {
    Ok(match name {
        "pcap" | "cap" => DumpFormat::Pcap,
        "pcapng" => DumpFormat::Pcapng,
        "json" => DumpFormat::Json,
        "plist" | "xml" => DumpFormat::Plist,
        "tree" | "txt" => DumpFormat::Tree,
        "text" => DumpFormat::Text,
        f => {
            return Err(PyValueError::new_err(format!(
                "format={f:?}: use 'pcap', 'pcapng', 'json', 'plist', 'tree' or 'text'"
            )))
        }
    })
}

/// Ingests `paths` (files or folders) into `db`; returns the summary as a dict, with the run's messages.
#[pyfunction]
#[pyo3(signature = (db, paths, force=false, embed=false, jobs=1, connections=false, quiet=true))]
#[allow(clippy::too_many_arguments)]
fn ingest(
    py: Python<'_>,
    db: String,
    paths: Vec<PathBuf>,
    force: bool,
    embed: bool,
    jobs: usize,
    connections: bool,
    quiet: bool,
) -> PyResult<Py<PyDict>> {
    let cancel = Cancel::default();
    let stop = cancel.clone();
    let result = blocking(
        py,
        move || stop.cancel(),
        move || -> Result<(run_ingest::Summary, Vec<String>), Failure> {
            let mut conn = Db::open(&Target::of(Path::new(&db)))?;
            let opts = Options {
                jobs: jobs.max(1),
                force,
                embed,
                quiet: true,
                cancel,
                connections: connections || conn.caps().connections_at_ingest,
                ..Options::default()
            };
            let mut messages = Vec::new();
            let s = run_ingest::run(&mut conn, &paths, &opts, &mut |m| {
                if !quiet {
                    eprintln!("{m}");
                }
                messages.push(m)
            });
            Ok((s, messages))
        },
    )?;
    let (s, messages) = result.map_err(py_err)?;
    if let Some(e) = &s.database_error {
        return Err(TraceflowError::new_err(e.clone()));
    }
    if s.interrupted {
        return Err(pyo3::exceptions::PyKeyboardInterrupt::new_err(
            "ingest interrupted",
        ));
    }
    let d = PyDict::new(py);
    d.set_item("files", s.files)?;
    d.set_item("indexed", s.indexed)?;
    d.set_item("frames", s.frames)?;
    d.set_item("flows", s.flows)?;
    d.set_item("skipped", s.skipped)?;
    d.set_item("already", s.already)?;
    d.set_item("not_captures", s.not_captures)?;
    d.set_item("failed", s.failed)?;
    d.set_item("truncated", s.truncated)?;
    d.set_item("seconds", s.elapsed.as_secs_f64())?;
    d.set_item("messages", messages)?;
    Ok(d.unbind())
}

/// Builds the connections of every capture of `db` that has none, from its frame rows (`traceflow ingest
/// --connections` without files); returns for how many captures.
#[pyfunction]
fn build_connections(py: Python<'_>, db: String) -> PyResult<usize> {
    blocking(
        py,
        || {},
        move || -> Result<usize, Failure> { Ok(Target::of(Path::new(&db)).build_connections()?) },
    )?
    .map_err(py_err)
}

/// Every capture of `db`, as the JSON text of `traceflow captures --format json`.
#[pyfunction]
fn captures_json(py: Python<'_>, db: String) -> PyResult<String> {
    blocking(
        py,
        || {},
        move || -> Result<String, Failure> {
            let conn = open_read(&db)?;
            let caps = read::captures(&conn)?;
            serde_json::to_string(&caps).map_err(|e| Failure::Other(e.to_string()))
        },
    )?
    .map_err(py_err)
}

/// The id of the capture `sel` names (an id, a path it was indexed from, or a base name).
#[pyfunction]
fn resolve_capture(py: Python<'_>, db: String, sel: String) -> PyResult<i64> {
    blocking(
        py,
        || {},
        move || -> Result<i64, Failure> {
            let conn = open_read(&db)?;
            Ok(read::resolve_capture(&conn, &sel)?)
        },
    )?
    .map_err(py_err)
}

/// The index tuple: a list of (capture name or None, label, frame numbers as a tuple), of one capture (an id) or
/// of all; `bidirectional` gives the two-way index.
#[pyfunction]
#[pyo3(signature = (db, capture=None, bidirectional=false))]
fn index(
    py: Python<'_>,
    db: String,
    capture: Option<i64>,
    bidirectional: bool,
) -> PyResult<Py<PyList>> {
    let entries = blocking(
        py,
        || {},
        move || -> Result<_, Failure> {
            let conn = open_read(&db)?;
            Ok(if bidirectional {
                read::bidirectional_index(&conn, capture)?
            } else {
                read::index(&conn, capture)?
            })
        },
    )?
    .map_err(py_err)?;
    let out = PyList::empty(py);
    for e in entries {
        let t = PyTuple::new(
            py,
            [
                e.capture.into_pyobject(py)?.into_any(),
                e.label.into_pyobject(py)?.into_any(),
                PyTuple::new(py, e.index)?.into_any(),
            ],
        )?;
        out.append(t)?;
    }
    Ok(out.unbind())
}

/// How many flows (or, with `connections`, connections) match `filter`.
#[pyfunction]
#[pyo3(signature = (db, filter, connections=false))]
fn count(py: Python<'_>, db: String, filter: String, connections: bool) -> PyResult<i64> {
    let compiled = compile(&filter)?;
    blocking(
        py,
        || {},
        move || -> Result<i64, Failure> {
            let conn = if connections {
                open_with_connections(&db)?
            } else {
                open_read(&db)?
            };
            Ok(if connections {
                read::count_connections(&conn, &compiled)?
            } else {
                read::count_flows(&conn, &compiled)?
            })
        },
    )?
    .map_err(py_err)
}

/// Dump options from the Python arguments.
fn dump_options(
    format: &str,
    byteorder: Option<&str>,
    nanosecond: bool,
    source_root: Option<PathBuf>,
    both: bool,
) -> PyResult<DumpOptions> {
    let mut opts = DumpOptions::new(format_of(format)?);
    match byteorder {
        None => {}
        Some("big") => opts.big_endian = true,
        Some("little") => opts.big_endian = false,
        Some(b) => {
            return Err(PyValueError::new_err(format!(
                "byteorder={b:?}: use 'big' or 'little'"
            )))
        }
    }
    opts.nanosecond = nanosecond;
    opts.source_root = source_root;
    opts.both = both;
    Ok(opts)
}

/// Runs a dump on its thread: Ctrl-C stops it at its next frame, and its partial files are removed.
fn dump_blocking<T: Send + 'static>(
    py: Python<'_>,
    work: impl FnOnce() -> Result<T, Failure> + Send + 'static,
) -> PyResult<T> {
    dump::clear_interrupt();
    let r = blocking(
        py,
        || {
            dump::interrupt();
        },
        work,
    );
    dump::clear_interrupt();
    r?.map_err(py_err)
}

/// Writes the frames of every flow labelled `label` (of capture id `capture`, or of the one that has it) to
/// `path`, replacing it only with a whole dump.
#[pyfunction]
#[pyo3(signature = (db, label, path, format="pcap", both=false, capture=None, byteorder=None, nanosecond=false, source_root=None))]
#[allow(clippy::too_many_arguments)]
fn dump_label(
    py: Python<'_>,
    db: String,
    label: String,
    path: PathBuf,
    format: &str,
    both: bool,
    capture: Option<i64>,
    byteorder: Option<&str>,
    nanosecond: bool,
    source_root: Option<PathBuf>,
) -> PyResult<()> {
    let opts = dump_options(format, byteorder, nanosecond, source_root, both)?;
    dump_blocking(py, move || {
        let conn = if both {
            open_with_connections(&db)?
        } else {
            open_read(&db)?
        };
        let label = label.replace(':', ".");
        let mut group = read::select_label(&conn, capture, &label)?;
        if both {
            group = read::with_connections(&conn, group)?;
        }
        let mut prepared = dump::prepare_group(&conn, &group, &opts)?;
        let mut file = dump::file::OutputFile::create(&path)?;
        let shown = path.display().to_string();
        {
            let mut w = std::io::BufWriter::new(file.file());
            prepared.write(&opts, &mut w, &shown)?;
        }
        file.commit()?;
        Ok(())
    })
}

/// Writes `dir/{label}{ext}` for every label of capture id `capture` (overwriting, as PyPCAPKit does, when
/// `force`), with `snaplen` in pcap headers when given; returns (label, path) of each file written, in index order.
#[pyfunction]
#[pyo3(signature = (db, capture, dir, format="pcap", byteorder=None, nanosecond=false, force=true, snaplen=None))]
#[allow(clippy::too_many_arguments)]
fn dump_dir(
    py: Python<'_>,
    db: String,
    capture: i64,
    dir: PathBuf,
    format: &str,
    byteorder: Option<&str>,
    nanosecond: bool,
    force: bool,
    snaplen: Option<u32>,
) -> PyResult<Vec<(String, Option<String>)>> {
    let mut opts = dump_options(format, byteorder, nanosecond, None, false)?;
    opts.snaplen = snaplen;
    dump_blocking(py, move || {
        let conn = open_read(&db)?;
        let entries = dump::dump_dir(&conn, Some(capture), None, &dir, &opts, force)?;
        Ok(entries.into_iter().map(|e| (e.label, e.fpout)).collect())
    })
}

/// Writes the frames of every flow that matches `filter` (the first `limit` in `sort` order), merged in time
/// order, to one pcap (or pcapng) file; returns (frames, flows) written.
#[pyfunction]
#[pyo3(signature = (db, filter, path, pcapng=false, sort=None, limit=None, source_root=None))]
#[allow(clippy::too_many_arguments)]
fn export_pcap(
    py: Python<'_>,
    db: String,
    filter: String,
    path: PathBuf,
    pcapng: bool,
    sort: Option<&str>,
    limit: Option<u64>,
    source_root: Option<PathBuf>,
) -> PyResult<(u64, u64)> {
    let compiled = compile(&filter)?;
    let sort = sort_of(sort)?;
    let format = if pcapng { "pcapng" } else { "pcap" };
    let opts = dump_options(format, None, false, source_root, false)?;
    dump_blocking(py, move || {
        let conn = open_read(&db)?;
        let sel = match limit {
            None => dump::merge::Selection::Filter(&compiled),
            Some(_) => {
                let mut picked = Vec::new();
                read::search_flows(&conn, &compiled, sort, limit, &mut |r| {
                    picked.push((r.capture_id, r.flow_no));
                    Ok(())
                })?;
                dump::merge::Selection::Flows(picked)
            }
        };
        let shown = path.display().to_string();
        let mut file = dump::file::OutputFile::create(&path)?;
        let sink = std::io::BufWriter::with_capacity(1 << 16, file.file());
        let (sink, merged) = dump::merge::merge(&conn, &sel, &opts, sink, &shown)?;
        sink.into_inner()
            .map_err(|e| Failure::Other(format!("writing {shown}: {}", e.error())))?;
        file.commit()?;
        Ok((merged.frames, merged.flows))
    })
}

/// Raises `FilterError` if `filter` does not parse, `ValueError` for an unknown `sort`.
#[pyfunction]
#[pyo3(signature = (filter, sort=None))]
fn check_filter(filter: &str, sort: Option<&str>) -> PyResult<()> {
    compile(filter)?;
    sort_of(sort)?;
    Ok(())
}

/// A stop flag shared by an iterator and its reader thread.
pub(crate) type Stop = Arc<AtomicBool>;

/// Whether the reader should stop (the iterator went away or was interrupted).
pub(crate) fn stopped(s: &Stop) -> bool {
    s.load(Ordering::Relaxed)
}

/// The native module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("TraceflowError", py.get_type::<TraceflowError>())?;
    m.add("FilterError", py.get_type::<FilterError>())?;
    m.add("SCHEMA_VERSION", store::SCHEMA_VERSION)?;
    m.add_function(wrap_pyfunction!(ingest, m)?)?;
    m.add_function(wrap_pyfunction!(captures_json, m)?)?;
    m.add_function(wrap_pyfunction!(build_connections, m)?)?;
    m.add_function(wrap_pyfunction!(resolve_capture, m)?)?;
    m.add_function(wrap_pyfunction!(index, m)?)?;
    m.add_function(wrap_pyfunction!(count, m)?)?;
    m.add_function(wrap_pyfunction!(check_filter, m)?)?;
    m.add_function(wrap_pyfunction!(dump_label, m)?)?;
    m.add_function(wrap_pyfunction!(dump_dir, m)?)?;
    m.add_function(wrap_pyfunction!(export_pcap, m)?)?;
    m.add_function(wrap_pyfunction!(rows::flows, m)?)?;
    m.add_function(wrap_pyfunction!(rows::connections, m)?)?;
    m.add_class::<Flow>()?;
    m.add_class::<Connection>()?;
    m.add_class::<FlowIter>()?;
    m.add_class::<ConnIter>()?;
    Ok(())
}
