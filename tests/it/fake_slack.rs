//! A protocol-faithful fake of Slack on 127.0.0.1:0 for the real slack-morphism 2.31.1 client:
//! Web API under `/api/`, Socket Mode WebSocket at `/socket`, `response_url` at `/response/N`.
//!
//! Payloads follow the shapes slack-morphism deserializes (see the self-tests at the bottom,
//! which parse every frame and answer with the crate's own model types). Waits poll with a
//! deadline; nothing sleeps to synchronise.
//!
//! Faithful details worth knowing when writing tests:
//! - slack-morphism builds method URLs as `format!("{}/{}", api_url, method)`, so with
//!   `api_url()` ending in `/` it calls `/api//chat.postMessage`; both forms are served.
//! - Every `apps.connections.open` issues a single-use socket ticket (`?n=K`); a WebSocket
//!   handshake without a fresh ticket is refused with 401, so reconnecting must go through
//!   `apps.connections.open` again.
//! - Envelopes go to the newest live connection; while none is live they are queued and
//!   delivered after the next `hello` (Slack retries delivery too).
//! - `reactions.add` by the bot is echoed back as a `reaction_added` event from `UBOT`, as
//!   Slack does for an app subscribed to reactions (turn off with `echo_own_reactions(false)`).
//! - `set_outage` takes the whole fake down (Web API, response URLs, Socket Mode handshakes):
//!   answering an HTTP status, or unreachable (open connections cut, new ones closed at once).
#![allow(dead_code)]

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

use crate::fake_common::{self as common, Faults};

/// The only bot token the fake accepts for bot methods.
pub const BOT_TOKEN: &str = "xoxb-test";
/// An app-level token; any token starting with `xapp-` is accepted for `apps.connections.open`.
pub const APP_TOKEN: &str = "xapp-1-A01-test";
pub const TEAM_ID: &str = "T01";
pub const TEAM_DOMAIN: &str = "fake";
pub const APP_ID: &str = "A01";
pub const BOT_USER_ID: &str = "UBOT";
pub const BOT_ID: &str = "BBOT";
pub const VERIFICATION_TOKEN: &str = "fake-verification-token";
/// Channels that exist from the start: (id, name).
pub const DEFAULT_CHANNELS: [(&str, &str); 4] = [
    ("C01DEPLOYS", "deploys"),
    ("C01INCIDENT", "incident"),
    ("C01ANNOUNCE", "announce"),
    ("C02STAGING", "staging"),
];
/// A `response_url` may be used this many times (Slack: 5 times within 30 minutes).
pub const RESPONSE_URL_MAX_USES: u32 = 5;

/// A scripted failure for the next call of one Web API method.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// HTTP 429 with `Retry-After` and `{"ok":false,"error":"ratelimited"}`.
    RateLimited { retry_after_secs: u64 },
    /// HTTP 500 with a plain-text body.
    ServerError,
    /// Never answers; the request hangs until the client gives up.
    Hang,
    /// HTTP 200 with `{"ok":false,"error":<code>}`.
    ApiError(String),
}

/// How the fake is down (see [`FakeSlack::set_outage`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Outage {
    /// Every Web API call, `response_url` POST and Socket Mode handshake is answered with this
    /// HTTP status and a plain-text body; nothing takes effect.
    Status(u16),
    /// Nothing answers: every open connection (WebSockets too) is cut without a close frame,
    /// and new connections are closed as soon as they are accepted.
    Unreachable,
}

/// One recorded Web API call.
#[derive(Debug, Clone)]
pub struct ApiCall {
    pub method: String,
    pub http_method: String,
    /// From `Authorization: Bearer`, else the `token` body field.
    pub token: Option<String>,
    /// The JSON body, or the form/query fields as strings (`blocks`/`attachments` parsed).
    pub body: Value,
    pub at: Instant,
    /// The scripted fault this call consumed, if any.
    pub fault: Option<Fault>,
}

/// A message as the channel shows it after `chat.postMessage` / `chat.update` / deletes.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeMessage {
    pub channel: String,
    pub ts: String,
    pub thread_ts: Option<String>,
    pub text: String,
    /// The blocks array, or `Value::Null` if the message has none.
    pub blocks: Value,
    pub attachments: Value,
    /// How many times it was changed (`chat.update` or `replace_original`).
    pub edits: usize,
    /// Reactions the bot added with `reactions.add` (names without colons).
    pub reactions: Vec<String>,
}

impl FakeMessage {
    /// The text plus every `text` string found in blocks and attachments, one per line:
    /// what a reader would see.
    pub fn rendered(&self) -> String {
        let mut out = vec![self.text.clone()];
        collect_texts(&self.blocks, &mut out);
        collect_texts(&self.attachments, &mut out);
        out.retain(|s| !s.is_empty());
        out.join("\n")
    }

    pub fn is_reply(&self) -> bool {
        self.thread_ts.as_deref().is_some_and(|t| t != self.ts)
    }
}

/// An ephemeral message sent with `chat.postEphemeral`.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeEphemeral {
    pub channel: String,
    pub user: String,
    pub thread_ts: Option<String>,
    pub text: String,
    pub blocks: Value,
}

/// One POST to a `response_url`.
#[derive(Debug, Clone)]
pub struct FakeResponse {
    /// The N in `/response/N`.
    pub url_id: u64,
    /// The envelope that carried this `response_url`.
    pub envelope_id: String,
    pub channel: String,
    pub user: String,
    /// `{response_type?, text?, blocks?, replace_original?, delete_original?, thread_ts?, ...}`.
    pub body: Value,
    pub at: Instant,
}

impl FakeResponse {
    pub fn text(&self) -> String {
        self.body["text"].as_str().unwrap_or("").to_string()
    }
    /// `response_type` as sent (Slack treats a missing one as `ephemeral`).
    pub fn response_type(&self) -> Option<&str> {
        self.body["response_type"].as_str()
    }
    pub fn rendered(&self) -> String {
        let mut out = vec![self.text()];
        collect_texts(&self.body["blocks"], &mut out);
        out.retain(|s| !s.is_empty());
        out.join("\n")
    }
}

