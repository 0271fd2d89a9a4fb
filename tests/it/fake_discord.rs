//! A protocol-faithful fake of Discord on 127.0.0.1:0 for the real serenity 0.12.5 client:
//! REST under `/api/v10/` and the gateway WebSocket at `/gateway`, on one port.
//!
//! Point serenity at it with `HttpBuilder::new(BOT_TOKEN).proxy(fake.api_url())
//! .ratelimiter_disabled(true)`; building the client asks `GET /api/v10/gateway`, which answers
//! `gateway_url()`. Every payload is shaped as Discord documents it and as serenity 0.12.5
//! deserializes it: the self-tests at the bottom parse every REST answer and every gateway frame
//! with serenity's own model types, and drive a real serenity `Client` end to end.
//!
//! Faithful details worth knowing when writing tests:
//! - Gateway: HELLO on connect; IDENTIFY starts a session (READY is `s=1`, GUILD_CREATE `s=2`
//!   with the channels, the bot's member and roles); heartbeats (op 1) get op 11; RESUME with a
//!   known session replays every dispatch after the client's `seq`, then RESUMED; an unknown
//!   session gets op 9 (not resumable). `reconnect()` sends op 7: serenity opens a new
//!   connection and RESUMEs. Sequence numbers increase per session.
//! - Dispatches honour the intents sent in IDENTIFY, as Discord does: reactions need
//!   GUILD_MESSAGE_REACTIONS (else they are dropped and listed in `dropped_by_intents()`), the
//!   bot's own messages come back as MESSAGE_CREATE only with GUILD_MESSAGES, THREAD_CREATE and
//!   GUILD_CREATE need GUILDS. Interactions need no intent. Edits and deletes are not echoed
//!   (no MESSAGE_UPDATE / MESSAGE_DELETE).
//! - A frame serenity cannot parse is dropped by it with only a log line (shard.rs
//!   "Unhandled error"), so every shape here is checked against serenity in the self-tests.
//! - Dispatches pushed while no session exists wait for the next READY. Dispatches pushed while a
//!   session exists but its connection is gone are replayed on RESUME; if the client
//!   re-IDENTIFYs instead, those never written to a socket are carried into the new session
//!   (Discord would lose them; tests should not depend on that).
//! - `duplicate_last()` re-sends the last dispatch a test pushed (slash command or reaction) with
//!   the SAME sequence number, as a replay after a network hiccup would. Serenity does not
//!   deduplicate: the bot sees the event twice.
//! - Interactions: the first callback must arrive within 3 s of the INTERACTION_CREATE being
//!   written to the socket (`set_interaction_deadline`), else 404 `10062 Unknown interaction`;
//!   a second callback gets 400 `40060 Interaction has already been acknowledged.`. Whether a
//!   response is ephemeral is fixed by the callback (flags 64); editing `@original` keeps it.
//!   The first followup after a deferred callback (type 5) edits the loading message instead of
//!   creating one (Discord's documented backwards-compatibility rule). Webhook routes before
//!   the callback answer 404 `10015 Unknown Webhook`; unknown tokens 401 `50027`.
//! - Threads created from a message have the message's id; a second thread on the same message
//!   is refused with 400 `160004`. Message content over 2000 characters, empty messages and
//!   invalid command definitions get Discord's 400 errors (`50035 Invalid Form Body` with nested
//!   `errors`, `50006 Cannot send an empty message`).
//! - `Authorization: Bot fake-discord-token` is required except for `GET gateway`, interaction
//!   callbacks and interaction webhooks (their token is in the URL), else 401.
#![allow(dead_code)]

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

use crate::fake_common::{self as common, Faults};

/// The only bot token the fake accepts (`Authorization: Bot <token>`, IDENTIFY, RESUME).
pub const BOT_TOKEN: &str = "fake-discord-token";
pub const BOT_USER_ID: &str = "900000000000000001";
pub const BOT_USERNAME: &str = "greenlight";
pub const APPLICATION_ID: &str = "910000000000000001";
pub const GUILD_ID: &str = "920000000000000001";
pub const GUILD_OWNER_ID: &str = "930000000000000001";
/// The managed role Discord gives a bot when it joins; the bot member has it.
pub const BOT_ROLE_ID: &str = "940000000000000001";
/// Channels that exist from the start (GUILD_TEXT): (id, name).
pub const DEFAULT_CHANNELS: [(&str, &str); 4] = [
    ("100000000000000001", "deploys"),
    ("100000000000000002", "incidents"),
    ("100000000000000003", "announce"),
    ("100000000000000004", "staging"),
];
pub const DEFAULT_HEARTBEAT_INTERVAL_MS: u64 = 41250;
/// Discord: the initial response must come within 3 seconds.
pub const DEFAULT_INTERACTION_DEADLINE: Duration = Duration::from_secs(3);
pub const MESSAGE_MAX_CHARS: usize = 2000;
/// Sent in every interaction (serenity 0.12.5 drops interactions without it).
pub const ATTACHMENT_SIZE_LIMIT: u64 = 26_214_400;

/// Gateway intent bits (Discord's numbering).
pub mod intents {
    pub const GUILDS: u64 = 1;
    pub const GUILD_MEMBERS: u64 = 1 << 1;
    pub const GUILD_PRESENCES: u64 = 1 << 8;
    pub const GUILD_MESSAGES: u64 = 1 << 9;
    pub const GUILD_MESSAGE_REACTIONS: u64 = 1 << 10;
    pub const MESSAGE_CONTENT: u64 = 1 << 15;
    /// Need enabling in the developer portal.
    pub const PRIVILEGED: u64 = GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT;
}

/// Message flags.
pub const FLAG_SUPPRESS_EMBEDS: u64 = 1 << 2;
pub const FLAG_EPHEMERAL: u64 = 1 << 6;
pub const FLAG_LOADING: u64 = 1 << 7;
pub const FLAG_SUPPRESS_NOTIFICATIONS: u64 = 1 << 12;

/// What the bot (and every member) may do: view, send, embed, attach, react, read history, use
/// commands, create public threads and post in them.
pub const MEMBER_PERMISSIONS: u64 = (1 << 6)
    | (1 << 10)
    | (1 << 11)
    | (1 << 14)
    | (1 << 15)
    | (1 << 16)
    | (1 << 18)
    | (1 << 31)
    | (1 << 35)
    | (1 << 38);

const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;
const JOINED_AT: &str = "2024-01-01T00:00:00.000000+00:00";
const TRACE: &str = "[\"fake-gateway-prd-1\",{\"micros\":0.0}]";

/// The REST routes, for scripted faults and call filtering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteKind {
    /// `GET gateway`
    Gateway,
    /// `GET gateway/bot`
    GatewayBot,
    /// `GET users/@me`
    CurrentUser,
    /// `GET oauth2/applications/@me` or `GET applications/@me`
    CurrentApplication,
    /// `PUT applications/{app}/commands` or `.../guilds/{guild}/commands`
    SetCommands,
    GetCommands,
    /// `POST` one command (upsert by name).
    CreateCommand,
    /// `GET channels/{id}`
    GetChannel,
    /// `GET guilds/{id}/channels`
    GuildChannels,
    /// `POST channels/{id}/messages`
    CreateMessage,
    GetMessage,
    /// `PATCH channels/{id}/messages/{id}`
    EditMessage,
    DeleteMessage,
    /// `POST channels/{id}/messages/{id}/threads`
    CreateThread,
    /// `PUT channels/{id}/messages/{id}/reactions/{emoji}/@me`
    AddReaction,
    /// `DELETE channels/{id}/messages/{id}/reactions/{emoji}/@me`
    RemoveReaction,
    /// `POST interactions/{id}/{token}/callback`
    InteractionCallback,
    /// `GET webhooks/{app}/{token}/messages/@original`
    GetOriginal,
    /// `PATCH webhooks/{app}/{token}/messages/@original`
    EditOriginal,
    DeleteOriginal,
    /// `POST webhooks/{app}/{token}`
    Followup,
    GetFollowup,
    /// `PATCH webhooks/{app}/{token}/messages/{id}`
    EditFollowup,
    DeleteFollowup,
    /// Anything else (answered 404).
    Unknown,
}

impl RouteKind {
    fn needs_bot_auth(self) -> bool {
        !matches!(
            self,
            RouteKind::Gateway
                | RouteKind::InteractionCallback
                | RouteKind::GetOriginal
                | RouteKind::EditOriginal
                | RouteKind::DeleteOriginal
                | RouteKind::Followup
                | RouteKind::GetFollowup
                | RouteKind::EditFollowup
                | RouteKind::DeleteFollowup
        )
    }
}

/// A scripted failure for the next call of one route.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// HTTP 429 with `Retry-After`, `X-RateLimit-*` and
    /// `{"message":"You are being rate limited.","retry_after":N,"global":false}`.
    RateLimited { retry_after_secs: f64 },
    /// HTTP 500 with `{"message":"500: Internal Server Error","code":0}`.
    ServerError,
    /// Never answers.
    Hang,
    /// Any status with Discord's error body `{"message", "code"}`.
    Error {
        status: u16,
        code: u64,
        message: String,
    },
}

/// One REST call as received.
#[derive(Debug, Clone)]
pub struct FakeCall {
    pub route: RouteKind,
    pub method: String,
    /// The path after `/api/v10/`, percent-decoded per segment.
    pub path: String,
    pub authorization: Option<String>,
    /// The JSON body (`payload_json` for multipart), `Null` if none.
    pub body: Value,
    /// The status answered (0 while a `Hang` fault holds it).
    pub status: u16,
    pub fault: Option<Fault>,
    pub at: Instant,
}

/// A message as the channel shows it (REST-created, interaction responses and followups).
#[derive(Debug, Clone, PartialEq)]
pub struct FakeMessage {
    pub channel: String,
    pub id: String,
    pub content: String,
    /// PATCHes applied (channel edits, `@original`/followup edits, a followup editing a
    /// deferred response).
    pub edits: usize,
    pub author: String,
    /// 0 default, 19 reply, 20 response to a slash command.
    pub kind: u8,
    pub flags: u64,
    pub ephemeral: bool,
    /// Set for interaction responses and followups.
    pub interaction_id: Option<String>,
    /// True for the interaction's original response.
    pub original: bool,
    pub embeds: Value,
    pub components: Value,
    /// The message replied to (`message_reference.message_id`).
    pub reference: Option<String>,
    /// The thread started from this message (same id as the message).
    pub thread: Option<String>,
    /// (user id, emoji) pairs, the bot's own included.
    pub reactions: Vec<(String, String)>,
    pub timestamp: String,
    pub edited_timestamp: Option<String>,
    pub nonce: Value,
}

impl FakeMessage {
    /// Content plus embed titles, descriptions, field names/values, footers and component
    /// labels, one per line: what a reader would see.
    pub fn rendered(&self) -> String {
        let mut out = vec![self.content.clone()];
        for e in self.embeds.as_array().into_iter().flatten() {
            for k in ["title", "description"] {
                if let Some(s) = e[k].as_str() {
                    out.push(s.to_string());
                }
            }
            for f in e["fields"].as_array().into_iter().flatten() {
                out.push(format!(
                    "{}: {}",
                    f["name"].as_str().unwrap_or(""),
                    f["value"].as_str().unwrap_or("")
                ));
            }
            if let Some(s) = e["footer"]["text"].as_str() {
                out.push(s.to_string());
            }
        }
        collect_labels(&self.components, &mut out);
        out.retain(|s| !s.is_empty());
        out.join("\n")
    }

    pub fn has_reaction(&self, user: &str, emoji: &str) -> bool {
        self.reactions.iter().any(|(u, e)| u == user && e == emoji)
    }

    /// True while a deferred response still shows "is thinking...".
    pub fn loading(&self) -> bool {
        self.flags & FLAG_LOADING != 0
    }
}

/// A guild channel or thread.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeChannel {
    pub id: String,
    pub name: String,
    /// 0 GUILD_TEXT, 11 PUBLIC_THREAD.
    pub kind: u8,
    pub parent_id: Option<String>,
    /// For threads started from a message.
    pub parent_message: Option<String>,
    pub message_count: u64,
    pub auto_archive_duration: u64,
    pub archived: bool,
    pub last_message_id: Option<String>,
    pub created: String,
    pub position: u64,
}

