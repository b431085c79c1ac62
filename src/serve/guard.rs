//! What every request goes through before its handler: GET and HEAD only, a Host header from the allow-list
//! (a DNS-rebinding page sends its own name), and the token: given once in the printed URL (`?token=`), then
//! swapped for an HttpOnly, SameSite=Strict cookie and a redirect to the same page without it. Every response
//! gets the strict headers; the API's are never cached.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Shared;

/// The page's Content-Security-Policy: its own scripts and styles only, nothing inline, no frames.
pub const CSP: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       connect-src 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Equal, in a time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of cookie `name` in the request's Cookie headers.
fn cookie<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `token=` of the query string, and the query without it.
fn token_in_query(query: &str) -> (Option<&str>, String) {
    let mut token = None;
    let rest: Vec<&str> = query
        .split('&')
        .filter(|kv| match kv.strip_prefix("token=") {
            Some(t) => {
                token = Some(t);
                false
            }
            None => !kv.is_empty(),
        })
        .collect();
    (token, rest.join("&"))
}

fn refuse(status: StatusCode, text: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{text}\n"),
    )
        .into_response()
}

/// The checks, then the handler, then the headers.
pub async fn check(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let mut resp = gate(&shared, req, next).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The longest request target taken (path and query), in bytes: a filter of about two thousand terms. hyper
/// refuses past 64 KiB on its own, with no word of why.
pub const MAX_TARGET: usize = 60 * 1024;

/// The most header bytes taken (names and values).
pub const MAX_HEADERS: usize = 64 * 1024;

/// A request too large to take, with a line saying which limit and what to do.
fn too_large(req: &Request) -> Option<Response> {
    let target = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target > MAX_TARGET {
        return Some(refuse(
            StatusCode::URI_TOO_LONG,
            &format!(
                "the request is {target} bytes long, more than the {MAX_TARGET} taken: shorten the filter \
                 (a net instead of many hosts), or run it as `traceflow flows -F FILE`"
            ),
        ));
    }
    let body = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() != "0")
        || req.headers().contains_key(header::TRANSFER_ENCODING);
    if body {
        return Some(refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "traceflow serve takes no request body: every parameter goes in the URL",
        ));
    }
    let headers: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    if headers > MAX_HEADERS {
        return Some(refuse(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            &format!(
                "the request's headers are {headers} bytes, more than the {MAX_HEADERS} taken"
            ),
        ));
    }
    None
}

async fn gate(shared: &Shared, req: Request, next: Next) -> Response {
    if let Some(r) = too_large(&req) {
        return r;
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "traceflow serve is read-only: GET and HEAD only",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !shared.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
        return refuse(
            StatusCode::MISDIRECTED_REQUEST,
            "this Host is not one traceflow serve answers to (open the URL it printed, or add the name with --allow-host)",
        );
    }
    let query = req.uri().query().unwrap_or("");
    let (given, rest) = token_in_query(query);
    if let Some(t) = given {
        if !same(t.as_bytes(), shared.token.as_bytes()) {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "wrong token: open the URL traceflow serve printed",
            );
        }
        let to = if rest.is_empty() {
            req.uri().path().to_string()
        } else {
            format!("{}?{rest}", req.uri().path())
        };
        let set = format!(
            "{}={}; HttpOnly; SameSite=Strict; Path=/",
            shared.cookie, shared.token
        );
        let mut r = StatusCode::SEE_OTHER.into_response();
        if let (Ok(loc), Ok(c)) = (HeaderValue::from_str(&to), HeaderValue::from_str(&set)) {
            r.headers_mut().insert(header::LOCATION, loc);
            r.headers_mut().insert(header::SET_COOKIE, c);
        }
        return r;
    }
    match cookie(&req, &shared.cookie) {
        Some(t) if same(t.as_bytes(), shared.token.as_bytes()) => next.run(req).await,
        _ => refuse(
            StatusCode::UNAUTHORIZED,
            "no token: open the URL traceflow serve printed (it has ?token=...)",
        ),
    }
}

/// Anything not routed.
pub async fn not_found() -> Response {
    refuse(StatusCode::NOT_FOUND, "no such page")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_leaves_the_query_and_the_rest_stays() {
        assert_eq!(
            token_in_query("a=1&token=abc&b=2"),
            (Some("abc"), "a=1&b=2".to_string())
        );
        assert_eq!(token_in_query(""), (None, String::new()));
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
    }
}
