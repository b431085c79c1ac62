//! The rows of `Database.flows()` and `Database.connections()`: light immutable objects with the CLI's JSON field
//! names, streamed from a reader thread in bounded batches so that memory does not grow with the matches.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use traceflow::store::read::{self, ConnRow, FlowRow, FlowSort};
use traceflow::store::QueryError;

use super::{
    compile, open_read, open_with_connections, sort_of, stopped, Failure, Stop, TraceflowError,
};

/// Rows per batch sent from the reader thread; a few batches in flight bound the memory.
const BATCH: usize = 4096;

/// What the reader thread sends: a batch of rows, or the error that ended the search.
type Batch<T> = Result<Vec<T>, String>;

/// Runs `search` on a thread of its own, sending its rows in batches to the returned channel. The search stops
/// at its next row once the receiver is gone or `stop` is set.
fn spawn_reader<T: Send + 'static>(
    stop: Stop,
    search: impl FnOnce(&mut dyn FnMut(T) -> Result<(), QueryError>) -> Result<(), Failure>
        + Send
        + 'static,
) -> Receiver<Batch<T>> {
    let (tx, rx): (Sender<Batch<T>>, _) = crossbeam_channel::bounded(4);
    std::thread::spawn(move || {
        let gone = AtomicBool::new(false);
        let mut batch = Vec::with_capacity(BATCH);
        let r = search(&mut |row| {
            batch.push(row);
            if batch.len() == BATCH {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                if stopped(&stop) || tx.send(Ok(full)).is_err() {
                    gone.store(true, Ordering::Relaxed);
                    return Err(QueryError::Corrupt("the reader went away".into()));
                }
            }
            Ok(())
        });
        if gone.load(Ordering::Relaxed) {
            return;
        }
        match r {
            Ok(()) => {
                if !batch.is_empty() {
                    let _ = tx.send(Ok(batch));
                }
            }
            Err(Failure::Exists(m) | Failure::Other(m)) => {
                let _ = tx.send(Err(m));
            }
        }
    });
    rx
}

/// The receiving end shared by both iterators: the next row, waiting without the GIL and polling for Ctrl-C.
struct Stream<T> {
    rx: Receiver<Batch<T>>,
    buf: std::vec::IntoIter<T>,
    stop: Stop,
    done: bool,
}

impl<T: Send> Stream<T> {
    fn new(rx: Receiver<Batch<T>>, stop: Stop) -> Stream<T> {
        Stream {
            rx,
            buf: Vec::new().into_iter(),
            stop,
            done: false,
        }
    }

