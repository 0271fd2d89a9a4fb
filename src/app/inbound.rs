//! Inbound chat handling: one handler for what every adapter sends (`chat::Inbound`: the local
//! channel's posts and reactions, Slack's and Discord's commands, reactions, clicks and
//! mentions), and who the person behind a platform user id is. An event's effects (and, for a
//! remote platform, its id, so a redelivery acts once) are written in one batch before the
//! adapter hears back.

use super::route::Origin;
use super::{ApiError, App, AppEvent, Handle};
use crate::chat::local as localchat;
use crate::chat::{Answer, Button, Handled, Inbound, Inbox, Kind, Visibility};
use crate::core::command::{self, Command, UsageError};
use crate::core::engine::Changes;
use crate::core::message::MsgKey;
use crate::core::{Platform, UserId};
use crate::store::{LocalMessage, WriteSet};
use anyhow::Result;
use chrono::{DateTime, Utc};

/// A platform event's id, written in the same batch as the step it caused, so that a
/// redelivery is recognised exactly when that step was written.
pub(super) struct Dedup {
    pub(super) platform: Platform,
    pub(super) id: String,
}

impl Dedup {
    pub(super) fn write(self, ws: &mut WriteSet<'_>, now: DateTime<Utc>) -> Result<()> {
        ws.first_time(self.platform, &self.id, now)?;
        Ok(())
    }
}

/// Where a remote platform's event came from, and its id to write with its effects.
struct Remote {
    platform: Platform,
    user: String,
    channel: String,
    response_url: Option<String>,
    dedup: Option<Dedup>,
}

impl Remote {
    /// Where the answer goes: Slack's response URL (or, without one, `user` alone in the thread
    /// of `thread_key`); Discord's gateway handler answers with what is returned.
    fn origin(&self, thread_key: Option<String>) -> Origin {
        match self.platform {
            Platform::Slack => Origin::Slack {
                channel: self.channel.clone(),
                response_url: self.response_url.clone().unwrap_or_default(),
                user: self.user.clone(),
                thread_key,
            },
            _ => Origin::Discord,
        }
    }
}

impl Handle {
    /// The app's door for the chat adapters: each event is answered once it is handled and
    /// written.
    pub fn inbox(&self) -> Inbox {
        let tx = self.tx.clone();
        Inbox::new(move |inbound, reply| {
            let tx = tx.clone();
            async move { tx.send(AppEvent::Chat { inbound, reply }).await.is_ok() }
        })
    }
}

impl App {
    /// Handles one chat event from any adapter, once: a remote platform's event id is written
    /// in the same batch as its effects, and a redelivery is recognised by it (also within
    /// the batch being built).
    pub(super) fn inbound(
        &mut self,
        inbound: Inbound,
        ws: &mut WriteSet<'_>,
        now: DateTime<Utc>,
    ) -> Result<Handled> {
        let Inbound {
            platform,
            dedup,
            user,
            channel,
            kind,
            response_url,
        } = inbound;
        if platform == Platform::Local {
            return self.local(user, channel, kind, ws, now);
        }
        let dedup = match dedup {
            Some(id) if ws.seen(platform, &id)? => {
                tracing::info!(%platform, dedup = %id, "redelivery ignored");
                return Ok(Handled {
                    answer: Some(Answer::ephemeral("This was already handled.")),
                    ..Default::default()
                });
            }
            Some(id) => Some(Dedup { platform, id }),
            None => None,
        };
        let remote = Remote {
            platform,
            user,
            channel,
            response_url,
            dedup,
        };
        match kind {
            Kind::Message { text, .. } => {
                match command::parse_with(&text, &self.version_patterns) {
                    Some(parsed) => self.remote_command(remote, parsed, ws, now),
                    None => Ok(Handled::default()),
                }
            }
            Kind::Command(cmd) => self.remote_command(remote, Ok(cmd), ws, now),
            Kind::Reaction {
                message,
                emoji,
                added,
            } => self.remote_reaction(remote, (&message, &emoji, added), ws, now),
            Kind::Click { message, button } => self.click(remote, &message, button, ws, now),
        }
    }

