//! The bot's HTTP server: the local channel (loopback only), `/healthz`, run pages and the
//! history API that `greenlight history` asks while the bot holds the store.

use crate::app::Handle;
use crate::chat::local;
use crate::core::{EnvName, RunId};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

pub fn router(h: Handle, local_channel: bool) -> Router {
    let slack_http = h.slack_signing_secret.is_some();
    let mut r = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/runs/{id}", get(run_json))
        .route("/runs/{id}", get(run_page))
        .route("/api/history/{env}", get(history));
    if local_channel {
        r = r
            .route("/", get(local::page))
            .route(
                "/api/local/messages",
                get(local::get_messages).post(local::post_message),
            )
            .route(
                "/api/local/reactions",
                axum::routing::post(local::add_reaction).delete(local::remove_reaction),
            )
            .route("/api/local/users", get(local::get_users));
    }
    if slack_http {
        r = r
            .route("/slack/commands", axum::routing::post(slack_commands))
            .route("/slack/events", axum::routing::post(slack_events))
            .route(
                "/slack/interactions",
                axum::routing::post(slack_interactions),
            );
    }
    r.with_state(h)
}

// ---- Slack HTTP mode ----------------------------------------------------------------------

/// Checks the signature and the 5-minute window, and refuses a replay (the same timestamp and
/// signature seen before). A Slack retry is signed afresh, so it passes; its event id makes it
/// act once.
fn slack_verify(
    h: &Handle,
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Result<(), Box<Response>> {
    let secret = h.slack_signing_secret.as_deref().unwrap_or_default();
    let get = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("");
    let (ts, sig) = (get("x-slack-request-timestamp"), get("x-slack-signature"));
    let unauthorized = |why: String| {
        tracing::warn!(reason = %why, "slack request refused");
        Box::new(
            (
                StatusCode::UNAUTHORIZED,
                Json(serde_json::json!({"error": why})),
            )
                .into_response(),
        )
    };
    crate::chat::slack::verify_signature(secret, ts, body, sig, chrono::Utc::now().timestamp())
        .map_err(unauthorized)?;
    match h.store.remember_once(
        "slack-signature",
        &format!("{ts}:{sig}"),
        chrono::Utc::now(),
    ) {
        Ok(true) => Ok(()),
        Ok(false) => Err(unauthorized(
            "replayed request (this timestamp and signature were seen before)".into(),
        )),
        Err(e) => Err(Box::new(
            (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
        )),
    }
}

async fn slack_forward(h: &Handle, inbound: crate::chat::slack::SlackInbound) -> Response {
    let (tx, rx) = tokio::sync::oneshot::channel();
    if h.tx
        .send(crate::app::AppEvent::Slack {
            inbound,
            done: Some(tx),
        })
        .await
        .is_err()
        || rx.await.is_err()
    {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    // Acknowledged once written; the answer goes through the response URL.
    StatusCode::OK.into_response()
}

async fn slack_commands(
    State(h): State<Handle>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    slack_form(h, headers, body, crate::chat::slack::parse_command_form).await
}

/// A signed form-encoded Slack request (a slash command or an interaction), parsed and handed
/// to the loop.
async fn slack_form(
    h: Handle,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
    parse: fn(&[u8]) -> Result<crate::chat::slack::SlackInbound, String>,
) -> Response {
    if let Err(r) = slack_verify(&h, &headers, &body) {
        return *r;
    }
    match parse(&body) {
        Ok(inbound) => slack_forward(&h, inbound).await,
        Err(e) => (StatusCode::BAD_REQUEST, e).into_response(),
    }
}

async fn slack_events(
    State(h): State<Handle>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = slack_verify(&h, &headers, &body) {
        return *r;
    }
    match crate::chat::slack::parse_events_json(&body) {
        Ok(crate::chat::slack::EventsBody::UrlVerification { challenge }) => {
            Json(serde_json::json!({ "challenge": challenge })).into_response()
        }
        Ok(crate::chat::slack::EventsBody::Inbound(inbound)) => slack_forward(&h, inbound).await,
        Ok(crate::chat::slack::EventsBody::Ignored) => StatusCode::OK.into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, e).into_response(),
    }
}

async fn slack_interactions(
    State(h): State<Handle>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    slack_form(h, headers, body, crate::chat::slack::parse_interaction_form).await
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