/// One acknowledgement frame `{"envelope_id":..., "payload"?:...}` from a client.
#[derive(Debug, Clone)]
pub struct FakeAck {
    pub envelope_id: String,
    pub payload: Option<Value>,
    /// Which WebSocket connection (1-based, in opening order) sent it.
    pub connection: u64,
    pub at: Instant,
}

enum Out {
    /// An envelope: requeued if the connection dies before it is written.
    Envelope(String),
    /// A control frame (disconnect): never requeued.
    Control(String),
    Close,
}

struct ResponseUrl {
    envelope_id: String,
    channel: String,
    user: String,
    /// The message the action was taken on (block actions), for replace/delete_original.
    message_ts: Option<String>,
    uses: u32,
}

struct Inner {
    channels: Vec<(String, String)>,
    users: HashMap<String, String>,
    echo_own_reactions: bool,
    calls: Vec<ApiCall>,
    faults: Faults<String, Fault>,
    messages: Vec<FakeMessage>,
    ephemerals: Vec<FakeEphemeral>,
    responses: Vec<FakeResponse>,
    response_urls: HashMap<u64, ResponseUrl>,
    next_ts: u64,
    next_seq: u64,
    tickets_issued: u64,
    tickets_used: HashSet<u64>,
    opened: u64,
    rejected_sockets: u64,
    live: BTreeMap<u64, mpsc::UnboundedSender<Out>>,
    pending: Vec<String>,
    envelopes: Vec<(String, Value)>,
    acks: Vec<FakeAck>,
    client_frames: Vec<Value>,
    outage: Option<Outage>,
    /// Calls and response_url POSTs answered with an outage status.
    refused_calls: u64,
}

struct Shared {
    port: u16,
    inner: Mutex<Inner>,
    /// Woken when the fake becomes unreachable: every accepted connection is then cut.
    cut: Arc<tokio::sync::Notify>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The fake. Dropping it stops the server and closes its WebSocket connections.
pub struct FakeSlack {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeSlack {
    fn drop(&mut self) {
        self.server.abort();
        // Dropping the senders ends every connection task, which closes its socket.
        self.shared.lock().live.clear();
    }
}

impl FakeSlack {
    /// Binds 127.0.0.1:0 and serves until dropped.
    pub async fn start() -> FakeSlack {
        let (listener, addr) = common::bind("fake Slack").await;
        let shared = Arc::new(Shared {
            port: addr.port(),
            inner: Mutex::new(Inner::new()),
            cut: Arc::default(),
        });
        let app = Router::new()
            .route("/socket", get(socket_handler))
            .route("/response/{n}", post(response_handler))
            .fallback(api_handler)
            .with_state(shared.clone());
        let gate = Gate {
            listener,
            shared: shared.clone(),
        };
        let server = tokio::spawn(async move {
            let _ = axum::serve(gate, app).await;
        });
        FakeSlack {
            shared,
            addr,
            server,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.shared.lock()
    }

    // ---- addresses and configuration ----

    /// `http://127.0.0.1:PORT/api/`: the Slack API base URL to configure.
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}/api/", self.addr.port())
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.addr.port())
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Makes a channel exist (the defaults are [`DEFAULT_CHANNELS`]).
    pub fn add_channel(&self, id: &str, name: &str) {
        let mut inner = self.lock();
        inner.channels.retain(|(c, _)| c != id);
        inner.channels.push((id.to_string(), name.to_string()));
    }

    /// Makes a channel unknown: later calls naming it get `channel_not_found`.
    pub fn remove_channel(&self, id: &str) {
        self.lock().channels.retain(|(c, _)| c != id);
    }

    /// The `user_name` sent with slash commands and block actions (default: the id lowercased).
    pub fn set_user_name(&self, user_id: &str, name: &str) {
        self.lock()
            .users
            .insert(user_id.to_string(), name.to_string());
    }

    /// Whether the bot's own `reactions.add` comes back as a `reaction_added` event (default on).
    pub fn echo_own_reactions(&self, on: bool) {
        self.lock().echo_own_reactions = on;
    }

    /// Takes the fake down (`Some`) or brings it back (`None`); see [`Outage`]. Becoming
    /// unreachable cuts every open connection at once.
    pub fn set_outage(&self, outage: Option<Outage>) {
        let unreachable = outage == Some(Outage::Unreachable);
        self.lock().outage = outage;
        if unreachable {
            self.shared.cut.notify_waiters();
        }
    }

    /// A fresh `response_url` (as a slash command from `user` in `channel` would carry), for
    /// requests a test builds itself (HTTP mode).
    pub fn response_url(&self, channel: &str, user: &str) -> String {
        let mut inner = self.lock();
        let envelope_id = inner.new_envelope_id();
        let n = inner.new_response_url(&envelope_id, channel, user, None);
        format!("http://127.0.0.1:{}/response/{n}", self.addr.port())
    }

    /// How many calls, response_url POSTs and socket handshakes an outage status answered.
    pub fn refused_calls(&self) -> u64 {
        self.lock().refused_calls
    }

    /// The next call of `method` (e.g. "chat.postMessage") fails with `fault`. Faults queue up.
    pub fn fail_next(&self, method: &str, fault: Fault) {
        self.lock().faults.push(method.to_string(), fault);
    }

    // ---- Web API queries ----

    /// The bodies of every call of `method`, in order (faulted calls included).
    pub fn calls(&self, method: &str) -> Vec<Value> {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.method == method)
            .map(|c| c.body.clone())
            .collect()
    }

    /// Every Web API call, in order.
    pub fn api_calls(&self) -> Vec<ApiCall> {
        self.lock().calls.clone()
    }

    /// All messages in all channels, in posting order (thread replies included).
    pub fn messages(&self) -> Vec<FakeMessage> {
        self.lock().messages.clone()
    }

    pub fn channel_messages(&self, channel: &str) -> Vec<FakeMessage> {
        self.lock()
            .messages
            .iter()
            .filter(|m| m.channel == channel)
            .cloned()
            .collect()
    }

    pub fn message(&self, channel: &str, ts: &str) -> Option<FakeMessage> {
        self.lock().find_message(channel, ts).cloned()
    }

    /// The replies in the thread of `thread_ts` (not the parent).
    pub fn thread(&self, channel: &str, thread_ts: &str) -> Vec<FakeMessage> {
        self.lock()
            .messages
            .iter()
            .filter(|m| m.channel == channel && m.is_reply())
            .filter(|m| m.thread_ts.as_deref() == Some(thread_ts))
            .cloned()
            .collect()
    }

