//! A command from any platform: parsed, handed to the engine (or answered here: usage errors
//! and `history`, which reads the store), and committed with the event's id if it has one.

use super::inbound::Dedup;
use super::route::Origin;
use super::App;
use crate::core::command::{Command, UsageError};
use crate::core::engine::{Changes, Reply};
use crate::core::message::Visibility;
use crate::core::{EnvName, Platform, UserId};
use crate::store::WriteSet;
use anyhow::Result;
use chrono::{DateTime, Utc};

impl App {
    /// Carries out a command from any platform (or answers its usage error) into the batch
    /// `ws`; the answer goes back to `origin` and is also returned (Discord answers with it).
    pub(super) fn handle_command(
        &mut self,
        ws: &mut WriteSet<'_>,
        pre: Option<Dedup>,
        uid: &UserId,
        parsed: Result<Command, UsageError>,
        origin: &Origin,
        now: DateTime<Utc>,
    ) -> Result<Option<Reply>> {
        let started = std::time::Instant::now();
        let ch = match parsed {
            Err(usage) => Changes {
                reply: Some(Reply {
                    text: usage.to_string(),
                    visibility: Visibility::Ephemeral,
                }),
                ..Default::default()
            },
            Ok(Command::History { env, limit }) => Changes {
                reply: Some(self.history_text(ws, &env, limit, origin.platform())?),
                ..Default::default()
            },
            Ok(cmd) => {
                tracing::info!(user = %uid, command = ?cmd, platform = %origin.platform(), "command");
                self.engine.command_from(uid, cmd, origin.platform(), now)
            }
        };
        if let Some(p) = pre {
            p.write(ws, now)?;
        }
        let reply = ch.reply.clone();
        self.stage(ws, ch, Some(origin), now)?;
        self.after.push(super::AfterFlush::Acked(started));
        Ok(reply)
    }

    /// The last runs on an environment, newest first (with those of the batch being built).
    fn history_text(
        &self,
        ws: &WriteSet<'_>,
        env: &EnvName,
        limit: usize,
        platform: Platform,
    ) -> Result<Reply> {
        if !self.cfg.environments.contains_key(env) {
            let history = Command::History {
                env: env.clone(),
                limit,
            };
            return Ok(Reply {
                text: format!(
                    "unknown environment \"{env}\" (known: {}). Usage: {}",
                    self.cfg.env_names(),
                    history.usage_on(platform)
                ),
                visibility: Visibility::Ephemeral,
            });
        }
        let runs = ws.history(env, limit)?;
        let tz = self.cfg.bot.timezone;
        let text = if runs.is_empty() {
            format!("No runs on {env} yet.")
        } else {
            let mut s = format!("Last {} runs on {env}:", runs.len());
            for r in runs {
                s.push_str("\n• ");
                s.push_str(&r.summary_line(tz));
            }
            s
        };
        Ok(Reply {
            text,
            visibility: Visibility::InChannel,
        })
    }
}
