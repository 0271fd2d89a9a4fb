//! The skeleton both platform fakes (`fake_slack`, `fake_discord`) share: a server on
//! 127.0.0.1:0, scripted faults queued per route, waiting with a deadline, and JSON, error and
//! rate-limit answers. The wire shapes (bodies, headers, routes) stay in each fake.

#![allow(dead_code)]

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Binds 127.0.0.1:0 for the fake called `fake`.
pub async fn bind(fake: &str) -> (tokio::net::TcpListener, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{fake}: bind 127.0.0.1:0: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("{fake}: local addr: {e}"));
    (listener, addr)
}

/// Scripted failures, queued per route: each call of the route takes the next one.
#[derive(Debug)]
pub struct Faults<K, F>(HashMap<K, VecDeque<F>>);

impl<K, F> Default for Faults<K, F> {
    fn default() -> Self {
        Faults(HashMap::new())
    }
}

impl<K: Eq + Hash, F> Faults<K, F> {
    /// The next call of `route` fails with `fault` (after those queued before it).
    pub fn push(&mut self, route: K, fault: F) {
        self.0.entry(route).or_default().push_back(fault);
    }

    /// The fault for this call of `route`, if one is queued.
    pub fn next(&mut self, route: &K) -> Option<F> {
        self.0.get_mut(route).and_then(VecDeque::pop_front)
    }
}

/// Polls `f` until it returns `Some`, or panics after `timeout` naming the fake, `what` it
/// waited for, and the fake's state (`dump`).
pub async fn wait_for<T>(
    fake: &str,
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> Option<T>,
    dump: impl FnOnce() -> String,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!(
                "{fake}: timed out after {timeout:?} waiting for {what}\n{}",
                dump()
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `body` as `application/json` with `status`.
pub fn json_response(status: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// HTTP 429 with `Retry-After` (whole seconds, rounded up) and the platform's JSON body.
pub fn rate_limited(retry_after_secs: f64, body: &Value) -> Response {
    let mut resp = json_response(429, body);
    resp.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from_str(&(retry_after_secs.ceil() as u64).to_string())
            .unwrap_or(HeaderValue::from_static("1")),
    );
    resp
}

/// At most `n` characters of `s`, with `...` when cut (for dumps).
pub fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}...", s.chars().take(n).collect::<String>())
    }
}

fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

pub fn unix_secs() -> u64 {
    since_epoch().as_secs()
}

pub fn unix_ms() -> u64 {
    since_epoch().as_millis() as u64
}