    pub fn ephemerals(&self) -> Vec<FakeEphemeral> {
        self.lock().ephemerals.clone()
    }

    /// Every POST to a `response_url`, in order.
    pub fn responses(&self) -> Vec<FakeResponse> {
        self.lock().responses.clone()
    }

    // ---- Socket Mode ----

    /// How many WebSocket connections were opened so far.
    pub fn connections(&self) -> u64 {
        self.lock().opened
    }

    /// How many WebSocket connections are open now.
    pub fn live_connections(&self) -> usize {
        self.lock().live.len()
    }

    /// How many WebSocket handshakes were refused (no or reused ticket).
    pub fn rejected_sockets(&self) -> u64 {
        self.lock().rejected_sockets
    }

    /// Pushes a `{"type":kind, "envelope_id", "accepts_response_payload", "retry_attempt": 0,
    /// "retry_reason": "", "payload"}` envelope; returns its envelope id.
    pub fn send_envelope(
        &self,
        kind: &str,
        payload: Value,
        accepts_response_payload: bool,
    ) -> String {
        let mut inner = self.lock();
        let envelope_id = inner.new_envelope_id();
        inner.send_envelope(envelope_id, kind, payload, accepts_response_payload)
    }

    /// Pushes any frame as is (for malformed-frame tests). Not recorded as an envelope.
    pub fn send_raw(&self, frame: Value) {
        self.lock().deliver(frame.to_string());
    }

    /// A `slash_commands` envelope with the documented payload fields; returns the envelope id.
    pub fn slash_command(
        &self,
        user_id: &str,
        channel_id: &str,
        command: &str,
        text: &str,
    ) -> String {
        let mut inner = self.lock();
        let envelope_id = inner.new_envelope_id();
        let seq = inner.seq();
        let url_id = inner.new_response_url(&envelope_id, channel_id, user_id, None);
        let payload = json!({
            "token": VERIFICATION_TOKEN,
            "team_id": TEAM_ID,
            "team_domain": TEAM_DOMAIN,
            "channel_id": channel_id,
            "channel_name": inner.channel_name(channel_id),
            "user_id": user_id,
            "user_name": inner.user_name(user_id),
            "command": command,
            "text": text,
            "api_app_id": APP_ID,
            "is_enterprise_install": "false",
            "response_url": format!("http://127.0.0.1:{}/response/{url_id}", self.addr.port()),
            "trigger_id": trigger_id(seq),
        });
        inner.send_envelope(envelope_id, "slash_commands", payload, true)
    }

    /// An `events_api` envelope around an `event_callback` with a `reaction_added` (or
    /// `reaction_removed`) event on the message `ts`; returns the envelope id. `emoji` may
    /// be given with or without colons.
    pub fn reaction(
        &self,
        user: &str,
        channel: &str,
        ts: &str,
        emoji: &str,
        added: bool,
    ) -> String {
        let mut inner = self.lock();
        let envelope_id = inner.new_envelope_id();
        let payload = inner.reaction_payload(user, channel, ts, emoji, added);
        inner.send_envelope(envelope_id, "events_api", payload, false)
    }

    /// An `interactive` envelope with a `block_actions` payload: `user` clicked the element
    /// `action_id` on the message `message_ts`. The element's type, value, text and block id
    /// are taken from the stored message's blocks (a button with no value if not found).
    pub fn block_action(
        &self,
        user: &str,
        channel: &str,
        message_ts: &str,
        action_id: &str,
    ) -> String {
        self.block_action_with(user, channel, message_ts, action_id, true)
    }

    /// [`block_action`](Self::block_action) with no `response_url` in the payload (the field is
    /// optional in Slack's `block_actions`).
    pub fn block_action_without_response_url(
        &self,
        user: &str,
        channel: &str,
        message_ts: &str,
        action_id: &str,
    ) -> String {
        self.block_action_with(user, channel, message_ts, action_id, false)
    }

    fn block_action_with(
        &self,
        user: &str,
        channel: &str,
        message_ts: &str,
        action_id: &str,
        with_response_url: bool,
    ) -> String {
        let mut inner = self.lock();
        let envelope_id = inner.new_envelope_id();
        let seq = inner.seq();
        let url_id = inner.new_response_url(&envelope_id, channel, user, Some(message_ts));
        let message = inner.find_message(channel, message_ts).cloned();
        let (block_id, element) = message
            .as_ref()
            .and_then(|m| find_action(&m.blocks, action_id))
            .unwrap_or_else(|| ("fake-block".to_string(), json!({"type": "button"})));
        let mut action = json!({
            "type": element.get("type").cloned().unwrap_or(json!("button")),
            "action_id": action_id,
            "block_id": block_id,
            "action_ts": event_ts(seq),
        });
        for key in ["text", "value", "style", "selected_option"] {
            if let Some(v) = element.get(key) {
                action[key] = v.clone();
            }
        }
        let user_name = inner.user_name(user);
        let mut payload = json!({
            "type": "block_actions",
            "user": {"id": user, "username": user_name, "name": user_name, "team_id": TEAM_ID},
            "api_app_id": APP_ID,
            "token": VERIFICATION_TOKEN,
            "container": {
                "type": "message",
                "message_ts": message_ts,
                "channel_id": channel,
                "is_ephemeral": false,
            },
            "trigger_id": trigger_id(seq),
            "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
            "enterprise": null,
            "is_enterprise_install": false,
            "channel": {"id": channel, "name": inner.channel_name(channel)},
            "state": {"values": {}},
            "response_url": format!("http://127.0.0.1:{}/response/{url_id}", self.addr.port()),
            "actions": [action],
        });
        if let Some(m) = &message {
            payload["message"] = message_json(m);
        }
        if !with_response_url {
            payload.as_object_mut().unwrap().remove("response_url");
            inner.response_urls.remove(&url_id);
        }
        inner.send_envelope(envelope_id, "interactive", payload, false)
    }

