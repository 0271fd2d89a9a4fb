//! Discord adapter on serenity 0.12.5: settings, pure conversion of slash commands and reactions into `DiscordInbound`, the command definitions, the REST client (post, edit, thread, register) and the gateway (serenity `Client` + `EventHandler`).
//!
//! Shape (as `slack.rs`): config (`DiscordSettings`), pure conversion (`command_text`,
//! `command_definitions`, `emoji_name`, option extraction, the reaction ledger; unit tested
//! below), client (`DiscordClient`, `Gateway`). Everything that talks to Discord goes through
//! serenity's `Http`, `Request`/`Route`, builders, models, `Client` and `EventHandler`; this file
//! picks the REST base, adds timeouts and maps errors.
//!
//! Facts about serenity 0.12.5 this file relies on (checked in its source, `src/...`):
//! - `HttpBuilder::proxy(url)` makes `Request::build` replace the `https://discord.com` prefix
//!   of every route (`http/request.rs:76-79`), but the rate limiter builds its requests with no
//!   proxy (`http/ratelimiting.rs:199`), so any other base needs `.ratelimiter_disabled(true)`
//!   (`http/client.rs:145-157`). Only `https://discord.com` keeps serenity's rate limiter, which
//!   sleeps `Retry-After` and retries a 429 by itself (`ratelimiting.rs:213-246, 360-377`).
//! - With the rate limiter off, `Http::request` turns any non-2xx into
//!   `HttpError::UnsuccessfulRequest(ErrorResponse)` whose body is decoded into
//!   `DiscordJsonError { code, message, errors }` (`http/client.rs:5214-5229`,
//!   `http/error.rs:13-57`): `retry_after` and the headers are dropped (and a 429 body without
//!   `code` does not even decode). So REST calls that the outbox retries (post, edit, thread) build
//!   serenity's own `Request` (same `Route`, same builder body, same `Request::build` with token and
//!   proxy) and, when the rate limiter is off, execute it on the same reqwest client themselves to
//!   keep the 429's `retry_after`; with the rate limiter on they go through `Http::fire`.
//! - Neither `Http` nor the reqwest client it builds has a request timeout
//!   (`http/client.rs:148-151`, `5260-5263`), hence `tokio::time::timeout` around every call.
//! - `ClientBuilder`'s `.await` asks `GET /api/v10/gateway` through the same `Http` (so through
//!   the proxy) and falls back to `wss://gateway.discord.gg` (`client/mod.rs:364-370`); the URL
//!   lives in `Client::ws_url` (`client/mod.rs:623`) and the shard connects to
//!   `"{ws_url}?v=10"` (`gateway/shard.rs:766-774`): an override must carry no query.
//! - Application commands: `GuildId::set_commands` is a bulk `PUT` that needs the `Http`'s
//!   application id (`model/guild/guild_id.rs:1574-1580`, `http/client.rs:613-628`); the shard
//!   sets it from READY (`gateway/bridge/shard_queuer.rs:175`).
//! - An `INTERACTION_CREATE` needs `attachment_size_limit` to decode
//!   (`model/application/command_interaction.rs:92`), a reaction needs `burst` and `type`
//!   (`model/channel/reaction.rs:50-58`).
//! - Every event handler call is a separate spawned task (`client/dispatch.rs:63-72`), so two
//!   events may be handled out of order, and handlers never see the gateway sequence number
//!   (`dispatch_model` gets the `Event` only, `client/dispatch.rs:44-50`).
//! - `ShardManager::shutdown_all` does nothing when no shard runner exists yet
//!   (`gateway/bridge/shard_manager.rs:304-313`), so `Gateway::shutdown` also aborts the task.
//!
//! Reaction dedup. Serenity does not expose the gateway sequence number, so the dedup key of a
//! reaction is built from its content plus the reaction's *state transition number*: the ledger
//! keeps, per (channel, message, user, emoji), the last state seen (added or removed) and the
//! number it got. A dispatch that repeats the current state (a duplicated dispatch) gets the same
//! number, hence the same dedup; a real change (remove after add, add after remove) takes the next
//! number of a per-session counter, so add, remove, add again are three distinct events. The
//! gateway session id (from READY; Discord never replays events across sessions, RESUME keeps the
//! session) is part of the key, so keys stay unique across reconnects and restarts, and the ledger
//! starts afresh with each new session (its state may be stale after a re-identify). The ledger
//! keeps the newest `LEDGER_CAPACITY` keys; a key dropped from it gets a fresh number, so at worst a
//! very late duplicate is delivered twice (reaction handling is idempotent), never is a real
//! change swallowed. Limits: a duplicate arriving after the opposite change looks like a new
//! change, and, serenity spawning one task per event, an add and a remove of the same reaction
//! within microseconds may be seen in the wrong order.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::IpAddr;
use std::num::NonZeroU64;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serenity::builder::{
    CreateAllowedMentions, CreateCommand, CreateCommandOption, CreateInteractionResponse,
    CreateInteractionResponseMessage, CreateMessage, CreateThread, EditInteractionResponse,
    EditMessage,
};
use serenity::client::{Context, EventHandler};
use serenity::gateway::{ConnectionStage, ShardManager};
use serenity::http::{Http, HttpBuilder, HttpError, LightMethod, Request, Route};
use serenity::model::application::{
    CommandData, CommandDataOption, CommandDataOptionValue, CommandInteraction, CommandOptionType,
    Interaction,
};
use serenity::model::channel::{GuildChannel, Message, Reaction, ReactionType};
use serenity::model::gateway::{GatewayIntents, Ready};
use serenity::model::id::{ChannelId, GuildId, MessageId};
use tracing::{debug, info, warn};

// ---------------------------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------------------------

/// How to reach Discord. The token comes from the environment; `Debug` never prints it.
#[derive(Clone)]
pub struct DiscordSettings {
    /// `https://discord.com`, or `http://127.0.0.1:PORT` (plain http only on loopback). Any base
    /// other than `https://discord.com` turns serenity's rate limiter off (see the module doc).
    pub api_url: String,
    /// Gateway override, e.g. `ws://127.0.0.1:PORT/gateway` (no query: serenity appends
    /// `?v=10`). `None`: ask `GET /api/v10/gateway` through `api_url`.
    pub gateway_url: Option<String>,
    /// The bot token (`Bot ` is prefixed by serenity when missing).
    pub token: String,
    /// The guild whose commands are registered and whose events are handled.
    pub guild_id: u64,
    /// `(name, display name)`: the choices of the `env` option.
    pub environments: Vec<(String, String)>,
    /// Bound on every REST call (and on building the gateway client).
    pub request_timeout: Duration,
}

impl std::fmt::Debug for DiscordSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordSettings")
            .field("api_url", &self.api_url)
            .field("gateway_url", &self.gateway_url)
            .field("token", &"<redacted>")
            .field("guild_id", &self.guild_id)
            .field("environments", &self.environments)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

/// Discord's own REST base; the only one served with serenity's rate limiter on.
pub const DISCORD_API_URL: &str = "https://discord.com";
/// How long `on_command` may take before the interaction is deferred (Discord allows 3 s for the
/// first response; the rest is left for the response's round trip).
pub const ANSWER_WITHIN: Duration = Duration::from_millis(2000);
/// Used when a 429 carries neither `retry_after` nor `Retry-After` (Discord always sends both).
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);
/// Reaction ledger size (keys kept; see the module doc).
const LEDGER_CAPACITY: usize = 10_000;
/// Discord's limit on a thread name, in characters.
const THREAD_NAME_LIMIT: usize = 100;
/// Discord allows at most 25 choices on an option; with more environments `env` is free text.
const MAX_CHOICES: usize = 25;

/// The gateway intents: none privileged (message content is not needed).
pub fn intents() -> GatewayIntents {
    GatewayIntents::GUILDS
        | GatewayIntents::GUILD_MESSAGES
        | GatewayIntents::GUILD_MESSAGE_REACTIONS
}

// ---------------------------------------------------------------------------------------------
// Pure conversion
// ---------------------------------------------------------------------------------------------

/// Something that arrived from Discord (ids as decimal strings).
#[derive(Clone, Debug, PartialEq)]
pub enum DiscordInbound {
    /// A slash command, converted to greenlight's chat grammar, e.g.
    /// `/deploy v1.2.0 staging --force "hotfix" --dry-run`, `/deploy status staging`,
    /// `/deploy history staging --limit 5`, `/deploy lock staging db work`, `/deploy cancel 42`,
    /// `/deploy why-not v1.2.0 staging`, `/deploy help`, `/rollback staging reason text`.
    /// Values are quoted when they contain spaces or quotes. `dedup` is the interaction id.
    Command {
        dedup: String,
        user: String,
        channel: String,
        text: String,
    },
    /// A reaction added (`added: true`) or removed. `dedup` is
    /// `r:{channel}:{message}:{user}:{emoji}:{added}:{session}:{n}` (see the module doc).
    /// `emoji` is a Slack short name for ✅ `white_check_mark`, 👍 `+1`, ❌ `x` (skin tones count as
    /// the base); other unicode emoji pass through as they are, custom emoji by name.
    Reaction {
        dedup: String,
        user: String,
        channel: String,
        message_id: String,
        emoji: String,
        added: bool,
    },
}

/// The answer to a slash command: text and whether only the invoking user sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct CommandAnswer {
    pub text: String,
    pub ephemeral: bool,
}

/// The app's side: `on_command` is awaited (it must answer within ~2 s; after
/// [`ANSWER_WITHIN`] the interaction is deferred ephemerally and the answer edited in when it
/// comes), `on_reaction` returns at once.
pub trait DiscordSink: Send + Sync + 'static {
    fn on_command(
        &self,
        inbound: DiscordInbound,
    ) -> Pin<Box<dyn Future<Output = CommandAnswer> + Send>>;
    fn on_reaction(&self, inbound: DiscordInbound);
}

/// The `/deploy` subcommands, in the order they are registered.
pub const DEPLOY_SUBCOMMANDS: [&str; 8] = [
    "release", "status", "history", "lock", "unlock", "cancel", "why-not", "help",
];

