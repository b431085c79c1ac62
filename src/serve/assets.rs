//! The page, its script and styles, and the vendored uPlot, embedded in the binary: the server needs no files
//! and no build step.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::guard;

const INDEX: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");
const UPLOT_JS: &str = include_str!("assets/vendor/uplot/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("assets/vendor/uplot/uPlot.min.css");
const UPLOT_LICENSE: &str = include_str!("assets/vendor/uplot/LICENSE");

fn send(ctype: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, ctype)], body).into_response()
}

/// `GET /`: the page (every view is this page; the URL's query says which).
pub async fn index() -> Response {
    send("text/html; charset=utf-8", INDEX)
}

/// `GET /favicon.ico`, which browsers ask for by themselves: nothing.
pub async fn favicon() -> Response {
    axum::http::StatusCode::NO_CONTENT.into_response()
}

/// `GET /assets/NAME`.
pub async fn file(Path(name): Path<String>) -> Response {
    match name.as_str() {
        "app.js" => send("text/javascript; charset=utf-8", APP_JS),
        "app.css" => send("text/css; charset=utf-8", APP_CSS),
        _ => guard::not_found().await,
    }
}

/// `GET /assets/vendor/uplot/NAME`.
pub async fn vendor(Path(name): Path<String>) -> Response {
    match name.as_str() {
        "uPlot.iife.min.js" => send("text/javascript; charset=utf-8", UPLOT_JS),
        "uPlot.min.css" => send("text/css; charset=utf-8", UPLOT_CSS),
        "LICENSE" => send("text/plain; charset=utf-8", UPLOT_LICENSE),
        _ => guard::not_found().await,
    }
}