    /// Sends the envelope `envelope_id` again, same id and payload, `retry_attempt` + 1 and
    /// `retry_reason` "timeout".
    pub fn redeliver(&self, envelope_id: &str) {
        let mut inner = self.lock();
        let Some((_, env)) = inner.envelopes.iter().find(|(id, _)| id == envelope_id) else {
            panic!("fake Slack: redeliver of unknown envelope {envelope_id}");
        };
        let mut env = env.clone();
        env["retry_attempt"] = json!(env["retry_attempt"].as_u64().unwrap_or(0) + 1);
        env["retry_reason"] = json!("timeout");
        inner.envelopes.push((envelope_id.to_string(), env.clone()));
        inner.deliver(env.to_string());
    }

    /// Sends `{"type":"disconnect","reason":"refresh_requested",...}` on every live connection
    /// and closes it. The client must reconnect through `apps.connections.open`.
    pub fn disconnect(&self) {
        let frame = json!({
            "type": "disconnect",
            "reason": "refresh_requested",
            "debug_info": {"host": "fake"},
        })
        .to_string();
        let mut inner = self.lock();
        for tx in std::mem::take(&mut inner.live).into_values() {
            let _ = tx.send(Out::Control(frame.clone()));
            let _ = tx.send(Out::Close);
        }
    }

    /// Closes every live connection without a disconnect frame (a network drop).
    pub fn drop_connections(&self) {
        let mut inner = self.lock();
        for tx in std::mem::take(&mut inner.live).into_values() {
            let _ = tx.send(Out::Close);
        }
    }

    /// Every envelope pushed so far (redeliveries included), in order.
    pub fn envelopes(&self) -> Vec<Value> {
        self.lock()
            .envelopes
            .iter()
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// The envelope as first sent (payload with event_id, trigger_id, response_url...).
    pub fn envelope(&self, envelope_id: &str) -> Option<Value> {
        self.lock()
            .envelopes
            .iter()
            .find(|(id, _)| id == envelope_id)
            .map(|(_, e)| e.clone())
    }

    pub fn acked(&self, envelope_id: &str) -> bool {
        self.ack(envelope_id).is_some()
    }

    /// The first ack of `envelope_id` (its `payload` is a slash command's immediate reply).
    pub fn ack(&self, envelope_id: &str) -> Option<FakeAck> {
        self.lock()
            .acks
            .iter()
            .find(|a| a.envelope_id == envelope_id)
            .cloned()
    }

    pub fn ack_count(&self, envelope_id: &str) -> usize {
        self.lock()
            .acks
            .iter()
            .filter(|a| a.envelope_id == envelope_id)
            .count()
    }

    pub fn acks(&self) -> Vec<FakeAck> {
        self.lock().acks.clone()
    }

    /// Every text frame the clients sent, parsed (acks and anything else).
    pub fn client_frames(&self) -> Vec<Value> {
        self.lock().client_frames.clone()
    }

    // ---- waiting ----

    /// Polls `f` until it returns `Some`, or panics after `timeout` naming `what` and
    /// dumping the fake's state.
    pub async fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&FakeSlack) -> Option<T>,
    ) -> T {
        common::wait_for("fake Slack", what, timeout, || f(self), || self.dump()).await
    }

    /// [`wait_for`](Self::wait_for) with a boolean predicate.
    pub async fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&FakeSlack) -> bool,
    ) {
        self.wait_for(what, timeout, |f| pred(f).then_some(()))
            .await
    }

    /// Waits until at least `n` connections were opened and one is live.
    pub async fn wait_connected(&self, n: u64, timeout: Duration) {
        self.wait_until(&format!("{n} socket connection(s)"), timeout, |f| {
            f.connections() >= n && f.live_connections() > 0
        })
        .await
    }

    /// Waits for the ack of `envelope_id` and returns it.
    pub async fn wait_acked(&self, envelope_id: &str, timeout: Duration) -> FakeAck {
        self.wait_for(&format!("ack of envelope {envelope_id}"), timeout, |f| {
            f.ack(envelope_id)
        })
        .await
    }

    /// Waits for a message matching `pred` and returns it.
    pub async fn wait_message(
        &self,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&FakeMessage) -> bool,
    ) -> FakeMessage {
        self.wait_for(what, timeout, |f| {
            f.messages().into_iter().find(|m| pred(m))
        })
        .await
    }

    /// A readable summary of everything the fake saw, for failure messages.
    pub fn dump(&self) -> String {
        let inner = self.lock();
        let mut out = String::from("--- fake Slack state ---\n");
        out += &format!(
            "sockets: opened {}, live {}, rejected {}, tickets issued {}\n",
            inner.opened,
            inner.live.len(),
            inner.rejected_sockets,
            inner.tickets_issued
        );
        out += "api calls:\n";
        for c in &inner.calls {
            out += &format!(
                "  {} {}{} {}\n",
                c.http_method,
                c.method,
                c.fault
                    .as_ref()
                    .map(|f| format!(" [fault {f:?}]"))
                    .unwrap_or_default(),
                common::truncate(&c.body.to_string(), 300)
            );
        }
        out += "messages:\n";
        for m in &inner.messages {
            out += &format!(
                "  {} ts={} thread={:?} edits={} reactions={:?}: {}\n",
                m.channel,
                m.ts,
                m.thread_ts,
                m.edits,
                m.reactions,
                common::truncate(&m.rendered(), 300)
            );
        }
        out += "envelopes:\n";
        for (id, e) in &inner.envelopes {
            let acked = inner.acks.iter().any(|a| &a.envelope_id == id);
            out += &format!(
                "  {id} {} retry={} acked={acked}\n",
                e["type"].as_str().unwrap_or("?"),
                e["retry_attempt"]
            );
        }
        out += &format!("pending (no live connection): {}\n", inner.pending.len());
        out += "responses:\n";
        for r in &inner.responses {
            out += &format!(
                "  /response/{} {}\n",
                r.url_id,
                common::truncate(&r.body.to_string(), 300)
            );
        }
        out
    }
}

