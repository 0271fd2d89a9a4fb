//! Slack adapter on slack-morphism: settings, pure conversion of Slack payloads (slash commands, events, interactions, request signatures) into `SlackInbound`, and the IO side (Web API client, Socket Mode listener).
//!
//! Shape: config (`SlackSettings`), pure conversion (`parse_*`, `verify_signature`, message
//! building, error mapping; unit tested below), client (`SlackClient`, `SocketMode`). Everything
//! that talks to Slack goes through slack-morphism's models, client and Socket Mode listener; this
//! file only chooses the HTTP connector (https-only unless the API URL is loopback), adds
//! timeouts and maps errors.
//!
//! Facts about slack-morphism 2.31.1 this file relies on (checked in its source):
//! - `SlackClientHyperConnector::new()` is https-only with native roots; `with_connector` accepts
//!   any hyper-rustls connector, and `with_slack_api_url` joins `"{base}/{method}"`, so the base
//!   is passed without its trailing slash (`hyper_tokio/connector.rs:41-84, 293-295`).
//! - HTTP 429 becomes `RateLimitError { retry_after }` from `Retry-After`, other non-2xx become
//!   `HttpError`, `"ok":false` becomes `ApiError` (`hyper_tokio/connector.rs:153-207`). Without
//!   `with_rate_control` nothing is retried (`connector.rs:222-245`), and there is no request
//!   timeout anywhere, hence `tokio::time::timeout` around every call.
//! - Socket Mode callbacks are plain `fn` pointers (`listener.rs:175`), so the sink travels in
//!   the listener's user state; the reader loop awaits the callback before it sends the ack
//!   (`socket_mode/clients_manager_listener.rs:110-241`, `tungstenite_wss_client.rs:338-351`).
//! - A command callback's `Ok(reply)` is sent as the ack's `payload`; an `Err` that the error
//!   handler answers with a 2xx status is acked with no payload at all
//!   (`clients_manager_listener.rs:204-240`). Greenlight replies later through `response_url`,
//!   so commands are acked bare this way (a `{}` payload may be shown to the user).
//! - `{"type":"disconnect"}` calls `restart_client`, which shuts the old socket and starts a new
//!   client that calls `apps.connections.open` again (`clients_manager_listener.rs:101-108`,
//!   `tokio_clients_manager.rs:72-111`, `tungstenite_wss_client.rs:75-105`). A close frame, a
//!   socket error and missed pongs end in the same `restart_client` (`on_disconnect`,
//!   `tungstenite_wss_client.rs:283-290, 393-402, 414-437`); a failed reconnect is retried every
//!   `reconnect_timeout_in_seconds` (`:140-170`). None of this reaches a callback: the only
//!   connection-state hook is the `hello` callback (`callbacks.rs:47-98`), and the socket client
//!   reaches the Web API only for `apps.connections.open`, through the listener environment's
//!   client (`tungstenite_wss_client.rs:78-90`). So a connection opened by that client's HTTP
//!   connector means "(re)connecting" and a `hello` means "connected" (see `SocketWatch`).
//! - `SlackEventSignatureVerifier::verify` compares the HMAC first and checks the timestamp
//!   against the system clock only after a match (`signature_verifier.rs:39-60`).
//! - `respond_to_event` posts a `SlackApiPostWebhookMessageRequest`, which has no
//!   `response_type` field (`api/webhook.rs:48-65`); `respond` posts that same request plus
//!   `response_type` through the same connector call (`http_post_uri`, no token, URL redacted
//!   in logs) that `respond_to_event` makes.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::time::Duration;

use crate::core::Platform;

use slack_morphism::blocks::{
    SlackActionsBlock, SlackBlock, SlackBlockButtonElement, SlackBlockButtonStyle,
    SlackBlockMarkDownText, SlackSectionBlock,
};
use slack_morphism::events::{
    SlackCommandEvent, SlackEventCallbackBody, SlackInteractionActionContainer,
    SlackInteractionEvent, SlackPushEvent, SlackPushEventCallback,
};
use slack_morphism::signature_verifier::{
    SlackEventSignatureVerifier, SlackEventSignatureVerifierError,
};
use slack_morphism::{SlackActionId, SlackMessageContent, SlackReactionsItem, SlackSigningSecret};

