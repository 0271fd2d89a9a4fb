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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::core::Platform;
use crate::telemetry::Telemetry;

use hyper_rustls::HttpsConnector;
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use serde::Serialize;
use slack_morphism::api::{
    SlackApiChatPostEphemeralRequest, SlackApiChatPostMessageRequest, SlackApiChatUpdateRequest,
    SlackApiPostWebhookMessageRequest, SlackApiPostWebhookMessageResponse,
};
use slack_morphism::blocks::{
    SlackActionsBlock, SlackBlock, SlackBlockButtonElement, SlackBlockButtonStyle,
    SlackBlockMarkDownText, SlackSectionBlock,
};
use slack_morphism::errors::SlackClientError;
use slack_morphism::events::{
    SlackCommandEvent, SlackCommandEventResponse, SlackEventCallbackBody,
    SlackInteractionActionContainer, SlackInteractionEvent, SlackPushEvent, SlackPushEventCallback,
};
use slack_morphism::hyper_tokio::{SlackClientHyperConnector, SlackClientHyperHttpsConnector};
use slack_morphism::listener::{
    HttpStatusCode, SlackClientEventsListenerEnvironment, SlackClientEventsUserState,
};
use slack_morphism::signature_verifier::{
    SlackEventSignatureVerifier, SlackEventSignatureVerifierError,
};
use slack_morphism::{
    ClientResult, SlackActionId, SlackApiToken, SlackApiTokenType, SlackApiTokenValue,
    SlackChannelId, SlackClientApiCallContext, SlackClientHttpConnector,
    SlackClientSocketModeConfig, SlackClientSocketModeListener, SlackMessageContent,
    SlackMessageResponseType, SlackReactionsItem, SlackSigningSecret,
    SlackSocketModeListenerCallbacks, SlackTs, SlackUserId, UserCallbackResult,
};
use tracing::{debug, warn};

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

/// `action_id` of a checklist item's Approve button.
pub const APPROVE_ACTION_ID: &str = "greenlight_approve";
/// `action_id` of a checklist item's Veto button.
pub const VETO_ACTION_ID: &str = "greenlight_veto";
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

/// Something that arrived from Slack (ids raw, as Slack sends them).
#[derive(Clone, Debug, PartialEq)]
pub enum SlackInbound {
    /// A slash command. `dedup` is its `trigger_id`.
    Command {
        dedup: String,
        user: String,
        channel: String,
        /// `"/deploy"` or `"/rollback"`
        command: String,
        text: String,
        response_url: String,
    },
    /// `reaction_added` (`added: true`) or `reaction_removed` on a message. `dedup` is the
    /// event's `event_id`.
    Reaction {
        dedup: String,
        user: String,
        channel: String,
        ts: String,
        reaction: String,
        added: bool,
    },
    /// A click on a checklist item's Approve / Veto button (block_actions). `dedup` is the
    /// interaction's `trigger_id`; `response_url` is empty when Slack sent none.
    Action {
        dedup: String,
        user: String,
        channel: String,
        message_ts: String,
        /// `"greenlight_approve"` | `"greenlight_veto"` (raw: other ids pass through)
        action_id: String,
        response_url: String,
    },
}

/// What a `/slack/events` body asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum EventsBody {
    /// Answer with the challenge (slack-morphism's axum layer does not).
    UrlVerification {
        challenge: String,
    },
    Inbound(SlackInbound),
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

/// `application/x-www-form-urlencoded` slash command body -> [`SlackInbound::Command`].
pub fn parse_command_form(body: &[u8]) -> Result<SlackInbound, String> {
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
/// `block_actions` -> [`SlackInbound::Action`]; any other interaction is an error.
pub fn parse_interaction_form(body: &[u8]) -> Result<SlackInbound, String> {
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

fn command_to_inbound(event: &SlackCommandEvent) -> SlackInbound {
    SlackInbound::Command {
        dedup: event.trigger_id.0.clone(),
        user: event.user_id.0.clone(),
        channel: event.channel_id.0.clone(),
        command: event.command.0.clone(),
        text: event.text.clone().unwrap_or_default(),
        response_url: event.response_url.0.to_string(),
    }
}

/// `reaction_added` / `reaction_removed` on a message; `None` for everything else.
fn push_to_inbound(cb: &SlackPushEventCallback) -> Option<SlackInbound> {
    let (user, reaction, item, added) = match &cb.event {
        SlackEventCallbackBody::ReactionAdded(e) => (&e.user, &e.reaction, &e.item, true),
        SlackEventCallbackBody::ReactionRemoved(e) => (&e.user, &e.reaction, &e.item, false),
        _ => return None,
    };
    let SlackReactionsItem::Message(message) = item else {
        return None;
    };
    let channel = message.origin.channel.as_ref()?;
    Some(SlackInbound::Reaction {
        dedup: cb.event_id.0.clone(),
        user: user.0.clone(),
        channel: channel.0.clone(),
        ts: message.origin.ts.0.clone(),
        reaction: reaction.0.clone(),
        added,
    })
}

fn interaction_to_inbound(event: &SlackInteractionEvent) -> Result<SlackInbound, String> {
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
    Ok(SlackInbound::Action {
        dedup: ba.trigger_id.0.clone(),
        user,
        channel,
        message_ts: message_ts.0.clone(),
        action_id: action.action_id.0.clone(),
        response_url: ba
            .response_url
            .as_ref()
            .map(|u| u.0.to_string())
            .unwrap_or_default(),
    })
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
                button(APPROVE_ACTION_ID, "Approve", SlackBlockButtonStyle::Primary),
                button(VETO_ACTION_ID, "Veto", SlackBlockButtonStyle::Danger),
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

/// Maps slack-morphism's error onto what the caller does next: wait, retry, or give up.
fn map_error(method: &str, err: SlackClientError) -> SlackError {
    match err {
        SlackClientError::RateLimitError(e) => SlackError::RateLimited {
            retry_after: e.retry_after.unwrap_or(DEFAULT_RETRY_AFTER),
        },
        SlackClientError::ApiError(e) => match e.code.as_str() {
            "ratelimited" | "rate_limited" => SlackError::RateLimited {
                retry_after: DEFAULT_RETRY_AFTER,
            },
            "internal_error" | "fatal_error" | "service_unavailable" | "request_timeout" => {
                SlackError::Transient(format!("{method}: {}", e.code))
            }
            code => SlackError::Permanent(format!("{method}: {code}")),
        },
        SlackClientError::HttpError(e) => {
            let status = e.status_code;
            if status.is_server_error() || status.as_u16() == 408 {
                SlackError::Transient(format!("{method}: HTTP {status}"))
            } else {
                SlackError::Permanent(format!("{method}: HTTP {status}"))
            }
        }
        // A response that does not decode will not decode on retry either, and the call may
        // have taken effect (a retry would post twice).
        SlackClientError::ProtocolError(e) => SlackError::Permanent(format!(
            "{method}: unexpected response: {}",
            one_line(&e.json_error.to_string())
        )),
        // Connection refused/reset, TLS and DNS failures: the cause's chain of messages (its
        // own Display is a Debug dump).
        SlackClientError::HttpProtocolError(e) => SlackError::Transient(format!(
            "{method}: {}",
            e.cause
                .as_deref()
                .map(|c| error_chain(c))
                .unwrap_or_else(|| "HTTP error".into())
        )),
        // End of stream, anything else.
        other => SlackError::Transient(format!("{method}: {}", one_line(&other.to_string()))),
    }
}

/// The API base without its trailing slash, and whether plain http may be used (loopback host).
fn api_base(api_url: &str) -> Result<(String, bool), String> {
    let url = reqwest::Url::parse(api_url)
        .map_err(|e| format!("slack api_url {api_url:?} is not a URL: {e}"))?;
    let host = url.host_str().unwrap_or_default();
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false);
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(format!(
                "slack api_url {api_url:?}: plain http:// is only allowed for a loopback host"
            ))
        }
        other => {
            return Err(format!(
                "slack api_url {api_url:?}: unsupported scheme {other}"
            ))
        }
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "slack api_url {api_url:?}: must not have a query or fragment"
        ));
    }
    Ok((url.as_str().trim_end_matches('/').to_string(), loopback))
}