/// One INTERACTION_CREATE the fake pushed, and what became of it.
#[derive(Debug, Clone)]
pub struct FakeInteraction {
    pub id: String,
    pub token: String,
    pub user: String,
    pub channel: String,
    pub command: String,
    /// The `data` object sent.
    pub data: Value,
    /// When the dispatch was first written to a socket (the 3 s deadline starts here).
    pub sent_at: Option<Instant>,
    /// The accepted callback type.
    pub acknowledged: Option<u8>,
    /// The original response message, once there is one.
    pub original: Option<String>,
    pub ephemeral: bool,
    /// Deferred (type 5) and not edited yet.
    pub deferred_pending: bool,
}

/// One `POST interactions/{id}/{token}/callback`, accepted or not.
#[derive(Debug, Clone)]
pub struct FakeInteractionResponse {
    pub interaction_id: String,
    /// 4 message, 5 deferred message, 9 modal, ...
    pub kind: u8,
    pub content: String,
    pub ephemeral: bool,
    pub body: Value,
    /// 204 if accepted, else the error status.
    pub status: u16,
    pub at: Instant,
}

/// A dispatch (op 0) as sent: appended to the session log, or re-sent by `duplicate_last`.
#[derive(Debug, Clone)]
pub struct FakeDispatch {
    pub seq: u64,
    pub session: String,
    pub t: String,
    pub d: Value,
    pub duplicate: bool,
}

/// A slash command option value.
#[derive(Debug, Clone, PartialEq)]
pub enum OptionValue {
    String(String),
    Integer(i64),
    Number(f64),
    Boolean(bool),
    /// A user id (resolved with a user and member object).
    User(String),
    /// A channel id (resolved with a partial channel).
    Channel(String),
    /// A role id (resolved with a role object).
    Role(String),
}

impl From<&str> for OptionValue {
    fn from(s: &str) -> Self {
        OptionValue::String(s.to_string())
    }
}
impl From<String> for OptionValue {
    fn from(s: String) -> Self {
        OptionValue::String(s)
    }
}
impl From<i64> for OptionValue {
    fn from(n: i64) -> Self {
        OptionValue::Integer(n)
    }
}
impl From<f64> for OptionValue {
    fn from(n: f64) -> Self {
        OptionValue::Number(n)
    }
}
impl From<bool> for OptionValue {
    fn from(b: bool) -> Self {
        OptionValue::Boolean(b)
    }
}

enum Out {
    /// A text frame; `mark` = (session, seq) of a logged dispatch, marked written once sent.
    Frame {
        text: String,
        mark: Option<(String, u64)>,
    },
    /// A close frame, then the socket ends.
    Close(u16, String),
    /// Ends the socket without a close frame (a network drop).
    Abort,
}

struct Conn {
    tx: mpsc::UnboundedSender<Out>,
    session: Option<String>,
    query: String,
}

struct LogEntry {
    seq: u64,
    t: String,
    d: Value,
    frame: String,
    written: bool,
    pushed: bool,
    interaction: Option<String>,
}

struct Session {
    intents: u64,
    seq: u64,
    log: Vec<LogEntry>,
}

struct Pending {
    t: String,
    d: Value,
    pushed: bool,
    interaction: Option<String>,
}

struct Reply {
    status: u16,
    body: Option<Value>,
}

struct Inner {
    port: u16,
    // ---- REST state ----
    channels: Vec<FakeChannel>,
    users: HashMap<String, String>,
    calls: Vec<FakeCall>,
    faults: Faults<RouteKind, Fault>,
    messages: Vec<FakeMessage>,
    interactions: Vec<FakeInteraction>,
    responses: Vec<FakeInteractionResponse>,
    /// Registered commands by scope: "" global, else the guild id.
    commands: BTreeMap<String, Vec<Value>>,
    last_snowflake: u64,
    tokens_issued: u64,
    interaction_deadline: Duration,
    session_starts_remaining: u64,
    // ---- gateway state ----
    heartbeat_interval: u64,
    deny_privileged: bool,
    opened: u64,
    conns: BTreeMap<u64, Conn>,
    sessions: HashMap<String, Session>,
    current_session: Option<String>,
    sessions_started: u64,
    identifies: Vec<Value>,
    resumes: Vec<Value>,
    heartbeats: u64,
    client_frames: Vec<(u64, Value)>,
    pending: Vec<Pending>,
    dispatched: Vec<FakeDispatch>,
    dropped_by_intents: Vec<String>,
    last_pushed: Option<(String, u64)>,
    closes_sent: Vec<(u64, u16)>,
}

struct Shared {
    inner: Mutex<Inner>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The fake. Dropping it stops the server and ends its WebSocket connections.
pub struct FakeDiscord {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeDiscord {
    fn drop(&mut self) {
        self.server.abort();
        let mut inner = self.shared.lock();
        for conn in std::mem::take(&mut inner.conns).into_values() {
            let _ = conn.tx.send(Out::Abort);
        }
    }
}

impl FakeDiscord {
    /// Binds 127.0.0.1:0 and serves REST and the gateway until dropped.
    pub async fn start() -> FakeDiscord {
        let (listener, addr) = common::bind("fake Discord").await;
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner::new(addr.port())),
        });
        let app = Router::new()
            .route("/gateway", get(gateway_handler))
            .fallback(rest_handler)
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeDiscord {
            shared,
            addr,
            server,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.shared.lock()
    }

    // ---- addresses and configuration ----

