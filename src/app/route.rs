//! Routing one step's messages to each platform: the core's posts and a command's answer
//! become local-channel messages and outbox entries for Slack and Discord. Pure: the list is
//! written in the same store batch as the step's state (`write`).

use super::inbound::Origin;
use super::Platforms;
use crate::chat::local as localchat;
use crate::config::Config;
use crate::core::message::{self, MsgKey, Post, Room};
use crate::core::run::Changes;
use crate::core::{Platform, RunId, UserId};
use crate::store::{OutboxEntry, WriteSet};
use anyhow::Result;
use chrono::{DateTime, Utc};

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
    if platforms.discord.is_some() && wants(Platform::Discord) {
        if let Some(channel) = discord_channel(cfg, p) {
            out.push(Delivery::Outbox(OutboxEntry {
                platform: Platform::Discord,
                channel,
                text: mentions_for(cfg, Platform::Discord, &p.text),
                key: p.key.map(|k| k.to_string()),
                thread_key: p.thread.map(|k| k.to_string()),
                edit: p.edit,
                buttons: false,
                respond_url: None,
                ephemeral_to: None,
            }));
        }
    }
    // A post meant for one person reaches Slack only as an ephemeral message to them.
    let slack_to = match &p.to {
        Some(u) => match cfg.users.get(u).and_then(|x| x.slack.clone()) {
            Some(id) => Some(id),
            None => return,
        },
        None => None,
    };
    if platforms.slack.is_some() && wants(Platform::Slack) {
        if let Some(channel) = slack_channel(cfg, p) {
            let buttons = matches!(p.key, Some(MsgKey::Item(..)));
            out.push(Delivery::Outbox(OutboxEntry {
                platform: Platform::Slack,
                channel,
                text: mentions_for(cfg, Platform::Slack, &p.text),
                key: p.key.map(|k| k.to_string()),
                thread_key: p.thread.map(|k| k.to_string()),
                edit: p.edit,
                buttons,
                respond_url: None,
                ephemeral_to: slack_to,
            }));
        }
    }
}

/// A command's answer goes back where the command came from (a Discord interaction is
/// answered by its handler, not from here).
fn route_reply<'a>(
    cfg: &Config,
    reply: &crate::core::run::Reply,
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
            visible_to: reply.private.then(|| user.0.clone()),
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
                platform: Platform::Slack,
                channel: channel.clone(),
                text: mentions_for(cfg, Platform::Slack, &reply.text),
                key: None,
                thread_key: thread_key.clone().filter(|_| url.is_none()),
                edit: false,
                buttons: false,
                respond_url: url,
                ephemeral_to: reply.private.then(|| user.clone()),
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

/// The Slack channel of a post's room in its environment (incidents and announcements fall
/// back to the deploys channel).
pub(super) fn slack_channel(cfg: &Config, p: &Post) -> Option<String> {
    let ch = &cfg.env(&p.env)?.channels;
    match p.room {
        Room::Deploys | Room::Announce => ch.slack_channel.clone(),
        Room::Incidents => ch
            .slack_incident_channel
            .clone()
            .or_else(|| ch.slack_channel.clone()),
    }
}

/// The Discord channel of a post's room (incidents and announcements fall back to the deploys
/// channel).
pub(super) fn discord_channel(cfg: &Config, p: &Post) -> Option<String> {
    let ch = &cfg.env(&p.env)?.channels;
    match p.room {
        Room::Deploys | Room::Announce => ch.discord_channel.clone(),
        Room::Incidents => ch
            .discord_incident_channel
            .clone()
            .or_else(|| ch.discord_channel.clone()),
    }
}

/// Renders `<@person>` mentions with the platform's user ids (`<@U123>`), or `@person` when
/// the person has no id there.
pub(super) fn mentions_for(cfg: &Config, platform: Platform, text: &str) -> String {
    message::render_mentions(text, |name| {
        let id = cfg
            .users
            .get(&UserId::new(name))
            .and_then(|u| match platform {
                Platform::Slack => u.slack.clone(),
                Platform::Discord => u.discord.clone(),
                _ => None,
            });
        match id {
            Some(id) => format!("<@{id}>"),
            None => format!("@{name}"),
        }
    })
}

#[cfg(test)]
#[path = "route_tests.rs"]
mod tests;