impl Inner {
    fn new() -> Inner {
        Inner {
            channels: DEFAULT_CHANNELS
                .iter()
                .map(|(id, name)| (id.to_string(), name.to_string()))
                .collect(),
            users: HashMap::new(),
            echo_own_reactions: true,
            calls: Vec::new(),
            faults: Faults::default(),
            messages: Vec::new(),
            ephemerals: Vec::new(),
            responses: Vec::new(),
            response_urls: HashMap::new(),
            next_ts: 0,
            next_seq: 0,
            tickets_issued: 0,
            tickets_used: HashSet::new(),
            opened: 0,
            rejected_sockets: 0,
            live: BTreeMap::new(),
            pending: Vec::new(),
            envelopes: Vec::new(),
            acks: Vec::new(),
            client_frames: Vec::new(),
            outage: None,
            refused_calls: 0,
        }
    }

    /// While the fake answers an outage status: count the refusal and give the answer.
    fn outage_answer(&mut self) -> Option<Response> {
        let Some(Outage::Status(code)) = self.outage else {
            return None;
        };
        self.refused_calls += 1;
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        Some((status, "fake Slack: outage").into_response())
    }

    /// Message timestamps: "1700000000.000100", "1700000000.000200", ... (unique, increasing).
    fn new_ts(&mut self) -> String {
        self.next_ts += 1;
        let micros = self.next_ts * 100;
        format!(
            "{}.{:06}",
            1_700_000_000 + micros / 1_000_000,
            micros % 1_000_000
        )
    }

    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    fn new_envelope_id(&mut self) -> String {
        let seq = self.seq();
        format!("{:08x}-fa4e-4c1a-9e0b-{seq:012x}", 0x5eed_0000u64 + seq)
    }

    fn new_response_url(
        &mut self,
        envelope_id: &str,
        channel: &str,
        user: &str,
        message_ts: Option<&str>,
    ) -> u64 {
        let n = self.seq();
        self.response_urls.insert(
            n,
            ResponseUrl {
                envelope_id: envelope_id.to_string(),
                channel: channel.to_string(),
                user: user.to_string(),
                message_ts: message_ts.map(str::to_string),
                uses: 0,
            },
        );
        n
    }

    fn channel_name(&self, id: &str) -> String {
        self.channels
            .iter()
            .find(|(c, _)| c == id)
            .map(|(_, n)| n.clone())
            .unwrap_or_else(|| id.to_lowercase())
    }

    fn user_name(&self, id: &str) -> String {
        self.users
            .get(id)
            .cloned()
            .unwrap_or_else(|| id.to_lowercase())
    }