/// The Discord form of a (sub)command's usage line.
pub fn discord_usage(command: &str, subcommand: Option<&str>) -> &'static str {
    match (command.trim_start_matches('/'), subcommand) {
        ("rollback", _) => "/rollback env:<env> [reason:<text>]",
        ("deploy", Some("release")) => {
            "/deploy release version:<version> env:<env> [service:<name>] [force:<reason>] [dry_run:<true|false>]"
        }
        ("deploy", Some("status")) => "/deploy status [env:<env>]",
        ("deploy", Some("history")) => "/deploy history env:<env> [limit:<n>]",
        ("deploy", Some("lock")) => "/deploy lock env:<env> reason:<text>",
        ("deploy", Some("unlock")) => "/deploy unlock env:<env>",
        ("deploy", Some("cancel")) => "/deploy cancel run:<run-id>",
        ("deploy", Some("why-not")) => "/deploy why-not version:<version> env:<env> [service:<name>]",
        ("deploy", Some("help")) => "/deploy help",
        _ => "/deploy release|status|history|lock|unlock|cancel|why-not|help, /rollback",
    }
}

/// Builds the chat text from the Discord command's name, subcommand and options (name -> string
/// value; booleans `"true"`/`"false"`, integers in decimal). `Err("<reason>. Usage: <usage>")`
/// when a required option is missing or a value cannot be carried over faithfully.
pub fn command_text(
    command: &str,
    subcommand: Option<&str>,
    options: &[(String, String)],
) -> Result<String, String> {
    let command = command.trim_start_matches('/');
    let usage = discord_usage(command, subcommand);
    let fail = |reason: String| Err(format!("{reason}. Usage: {usage}"));
    let get = |name: &str| {
        options
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    };
    let required = |name: &str| get(name).ok_or_else(|| format!("missing {name}. Usage: {usage}"));
    let positional = |name: &str, v: &str| {
        if v.starts_with("--") {
            Err(format!("invalid {name} \"{v}\". Usage: {usage}"))
        } else {
            Ok(quote_if_needed(v))
        }
    };

    match (command, subcommand) {
        ("rollback", None) => {
            let env = positional("env", required("env")?)?;
            Ok(match get("reason") {
                Some(reason) => format!("/rollback {env} {}", rest_of_line(reason)),
                None => format!("/rollback {env}"),
            })
        }
        ("rollback", Some(sub)) => fail(format!("/rollback has no subcommand \"{sub}\"")),
        ("deploy", None) => fail("choose a subcommand".to_string()),
        ("deploy", Some(sub)) => match sub {
            "release" | "why-not" => {
                let version = required("version")?;
                if is_subcommand_word(version) {
                    return fail(format!("invalid version \"{version}\""));
                }
                let version = positional("version", version)?;
                let env = positional("env", required("env")?)?;
                let mut text = if sub == "release" {
                    format!("/deploy {version} {env}")
                } else {
                    format!("/deploy why-not {version} {env}")
                };
                if let Some(service) = get("service") {
                    push_option(&mut text, "--service", service, false);
                }
                if sub == "release" {
                    if let Some(reason) = get("force") {
                        push_option(&mut text, "--force", reason, true);
                    }
                    match get("dry_run") {
                        None | Some("false") => {}
                        Some("true") => text.push_str(" --dry-run"),
                        Some(other) => {
                            return fail(format!("dry_run must be true or false, not \"{other}\""))
                        }
                    }
                }
                Ok(text)
            }
            "status" => Ok(match get("env") {
                Some(env) => format!("/deploy status {}", positional("env", env)?),
                None => "/deploy status".to_string(),
            }),
            "history" => {
                let env = positional("env", required("env")?)?;
                let mut text = format!("/deploy history {env}");
                if let Some(limit) = get("limit") {
                    push_option(&mut text, "--limit", limit, false);
                }
                Ok(text)
            }
            "lock" => {
                let env = positional("env", required("env")?)?;
                let reason = required("reason")?;
                Ok(format!("/deploy lock {env} {}", rest_of_line(reason)))
            }
            "unlock" => Ok(format!(
                "/deploy unlock {}",
                positional("env", required("env")?)?
            )),
            "cancel" => Ok(format!(
                "/deploy cancel {}",
                positional("run", required("run")?)?
            )),
            "help" => Ok("/deploy help".to_string()),
            other => fail(format!("unknown subcommand \"{other}\"")),
        },
        (other, _) => fail(format!("unknown command /{other}")),
    }
}

/// Words the chat grammar reads as a subcommand where a version is expected.
fn is_subcommand_word(v: &str) -> bool {
    matches!(
        v,
        "status" | "history" | "lock" | "unlock" | "cancel" | "why-not" | "whynot" | "help"
    )
}

/// ` --name value`; a value starting with `--` goes inline (`--name=value`), because the chat
/// grammar would take it for an option. `always_quote` for free text (`--force "hotfix"`).
fn push_option(text: &mut String, name: &str, value: &str, always_quote: bool) {
    let v = if always_quote {
        quote(value)
    } else {
        quote_if_needed(value)
    };
    if value.starts_with("--") {
        text.push_str(&format!(" {name}={v}"));
    } else {
        text.push_str(&format!(" {name} {v}"));
    }
}

/// A reason that the grammar takes as the rest of the line: as typed, unless it holds quote
/// characters (the chat tokenizer would eat them), then as one quoted token.
fn rest_of_line(reason: &str) -> String {
    if reason.chars().any(is_quote_char) {
        quote(reason)
    } else {
        reason.to_string()
    }
}

fn is_quote_char(c: char) -> bool {
    matches!(c, '"' | '\'' | '“' | '”' | '‘' | '’')
}

fn quote_if_needed(v: &str) -> String {
    if v.is_empty() || v.chars().any(|c| c.is_whitespace() || is_quote_char(c)) {
        quote(v)
    } else {
        v.to_string()
    }
}

/// Quotes `v` as one token of greenlight's chat tokenizer (`core::command::tokenize`), which
/// knows no escapes but joins adjacent quoted pieces: `"` goes inside '...', everything else
/// inside "..." (where single and smart quotes are literal).
fn quote(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    let mut in_double = false;
    for c in v.chars() {
        if c == '"' {
            if in_double {
                out.push('"');
                in_double = false;
            }
            out.push_str("'\"'");
        } else {
            if !in_double {
                out.push('"');
                in_double = true;
            }
            out.push(c);
        }
    }
    if in_double {
        out.push('"');
    }
    if out.is_empty() {
        out.push_str("\"\"");
    }
    out
}

/// The two command definitions: `/deploy` with its subcommands and `/rollback`.
pub fn command_definitions(environments: &[(String, String)]) -> Vec<CreateCommand> {
    let env = |required: bool| {
        let mut o = CreateCommandOption::new(CommandOptionType::String, "env", "Environment")
            .required(required);
        if (1..=MAX_CHOICES).contains(&environments.len()) {
            for (name, display) in environments {
                let label = if display.trim().is_empty() {
                    name
                } else {
                    display
                };
                o = o.add_string_choice(label, name);
            }
        }
        o
    };
    let string = |name: &str, description: &str, required: bool| {
        CreateCommandOption::new(CommandOptionType::String, name, description).required(required)
    };
    let version = || string("version", "Version: v1.2.3 or a git sha", true);
    let service = || {
        string(
            "service",
            "Service, when the environment has several",
            false,
        )
    };
    let sub = |name: &str, description: &str, options: Vec<CreateCommandOption>| {
        CreateCommandOption::new(CommandOptionType::SubCommand, name, description)
            .set_sub_options(options)
    };

    let deploy = CreateCommand::new("deploy")
        .description("Deploy with greenlight")
        .set_options(vec![
            sub(
                "release",
                "Deploy a version to an environment",
                vec![
                    version(),
                    env(true),
                    service(),
                    string(
                        "force",
                        "Break-glass reason to deploy through a freeze",
                        false,
                    ),
                    CreateCommandOption::new(
                        CommandOptionType::Boolean,
                        "dry_run",
                        "Only show what would happen",
                    ),
                ],
            ),
            sub("status", "What is deployed and running", vec![env(false)]),
            sub(
                "history",
                "Recent runs of an environment",
                vec![
                    env(true),
                    CreateCommandOption::new(
                        CommandOptionType::Integer,
                        "limit",
                        "How many runs (1-100)",
                    )
                    .min_int_value(1)
                    .max_int_value(100),
                ],
            ),
            sub(
                "lock",
                "Lock an environment against deploys",
                vec![env(true), string("reason", "Why", true)],
            ),
            sub("unlock", "Unlock an environment", vec![env(true)]),
            sub(
                "cancel",
                "Cancel a run",
                vec![
                    CreateCommandOption::new(CommandOptionType::Integer, "run", "Run number")
                        .required(true)
                        .min_int_value(1),
                ],
            ),
            sub(
                "why-not",
                "Every gate that would stop this deploy now",
                vec![version(), env(true), service()],
            ),
            sub("help", "How to use greenlight", vec![]),
        ]);
    let rollback = CreateCommand::new("rollback")
        .description("Roll an environment back to its previous version")
        .set_options(vec![env(true), string("reason", "Why", false)]);
    vec![deploy, rollback]
}

/// An option's value as command text sees it.
fn option_value(value: &CommandDataOptionValue) -> Option<String> {
    match value {
        CommandDataOptionValue::String(s) => Some(s.clone()),
        CommandDataOptionValue::Boolean(b) => Some(b.to_string()),
        CommandDataOptionValue::Integer(n) => Some(n.to_string()),
        CommandDataOptionValue::Number(n) => Some(n.to_string()),
        CommandDataOptionValue::Autocomplete { value, .. } => Some(value.clone()),
        CommandDataOptionValue::Channel(id) => Some(id.to_string()),
        CommandDataOptionValue::User(id) => Some(id.to_string()),
        CommandDataOptionValue::Role(id) => Some(id.to_string()),
        _ => None,
    }
}

/// (command, subcommand, options) of an invoked slash command.
pub fn command_parts(data: &CommandData) -> (String, Option<String>, Vec<(String, String)>) {
    fn flat(options: &[CommandDataOption]) -> Vec<(String, String)> {
        options
            .iter()
            .filter_map(|o| option_value(&o.value).map(|v| (o.name.clone(), v)))
            .collect()
    }
    for o in &data.options {
        if let CommandDataOptionValue::SubCommand(inner) = &o.value {
            return (data.name.clone(), Some(o.name.clone()), flat(inner));
        }
    }
    (data.name.clone(), None, flat(&data.options))
}

/// The chat text of an invoked slash command (see [`command_text`]).
pub fn interaction_text(data: &CommandData) -> Result<String, String> {
    let (command, subcommand, options) = command_parts(data);
    command_text(&command, subcommand.as_deref(), &options)
}