    /// The local channel: a post (kept, then acted on when it is a command, in the same batch)
    /// or a reaction.
    fn local(
        &mut self,
        user: String,
        channel: String,
        kind: Kind,
        ws: &mut WriteSet<'_>,
        now: DateTime<Utc>,
    ) -> Result<Handled> {
        match kind {
            Kind::Message { text, thread } => {
                let id = self.local_post(user, (text, channel, thread), ws, now)?;
                Ok(Handled {
                    message_id: Some(id),
                    ..Default::default()
                })
            }
            Kind::Reaction {
                message,
                emoji,
                added,
            } => {
                let changed = self.local_reaction(user, (message, emoji, added), ws, now)?;
                Ok(Handled {
                    changed,
                    ..Default::default()
                })
            }
            Kind::Command(_) | Kind::Click { .. } => {
                Err(ApiError::new(400, "the local channel takes posts and reactions only").into())
            }
        }
    }

    /// A command from Slack or Discord; the answer is also returned (Discord responds with it).
    fn remote_command(
        &mut self,
        mut r: Remote,
        parsed: Result<Command, UsageError>,
        ws: &mut WriteSet<'_>,
        now: DateTime<Utc>,
    ) -> Result<Handled> {
        let origin = r.origin(None);
        let reply = match self.person(r.platform, &r.user) {
            Some(uid) => self.handle_command(ws, r.dedup.take(), &uid, parsed, &origin, now)?,
            None => {
                let ch = Self::unknown_person(r.platform, &r.user);
                let reply = ch.reply.clone();
                self.stage_with(ws, r.dedup.take(), ch, Some(&origin), now)?;
                reply
            }
        };
        let answer = match reply {
            Some(reply) => Answer {
                text: super::route::mentions_for(&self.cfg, r.platform, &reply.text),
                visibility: reply.visibility,
            },
            None => Answer::ephemeral("Done."),
        };
        Ok(Handled {
            answer: Some(answer),
            ..Default::default()
        })
    }

    /// A reaction on one of the bot's messages in Slack or Discord.
    fn remote_reaction(
        &mut self,
        mut r: Remote,
        (message, emoji, added): (&str, &str, bool),
        ws: &mut WriteSet<'_>,
        now: DateTime<Utc>,
    ) -> Result<Handled> {
        let key = self.store.key_of(r.platform, &r.channel, message)?;
        let ch = match (key, self.person(r.platform, &r.user)) {
            (Some(key), Some(uid)) => self.engine.reaction(&uid, &key, emoji, added, now),
            _ => Changes::default(),
        };
        self.stage_with(ws, r.dedup.take(), ch, None, now)?;
        Ok(Handled::default())
    }

    /// A click on a checklist item's button; the answer goes to the clicker (in the run's
    /// thread when Slack sent no response URL).
    fn click(
        &mut self,
        mut r: Remote,
        message: &str,
        button: Button,
        ws: &mut WriteSet<'_>,
        now: DateTime<Utc>,
    ) -> Result<Handled> {
        let key = self.store.key_of(r.platform, &r.channel, message)?;
        let thread_key = key
            .as_deref()
            .and_then(MsgKey::parse)
            .map(|k| MsgKey::Checklist(k.run()).to_string());
        let origin = r.origin(thread_key);
        let ch = match (key, self.person(r.platform, &r.user)) {
            (Some(key), Some(uid)) => self
                .engine
                .click(&uid, &key, button == Button::Approve, now),
            (_, None) => Self::unknown_person(r.platform, &r.user),
            _ => Changes::default(),
        };
        self.stage_with(ws, r.dedup.take(), ch, Some(&origin), now)?;
        Ok(Handled::default())
    }

    /// Writes a step's changes with the event's id (when it has one) into the batch.
    fn stage_with(
        &mut self,
        ws: &mut WriteSet<'_>,
        dedup: Option<Dedup>,
        ch: Changes,
        origin: Option<&Origin>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        if let Some(d) = dedup {
            d.write(ws, now)?;
        }
        self.stage(ws, ch, origin, now)
    }