    fn next(&mut self, py: Python<'_>) -> PyResult<Option<T>> {
        loop {
            if let Some(r) = self.buf.next() {
                return Ok(Some(r));
            }
            if self.done {
                return Ok(None);
            }
            let got = match self.rx.try_recv() {
                Ok(b) => Ok(b),
                Err(_) => {
                    let rx = &self.rx;
                    py.allow_threads(|| rx.recv_timeout(Duration::from_millis(50)))
                }
            };
            match got {
                Ok(Ok(batch)) => self.buf = batch.into_iter(),
                Ok(Err(m)) => {
                    self.done = true;
                    return Err(TraceflowError::new_err(m));
                }
                Err(RecvTimeoutError::Timeout) => {
                    if let Err(e) = py.check_signals() {
                        self.finish();
                        return Err(e);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => self.done = true,
            }
        }
    }

    fn finish(&mut self) {
        self.done = true;
        self.stop.store(true, Ordering::Relaxed);
        self.buf = Vec::new().into_iter();
    }
}

impl<T> Drop for Stream<T> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Iterates over the flows of a search, one [`Flow`] at a time.
#[pyclass(module = "traceflow._native")]
pub struct FlowIter(Stream<FlowRow>);

#[pymethods]
impl FlowIter {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<Flow>> {
        Ok(self.0.next(py)?.map(Flow))
    }

    /// Stops the search; the iterator then ends.
    fn close(&mut self) {
        self.0.finish();
    }
}

/// Starts a flow search: every flow that matches `filter`, in `sort` order, at most `limit`.
#[pyfunction]
#[pyo3(signature = (db, filter="", sort=None, limit=None))]
pub fn flows(
    db: String,
    filter: &str,
    sort: Option<&str>,
    limit: Option<u64>,
) -> PyResult<FlowIter> {
    let compiled = compile(filter)?;
    let sort: FlowSort = sort_of(sort)?;
    let stop: Stop = Arc::default();
    let rx = spawn_reader(stop.clone(), move |visit| {
        let conn = open_read(&db)?;
        Ok(read::search_flows(&conn, &compiled, sort, limit, visit)?)
    });
    Ok(FlowIter(Stream::new(rx, stop)))
}

/// Iterates over the connections of a search, one [`Connection`] at a time.
#[pyclass(module = "traceflow._native")]
pub struct ConnIter(Stream<ConnRow>);

#[pymethods]
impl ConnIter {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<Connection>> {
        Ok(self.0.next(py)?.map(Connection))
    }

    /// Stops the search; the iterator then ends.
    fn close(&mut self) {
        self.0.finish();
    }
}

/// Starts a connection search: every connection with a flow that matches `filter`.
#[pyfunction]
#[pyo3(signature = (db, filter="", sort=None, limit=None))]
pub fn connections(
    db: String,
    filter: &str,
    sort: Option<&str>,
    limit: Option<u64>,
) -> PyResult<ConnIter> {
    let compiled = compile(filter)?;
    let sort: FlowSort = sort_of(sort)?;
    let stop: Stop = Arc::default();
    let rx = spawn_reader(stop.clone(), move |visit| {
        let conn = open_with_connections(&db)?;
        Ok(read::search_connections(
            &conn, &compiled, sort, limit, visit,
        )?)
    });
    Ok(ConnIter(Stream::new(rx, stop)))
}

/// One flow (one direction of a TCP connection), with the fields of `traceflow flows --format json`.
#[pyclass(frozen, module = "traceflow._native")]
pub struct Flow(FlowRow);

/// The field names of a [`Flow`], in the CLI's JSON order.
const FLOW_FIELDS: [&str; 14] = [
    "capture",
    "label",
    "src",
    "sport",
    "dst",
    "dport",
    "first_time",
    "last_time",
    "duration",
    "packets",
    "bytes",
    "payload_bytes",
    "flags",
    "state",
];

#[pymethods]
impl Flow {
    /// The field names, in the CLI's JSON order.
    #[classattr]
    const FIELDS: [&'static str; 14] = FLOW_FIELDS;

    /// The capture's name.
    #[getter]
    fn capture(&self) -> &str {
        &self.0.capture
    }
    /// TraceFlow's label.
    #[getter]
    fn label(&self) -> &str {
        self.0.label()
    }
    /// Source address.
    #[getter]
    fn src(&self) -> &str {
        self.0.src()
    }
    /// Source port.
    #[getter]
    fn sport(&self) -> u16 {
        self.0.sport
    }
    /// Destination address.
    #[getter]
    fn dst(&self) -> &str {
        self.0.dst()
    }
    /// Destination port.
    #[getter]
    fn dport(&self) -> u16 {
        self.0.dport
    }
    /// First frame time, RFC 3339 UTC with the capture's precision.
    #[getter]
    fn first_time(&self) -> String {
        self.0.first_time()
    }
    /// Last frame time, likewise.
    #[getter]
    fn last_time(&self) -> String {
        self.0.last_time()
    }
    /// Last minus first frame time in seconds, as exact decimal text.
    #[getter]
    fn duration(&self) -> String {
        self.0.duration()
    }
    /// Frames.
    #[getter]
    fn packets(&self) -> i64 {
        self.0.packets
    }
    /// Sum of the frames' original lengths.
    #[getter]
    fn bytes(&self) -> i64 {
        self.0.bytes
    }
    /// Sum of the TCP segment lengths.
    #[getter]
    fn payload_bytes(&self) -> i64 {
        self.0.payload_bytes
    }
    /// The TCP flags seen, as tshark names them (`SYN,ACK,FIN`).
    #[getter]
    fn flags(&self) -> String {
        read::flag_names(self.0.flag_bits)
    }
    /// `closed` (a FIN closed it) or `open`.
    #[getter]
    fn state(&self) -> &'static str {
        self.0.state()
    }
    /// First frame time in ns since the epoch.
    #[getter]
    fn first_ns(&self) -> i64 {
        self.0.first_ns
    }
    /// Last frame time in ns since the epoch.
    #[getter]
    fn last_ns(&self) -> i64 {
        self.0.last_ns
    }
    /// The capture's id in the database.
    #[getter]
    fn capture_id(&self) -> i64 {
        self.0.capture_id
    }

    /// The row as a dict with the CLI's JSON field names and values.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("capture", self.capture())?;
        d.set_item("label", self.label())?;
        d.set_item("src", self.src())?;
        d.set_item("sport", self.sport())?;
        d.set_item("dst", self.dst())?;
        d.set_item("dport", self.dport())?;
        d.set_item("first_time", self.first_time())?;
        d.set_item("last_time", self.last_time())?;
        d.set_item("duration", self.duration())?;
        d.set_item("packets", self.packets())?;
        d.set_item("bytes", self.bytes())?;
        d.set_item("payload_bytes", self.payload_bytes())?;
        d.set_item("flags", self.flags())?;
        d.set_item("state", self.state())?;
        Ok(d)
    }

    /// The row as one line of `traceflow flows --format jsonl`.
    fn to_json(&self) -> String {
        let mut out = Vec::new();
        self.0.write_json(&mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    fn __repr__(&self) -> String {
        format!(
            "Flow(label={:?}, capture={:?}, packets={}, bytes={}, state={:?})",
            self.label(),
            self.capture(),
            self.0.packets,
            self.0.bytes,
            self.state()
        )
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.downcast::<Flow>().is_ok_and(|o| o.get().0 == self.0)
    }

    fn __hash__(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (self.0.capture_id, self.0.flow_no).hash(&mut h);
        h.finish()
    }
}

/// One TCP connection (both directions), with the fields of `traceflow connections --format json`.
#[pyclass(frozen, module = "traceflow._native")]
pub struct Connection(ConnRow);

#[pymethods]
impl Connection {
    /// The row as a dict with the CLI's JSON field names and values.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        if let Ok(serde_json::Value::Object(m)) = serde_json::to_value(&self.0) {
            for (k, v) in m {
                d.set_item(k, json_to_py(py, v)?)?;
            }
        }
        Ok(d)
    }

    /// The row as one line of `traceflow connections --format jsonl`.
    fn to_json(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_default()
    }

    /// The capture's id in the database.
    #[getter]
    fn capture_id(&self) -> i64 {
        self.0.capture_id
    }

    fn __getattr__(&self, py: Python<'_>, name: &str) -> PyResult<PyObject> {
        if let Ok(serde_json::Value::Object(mut m)) = serde_json::to_value(&self.0) {
            if let Some(v) = m.remove(name) {
                return json_to_py(py, v);
            }
        }
        Err(pyo3::exceptions::PyAttributeError::new_err(format!(
            "'Connection' object has no attribute '{name}'"
        )))
    }

    fn __repr__(&self) -> String {
        format!(
            "Connection(capture={:?}, conn={}, orig={}:{}, resp={}:{})",
            self.0.capture, self.0.conn, self.0.orig_h, self.0.orig_p, self.0.resp_h, self.0.resp_p
        )
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .downcast::<Connection>()
            .is_ok_and(|o| o.get().0 == self.0)
    }
}

/// A JSON value as the Python value `json.loads` gives (lists become tuples: rows are immutable).
fn json_to_py(py: Python<'_>, v: serde_json::Value) -> PyResult<PyObject> {
    use serde_json::Value;
    Ok(match v {
        Value::Null => py.None(),
        Value::Bool(b) => b.into_pyobject(py)?.to_owned().into_any().unbind(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.into_pyobject(py)?.into_any().unbind(),
            None => n
                .as_f64()
                .unwrap_or(0.0)
                .into_pyobject(py)?
                .into_any()
                .unbind(),
        },
        Value::String(s) => s.into_pyobject(py)?.into_any().unbind(),
        Value::Array(a) => {
            let items = a
                .into_iter()
                .map(|x| json_to_py(py, x))
                .collect::<PyResult<Vec<_>>>()?;
            PyTuple::new(py, items)?.into_any().unbind()
        }
        Value::Object(m) => {
            let d = PyDict::new(py);
            for (k, x) in m {
                d.set_item(k, json_to_py(py, x)?)?;
            }
            d.into_any().unbind()
        }
    })
}