/// "outer: inner: innermost", on one line.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![one_line(&e.to_string())];
    let mut next = e.source();
    while let Some(inner) = next {
        let text = one_line(&inner.to_string());
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = inner.source();
    }
    parts.join(": ")
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

// ---------------------------------------------------------------------------------------------
// Client (IO)
// ---------------------------------------------------------------------------------------------

/// Why a Slack call failed, sorted by what to do about it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SlackError {
    /// HTTP 429: wait `retry_after` (Slack's `Retry-After`) before the next call.
    #[error("rate limited by Slack, retry after {retry_after:?}")]
    RateLimited { retry_after: Duration },
    /// 5xx, timeouts, connection errors: retrying later may work.
    #[error("transient Slack error: {0}")]
    Transient(String),
    /// `"ok":false` errors such as `channel_not_found`, other 4xx: retrying will not help.
    #[error("Slack refused: {0}")]
    Permanent(String),
}

type Connector = SlackClientHyperHttpsConnector;
type MorphismClient = slack_morphism::SlackClient<Connector>;

/// slack-morphism's hyper connector with greenlight's TLS policy: https-only, except that plain
/// http is allowed when the configured API host is loopback (tests' fakes). Roots: the system's
/// (as slack-morphism's default), falling back to the bundled webpki roots when there are none.
fn build_connector(settings: &SlackSettings) -> Result<Connector, String> {
    build_connector_with(settings, |https| https)
}

/// [`build_connector`] with the HTTPS connector wrapped by `wrap`.
fn build_connector_with<H>(
    settings: &SlackSettings,
    wrap: impl FnOnce(HttpsConnector<HttpConnector>) -> H,
) -> Result<SlackClientHyperConnector<H>, String>
where
    H: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    let (base, loopback) = api_base(&settings.api_url)?;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(settings.request_timeout));
    let roots = match HttpsConnectorBuilder::new().with_native_roots() {
        Ok(builder) => builder,
        Err(e) => {
            debug!(error = %e, "no system CA roots, using the bundled webpki roots");
            HttpsConnectorBuilder::new().with_webpki_roots()
        }
    };
    let schemes = if loopback {
        roots.https_or_http()
    } else {
        roots.https_only()
    };
    let https = schemes.enable_http1().enable_http2().wrap_connector(http);
    Ok(SlackClientHyperConnector::with_connector(wrap(https)).with_slack_api_url(&base))
}

/// The Slack Web API as greenlight uses it: post, update, respond, ephemeral.
#[derive(Clone)]
pub struct SlackClient {
    client: MorphismClient,
    token: SlackApiToken,
    timeout: Duration,
    api_url: String,
    /// Plain http allowed (loopback api_url): response URLs are held to the same rule.
    allow_http: bool,
}

impl std::fmt::Debug for SlackClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackClient")
            .field("api_url", &self.api_url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Body posted to a `response_url`: slack-morphism's webhook request plus `response_type`.
#[derive(Serialize)]
struct ResponseUrlMessage<'a> {
    #[serde(flatten)]
    message: &'a SlackApiPostWebhookMessageRequest,
    response_type: SlackMessageResponseType,
}

impl SlackClient {
    /// Plain `http://` api_url is accepted only for a loopback host (127.0.0.0/8, ::1,
    /// localhost); otherwise the connector is https-only. Err with a one-line reason otherwise.
    pub fn new(settings: &SlackSettings) -> Result<SlackClient, String> {
        if settings.bot_token.trim().is_empty() {
            return Err("the Slack bot token is empty".into());
        }
        if settings.request_timeout.is_zero() {
            return Err("slack request_timeout must be more than 0".into());
        }
        let connector = build_connector(settings)?;
        let (_, allow_http) = api_base(&settings.api_url)?;
        Ok(SlackClient {
            client: MorphismClient::new(connector),
            token: SlackApiToken::new(SlackApiTokenValue(settings.bot_token.clone()))
                .with_token_type(SlackApiTokenType::Bot),
            timeout: settings.request_timeout,
            api_url: settings.api_url.clone(),
            allow_http,
        })
    }

    /// chat.postMessage (a thread reply when `thread_ts` is Some). With `buttons`, the message
    /// carries the Approve / Veto actions block. Returns the message ts.
    pub async fn post_message(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        text: &str,
        buttons: bool,
    ) -> Result<String, SlackError> {
        let req = SlackApiChatPostMessageRequest::new(
            SlackChannelId(channel.to_string()),
            message_content(text, buttons),
        )
        .opt_thread_ts(thread_ts.map(|ts| SlackTs(ts.to_string())))
        .with_unfurl_links(false)
        .with_unfurl_media(false);
        let session = self.client.open_session(&self.token);
        let res = self
            .call("chat.postMessage", session.chat_post_message(&req))
            .await?;
        Ok(res.ts.0)
    }

    /// chat.update of an existing message (same buttons rule: without them, they are removed).
    pub async fn update_message(
        &self,
        channel: &str,
        ts: &str,
        text: &str,
        buttons: bool,
    ) -> Result<(), SlackError> {
        let req = SlackApiChatUpdateRequest::new(
            SlackChannelId(channel.to_string()),
            message_content(text, buttons),
            SlackTs(ts.to_string()),
        );
        let session = self.client.open_session(&self.token);
        self.call("chat.update", session.chat_update(&req)).await?;
        Ok(())
    }