    /// A channel id, or a name (`deploys` / `#deploys`) resolved to its id.
    fn resolve_channel(&self, channel: Option<&str>) -> Result<String, &'static str> {
        let c = channel.ok_or("channel_not_found")?;
        let name = c.trim_start_matches('#');
        self.channels
            .iter()
            .find(|(id, n)| id == c || n == name)
            .map(|(id, _)| id.clone())
            .ok_or("channel_not_found")
    }

    fn find_message(&self, channel: &str, ts: &str) -> Option<&FakeMessage> {
        self.messages
            .iter()
            .find(|m| m.channel == channel && m.ts == ts)
    }

    fn find_message_mut(&mut self, channel: &str, ts: &str) -> Option<&mut FakeMessage> {
        self.messages
            .iter_mut()
            .find(|m| m.channel == channel && m.ts == ts)
    }

    fn send_envelope(
        &mut self,
        envelope_id: String,
        kind: &str,
        payload: Value,
        accepts: bool,
    ) -> String {
        let env = json!({
            "envelope_id": envelope_id,
            "type": kind,
            "accepts_response_payload": accepts,
            "retry_attempt": 0,
            "retry_reason": "",
            "payload": payload,
        });
        self.envelopes.push((envelope_id.clone(), env.clone()));
        self.deliver(env.to_string());
        envelope_id
    }

    /// To the newest live connection, else queued for the next one.
    fn deliver(&mut self, frame: String) {
        if let Some(tx) = self.live.values().next_back() {
            // A connection that is closing gives the frame back: keep it for the next one.
            if let Err(mpsc::error::SendError(Out::Envelope(frame))) = tx.send(Out::Envelope(frame))
            {
                self.pending.push(frame);
            }
        } else {
            self.pending.push(frame);
        }
    }

    fn reaction_payload(
        &mut self,
        user: &str,
        channel: &str,
        ts: &str,
        emoji: &str,
        added: bool,
    ) -> Value {
        let seq = self.seq();
        let mut event = json!({
            "type": if added { "reaction_added" } else { "reaction_removed" },
            "user": user,
            "reaction": emoji.trim_matches(':'),
            "item": {"type": "message", "channel": channel, "ts": ts},
            "event_ts": event_ts(seq),
        });
        if self.find_message(channel, ts).is_some() {
            event["item_user"] = json!(BOT_USER_ID);
        }
        json!({
            "token": VERIFICATION_TOKEN,
            "team_id": TEAM_ID,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": format!("Ev{seq:08}FAKE"),
            "event_time": common::unix_secs(),
            "authorizations": [{
                "enterprise_id": null,
                "team_id": TEAM_ID,
                "user_id": BOT_USER_ID,
                "is_bot": true,
                "is_enterprise_install": false,
            }],
            "is_ext_shared_channel": false,
            "event_context": format!("4-fake-{seq}"),
        })
    }

    fn client_frame(&mut self, connection: u64, text: &str) {
        let v =
            serde_json::from_str::<Value>(text).unwrap_or_else(|_| json!({ "_unparsed": text }));
        if let Some(id) = v["envelope_id"].as_str() {
            self.acks.push(FakeAck {
                envelope_id: id.to_string(),
                payload: v.get("payload").cloned(),
                connection,
                at: Instant::now(),
            });
        }
        self.client_frames.push(v);
    }

    // ---- Web API ----

    fn dispatch(&mut self, method: &str, token: Option<&str>, body: &Value, port: u16) -> Value {
        if body.get("_invalid_json").is_some() {
            return json!({"ok": false, "error": "invalid_json"});
        }
        let result = match method {
            "apps.connections.open" => check_app(token).map(|()| {
                self.tickets_issued += 1;
                json!({"ok": true, "url": format!("ws://127.0.0.1:{port}/socket?n={}", self.tickets_issued)})
            }),
            "auth.test" => check_any(token).map(|()| {
                json!({
                    "ok": true,
                    "url": format!("https://{TEAM_DOMAIN}.slack.com/"),
                    "team": "Fake Team",
                    "user": "greenlight",
                    "team_id": TEAM_ID,
                    "user_id": BOT_USER_ID,
                    "bot_id": BOT_ID,
                    "is_enterprise_install": false,
                })
            }),
            "chat.postMessage" => check_bot(token).and_then(|()| self.post_message(body)),
            "chat.update" => check_bot(token).and_then(|()| self.update(body)),
            "chat.delete" => check_bot(token).and_then(|()| self.delete(body)),
            "chat.postEphemeral" => check_bot(token).and_then(|()| self.post_ephemeral(body)),
            "reactions.add" => check_bot(token).and_then(|()| self.reaction_api(body, true)),
            "reactions.remove" => check_bot(token).and_then(|()| self.reaction_api(body, false)),
            _ => Err("unknown_method"),
        };
        result.unwrap_or_else(|e| json!({"ok": false, "error": e}))
    }

    fn post_message(&mut self, body: &Value) -> Result<Value, &'static str> {
        let channel = self.resolve_channel(field(body, "channel"))?;
        let text = field(body, "text").unwrap_or("").to_string();
        let blocks = present(body, "blocks");
        let attachments = present(body, "attachments");
        if text.is_empty() && is_empty(&blocks) && is_empty(&attachments) {
            return Err("no_text");
        }
        let thread_ts = field(body, "thread_ts").map(str::to_string);
        let ts = self.new_ts();
        let msg = FakeMessage {
            channel: channel.clone(),
            ts: ts.clone(),
            thread_ts: thread_ts.clone(),
            text,
            blocks,
            attachments,
            edits: 0,
            reactions: Vec::new(),
        };
        let mut message = message_json(&msg);
        if let Some(parent) = thread_ts.as_deref() {
            if self.find_message(&channel, parent).is_some() {
                message["parent_user_id"] = json!(BOT_USER_ID);
            }
        }
        self.messages.push(msg);
        Ok(json!({"ok": true, "channel": channel, "ts": ts, "message": message}))
    }

    fn update(&mut self, body: &Value) -> Result<Value, &'static str> {
        let channel = self.resolve_channel(field(body, "channel"))?;
        let ts = field(body, "ts").ok_or("message_not_found")?.to_string();
        let text = body["text"].as_str().map(str::to_string);
        let blocks = body.get("blocks").filter(|b| !b.is_null()).cloned();
        let attachments = body.get("attachments").filter(|b| !b.is_null()).cloned();
        if text.is_none() && blocks.is_none() && attachments.is_none() {
            return Err("no_text");
        }
        let seq = self.seq();
        let m = self
            .find_message_mut(&channel, &ts)
            .ok_or("message_not_found")?;
        // Slack keeps whatever the update leaves out (an empty blocks array removes blocks).
        if let Some(t) = text {
            m.text = t;
        }
        if let Some(b) = blocks {
            m.blocks = b;
        }
        if let Some(a) = attachments {
            m.attachments = a;
        }
        m.edits += 1;
        let mut message = json!({
            "type": "message",
            "text": m.text,
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "team": TEAM_ID,
            "edited": {"user": BOT_USER_ID, "ts": event_ts(seq)},
        });
        if !m.blocks.is_null() {
            message["blocks"] = m.blocks.clone();
        }
        if !m.attachments.is_null() {
            message["attachments"] = m.attachments.clone();
        }
        let mut out =
            json!({"ok": true, "channel": channel, "ts": ts, "text": m.text, "message": message});
        if let Some(t) = &m.thread_ts {
            out["thread_ts"] = json!(t);
        }
        Ok(out)
    }

    fn delete(&mut self, body: &Value) -> Result<Value, &'static str> {
        let channel = self.resolve_channel(field(body, "channel"))?;
        let ts = field(body, "ts").ok_or("message_not_found")?.to_string();
        let before = self.messages.len();
        self.messages
            .retain(|m| !(m.channel == channel && m.ts == ts));
        if self.messages.len() == before {
            return Err("message_not_found");
        }
        Ok(json!({"ok": true, "channel": channel, "ts": ts}))
    }

    fn post_ephemeral(&mut self, body: &Value) -> Result<Value, &'static str> {
        let channel = self.resolve_channel(field(body, "channel"))?;
        let user = field(body, "user").ok_or("user_not_found")?.to_string();
        let text = field(body, "text").unwrap_or("").to_string();
        let blocks = present(body, "blocks");
        if text.is_empty() && is_empty(&blocks) && is_empty(&present(body, "attachments")) {
            return Err("no_text");
        }
        self.ephemerals.push(FakeEphemeral {
            channel,
            user,
            thread_ts: field(body, "thread_ts").map(str::to_string),
            text,
            blocks,
        });
        let ts = self.new_ts();
        Ok(json!({"ok": true, "message_ts": ts}))
    }

    fn reaction_api(&mut self, body: &Value, add: bool) -> Result<Value, &'static str> {
        let channel = self.resolve_channel(field(body, "channel"))?;
        let name = field(body, "name")
            .ok_or("invalid_name")?
            .trim_matches(':')
            .to_string();
        let ts = field(body, "timestamp")
            .ok_or("message_not_found")?
            .to_string();
        let m = self
            .find_message_mut(&channel, &ts)
            .ok_or("message_not_found")?;
        if add {
            if m.reactions.contains(&name) {
                return Err("already_reacted");
            }
            m.reactions.push(name.clone());
        } else {
            let before = m.reactions.len();
            m.reactions.retain(|r| r != &name);
            if m.reactions.len() == before {
                return Err("no_reaction");
            }
        }
        if self.echo_own_reactions {
            let envelope_id = self.new_envelope_id();
            let payload = self.reaction_payload(BOT_USER_ID, &channel, &ts, &name, add);
            self.send_envelope(envelope_id, "events_api", payload, false);
        }
        Ok(json!({"ok": true}))
    }

    // ---- response_url ----

    fn respond(&mut self, url_id: u64, body: Value) -> Result<(), (StatusCode, &'static str)> {
        let url = self
            .response_urls
            .get_mut(&url_id)
            .ok_or((StatusCode::NOT_FOUND, "expired_url"))?;
        url.uses += 1;
        if url.uses > RESPONSE_URL_MAX_USES {
            return Err((StatusCode::OK, "used_url"));
        }
        let (envelope_id, channel, user, message_ts) = (
            url.envelope_id.clone(),
            url.channel.clone(),
            url.user.clone(),
            url.message_ts.clone(),
        );
        self.responses.push(FakeResponse {
            url_id,
            envelope_id,
            channel: channel.clone(),
            user,
            body: body.clone(),
            at: Instant::now(),
        });
        let flag = |k: &str| body[k].as_bool() == Some(true) || body[k].as_str() == Some("true");
        match message_ts {
            Some(ts) if flag("delete_original") => {
                self.messages
                    .retain(|m| !(m.channel == channel && m.ts == ts));
            }
            Some(ts) if flag("replace_original") => {
                if let Some(m) = self.find_message_mut(&channel, &ts) {
                    m.text = body["text"].as_str().unwrap_or("").to_string();
                    m.blocks = present(&body, "blocks");
                    m.attachments = present(&body, "attachments");
                    m.edits += 1;
                }
            }
            _ if body["response_type"].as_str() == Some("in_channel") => {
                let ts = self.new_ts();
                self.messages.push(FakeMessage {
                    channel,
                    ts,
                    thread_ts: field(&body, "thread_ts").map(str::to_string),
                    text: body["text"].as_str().unwrap_or("").to_string(),
                    blocks: present(&body, "blocks"),
                    attachments: present(&body, "attachments"),
                    edits: 0,
                    reactions: Vec::new(),
                });
            }
            _ => {}
        }
        Ok(())
    }
}

