//! `traceflow serve`: the database in a web browser, read-only. An axum server on a tokio runtime: the page and
//! its scripts embedded in the binary ([`assets`]), a JSON API under `/api/` ([`api`], [`detail`],
//! [`download`]), every request checked first ([`guard`]: token cookie, Host allow-list, GET/HEAD only, strict
//! headers). Database calls run on blocking threads over a small pool of read-only connections ([`pool`]),
//! each with a deadline, and are interrupted when the client goes away.

mod api;
mod assets;
mod detail;
mod download;
mod guard;
mod pool;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;

use crate::store::{StoreError, Target};

pub use pool::ApiError;

/// How `traceflow serve` runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Where to listen.
    pub bind: SocketAddr,
    /// Start the user's browser on the URL.
    pub open: bool,
    /// Longest a database call may take.
    pub deadline: Duration,
    /// Read-only database connections kept open (and queries run at once).
    pub connections: usize,
    /// Host header values accepted besides the loopback names and the bound address.
    pub allow_hosts: Vec<String>,
    /// Where pcap downloads look for moved captures, by base name.
    pub source_root: Option<PathBuf>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The database could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Listening failed.
    #[error("cannot listen on {addr}: {source} (pick another address with --bind, e.g. --bind 127.0.0.1:0 for any free port)")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The runtime or the random token could not be set up.
    #[error("cannot start the web server: {0}")]
    Start(String),
}

/// What every request handler shares.
pub(crate) struct Shared {
    /// The database's connections.
    pub pool: pool::Pool,
    /// The token of the printed URL, hex.
    pub token: String,
    /// The cookie that carries it (named by port: cookies do not tell ports apart).
    pub cookie: String,
    /// Accepted Host header values.
    pub hosts: Vec<String>,
    /// Where pcap downloads look for moved captures.
    pub source_root: Option<PathBuf>,
}

/// A random 128-bit token, hex.
fn new_token() -> Result<String, ServeError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| ServeError::Start(format!("no random numbers: {e}")))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// The Host header values a browser sends for `addr` (DNS rebinding sends another name: refused).
fn host_names(addr: SocketAddr, extra: &[String]) -> Vec<String> {
    let port = addr.port();
    let mut v = vec![
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ];
    if !addr.ip().is_unspecified() {
        v.push(addr.to_string());
    }
    for h in extra {
        v.push(
            if h.contains(':') && !h.starts_with('[') || h.ends_with(']') && h.contains("]:") {
                h.clone()
            } else {
                format!("{h}:{port}")
            },
        );
    }
    v
}

/// The router with every route and check: what the server runs, and what the tests call.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(assets::index))
        .route("/favicon.ico", get(assets::favicon))
        .route("/assets/{name}", get(assets::file))
        .route("/assets/vendor/uplot/{name}", get(assets::vendor))
        .route("/api/flows", get(api::flows))
        .route("/api/connections", get(api::connections))
        .route("/api/count", get(api::count))
        .route("/api/histogram", get(api::histogram))
        .route("/api/groups", get(api::groups))
        .route("/api/captures", get(api::captures))
        .route("/api/command", get(api::command))
        .route("/api/flow", get(detail::flow))
        .route("/api/connection", get(detail::connection))
        .route("/api/download", get(download::download))
        .route("/api/download/check", get(download::check))
        .fallback(guard::not_found)
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            guard::check,
        ))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(1024))
        .with_state(shared)
}

/// Runs the server until Ctrl-C (or SIGTERM): prints the URL with its token on stdout, and one line on stderr
/// when it listens beyond this machine.
pub fn run(target: &Target, opts: &Options) -> Result<(), ServeError> {
    // The database must open before anything listens: a typo in --db is an error, not an empty page.
    let pool = pool::Pool::new(target.clone(), opts.connections.max(1), opts.deadline)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(opts.connections.max(1) * 2 + 2)
        .enable_all()
        .build()
        .map_err(|e| ServeError::Start(e.to_string()))?;
    let kept = rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(opts.bind)
            .await
            .map_err(|source| ServeError::Bind {
                addr: opts.bind,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ServeError::Bind {
            addr: opts.bind,
            source,
        })?;
        let token = new_token()?;
        let shared = Arc::new(Shared {
            pool,
            cookie: format!("traceflow_{}", addr.port()),
            hosts: host_names(addr, &opts.allow_hosts),
            token: token.clone(),
            source_root: opts.source_root.clone(),
        });
        let shown = if addr.ip().is_unspecified() {
            SocketAddr::new([127, 0, 0, 1].into(), addr.port())
        } else {
            addr
        };
        let url = format!("http://{shown}/?token={token}");
        if !addr.ip().is_loopback() {
            crate::msg::say(&format!(
                "listening on {addr}, beyond this machine: anyone who can reach it still needs the token"
            ));
        }
        {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{url}");
            let _ = out.flush();
        }
        if opts.open {
            open_browser(&url);
        }
        let app = router(shared.clone());
        // Requests under way get a few seconds to finish; a browser's idle keep-alive connections do not hold
        // the server up.
        let stopping = Arc::new(tokio::sync::Notify::new());
        let told = stopping.clone();
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            stop_signal().await;
            told.notify_one();
        });
        let r = tokio::select! {
            r = serve => r.map_err(|e| ServeError::Start(e.to_string())),
            () = async {
                stopping.notified().await;
                tokio::time::sleep(Duration::from_secs(3)).await;
            } => Ok(()),
        };
        r.map(|()| shared)
    });
    // Downloads and queries still under way are dropped with the runtime; the connections close after it, out
    // of any runtime (a PostgreSQL client stops a runtime of its own).
    rt.shutdown_timeout(Duration::from_secs(2));
    drop(kept?);
    Ok(())
}

/// Ctrl-C, SIGTERM or SIGHUP.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
            _ = hup.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Starts the user's browser on `url` (xdg-open, or `open` on macOS); says so when there is none.
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    if std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .is_err()
    {
        crate::msg::say(&format!(
            "--open: could not run {opener}; open the URL above yourself"
        ));
    }
}