pub use crate::chat::error::{DeliveryError, ErrorKind};
use crate::chat::inbound::{Button, Inbound, Kind};
use crate::core::text::{error_chain, one_line};

// ---------------------------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------------------------

/// How to reach Slack. Tokens come from the environment; they are never logged.
#[derive(Clone, Debug)]
pub struct SlackSettings {
    /// Web API base, e.g. `https://slack.com/api/` or `http://127.0.0.1:PORT/api/` (loopback only).
    pub api_url: String,
    /// `xoxb-...`
    pub bot_token: String,
    /// `xapp-...`, needed for Socket Mode.
    pub app_token: Option<String>,
    /// Bound on every Web API call (and on TCP connects, Socket Mode's `apps.connections.open` too).
    pub request_timeout: Duration,
}

/// `block_id` of the actions block carrying both buttons.
pub const ACTIONS_BLOCK_ID: &str = "greenlight_review";
/// Socket Mode reconnect pause used by [`SocketMode::start`] (slack-morphism's default is 30 s).
pub const DEFAULT_RECONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Slack's limit on a section block's text, in characters.
const SECTION_TEXT_LIMIT: usize = 3000;
/// Slack allows 50 blocks per message; one is kept for the buttons.
const MAX_SECTIONS: usize = 49;
/// Used when a 429 carries no `Retry-After` (Slack always sends one).
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);
/// The platform label of Slack's metrics.
const PLATFORM: Platform = Platform::Slack;

// ---------------------------------------------------------------------------------------------
// Pure conversion
// ---------------------------------------------------------------------------------------------

/// What a `/slack/events` body asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum EventsBody {
    /// Answer with the challenge (slack-morphism's axum layer does not).
    UrlVerification {
        challenge: String,
    },
    Inbound(Inbound),
    /// Well-formed but nothing greenlight acts on: answer 200.
    Ignored,
}

/// Checks Slack's request signature: `v0=hex(HMAC_SHA256(secret, "v0:{timestamp}:{body}"))`.
/// Rejects a timestamp more than 300 s away from `now_unix` (either way), a missing or wrong
/// signature, and a body that is not UTF-8. The HMAC is slack-morphism's
/// `SlackEventSignatureVerifier`; the time window is checked here against `now_unix`, because
/// the verifier reads the system clock itself.
pub fn verify_signature(
    secret: &str,
    timestamp: &str,
    body: &[u8],
    signature: &str,
    now_unix: i64,
) -> Result<(), String> {
    if secret.is_empty() {
        return Err("the signing secret is empty".into());
    }
    if signature.is_empty() {
        return Err("missing X-Slack-Signature".into());
    }
    let ts: i64 = timestamp
        .parse()
        .map_err(|_| format!("bad X-Slack-Request-Timestamp {timestamp:?}"))?;
    let max_age = SlackEventSignatureVerifier::MAX_TIMESTAMP_AGE_SECONDS.unsigned_abs();
    if now_unix.abs_diff(ts) > max_age {
        return Err(format!(
            "request timestamp {ts} is more than {max_age} s away from now ({now_unix})"
        ));
    }
    let body = std::str::from_utf8(body).map_err(|_| "request body is not UTF-8".to_string())?;
    let verifier = SlackEventSignatureVerifier::new(&SlackSigningSecret(secret.to_string()));
    match verifier.verify(signature, body, timestamp) {
        Ok(()) => Ok(()),
        // Only reachable after the HMAC matched (signature_verifier.rs:46-48): the verifier
        // then compares the timestamp with the system clock, which `now_unix` replaces here.
        Err(SlackEventSignatureVerifierError::IncorrectOrExpiredTimestampError(_)) => Ok(()),
        Err(SlackEventSignatureVerifierError::WrongSignatureError(_)) => {
            Err("signature does not match".into())
        }
        Err(other) => Err(one_line(&other.to_string())),
    }
}