    /// POST to a `response_url` (slash command or interaction), `"response_type":"ephemeral"`
    /// or `"in_channel"`, never replacing the original message. The bot token is not sent.
    pub async fn respond(
        &self,
        response_url: &str,
        text: &str,
        ephemeral: bool,
    ) -> Result<(), SlackError> {
        let url = reqwest::Url::parse(response_url)
            .map_err(|e| SlackError::Permanent(format!("bad response_url: {e}")))?;
        if url.scheme() != "https" && !(self.allow_http && url.scheme() == "http") {
            return Err(SlackError::Permanent(format!(
                "response_url must be https, got {}://",
                url.scheme()
            )));
        }
        let message = SlackApiPostWebhookMessageRequest::new(message_content(text, false))
            .with_replace_original(false);
        let body = ResponseUrlMessage {
            message: &message,
            response_type: if ephemeral {
                SlackMessageResponseType::Ephemeral
            } else {
                SlackMessageResponseType::InChannel
            },
        };
        // What `respond_to_event` / `post_webhook_message` do (api/webhook.rs:25-43).
        let span = tracing::debug_span!("Slack response_url");
        let context = SlackClientApiCallContext {
            rate_control_params: None,
            token: None,
            tracing_span: &span,
            is_sensitive_url: true,
        };
        let connector = &self.client.http_api.connector;
        self.call(
            "response_url",
            connector.http_post_uri::<_, SlackApiPostWebhookMessageResponse>(url, &body, context),
        )
        .await?;
        Ok(())
    }

    /// chat.postEphemeral to one user in a channel, in the thread of `thread_ts` when given (a
    /// refused click without response_url).
    pub async fn post_ephemeral(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        user: &str,
        text: &str,
    ) -> Result<(), SlackError> {
        let req = SlackApiChatPostEphemeralRequest::new(
            SlackChannelId(channel.to_string()),
            SlackUserId(user.to_string()),
            message_content(text, false),
        )
        .opt_thread_ts(thread_ts.map(|ts| SlackTs(ts.to_string())));
        let session = self.client.open_session(&self.token);
        self.call("chat.postEphemeral", session.chat_post_ephemeral(&req))
            .await?;
        Ok(())
    }

    async fn call<T>(
        &self,
        method: &str,
        fut: impl Future<Output = ClientResult<T>>,
    ) -> Result<T, SlackError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                let err = map_error(method, e);
                debug!(method, error = %err, "slack call failed");
                Err(err)
            }
            Err(_) => Err(SlackError::Transient(format!(
                "{method}: no answer within {:?}",
                self.timeout
            ))),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Socket Mode (IO)
// ---------------------------------------------------------------------------------------------

/// Where converted Socket Mode events go; stored in the listener's user state because
/// slack-morphism's callbacks are `fn` pointers.
struct InboundSink(Arc<dyn Fn(SlackInbound) + Send + Sync>);

/// The Socket Mode connection's state, reported as `greenlight_platform_connected{platform=
/// "slack"}` and by `/readyz`. slack-morphism has no callback for a closed socket (module docs),
/// so: its socket client opens an HTTP connection through [`ReconnectWatch`] only to call
/// `apps.connections.open`, which it does only when it has no socket: that is "disconnected";
/// the `hello` frame that starts every socket is "connected". Also kept in the listener's user
/// state, for the hello callback.
#[derive(Clone)]
struct SocketWatch {
    telemetry: Telemetry,
    reconnect_every: Duration,
    /// A `hello` was seen once: later opens are reconnects.
    connected_once: Arc<AtomicBool>,
}

impl SocketWatch {
    fn opening(&self) {
        let reason = if self.connected_once.load(Ordering::SeqCst) {
            format!(
                "Socket Mode lost its connection; reconnecting through apps.connections.open (every {} s while it fails)",
                self.reconnect_every.as_secs()
            )
        } else {
            "Socket Mode is connecting through apps.connections.open".to_string()
        };
        if self.telemetry.connected_gauge(PLATFORM) != 0 {
            warn!("slack: Socket Mode disconnected; reconnecting");
        }
        self.telemetry.set_connected(PLATFORM, Err(&reason));
    }

    fn hello(&self) {
        self.connected_once.store(true, Ordering::SeqCst);
        if self.telemetry.connected_gauge(PLATFORM) != 1 {
            tracing::info!("slack: Socket Mode connected");
        }
        self.telemetry.set_connected(PLATFORM, Ok(()));
    }

    /// The connection attempt itself failed (TCP, TLS): a better reason than "reconnecting".
    fn open_failed(&self, error: &str) {
        self.telemetry.set_connected(
            PLATFORM,
            Err(&format!(
                "Socket Mode cannot reach apps.connections.open: {}",
                one_line(error)
            )),
        );
    }
}

/// The Socket Mode client's HTTP connector: reports each connection it opens to the
/// [`SocketWatch`] and keeps none for reuse (a pooled connection would hide the next reconnect).
#[derive(Clone)]
struct ReconnectWatch<C> {
    inner: C,
    watch: SocketWatch,
}

impl<C> tower_service::Service<hyper::Uri> for ReconnectWatch<C>
where
    C: tower_service::Service<hyper::Uri>,
    C::Future: Send + 'static,
    C::Error: std::fmt::Display,
{
    type Response = Unpooled<C::Response>;
    type Error = C::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, C::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), C::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: hyper::Uri) -> Self::Future {
        self.watch.opening();
        let (connecting, watch) = (self.inner.call(uri), self.watch.clone());
        Box::pin(async move {
            connecting
                .await
                .map(Unpooled)
                .inspect_err(|e| watch.open_failed(&e.to_string()))
        })
    }
}

/// A connection the client pool never reuses (its `Connected` is poisoned from the start).
struct Unpooled<T>(T);

impl<T: Connection> Connection for Unpooled<T> {
    fn connected(&self) -> Connected {
        let connected = self.0.connected();
        connected.poison();
        connected
    }
}

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for Unpooled<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for Unpooled<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
}

type SocketConnector = SlackClientHyperConnector<ReconnectWatch<HttpsConnector<HttpConnector>>>;
type SocketClient = slack_morphism::SlackClient<SocketConnector>;

/// Returned by the command callback so that the envelope is acked without a payload (see the
/// module docs); the error handler recognises it.
#[derive(Debug)]
struct AckWithoutPayload;

impl std::fmt::Display for AckWithoutPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("slash command acknowledged without a payload")
    }
}

impl std::error::Error for AckWithoutPayload {}

async fn deliver(state: &SlackClientEventsUserState, inbound: SlackInbound) {
    let (sink, watch) = {
        let state = state.read().await;
        (
            state.get_user_state::<InboundSink>().map(|s| s.0.clone()),
            state.get_user_state::<SocketWatch>().cloned(),
        )
    };
    // An envelope arrived on a socket: it is connected, hello or not.
    if let Some(watch) = watch {
        watch.hello();
    }
    match sink {
        Some(sink) => sink(inbound),
        None => warn!("slack socket mode: no sink for an inbound event"),
    }
}

/// Every socket starts with a `hello` (the event type is not exported by slack-morphism, hence
/// the type parameter).
async fn on_hello<E>(_hello: E, _client: Arc<SocketClient>, state: SlackClientEventsUserState) {
    let watch = state.read().await.get_user_state::<SocketWatch>().cloned();
    if let Some(watch) = watch {
        watch.hello();
    }
}

async fn on_command(
    event: SlackCommandEvent,
    _client: Arc<SocketClient>,
    state: SlackClientEventsUserState,
) -> UserCallbackResult<SlackCommandEventResponse> {
    let inbound = command_to_inbound(&event);
    debug!(kind = "command", command = %event.command.0, "slack socket mode inbound");
    deliver(&state, inbound).await;
    Err(Box::new(AckWithoutPayload))
}

