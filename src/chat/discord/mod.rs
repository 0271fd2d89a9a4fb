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
use std::sync::Mutex;
use std::time::Duration;

use serenity::builder::CreateAllowedMentions;
use serenity::model::channel::{Message, Reaction, ReactionType};
use serenity::model::gateway::GatewayIntents;
use serenity::model::id::UserId;

pub use crate::chat::error::{DeliveryError, ErrorKind};
use crate::chat::inbound::{Inbound, Kind};
use crate::core::{text, Platform};

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
    /// The configured `version_pattern`s: versions a command may name besides semver and shas.
    pub version_patterns: Vec<String>,
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
            .field("version_patterns", &self.version_patterns)
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
/// The platform of Discord's errors.
const PLATFORM: Platform = Platform::Discord;
/// Discord allows at most 25 choices on an option; with more environments `env` is free text.
const MAX_CHOICES: usize = 25;

/// The gateway intents: none privileged. GUILD_MESSAGES brings the messages that mention the
/// bot with their content even without the privileged MESSAGE_CONTENT intent (Discord delivers
/// the content of messages that mention the app), which is all greenlight reads.
pub fn intents() -> GatewayIntents {
    GatewayIntents::GUILDS
        | GatewayIntents::GUILD_MESSAGES
        | GatewayIntents::GUILD_MESSAGE_REACTIONS
}

// ---------------------------------------------------------------------------------------------
// Pure conversion
// ---------------------------------------------------------------------------------------------

/// The chat text of a message that mentions the bot: `<@BOT> deploy v1.2.0 prod` is
/// `/deploy v1.2.0 prod`, the phrase users know from the other platforms (the leading `/` is
/// optional). `None` when what is left once the bot's mentions are removed is not a command.
pub fn mention_text(content: &str, bot: &str) -> Option<String> {
    let text = content
        .replace(&format!("<@{bot}>"), " ")
        .replace(&format!("<@!{bot}>"), " ");
    let text = text.trim();
    let text = match text.split_whitespace().next() {
        Some("deploy" | "rollback") => format!("/{text}"),
        _ => text.to_string(),
    };
    crate::core::command::is_command(&text).then_some(text)
}

/// A message that mentions the bot and holds a command, from a person (not a bot), deduplicated
/// on the message id.
fn mention_inbound(message: &Message, bot: UserId) -> Option<Inbound> {
    if message.author.bot || !message.mentions.iter().any(|u| u.id == bot) {
        return None;
    }
    let text = mention_text(&message.content, &bot.to_string())?;
    Some(Inbound {
        platform: PLATFORM,
        dedup: Some(format!("m:{}", message.id)),
        user: message.author.id.to_string(),
        channel: message.channel_id.to_string(),
        kind: Kind::Message { text, thread: None },
        response_url: None,
    })
}

/// The name greenlight uses for a reaction's emoji: a Slack short name for ✅ `white_check_mark`,
/// 👍 `+1`, ❌ `x` (skin tones count as the base); other unicode emoji as they are, custom emoji
/// by name.
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
    // The one emoji normalisation (✅ -> white_check_mark, 👍 -> +1, ❌ -> x); other emoji
    // pass through as they are.
    match crate::core::checklist::base_name(&base) {
        name if name != base => name,
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
) -> Option<Inbound> {
    let user = reaction.user_id?.to_string();
    let channel = reaction.channel_id.to_string();
    let message = reaction.message_id.to_string();
    let emoji = emoji_name(&reaction.emoji);
    let key = format!("{channel}:{message}:{user}:{emoji}");
    let suffix = ledger
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .observe(&key, added);
    Some(Inbound {
        platform: PLATFORM,
        dedup: Some(format!("r:{key}:{added}:{suffix}")),
        user,
        channel,
        kind: Kind::Reaction {
            message,
            emoji,
            added,
        },
        response_url: None,
    })
}

/// Cuts `text` to Discord's 2000-character message limit (serenity refuses longer content).
fn clip(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        text.to_string()
    } else {
        crate::core::text::clip(text, limit.saturating_sub(1))
    }
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

mod client;
mod command;
mod gateway;
#[cfg(test)]
mod tests;

pub use client::DiscordClient;
pub use command::*;
pub use gateway::Gateway;