fn check_bot(token: Option<&str>) -> Result<(), &'static str> {
    match token {
        None | Some("") => Err("not_authed"),
        Some(BOT_TOKEN) => Ok(()),
        Some(t) if t.starts_with("xapp-") => Err("not_allowed_token_type"),
        Some(_) => Err("invalid_auth"),
    }
}

fn check_app(token: Option<&str>) -> Result<(), &'static str> {
    match token {
        None | Some("") => Err("not_authed"),
        Some(t) if t.starts_with("xapp-") => Ok(()),
        Some(t) if t.starts_with("xox") => Err("not_allowed_token_type"),
        Some(_) => Err("invalid_auth"),
    }
}

fn check_any(token: Option<&str>) -> Result<(), &'static str> {
    check_bot(token).or_else(|e| {
        if e == "not_allowed_token_type" {
            Ok(())
        } else {
            Err(e)
        }
    })
}

/// A non-empty string field.
fn field<'a>(body: &'a Value, key: &str) -> Option<&'a str> {
    body[key].as_str().filter(|s| !s.is_empty())
}

/// A field's value, `Null` if absent.
fn present(body: &Value, key: &str) -> Value {
    body.get(key).cloned().unwrap_or(Value::Null)
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

/// The message object as Slack returns it in API answers and interaction payloads.
fn message_json(m: &FakeMessage) -> Value {
    let mut v = json!({
        "type": "message",
        "text": m.text,
        "user": BOT_USER_ID,
        "bot_id": BOT_ID,
        "app_id": APP_ID,
        "team": TEAM_ID,
        "ts": m.ts,
    });
    if let Some(t) = &m.thread_ts {
        v["thread_ts"] = json!(t);
    }
    if !m.blocks.is_null() {
        v["blocks"] = m.blocks.clone();
    }
    if !m.attachments.is_null() {
        v["attachments"] = m.attachments.clone();
    }
    v
}

/// The interactive element `action_id` in a blocks array: (block_id, element).
fn find_action(blocks: &Value, action_id: &str) -> Option<(String, Value)> {
    for (i, block) in blocks.as_array()?.iter().enumerate() {
        let block_id = block["block_id"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("fake-block-{i}"));
        let mut candidates: Vec<&Value> = block["elements"]
            .as_array()
            .map(|e| e.iter().collect())
            .unwrap_or_default();
        candidates.push(&block["accessory"]);
        if let Some(el) = candidates
            .into_iter()
            .find(|el| el["action_id"].as_str() == Some(action_id))
        {
            return Some((block_id, el.clone()));
        }
    }
    None
}

fn collect_texts(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, val) in map {
                match val {
                    Value::String(s) if k == "text" => out.push(s.clone()),
                    _ => collect_texts(val, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_texts(x, out)),
        _ => {}
    }
}

fn trigger_id(seq: u64) -> String {
    format!("1700000000{seq:03}.1.fake{seq:024x}")
}

fn event_ts(seq: u64) -> String {
    format!("{}.{:06}", common::unix_secs(), seq % 1_000_000)
}

/// JSON bodies as is; form bodies and query strings as string fields, with the
/// JSON-in-a-string fields (`blocks`, `attachments`, `metadata`) parsed.
fn parse_body(headers: &HeaderMap, query: Option<&str>, raw: &[u8]) -> Value {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut obj = Map::new();
    if let Some(q) = query {
        form_pairs(q, &mut obj);
    }
    if content_type.starts_with("application/json") {
        match serde_json::from_slice::<Value>(raw) {
            Ok(Value::Object(m)) => obj.extend(m),
            Ok(other) => {
                obj.insert("_body".into(), other);
            }
            Err(_) if raw.is_empty() => {}
            Err(_) => {
                obj.insert("_invalid_json".into(), String::from_utf8_lossy(raw).into());
            }
        }
    } else if !raw.is_empty() {
        form_pairs(&String::from_utf8_lossy(raw), &mut obj);
    }
    Value::Object(obj)
}

fn form_pairs(s: &str, obj: &mut Map<String, Value>) {
    let Ok(url) = reqwest::Url::parse(&format!("http://form.invalid/?{s}")) else {
        return;
    };
    for (k, v) in url.query_pairs() {
        let v = v.into_owned();
        let value = match k.as_ref() {
            "blocks" | "attachments" | "metadata" => {
                serde_json::from_str(&v).unwrap_or(Value::String(v))
            }
            _ => Value::String(v),
        };
        obj.insert(k.into_owned(), value);
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    v.strip_prefix("Bearer ").map(|t| t.trim().to_string())
}

async fn api_handler(
    State(s): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let Some(rest) = uri.path().strip_prefix("/api/") else {
        return (StatusCode::NOT_FOUND, "fake Slack: no such path").into_response();
    };
    // slack-morphism joins "<api_url>/<method>", so "/api//chat.postMessage" is normal.
    let api_method = rest.trim_start_matches('/').to_string();
    if let Some(answer) = s.lock().outage_answer() {
        return answer;
    }
    let body = parse_body(&headers, uri.query(), &raw);
    let token = bearer(&headers).or_else(|| body["token"].as_str().map(str::to_string));
    let fault = {
        let mut inner = s.lock();
        let fault = inner.faults.next(&api_method);
        inner.calls.push(ApiCall {
            method: api_method.clone(),
            http_method: method.to_string(),
            token: token.clone(),
            body: body.clone(),
            at: Instant::now(),
            fault: fault.clone(),
        });
        fault
    };
    match fault {
        Some(Fault::RateLimited { retry_after_secs }) => {
            let body = json!({"ok": false, "error": "ratelimited"});
            return common::rate_limited(retry_after_secs as f64, &body);
        }
        Some(Fault::ServerError) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "fake Slack: internal server error",
            )
                .into_response();
        }
        Some(Fault::Hang) => return std::future::pending::<Response>().await,
        Some(Fault::ApiError(e)) => return Json(json!({"ok": false, "error": e})).into_response(),
        None => {}
    }
    let answer = s
        .lock()
        .dispatch(&api_method, token.as_deref(), &body, s.port);
    Json(answer).into_response()
}

