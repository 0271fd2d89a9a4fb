//! Slack's HTTP mode: `/slack/commands`, `/slack/events` and `/slack/interactions`, signed with
//! the signing secret. A request is answered once the app has handled it and written its
//! effects; the answer to a command goes through its response URL.

use super::EventsBody;
use super::{parse_command_form, parse_events_json, parse_interaction_form, verify_signature};
use crate::chat::inbound::{Inbound, Inbox};
use crate::store::Store;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};

/// What the Slack endpoints need: the signing secret, the store (replayed signatures) and the
/// app's inbox.
#[derive(Clone)]
pub struct SlackHttp {
    pub signing_secret: String,
    pub store: Store,
    pub inbox: Inbox,
}

/// The three Slack endpoints, for the bot's HTTP server.
pub fn routes<S>(state: SlackHttp) -> Router<S> {
    Router::new()
        .route("/slack/commands", post(commands))
        .route("/slack/events", post(events))
        .route("/slack/interactions", post(interactions))
        .with_state(state)
}

/// Checks the signature and the 5-minute window, and refuses a replay (the same timestamp and
/// signature seen before). A Slack retry is signed afresh, so it passes; its event id makes it
/// act once.
fn verify(h: &SlackHttp, headers: &HeaderMap, body: &[u8]) -> Result<(), Box<Response>> {
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
    verify_signature(
        &h.signing_secret,
        ts,
        body,
        sig,
        chrono::Utc::now().timestamp(),
    )
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

/// Hands the event to the app; acknowledged once it is handled and written. The answer goes
/// through the response URL. Not handled (the loop is gone, or stopped on a store error): 503,
/// and Slack retries.
async fn forward(h: &SlackHttp, inbound: Inbound) -> Response {
    match h.inbox.handle(inbound).await {
        Ok(_) => StatusCode::OK.into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response(),
    }
}

async fn commands(
    State(h): State<SlackHttp>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = verify(&h, &headers, &body) {
        return *r;
    }
    match parse_command_form(&body) {
        Ok(inbound) => forward(&h, inbound).await,
        Err(e) => (StatusCode::BAD_REQUEST, e).into_response(),
    }
}

async fn events(
    State(h): State<SlackHttp>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = verify(&h, &headers, &body) {
        return *r;
    }
    match parse_events_json(&body) {
        Ok(EventsBody::UrlVerification { challenge }) => {
            Json(serde_json::json!({ "challenge": challenge })).into_response()
        }
        Ok(EventsBody::Inbound(inbound)) => forward(&h, inbound).await,
        Ok(EventsBody::Ignored) => StatusCode::OK.into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, e).into_response(),
    }
}

async fn interactions(
    State(h): State<SlackHttp>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = verify(&h, &headers, &body) {
        return *r;
    }
    match parse_interaction_form(&body) {
        Ok(Some(inbound)) => forward(&h, inbound).await,
        // A button greenlight does not know: nothing to do.
        Ok(None) => StatusCode::OK.into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, e).into_response(),
    }
}
