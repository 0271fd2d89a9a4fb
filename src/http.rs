//! The bot's HTTP server: the local channel (loopback only), `/healthz`, run pages and the
//! history API that `greenlight history` asks while the bot holds the store, and Slack's HTTP
//! mode endpoints (`chat::slack::http`).

use crate::app::Handle;
use crate::chat::local;
use crate::core::{EnvName, RunId};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use std::net::SocketAddr;

/// The HTTP routes. `local_channel` is the bound (loopback) address when the local channel is
/// served: its page and API answer only requests addressed to it (see `local_guard`).
pub fn router(h: Handle, local_channel: Option<SocketAddr>) -> Router {
    let mut r = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/runs/{id}", get(run_json))
        .route("/runs/{id}", get(run_page))
        .route("/api/history/{env}", get(history));
    if let Some(addr) = local_channel {
        let api = local::LocalApi {
            inbox: h.inbox(),
            store: h.store.clone(),
            cfg: h.cfg.clone(),
        };
        let local = Router::new()
            .route("/", get(local::page))
            .route(
                "/api/local/messages",
                get(local::get_messages).post(local::post_message),
            )
            .route(
                "/api/local/reactions",
                axum::routing::post(local::add_reaction).delete(local::remove_reaction),
            )
            .route("/api/local/users", get(local::get_users))
            .route_layer(axum::middleware::from_fn_with_state(addr, local_guard))
            .layer(axum::extract::DefaultBodyLimit::max(local::BODY_LIMIT))
            .with_state(api);
        r = r.merge(local);
    }
    if let Some(secret) = &h.slack_signing_secret {
        r = r.merge(crate::chat::slack::http::routes(
            crate::chat::slack::http::SlackHttp {
                signing_secret: secret.clone(),
                store: h.store.clone(),
                inbox: h.inbox(),
            },
        ));
    }
    r.with_state(h)
}

// ---- local channel guard ------------------------------------------------------------------

/// The local channel's users are not authenticated, so it answers only what its own page (or a
/// script on this machine) sends: the `Host` must name the bound address (or localhost,
/// 127.0.0.1, [::1]) with the bound port, which defeats DNS rebinding; an `Origin`, when
/// present, must be the page's own; a POST or DELETE must be `application/json`, which a
/// foreign page cannot send without a CORS preflight that nothing here answers.
async fn local_guard(
    State(addr): State<SocketAddr>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let headers = req.headers();
    let header = |k: axum::http::HeaderName| {
        headers
            .get(k)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).to_string())
    };
    let host =
        header(axum::http::header::HOST).or_else(|| req.uri().authority().map(|a| a.to_string()));
    let refuse = |status: StatusCode, why: String| {
        tracing::warn!(reason = %why, "local channel request refused");
        (status, Json(serde_json::json!({"error": why}))).into_response()
    };
    match host {
        Some(h) if local_authority(&h, addr) => {}
        Some(h) => {
            return refuse(
                StatusCode::FORBIDDEN,
                format!(
                "refused: Host \"{}\" is not this bot's local address (use http://127.0.0.1:{})",
                clip(&h),
                addr.port()
            ),
            )
        }
        None => {
            return refuse(
                StatusCode::FORBIDDEN,
                "refused: the request has no Host header".into(),
            )
        }
    }
    if let Some(origin) = header(axum::http::header::ORIGIN) {
        let ok = origin
            .strip_prefix("http://")
            .is_some_and(|a| local_authority(a, addr));
        if !ok {
            return refuse(
                StatusCode::FORBIDDEN,
                format!(
                    "refused: requests from origin \"{}\" are not accepted; the local channel answers its own page only",
                    clip(&origin)
                ),
            );
        }
    }
    if !matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    ) {
        let json = header(axum::http::header::CONTENT_TYPE).is_some_and(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/json")
        });
        if !json {
            return refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the body must be JSON sent with Content-Type: application/json".into(),
            );
        }
    }
    next.run(req).await
}

/// Is `authority` (`host[:port]`, as in a Host header or an Origin) the bound address, or
/// localhost / 127.0.0.1 / [::1], on the bound port?
fn local_authority(authority: &str, addr: SocketAddr) -> bool {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        match rest.split_once(']') {
            Some((h, "")) => (format!("[{h}]"), None),
            Some((h, p)) => match p.strip_prefix(':') {
                Some(p) => (format!("[{h}]"), Some(p)),
                None => return false,
            },
            None => return false,
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    let port = match port {
        None => 80,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            match p.parse::<u16>() {
                Ok(p) => p,
                Err(_) => return false,
            }
        }
        Some(_) => return false,
    };
    if port != addr.port() {
        return false;
    }
    let bound = match addr.ip() {
        std::net::IpAddr::V4(ip) => ip.to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
    };
    let host = host.to_ascii_lowercase();
    host == "localhost" || host == "127.0.0.1" || host == "[::1]" || host == bound
}

/// A header value shortened for an error line.
fn clip(s: &str) -> String {
    if s.chars().count() > 80 {
        format!("{}...", s.chars().take(80).collect::<String>())
    } else {
        s.to_string()
    }
}

/// Ready when the store answers, every configured platform is connected, and no platform's
/// deliverer is stalled (its last attempt failed with a transport error, a timeout or a 5xx while
/// messages wait). Otherwise 503 with one line saying why.
async fn readyz(State(h): State<Handle>) -> Response {
    let mut problems = Vec::new();
    if let Err(e) = h.store.next_run() {
        problems.push(format!("store: {e}"));
    }
    problems.extend(h.telemetry.problems(|p| h.store.outbox_len(p)));
    if problems.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", problems.join("; ")),
        )
            .into_response()
    }
}

async fn metrics(State(h): State<Handle>) -> Response {
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        h.telemetry.encode(),
    )
        .into_response()
}

fn not_found(what: String) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({"error": what})),
    )
        .into_response()
}

async fn run_json(State(h): State<Handle>, Path(id): Path<u64>) -> Response {
    match (h.store.run(RunId(id)), h.store.events(RunId(id))) {
        (Ok(Some(run)), Ok(events)) => {
            Json(serde_json::json!({"run": run, "events": events})).into_response()
        }
        _ => not_found(format!("no run {id}")),
    }
}

async fn run_page(State(h): State<Handle>, Path(id): Path<u64>) -> Response {
    match (h.store.run(RunId(id)), h.store.events(RunId(id))) {
        (Ok(Some(run)), Ok(events)) => {
            let tz = h.cfg.bot.timezone;
            let mut s = format!(
                "{}\n\nstatus:\n{}\n\nevents:\n",
                run.summary_line(tz),
                run.status.join("\n")
            );
            for e in events {
                s.push_str(&format!(
                    "{} {} {}\n",
                    e.at.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S %Z"),
                    e.who.map(|w| w.0).unwrap_or_else(|| "greenlight".into()),
                    e.what
                ));
            }
            ([("content-type", "text/plain; charset=utf-8")], s).into_response()
        }
        _ => not_found(format!("no run {id}")),
    }
}

#[derive(Deserialize)]
struct HistoryQuery {
    limit: Option<usize>,
}

async fn history(
    State(h): State<Handle>,
    Path(env): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Response {
    let env = EnvName::new(env);
    if !h.cfg.environments.contains_key(&env) {
        return not_found(format!(
            "unknown environment \"{env}\" (known: {})",
            h.cfg.env_names()
        ));
    }
    match h.store.history(&env, q.limit.unwrap_or(usize::MAX)) {
        Ok(runs) => Json(runs).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(serde_json::json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}