/// `application/x-www-form-urlencoded` slash command body -> a [`Kind::Message`] in the chat
/// grammar (`/deploy` + its text), deduplicated on its `trigger_id`.
pub fn parse_command_form(body: &[u8]) -> Result<Inbound, String> {
    let event: SlackCommandEvent = from_form(body)?;
    Ok(command_to_inbound(&event))
}

/// JSON body of `/slack/events` (slack-morphism's `SlackPushEvent`): `url_verification`, or an
/// `event_callback` with `reaction_added` / `reaction_removed` on a message; anything else is
/// [`EventsBody::Ignored`].
pub fn parse_events_json(body: &[u8]) -> Result<EventsBody, String> {
    let event: SlackPushEvent = serde_json::from_slice(body)
        .map_err(|e| format!("not a Slack events body: {}", one_line(&e.to_string())))?;
    Ok(match event {
        SlackPushEvent::UrlVerification(v) => EventsBody::UrlVerification {
            challenge: v.challenge,
        },
        SlackPushEvent::EventCallback(cb) => match push_to_inbound(&cb) {
            Some(inbound) => EventsBody::Inbound(inbound),
            None => EventsBody::Ignored,
        },
        SlackPushEvent::AppRateLimited(_) => EventsBody::Ignored,
    })
}

/// `payload=<json>` form of `/slack/interactions` (slack-morphism's `SlackInteractionEvent`):
/// `block_actions` on one of greenlight's buttons -> a [`Kind::Click`]; `None` for another
/// button (ignored); any other interaction is an error.
pub fn parse_interaction_form(body: &[u8]) -> Result<Option<Inbound>, String> {
    #[derive(serde::Deserialize)]
    struct Form {
        payload: String,
    }
    let form: Form = from_form(body)?;
    let event: SlackInteractionEvent = serde_json::from_str(&form.payload)
        .map_err(|e| format!("bad interaction payload: {}", one_line(&e.to_string())))?;
    interaction_to_inbound(&event)
}

fn from_form<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let body = std::str::from_utf8(body).map_err(|_| "form body is not UTF-8".to_string())?;
    // The url crate's form decoder (as slack-morphism's own listeners use), reached through
    // reqwest's re-export of `Url`: a form body is a query string. The pairs then deserialize
    // into slack-morphism's model.
    let mut url = reqwest::Url::parse("http://form.invalid/").expect("a valid URL");
    url.set_query(Some(body));
    let fields: serde_json::Map<String, serde_json::Value> = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), serde_json::Value::String(v.into_owned())))
        .collect();
    serde_json::from_value(serde_json::Value::Object(fields))
        .map_err(|e| format!("bad form: {}", one_line(&e.to_string())))
}

pub(super) fn command_to_inbound(event: &SlackCommandEvent) -> Inbound {
    let text = event.text.clone().unwrap_or_default();
    Inbound {
        platform: PLATFORM,
        dedup: Some(event.trigger_id.0.clone()),
        user: event.user_id.0.clone(),
        channel: event.channel_id.0.clone(),
        kind: Kind::Message {
            text: format!("{} {text}", event.command.0),
            thread: None,
        },
        response_url: Some(event.response_url.0.to_string()),
    }
}

/// `reaction_added` / `reaction_removed` on a message, deduplicated on the event's `event_id`;
/// `None` for everything else.
pub(super) fn push_to_inbound(cb: &SlackPushEventCallback) -> Option<Inbound> {
    let (user, reaction, item, added) = match &cb.event {
        SlackEventCallbackBody::ReactionAdded(e) => (&e.user, &e.reaction, &e.item, true),
        SlackEventCallbackBody::ReactionRemoved(e) => (&e.user, &e.reaction, &e.item, false),
        _ => return None,
    };
    let SlackReactionsItem::Message(message) = item else {
        return None;
    };
    let channel = message.origin.channel.as_ref()?;
    Some(Inbound {
        platform: PLATFORM,
        dedup: Some(cb.event_id.0.clone()),
        user: user.0.clone(),
        channel: channel.0.clone(),
        kind: Kind::Reaction {
            message: message.origin.ts.0.clone(),
            emoji: reaction.0.clone(),
            added,
        },
        response_url: None,
    })
}