/// The name greenlight uses for a reaction's emoji (see [`DiscordInbound::Reaction`]).
pub fn emoji_name(emoji: &ReactionType) -> String {
    match emoji {
        ReactionType::Custom { id, name, .. } => name.clone().unwrap_or_else(|| id.to_string()),
        ReactionType::Unicode(s) => unicode_emoji_name(s),
        // `ReactionType` is non-exhaustive.
        #[allow(unreachable_patterns)]
        other => other.to_string(),
    }
}

fn unicode_emoji_name(s: &str) -> String {
    let base: String = s
        .chars()
        .filter(|c| !matches!(c, '\u{FE0F}' | '\u{1F3FB}'..='\u{1F3FF}'))
        .collect();
    match base.as_str() {
        "✅" => "white_check_mark".to_string(),
        "👍" => "+1".to_string(),
        "❌" => "x".to_string(),
        _ => s.to_string(),
    }
}

/// Gives each reaction dispatch its transition number (see the module doc).
#[derive(Debug)]
struct ReactionLedger {
    session: String,
    next: u64,
    seen: HashMap<String, (bool, u64)>,
    order: VecDeque<String>,
    capacity: usize,
}

impl ReactionLedger {
    fn new(session: &str, capacity: usize) -> Self {
        ReactionLedger {
            session: session.to_string(),
            next: 0,
            seen: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// A new gateway session (READY): forget everything (a RESUME keeps the session).
    fn start_session(&mut self, session: &str) {
        if self.session != session {
            *self = ReactionLedger::new(session, self.capacity);
        }
    }

    /// `"{session}:{n}"` for this dispatch of `key` in state `added`.
    fn observe(&mut self, key: &str, added: bool) -> String {
        let n = match self.seen.get_mut(key) {
            Some((state, n)) if *state == added => *n,
            Some(entry) => {
                self.next += 1;
                *entry = (added, self.next);
                self.next
            }
            None => {
                self.next += 1;
                self.seen.insert(key.to_string(), (added, self.next));
                self.order.push_back(key.to_string());
                while self.order.len() > self.capacity {
                    if let Some(old) = self.order.pop_front() {
                        self.seen.remove(&old);
                    }
                }
                self.next
            }
        };
        format!("{}:{n}", self.session)
    }
}

/// `DiscordInbound::Reaction` for a reaction event, given the ledger.
fn reaction_inbound(
    reaction: &Reaction,
    added: bool,
    ledger: &Mutex<ReactionLedger>,
) -> Option<DiscordInbound> {
    let user = reaction.user_id?.to_string();
    let channel = reaction.channel_id.to_string();
    let message_id = reaction.message_id.to_string();
    let emoji = emoji_name(&reaction.emoji);
    let key = format!("{channel}:{message_id}:{user}:{emoji}");
    let suffix = ledger
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .observe(&key, added);
    Some(DiscordInbound::Reaction {
        dedup: format!("r:{key}:{added}:{suffix}"),
        user,
        channel,
        message_id,
        emoji,
        added,
    })
}

/// Cuts `text` to Discord's 2000-character message limit (serenity refuses longer content).
fn clip(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_string();
    }
    let mut out: String = text.chars().take(limit.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn message_content(text: &str) -> String {
    let text = clip(text, serenity::constants::MESSAGE_CODE_LIMIT);
    if text.trim().is_empty() {
        "(empty)".to_string()
    } else {
        text
    }
}

/// Mentions of users ping; `@everyone`, `@here` and roles in user-supplied text never do.
fn allowed_mentions() -> CreateAllowedMentions {
    CreateAllowedMentions::new()
        .all_users(true)
        .all_roles(false)
        .everyone(false)
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// A failed REST call.
#[derive(Debug, Clone, PartialEq)]
pub enum DiscordError {
    /// HTTP 429: wait `retry_after` before the next call.
    RateLimited { retry_after: Duration },
    /// 5xx, connection errors and timeouts: retry later.
    Transient(String),
    /// 4xx and undecodable answers: retrying will not help.
    Permanent(String),
}

impl std::fmt::Display for DiscordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DiscordError::RateLimited { retry_after } => {
                write!(f, "rate limited by Discord, retry after {retry_after:?}")
            }
            DiscordError::Transient(e) => write!(f, "transient Discord error: {e}"),
            DiscordError::Permanent(e) => write!(f, "Discord refused: {e}"),
        }
    }
}

impl std::error::Error for DiscordError {}

fn one_line(s: &str) -> String {
    let s: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    clip(&s, 300)
}

/// Maps a serenity error (from its high-level calls or `Http::fire`).
fn map_serenity_error(e: serenity::Error) -> DiscordError {
    match e {
        serenity::Error::Http(HttpError::UnsuccessfulRequest(resp)) => {
            let status = resp.status_code.as_u16();
            let detail = one_line(&format!(
                "{} {}: {} (code {})",
                resp.method, status, resp.error.message, resp.error.code
            ));
            classify_status(status, detail, None)
        }
        serenity::Error::Http(HttpError::Request(e)) => {
            DiscordError::Transient(one_line(&e.without_url().to_string()))
        }
        serenity::Error::Io(e) => DiscordError::Transient(one_line(&e.to_string())),
        other => DiscordError::Permanent(one_line(&other.to_string())),
    }
}

fn classify_status(status: u16, detail: String, retry_after: Option<Duration>) -> DiscordError {
    match status {
        429 => DiscordError::RateLimited {
            retry_after: retry_after.unwrap_or(DEFAULT_RETRY_AFTER),
        },
        500..=599 => DiscordError::Transient(detail),
        _ => DiscordError::Permanent(detail),
    }
}

/// A 429's wait: the body's `retry_after` (seconds, fractional), else `Retry-After` (seconds).
fn retry_after(headers: &reqwest::header::HeaderMap, body: &[u8]) -> Option<Duration> {
    let from_body = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("retry_after").and_then(|r| r.as_f64()));
    let from_header = headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|h| h.to_str().ok())
        .and_then(|s| s.trim().parse::<f64>().ok());
    from_body
        .or(from_header)
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(3600.0)))
}

fn parse_id(what: &str, s: &str) -> Result<NonZeroU64, DiscordError> {
    s.trim()
        .parse::<NonZeroU64>()
        .map_err(|_| DiscordError::Permanent(format!("invalid {what} id {s:?}")))
}

// ---------------------------------------------------------------------------------------------
// REST client
// ---------------------------------------------------------------------------------------------

/// Checks `api_url` (https anywhere, http on loopback only) and returns it without a trailing
/// slash.
fn checked_base(api_url: &str) -> Result<String, String> {
    let base = api_url.trim().trim_end_matches('/').to_string();
    let url =
        reqwest::Url::parse(&base).map_err(|e| format!("invalid Discord api_url {base:?}: {e}"))?;
    match url.scheme() {
        "https" => Ok(base),
        "http" if is_loopback(&url) => Ok(base),
        "http" => Err(format!(
            "Discord api_url {base:?} uses plain http on a non-loopback host; use https"
        )),
        other => Err(format!(
            "Discord api_url {base:?}: unsupported scheme {other}"
        )),
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn checked_gateway(gateway_url: &str) -> Result<String, String> {
    let g = gateway_url.trim().to_string();
    let url =
        reqwest::Url::parse(&g).map_err(|e| format!("invalid Discord gateway_url {g:?}: {e}"))?;
    if url.query().is_some() {
        return Err(format!(
            "Discord gateway_url {g:?} must have no query (serenity appends ?v=10)"
        ));
    }
    match url.scheme() {
        "wss" => Ok(g),
        "ws" if is_loopback(&url) => Ok(g),
        "ws" => Err(format!(
            "Discord gateway_url {g:?} uses plain ws on a non-loopback host; use wss"
        )),
        other => Err(format!(
            "Discord gateway_url {g:?}: unsupported scheme {other}"
        )),
    }
}

/// serenity's `Http` for `settings`, plus the reqwest client it uses.
fn build_http(settings: &DiscordSettings) -> Result<(Http, reqwest::Client), String> {
    let base = checked_base(&settings.api_url)?;
    if settings.token.trim().is_empty() {
        return Err("the Discord token is empty".into());
    }
    // serenity's own client is `Client::builder().use_rustls_tls()` (http/client.rs:5260-5263);
    // the same plus a connect timeout.
    let reqwest_client = reqwest::Client::builder()
        .use_rustls_tls()
        .connect_timeout(settings.request_timeout)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let mut builder = HttpBuilder::new(&settings.token).client(reqwest_client.clone());
    if base != DISCORD_API_URL {
        builder = builder.proxy(base).ratelimiter_disabled(true);
    }
    Ok((builder.build(), reqwest_client))
}

/// Discord's REST API through serenity's `Http`.
#[derive(Clone)]
pub struct DiscordClient {
    http: Arc<Http>,
    reqwest: reqwest::Client,
    guild_id: GuildId,
    timeout: Duration,
}

impl std::fmt::Debug for DiscordClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordClient")
            .field("proxy", &self.http.proxy)
            .field("ratelimiter", &self.http.ratelimiter.is_some())
            .field("guild_id", &self.guild_id)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl DiscordClient {
    /// Refuses plain http on a non-loopback host, an empty token and a zero guild id.
    pub fn new(settings: &DiscordSettings) -> Result<DiscordClient, String> {
        let guild_id = NonZeroU64::new(settings.guild_id)
            .map(GuildId::from)
            .ok_or_else(|| "the Discord guild_id is not set".to_string())?;
        let (http, reqwest) = build_http(settings)?;
        Ok(DiscordClient {
            http: Arc::new(http),
            reqwest,
            guild_id,
            timeout: settings.request_timeout,
        })
    }

    /// serenity's `Http` this client uses.
    pub fn http(&self) -> &Arc<Http> {
        &self.http
    }

    /// Posts `text` in `channel`; returns the message id.
    pub async fn post_message(&self, channel: &str, text: &str) -> Result<String, DiscordError> {
        let channel_id = ChannelId::from(parse_id("channel", channel)?);
        let body = CreateMessage::new()
            .content(message_content(text))
            .allowed_mentions(allowed_mentions());
        let req = Request::new(Route::ChannelMessages { channel_id }, LightMethod::Post)
            .body(Some(to_body(&body)?));
        let message: Message = self.call(req).await?;
        Ok(message.id.to_string())
    }

    /// Replaces the text of one of the bot's messages.
    pub async fn edit_message(
        &self,
        channel: &str,
        message_id: &str,
        text: &str,
    ) -> Result<(), DiscordError> {
        let channel_id = ChannelId::from(parse_id("channel", channel)?);
        let message_id = MessageId::from(parse_id("message", message_id)?);
        let body = EditMessage::new()
            .content(message_content(text))
            .allowed_mentions(allowed_mentions());
        let req = Request::new(
            Route::ChannelMessage {
                channel_id,
                message_id,
            },
            LightMethod::Patch,
        )
        .body(Some(to_body(&body)?));
        let _: Message = self.call(req).await?;
        Ok(())
    }

    /// A public thread on a message (the request `ChannelId::create_thread_from_message` makes);
    /// returns the thread channel id.
    pub async fn create_thread(
        &self,
        channel: &str,
        message_id: &str,
        name: &str,
    ) -> Result<String, DiscordError> {
        let channel_id = ChannelId::from(parse_id("channel", channel)?);
        let message_id = MessageId::from(parse_id("message", message_id)?);
        let mut name = clip(name.trim(), THREAD_NAME_LIMIT);
        while name.chars().count() < 2 {
            name.push('…');
        }
        let body = CreateThread::new(name);
        let req = Request::new(
            Route::ChannelMessageThreads {
                channel_id,
                message_id,
            },
            LightMethod::Post,
        )
        .body(Some(to_body(&body)?));
        let thread: GuildChannel = self.call(req).await?;
        Ok(thread.id.to_string())
    }

    /// Registers the commands in the guild (`GuildId::set_commands`, a bulk overwrite). Asks
    /// `GET /oauth2/applications/@me` for the application id when it is not known yet.
    pub async fn register_commands(
        &self,
        environments: &[(String, String)],
    ) -> Result<(), DiscordError> {
        if self.http.application_id().is_none() {
            let app = self
                .timed(self.http.get_current_application_info())
                .await?
                .map_err(map_serenity_error)?;
            self.http.set_application_id(app.id);
        }
        let commands = command_definitions(environments);
        let created = self
            .timed(self.guild_id.set_commands(&*self.http, commands))
            .await?
            .map_err(map_serenity_error)?;
        info!(
            guild = %self.guild_id,
            commands = created.len(),
            "registered the Discord commands"
        );
        Ok(())
    }

    async fn timed<T>(&self, fut: impl Future<Output = T>) -> Result<T, DiscordError> {
        tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| DiscordError::Transient(format!("timed out after {:?}", self.timeout)))
    }

    /// Runs serenity's `Request`: through `Http::fire` (rate limiter, 429s waited out) when the
    /// rate limiter is on; otherwise built by serenity (`Request::build`, with token and proxy) and
    /// executed on the same reqwest client here, so that a 429 keeps its `retry_after`.
    async fn call<T: DeserializeOwned>(&self, req: Request<'_>) -> Result<T, DiscordError> {
        if self.http.ratelimiter.is_some() {
            return self
                .timed(self.http.fire::<T>(req))
                .await?
                .map_err(map_serenity_error);
        }
        let method = req.method_ref().reqwest_method();
        let built = req
            .build(&self.reqwest, self.http.token(), self.http.proxy.as_deref())
            .map_err(map_serenity_error)?
            .build()
            .map_err(|e| DiscordError::Permanent(one_line(&e.without_url().to_string())))?;
        let path = built.url().path().to_string();
        let reqwest = self.reqwest.clone();
        self.timed(async move {
            let response = reqwest
                .execute(built)
                .await
                .map_err(|e| DiscordError::Transient(one_line(&e.without_url().to_string())))?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response
                .bytes()
                .await
                .map_err(|e| DiscordError::Transient(one_line(&e.without_url().to_string())))?;
            if !(200..300).contains(&status) {
                let message = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(String::from))
                    .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
                let detail = one_line(&format!("{method} {path}: {status} {message}"));
                return Err(classify_status(
                    status,
                    detail,
                    retry_after(&headers, &body),
                ));
            }
            serde_json::from_slice::<T>(&body).map_err(|e| {
                DiscordError::Permanent(one_line(&format!(
                    "{method} {path}: cannot decode Discord's answer: {e}"
                )))
            })
        })
        .await?
    }
}

