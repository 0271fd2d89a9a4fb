//! Inbound chat handling: the local channel's posts and reactions, Slack's and Discord's
//! events, and who the person behind a platform user id is. Each handler writes the event's
//! effects (and, for a remote platform, its id, so a redelivery acts once) in one batch.

use super::{ApiError, App, AppEvent};
use crate::chat::local as localchat;
use crate::core::command;
use crate::core::run::Changes;
use crate::core::{Platform, UserId};
use crate::store::LocalMessage;
use anyhow::Result;
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

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
    /// A Discord interaction: the answer is returned to the gateway handler, which responds.
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

/// A platform event's id, written in the same batch as the step it caused, so that a
/// redelivery is recognised exactly when that step was written.
pub(super) struct Dedup {
    pub(super) platform: Platform,
    pub(super) id: String,
}

impl Dedup {
    pub(super) fn write(
        self,
        ws: &mut crate::store::WriteSet<'_>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        ws.first_time(self.platform, &self.id, now)?;
        Ok(())
    }
}

impl App {
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

    pub(super) fn local_post(
        &mut self,
        user: String,
        text: String,
        channel: Option<String>,
        thread_id: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<String> {
        let uid = self.known_user(&user)?;
        let channel = channel.unwrap_or_else(|| "deploys".to_string());
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
                let parent = self
                    .store
                    .message(n)?
                    .ok_or_else(|| ApiError::new(404, format!("unknown thread_id \"{t}\"")))?;
                // Replies to a reply go to the thread's parent.
                Some(parent.thread_id.unwrap_or(parent.id))
            }
            None => None,
        };
        let mut ws = self.store.begin();
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
        ws.commit()?;
        self.messages += 1;
        if command::is_command(&text) {
            let origin = Origin::Local {
                user: uid.clone(),
                channel,
                thread_id,
            };
            self.handle_command(None, &uid, &text, &origin, now)?;
        }
        Ok(id.to_string())
    }

    /// Handles one Discord event, once. A command's answer is returned for the interaction.
    pub(super) fn discord_inbound(
        &mut self,
        inbound: crate::chat::discord::DiscordInbound,
        now: DateTime<Utc>,
    ) -> Result<Option<crate::chat::discord::CommandAnswer>> {
        use crate::chat::discord::{CommandAnswer, DiscordInbound as In};
        let dedup = match &inbound {
            In::Command { dedup, .. } | In::Reaction { dedup, .. } => dedup.clone(),
        };
        if self.store.seen(Platform::Discord, &dedup)? {
            tracing::info!(%dedup, "discord redelivery ignored");
            return Ok(Some(CommandAnswer {
                text: "This was already handled.".into(),
                ephemeral: true,
            }));
        }
        let pre = Dedup {
            platform: Platform::Discord,
            id: dedup,
        };
        match inbound {
            In::Command { user, text, .. } => {
                let Some(uid) = self.person(Platform::Discord, &user) else {
                    let store = self.store.clone();
                    let mut ws = store.begin();
                    pre.write(&mut ws, now)?;
                    let ch = Self::unknown_person(Platform::Discord, &user);
                    let r = ch.reply.clone();
                    self.commit_changes(ws, ch, Some(&Origin::Discord), now)?;
                    return Ok(r.map(|r| CommandAnswer {
                        text: r.text,
                        ephemeral: true,
                    }));
                };
                let reply = self.handle_command(Some(pre), &uid, &text, &Origin::Discord, now)?;
                Ok(Some(match reply {
                    Some(r) => CommandAnswer {
                        text: super::route::mentions_for(&self.cfg, Platform::Discord, &r.text),
                        ephemeral: r.private,
                    },
                    None => CommandAnswer {
                        text: "Done.".into(),
                        ephemeral: true,
                    },
                }))
            }
            In::Reaction {
                user,
                channel,
                message_id,
                emoji,
                added,
                ..
            } => {
                let key = self
                    .store
                    .key_of(Platform::Discord, &channel, &message_id)?;
                let ch = match (key, self.person(Platform::Discord, &user)) {
                    (Some(key), Some(uid)) => self.engine.reaction(&uid, &key, &emoji, added, now),
                    _ => Changes::default(),
                };
                let store = self.store.clone();
                let mut ws = store.begin();
                pre.write(&mut ws, now)?;
                self.commit_changes(ws, ch, None, now)?;
                Ok(None)
            }
        }
    }

    /// The person behind a platform user id, per `[users]`.
    fn person(&self, platform: Platform, id: &str) -> Option<UserId> {
        self.cfg.users.iter().find_map(|(k, u)| {
            let pid = match platform {
                Platform::Slack => u.slack.as_deref(),
                Platform::Discord => u.discord.as_deref(),
                _ => None,
            };
            (pid == Some(id)).then(|| k.clone())
        })
    }

    fn unknown_person(platform: Platform, user: &str) -> Changes {
        Changes {
            reply: Some(crate::core::run::Reply {
                text: format!(
                    "greenlight does not know {platform} user {user}: add `{platform} = \"{user}\"` to your entry under [users]"
                ),
                private: true,
            }),
            ..Default::default()
        }
    }

    /// Handles one Slack event, once: its id is written in the same batch as its effects.
    pub(super) fn slack_inbound(
        &mut self,
        inbound: crate::chat::slack::SlackInbound,
        now: DateTime<Utc>,
    ) -> Result<()> {
        use crate::chat::slack::SlackInbound as In;
        let dedup = match &inbound {
            In::Command { dedup, .. } | In::Reaction { dedup, .. } | In::Action { dedup, .. } => {
                dedup.clone()
            }
        };
        if self.store.seen(Platform::Slack, &dedup)? {
            tracing::info!(%dedup, "slack redelivery ignored");
            return Ok(());
        }
        let pre = Dedup {
            platform: Platform::Slack,
            id: dedup,
        };
        let (ch, origin) = match inbound {
            In::Command {
                user,
                channel,
                command,
                text,
                response_url,
                ..
            } => {
                let origin = Origin::Slack {
                    channel,
                    response_url,
                    user: user.clone(),
                    thread_key: None,
                };
                match self.person(Platform::Slack, &user) {
                    Some(uid) => {
                        self.handle_command(
                            Some(pre),
                            &uid,
                            &format!("{command} {text}"),
                            &origin,
                            now,
                        )?;
                        return Ok(());
                    }
                    None => (Self::unknown_person(Platform::Slack, &user), Some(origin)),
                }
            }
            In::Reaction {
                user,
                channel,
                ts,
                reaction,
                added,
                ..
            } => {
                let key = self.store.key_of(Platform::Slack, &channel, &ts)?;
                let ch = match (key, self.person(Platform::Slack, &user)) {
                    (Some(key), Some(uid)) => {
                        self.engine.reaction(&uid, &key, &reaction, added, now)
                    }
                    _ => Changes::default(),
                };
                (ch, None)
            }
            In::Action {
                user,
                channel,
                message_ts,
                action_id,
                response_url,
                ..
            } => {
                let key = self.store.key_of(Platform::Slack, &channel, &message_ts)?;
                let thread_key = key
                    .as_deref()
                    .and_then(crate::core::message::MsgKey::parse)
                    .map(|k| crate::core::message::MsgKey::Checklist(k.run()).to_string());
                let origin = Origin::Slack {
                    channel,
                    response_url,
                    user: user.clone(),
                    thread_key,
                };
                let ch = match (key, self.person(Platform::Slack, &user)) {
                    (Some(key), Some(uid)) => {
                        self.engine
                            .click(&uid, &key, action_id == "greenlight_approve", now)
                    }
                    (_, None) => Self::unknown_person(Platform::Slack, &user),
                    _ => Changes::default(),
                };
                (ch, Some(origin))
            }
        };
        let store = self.store.clone();
        let mut ws = store.begin();
        pre.write(&mut ws, now)?;
        self.commit_changes(ws, ch, origin.as_ref(), now)
    }

    pub(super) fn local_reaction(
        &mut self,
        user: String,
        message_id: String,
        emoji: String,
        add: bool,
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
        let mut msg = self
            .store
            .message(n)?
            .ok_or_else(|| ApiError::new(404, format!("unknown message_id \"{message_id}\"")))?;
        let changed = localchat::toggle_reaction(&mut msg, &user, &emoji, add);
        let store = self.store.clone();
        let mut ws = store.begin();
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
                        &mut ws,
                        &msg.channel,
                        thread,
                        &reply.text,
                        reply.private.then(|| user.clone()),
                        None,
                        now,
                    )?;
                }
            }
        }
        self.commit_changes(ws, ch, None, now)?;
        Ok(changed)
    }
}

/// The app's side of the Discord gateway: commands are handled by the loop and answered,
/// reactions are handed over at once.
pub struct DiscordBridge {
    pub tx: mpsc::Sender<AppEvent>,
}

impl crate::chat::discord::DiscordSink for DiscordBridge {
    fn on_command(
        &self,
        inbound: crate::chat::discord::DiscordInbound,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = crate::chat::discord::CommandAnswer> + Send>,
    > {
        let tx = self.tx.clone();
        Box::pin(async move {
            let (a_tx, a_rx) = oneshot::channel();
            let failed = crate::chat::discord::CommandAnswer {
                text: "greenlight is shutting down; try again in a moment.".into(),
                ephemeral: true,
            };
            if tx
                .send(AppEvent::Discord {
                    inbound,
                    answer: Some(a_tx),
                })
                .await
                .is_err()
            {
                return failed;
            }
            a_rx.await.unwrap_or(failed)
        })
    }

    fn on_reaction(&self, inbound: crate::chat::discord::DiscordInbound) {
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let _ = tx
                .send(AppEvent::Discord {
                    inbound,
                    answer: None,
                })
                .await;
        });
    }
}