/// A click on a checklist item's Approve / Veto button (block_actions), deduplicated on the
/// interaction's `trigger_id`. `None` for a button greenlight does not know.
pub(super) fn interaction_to_inbound(
    event: &SlackInteractionEvent,
) -> Result<Option<Inbound>, String> {
    let SlackInteractionEvent::BlockActions(ba) = event else {
        return Err("not a block_actions interaction".into());
    };
    let user = ba
        .user
        .as_ref()
        .ok_or("block_actions without a user")?
        .id
        .0
        .clone();
    let (message_ts, container_channel) = match &ba.container {
        SlackInteractionActionContainer::Message(m) => (&m.message_ts, &m.channel_id),
        SlackInteractionActionContainer::MessageAttachment(m) => (&m.message_ts, &m.channel_id),
        SlackInteractionActionContainer::View(_) => {
            return Err("block_actions from a view, not a message".into())
        }
    };
    let channel = container_channel
        .as_ref()
        .or(ba.channel.as_ref().map(|c| &c.id))
        .ok_or("block_actions without a channel")?
        .0
        .clone();
    let action = ba
        .actions
        .as_ref()
        .and_then(|a| a.first())
        .ok_or("block_actions without an action")?;
    let Some(button) = Button::from_action_id(&action.action_id.0) else {
        tracing::debug!(action_id = %action.action_id.0, "slack: a click on an unknown button, ignored");
        return Ok(None);
    };
    Ok(Some(Inbound {
        platform: PLATFORM,
        dedup: Some(ba.trigger_id.0.clone()),
        user,
        channel,
        kind: Kind::Click {
            message: message_ts.0.clone(),
            button,
        },
        response_url: ba.response_url.as_ref().map(|u| u.0.to_string()),
    }))
}

/// The message body: `text` as the notification fallback, the same text as mrkdwn section(s),
/// and with `buttons` an actions block with Approve (primary) and Veto (danger).
fn message_content(text: &str, buttons: bool) -> SlackMessageContent {
    let mut blocks: Vec<SlackBlock> = split_sections(text)
        .into_iter()
        .map(|chunk| {
            SlackSectionBlock::new()
                .with_text(SlackBlockMarkDownText::new(chunk).into())
                .into()
        })
        .collect();
    if buttons {
        let button = |id: &str, label: &str, style| {
            SlackBlockButtonElement::new(label.into())
                .with_action_id(SlackActionId(id.to_string()))
                .with_value(id.to_string())
                .with_style(style)
                .into()
        };
        blocks.push(
            SlackActionsBlock::new(vec![
                button(
                    Button::Approve.action_id(),
                    "Approve",
                    SlackBlockButtonStyle::Primary,
                ),
                button(
                    Button::Veto.action_id(),
                    "Veto",
                    SlackBlockButtonStyle::Danger,
                ),
            ])
            .with_block_id(ACTIONS_BLOCK_ID.to_string().into())
            .into(),
        );
    }
    SlackMessageContent::new()
        .with_text(text.to_string())
        .with_blocks(blocks)
}

/// Cuts `text` into section-sized chunks (at a line break where one is near), at most
/// `MAX_SECTIONS` of them; an empty text gives none.
fn split_sections(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        if out.len() + 1 == MAX_SECTIONS && rest.chars().count() > SECTION_TEXT_LIMIT {
            let cut: String = rest.chars().take(SECTION_TEXT_LIMIT - 1).collect();
            out.push(format!("{cut}…"));
            break;
        }
        let end = rest
            .char_indices()
            .nth(SECTION_TEXT_LIMIT)
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        let mut cut = end;
        if end < rest.len() {
            if let Some(nl) = rest[..end].rfind('\n') {
                if nl >= end / 2 {
                    cut = nl + 1;
                }
            }
        }
        out.push(rest[..cut].to_string());
        rest = &rest[cut..];
    }
    out
}

mod client;
pub mod http;
mod socket;
#[cfg(test)]
mod tests;

pub use client::SlackClient;
pub use socket::SocketMode;