    /// `http://127.0.0.1:PORT`: what replaces `https://discord.com` (serenity's `proxy`).
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.addr.port())
    }

    /// `ws://127.0.0.1:PORT/gateway` (serenity appends `?v=10`).
    pub fn gateway_url(&self) -> String {
        format!("ws://127.0.0.1:{}/gateway", self.addr.port())
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Makes a GUILD_TEXT channel exist (the defaults are [`DEFAULT_CHANNELS`]).
    pub fn add_channel(&self, id: &str, name: &str) {
        let mut inner = self.lock();
        inner.channels.retain(|c| c.id != id);
        let position = inner.channels.len() as u64;
        inner.channels.push(text_channel(id, name, position));
    }

    /// Makes a channel unknown: later calls naming it get 404 `10003 Unknown Channel`.
    pub fn remove_channel(&self, id: &str) {
        self.lock().channels.retain(|c| c.id != id);
    }

    /// The username (and global name) shown for a user id (default `user` + last 4 digits).
    pub fn set_user_name(&self, user_id: &str, name: &str) {
        self.lock()
            .users
            .insert(user_id.to_string(), name.to_string());
    }

    /// The `heartbeat_interval` sent in later HELLOs (default 41250 ms).
    pub fn set_heartbeat_interval(&self, ms: u64) {
        self.lock().heartbeat_interval = ms;
    }

    /// How long after an INTERACTION_CREATE the first callback is accepted (default 3 s).
    pub fn set_interaction_deadline(&self, deadline: Duration) {
        self.lock().interaction_deadline = deadline;
    }

    /// Simulates privileged intents left disabled in the developer portal: an IDENTIFY asking
    /// for one is closed with 4014 "Disallowed intent(s).".
    pub fn deny_privileged_intents(&self, deny: bool) {
        self.lock().deny_privileged = deny;
    }

    /// The next call of `route` fails with `fault`. Faults queue up.
    pub fn fail_next(&self, route: RouteKind, fault: Fault) {
        self.lock().faults.push(route, fault);
    }

    // ---- REST queries ----

    /// Every REST call, in order (faulted and rejected ones included).
    pub fn calls(&self) -> Vec<FakeCall> {
        self.lock().calls.clone()
    }

    pub fn calls_to(&self, route: RouteKind) -> Vec<FakeCall> {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.route == route)
            .cloned()
            .collect()
    }

    /// All messages in all channels and threads, in creation order (interaction responses,
    /// ephemeral ones included).
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

    pub fn message(&self, id: &str) -> Option<FakeMessage> {
        self.lock().messages.iter().find(|m| m.id == id).cloned()
    }

    /// Threads created: (thread id, parent channel, parent message, name).
    pub fn threads(&self) -> Vec<(String, String, String, String)> {
        self.lock()
            .channels
            .iter()
            .filter(|c| c.kind == 11)
            .map(|c| {
                (
                    c.id.clone(),
                    c.parent_id.clone().unwrap_or_default(),
                    c.parent_message.clone().unwrap_or_default(),
                    c.name.clone(),
                )
            })
            .collect()
    }

    pub fn channel(&self, id: &str) -> Option<FakeChannel> {
        self.lock().channels.iter().find(|c| c.id == id).cloned()
    }

    /// Accepted interaction callbacks: (interaction id, type, content, ephemeral).
    pub fn interaction_responses(&self) -> Vec<(String, u8, String, bool)> {
        self.lock()
            .responses
            .iter()
            .filter(|r| r.status == 204)
            .map(|r| {
                (
                    r.interaction_id.clone(),
                    r.kind,
                    r.content.clone(),
                    r.ephemeral,
                )
            })
            .collect()
    }

    /// Every callback attempt, rejected ones (late, repeated, invalid) included.
    pub fn interaction_callbacks(&self) -> Vec<FakeInteractionResponse> {
        self.lock().responses.clone()
    }

    pub fn interaction(&self, id: &str) -> Option<FakeInteraction> {
        self.lock()
            .interactions
            .iter()
            .find(|i| i.id == id)
            .cloned()
    }

    /// The interaction's original response message as it is now (after edits).
    pub fn original_response(&self, interaction_id: &str) -> Option<FakeMessage> {
        self.lock()
            .messages
            .iter()
            .find(|m| m.original && m.interaction_id.as_deref() == Some(interaction_id))
            .cloned()
    }

    /// The interaction's followup messages (not the original).
    pub fn followups(&self, interaction_id: &str) -> Vec<FakeMessage> {
        self.lock()
            .messages
            .iter()
            .filter(|m| !m.original && m.interaction_id.as_deref() == Some(interaction_id))
            .cloned()
            .collect()
    }

    /// Every registered command as Discord answers it (global ones first, then per guild).
    pub fn registered_commands(&self) -> Value {
        Value::Array(self.lock().commands.values().flatten().cloned().collect())
    }

    // ---- gateway queries ----

    /// How many gateway connections were opened so far.
    pub fn connections(&self) -> u64 {
        self.lock().opened
    }

    pub fn live_connections(&self) -> usize {
        self.lock().conns.len()
    }

    /// How many IDENTIFYs were accepted.
    pub fn identifies(&self) -> u64 {
        self.lock().identifies.len() as u64
    }

    /// The `d` of every accepted IDENTIFY.
    pub fn identify_payloads(&self) -> Vec<Value> {
        self.lock().identifies.clone()
    }

    /// The intents of the last accepted IDENTIFY.
    pub fn intents(&self) -> Option<u64> {
        self.lock()
            .identifies
            .last()
            .and_then(|d| parse_u64(&d["intents"]))
    }

    /// How many RESUMEs were received (accepted or not).
    pub fn resumes(&self) -> u64 {
        self.lock().resumes.len() as u64
    }

    pub fn heartbeats(&self) -> u64 {
        self.lock().heartbeats
    }

    /// Every frame clients sent, parsed, in order.
    pub fn client_frames(&self) -> Vec<Value> {
        self.lock()
            .client_frames
            .iter()
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The query string of every live connection (serenity: `v=10`).
    pub fn connection_queries(&self) -> Vec<String> {
        self.lock()
            .conns
            .values()
            .map(|c| c.query.clone())
            .collect()
    }

    /// Every dispatch sent (session log order) and every duplicate.
    pub fn dispatches(&self) -> Vec<FakeDispatch> {
        self.lock().dispatched.clone()
    }

    /// Event names not sent because the session's intents do not cover them.
    pub fn dropped_by_intents(&self) -> Vec<String> {
        self.lock().dropped_by_intents.clone()
    }

    /// Close codes the fake sent: (connection, code).
    pub fn closes_sent(&self) -> Vec<(u64, u16)> {
        self.lock().closes_sent.clone()
    }

    /// Whether a connection with a READY or RESUMED session is open.
    pub fn ready(&self) -> bool {
        self.lock().target_conn().is_some()
    }

    // ---- pushing events ----

    /// Pushes an INTERACTION_CREATE for a slash command, shaped as Discord sends it to a bot
    /// (type 2, guild member, partial channel, token, `attachment_size_limit`, ...). With
    /// `subcommand` `Some("start")` the options go under a type-1 option; `Some("group start")`
    /// nests a type-2 group. Returns the interaction id.
    pub fn slash_command(
        &self,
        user_id: &str,
        channel_id: &str,
        name: &str,
        subcommand: Option<&str>,
        options: &[(&str, OptionValue)],
    ) -> String {
        let mut inner = self.lock();
        let id = inner.snowflake();
        inner.tokens_issued += 1;
        let token = format!("aW50ZXJhY3Rpb24{id}fake{:06}GnLtK3n", inner.tokens_issued);
        let (command_id, guild_scoped) = match inner.find_command(name) {
            Some((cid, scope)) => (cid, !scope.is_empty()),
            None => (inner.snowflake(), true),
        };
        let mut resolved = Map::new();
        let values: Vec<Value> = options
            .iter()
            .map(|(n, v)| inner.option_json(n, v, &mut resolved))
            .collect();
        let top = match subcommand {
            None => values,
            Some(sc) => {
                let parts: Vec<&str> = sc.split_whitespace().collect();
                if let [group, sub] = parts.as_slice() {
                    vec![json!({"name": group, "type": 2, "options": [
                        {"name": sub, "type": 1, "options": values}
                    ]})]
                } else {
                    vec![json!({"name": sc, "type": 1, "options": values})]
                }
            }
        };
        let mut data = json!({"id": command_id, "name": name, "type": 1, "options": top});
        if guild_scoped {
            data["guild_id"] = json!(GUILD_ID);
        }
        if !resolved.is_empty() {
            data["resolved"] = Value::Object(resolved);
        }
        let d = json!({
            "id": id,
            "application_id": APPLICATION_ID,
            "type": 2,
            "data": data,
            "guild": {"id": GUILD_ID, "locale": "en-US", "features": []},
            "guild_id": GUILD_ID,
            "guild_locale": "en-US",
            "channel_id": channel_id,
            "channel": inner.partial_channel_json(channel_id),
            "member": inner.member_json(user_id, true),
            "token": token,
            "version": 1,
            "app_permissions": MEMBER_PERMISSIONS.to_string(),
            "locale": "en-US",
            "entitlements": [],
            "entitlement_sku_ids": [],
            "authorizing_integration_owners": {"0": GUILD_ID},
            "context": 0,
            "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
        });
        inner.interactions.push(FakeInteraction {
            id: id.clone(),
            token,
            user: user_id.to_string(),
            channel: channel_id.to_string(),
            command: name.to_string(),
            data: d["data"].clone(),
            sent_at: None,
            acknowledged: None,
            original: None,
            ephemeral: false,
            deferred_pending: false,
        });
        inner.dispatch("INTERACTION_CREATE", d, true, Some(id.clone()));
        id
    }

    /// Pushes MESSAGE_REACTION_ADD (`added`) or MESSAGE_REACTION_REMOVE for a unicode emoji, as
    /// Discord sends them (`burst`, `type`, member and `burst_colors` on add). Dropped if the
    /// session lacks GUILD_MESSAGE_REACTIONS.
    pub fn reaction(
        &self,
        user_id: &str,
        channel_id: &str,
        message_id: &str,
        emoji_unicode: &str,
        added: bool,
    ) {
        let mut inner = self.lock();
        let author = inner
            .messages
            .iter()
            .find(|m| m.id == message_id)
            .map(|m| m.author.clone());
        if let Some(m) = inner.messages.iter_mut().find(|m| m.id == message_id) {
            let pair = (user_id.to_string(), emoji_unicode.to_string());
            if added && !m.reactions.contains(&pair) {
                m.reactions.push(pair);
            } else if !added {
                m.reactions.retain(|p| p != &pair);
            }
        }
        let (t, mut d) =
            inner.reaction_event(user_id, channel_id, message_id, emoji_unicode, added);
        if let (true, Some(a)) = (added, author) {
            d["message_author_id"] = json!(a);
        }
        inner.dispatch(t, d, true, None);
    }

    /// A person posts `content` in `channel_id`: stored, and MESSAGE_CREATE as Discord sends it
    /// (its `mentions` are the users named `<@id>` in the content; dropped without
    /// GUILD_MESSAGES). Returns the message id.
    pub fn user_message(&self, user_id: &str, channel_id: &str, content: &str) -> String {
        let mut inner = self.lock();
        let mut m = inner.new_message(channel_id, &json!({ "content": content }), 0);
        m.author = user_id.to_string();
        let id = m.id.clone();
        inner.messages.push(m);
        let mut d = inner.message_json(&inner.messages[inner.messages.len() - 1]);
        let mentioned: Vec<Value> = content
            .split("<@")
            .skip(1)
            .filter_map(|rest| rest.split_once('>'))
            .map(|(id, _)| inner.user_json(id.trim_start_matches('!')))
            .collect();
        d["mentions"] = json!(mentioned);
        d["guild_id"] = json!(GUILD_ID);
        d["member"] = inner.partial_member_json(user_id);
        inner.dispatch("MESSAGE_CREATE", d, true, None);
        id
    }

    /// Pushes any dispatch as is (recorded like the others; not "pushed" for `duplicate_last`).
    pub fn dispatch_raw(&self, t: &str, d: Value) {
        self.lock().dispatch(t, d, false, None);
    }

    /// Sends any frame as is on the live connection (for malformed-frame tests).
    pub fn send_raw_frame(&self, frame: Value) {
        let mut inner = self.lock();
        let conn = inner
            .target_conn()
            .expect("fake Discord: send_raw_frame without a live session");
        inner.send_to(
            conn,
            Out::Frame {
                text: frame.to_string(),
                mark: None,
            },
        );
    }

    /// Re-sends the last dispatch a test pushed (slash command or reaction) on the live
    /// connection with the same sequence number; returns that number.
    pub fn duplicate_last(&self) -> u64 {
        let mut inner = self.lock();
        let (sid, seq) = inner
            .last_pushed
            .clone()
            .expect("fake Discord: duplicate_last before any pushed dispatch was sent");
        let entry = inner
            .sessions
            .get(&sid)
            .and_then(|s| s.log.iter().find(|e| e.seq == seq))
            .map(|e| (e.frame.clone(), e.t.clone(), e.d.clone()))
            .expect("fake Discord: the last pushed dispatch is gone");
        let conn = inner
            .target_conn()
            .expect("fake Discord: duplicate_last without a live session");
        inner.send_to(
            conn,
            Out::Frame {
                text: entry.0,
                mark: None,
            },
        );
        inner.dispatched.push(FakeDispatch {
            seq,
            session: sid,
            t: entry.1,
            d: entry.2,
            duplicate: true,
        });
        seq
    }

    /// Sends op 7 RECONNECT on the live connection and detaches it from the session: later
    /// dispatches wait in the session log for the client's RESUME on a new connection.
    pub fn reconnect(&self) {
        let mut inner = self.lock();
        let conn = inner
            .target_conn()
            .expect("fake Discord: reconnect without a live session");
        inner.send_to(
            conn,
            Out::Frame {
                text: json!({"op": 7, "d": null, "s": null, "t": null}).to_string(),
                mark: None,
            },
        );
        if let Some(c) = inner.conns.get_mut(&conn) {
            c.session = None;
        }
    }

    /// Ends every connection without a close frame (a network drop); the session stays
    /// resumable.
    pub fn drop_connections(&self) {
        let mut inner = self.lock();
        for conn in std::mem::take(&mut inner.conns).into_values() {
            let _ = conn.tx.send(Out::Abort);
        }
    }

    /// Sends op 9 INVALID_SESSION with `resumable` on the live connection; when not resumable
    /// the session is forgotten (a RESUME then gets op 9 again; IDENTIFY starts over).
    pub fn invalidate_session(&self, resumable: bool) {
        let mut inner = self.lock();
        let conn = inner
            .target_conn()
            .expect("fake Discord: invalidate_session without a live session");
        inner.send_to(
            conn,
            Out::Frame {
                text: json!({"op": 9, "d": resumable, "s": null, "t": null}).to_string(),
                mark: None,
            },
        );
        if let Some(c) = inner.conns.get_mut(&conn) {
            c.session = None;
        }
        if !resumable {
            if let Some(sid) = inner.current_session.take() {
                inner.sessions.remove(&sid);
            }
        }
    }

    // ---- waiting ----

    /// Polls `f` until it returns `Some`, or panics after `timeout` naming `what` and dumping
    /// the fake's state.
    pub async fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&FakeDiscord) -> Option<T>,
    ) -> T {
        common::wait_for("fake Discord", what, timeout, || f(self), || self.dump()).await
    }

    pub async fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&FakeDiscord) -> bool,
    ) {
        self.wait_for(what, timeout, |f| pred(f).then_some(()))
            .await
    }

    /// Waits until at least `n` connections were opened and one carries a READY or RESUMED
    /// session.
    pub async fn wait_connected(&self, n: u64, timeout: Duration) {
        self.wait_until(
            &format!("{n} gateway connection(s) with a live session"),
            timeout,
            |f| f.connections() >= n && f.ready(),
        )
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

    /// Waits for the accepted callback of `interaction_id`.
    pub async fn wait_interaction_response(
        &self,
        interaction_id: &str,
        timeout: Duration,
    ) -> (String, u8, String, bool) {
        self.wait_for(
            &format!("a callback for interaction {interaction_id}"),
            timeout,
            |f| {
                f.interaction_responses()
                    .into_iter()
                    .find(|r| r.0 == interaction_id)
            },
        )
        .await
    }

    /// Waits until commands are registered (any scope) and returns them.
    pub async fn wait_commands(&self, timeout: Duration) -> Value {
        self.wait_for("registered commands", timeout, |f| {
            let c = f.registered_commands();
            (!c.as_array().is_some_and(Vec::is_empty)).then_some(c)
        })
        .await
    }

    /// A readable summary of everything the fake saw, for failure messages.
    pub fn dump(&self) -> String {
        let inner = self.lock();
        let mut out = String::from("--- fake Discord state ---\n");
        out += &format!(
            "gateway: opened {}, live {}, identifies {}, resumes {}, heartbeats {}, current session {:?}, pending {}\n",
            inner.opened,
            inner.conns.len(),
            inner.identifies.len(),
            inner.resumes.len(),
            inner.heartbeats,
            inner.current_session,
            inner.pending.len()
        );
        if let Some(d) = inner.identifies.last() {
            out += &format!("last IDENTIFY intents: {}\n", d["intents"]);
        }
        if !inner.dropped_by_intents.is_empty() {
            out += &format!("dropped by intents: {:?}\n", inner.dropped_by_intents);
        }
        if !inner.closes_sent.is_empty() {
            out += &format!("closes sent: {:?}\n", inner.closes_sent);
        }
        out += "dispatches:\n";
        for d in &inner.dispatched {
            let written = inner
                .sessions
                .get(&d.session)
                .and_then(|s| s.log.iter().find(|e| e.seq == d.seq))
                .is_some_and(|e| e.written);
            out += &format!(
                "  s={} {}{} written={written} {}\n",
                d.seq,
                d.t,
                if d.duplicate { " (duplicate)" } else { "" },
                common::truncate(&d.d.to_string(), 160)
            );
        }
        out += "rest calls:\n";
        for c in &inner.calls {
            out += &format!(
                "  {} {} -> {}{} {}\n",
                c.method,
                c.path,
                c.status,
                c.fault
                    .as_ref()
                    .map(|f| format!(" [fault {f:?}]"))
                    .unwrap_or_default(),
                common::truncate(&c.body.to_string(), 240)
            );
        }
        out += "messages:\n";
        for m in &inner.messages {
            out += &format!(
                "  {} in {} edits={} ephemeral={} interaction={:?} thread={:?}: {}\n",
                m.id,
                m.channel,
                m.edits,
                m.ephemeral,
                m.interaction_id,
                m.thread,
                common::truncate(&m.rendered(), 240)
            );
        }
        out += "interactions:\n";
        for i in &inner.interactions {
            out += &format!(
                "  {} /{} by {} in {} acknowledged={:?} original={:?}\n",
                i.id, i.command, i.user, i.channel, i.acknowledged, i.original
            );
        }
        for r in &inner.responses {
            out += &format!(
                "  callback {} type={} status={} ephemeral={}: {}\n",
                r.interaction_id,
                r.kind,
                r.status,
                r.ephemeral,
                common::truncate(&r.content, 200)
            );
        }
        out
    }
}