    fn known_user(&self, user: &str) -> Result<UserId> {
        let id = UserId::new(user);
        if self.cfg.users.contains_key(&id) {
            Ok(id)
        } else {
            Err(ApiError::new(
                400,
                format!("unknown user \"{user}\": not a key under [users]"),
            )
            .into())
        }
    }

    /// A person's post, and when it is a command, its effects: one step, one batch.
    fn local_post(
        &mut self,
        user: String,
        (text, channel, thread_id): (String, String, Option<String>),
        ws: &mut WriteSet<'_>,
        now: DateTime<Utc>,
    ) -> Result<String> {
        let uid = self.known_user(&user)?;
        if !localchat::known_channels(&self.cfg).contains(&channel) {
            return Err(ApiError::new(400, format!("unknown channel \"{channel}\"")).into());
        }
        if text.trim().is_empty() {
            return Err(ApiError::new(400, "text is empty").into());
        }
        let thread_id = match thread_id {
            Some(t) => {
                let n: u64 = t
                    .parse()
                    .map_err(|_| ApiError::new(404, format!("unknown thread_id \"{t}\"")))?;
                let parent = ws
                    .message(n)?
                    .ok_or_else(|| ApiError::new(404, format!("unknown thread_id \"{t}\"")))?;
                // Replies to a reply go to the thread's parent.
                Some(parent.thread_id.unwrap_or(parent.id))
            }
            None => None,
        };
        let id = ws.add_message(LocalMessage {
            id: String::new(),
            channel: channel.clone(),
            user: user.clone(),
            text: text.clone(),
            thread_id: thread_id.clone(),
            ts: now,
            visible_to: None,
            reactions: vec![],
            key: None,
        })?;
        if let Some(parsed) = command::parse_with(&text, &self.version_patterns) {
            let origin = Origin::Local {
                user: uid.clone(),
                channel,
                thread_id,
            };
            self.handle_command(ws, None, &uid, parsed, &origin, now)?;
        }
        Ok(id.to_string())
    }

    /// The person behind a platform user id, per `[users]`.
    fn person(&self, platform: Platform, id: &str) -> Option<UserId> {
        self.cfg.users.keys().find_map(|k| {
            let pid = super::route::platform_id(&self.cfg, k, platform);
            (pid.as_deref() == Some(id)).then(|| k.clone())
        })
    }

    fn unknown_person(platform: Platform, user: &str) -> Changes {
        Changes {
            reply: Some(crate::core::engine::Reply {
                text: format!(
                    "greenlight does not know {platform} user {user}: add `{platform} = \"{user}\"` to your entry under [users]"
                ),
                visibility: Visibility::Ephemeral,
            }),
            ..Default::default()
        }
    }

    fn local_reaction(
        &mut self,
        user: String,
        (message_id, emoji, add): (String, String, bool),
        ws: &mut WriteSet<'_>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let uid = self.known_user(&user)?;
        let emoji = emoji.trim().trim_matches(':').to_string();
        if emoji.is_empty() {
            return Err(ApiError::new(400, "emoji is empty").into());
        }
        let n: u64 = message_id
            .parse()
            .map_err(|_| ApiError::new(404, format!("unknown message_id \"{message_id}\"")))?;
        let mut msg = ws
            .message(n)?
            .ok_or_else(|| ApiError::new(404, format!("unknown message_id \"{message_id}\"")))?;
        let changed = localchat::toggle_reaction(&mut msg, &user, &emoji, add);
        if changed {
            ws.update_message(n, msg.clone());
        }
        let mut ch = Changes::default();
        if changed {
            if let Some(key) = &msg.key {
                ch = self.engine.reaction(&uid, key, &emoji, add, now);
                if let Some(reply) = ch.reply.take() {
                    // A reaction on a finished run's message: answer in that thread.
                    let thread = msg.thread_id.clone().or(Some(msg.id.clone()));
                    localchat::add_bot_message(
                        ws,
                        &msg.channel,
                        thread,
                        &reply.text,
                        reply.visibility.is_ephemeral().then(|| user.clone()),
                        None,
                        now,
                    )?;
                }
            }
        }
        self.stage(ws, ch, None, now)?;
        Ok(changed)
    }
}