async fn response_handler(
    State(s): State<Arc<Shared>>,
    Path(n): Path<u64>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    if let Some(answer) = s.lock().outage_answer() {
        return answer;
    }
    let body = parse_body(&headers, None, &raw);
    let result = s.lock().respond(n, body);
    match result {
        Ok(()) => Json(json!({"ok": true})).into_response(),
        Err((status, e)) => (status, Json(json!({"ok": false, "error": e}))).into_response(),
    }
}

async fn socket_handler(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    let ticket = q.get("n").and_then(|n| n.parse::<u64>().ok());
    {
        let mut inner = s.lock();
        if let Some(answer) = inner.outage_answer() {
            return answer;
        }
        let fresh = ticket.is_some_and(|n| (1..=inner.tickets_issued).contains(&n));
        if !(fresh && inner.tickets_used.insert(ticket.unwrap_or(0))) {
            inner.rejected_sockets += 1;
            return (
                StatusCode::UNAUTHORIZED,
                "fake Slack: socket ticket unknown or already used; call apps.connections.open",
            )
                .into_response();
        }
    }
    ws.on_upgrade(move |socket| run_socket(s, socket))
}

/// The fake's TCP listener: while the fake is unreachable it closes new connections at once;
/// the ones it hands out can be cut.
struct Gate {
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
}

impl axum::serve::Listener for Gate {
    type Io = Cuttable;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.listener.accept().await else {
                continue;
            };
            if self.shared.lock().outage == Some(Outage::Unreachable) {
                continue;
            }
            let cut = Box::pin(self.shared.cut.clone().notified_owned());
            return (
                Cuttable {
                    stream,
                    cut,
                    dead: false,
                },
                addr,
            );
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// An accepted connection: once the fake becomes unreachable its reads and writes fail, so the
/// server drops it and the socket closes without a word (no HTTP answer, no close frame).
struct Cuttable {
    stream: tokio::net::TcpStream,
    cut: std::pin::Pin<Box<tokio::sync::futures::OwnedNotified>>,
    dead: bool,
}

impl Cuttable {
    fn check(&mut self, cx: &mut std::task::Context<'_>) -> std::io::Result<()> {
        if !self.dead && std::future::Future::poll(self.cut.as_mut(), cx).is_ready() {
            self.dead = true;
        }
        if self.dead {
            Err(std::io::ErrorKind::ConnectionReset.into())
        } else {
            Ok(())
        }
    }
}

impl tokio::io::AsyncRead for Cuttable {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if let Err(e) = self.check(cx) {
            return std::task::Poll::Ready(Err(e));
        }
        std::pin::Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Cuttable {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if let Err(e) = self.check(cx) {
            return std::task::Poll::Ready(Err(e));
        }
        std::pin::Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if let Err(e) = self.check(cx) {
            return std::task::Poll::Ready(Err(e));
        }
        std::pin::Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

async fn run_socket(s: Arc<Shared>, mut socket: WebSocket) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Out>();
    let (id, hello, pending) = {
        let mut inner = s.lock();
        inner.opened += 1;
        let id = inner.opened;
        inner.live.insert(id, tx);
        let hello = json!({
            "type": "hello",
            "num_connections": inner.live.len(),
            "debug_info": {
                "host": "fake",
                "started": "2024-01-01 00:00:00,000",
                "build_number": 1,
                "approximate_connection_time": 3600,
            },
            "connection_info": {"app_id": APP_ID},
        });
        (id, hello, std::mem::take(&mut inner.pending))
    };
    let mut alive = socket
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_ok();
    let mut unsent = Vec::new();
    for frame in pending {
        if alive {
            alive = socket
                .send(Message::Text(frame.clone().into()))
                .await
                .is_ok();
        }
        if !alive {
            unsent.push(frame);
        }
    }
    while alive {
        alive = tokio::select! {
            out = rx.recv() => match out {
                Some(Out::Envelope(frame)) => {
                    let sent = socket.send(Message::Text(frame.clone().into())).await.is_ok();
                    if !sent {
                        unsent.push(frame);
                    }
                    sent
                }
                Some(Out::Control(frame)) => socket.send(Message::Text(frame.into())).await.is_ok(),
                Some(Out::Close) | None => {
                    let close = CloseFrame { code: 1000, reason: "".into() };
                    let _ = socket.send(Message::Close(Some(close))).await;
                    false
                }
            },
            msg = socket.recv() => match msg {
                Some(Ok(Message::Text(t))) => {
                    s.lock().client_frame(id, t.as_str());
                    true
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => false,
                Some(Ok(_)) => true,
            },
        };
    }
    let mut inner = s.lock();
    inner.live.remove(&id);
    // Envelopes that never reached this client wait for the next connection.
    while let Ok(out) = rx.try_recv() {
        if let Out::Envelope(frame) = out {
            unsent.push(frame);
        }
    }
    unsent.append(&mut inner.pending);
    inner.pending = unsent;
}