fn text_channel(id: &str, name: &str, position: u64) -> FakeChannel {
    FakeChannel {
        id: id.to_string(),
        name: name.to_string(),
        kind: 0,
        parent_id: None,
        parent_message: None,
        message_count: 0,
        auto_archive_duration: 1440,
        archived: false,
        last_message_id: None,
        created: JOINED_AT.to_string(),
        position,
    }
}

/// Which intent a dispatch needs, if any.
fn intent_for(t: &str) -> Option<u64> {
    match t {
        "MESSAGE_REACTION_ADD"
        | "MESSAGE_REACTION_REMOVE"
        | "MESSAGE_REACTION_REMOVE_ALL"
        | "MESSAGE_REACTION_REMOVE_EMOJI" => Some(intents::GUILD_MESSAGE_REACTIONS),
        "MESSAGE_CREATE" | "MESSAGE_UPDATE" | "MESSAGE_DELETE" => Some(intents::GUILD_MESSAGES),
        "GUILD_CREATE" | "THREAD_CREATE" | "THREAD_UPDATE" | "CHANNEL_CREATE"
        | "CHANNEL_UPDATE" => Some(intents::GUILDS),
        _ => None,
    }
}

impl Inner {
    fn new(port: u16) -> Inner {
        Inner {
            port,
            channels: DEFAULT_CHANNELS
                .iter()
                .enumerate()
                .map(|(i, (id, name))| text_channel(id, name, i as u64))
                .collect(),
            users: HashMap::new(),
            calls: Vec::new(),
            faults: Faults::default(),
            messages: Vec::new(),
            interactions: Vec::new(),
            responses: Vec::new(),
            commands: BTreeMap::new(),
            last_snowflake: 0,
            tokens_issued: 0,
            interaction_deadline: DEFAULT_INTERACTION_DEADLINE,
            session_starts_remaining: 1000,
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL_MS,
            deny_privileged: false,
            opened: 0,
            conns: BTreeMap::new(),
            sessions: HashMap::new(),
            current_session: None,
            sessions_started: 0,
            identifies: Vec::new(),
            resumes: Vec::new(),
            heartbeats: 0,
            client_frames: Vec::new(),
            pending: Vec::new(),
            dispatched: Vec::new(),
            dropped_by_intents: Vec::new(),
            last_pushed: None,
            closes_sent: Vec::new(),
        }
    }

    /// Real snowflakes: milliseconds since the Discord epoch << 22, strictly increasing.
    fn snowflake(&mut self) -> String {
        let ms = common::unix_ms().saturating_sub(DISCORD_EPOCH_MS);
        let id = ((ms << 22) | (1 << 17)).max(self.last_snowflake + 1);
        self.last_snowflake = id;
        id.to_string()
    }

    fn gateway_url(&self) -> String {
        format!("ws://127.0.0.1:{}/gateway", self.port)
    }

    fn user_name(&self, id: &str) -> String {
        self.users
            .get(id)
            .cloned()
            .unwrap_or_else(|| format!("user{}", &id[id.len().saturating_sub(4)..]))
    }

    fn find_command(&self, name: &str) -> Option<(String, String)> {
        // Guild commands win over global ones, as in Discord's client.
        self.commands.iter().rev().find_map(|(scope, list)| {
            list.iter()
                .find(|c| c["name"] == name && c["type"].as_u64().unwrap_or(1) == 1)
                .map(|c| (c["id"].as_str().unwrap_or("").to_string(), scope.clone()))
        })
    }

    // ---- JSON shapes ----

    fn user_json(&self, id: &str) -> Value {
        if id == BOT_USER_ID {
            return json!({
                "id": BOT_USER_ID,
                "username": BOT_USERNAME,
                "global_name": null,
                "discriminator": "0",
                "avatar": null,
                "bot": true,
                "public_flags": 0,
                "flags": 0,
            });
        }
        let name = self.user_name(id);
        json!({
            "id": id,
            "username": name,
            "global_name": name,
            "discriminator": "0",
            "avatar": null,
            "public_flags": 0,
            "flags": 0,
            "banner": null,
            "accent_color": null,
            "avatar_decoration_data": null,
        })
    }

    fn current_user_json(&self) -> Value {
        let mut u = self.user_json(BOT_USER_ID);
        for (k, v) in [
            ("verified", json!(true)),
            ("mfa_enabled", json!(false)),
            ("email", Value::Null),
            ("locale", json!("en-US")),
            ("premium_type", json!(0)),
            ("banner", Value::Null),
            ("accent_color", Value::Null),
        ] {
            u[k] = v;
        }
        u
    }

    fn member_json(&self, user_id: &str, with_permissions: bool) -> Value {
        let mut m = json!({
            "user": self.user_json(user_id),
            "roles": if user_id == BOT_USER_ID { json!([BOT_ROLE_ID]) } else { json!([]) },
            "joined_at": JOINED_AT,
            "deaf": false,
            "mute": false,
            "flags": 0,
            "pending": false,
            "nick": null,
            "avatar": null,
            "banner": null,
            "premium_since": null,
            "communication_disabled_until": null,
            "unusual_dm_activity_until": null,
        });
        if with_permissions {
            m["permissions"] = json!(MEMBER_PERMISSIONS.to_string());
        }
        m
    }

    /// The partial member (no `user`) that MESSAGE_CREATE carries.
    fn partial_member_json(&self, user_id: &str) -> Value {
        let mut m = self.member_json(user_id, false);
        if let Some(o) = m.as_object_mut() {
            o.remove("user");
        }
        m
    }

    fn role_json(id: &str, name: &str, position: u64, managed: bool) -> Value {
        let mut r = json!({
            "id": id,
            "name": name,
            "description": null,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": null, "tertiary_color": null},
            "hoist": false,
            "icon": null,
            "unicode_emoji": null,
            "position": position,
            "permissions": MEMBER_PERMISSIONS.to_string(),
            "managed": managed,
            "mentionable": false,
            "flags": 0,
        });
        if managed {
            r["tags"] = json!({"bot_id": BOT_USER_ID});
        }
        r
    }

    /// A guild channel or thread as REST answers it (with `guild_id`).
    fn channel_json(&self, c: &FakeChannel) -> Value {
        let mut v = json!({
            "id": c.id,
            "type": c.kind,
            "guild_id": GUILD_ID,
            "name": c.name,
            "parent_id": c.parent_id,
            "last_message_id": c.last_message_id,
            "rate_limit_per_user": 0,
            "flags": 0,
        });
        if c.kind == 11 {
            v["owner_id"] = json!(BOT_USER_ID);
            v["message_count"] = json!(c.message_count);
            v["total_message_sent"] = json!(c.message_count);
            v["member_count"] = json!(1);
            v["thread_metadata"] = json!({
                "archived": c.archived,
                "auto_archive_duration": c.auto_archive_duration,
                "archive_timestamp": c.created,
                "locked": false,
                "create_timestamp": c.created,
            });
        } else {
            v["position"] = json!(c.position);
            v["permission_overwrites"] = json!([]);
            v["nsfw"] = json!(false);
            v["topic"] = Value::Null;
            v["default_auto_archive_duration"] = json!(c.auto_archive_duration);
        }
        v
    }

    /// The `channel` of an interaction: the channel plus the invoking member's permissions.
    fn partial_channel_json(&self, id: &str) -> Value {
        let mut v = match self.channels.iter().find(|c| c.id == id) {
            Some(c) => self.channel_json(c),
            None => self.channel_json(&text_channel(id, &format!("channel-{id}"), 0)),
        };
        v["permissions"] = json!(MEMBER_PERMISSIONS.to_string());
        v
    }

    fn option_json(
        &self,
        name: &str,
        value: &OptionValue,
        resolved: &mut Map<String, Value>,
    ) -> Value {
        let mut add = |kind: &str, id: &str, v: Value| {
            let entry = resolved
                .entry(kind.to_string())
                .or_insert_with(|| json!({}));
            entry[id] = v;
        };
        let (kind, v) = match value {
            OptionValue::String(s) => (3, json!(s)),
            OptionValue::Integer(n) => (4, json!(n)),
            OptionValue::Boolean(b) => (5, json!(b)),
            OptionValue::User(id) => {
                add("users", id, self.user_json(id));
                let mut m = self.partial_member_json(id);
                m["permissions"] = json!(MEMBER_PERMISSIONS.to_string());
                add("members", id, m);
                (6, json!(id))
            }
            OptionValue::Channel(id) => {
                let c = self.partial_channel_json(id);
                let mut partial = json!({
                    "id": id,
                    "name": c["name"],
                    "type": c["type"],
                    "permissions": c["permissions"],
                });
                if c["parent_id"].is_string() {
                    partial["parent_id"] = c["parent_id"].clone();
                }
                if c.get("thread_metadata").is_some() {
                    partial["thread_metadata"] = c["thread_metadata"].clone();
                }
                add("channels", id, partial);
                (7, json!(id))
            }
            OptionValue::Role(id) => {
                add(
                    "roles",
                    id,
                    Inner::role_json(id, &format!("role-{id}"), 1, false),
                );
                (8, json!(id))
            }
            OptionValue::Number(n) => (10, json!(n)),
        };
        json!({"name": name, "type": kind, "value": v})
    }

    fn reaction_event(
        &self,
        user_id: &str,
        channel_id: &str,
        message_id: &str,
        emoji: &str,
        added: bool,
    ) -> (&'static str, Value) {
        if added {
            (
                "MESSAGE_REACTION_ADD",
                json!({
                    "user_id": user_id,
                    "type": 0,
                    "message_id": message_id,
                    "member": self.member_json(user_id, false),
                    "emoji": {"id": null, "name": emoji},
                    "channel_id": channel_id,
                    "burst": false,
                    "guild_id": GUILD_ID,
                    "burst_colors": [],
                }),
            )
        } else {
            (
                "MESSAGE_REACTION_REMOVE",
                json!({
                    "user_id": user_id,
                    "type": 0,
                    "message_id": message_id,
                    "emoji": {"id": null, "name": emoji},
                    "channel_id": channel_id,
                    "burst": false,
                    "guild_id": GUILD_ID,
                }),
            )
        }
    }

    fn message_json(&self, m: &FakeMessage) -> Value {
        self.message_json_depth(m, 0)
    }