async fn on_push(
    event: SlackPushEventCallback,
    _client: Arc<SocketClient>,
    state: SlackClientEventsUserState,
) -> UserCallbackResult<()> {
    if let Some(inbound) = push_to_inbound(&event) {
        debug!(kind = "reaction", event_id = %event.event_id.0, "slack socket mode inbound");
        deliver(&state, inbound).await;
    }
    Ok(())
}

async fn on_interaction(
    event: SlackInteractionEvent,
    _client: Arc<SocketClient>,
    state: SlackClientEventsUserState,
) -> UserCallbackResult<()> {
    match interaction_to_inbound(&event) {
        Ok(inbound) => {
            debug!(kind = "action", "slack socket mode inbound");
            deliver(&state, inbound).await;
        }
        Err(reason) => debug!(%reason, "slack socket mode: interaction ignored"),
    }
    Ok(())
}

fn on_listener_error(
    err: Box<dyn std::error::Error + Send + Sync>,
    _client: Arc<SocketClient>,
    _state: SlackClientEventsUserState,
) -> HttpStatusCode {
    if err.downcast_ref::<AckWithoutPayload>().is_some() {
        return HttpStatusCode::OK;
    }
    warn!(error = %one_line(&err.to_string()), "slack socket mode error");
    HttpStatusCode::INTERNAL_SERVER_ERROR
}

/// A running Socket Mode connection (slack-morphism's `SlackClientSocketModeListener`, one
/// socket). slack-morphism reconnects by itself after a `disconnect` frame, a closed socket or
/// missed pongs, through `apps.connections.open`; `greenlight_platform_connected{platform=
/// "slack"}` follows (see [`SocketWatch`]).
pub struct SocketMode {
    listener: SlackClientSocketModeListener<SocketConnector>,
}

impl SocketMode {
    /// Connects with [`DEFAULT_RECONNECT_TIMEOUT`]. Slash commands, `reaction_added` /
    /// `reaction_removed` and `block_actions` are converted and handed to `sink`, which must
    /// return at once: the envelope is acked only after it returns. The connection state goes
    /// to `telemetry` (not connected until the first `hello`).
    pub async fn start(
        settings: &SlackSettings,
        sink: Arc<dyn Fn(SlackInbound) + Send + Sync>,
        telemetry: &Telemetry,
    ) -> Result<SocketMode, String> {
        Self::start_with_reconnect(settings, sink, telemetry, DEFAULT_RECONNECT_TIMEOUT).await
    }

    /// As [`SocketMode::start`], with the pause between reconnect attempts (whole seconds, at
    /// least 1: slack-morphism counts in seconds).
    pub async fn start_with_reconnect(
        settings: &SlackSettings,
        sink: Arc<dyn Fn(SlackInbound) + Send + Sync>,
        telemetry: &Telemetry,
        reconnect_timeout: Duration,
    ) -> Result<SocketMode, String> {
        let app_token = settings
            .app_token
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or("Socket Mode needs an app-level token (SLACK_APP_TOKEN, xapp-...)")?;
        let reconnect_every = Duration::from_secs(reconnect_timeout.as_secs().max(1));
        let watch = SocketWatch {
            telemetry: telemetry.clone(),
            reconnect_every,
            connected_once: Arc::default(),
        };
        telemetry.set_connected(
            PLATFORM,
            Err("Socket Mode has not connected yet (no hello)"),
        );
        let connector = build_connector_with(settings, |inner| ReconnectWatch {
            inner,
            watch: watch.clone(),
        })?;
        let client = Arc::new(SocketClient::new(connector));
        let environment = Arc::new(
            SlackClientEventsListenerEnvironment::new(client)
                .with_error_handler(on_listener_error)
                .with_user_state(InboundSink(sink))
                .with_user_state(watch),
        );
        let callbacks = SlackSocketModeListenerCallbacks::new()
            .with_hello_events(on_hello)
            .with_command_events(on_command)
            .with_push_events(on_push)
            .with_interaction_events(on_interaction);
        let config = SlackClientSocketModeConfig::new()
            .with_max_connections_count(1)
            .with_reconnect_timeout_in_seconds(reconnect_every.as_secs());
        let listener = SlackClientSocketModeListener::new(&config, environment, callbacks);
        let token = SlackApiToken::new(SlackApiTokenValue(app_token.to_string()))
            .with_token_type(SlackApiTokenType::App);
        listener
            .listen_for(&token)
            .await
            .map_err(|e| format!("slack socket mode: {}", one_line(&e.to_string())))?;
        listener.start().await;
        Ok(SocketMode { listener })
    }