fn to_body(body: &impl serde::Serialize) -> Result<Vec<u8>, DiscordError> {
    serde_json::to_vec(body).map_err(|e| DiscordError::Permanent(format!("cannot encode: {e}")))
}

// ---------------------------------------------------------------------------------------------
// Gateway
// ---------------------------------------------------------------------------------------------

struct Handler {
    sink: Arc<dyn DiscordSink>,
    client: DiscordClient,
    environments: Vec<(String, String)>,
    registered: AtomicBool,
    ledger: Mutex<ReactionLedger>,
}

impl Handler {
    async fn respond(&self, ctx: &Context, cmd: &CommandInteraction, answer: CommandAnswer) {
        let message = CreateInteractionResponseMessage::new()
            .content(message_content(&answer.text))
            .ephemeral(answer.ephemeral)
            .allowed_mentions(allowed_mentions());
        let response = CreateInteractionResponse::Message(message);
        match self
            .client
            .timed(cmd.create_response(&ctx.http, response))
            .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(error = %map_serenity_error(e), "cannot answer a Discord command"),
            Err(e) => warn!(error = %e, "cannot answer a Discord command"),
        }
    }

    async fn handle_command(&self, ctx: &Context, cmd: CommandInteraction) {
        if cmd.guild_id.is_some_and(|g| g != self.client.guild_id) {
            let text = "greenlight is not set up for this server.".to_string();
            self.respond(
                ctx,
                &cmd,
                CommandAnswer {
                    text,
                    ephemeral: true,
                },
            )
            .await;
            return;
        }
        let text = match interaction_text(&cmd.data) {
            Ok(text) => text,
            Err(usage) => {
                self.respond(
                    ctx,
                    &cmd,
                    CommandAnswer {
                        text: usage,
                        ephemeral: true,
                    },
                )
                .await;
                return;
            }
        };
        let inbound = DiscordInbound::Command {
            dedup: cmd.id.to_string(),
            user: cmd.user.id.to_string(),
            channel: cmd.channel_id.to_string(),
            text,
        };
        // Spawned, so that a slow answer is not cancelled by the deadline below.
        let mut task = tokio::spawn(self.sink.on_command(inbound));
        match tokio::time::timeout(ANSWER_WITHIN, &mut task).await {
            Ok(Ok(answer)) => self.respond(ctx, &cmd, answer).await,
            Ok(Err(e)) => {
                warn!(error = %e, "the Discord command handler failed");
                let text = "greenlight could not handle this command.".to_string();
                self.respond(
                    ctx,
                    &cmd,
                    CommandAnswer {
                        text,
                        ephemeral: true,
                    },
                )
                .await;
            }
            Err(_) => {
                // Too slow for the 3 s window: defer (ephemeral, because the answer may be an
                // error; its visibility is fixed here), then edit the answer in.
                warn!(
                    "a Discord command took longer than {:?}; deferring",
                    ANSWER_WITHIN
                );
                match self.client.timed(cmd.defer_ephemeral(&ctx.http)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        warn!(error = %map_serenity_error(e), "cannot defer a Discord command");
                        return;
                    }
                    Err(e) => {
                        warn!(error = %e, "cannot defer a Discord command");
                        return;
                    }
                }
                let text = match task.await {
                    Ok(answer) => answer.text,
                    Err(_) => "greenlight could not handle this command.".to_string(),
                };
                let edit = EditInteractionResponse::new()
                    .content(message_content(&text))
                    .allowed_mentions(allowed_mentions());
                match self.client.timed(cmd.edit_response(&ctx.http, edit)).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        warn!(error = %map_serenity_error(e), "cannot edit a deferred answer")
                    }
                    Err(e) => warn!(error = %e, "cannot edit a deferred answer"),
                }
            }
        }
    }

    fn handle_reaction(&self, ctx: &Context, reaction: &Reaction, added: bool) {
        let Some(user) = reaction.user_id else {
            return;
        };
        if user == ctx.cache.current_user().id {
            return;
        }
        if reaction.guild_id.is_some_and(|g| g != self.client.guild_id) {
            return;
        }
        if let Some(inbound) = reaction_inbound(reaction, added, &self.ledger) {
            debug!(?inbound, "Discord reaction");
            self.sink.on_reaction(inbound);
        }
    }
}

#[serenity::async_trait]
impl EventHandler for Handler {
    async fn ready(&self, _ctx: Context, ready: Ready) {
        self.ledger
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .start_session(&ready.session_id);
        info!(user = %ready.user.id, "connected to the Discord gateway");
        self.client.http.set_application_id(ready.application.id);
        if !self.registered.load(Ordering::SeqCst) {
            match self.client.register_commands(&self.environments).await {
                Ok(()) => self.registered.store(true, Ordering::SeqCst),
                Err(e) => warn!(error = %e, "cannot register the Discord commands"),
            }
        }
    }

    async fn interaction_create(&self, ctx: Context, interaction: Interaction) {
        if let Interaction::Command(cmd) = interaction {
            self.handle_command(&ctx, cmd).await;
        }
    }

    async fn reaction_add(&self, ctx: Context, reaction: Reaction) {
        self.handle_reaction(&ctx, &reaction, true);
    }

    async fn reaction_remove(&self, ctx: Context, reaction: Reaction) {
        self.handle_reaction(&ctx, &reaction, false);
    }
}

/// The gateway connection: a serenity `Client` running in a task.
pub struct Gateway {
    shard_manager: Arc<ShardManager>,
    task: tokio::task::JoinHandle<()>,
    connected: Arc<AtomicBool>,
}