    fn message_json_depth(&self, m: &FakeMessage, depth: u8) -> Value {
        let mut v = json!({
            "id": m.id,
            "channel_id": m.channel,
            "author": self.user_json(&m.author),
            "content": m.content,
            "timestamp": m.timestamp,
            "edited_timestamp": m.edited_timestamp,
            "tts": false,
            "mention_everyone": false,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": m.embeds,
            "components": m.components,
            "pinned": false,
            "type": m.kind,
            "flags": m.flags,
        });
        if !m.nonce.is_null() {
            v["nonce"] = m.nonce.clone();
        }
        let mut grouped: Vec<(String, Vec<String>)> = Vec::new();
        for (user, emoji) in &m.reactions {
            match grouped.iter_mut().find(|(e, _)| e == emoji) {
                Some((_, users)) => users.push(user.clone()),
                None => grouped.push((emoji.clone(), vec![user.clone()])),
            }
        }
        if !grouped.is_empty() {
            v["reactions"] = grouped
                .iter()
                .map(|(emoji, users)| {
                    json!({
                        "count": users.len(),
                        "count_details": {"burst": 0, "normal": users.len()},
                        "me": users.iter().any(|u| u == BOT_USER_ID),
                        "me_burst": false,
                        "burst_me": false,
                        "burst_count": 0,
                        "emoji": {"id": null, "name": emoji},
                        "burst_colors": [],
                    })
                })
                .collect();
        }
        if let Some(iid) = &m.interaction_id {
            v["webhook_id"] = json!(APPLICATION_ID);
            v["application_id"] = json!(APPLICATION_ID);
            if let Some(i) = self.interactions.iter().find(|i| &i.id == iid) {
                let mut meta = json!({
                    "id": i.id,
                    "type": 2,
                    "user": self.user_json(&i.user),
                    "authorizing_integration_owners": {"0": GUILD_ID},
                    "name": i.command,
                    "command_type": 1,
                });
                if !m.original {
                    meta["original_response_message_id"] = json!(i.original);
                }
                v["interaction_metadata"] = meta;
            }
        }
        if let Some(r) = &m.reference {
            v["message_reference"] = json!({
                "type": 0,
                "message_id": r,
                "channel_id": m.channel,
                "guild_id": GUILD_ID,
            });
            if depth == 0 {
                if let Some(rm) = self.messages.iter().find(|x| &x.id == r) {
                    v["referenced_message"] = self.message_json_depth(rm, 1);
                }
            }
        }
        if let Some(t) = &m.thread {
            if let Some(c) = self.channels.iter().find(|c| &c.id == t) {
                v["thread"] = self.channel_json(c);
            }
        }
        if let Some(c) = self.channels.iter().find(|c| c.id == m.channel) {
            if c.kind == 11 {
                let pos = self
                    .messages
                    .iter()
                    .filter(|x| x.channel == m.channel)
                    .position(|x| x.id == m.id)
                    .unwrap_or(0);
                v["position"] = json!(pos);
            }
        }
        v
    }

    fn guild_create_json(&self) -> Value {
        let channels: Vec<Value> = self
            .channels
            .iter()
            .filter(|c| c.kind != 11)
            .map(|c| {
                let mut v = self.channel_json(c);
                if let Some(o) = v.as_object_mut() {
                    o.remove("guild_id");
                }
                v
            })
            .collect();
        let threads: Vec<Value> = self
            .channels
            .iter()
            .filter(|c| c.kind == 11 && !c.archived)
            .map(|c| self.channel_json(c))
            .collect();
        let mut guild = json!({
            "id": GUILD_ID,
            "name": "Fake Guild",
            "icon": null,
            "icon_hash": null,
            "splash": null,
            "discovery_splash": null,
            "banner": null,
            "description": null,
            "owner_id": GUILD_OWNER_ID,
            "afk_channel_id": null,
            "afk_timeout": 300,
            "widget_enabled": false,
            "widget_channel_id": null,
            "verification_level": 1,
            "default_message_notifications": 1,
            "explicit_content_filter": 2,
            "roles": [
                Inner::role_json(GUILD_ID, "@everyone", 0, false),
                Inner::role_json(BOT_ROLE_ID, BOT_USERNAME, 1, true),
            ],
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "application_id": null,
            "system_channel_id": DEFAULT_CHANNELS[0].0,
            "system_channel_flags": 0,
            "rules_channel_id": null,
            "public_updates_channel_id": null,
            "safety_alerts_channel_id": null,
            "max_presences": null,
            "max_members": 500000,
            "vanity_url_code": null,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "max_video_channel_users": 25,
            "max_stage_video_channel_users": 50,
            "nsfw_level": 0,
            "nsfw": false,
            "premium_progress_bar_enabled": false,
            "incidents_data": null,
            "hub_type": null,
        });
        // GUILD_CREATE's extra fields (split: one json! literal this size exceeds the
        // macro recursion limit).
        let extra = json!({
            "joined_at": JOINED_AT,
            "large": false,
            "unavailable": false,
            "lazy": true,
            "member_count": 3,
            "voice_states": [],
            "members": [self.member_json(BOT_USER_ID, false)],
            "channels": channels,
            "threads": threads,
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "embedded_activities": [],
            "activity_instances": [],
            "application_command_counts": {},
        });
        if let (Some(g), Value::Object(e)) = (guild.as_object_mut(), extra) {
            g.extend(e);
        }
        guild
    }

    fn ready_json(&self, session_id: &str, shard: &Value) -> Value {
        json!({
            "v": 10,
            "user_settings": {},
            "user": self.current_user_json(),
            "guilds": [{"id": GUILD_ID, "unavailable": true}],
            "guild_join_requests": [],
            "relationships": [],
            "private_channels": [],
            "presences": [],
            "session_id": session_id,
            "session_type": "normal",
            "resume_gateway_url": self.gateway_url(),
            "shard": if shard.is_array() { shard.clone() } else { json!([0, 1]) },
            "application": {"id": APPLICATION_ID, "flags": 0},
            "auth": {},
            "geo_ordered_rtc_regions": ["fake"],
            "_trace": [TRACE],
        })
    }

    fn application_json(&self) -> Value {
        json!({
            "id": APPLICATION_ID,
            "name": BOT_USERNAME,
            "icon": null,
            "description": "",
            "summary": "",
            "type": null,
            "rpc_origins": [],
            "bot_public": false,
            "bot_require_code_grant": false,
            "terms_of_service_url": null,
            "privacy_policy_url": null,
            "owner": self.user_json(GUILD_OWNER_ID),
            "verify_key": "5eedfa4e0000000000000000000000000000000000000000000000000000f00d",
            "team": null,
            "flags": 0,
            "hook": true,
            "is_monetized": false,
            "interactions_endpoint_url": null,
            "role_connections_verification_url": null,
            "redirect_uris": [],
            "approximate_guild_count": 1,
            "integration_types_config": {"0": {}},
            "bot": self.current_user_json(),
        })
    }

    // ---- gateway ----

    fn send_to(&mut self, conn: u64, out: Out) {
        if let Out::Close(code, _) = &out {
            self.closes_sent.push((conn, *code));
        }
        if let Some(c) = self.conns.get(&conn) {
            let _ = c.tx.send(out);
        }
    }

    /// The newest connection attached to the current session.
    fn target_conn(&self) -> Option<u64> {
        let sid = self.current_session.as_deref()?;
        self.conns
            .iter()
            .rev()
            .find(|(_, c)| c.session.as_deref() == Some(sid))
            .map(|(id, _)| *id)
    }

    fn dispatch(&mut self, t: &str, d: Value, pushed: bool, interaction: Option<String>) {
        let Some(sid) = self.current_session.clone() else {
            self.pending.push(Pending {
                t: t.to_string(),
                d,
                pushed,
                interaction,
            });
            return;
        };
        let intents = self.sessions.get(&sid).map_or(0, |s| s.intents);
        if let Some(need) = intent_for(t) {
            if intents & need == 0 {
                self.dropped_by_intents.push(t.to_string());
                return;
            }
        }
        self.append_and_send(&sid, t, d, pushed, interaction);
    }

    fn append_and_send(
        &mut self,
        sid: &str,
        t: &str,
        d: Value,
        pushed: bool,
        interaction: Option<String>,
    ) -> u64 {
        let target = self
            .target_conn()
            .filter(|c| self.conns[c].session.as_deref() == Some(sid));
        let Some(session) = self.sessions.get_mut(sid) else {
            return 0;
        };
        session.seq += 1;
        let seq = session.seq;
        let frame = json!({"op": 0, "s": seq, "t": t, "d": d}).to_string();
        session.log.push(LogEntry {
            seq,
            t: t.to_string(),
            d: d.clone(),
            frame: frame.clone(),
            written: false,
            pushed,
            interaction,
        });
        self.dispatched.push(FakeDispatch {
            seq,
            session: sid.to_string(),
            t: t.to_string(),
            d,
            duplicate: false,
        });
        if pushed {
            self.last_pushed = Some((sid.to_string(), seq));
        }
        if let Some(conn) = target {
            self.send_to(
                conn,
                Out::Frame {
                    text: frame,
                    mark: Some((sid.to_string(), seq)),
                },
            );
        }
        seq
    }

    /// A logged dispatch reached the socket: the interaction deadline starts now.
    fn mark_written(&mut self, sid: &str, seq: u64) {
        let Some(entry) = self
            .sessions
            .get_mut(sid)
            .and_then(|s| s.log.iter_mut().find(|e| e.seq == seq))
        else {
            return;
        };
        entry.written = true;
        if let Some(iid) = entry.interaction.clone() {
            if let Some(i) = self.interactions.iter_mut().find(|i| i.id == iid) {
                i.sent_at.get_or_insert_with(Instant::now);
            }
        }
    }

    /// Closes every other connection: one shard, one live connection.
    fn close_others(&mut self, keep: u64) {
        let others: Vec<u64> = self.conns.keys().copied().filter(|c| *c != keep).collect();
        for c in others {
            if let Some(conn) = self.conns.get_mut(&c) {
                conn.session = None;
            }
            self.send_to(c, Out::Close(1000, "session moved".into()));
        }
    }

    fn client_frame(&mut self, conn: u64, text: &str) {
        let v = serde_json::from_str::<Value>(text).unwrap_or_else(|_| json!({"_unparsed": text}));
        self.client_frames.push((conn, v.clone()));
        let authed = self.conns.get(&conn).is_some_and(|c| c.session.is_some());
        match v["op"].as_u64() {
            Some(1) => {
                self.heartbeats += 1;
                self.send_to(
                    conn,
                    Out::Frame {
                        text: json!({"op": 11, "d": null, "s": null, "t": null}).to_string(),
                        mark: None,
                    },
                );
            }
            Some(2) => self.identify(conn, &v["d"]),
            Some(6) => self.resume(conn, &v["d"]),
            Some(3 | 4 | 8 | 31) if !authed => {
                self.send_to(conn, Out::Close(4003, "Not authenticated.".into()))
            }
            Some(3 | 4 | 8 | 31) => {}
            Some(_) => self.send_to(conn, Out::Close(4001, "Unknown opcode.".into())),
            None => self.send_to(
                conn,
                Out::Close(4002, "Error while decoding payload.".into()),
            ),
        }
    }

    fn token_ok(d: &Value) -> bool {
        d["token"]
            .as_str()
            .is_some_and(|t| t.trim_start_matches("Bot ") == BOT_TOKEN)
    }

