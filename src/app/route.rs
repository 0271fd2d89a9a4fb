//! Routing one step's messages to each platform: the core's posts and a command's answer
//! become local-channel messages and outbox entries for Slack and Discord. Pure: the list is
//! written in the same store batch as the step's state (`write`).

use super::Platforms;
use crate::chat::local as localchat;
use crate::config::Config;
use crate::core::engine::Changes;
use crate::core::message::{self, MsgKey, Post, Room};
use crate::core::{Platform, RunId, UserId};
use crate::store::{OutboxEntry, WriteSet};
use anyhow::Result;
use chrono::{DateTime, Utc};

/// Where a command came from, so its answer goes back there.
pub(super) enum Origin {
    Local {
        user: UserId,
        channel: String,
        thread_id: Option<String>,
    },
    /// A Slack slash command or button: answers go through its response URL; without one (a
    /// click Slack sent without it) to `user` alone (chat.postEphemeral) in the clicked
    /// message's thread `thread_key`.
    Slack {
        channel: String,
        response_url: String,
        user: String,
        thread_key: Option<String>,
    },
    /// Discord (a slash command or a message that mentions the bot): the answer is returned to
    /// the gateway handler, which responds.
    Discord,
}

impl Origin {
    pub(super) fn platform(&self) -> Platform {
        match self {
            Origin::Local { .. } => Platform::Local,
            Origin::Slack { .. } => Platform::Slack,
            Origin::Discord => Platform::Discord,
        }
    }
}

/// One message of a step, for one place.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Delivery<'a> {
    /// A core post rendered into the local channel (an edit replaces its keyed message).
    Local(&'a Post),
    /// A command's answer in the local channel.
    LocalReply {
        channel: String,
        thread_id: Option<String>,
        text: String,
        visible_to: Option<String>,
    },
    /// A message for a remote platform's deliverer.
    Outbox(OutboxEntry),
}

/// Every message of `ch` for every active platform, in order. `run_origin` says where a run
/// not among `ch.runs` came from.
pub(super) fn route<'a>(
    cfg: &Config,
    platforms: &Platforms,
    ch: &'a Changes,
    origin: Option<&Origin>,
    run_origin: &dyn Fn(RunId) -> Option<Platform>,
) -> Vec<Delivery<'a>> {
    let mut out = Vec::new();
    for p in &ch.posts {
        let origin_of = |id: RunId| -> Platform {
            ch.runs
                .iter()
                .find(|r| r.id == id)
                .map(|r| r.origin)
                .or_else(|| run_origin(id))
                .unwrap_or_default()
        };
        route_post(cfg, platforms, p, &origin_of, &mut out);
    }
    if let (Some(reply), Some(origin)) = (&ch.reply, origin) {
        out.extend(route_reply(cfg, reply, origin));
    }
    out
}

/// One core post: a run's thread lives on the platform its command came from; lifecycle and
/// incident messages go to every configured platform.
fn route_post<'a>(
    cfg: &Config,
    platforms: &Platforms,
    p: &'a Post,
    origin_of: &dyn Fn(RunId) -> Platform,
    out: &mut Vec<Delivery<'a>>,
) {
    let thread_of = p
        .thread
        .or(p.key.filter(|k| matches!(k, MsgKey::Checklist(_))))
        .map(|k| k.run());
    let wants = |platform: Platform| thread_of.is_none_or(|id| origin_of(id) == platform);
    if platforms.local && wants(Platform::Local) {
        out.push(Delivery::Local(p));
    }
    for platform in [Platform::Discord, Platform::Slack] {
        let active = match platform {
            Platform::Slack => platforms.slack.is_some(),
            Platform::Discord => platforms.discord.is_some(),
            Platform::Local => false,
        };
        if active && wants(platform) {
            out.extend(remote_post(cfg, platform, p).map(Delivery::Outbox));
        }
    }
}