impl Gateway {
    /// Builds the client (serenity asks `GET /api/v10/gateway` unless `gateway_url` is set, and
    /// even then: its answer is replaced), starts one shard and returns at once; the commands
    /// are registered on READY.
    pub async fn start(
        settings: &DiscordSettings,
        sink: Arc<dyn DiscordSink>,
    ) -> Result<Gateway, String> {
        let gateway_url = settings
            .gateway_url
            .as_deref()
            .map(checked_gateway)
            .transpose()?;
        let client = DiscordClient::new(settings)?;
        let (http, _) = build_http(settings)?;
        let connected = Arc::new(AtomicBool::new(false));
        let boot = format!(
            "boot{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        );
        let handler = Handler {
            sink,
            client,
            environments: settings.environments.clone(),
            registered: AtomicBool::new(false),
            ledger: Mutex::new(ReactionLedger::new(&boot, LEDGER_CAPACITY)),
        };
        let builder =
            serenity::client::ClientBuilder::new_with_http(http, intents()).event_handler(handler);
        let mut serenity_client = tokio::time::timeout(settings.request_timeout, builder)
            .await
            .map_err(|_| "timed out building the Discord client".to_string())?
            .map_err(|e| {
                format!(
                    "cannot build the Discord client: {}",
                    one_line(&e.to_string())
                )
            })?;
        if let Some(url) = gateway_url {
            *serenity_client.ws_url.lock().await = url;
        }
        let shard_manager = serenity_client.shard_manager.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = serenity_client.start().await {
                warn!(error = %one_line(&e.to_string()), "the Discord gateway stopped");
            }
        });
        Ok(Gateway {
            shard_manager,
            task,
            connected,
        })
    }

    /// Closes the shard and waits (a few seconds at most) for the client to stop.
    pub async fn shutdown(self) {
        self.connected.store(false, Ordering::SeqCst);
        self.shard_manager.shutdown_all().await;
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(5), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }

    /// Whether the shard is connected (for /readyz): the shard runner's stage as the shard manager
    /// records it before dispatching (`gateway/bridge/shard_runner.rs:118-124`,
    /// `shard_manager.rs:362-372`); event handlers run in spawned tasks and may see stage changes
    /// out of order. While the manager's lock is busy the last answer is repeated.
    pub fn connected(&self) -> bool {
        match self.shard_manager.runners.try_lock() {
            Ok(runners) => {
                let up = !runners.is_empty()
                    && runners
                        .values()
                        .all(|r| r.stage == ConnectionStage::Connected);
                self.connected.store(up, Ordering::SeqCst);
                up
            }
            Err(_) => self.connected.load(Ordering::SeqCst),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn release_text() {
        assert_eq!(
            command_text(
                "deploy",
                Some("release"),
                &opts(&[("version", "v1.2.0"), ("env", "staging")])
            ),
            Ok("/deploy v1.2.0 staging".into())
        );
        assert_eq!(
            command_text(
                "deploy",
                Some("release"),
                &opts(&[
                    ("version", "v1.2.0"),
                    ("env", "staging"),
                    ("force", "hotfix"),
                    ("dry_run", "true")
                ])
            ),
            Ok("/deploy v1.2.0 staging --force \"hotfix\" --dry-run".into())
        );
        assert_eq!(
            command_text(
                "/deploy",
                Some("release"),
                &opts(&[
                    ("dry_run", "false"),
                    ("env", "prod"),
                    ("version", "abc1234"),
                    ("service", "api"),
                    ("force", "fix for INC-1")
                ])
            ),
            Ok("/deploy abc1234 prod --service api --force \"fix for INC-1\"".into())
        );
    }

    #[test]
    fn release_refusals() {
        let e = command_text("deploy", Some("release"), &opts(&[("env", "prod")])).unwrap_err();
        assert!(
            e.starts_with("missing version. Usage: /deploy release version:"),
            "{e}"
        );
        let e =
            command_text("deploy", Some("release"), &opts(&[("version", "v1.0.0")])).unwrap_err();
        assert!(e.starts_with("missing env. Usage: /deploy release"), "{e}");
        let e = command_text(
            "deploy",
            Some("release"),
            &opts(&[("version", "  "), ("env", "prod")]),
        )
        .unwrap_err();
        assert!(e.starts_with("missing version."), "{e}");
        // A version the chat grammar would read as a subcommand or an option.
        let e = command_text(
            "deploy",
            Some("release"),
            &opts(&[("version", "status"), ("env", "prod")]),
        )
        .unwrap_err();
        assert!(e.starts_with("invalid version \"status\""), "{e}");
        let e = command_text(
            "deploy",
            Some("release"),
            &opts(&[("version", "--dry-run"), ("env", "prod")]),
        )
        .unwrap_err();
        assert!(e.starts_with("invalid version"), "{e}");
        let e = command_text(
            "deploy",
            Some("release"),
            &opts(&[("version", "v1.0.0"), ("env", "prod"), ("dry_run", "maybe")]),
        )
        .unwrap_err();
        assert!(e.starts_with("dry_run must be true or false"), "{e}");
    }

    #[test]
    fn other_subcommands_text() {
        type Case<'a> = (&'a str, Vec<(String, String)>, &'a str);
        let cases: Vec<Case> = vec![
            ("status", opts(&[]), "/deploy status"),
            (
                "status",
                opts(&[("env", "staging")]),
                "/deploy status staging",
            ),
            (
                "history",
                opts(&[("env", "staging")]),
                "/deploy history staging",
            ),
            (
                "history",
                opts(&[("env", "staging"), ("limit", "5")]),
                "/deploy history staging --limit 5",
            ),
            (
                "lock",
                opts(&[("env", "staging"), ("reason", "db work")]),
                "/deploy lock staging db work",
            ),
            (
                "unlock",
                opts(&[("env", "staging")]),
                "/deploy unlock staging",
            ),
            ("cancel", opts(&[("run", "42")]), "/deploy cancel 42"),
            (
                "why-not",
                opts(&[("version", "v1.2.0"), ("env", "staging")]),
                "/deploy why-not v1.2.0 staging",
            ),
            (
                "why-not",
                opts(&[
                    ("version", "v1.2.0"),
                    ("env", "staging"),
                    ("service", "api"),
                ]),
                "/deploy why-not v1.2.0 staging --service api",
            ),
            ("help", opts(&[]), "/deploy help"),
        ];
        for (sub, options, want) in cases {
            assert_eq!(
                command_text("deploy", Some(sub), &options),
                Ok(want.to_string()),
                "{sub} {options:?}"
            );
        }
        assert_eq!(
            command_text(
                "rollback",
                None,
                &opts(&[("env", "staging"), ("reason", "reason text")])
            ),
            Ok("/rollback staging reason text".into())
        );
        assert_eq!(
            command_text("rollback", None, &opts(&[("env", "prod")])),
            Ok("/rollback prod".into())
        );
    }

    #[test]
    fn missing_required_options() {
        type Case<'a> = (&'a str, Option<&'a str>, Vec<(String, String)>, &'a str);
        let cases: Vec<Case> = vec![
            ("deploy", Some("history"), opts(&[("limit", "5")]), "missing env. Usage: /deploy history env:<env> [limit:<n>]"),
            ("deploy", Some("lock"), opts(&[("env", "prod")]), "missing reason. Usage: /deploy lock env:<env> reason:<text>"),
            ("deploy", Some("lock"), opts(&[("reason", "x")]), "missing env. Usage: /deploy lock env:<env> reason:<text>"),
            ("deploy", Some("unlock"), opts(&[]), "missing env. Usage: /deploy unlock env:<env>"),
            ("deploy", Some("cancel"), opts(&[]), "missing run. Usage: /deploy cancel run:<run-id>"),
            ("deploy", Some("why-not"), opts(&[("env", "prod")]), "missing version. Usage: /deploy why-not version:<version> env:<env> [service:<name>]"),
            ("rollback", None, opts(&[("reason", "x")]), "missing env. Usage: /rollback env:<env> [reason:<text>]"),
        ];
        for (command, sub, options, want) in cases {
            assert_eq!(
                command_text(command, sub, &options),
                Err(want.to_string()),
                "{command} {sub:?}"
            );
        }
        assert!(command_text("deploy", None, &[])
            .unwrap_err()
            .starts_with("choose a subcommand. Usage:"));
        assert!(command_text("deploy", Some("nuke"), &[])
            .unwrap_err()
            .starts_with("unknown subcommand \"nuke\""));
        assert!(command_text("ship", None, &[])
            .unwrap_err()
            .starts_with("unknown command /ship"));
    }

    /// Every produced text parses back, through greenlight's own parser, to what was typed.
    #[test]
    fn quoting_round_trips_through_the_chat_parser() {
        use crate::core::command::{parse, Command};
        let tricky = [
            "hotfix",
            "fix for INC-1",
            "it's \"quoted\" “smart”",
            "--looks-like-an-option",
            "a\"b'c",
            "\"",
        ];
        for reason in tricky {
            let text = command_text(
                "deploy",
                Some("release"),
                &opts(&[("version", "v1.2.0"), ("env", "prod"), ("force", reason)]),
            )
            .unwrap();
            match parse(&text) {
                Some(Ok(Command::Deploy(d))) => {
                    assert_eq!(d.force.as_deref(), Some(reason), "{text}")
                }
                other => panic!("{text}: {other:?}"),
            }
            let text = command_text(
                "deploy",
                Some("lock"),
                &opts(&[("env", "prod"), ("reason", reason)]),
            )
            .unwrap();
            match parse(&text) {
                Some(Ok(Command::Lock { reason: got, .. })) => assert_eq!(got, reason, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
            let text = command_text(
                "rollback",
                None,
                &opts(&[("env", "prod"), ("reason", reason)]),
            )
            .unwrap();
            match parse(&text) {
                Some(Ok(Command::Rollback { reason: got, .. })) => {
                    assert_eq!(got.as_deref(), Some(reason), "{text}")
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        assert_eq!(quote("a b"), "\"a b\"");
        assert_eq!(quote(""), "\"\"");
        assert_eq!(quote("say \"hi\""), "\"say \"'\"'\"hi\"'\"'");
    }

    fn envs() -> Vec<(String, String)> {
        vec![
            ("staging".into(), "Staging".into()),
            ("prod".into(), "Production".into()),
        ]
    }

    fn option<'a>(parent: &'a Value, name: &str) -> &'a Value {
        parent["options"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == name)
            .unwrap_or_else(|| panic!("no option {name} in {parent}"))
    }

    #[test]
    fn definitions_shape() {
        let defs: Vec<Value> = command_definitions(&envs())
            .iter()
            .map(|c| serde_json::to_value(c).unwrap())
            .collect();
        assert_eq!(defs.len(), 2);
        let deploy = &defs[0];
        assert_eq!(deploy["name"], "deploy");
        assert!(!deploy["description"].as_str().unwrap().is_empty());
        let subs: Vec<&str> = deploy["options"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                assert_eq!(o["type"], 1, "{o}"); // SUB_COMMAND
                o["name"].as_str().unwrap()
            })
            .collect();
        assert_eq!(subs, DEPLOY_SUBCOMMANDS.to_vec());

        let release = option(deploy, "release");
        let version = option(release, "version");
        assert_eq!(
            (version["type"].clone(), version["required"].clone()),
            (json!(3), json!(true))
        );
        let env = option(release, "env");
        assert_eq!(env["type"], 3);
        assert_eq!(env["required"], true);
        assert_eq!(
            env["choices"],
            json!([{"name": "Staging", "value": "staging"}, {"name": "Production", "value": "prod"}])
        );
        assert_eq!(option(release, "force")["type"], 3);
        assert_eq!(option(release, "force")["required"], false);
        assert_eq!(option(release, "dry_run")["type"], 5); // BOOLEAN
        assert_eq!(option(release, "service")["type"], 3);

        assert_eq!(option(option(deploy, "status"), "env")["required"], false);
        let limit = option(option(deploy, "history"), "limit");
        assert_eq!(limit["type"], 4); // INTEGER
        assert_eq!(limit["min_value"], 1);
        assert_eq!(limit["max_value"], 100);
        let lock = option(deploy, "lock");
        assert_eq!(option(lock, "reason")["required"], true);
        assert_eq!(option(lock, "env")["required"], true);
        assert_eq!(option(option(deploy, "unlock"), "env")["required"], true);
        let run = option(option(deploy, "cancel"), "run");
        assert_eq!(
            (run["type"].clone(), run["required"].clone()),
            (json!(4), json!(true))
        );
        let why = option(deploy, "why-not");
        assert_eq!(option(why, "version")["required"], true);
        assert_eq!(option(why, "env")["required"], true);
        assert!(option(deploy, "help")["options"]
            .as_array()
            .unwrap()
            .is_empty());

        let rollback = &defs[1];
        assert_eq!(rollback["name"], "rollback");
        assert_eq!(option(rollback, "env")["required"], true);
        assert_eq!(
            option(rollback, "env")["choices"].as_array().unwrap().len(),
            2
        );
        assert_eq!(option(rollback, "reason")["required"], false);

        // Names follow Discord's rules: 1-32 lowercase letters, digits, - and _.
        fn names(v: &Value, out: &mut Vec<String>) {
            if let Some(n) = v.get("name").and_then(|n| n.as_str()) {
                out.push(n.to_string());
            }
            if let Some(o) = v.get("options").and_then(|o| o.as_array()) {
                o.iter().for_each(|o| names(o, out));
            }
        }
        let mut all = Vec::new();
        defs.iter().for_each(|d| names(d, &mut all));
        for n in all {
            assert!(
                (1..=32).contains(&n.len())
                    && n.chars().all(|c| c.is_ascii_lowercase()
                        || c.is_ascii_digit()
                        || c == '-'
                        || c == '_'),
                "{n}"
            );
        }

        // Too many environments for choices: env becomes free text.
        let many: Vec<(String, String)> = (0..30)
            .map(|i| (format!("e{i}"), format!("E{i}")))
            .collect();
        let defs = serde_json::to_value(&command_definitions(&many)[1]).unwrap();
        assert!(option(&defs, "env")["choices"]
            .as_array()
            .unwrap()
            .is_empty());
    }

    #[test]
    fn emoji_mapping() {
        let u = |s: &str| emoji_name(&ReactionType::Unicode(s.into()));
        assert_eq!(u("✅"), "white_check_mark");
        assert_eq!(u("👍"), "+1");
        assert_eq!(u("👍🏽"), "+1");
        assert_eq!(u("❌"), "x");
        assert_eq!(u("🚀"), "🚀");
        assert_eq!(u("👎"), "👎");
        let custom: ReactionType = serde_json::from_value(
            json!({"id": "41771983429993937", "name": "shipit", "animated": false}),
        )
        .unwrap();
        assert_eq!(emoji_name(&custom), "shipit");
        let nameless: ReactionType =
            serde_json::from_value(json!({"id": "41771983429993937", "name": null})).unwrap();
        assert_eq!(emoji_name(&nameless), "41771983429993937");
    }

    fn reaction_json(user: &str, emoji: &str) -> Value {
        json!({
            "user_id": user, "channel_id": "300", "message_id": "400", "guild_id": "100",
            "emoji": {"id": null, "name": emoji}, "burst": false, "type": 0
        })
    }

    #[test]
    fn reaction_dedup_follows_state_transitions() {
        let ledger = Mutex::new(ReactionLedger::new("s1", 2));
        let r: Reaction = serde_json::from_value(reaction_json("7", "✅")).unwrap();
        let dedup = |added: bool| match reaction_inbound(&r, added, &ledger).unwrap() {
            DiscordInbound::Reaction { dedup, .. } => dedup,
            other => panic!("{other:?}"),
        };
        let add1 = dedup(true);
        assert_eq!(add1, "r:300:400:7:white_check_mark:true:s1:1");
        assert_eq!(dedup(true), add1, "a duplicated dispatch keeps its dedup");
        let remove = dedup(false);
        assert_eq!(remove, "r:300:400:7:white_check_mark:false:s1:2");
        assert_eq!(dedup(false), remove);
        let add2 = dedup(true);
        assert_ne!(add2, add1, "adding again is a new event");

        // A new session starts afresh, with keys that cannot collide with the old ones.
        ledger.lock().unwrap().start_session("s2");
        assert_eq!(dedup(true), "r:300:400:7:white_check_mark:true:s2:1");
        // A resume (same session) keeps the state.
        ledger.lock().unwrap().start_session("s2");
        assert_eq!(dedup(true), "r:300:400:7:white_check_mark:true:s2:1");

        // Eviction never reuses a number.
        let mut l = ReactionLedger::new("s", 2);
        assert_eq!(l.observe("a", true), "s:1");
        assert_eq!(l.observe("b", true), "s:2");
        assert_eq!(l.observe("c", true), "s:3");
        assert_eq!(l.observe("a", true), "s:4");
        assert_eq!(l.observe("c", true), "s:3");

        let full = reaction_inbound(&r, true, &Mutex::new(ReactionLedger::new("x", 5))).unwrap();
        assert_eq!(
            full,
            DiscordInbound::Reaction {
                dedup: "r:300:400:7:white_check_mark:true:x:1".into(),
                user: "7".into(),
                channel: "300".into(),
                message_id: "400".into(),
                emoji: "white_check_mark".into(),
                added: true,
            }
        );
    }

    fn interaction_json(data: Value) -> Value {
        json!({
            "id": "900", "application_id": "55", "type": 2, "data": data,
            "guild_id": "100", "channel_id": "300",
            "channel": {"id": "300", "type": 0, "name": "deploys"},
            "member": {"user": {"id": "111111111111111111", "username": "alice", "discriminator": "0",
                                 "global_name": "Alice", "avatar": null},
                       "roles": [], "joined_at": "2024-01-01T00:00:00+00:00", "deaf": false,
                       "mute": false, "flags": 0},
            "token": "tok", "version": 1, "app_permissions": "0", "locale": "en-US",
            "guild_locale": "en-US", "entitlements": [], "authorizing_integration_owners": {"0": "100"},
            "context": 0, "attachment_size_limit": 8388608
        })
    }

    #[test]
    fn interaction_to_text() {
        let raw = interaction_json(json!({
            "id": "1", "name": "deploy", "type": 1, "options": [
                {"name": "release", "type": 1, "options": [
                    {"name": "version", "type": 3, "value": "v1.2.0"},
                    {"name": "env", "type": 3, "value": "staging"},
                    {"name": "force", "type": 3, "value": "hotfix"},
                    {"name": "dry_run", "type": 5, "value": true}
                ]}
            ]
        }));
        let Interaction::Command(cmd) = serde_json::from_value::<Interaction>(raw).unwrap() else {
            panic!("not a command")
        };
        assert_eq!(cmd.user.id.to_string(), "111111111111111111");
        assert_eq!(
            interaction_text(&cmd.data),
            Ok("/deploy v1.2.0 staging --force \"hotfix\" --dry-run".into())
        );

        let raw = interaction_json(json!({
            "id": "1", "name": "deploy", "type": 1, "options": [
                {"name": "history", "type": 1, "options": [
                    {"name": "env", "type": 3, "value": "staging"},
                    {"name": "limit", "type": 4, "value": 5}
                ]}
            ]
        }));
        let Interaction::Command(cmd) = serde_json::from_value::<Interaction>(raw).unwrap() else {
            panic!("not a command")
        };
        assert_eq!(
            command_parts(&cmd.data),
            (
                "deploy".to_string(),
                Some("history".to_string()),
                opts(&[("env", "staging"), ("limit", "5")])
            )
        );
        assert_eq!(
            interaction_text(&cmd.data),
            Ok("/deploy history staging --limit 5".into())
        );

        let raw = interaction_json(json!({
            "id": "2", "name": "rollback", "type": 1, "options": [
                {"name": "env", "type": 3, "value": "prod"},
                {"name": "reason", "type": 3, "value": "error rate"}
            ]
        }));
        let Interaction::Command(cmd) = serde_json::from_value::<Interaction>(raw).unwrap() else {
            panic!("not a command")
        };
        assert_eq!(
            interaction_text(&cmd.data),
            Ok("/rollback prod error rate".into())
        );

        // serenity 0.12.5 refuses an interaction without attachment_size_limit.
        let mut raw = interaction_json(json!({"id": "1", "name": "deploy", "type": 1}));
        raw.as_object_mut().unwrap().remove("attachment_size_limit");
        assert!(serde_json::from_value::<Interaction>(raw).is_err());
    }

    fn settings(api_url: &str) -> DiscordSettings {
        DiscordSettings {
            api_url: api_url.into(),
            gateway_url: None,
            token: "secret-token".into(),
            guild_id: 100,
            environments: envs(),
            request_timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn client_new_checks_the_base() {
        assert!(DiscordClient::new(&settings("https://discord.com")).is_ok());
        assert!(DiscordClient::new(&settings("https://discord.com/")).is_ok());
        assert!(DiscordClient::new(&settings("http://127.0.0.1:3000")).is_ok());
        assert!(DiscordClient::new(&settings("http://[::1]:3000")).is_ok());
        assert!(DiscordClient::new(&settings("http://localhost:3000")).is_ok());
        let e = DiscordClient::new(&settings("http://discord.example.com")).unwrap_err();
        assert!(e.contains("non-loopback"), "{e}");
        assert!(DiscordClient::new(&settings("http://10.0.0.1:80")).is_err());
        assert!(DiscordClient::new(&settings("ftp://127.0.0.1")).is_err());
        assert!(DiscordClient::new(&settings("not a url")).is_err());
        let mut s = settings("https://discord.com");
        s.guild_id = 0;
        assert!(DiscordClient::new(&s).is_err());
        let mut s = settings("https://discord.com");
        s.token = " ".into();
        assert!(DiscordClient::new(&s).is_err());
        assert!(!format!("{:?}", settings("https://discord.com")).contains("secret-token"));

        // Only discord.com keeps serenity's rate limiter; every other base goes through the proxy.
        let c = DiscordClient::new(&settings("https://discord.com")).unwrap();
        assert!(c.http().ratelimiter.is_some());
        let c = DiscordClient::new(&settings("http://127.0.0.1:3000/")).unwrap();
        assert!(c.http().ratelimiter.is_none());
        assert_eq!(c.http().proxy.as_deref(), Some("http://127.0.0.1:3000"));

        assert!(checked_gateway("ws://127.0.0.1:1/gateway").is_ok());
        assert!(checked_gateway("wss://gateway.discord.gg").is_ok());
        assert!(checked_gateway("ws://gateway.example.com").is_err());
        assert!(checked_gateway("ws://127.0.0.1:1/gateway?v=10").is_err());
    }

    #[test]
    fn error_mapping() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", "2".parse().unwrap());
        assert_eq!(
            retry_after(
                &h,
                br#"{"message":"You are being rate limited.","retry_after":1.5,"global":false}"#
            ),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(retry_after(&h, b""), Some(Duration::from_secs(2)));
        assert_eq!(retry_after(&reqwest::header::HeaderMap::new(), b"{}"), None);
        assert_eq!(
            classify_status(429, String::new(), None),
            DiscordError::RateLimited {
                retry_after: DEFAULT_RETRY_AFTER
            }
        );
        assert!(matches!(
            classify_status(502, "x".into(), None),
            DiscordError::Transient(_)
        ));
        assert!(matches!(
            classify_status(403, "x".into(), None),
            DiscordError::Permanent(_)
        ));
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("abc", 4), "abc");
        assert_eq!(message_content(&"x".repeat(2500)).chars().count(), 2000);
    }

    // ---- a recorder for the REST API ------------------------------------------------------

    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{HeaderMap, Method, StatusCode, Uri};
    use axum::response::{IntoResponse, Response};
    use axum::routing::{any, get};
    use axum::{Json, Router};
    use tokio::sync::mpsc;

    #[derive(Clone, Debug)]
    struct Hit {
        method: String,
        path: String,
        auth: String,
        body: Value,
    }

    #[derive(Clone)]
    struct Rec {
        hits: mpsc::UnboundedSender<Hit>,
    }

    fn user_json(id: &str, name: &str, bot: bool) -> Value {
        json!({"id": id, "username": name, "discriminator": "0", "global_name": null,
               "avatar": null, "bot": bot})
    }

    fn message_json(id: &str, channel: &str, content: &str, edited: bool) -> Value {
        json!({
            "id": id, "channel_id": channel,
            "author": user_json("999", "greenlight", true),
            "content": content, "timestamp": "2024-05-01T12:00:00.000000+00:00",
            "edited_timestamp": if edited { json!("2024-05-01T12:01:00.000000+00:00") } else { Value::Null },
            "tts": false, "mention_everyone": false, "mentions": [], "mention_roles": [],
            "attachments": [], "embeds": [], "pinned": false, "type": 0
        })
    }

    async fn rest(
        State(rec): State<Rec>,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Response {
        let path = uri.path().to_string();
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let auth = headers
            .get("authorization")
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let _ = rec.hits.send(Hit {
            method: method.to_string(),
            path: path.clone(),
            auth,
            body: body.clone(),
        });
        let parts: Vec<&str> = path.trim_start_matches("/api/v10/").split('/').collect();
        let content = body["content"].as_str().unwrap_or_default().to_string();
        match (method.as_str(), parts.as_slice()) {
            ("POST", ["channels", "429", "messages"]) => (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "3"), ("x-ratelimit-scope", "user")],
                Json(json!({"message": "You are being rate limited.", "retry_after": 2.5, "global": false})),
            )
                .into_response(),
            ("POST", ["channels", "500", "messages"]) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"message": "500: Internal Server Error", "code": 0})),
            )
                .into_response(),
            ("POST", ["channels", "403", "messages"]) => (
                StatusCode::FORBIDDEN,
                Json(json!({"message": "Missing Access", "code": 50001})),
            )
                .into_response(),
            ("POST", ["channels", c, "messages"]) => {
                Json(message_json("5001", c, &content, false)).into_response()
            }
            ("PATCH", ["channels", c, "messages", m]) => {
                Json(message_json(m, c, &content, true)).into_response()
            }
            ("POST", ["channels", c, "messages", m, "threads"]) => Json(json!({
                "id": m, "type": 11, "guild_id": "100", "parent_id": c,
                "name": body["name"], "owner_id": "999", "last_message_id": null,
                "rate_limit_per_user": 0, "message_count": 0, "member_count": 1,
                "thread_metadata": {"archived": false, "auto_archive_duration": 1440,
                                    "archive_timestamp": "2024-05-01T12:00:00.000000+00:00",
                                    "locked": false},
                "flags": 0, "total_message_sent": 0
            }))
            .into_response(),
            ("GET", ["oauth2", "applications", "@me"]) => Json(json!({
                "id": "55", "name": "greenlight", "icon": null, "description": "",
                "bot_public": false, "bot_require_code_grant": false, "verify_key": "abc",
                "team": null, "flags": 0
            }))
            .into_response(),
            ("PUT", ["applications", app, "guilds", g, "commands"]) => {
                let commands: Vec<Value> = body
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .enumerate()
                    .map(|(i, mut c)| {
                        let o = c.as_object_mut().unwrap();
                        o.insert("id".into(), json!(format!("{}", 700 + i)));
                        o.insert("application_id".into(), json!(app));
                        o.insert("guild_id".into(), json!(g));
                        o.insert("version".into(), json!("1"));
                        o.insert("type".into(), json!(1));
                        c
                    })
                    .collect();
                Json(Value::Array(commands)).into_response()
            }
            ("POST", ["interactions", _id, _token, "callback"]) => {
                StatusCode::NO_CONTENT.into_response()
            }
            ("PATCH", ["webhooks", _app, _token, "messages", "@original"]) => {
                Json(message_json("6001", "300", &content, true)).into_response()
            }
            _ => (StatusCode::NOT_FOUND, Json(json!({"message": "404: Not Found", "code": 0})))
                .into_response(),
        }
    }

    async fn recorder(extra: Router<Rec>) -> (String, mpsc::UnboundedReceiver<Hit>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let app = extra.fallback(any(rest)).with_state(Rec { hits: tx });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{addr}"), rx)
    }

    async fn within<T>(fut: impl Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(10), fut)
            .await
            .expect("timed out")
    }

    #[tokio::test]
    async fn rest_round_trip_through_loopback() {
        let (base, mut hits) = recorder(Router::new()).await;
        let client = DiscordClient::new(&settings(&base)).unwrap();

        let id = client
            .post_message("300", "🚀 Deploying v1.2.0")
            .await
            .unwrap();
        assert_eq!(id, "5001");
        let hit = hits.recv().await.unwrap();
        assert_eq!(
            (hit.method.as_str(), hit.path.as_str()),
            ("POST", "/api/v10/channels/300/messages")
        );
        assert_eq!(hit.auth, "Bot secret-token");
        assert_eq!(hit.body["content"], "🚀 Deploying v1.2.0");
        assert_eq!(hit.body["allowed_mentions"]["parse"], json!(["users"]));

        client
            .edit_message("300", "5001", "✅ Deployed")
            .await
            .unwrap();
        let hit = hits.recv().await.unwrap();
        assert_eq!(
            (hit.method.as_str(), hit.path.as_str()),
            ("PATCH", "/api/v10/channels/300/messages/5001")
        );
        assert_eq!(hit.body["content"], "✅ Deployed");

        let thread = client
            .create_thread("300", "5001", "Checklist for v1.2.0")
            .await
            .unwrap();
        assert_eq!(thread, "5001");
        let hit = hits.recv().await.unwrap();
        assert_eq!(
            (hit.method.as_str(), hit.path.as_str()),
            ("POST", "/api/v10/channels/300/messages/5001/threads")
        );
        assert_eq!(hit.body["name"], "Checklist for v1.2.0");

        assert_eq!(
            client.post_message("429", "x").await,
            Err(DiscordError::RateLimited {
                retry_after: Duration::from_millis(2500)
            })
        );
        hits.recv().await.unwrap();
        match client.post_message("500", "x").await {
            Err(DiscordError::Transient(e)) => assert!(e.contains("500"), "{e}"),
            other => panic!("{other:?}"),
        }
        hits.recv().await.unwrap();
        match client.post_message("403", "x").await {
            Err(DiscordError::Permanent(e)) => assert!(e.contains("Missing Access"), "{e}"),
            other => panic!("{other:?}"),
        }
        hits.recv().await.unwrap();
        assert!(matches!(
            client.post_message("not-a-channel", "x").await,
            Err(DiscordError::Permanent(_))
        ));

        client.register_commands(&envs()).await.unwrap();
        let hit = hits.recv().await.unwrap();
        assert_eq!(
            (hit.method.as_str(), hit.path.as_str()),
            ("GET", "/api/v10/oauth2/applications/@me")
        );
        let hit = hits.recv().await.unwrap();
        assert_eq!(
            (hit.method.as_str(), hit.path.as_str()),
            ("PUT", "/api/v10/applications/55/guilds/100/commands")
        );
        assert_eq!(hit.body[0]["name"], "deploy");
        assert_eq!(hit.body[1]["name"], "rollback");
        // The application id is remembered.
        client.register_commands(&envs()).await.unwrap();
        assert_eq!(hits.recv().await.unwrap().method, "PUT");
    }

    #[tokio::test]
    async fn rest_errors_without_a_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let client = DiscordClient::new(&settings(&format!("http://{addr}"))).unwrap();
        assert!(matches!(
            client.post_message("300", "x").await,
            Err(DiscordError::Transient(_))
        ));

        // A server that never answers: the request timeout applies.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut s = settings(&format!("http://{addr}"));
        s.request_timeout = Duration::from_millis(200);
        let client = DiscordClient::new(&s).unwrap();
        match client.post_message("300", "x").await {
            Err(DiscordError::Transient(e)) => assert!(e.contains("timed out"), "{e}"),
            other => panic!("{other:?}"),
        }
        drop(listener);
    }

    // ---- a fake gateway --------------------------------------------------------------------

    use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};

    #[derive(Clone)]
    struct GatewayFake {
        sockets: mpsc::UnboundedSender<WebSocket>,
    }

    async fn ws_upgrade(State(fake): State<GatewayFake>, ws: WebSocketUpgrade) -> Response {
        ws.on_upgrade(move |socket| async move {
            let _ = fake.sockets.send(socket);
        })
    }

    async fn send_json(socket: &mut WebSocket, v: Value) {
        socket
            .send(WsMessage::Text(v.to_string().into()))
            .await
            .unwrap();
    }

    /// The next JSON frame from the bot, answering heartbeats on the way.
    async fn recv_op(socket: &mut WebSocket, op: u64) -> Value {
        loop {
            let msg = socket.recv().await.expect("closed").expect("ws error");
            if let WsMessage::Text(t) = msg {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["op"] == 1 && op != 1 {
                    send_json(socket, json!({"op": 11})).await;
                    continue;
                }
                if v["op"] == op {
                    return v;
                }
            }
        }
    }

    struct TestSink {
        commands: mpsc::UnboundedSender<DiscordInbound>,
        reactions: mpsc::UnboundedSender<DiscordInbound>,
        /// A `cancel` command answers only once this is released.
        gate: Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
    }

    impl DiscordSink for TestSink {
        fn on_command(
            &self,
            inbound: DiscordInbound,
        ) -> Pin<Box<dyn Future<Output = CommandAnswer> + Send>> {
            let _ = self.commands.send(inbound.clone());
            let gate = match &inbound {
                DiscordInbound::Command { text, .. } if text.contains("cancel") => {
                    self.gate.lock().unwrap().take()
                }
                _ => None,
            };
            Box::pin(async move {
                if let Some(gate) = gate {
                    let _ = gate.await;
                }
                let DiscordInbound::Command { text, .. } = inbound else {
                    unreachable!()
                };
                CommandAnswer {
                    text: format!("got {text}"),
                    ephemeral: text.contains("status"),
                }
            })
        }
        fn on_reaction(&self, inbound: DiscordInbound) {
            let _ = self.reactions.send(inbound);
        }
    }

    #[tokio::test]
    async fn gateway_end_to_end() {
        let (sock_tx, mut sockets) = mpsc::unbounded_channel();
        let fake = GatewayFake { sockets: sock_tx };
        let gateway_routes: Router<Rec> =
            Router::new().route("/gateway", get(ws_upgrade).with_state(fake));
        let (base, mut hits) = recorder(gateway_routes).await;
        let mut s = settings(&base);
        s.gateway_url = Some(format!("{}/gateway", base.replace("http://", "ws://")));

        let (ctx, mut commands) = mpsc::unbounded_channel();
        let (rtx, mut reactions) = mpsc::unbounded_channel();
        let (release_slow, gate) = tokio::sync::oneshot::channel();
        let sink = Arc::new(TestSink {
            commands: ctx,
            reactions: rtx,
            gate: Mutex::new(Some(gate)),
        });
        let gateway = within(Gateway::start(&s, sink)).await.unwrap();
        assert!(!gateway.connected());

        // serenity asks for the gateway URL through the REST base even with an override.
        let hit = within(hits.recv()).await.unwrap();
        assert_eq!(hit.path, "/api/v10/gateway");

        let mut socket = within(sockets.recv()).await.unwrap();
        send_json(
            &mut socket,
            json!({"op": 10, "d": {"heartbeat_interval": 45000}}),
        )
        .await;
        let identify = within(recv_op(&mut socket, 2)).await;
        assert_eq!(identify["d"]["token"], "Bot secret-token");
        assert_eq!(identify["d"]["intents"], json!(intents().bits()));
        assert_eq!(intents().bits(), 1 | (1 << 9) | (1 << 10));
        send_json(
            &mut socket,
            json!({"op": 0, "t": "READY", "s": 1, "d": {
                "v": 10, "user": user_json("999", "greenlight", true), "guilds": [],
                "session_id": "sess1", "resume_gateway_url": s.gateway_url,
                "application": {"id": "55", "flags": 0}
            }}),
        )
        .await;

        // READY registers the commands (the application id comes from READY).
        let hit = within(hits.recv()).await.unwrap();
        assert_eq!(
            (hit.method.as_str(), hit.path.as_str()),
            ("PUT", "/api/v10/applications/55/guilds/100/commands")
        );
        assert!(gateway.connected());

        // A valid command: converted, handed to the sink, answered with its visibility.
        let release = json!({"id": "1", "name": "deploy", "type": 1, "options": [
            {"name": "release", "type": 1, "options": [
                {"name": "version", "type": 3, "value": "v1.2.0"},
                {"name": "env", "type": 3, "value": "staging"}]}]});
        send_json(
            &mut socket,
            json!({"op": 0, "t": "INTERACTION_CREATE", "s": 2, "d": interaction_json(release)}),
        )
        .await;
        let inbound = within(commands.recv()).await.unwrap();
        assert_eq!(
            inbound,
            DiscordInbound::Command {
                dedup: "900".into(),
                user: "111111111111111111".into(),
                channel: "300".into(),
                text: "/deploy v1.2.0 staging".into(),
            }
        );
        let hit = within(hits.recv()).await.unwrap();
        assert_eq!(
            (hit.method.as_str(), hit.path.as_str()),
            ("POST", "/api/v10/interactions/900/tok/callback")
        );
        assert_eq!(hit.body["type"], 4);
        assert_eq!(hit.body["data"]["content"], "got /deploy v1.2.0 staging");
        assert_eq!(hit.body["data"]["flags"].as_u64().unwrap_or(0) & 64, 0);

        // A command with a missing option never reaches the sink: ephemeral usage at once.
        let mut bad = interaction_json(json!({"id": "1", "name": "deploy", "type": 1, "options": [
            {"name": "lock", "type": 1, "options": [{"name": "env", "type": 3, "value": "prod"}]}]}));
        bad["id"] = json!("901");
        send_json(
            &mut socket,
            json!({"op": 0, "t": "INTERACTION_CREATE", "s": 3, "d": bad}),
        )
        .await;
        let hit = within(hits.recv()).await.unwrap();
        assert_eq!(hit.path, "/api/v10/interactions/901/tok/callback");
        assert_eq!(hit.body["data"]["flags"], 64);
        assert!(hit.body["data"]["content"]
            .as_str()
            .unwrap()
            .starts_with("missing reason. Usage: /deploy lock"));

        // An ephemeral answer.
        let mut status =
            interaction_json(json!({"id": "1", "name": "deploy", "type": 1, "options": [
            {"name": "status", "type": 1, "options": []}]}));
        status["id"] = json!("902");
        send_json(
            &mut socket,
            json!({"op": 0, "t": "INTERACTION_CREATE", "s": 4, "d": status}),
        )
        .await;
        let inbound = within(commands.recv()).await.unwrap();
        assert!(
            matches!(inbound, DiscordInbound::Command { ref text, .. } if text == "/deploy status")
        );
        let hit = within(hits.recv()).await.unwrap();
        assert_eq!(hit.path, "/api/v10/interactions/902/tok/callback");
        assert_eq!(hit.body["data"]["flags"], 64);

        // A slow answer: deferred (ephemerally) before Discord's 3 s run out, then edited in.
        let mut cancel =
            interaction_json(json!({"id": "1", "name": "deploy", "type": 1, "options": [
            {"name": "cancel", "type": 1, "options": [{"name": "run", "type": 4, "value": 7}]}]}));
        cancel["id"] = json!("903");
        send_json(
            &mut socket,
            json!({"op": 0, "t": "INTERACTION_CREATE", "s": 5, "d": cancel}),
        )
        .await;
        let inbound = within(commands.recv()).await.unwrap();
        assert!(
            matches!(inbound, DiscordInbound::Command { ref text, .. } if text == "/deploy cancel 7")
        );
        let hit = within(hits.recv()).await.unwrap();
        assert_eq!(hit.path, "/api/v10/interactions/903/tok/callback");
        assert_eq!(hit.body["type"], 5);
        assert_eq!(hit.body["data"]["flags"], 64);
        release_slow.send(()).unwrap();
        let hit = within(hits.recv()).await.unwrap();
        assert_eq!(
            (hit.method.as_str(), hit.path.as_str()),
            ("PATCH", "/api/v10/webhooks/55/tok/messages/@original")
        );
        assert_eq!(hit.body["content"], "got /deploy cancel 7");

        // Reactions: the bot's own is ignored; add, duplicate, remove.
        let own = reaction_json("999", "✅");
        send_json(
            &mut socket,
            json!({"op": 0, "t": "MESSAGE_REACTION_ADD", "s": 6, "d": own}),
        )
        .await;
        let add = reaction_json("111111111111111111", "👍🏻");
        send_json(
            &mut socket,
            json!({"op": 0, "t": "MESSAGE_REACTION_ADD", "s": 7, "d": add}),
        )
        .await;
        let first = within(reactions.recv()).await.unwrap();
        assert_eq!(
            first,
            DiscordInbound::Reaction {
                dedup: "r:300:400:111111111111111111:+1:true:sess1:1".into(),
                user: "111111111111111111".into(),
                channel: "300".into(),
                message_id: "400".into(),
                emoji: "+1".into(),
                added: true,
            }
        );
        send_json(
            &mut socket,
            json!({"op": 0, "t": "MESSAGE_REACTION_ADD", "s": 8, "d": add}),
        )
        .await;
        let dup = within(reactions.recv()).await.unwrap();
        assert_eq!(dup, first);
        let remove = reaction_json("111111111111111111", "👍🏻");
        send_json(
            &mut socket,
            json!({"op": 0, "t": "MESSAGE_REACTION_REMOVE", "s": 9, "d": remove}),
        )
        .await;
        match within(reactions.recv()).await.unwrap() {
            DiscordInbound::Reaction { added, dedup, .. } => {
                assert!(!added);
                assert_eq!(dedup, "r:300:400:111111111111111111:+1:false:sess1:2");
            }
            other => panic!("{other:?}"),
        }

        // Shutdown closes the socket; reading it answers the close frame.
        let reader = tokio::spawn(async move { while let Some(Ok(_)) = socket.recv().await {} });
        let started = std::time::Instant::now();
        within(gateway.shutdown()).await;
        within(reader).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(4), "no clean close");
        assert!(
            reactions.try_recv().is_err(),
            "the bot's own reaction was delivered"
        );
    }
}