    /// Closes the socket; no reconnect follows.
    pub async fn shutdown(self) {
        self.listener.shutdown().await;
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::{Path, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};
    use axum::routing::post;
    use axum::{Json, Router};
    use serde_json::{json, Value};
    use std::sync::Mutex;

    fn enc(s: &str) -> String {
        reqwest::Url::parse_with_params("http://x/", &[("v", s)])
            .unwrap()
            .query()
            .unwrap()
            .trim_start_matches("v=")
            .to_string()
    }

    fn form(fields: &[(&str, &str)]) -> String {
        fields
            .iter()
            .map(|(k, v)| format!("{k}={}", enc(v)))
            .collect::<Vec<_>>()
            .join("&")
    }

    // ---- slash command form (fields as Slack documents them)

    #[test]
    fn command_form_becomes_command() {
        let body = form(&[
            ("token", "gIkuvaNzQIHg97ATvDxqgjtO"),
            ("team_id", "T0001"),
            ("team_domain", "example"),
            ("enterprise_id", "E0001"),
            ("enterprise_name", "Globular Construct Inc"),
            ("channel_id", "C01DEPLOYS"),
            ("channel_name", "deploys"),
            ("user_id", "U01ALICE"),
            ("user_name", "alice"),
            ("command", "/deploy"),
            ("text", "v1.2.0 prod --force \"hotfix: login & <checkout>\""),
            ("api_app_id", "A123456"),
            ("is_enterprise_install", "false"),
            (
                "response_url",
                "https://hooks.slack.com/commands/1234/5678/abcdef",
            ),
            ("trigger_id", "13345224609.738474920.8088930838d88f008e0"),
        ]);
        assert_eq!(
            parse_command_form(body.as_bytes()).unwrap(),
            SlackInbound::Command {
                dedup: "13345224609.738474920.8088930838d88f008e0".into(),
                user: "U01ALICE".into(),
                channel: "C01DEPLOYS".into(),
                command: "/deploy".into(),
                text: "v1.2.0 prod --force \"hotfix: login & <checkout>\"".into(),
                response_url: "https://hooks.slack.com/commands/1234/5678/abcdef".into(),
            }
        );
    }

    #[test]
    fn command_form_with_plus_spaces_and_empty_text() {
        // Slack encodes spaces as '+'; an empty text is `text=`.
        let body = "token=t&team_id=T1&team_domain=d&channel_id=C1&channel_name=deploys\
            &user_id=U1&user_name=bob&command=%2Frollback&text=prod+bad+release\
            &api_app_id=A1&is_enterprise_install=false\
            &response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1%2F1%2Fx&trigger_id=1.2.3";
        match parse_command_form(body.as_bytes()).unwrap() {
            SlackInbound::Command { command, text, .. } => {
                assert_eq!(command, "/rollback");
                assert_eq!(text, "prod bad release");
            }
            other => panic!("{other:?}"),
        }
        // A sloppily encoded body (raw space and quote) still decodes.
        let raw = body.replace("text=prod+bad+release", "text=prod \"bad\"");
        match parse_command_form(raw.as_bytes()).unwrap() {
            SlackInbound::Command { text, .. } => assert_eq!(text, "prod \"bad\""),
            other => panic!("{other:?}"),
        }
        let empty = body.replace("text=prod+bad+release", "text=");
        match parse_command_form(empty.as_bytes()).unwrap() {
            SlackInbound::Command { text, .. } => assert_eq!(text, ""),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn command_form_missing_field_is_an_error() {
        let err = parse_command_form(b"team_id=T1&channel_id=C1&user_id=U1&command=%2Fdeploy")
            .unwrap_err();
        assert!(err.contains("missing field"), "{err}");
        assert!(!err.contains('\n'));
        assert!(parse_command_form(b"\xff\xfe").is_err());
    }

    // ---- events API

    fn reaction_event(kind: &str) -> Value {
        json!({
            "token": "XXYYZZ",
            "team_id": "T0001",
            "api_app_id": "A123456",
            "event": {
                "type": kind,
                "user": "U01BOB",
                "reaction": "white_check_mark",
                "item_user": "U01ALICE",
                "item": { "type": "message", "channel": "C01DEPLOYS", "ts": "1360782400.498405" },
                "event_ts": "1360782804.083113"
            },
            "type": "event_callback",
            "authed_users": ["U0BOT"],
            "authorizations": [
                { "enterprise_id": null, "team_id": "T0001", "user_id": "U0BOT", "is_bot": true, "is_enterprise_install": false }
            ],
            "event_id": "Ev0PV52K21",
            "event_time": 1360782804,
            "event_context": "4-eyJldCI6InJlYWN0aW9uX2FkZGVkIn0"
        })
    }

    #[test]
    fn reaction_added_and_removed() {
        for (kind, added) in [("reaction_added", true), ("reaction_removed", false)] {
            let body = serde_json::to_vec(&reaction_event(kind)).unwrap();
            assert_eq!(
                parse_events_json(&body).unwrap(),
                EventsBody::Inbound(SlackInbound::Reaction {
                    dedup: "Ev0PV52K21".into(),
                    user: "U01BOB".into(),
                    channel: "C01DEPLOYS".into(),
                    ts: "1360782400.498405".into(),
                    reaction: "white_check_mark".into(),
                    added,
                })
            );
        }
    }

    #[test]
    fn url_verification_and_ignored_events() {
        let body = json!({
            "token": "Jhj5dZrVaK7ZwHHjRyZWjbDl",
            "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
            "type": "url_verification"
        });
        assert_eq!(
            parse_events_json(&serde_json::to_vec(&body).unwrap()).unwrap(),
            EventsBody::UrlVerification {
                challenge: "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P".into()
            }
        );

        let mut message = reaction_event("reaction_added");
        message["event"] = json!({
            "type": "message", "channel": "C01DEPLOYS", "user": "U01BOB",
            "text": "hello", "ts": "1355517523.000005", "channel_type": "channel"
        });
        assert_eq!(
            parse_events_json(&serde_json::to_vec(&message).unwrap()).unwrap(),
            EventsBody::Ignored
        );

        let mut on_file = reaction_event("reaction_added");
        on_file["event"]["item"] = json!({ "type": "file", "file": "F0HS27V1Z" });
        assert_eq!(
            parse_events_json(&serde_json::to_vec(&on_file).unwrap()).unwrap(),
            EventsBody::Ignored
        );

        let limited = json!({
            "token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "type": "app_rate_limited",
            "team_id": "T123456", "minute_rate_limited": 1518467820, "api_app_id": "A123456"
        });
        assert_eq!(
            parse_events_json(&serde_json::to_vec(&limited).unwrap()).unwrap(),
            EventsBody::Ignored
        );

        assert!(parse_events_json(b"{not json").is_err());
        assert!(parse_events_json(br#"{"type":"something_else"}"#).is_err());
    }

    // ---- interactions

    fn block_actions_payload() -> Value {
        json!({
            "type": "block_actions",
            "user": { "id": "U01BOB", "username": "bob", "name": "bob", "team_id": "T0001" },
            "api_app_id": "A123456",
            "token": "9s8d9as89d8as9d8as989",
            "container": {
                "type": "message", "message_ts": "1548261231.000200",
                "channel_id": "C01DEPLOYS", "is_ephemeral": false
            },
            "trigger_id": "12466734323.1395872398.f0e0b8a8c8",
            "team": { "id": "T0001", "domain": "example" },
            "enterprise": null,
            "is_enterprise_install": false,
            "channel": { "id": "C01DEPLOYS", "name": "deploys" },
            "message": {
                "type": "message", "user": "U0BOT", "ts": "1548261231.000200",
                "bot_id": "B0BOT", "text": "Migrations reviewed",
                "blocks": [
                    { "type": "section", "block_id": "s1",
                      "text": { "type": "mrkdwn", "text": "Migrations reviewed", "verbatim": false } },
                    { "type": "actions", "block_id": "greenlight_review", "elements": [
                        { "type": "button", "action_id": "greenlight_approve",
                          "text": { "type": "plain_text", "text": "Approve", "emoji": true },
                          "value": "greenlight_approve", "style": "primary" },
                        { "type": "button", "action_id": "greenlight_veto",
                          "text": { "type": "plain_text", "text": "Veto", "emoji": true },
                          "value": "greenlight_veto", "style": "danger" }
                    ] }
                ]
            },
            "state": { "values": {} },
            "response_url": "https://hooks.slack.com/actions/T0001/1234/abcd",
            "actions": [
                {
                    "action_id": "greenlight_veto",
                    "block_id": "greenlight_review",
                    "text": { "type": "plain_text", "text": "Veto", "emoji": true },
                    "value": "greenlight_veto",
                    "style": "danger",
                    "type": "button",
                    "action_ts": "1548426417.840180"
                }
            ]
        })
    }

    fn payload_form(payload: &Value) -> String {
        form(&[("payload", &payload.to_string())])
    }

    #[test]
    fn block_actions_becomes_action() {
        let body = payload_form(&block_actions_payload());
        assert_eq!(
            parse_interaction_form(body.as_bytes()).unwrap(),
            SlackInbound::Action {
                dedup: "12466734323.1395872398.f0e0b8a8c8".into(),
                user: "U01BOB".into(),
                channel: "C01DEPLOYS".into(),
                message_ts: "1548261231.000200".into(),
                action_id: "greenlight_veto".into(),
                response_url: "https://hooks.slack.com/actions/T0001/1234/abcd".into(),
            }
        );
    }

    #[test]
    fn other_interactions_are_errors() {
        let shortcut = json!({
            "type": "shortcut", "token": "XXXX", "action_ts": "1581106241.371594",
            "team": { "id": "T0001", "domain": "example" },
            "user": { "id": "U01BOB", "username": "bob", "team_id": "T0001" },
            "callback_id": "greenlight_shortcut", "trigger_id": "944799105734.773906753841.38b5894552bdd4a780554ee59d1f3638"
        });
        assert!(parse_interaction_form(payload_form(&shortcut).as_bytes()).is_err());
        let mut no_actions = block_actions_payload();
        no_actions["actions"] = json!([]);
        assert!(parse_interaction_form(payload_form(&no_actions).as_bytes()).is_err());
        assert!(parse_interaction_form(b"payload=%7Bnot%20json").is_err());
        assert!(parse_interaction_form(b"nopayload=1").is_err());
    }

    // ---- signatures

    // Slack's documented example (https://api.slack.com/authentication/verifying-requests-from-slack),
    // signature recomputed with `openssl dgst -sha256 -hmac 8f742231b10e8888abcd99yyyzzz85a5`.
    const DOC_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const DOC_TS: &str = "1531420618";
    const DOC_BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const DOC_SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    #[test]
    fn signature_good() {
        let now = 1_531_420_618;
        verify_signature(DOC_SECRET, DOC_TS, DOC_BODY.as_bytes(), DOC_SIG, now).unwrap();
        // Within the window either way.
        verify_signature(DOC_SECRET, DOC_TS, DOC_BODY.as_bytes(), DOC_SIG, now + 300).unwrap();
        verify_signature(DOC_SECRET, DOC_TS, DOC_BODY.as_bytes(), DOC_SIG, now - 300).unwrap();
        // A greenlight body, signed by hand:
        // printf 'v0:1700000000:{"type":"url_verification","challenge":"c"}' | openssl dgst -sha256 -hmac s3cret
        verify_signature(
            "s3cret",
            "1700000000",
            br#"{"type":"url_verification","challenge":"c"}"#,
            "v0=e0fe0c1c56b346603db1b2daa230abe2ce851fd8055b10b3cc8e231f205206f0",
            1_700_000_000,
        )
        .unwrap();
    }

    #[test]
    fn signature_bad_missing_stale_future() {
        let now = 1_531_420_618;
        let body = DOC_BODY.as_bytes();
        let bad = DOC_SIG.replace("a2114d", "a2114e");
        assert!(verify_signature(DOC_SECRET, DOC_TS, body, &bad, now)
            .unwrap_err()
            .contains("does not match"));
        assert!(verify_signature("other-secret", DOC_TS, body, DOC_SIG, now).is_err());
        let tampered = DOC_BODY.replace("text=", "text=x");
        assert!(verify_signature(DOC_SECRET, DOC_TS, tampered.as_bytes(), DOC_SIG, now).is_err());
        assert!(verify_signature(DOC_SECRET, DOC_TS, body, "", now).is_err());
        assert!(verify_signature(DOC_SECRET, "", body, DOC_SIG, now).is_err());
        assert!(verify_signature(DOC_SECRET, "abc", body, DOC_SIG, now).is_err());
        assert!(verify_signature("", DOC_TS, body, DOC_SIG, now).is_err());
        // Stale (more than 300 s old) and from the future (more than 300 s ahead).
        let stale = verify_signature(DOC_SECRET, DOC_TS, body, DOC_SIG, now + 301).unwrap_err();
        assert!(stale.contains("300"), "{stale}");
        assert!(verify_signature(DOC_SECRET, DOC_TS, body, DOC_SIG, now - 301).is_err());
    }

    // ---- client construction

    fn settings(api_url: &str) -> SlackSettings {
        SlackSettings {
            api_url: api_url.into(),
            bot_token: "xoxb-test".into(),
            app_token: Some("xapp-test".into()),
            request_timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn http_only_for_loopback() {
        for ok in [
            "https://slack.com/api/",
            "https://slack-gov.com/api",
            "http://127.0.0.1:9/api/",
            "http://127.1.2.3:9/api/",
            "http://[::1]:9/api/",
            "http://localhost:9/api/",
        ] {
            SlackClient::new(&settings(ok)).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "http://slack.com/api/",
            "http://10.0.0.1/api/",
            "http://127.0.0.1.example.com/api/",
            "ftp://127.0.0.1/api/",
            "not a url",
        ] {
            let err = SlackClient::new(&settings(bad)).unwrap_err();
            assert!(!err.contains('\n'), "{err}");
        }
        let mut no_token = settings("https://slack.com/api/");
        no_token.bot_token = String::new();
        assert!(SlackClient::new(&no_token).is_err());
        assert_eq!(
            api_base("https://slack.com/api/").unwrap(),
            ("https://slack.com/api".to_string(), false)
        );
    }

    #[test]
    fn message_blocks() {
        let c = serde_json::to_value(message_content("*run 42* ok", true)).unwrap();
        assert_eq!(c["text"], "*run 42* ok");
        assert_eq!(c["blocks"][0]["type"], "section");
        assert_eq!(c["blocks"][0]["text"]["type"], "mrkdwn");
        assert_eq!(c["blocks"][0]["text"]["text"], "*run 42* ok");
        let actions = &c["blocks"][1];
        assert_eq!(actions["type"], "actions");
        assert_eq!(actions["elements"][0]["action_id"], APPROVE_ACTION_ID);
        assert_eq!(actions["elements"][0]["text"]["text"], "Approve");
        assert_eq!(actions["elements"][0]["text"]["type"], "plain_text");
        assert_eq!(actions["elements"][0]["style"], "primary");
        assert_eq!(actions["elements"][1]["action_id"], VETO_ACTION_ID);
        assert_eq!(actions["elements"][1]["text"]["text"], "Veto");
        assert_eq!(actions["elements"][1]["style"], "danger");
        let plain = serde_json::to_value(message_content("x", false)).unwrap();
        assert_eq!(plain["blocks"].as_array().unwrap().len(), 1);

        let long = format!("{}\n{}", "a".repeat(2500), "b".repeat(2000));
        let parts = split_sections(&long);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts.concat(), long);
        assert!(parts
            .iter()
            .all(|p| p.chars().count() <= SECTION_TEXT_LIMIT));
        let huge = "é".repeat(SECTION_TEXT_LIMIT * 60);
        let parts = split_sections(&huge);
        assert_eq!(parts.len(), MAX_SECTIONS);
        assert!(parts
            .iter()
            .all(|p| p.chars().count() <= SECTION_TEXT_LIMIT));
        assert!(split_sections("").is_empty());
    }

    // ---- round trip against a recorder on 127.0.0.1

    /// (method or "response_url", Authorization header, JSON body)
    type Call = (String, Option<String>, Value);

    #[derive(Clone, Default)]
    struct Recorder {
        calls: Arc<Mutex<Vec<Call>>>,
    }

    async fn api(
        State(rec): State<Recorder>,
        Path(method): Path<String>,
        headers: HeaderMap,
        Json(body): Json<Value>,
    ) -> Response {
        let auth = headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_string());
        rec.calls
            .lock()
            .unwrap()
            .push((method.clone(), auth, body.clone()));
        let channel = body["channel"].as_str().unwrap_or_default().to_string();
        match channel.as_str() {
            "C429" => (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "1")],
                Json(json!({"ok": false, "error": "ratelimited"})),
            )
                .into_response(),
            "C500" => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
            "CGONE" => Json(json!({"ok": false, "error": "channel_not_found"})).into_response(),
            "CHANG" => std::future::pending::<Response>().await,
            _ => {
                let ts = if method == "chat.update" {
                    body["ts"].as_str().unwrap().to_string()
                } else {
                    "1700000000.000100".to_string()
                };
                Json(json!({
                    "ok": true, "channel": channel, "ts": ts,
                    "message": { "type": "message", "text": body["text"], "ts": ts, "bot_id": "B0BOT" }
                }))
                .into_response()
            }
        }
    }

    async fn respond_hook(
        State(rec): State<Recorder>,
        headers: HeaderMap,
        Json(body): Json<Value>,
    ) -> &'static str {
        let auth = headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_string());
        rec.calls
            .lock()
            .unwrap()
            .push(("response_url".into(), auth, body));
        "ok"
    }

    async fn recorder() -> (String, Recorder) {
        let rec = Recorder::default();
        let app = Router::new()
            .route("/api/{method}", post(api))
            .route("/hooks/commands/{a}/{b}", post(respond_hook))
            .with_state(rec.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{addr}"), rec)
    }

    #[tokio::test]
    async fn round_trip_through_loopback() {
        let (base, rec) = recorder().await;
        let client = SlackClient::new(&settings(&format!("{base}/api/"))).unwrap();

        let ts = client
            .post_message("C01DEPLOYS", None, "📋 Pre-deployment checklist", false)
            .await
            .unwrap();
        assert_eq!(ts, "1700000000.000100");
        let reply = client
            .post_message("C01DEPLOYS", Some(&ts), "Migrations reviewed", true)
            .await
            .unwrap();
        assert_eq!(reply, "1700000000.000100");
        client
            .update_message("C01DEPLOYS", &ts, "✅ approved", false)
            .await
            .unwrap();
        client
            .respond(&format!("{base}/hooks/commands/T1/42"), "bad version", true)
            .await
            .unwrap();
        client
            .respond(&format!("{base}/hooks/commands/T1/43"), "on it", false)
            .await
            .unwrap();
        client
            .post_ephemeral(
                "C01DEPLOYS",
                Some("1700000000.000100"),
                "U01BOB",
                "you cannot approve your own run",
            )
            .await
            .unwrap();

        assert_eq!(
            client.post_message("C429", None, "x", false).await,
            Err(SlackError::RateLimited {
                retry_after: Duration::from_secs(1)
            })
        );
        assert!(matches!(
            client.update_message("C500", "1.2", "x", false).await,
            Err(SlackError::Transient(_))
        ));
        match client.post_message("CGONE", None, "x", false).await {
            Err(SlackError::Permanent(m)) => assert!(m.contains("channel_not_found"), "{m}"),
            other => panic!("{other:?}"),
        }

        let calls = rec.calls.lock().unwrap().clone();
        let (m, auth, first) = &calls[0];
        assert_eq!(m, "chat.postMessage");
        assert_eq!(auth.as_deref(), Some("Bearer xoxb-test"));
        assert_eq!(first["channel"], "C01DEPLOYS");
        assert_eq!(first["text"], "📋 Pre-deployment checklist");
        assert!(first.get("thread_ts").is_none());
        assert_eq!(first["blocks"].as_array().unwrap().len(), 1);

        let (_, _, second) = &calls[1];
        assert_eq!(second["thread_ts"], "1700000000.000100");
        assert_eq!(second["blocks"][1]["type"], "actions");
        assert_eq!(
            second["blocks"][1]["elements"][0]["action_id"],
            "greenlight_approve"
        );
        assert_eq!(
            second["blocks"][1]["elements"][1]["action_id"],
            "greenlight_veto"
        );

        let (m, _, update) = &calls[2];
        assert_eq!(m, "chat.update");
        assert_eq!(update["ts"], "1700000000.000100");
        assert_eq!(update["text"], "✅ approved");
        assert_eq!(update["blocks"].as_array().unwrap().len(), 1);

        let (m, auth, eph) = &calls[3];
        assert_eq!(m, "response_url");
        assert_eq!(auth, &None, "the bot token never goes to a response_url");
        assert_eq!(eph["response_type"], "ephemeral");
        assert_eq!(eph["text"], "bad version");
        assert_eq!(eph["replace_original"], false);
        let (_, _, public) = &calls[4];
        assert_eq!(public["response_type"], "in_channel");

        let (m, _, pe) = &calls[5];
        assert_eq!(m, "chat.postEphemeral");
        assert_eq!(pe["user"], "U01BOB");
        assert_eq!(pe["channel"], "C01DEPLOYS");
        assert_eq!(pe["thread_ts"], "1700000000.000100");
    }

    #[tokio::test]
    async fn a_call_that_never_answers_times_out() {
        let (base, _rec) = recorder().await;
        let mut s = settings(&format!("{base}/api/"));
        // tokio's paused clock needs `test-util`, not enabled here; the timeout itself is the
        // thing under test, so it is kept tiny.
        s.request_timeout = Duration::from_millis(20);
        let client = SlackClient::new(&s).unwrap();
        match client.post_message("CHANG", None, "x", false).await {
            Err(SlackError::Transient(m)) => assert!(m.contains("no answer"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    // ---- Socket Mode against a loopback fake (apps.connections.open + a WebSocket)

    #[derive(Clone)]
    struct FakeSocketSlack {
        ws_url: Arc<Mutex<String>>,
        opens: Arc<Mutex<Vec<Option<String>>>>,
        sockets: tokio::sync::mpsc::UnboundedSender<axum::extract::ws::WebSocket>,
    }

    async fn connections_open(State(f): State<FakeSocketSlack>, headers: HeaderMap) -> Json<Value> {
        let auth = headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_string());
        f.opens.lock().unwrap().push(auth);
        let url = f.ws_url.lock().unwrap().clone();
        Json(json!({ "ok": true, "url": url }))
    }

    async fn ws_upgrade(
        State(f): State<FakeSocketSlack>,
        ws: axum::extract::ws::WebSocketUpgrade,
    ) -> Response {
        ws.on_upgrade(move |socket| async move {
            let _ = f.sockets.send(socket);
        })
    }

    async fn next_text(socket: &mut axum::extract::ws::WebSocket) -> Value {
        use axum::extract::ws::Message;
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(10), socket.recv())
                .await
                .expect("no frame within 10 s")
                .expect("socket closed")
                .unwrap();
            if let Message::Text(t) = msg {
                return serde_json::from_str(t.as_str()).unwrap();
            }
        }
    }

    /// Awaits `f` with a 10 s deadline (a hang fails the test instead of blocking it).
    async fn within<F: Future>(f: F) -> F::Output {
        tokio::time::timeout(Duration::from_secs(10), f)
            .await
            .expect("nothing within 10 s")
    }

    async fn send(socket: &mut axum::extract::ws::WebSocket, v: Value) {
        socket
            .send(axum::extract::ws::Message::Text(v.to_string().into()))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn socket_mode_converts_acks_and_reconnects_on_disconnect() {
        let (sock_tx, mut sock_rx) = tokio::sync::mpsc::unbounded_channel();
        let fake = FakeSocketSlack {
            ws_url: Arc::default(),
            opens: Arc::default(),
            sockets: sock_tx,
        };
        let app = Router::new()
            .route("/api/apps.connections.open", post(connections_open))
            .route("/ws", axum::routing::get(ws_upgrade))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        *fake.ws_url.lock().unwrap() = format!("ws://{addr}/ws");
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        let (in_tx, mut in_rx) = tokio::sync::mpsc::unbounded_channel();
        let sink: Arc<dyn Fn(SlackInbound) + Send + Sync> = Arc::new(move |i| {
            let _ = in_tx.send(i);
        });
        let telemetry = Telemetry::new();
        let sm = SocketMode::start_with_reconnect(
            &settings(&format!("http://{addr}/api/")),
            sink,
            &telemetry,
            Duration::from_secs(1),
        )
        .await
        .unwrap();

        let mut socket = within(sock_rx.recv()).await.unwrap();
        // Socket open, no hello yet: not connected.
        assert_eq!(telemetry.connected_gauge(Platform::Slack), 0);
        send(
            &mut socket,
            json!({"type": "hello", "num_connections": 1,
                   "debug_info": {"host": "applink-1", "build_number": 1, "approximate_connection_time": 18060},
                   "connection_info": {"app_id": "A123456"}}),
        )
        .await;

        let command = json!({
            "token": "t", "team_id": "T0001", "team_domain": "example", "channel_id": "C01DEPLOYS",
            "channel_name": "deploys", "user_id": "U01ALICE", "user_name": "alice",
            "command": "/deploy", "text": "v1.2.0 prod", "api_app_id": "A123456",
            "is_enterprise_install": "false",
            "response_url": "https://hooks.slack.com/commands/T0001/1/x", "trigger_id": "111.222.abc"
        });
        send(
            &mut socket,
            json!({"envelope_id": "env-1", "payload": command, "type": "slash_commands",
                   "accepts_response_payload": true}),
        )
        .await;
        // Acked with no payload: nothing is shown to the user until greenlight answers.
        assert_eq!(
            next_text(&mut socket).await,
            json!({"envelope_id": "env-1"})
        );
        // The hello (handled before the envelope) marked the connection up.
        assert_eq!(telemetry.connected_gauge(Platform::Slack), 1);
        assert!(telemetry.problems(|_| 0).is_empty());
        assert_eq!(
            within(in_rx.recv()).await.unwrap(),
            SlackInbound::Command {
                dedup: "111.222.abc".into(),
                user: "U01ALICE".into(),
                channel: "C01DEPLOYS".into(),
                command: "/deploy".into(),
                text: "v1.2.0 prod".into(),
                response_url: "https://hooks.slack.com/commands/T0001/1/x".into(),
            }
        );

        send(
            &mut socket,
            json!({"envelope_id": "env-2", "payload": reaction_event("reaction_removed"),
                   "type": "events_api", "accepts_response_payload": false,
                   "retry_attempt": 0, "retry_reason": ""}),
        )
        .await;
        assert_eq!(
            next_text(&mut socket).await,
            json!({"envelope_id": "env-2"})
        );
        assert!(matches!(
            within(in_rx.recv()).await.unwrap(),
            SlackInbound::Reaction { added: false, ref dedup, .. } if dedup == "Ev0PV52K21"
        ));

        send(
            &mut socket,
            json!({"envelope_id": "env-3", "payload": block_actions_payload(),
                   "type": "interactive", "accepts_response_payload": false}),
        )
        .await;
        assert_eq!(
            next_text(&mut socket).await,
            json!({"envelope_id": "env-3"})
        );
        assert!(matches!(
            within(in_rx.recv()).await.unwrap(),
            SlackInbound::Action { ref action_id, .. } if action_id == "greenlight_veto"
        ));

        // `disconnect` makes slack-morphism open a new connection through apps.connections.open.
        send(
            &mut socket,
            json!({"type": "disconnect", "reason": "refresh_requested",
                   "debug_info": {"host": "applink-1"}}),
        )
        .await;
        let mut second = within(sock_rx.recv()).await.unwrap();
        // Reconnecting through apps.connections.open: down until the new socket's hello.
        assert_eq!(telemetry.connected_gauge(Platform::Slack), 0);
        let why = telemetry.problems(|_| 0).join("; ");
        assert!(
            why.starts_with("slack: not connected since ") && why.contains("reconnecting"),
            "{why}"
        );
        let opens = fake.opens.lock().unwrap().clone();
        assert_eq!(opens.len(), 2);
        assert!(opens
            .iter()
            .all(|a| a.as_deref() == Some("Bearer xapp-test")));
        send(
            &mut second,
            json!({"envelope_id": "env-4", "payload": reaction_event("reaction_added"),
                   "type": "events_api", "accepts_response_payload": false}),
        )
        .await;
        assert_eq!(
            next_text(&mut second).await,
            json!({"envelope_id": "env-4"})
        );
        // No hello on this socket, but an envelope came through it: connected.
        assert_eq!(telemetry.connected_gauge(Platform::Slack), 1);
        assert!(matches!(
            within(in_rx.recv()).await.unwrap(),
            SlackInbound::Reaction { added: true, .. }
        ));

        sm.shutdown().await;
        // The client closes its socket; no new connection is opened.
        loop {
            match within(second.recv()).await {
                Some(Ok(axum::extract::ws::Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            }
        }
        assert_eq!(fake.opens.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn socket_mode_needs_an_app_token() {
        let mut s = settings("https://slack.com/api/");
        s.app_token = None;
        let sink: Arc<dyn Fn(SlackInbound) + Send + Sync> = Arc::new(|_| {});
        assert!(SocketMode::start(&s, sink, &Telemetry::new())
            .await
            .is_err());
    }

    #[tokio::test]
    async fn production_client_refuses_a_plain_http_response_url() {
        let client = SlackClient::new(&settings("https://slack.com/api/")).unwrap();
        match client
            .respond("http://hooks.example.com/commands/1", "x", true)
            .await
        {
            Err(SlackError::Permanent(m)) => assert!(m.contains("https"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn connection_refused_is_transient() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let client = SlackClient::new(&settings(&format!("http://{addr}/api/"))).unwrap();
        match client.post_message("C1", None, "x", false).await {
            // Readable, on one line: what /readyz shows.
            Err(SlackError::Transient(m)) => assert!(
                m.starts_with("chat.postMessage: ")
                    && m.contains("onnection refused")
                    && !m.contains("Some(")
                    && !m.contains('\n'),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
    }
}