/// A core post for a remote platform's outbox: in its room's channel there, mentions in the
/// platform's ids. In Slack a checklist item carries the Approve / Veto buttons, and a post
/// meant for one person is an ephemeral message to them (none when they have no Slack id);
/// Discord, which has no private message in a channel, shows it in the thread.
fn remote_post(cfg: &Config, platform: Platform, p: &Post) -> Option<OutboxEntry> {
    let channel = remote_channel(cfg, platform, p)?;
    let (buttons, ephemeral_to) = match platform {
        Platform::Slack => {
            let to = match &p.to {
                Some(u) => Some(platform_id(cfg, u, platform)?),
                None => None,
            };
            let item = matches!(p.key, Some(MsgKey::Item(..)));
            (item, to)
        }
        _ => (false, None),
    };
    Some(OutboxEntry {
        platform,
        channel,
        text: mentions_for(cfg, platform, &p.text),
        key: p.key.map(|k| k.to_string()),
        thread_key: p.thread.map(|k| k.to_string()),
        edit: p.edit,
        buttons,
        respond_url: None,
        ephemeral_to,
    })
}

/// A command's answer goes back where the command came from (a Discord interaction is
/// answered by its handler, not from here).
fn route_reply<'a>(
    cfg: &Config,
    reply: &crate::core::engine::Reply,
    origin: &Origin,
) -> Option<Delivery<'a>> {
    match origin {
        Origin::Local {
            user,
            channel,
            thread_id,
        } => Some(Delivery::LocalReply {
            channel: channel.clone(),
            thread_id: thread_id.clone(),
            text: reply.text.clone(),
            visible_to: reply.visibility.is_ephemeral().then(|| user.0.clone()),
        }),
        Origin::Slack {
            channel,
            response_url,
            user,
            thread_key,
        } => {
            // No response URL: a post in the thread, or chat.postEphemeral when private.
            let url = Some(response_url.clone()).filter(|u| !u.is_empty());
            Some(Delivery::Outbox(OutboxEntry {
                thread_key: thread_key.clone().filter(|_| url.is_none()),
                respond_url: url,
                ephemeral_to: reply.visibility.is_ephemeral().then(|| user.clone()),
                ..OutboxEntry::new(
                    Platform::Slack,
                    channel.clone(),
                    mentions_for(cfg, Platform::Slack, &reply.text),
                )
            }))
        }
        Origin::Discord => None,
    }
}

/// Writes the routed messages into the step's batch.
pub(super) fn write(
    ws: &mut WriteSet<'_>,
    cfg: &Config,
    deliveries: Vec<Delivery<'_>>,
    now: DateTime<Utc>,
) -> Result<()> {
    for d in deliveries {
        match d {
            Delivery::Local(p) => localchat::render_post(ws, cfg, p, now)?,
            Delivery::LocalReply {
                channel,
                thread_id,
                text,
                visible_to,
            } => {
                localchat::add_bot_message(ws, &channel, thread_id, &text, visible_to, None, now)?;
            }
            Delivery::Outbox(e) => ws.push_outbox(&e)?,
        }
    }
    Ok(())
}

/// The channel of a post's room on a remote platform (incidents and announcements fall back
/// to the deploys channel).
pub(super) fn remote_channel(cfg: &Config, platform: Platform, p: &Post) -> Option<String> {
    let ch = &cfg.env(&p.env)?.channels;
    let (deploys, incidents) = match platform {
        Platform::Slack => (&ch.slack_channel, &ch.slack_incident_channel),
        Platform::Discord => (&ch.discord_channel, &ch.discord_incident_channel),
        Platform::Local => return None,
    };
    match p.room {
        Room::Deploys | Room::Announce => deploys.clone(),
        Room::Incidents => incidents.clone().or_else(|| deploys.clone()),
    }
}

/// A person's user id on a remote platform, per `[users]`.
pub(super) fn platform_id(cfg: &Config, user: &UserId, platform: Platform) -> Option<String> {
    let u = cfg.users.get(user)?;
    match platform {
        Platform::Slack => u.slack.clone(),
        Platform::Discord => u.discord.clone(),
        Platform::Local => None,
    }
}

/// Renders `<@person>` mentions with the platform's user ids (`<@U123>`), or `@person` when
/// the person has no id there.
pub(super) fn mentions_for(cfg: &Config, platform: Platform, text: &str) -> String {
    message::render_mentions(text, |name| {
        match platform_id(cfg, &UserId::new(name), platform) {
            Some(id) => format!("<@{id}>"),
            None => format!("@{name}"),
        }
    })
}

#[cfg(test)]
#[path = "route_tests.rs"]
mod tests;
