//! The database side of the server: a small pool of read-only connections, and [`Pool::run`], which runs one
//! database call on a blocking thread with a deadline and interrupts it when the request is dropped (the client
//! went away) or the deadline passes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::store::{Db, Interrupter, StoreError, Target};

/// An API error: a status and a one-line message, as JSON; a filter error adds where it is wrong.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong and what to do.
    pub message: String,
    /// A bad filter: the column (from 0, in characters) and the caret line under it.
    pub filter: Option<crate::filter::FilterError>,
}

impl ApiError {
    /// A 400 with `message`.
    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            filter: None,
        }
    }

    /// A 404 with `message`.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
            filter: None,
        }
    }

    /// A 500 with `message` (a database error).
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
            filter: None,
        }
    }
}

impl From<crate::filter::FilterError> for ApiError {
    fn from(e: crate::filter::FilterError) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: format!("bad filter at column {}: {}", e.at + 1, e.message),
            filter: Some(e),
        }
    }
}

impl From<crate::store::QueryError> for ApiError {
    fn from(e: crate::store::QueryError) -> ApiError {
        ApiError::internal(e.to_string())
    }
}

impl From<crate::dump::DumpError> for ApiError {
    fn from(e: crate::dump::DumpError) -> ApiError {
        ApiError::internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({ "error": self.message });
        if let Some(f) = &self.filter {
            body["filter"] = serde_json::json!({
                "message": f.message,
                "column": f.text[..f.at.min(f.text.len())].chars().count(),
                "text": f.text,
                "caret": f.caret,
            });
        }
        (self.status, axum::Json(body)).into_response()
    }
}

/// Calls that may wait for a turn, per connection: beyond them a request is refused at once (503) rather than
/// piling up sockets and memory behind queries that each may take the whole deadline.
pub const WAITING_PER_READER: usize = 16;

/// Read-only connections to the database, opened as needed up to `max`, each used by one call at a time.
pub struct Pool {
    target: Target,
    idle: Mutex<Vec<Db>>,
    /// Calls running at once, at most `max` (the others wait their turn).
    slots: Arc<tokio::sync::Semaphore>,
    max: usize,
    /// Calls waiting for a turn now.
    waiting: Arc<std::sync::atomic::AtomicUsize>,
    deadline: Duration,
}

/// Counts a call as waiting while it lives.
struct Waiting(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Pool {
    /// Opens the first connection (so that a bad --db fails at start).
    pub fn new(target: Target, max: usize, deadline: Duration) -> Result<Pool, StoreError> {
        let first = Db::open_read(&target)?;
        Ok(Pool {
            target,
            idle: Mutex::new(vec![first]),
            slots: Arc::new(tokio::sync::Semaphore::new(max)),
            max,
            waiting: Arc::default(),
            deadline,
        })
    }

    /// The database as messages name it (a URL without its password).
    pub fn shown(&self) -> String {
        self.target.shown()
    }

    /// How long a database call may take.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// A connection from the pool, or a new one.
    pub fn take(&self) -> Result<Db, ApiError> {
        let idle = self.idle.lock().ok().and_then(|mut v| v.pop());
        match idle {
            Some(db) => Ok(db),
            None => Db::open_read(&self.target).map_err(|e| ApiError::internal(e.to_string())),
        }
    }

    /// Gives a connection back.
    pub fn give(&self, db: Db) {
        if let Ok(mut v) = self.idle.lock() {
            v.push(db);
        }
    }

    /// A turn to run a call (one of `max`), waited for; refused (503) when [`WAITING_PER_READER`] calls per
    /// connection already wait. A call whose client goes away stops waiting.
    pub async fn slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        use std::sync::atomic::Ordering;
        if let Ok(p) = self.slots.clone().try_acquire_owned() {
            return Ok(p);
        }
        let most = self.max * WAITING_PER_READER;
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= most {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: format!(
                    "busy: {} queries are running and {most} waiting, the most this server takes (--readers {}); \
                     try again shortly",
                    self.max, self.max
                ),
                filter: None,
            });
        }
        let _waiting = Waiting(self.waiting.clone());
        self.slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ApiError::internal("the server is stopping"))
    }
}

/// Interrupts the call when dropped armed: the handler's future is dropped when its client goes away. The
/// blocking thread puts the interrupter in once it has its connection.
#[derive(Clone, Default)]
pub struct StopOnDrop(Arc<Mutex<Option<Interrupter>>>);

impl StopOnDrop {
    /// Arms it with `i`.
    pub fn arm(&self, i: Interrupter) {
        if let Ok(mut g) = self.0.lock() {
            *g = Some(i);
        }
    }

    /// Interrupts now.
    pub fn fire(&self) {
        if let Some(i) = self.0.lock().ok().and_then(|mut g| g.take()) {
            i.interrupt();
        }
    }

    /// The call finished: nothing to interrupt.
    pub fn disarm(&self) {
        if let Ok(mut g) = self.0.lock() {
            *g = None;
        }
    }
}

/// Fires its [`StopOnDrop`] when dropped.
pub struct FireOnDrop(pub StopOnDrop);

impl Drop for FireOnDrop {
    fn drop(&mut self) {
        self.0.fire();
    }
}

/// Runs `f` on a connection of `shared`'s pool on a blocking thread: at most the pool's deadline, interrupted
/// when the returned future is dropped. Connections are opened and closed on blocking threads only (the
/// PostgreSQL client runs a runtime of its own, which must not start or stop inside this one).
pub async fn run<T, F>(shared: &Arc<super::Shared>, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Db) -> Result<T, ApiError> + Send + 'static,
{
    let permit = shared.pool.slot().await?;
    let stop = StopOnDrop::default();
    let guard = FireOnDrop(stop.clone());
    let owner = shared.clone();
    let task = tokio::task::spawn_blocking(move || {
        let db = owner.pool.take()?;
        stop.arm(db.interrupter());
        let r = db
            .renew_snapshot()
            .map_err(ApiError::from)
            .and_then(|()| f(&db));
        db.release_snapshot();
        stop.disarm();
        owner.pool.give(db);
        drop(permit);
        r
    });
    match tokio::time::timeout(shared.pool.deadline(), task).await {
        Ok(Ok(r)) => {
            guard.0.disarm();
            r
        }
        Ok(Err(e)) => {
            guard.0.disarm();
            Err(ApiError::internal(format!("the query failed: {e}")))
        }
        Err(_) => {
            guard.0.fire();
            Err(ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: format!(
                    "the query took longer than {} s and was stopped: narrow the filter (a time window, a host)",
                    shared.pool.deadline().as_secs_f64()
                ),
                filter: None,
            })
        }
    }
}