    fn identify(&mut self, conn: u64, d: &Value) {
        if !Inner::token_ok(d) {
            self.send_to(conn, Out::Close(4004, "Authentication failed.".into()));
            return;
        }
        if self.conns.get(&conn).is_some_and(|c| c.session.is_some()) {
            self.send_to(conn, Out::Close(4005, "Already authenticated.".into()));
            return;
        }
        let Some(intents) = parse_u64(&d["intents"]) else {
            self.send_to(conn, Out::Close(4013, "Invalid intent(s).".into()));
            return;
        };
        if self.deny_privileged && intents & intents::PRIVILEGED != 0 {
            self.send_to(conn, Out::Close(4014, "Disallowed intent(s).".into()));
            return;
        }
        let mut recorded = d.clone();
        recorded["token"] = json!("<redacted>");
        self.identifies.push(recorded);
        self.session_starts_remaining = self.session_starts_remaining.saturating_sub(1);
        self.sessions_started += 1;
        let sid = format!("fa4e5e55{:024x}", self.sessions_started);
        // Dispatches of the old session that never reached a socket move to the new one.
        let carried: Vec<Pending> = self
            .current_session
            .take()
            .and_then(|old| self.sessions.get_mut(&old))
            .map(|s| {
                s.log
                    .iter_mut()
                    .filter(|e| !e.written && e.t != "READY" && e.t != "GUILD_CREATE")
                    .map(|e| {
                        e.written = true;
                        Pending {
                            t: e.t.clone(),
                            d: e.d.clone(),
                            pushed: e.pushed,
                            interaction: e.interaction.clone(),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        self.sessions.insert(
            sid.clone(),
            Session {
                intents,
                seq: 0,
                log: Vec::new(),
            },
        );
        self.current_session = Some(sid.clone());
        if let Some(c) = self.conns.get_mut(&conn) {
            c.session = Some(sid.clone());
        }
        self.close_others(conn);
        let ready = self.ready_json(&sid, &d["shard"]);
        self.append_and_send(&sid, "READY", ready, false, None);
        if intents & intents::GUILDS != 0 {
            let guild = self.guild_create_json();
            self.append_and_send(&sid, "GUILD_CREATE", guild, false, None);
        }
        let pending = std::mem::take(&mut self.pending);
        for p in carried.into_iter().chain(pending) {
            self.dispatch(&p.t, p.d, p.pushed, p.interaction);
        }
    }

    fn resume(&mut self, conn: u64, d: &Value) {
        let mut recorded = d.clone();
        recorded["token"] = json!("<redacted>");
        self.resumes.push(recorded);
        if !Inner::token_ok(d) {
            self.send_to(conn, Out::Close(4004, "Authentication failed.".into()));
            return;
        }
        let sid = d["session_id"].as_str().unwrap_or("").to_string();
        let client_seq = parse_u64(&d["seq"]).unwrap_or(0);
        let known = self.current_session.as_deref() == Some(sid.as_str())
            && self.sessions.contains_key(&sid);
        if !known {
            self.send_to(
                conn,
                Out::Frame {
                    text: json!({"op": 9, "d": false, "s": null, "t": null}).to_string(),
                    mark: None,
                },
            );
            return;
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.session = Some(sid.clone());
        }
        self.close_others(conn);
        let replay: Vec<(String, u64)> = self.sessions[&sid]
            .log
            .iter()
            .filter(|e| e.seq > client_seq)
            .map(|e| (e.frame.clone(), e.seq))
            .collect();
        for (frame, seq) in replay {
            self.send_to(
                conn,
                Out::Frame {
                    text: frame,
                    mark: Some((sid.clone(), seq)),
                },
            );
        }
        self.append_and_send(&sid, "RESUMED", json!({"_trace": [TRACE]}), false, None);
    }

    // ---- REST ----

    fn rest(
        &mut self,
        kind: RouteKind,
        segs: &[String],
        auth: Option<&str>,
        body: &Value,
    ) -> Reply {
        let expected = format!("Bot {BOT_TOKEN}");
        if kind.needs_bot_auth() && auth.map(str::trim) != Some(expected.as_str()) {
            return error(401, 0, "401: Unauthorized");
        }
        let s = |i: usize| segs.get(i).map(String::as_str).unwrap_or("");
        match kind {
            RouteKind::Gateway => ok(json!({"url": self.gateway_url()})),
            RouteKind::GatewayBot => ok(json!({
                "url": self.gateway_url(),
                "shards": 1,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": self.session_starts_remaining,
                    "reset_after": 14_400_000,
                    "max_concurrency": 1,
                },
            })),
            RouteKind::CurrentUser => ok(self.current_user_json()),
            RouteKind::CurrentApplication => ok(self.application_json()),
            RouteKind::SetCommands | RouteKind::GetCommands | RouteKind::CreateCommand => {
                self.commands_route(kind, segs, body)
            }
            RouteKind::GetChannel => match self.channels.iter().find(|c| c.id == s(1)) {
                Some(c) => ok(self.channel_json(c)),
                None => unknown_channel(),
            },
            RouteKind::GuildChannels => {
                if s(1) != GUILD_ID {
                    return error(403, 50001, "Missing Access");
                }
                ok(Value::Array(
                    self.channels
                        .iter()
                        .filter(|c| c.kind != 11)
                        .map(|c| self.channel_json(c))
                        .collect(),
                ))
            }
            RouteKind::CreateMessage => self.create_message(s(1), body),
            RouteKind::GetMessage => match self.visible_message(s(1), s(3)) {
                Ok(i) => ok(self.message_json(&self.messages[i])),
                Err(r) => r,
            },
            RouteKind::EditMessage => match self.visible_message(s(1), s(3)) {
                Ok(i) => self.edit_message_at(i, body),
                Err(r) => r,
            },
            RouteKind::DeleteMessage => match self.visible_message(s(1), s(3)) {
                Ok(i) => {
                    self.messages.remove(i);
                    no_content()
                }
                Err(r) => r,
            },
            RouteKind::CreateThread => self.create_thread(s(1), s(3), body),
            RouteKind::AddReaction | RouteKind::RemoveReaction => {
                self.own_reaction(s(1), s(3), s(5), kind == RouteKind::AddReaction)
            }
            RouteKind::InteractionCallback => self.callback(s(1), s(2), body),
            RouteKind::Followup => self.followup(s(1), s(2), body),
            RouteKind::GetOriginal
            | RouteKind::EditOriginal
            | RouteKind::DeleteOriginal
            | RouteKind::GetFollowup
            | RouteKind::EditFollowup
            | RouteKind::DeleteFollowup => self.webhook_message(kind, s(1), s(2), s(4), body),
            RouteKind::Unknown => error(404, 0, "404: Not Found"),
        }
    }

    fn commands_route(&mut self, kind: RouteKind, segs: &[String], body: &Value) -> Reply {
        if segs[1] != APPLICATION_ID {
            return error(403, 50001, "Missing Access");
        }
        let guild = (segs.len() == 5).then(|| segs[3].clone());
        if guild.as_deref().is_some_and(|g| g != GUILD_ID) {
            return error(403, 50001, "Missing Access");
        }
        let scope = guild.clone().unwrap_or_default();
        let existing = self.commands.get(&scope).cloned().unwrap_or_default();
        match kind {
            RouteKind::GetCommands => ok(Value::Array(existing)),
            RouteKind::SetCommands => {
                let Some(defs) = body.as_array() else {
                    return form_error(&[], "BASE_TYPE_ARRAY", "Must be an array.");
                };
                if defs.len() > 100 {
                    return form_error(
                        &[],
                        "BASE_TYPE_MAX_LENGTH",
                        "Must be 100 or fewer in length.",
                    );
                }
                let mut seen = HashSet::new();
                for (i, def) in defs.iter().enumerate() {
                    let path = vec![i.to_string()];
                    if let Err(r) = validate_command(def, &path) {
                        return r;
                    }
                    let key = (def["type"].as_u64().unwrap_or(1), def["name"].to_string());
                    if !seen.insert(key) {
                        return form_error(
                            &[i.to_string(), "name".into()],
                            "APPLICATION_COMMANDS_DUPLICATE_NAME",
                            "Application command names must be unique",
                        );
                    }
                }
                let list: Vec<Value> = defs
                    .iter()
                    .map(|def| {
                        let id = same_command(&existing, def).map(|c| c["id"].clone());
                        self.command_json(def, guild.as_deref(), id)
                    })
                    .collect();
                self.commands.insert(scope, list.clone());
                ok(Value::Array(list))
            }
            _ => {
                if let Err(r) = validate_command(body, &[]) {
                    return r;
                }
                let old = same_command(&existing, body).cloned();
                let cmd = self.command_json(
                    body,
                    guild.as_deref(),
                    old.as_ref().map(|c| c["id"].clone()),
                );
                let list = self.commands.entry(scope).or_default();
                list.retain(|c| !(c["name"] == cmd["name"] && c["type"] == cmd["type"]));
                list.push(cmd.clone());
                Reply {
                    status: if old.is_some() { 200 } else { 201 },
                    body: Some(cmd),
                }
            }
        }
    }

    fn command_json(&mut self, def: &Value, guild: Option<&str>, id: Option<Value>) -> Value {
        let mut c = def.as_object().cloned().unwrap_or_default();
        let id = id.unwrap_or_else(|| json!(self.snowflake()));
        let version = self.snowflake();
        c.insert("id".into(), id);
        c.insert("application_id".into(), json!(APPLICATION_ID));
        c.insert("version".into(), json!(version));
        c.entry("type").or_insert(json!(1));
        c.entry("description").or_insert(json!(""));
        c.entry("default_member_permissions").or_insert(Value::Null);
        c.entry("nsfw").or_insert(json!(false));
        c.entry("integration_types").or_insert(json!([0]));
        c.entry("contexts").or_insert(Value::Null);
        match guild {
            Some(g) => {
                c.insert("guild_id".into(), json!(g));
            }
            None => {
                c.entry("dm_permission").or_insert(json!(true));
            }
        }
        Value::Object(c)
    }

    /// A message in `channel` the bot can see through channel routes (not ephemeral).
    fn visible_message(&self, channel: &str, id: &str) -> Result<usize, Reply> {
        if !self.channels.iter().any(|c| c.id == channel) {
            return Err(unknown_channel());
        }
        self.messages
            .iter()
            .position(|m| m.channel == channel && m.id == id && !m.ephemeral)
            .ok_or_else(unknown_message)
    }

    fn new_message(&mut self, channel: &str, body: &Value, kind: u8) -> FakeMessage {
        let id = self.snowflake();
        FakeMessage {
            channel: channel.to_string(),
            id,
            content: body["content"].as_str().unwrap_or("").to_string(),
            edits: 0,
            author: BOT_USER_ID.to_string(),
            kind,
            flags: parse_u64(&body["flags"]).unwrap_or(0)
                & (FLAG_SUPPRESS_EMBEDS | FLAG_EPHEMERAL | FLAG_SUPPRESS_NOTIFICATIONS),
            ephemeral: false,
            interaction_id: None,
            original: false,
            embeds: array_or_empty(&body["embeds"]),
            components: array_or_empty(&body["components"]),
            reference: None,
            thread: None,
            reactions: Vec::new(),
            timestamp: now_timestamp(),
            edited_timestamp: None,
            nonce: body.get("nonce").cloned().unwrap_or(Value::Null),
        }
    }

    /// Stores the message, bumps its channel and echoes MESSAGE_CREATE unless ephemeral.
    fn store_message(&mut self, m: FakeMessage) -> Value {
        if let Some(c) = self.channels.iter_mut().find(|c| c.id == m.channel) {
            c.last_message_id = Some(m.id.clone());
            if c.kind == 11 {
                c.message_count += 1;
            }
        }
        let ephemeral = m.ephemeral;
        self.messages.push(m);
        let v = self.message_json(&self.messages[self.messages.len() - 1]);
        if !ephemeral {
            let mut d = v.clone();
            d["guild_id"] = json!(GUILD_ID);
            d["member"] = self.partial_member_json(BOT_USER_ID);
            self.dispatch("MESSAGE_CREATE", d, false, None);
        }
        v
    }

    fn create_message(&mut self, channel: &str, body: &Value) -> Reply {
        if !self.channels.iter().any(|c| c.id == channel) {
            return unknown_channel();
        }
        if let Err(r) = check_message_body(body, true) {
            return r;
        }
        let reference = body["message_reference"]["message_id"]
            .as_str()
            .map(str::to_string);
        if let Some(r) = &reference {
            let exists = self.messages.iter().any(|m| &m.id == r && !m.ephemeral);
            if !exists && body["message_reference"]["fail_if_not_exists"] != json!(false) {
                return form_error(
                    &["message_reference".into()],
                    "MESSAGE_REFERENCE_UNKNOWN_MESSAGE",
                    "Unknown message",
                );
            }
        }
        let mut m = self.new_message(channel, body, if reference.is_some() { 19 } else { 0 });
        m.flags &= !FLAG_EPHEMERAL;
        m.reference = reference;
        ok(self.store_message(m))
    }

    fn apply_edit(m: &mut FakeMessage, body: &Value) {
        if let Some(c) = body.get("content") {
            m.content = c.as_str().unwrap_or("").to_string();
        }
        if let Some(e) = body.get("embeds") {
            m.embeds = array_or_empty(e);
        }
        if let Some(c) = body.get("components") {
            m.components = array_or_empty(c);
        }
        if let Some(f) = parse_u64(&body["flags"]) {
            m.flags = (m.flags & !FLAG_SUPPRESS_EMBEDS) | (f & FLAG_SUPPRESS_EMBEDS);
        }
        m.flags &= !FLAG_LOADING;
        m.edits += 1;
        m.edited_timestamp = Some(now_timestamp());
    }

    fn edit_message_at(&mut self, i: usize, body: &Value) -> Reply {
        if self.messages[i].author != BOT_USER_ID {
            return error(403, 50005, "Cannot edit a message authored by another user");
        }
        if let Err(r) = check_message_body(body, false) {
            return r;
        }
        Inner::apply_edit(&mut self.messages[i], body);
        ok(self.message_json(&self.messages[i]))
    }

    fn create_thread(&mut self, channel: &str, message: &str, body: &Value) -> Reply {
        let Some(parent) = self.channels.iter().find(|c| c.id == channel).cloned() else {
            return unknown_channel();
        };
        if parent.kind == 11 {
            return error(400, 50024, "Cannot execute action on this channel type");
        }
        let Some(mi) = self
            .messages
            .iter()
            .position(|m| m.channel == channel && m.id == message && !m.ephemeral)
        else {
            return unknown_message();
        };
        if self.messages[mi].thread.is_some() {
            return error(
                400,
                160004,
                "A thread has already been created for this message",
            );
        }
        let name = body["name"].as_str().unwrap_or("");
        let len = name.chars().count();
        if !(1..=100).contains(&len) {
            return form_error(
                &["name".into()],
                "BASE_TYPE_BAD_LENGTH",
                "Must be between 1 and 100 in length.",
            );
        }
        let duration = match &body["auto_archive_duration"] {
            Value::Null => parent.auto_archive_duration,
            v => match parse_u64(v) {
                Some(d @ (60 | 1440 | 4320 | 10080)) => d,
                _ => {
                    return form_error(
                        &["auto_archive_duration".into()],
                        "BASE_TYPE_CHOICES",
                        "Value must be one of {60, 1440, 4320, 10080}.",
                    )
                }
            },
        };
        let thread = FakeChannel {
            id: message.to_string(),
            name: name.to_string(),
            kind: 11,
            parent_id: Some(channel.to_string()),
            parent_message: Some(message.to_string()),
            message_count: 0,
            auto_archive_duration: duration,
            archived: false,
            last_message_id: None,
            created: now_timestamp(),
            position: 0,
        };
        let v = self.channel_json(&thread);
        self.channels.push(thread);
        self.messages[mi].thread = Some(message.to_string());
        let mut event = v.clone();
        event["newly_created"] = json!(true);
        event["member"] = json!({
            "id": message,
            "user_id": BOT_USER_ID,
            "join_timestamp": now_timestamp(),
            "flags": 1,
        });
        self.dispatch("THREAD_CREATE", event, false, None);
        Reply {
            status: 201,
            body: Some(v),
        }
    }

    fn own_reaction(&mut self, channel: &str, message: &str, emoji: &str, add: bool) -> Reply {
        let i = match self.visible_message(channel, message) {
            Ok(i) => i,
            Err(r) => return r,
        };
        // Unicode, or `name:id` for a custom emoji.
        let custom_ok = |id: &str| !id.is_empty() && id.chars().all(|c| c.is_ascii_digit());
        let valid = match emoji.split_once(':') {
            None => !emoji.is_empty(),
            Some((name, id)) => !name.is_empty() && custom_ok(id),
        };
        if !valid {
            return error(400, 10014, "Unknown Emoji");
        }
        let pair = (BOT_USER_ID.to_string(), emoji.to_string());
        let m = &mut self.messages[i];
        let changed = if add {
            let new = !m.reactions.contains(&pair);
            if new {
                m.reactions.push(pair);
            }
            new
        } else {
            let before = m.reactions.len();
            m.reactions.retain(|p| p != &pair);
            m.reactions.len() != before
        };
        let author = m.author.clone();
        if changed {
            let (t, mut d) = self.reaction_event(BOT_USER_ID, channel, message, emoji, add);
            if add {
                d["message_author_id"] = json!(author);
            }
            self.dispatch(t, d, false, None);
        }
        no_content()
    }

    fn callback(&mut self, iid: &str, token: &str, body: &Value) -> Reply {
        let kind = parse_u64(&body["type"]).unwrap_or(0) as u8;
        let data = &body["data"];
        let ephemeral = parse_u64(&data["flags"]).unwrap_or(0) & FLAG_EPHEMERAL != 0;
        let idx = self
            .interactions
            .iter()
            .position(|i| i.id == iid && i.token == token);
        let reply = match idx {
            None => error(404, 10062, "Unknown interaction"),
            Some(i) => self.accept_callback(i, kind, data, ephemeral),
        };
        self.responses.push(FakeInteractionResponse {
            interaction_id: iid.to_string(),
            kind,
            content: data["content"].as_str().unwrap_or("").to_string(),
            ephemeral,
            body: body.clone(),
            status: reply.status,
            at: Instant::now(),
        });
        reply
    }

    fn accept_callback(&mut self, i: usize, kind: u8, data: &Value, ephemeral: bool) -> Reply {
        let inter = &self.interactions[i];
        if inter.acknowledged.is_some() {
            return error(400, 40060, "Interaction has already been acknowledged.");
        }
        let in_time = inter
            .sent_at
            .is_some_and(|t| t.elapsed() <= self.interaction_deadline);
        if !in_time {
            return error(404, 10062, "Unknown interaction");
        }
        if !matches!(kind, 4 | 5 | 9) {
            return form_error(
                &["type".into()],
                "BASE_TYPE_CHOICES",
                "Value must be one of {4, 5, 9}.",
            );
        }
        if kind != 9 {
            if let Err(r) = check_message_body(data, kind == 4) {
                return r;
            }
        }
        let iid = self.interactions[i].id.clone();
        let channel = self.interactions[i].channel.clone();
        if kind == 4 || kind == 5 {
            let mut m = self.new_message(&channel, data, 20);
            if kind == 5 {
                m.content.clear();
                m.embeds = json!([]);
                m.components = json!([]);
                m.flags |= FLAG_LOADING;
            }
            m.ephemeral = ephemeral;
            if ephemeral {
                m.flags |= FLAG_EPHEMERAL;
            }
            m.interaction_id = Some(iid);
            m.original = true;
            let id = m.id.clone();
            let inter = &mut self.interactions[i];
            inter.original = Some(id);
            inter.ephemeral = ephemeral;
            inter.deferred_pending = kind == 5;
            inter.acknowledged = Some(kind);
            self.store_message(m);
        } else {
            self.interactions[i].acknowledged = Some(kind);
        }
        no_content()
    }

    /// The interaction behind a webhook route, once acknowledged.
    fn webhook_interaction(&self, app: &str, token: &str) -> Result<usize, Reply> {
        let invalid = || error(401, 50027, "Invalid Webhook Token");
        if app != APPLICATION_ID {
            return Err(invalid());
        }
        let i = self
            .interactions
            .iter()
            .position(|i| i.token == token)
            .ok_or_else(invalid)?;
        if self.interactions[i].acknowledged.is_none() {
            return Err(error(404, 10015, "Unknown Webhook"));
        }
        Ok(i)
    }

    fn followup(&mut self, app: &str, token: &str, body: &Value) -> Reply {
        let i = match self.webhook_interaction(app, token) {
            Ok(i) => i,
            Err(r) => return r,
        };
        if let Err(r) = check_message_body(body, true) {
            return r;
        }
        let inter = self.interactions[i].clone();
        if inter.deferred_pending {
            // Discord: right after a deferred response, a followup edits the loading message
            // (its ephemeral state cannot change).
            if let Some(mi) = inter
                .original
                .as_ref()
                .and_then(|id| self.messages.iter().position(|m| &m.id == id))
            {
                Inner::apply_edit(&mut self.messages[mi], body);
                self.interactions[i].deferred_pending = false;
                return ok(self.message_json(&self.messages[mi]));
            }
        }
        let mut m = self.new_message(&inter.channel, body, 20);
        m.ephemeral = m.flags & FLAG_EPHEMERAL != 0;
        m.interaction_id = Some(inter.id.clone());
        ok(self.store_message(m))
    }

    fn webhook_message(
        &mut self,
        kind: RouteKind,
        app: &str,
        token: &str,
        message: &str,
        body: &Value,
    ) -> Reply {
        let i = match self.webhook_interaction(app, token) {
            Ok(i) => i,
            Err(r) => return r,
        };
        let inter = self.interactions[i].clone();
        let target = if message == "@original" {
            inter.original.clone()
        } else {
            Some(message.to_string())
        };
        let Some(mi) = target.and_then(|id| {
            self.messages
                .iter()
                .position(|m| m.id == id && m.interaction_id.as_deref() == Some(inter.id.as_str()))
        }) else {
            return unknown_message();
        };
        match kind {
            RouteKind::GetOriginal | RouteKind::GetFollowup => {
                ok(self.message_json(&self.messages[mi]))
            }
            RouteKind::DeleteOriginal | RouteKind::DeleteFollowup => {
                self.messages.remove(mi);
                no_content()
            }
            _ => {
                if let Err(r) = check_message_body(body, false) {
                    return r;
                }
                Inner::apply_edit(&mut self.messages[mi], body);
                if self.messages[mi].original {
                    self.interactions[i].deferred_pending = false;
                }
                ok(self.message_json(&self.messages[mi]))
            }
        }
    }
}

/// A registered command with the same type and name, whose id Discord keeps.
fn same_command<'a>(existing: &'a [Value], def: &Value) -> Option<&'a Value> {
    let kind = def["type"].as_u64().unwrap_or(1);
    existing
        .iter()
        .find(|c| c["name"] == def["name"] && c["type"].as_u64().unwrap_or(1) == kind)
}

fn ok(v: Value) -> Reply {
    Reply {
        status: 200,
        body: Some(v),
    }
}

fn no_content() -> Reply {
    Reply {
        status: 204,
        body: None,
    }
}

fn error(status: u16, code: u64, message: &str) -> Reply {
    Reply {
        status,
        body: Some(json!({"message": message, "code": code})),
    }
}

fn unknown_channel() -> Reply {
    error(404, 10003, "Unknown Channel")
}

fn unknown_message() -> Reply {
    error(404, 10008, "Unknown Message")
}

/// 400 `50035 Invalid Form Body` with Discord's nested `errors` object at `path`.
fn form_error(path: &[String], code: &str, message: &str) -> Reply {
    let mut errors = json!({"_errors": [{"code": code, "message": message}]});
    for key in path.iter().rev() {
        errors = json!({ key.as_str(): errors });
    }
    Reply {
        status: 400,
        body: Some(json!({"message": "Invalid Form Body", "code": 50035, "errors": errors})),
    }
}

fn check_message_body(body: &Value, require_something: bool) -> Result<(), Reply> {
    if let Some(c) = body["content"].as_str() {
        if c.chars().count() > MESSAGE_MAX_CHARS {
            return Err(form_error(
                &["content".into()],
                "BASE_TYPE_MAX_LENGTH",
                "Must be 2000 or fewer in length.",
            ));
        }
    }
    if body["embeds"].as_array().is_some_and(|e| e.len() > 10) {
        return Err(form_error(
            &["embeds".into()],
            "BASE_TYPE_MAX_LENGTH",
            "Must be 10 or fewer in length.",
        ));
    }
    let nonempty = |k: &str| match &body[k] {
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Null => false,
        _ => true,
    };
    if require_something
        && ![
            "content",
            "embeds",
            "components",
            "sticker_ids",
            "poll",
            "attachments",
        ]
        .iter()
        .any(|k| nonempty(k))
    {
        return Err(error(400, 50006, "Cannot send an empty message"));
    }
    Ok(())
}

/// Discord's rule for CHAT_INPUT command and option names.
fn valid_name(name: &str) -> bool {
    let n = name.chars().count();
    (1..=32).contains(&n)
        && name
            .chars()
            .all(|c| (c.is_alphanumeric() || c == '-' || c == '_') && c.to_lowercase().eq([c]))
}

fn validate_command(def: &Value, path: &[String]) -> Result<(), Reply> {
    let at = |k: &str| {
        let mut p = path.to_vec();
        p.push(k.to_string());
        p
    };
    let kind = def["type"].as_u64().unwrap_or(1);
    let name = def["name"].as_str().unwrap_or("");
    let name_ok = if kind == 1 {
        valid_name(name)
    } else {
        (1..=32).contains(&name.chars().count())
    };
    if !name_ok {
        return Err(form_error(
            &at("name"),
            "APPLICATION_COMMAND_INVALID_NAME",
            "Command name is invalid",
        ));
    }
    let description = def["description"].as_str().unwrap_or("");
    if kind == 1 && !(1..=100).contains(&description.chars().count()) {
        return Err(form_error(
            &at("description"),
            "BASE_TYPE_BAD_LENGTH",
            "Must be between 1 and 100 in length.",
        ));
    }
    match &def["options"] {
        Value::Null => Ok(()),
        Value::Array(opts) => validate_options(opts, &at("options"), 0),
        _ => Err(form_error(
            &at("options"),
            "BASE_TYPE_ARRAY",
            "Must be an array.",
        )),
    }
}

/// `parent`: 0 for a command, 1 inside a subcommand, 2 inside a subcommand group.
fn validate_options(opts: &[Value], path: &[String], parent: u64) -> Result<(), Reply> {
    if opts.len() > 25 {
        return Err(form_error(
            path,
            "BASE_TYPE_MAX_LENGTH",
            "Must be 25 or fewer in length.",
        ));
    }
    let kinds: Vec<u64> = opts
        .iter()
        .map(|o| o["type"].as_u64().unwrap_or(0))
        .collect();
    if kinds.iter().any(|k| *k <= 2) && kinds.iter().any(|k| *k > 2) {
        return Err(form_error(
            path,
            "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID",
            "Sub-command and sub-command group option types are mutually exclusive to all other types",
        ));
    }
    let mut names = HashSet::new();
    let mut seen_optional = false;
    for (i, o) in opts.iter().enumerate() {
        let at = |k: &str| {
            let mut p = path.to_vec();
            p.push(i.to_string());
            p.push(k.to_string());
            p
        };
        let kind = kinds[i];
        let allowed = match parent {
            0 => (1..=11).contains(&kind),
            2 => kind == 1,
            _ => (3..=11).contains(&kind),
        };
        if !allowed {
            return Err(form_error(
                &at("type"),
                "APPLICATION_COMMAND_OPTION_TYPE_INVALID",
                "Invalid option type for this position",
            ));
        }
        let name = o["name"].as_str().unwrap_or("");
        if !valid_name(name) {
            return Err(form_error(
                &at("name"),
                "APPLICATION_COMMAND_INVALID_NAME",
                "Command name is invalid",
            ));
        }
        if !names.insert(name.to_string()) {
            return Err(form_error(
                &at("name"),
                "APPLICATION_COMMAND_OPTION_NAME_ALREADY_EXISTS",
                "Option names must be unique",
            ));
        }
        let description = o["description"].as_str().unwrap_or("");
        if !(1..=100).contains(&description.chars().count()) {
            return Err(form_error(
                &at("description"),
                "BASE_TYPE_BAD_LENGTH",
                "Must be between 1 and 100 in length.",
            ));
        }
        if kind >= 3 {
            let required = o["required"].as_bool().unwrap_or(false);
            if required && seen_optional {
                return Err(form_error(
                    &at("required"),
                    "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                    "Required options must be placed before non-required options",
                ));
            }
            seen_optional |= !required;
        }
        if o["choices"].as_array().is_some_and(|c| c.len() > 25) {
            return Err(form_error(
                &at("choices"),
                "BASE_TYPE_MAX_LENGTH",
                "Must be 25 or fewer in length.",
            ));
        }
        if kind <= 2 {
            let sub = o["options"].as_array().cloned().unwrap_or_default();
            validate_options(&sub, &at("options"), kind)?;
        }
    }
    Ok(())
}

fn array_or_empty(v: &Value) -> Value {
    match v {
        Value::Array(_) => v.clone(),
        _ => json!([]),
    }
}

fn parse_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn collect_labels(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, val) in map {
                match val {
                    Value::String(s) if k == "label" => out.push(s.clone()),
                    _ => collect_labels(val, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_labels(x, out)),
        _ => {}
    }
}

/// ISO 8601 as Discord writes it: `2024-05-01T12:00:00.123000+00:00`.
fn now_timestamp() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6f+00:00")
        .to_string()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn classify(method: &Method, segs: &[&str]) -> RouteKind {
    use RouteKind as R;
    let m = method.as_str();
    match (m, segs) {
        ("GET", ["gateway"]) => R::Gateway,
        ("GET", ["gateway", "bot"]) => R::GatewayBot,
        ("GET", ["users", "@me"]) => R::CurrentUser,
        ("GET", ["oauth2", "applications", "@me"] | ["applications", "@me"]) => {
            R::CurrentApplication
        }
        (_, ["applications", _, "commands"] | ["applications", _, "guilds", _, "commands"]) => {
            match m {
                "PUT" => R::SetCommands,
                "GET" => R::GetCommands,
                "POST" => R::CreateCommand,
                _ => R::Unknown,
            }
        }
        ("GET", ["channels", _]) => R::GetChannel,
        ("GET", ["guilds", _, "channels"]) => R::GuildChannels,
        ("POST", ["channels", _, "messages"]) => R::CreateMessage,
        (_, ["channels", _, "messages", _]) => match m {
            "GET" => R::GetMessage,
            "PATCH" => R::EditMessage,
            "DELETE" => R::DeleteMessage,
            _ => R::Unknown,
        },
        ("POST", ["channels", _, "messages", _, "threads"]) => R::CreateThread,
        ("PUT", ["channels", _, "messages", _, "reactions", _, "@me"]) => R::AddReaction,
        ("DELETE", ["channels", _, "messages", _, "reactions", _, "@me"]) => R::RemoveReaction,
        ("POST", ["interactions", _, _, "callback"]) => R::InteractionCallback,
        ("POST", ["webhooks", _, _]) => R::Followup,
        (_, ["webhooks", _, _, "messages", "@original"]) => match m {
            "GET" => R::GetOriginal,
            "PATCH" => R::EditOriginal,
            "DELETE" => R::DeleteOriginal,
            _ => R::Unknown,
        },
        (_, ["webhooks", _, _, "messages", _]) => match m {
            "GET" => R::GetFollowup,
            "PATCH" => R::EditFollowup,
            "DELETE" => R::DeleteFollowup,
            _ => R::Unknown,
        },
        _ => R::Unknown,
    }
}

/// The JSON body, or the `payload_json` part of a multipart body.
fn parse_body(headers: &HeaderMap, raw: &[u8]) -> Value {
    if raw.is_empty() {
        return Value::Null;
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let text = String::from_utf8_lossy(raw);
    if content_type.starts_with("multipart/") {
        let payload = text.find("name=\"payload_json\"").and_then(|at| {
            let rest = &text[at..];
            let start = rest.find("\r\n\r\n")? + 4;
            let end = rest[start..].find("\r\n--")? + start;
            serde_json::from_str::<Value>(&rest[start..end]).ok()
        });
        return payload.unwrap_or_else(|| json!({"_multipart": true}));
    }
    serde_json::from_str(&text).unwrap_or_else(|_| json!({"_invalid_json": text}))
}

fn with_ratelimit_headers(
    mut resp: Response,
    route: RouteKind,
    remaining: u32,
    reset_after: f64,
) -> Response {
    let reset = common::unix_ms() as f64 / 1000.0 + reset_after;
    let h = resp.headers_mut();
    let mut put = |k: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(HeaderName::from_static(k), v);
        }
    };
    put("x-ratelimit-limit", "5".into());
    put("x-ratelimit-remaining", remaining.to_string());
    put("x-ratelimit-reset", format!("{reset:.3}"));
    put("x-ratelimit-reset-after", format!("{reset_after:.3}"));
    put(
        "x-ratelimit-bucket",
        format!("fake{:?}", route).to_lowercase(),
    );
    resp
}

async fn rest_handler(
    State(s): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let Some(rest) = uri.path().strip_prefix("/api/v10/") else {
        return common::json_response(404, &json!({"message": "404: Not Found", "code": 0}));
    };
    let segs: Vec<String> = rest
        .split('/')
        .filter(|x| !x.is_empty())
        .map(percent_decode)
        .collect();
    let seg_refs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let route = classify(&method, &seg_refs);
    let body = parse_body(&headers, &raw);
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (fault, idx) = {
        let mut inner = s.lock();
        let fault = inner.faults.next(&route);
        inner.calls.push(FakeCall {
            route,
            method: method.to_string(),
            path: segs.join("/"),
            authorization: authorization.clone(),
            body: body.clone(),
            status: 0,
            fault: fault.clone(),
            at: Instant::now(),
        });
        (fault, inner.calls.len() - 1)
    };
    let set_status = |status: u16| s.lock().calls[idx].status = status;
    match fault {
        Some(Fault::RateLimited { retry_after_secs }) => {
            set_status(429);
            let mut resp = common::rate_limited(
                retry_after_secs,
                &json!({
                    "message": "You are being rate limited.",
                    "retry_after": retry_after_secs,
                    "global": false,
                }),
            );
            resp.headers_mut()
                .insert("x-ratelimit-scope", HeaderValue::from_static("user"));
            return with_ratelimit_headers(resp, route, 0, retry_after_secs);
        }
        Some(Fault::ServerError) => {
            set_status(500);
            return common::json_response(
                500,
                &json!({"message": "500: Internal Server Error", "code": 0}),
            );
        }
        Some(Fault::Hang) => return std::future::pending::<Response>().await,
        Some(Fault::Error {
            status,
            code,
            message,
        }) => {
            set_status(status);
            return common::json_response(status, &json!({"message": message, "code": code}));
        }
        None => {}
    }
    let reply = s.lock().rest(route, &segs, authorization.as_deref(), &body);
    set_status(reply.status);
    let resp = match &reply.body {
        Some(b) => common::json_response(reply.status, b),
        None => StatusCode::from_u16(reply.status)
            .unwrap_or(StatusCode::NO_CONTENT)
            .into_response(),
    };
    with_ratelimit_headers(resp, route, 4, 1.0)
}

async fn gateway_handler(
    State(s): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    ws: WebSocketUpgrade,
) -> Response {
    ws.on_upgrade(move |socket| run_gateway(s, socket, query.unwrap_or_default()))
}

async fn run_gateway(s: Arc<Shared>, mut socket: WebSocket, query: String) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Out>();
    let (id, hello) = {
        let mut inner = s.lock();
        inner.opened += 1;
        let id = inner.opened;
        inner.conns.insert(
            id,
            Conn {
                tx,
                session: None,
                query,
            },
        );
        let hello = json!({
            "op": 10,
            "d": {"heartbeat_interval": inner.heartbeat_interval, "_trace": [TRACE]},
            "s": null,
            "t": null,
        });
        (id, hello.to_string())
    };
    let mut alive = socket.send(WsMessage::Text(hello.into())).await.is_ok();
    while alive {
        alive = tokio::select! {
            out = rx.recv() => match out {
                Some(Out::Frame { text, mark }) => {
                    let sent = socket.send(WsMessage::Text(text.into())).await.is_ok();
                    if let (true, Some((sid, seq))) = (sent, mark) {
                        s.lock().mark_written(&sid, seq);
                    }
                    sent
                }
                Some(Out::Close(code, reason)) => {
                    let frame = CloseFrame { code, reason: reason.into() };
                    let _ = socket.send(WsMessage::Close(Some(frame))).await;
                    false
                }
                Some(Out::Abort) | None => false,
            },
            msg = socket.recv() => match msg {
                Some(Ok(WsMessage::Text(t))) => {
                    s.lock().client_frame(id, t.as_str());
                    true
                }
                Some(Ok(WsMessage::Binary(b))) => {
                    s.lock().client_frame(id, &String::from_utf8_lossy(&b));
                    true
                }
                Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None => false,
                Some(Ok(_)) => true,
            },
        };
    }
    s.lock().conns.remove(&id);
}
