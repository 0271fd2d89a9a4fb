//! A command from any platform: parsed, handed to the engine (or answered here: usage errors
//! and `history`, which reads the store), and committed with the event's id if it has one.

use super::inbound::{Dedup, Origin};
use super::App;
use crate::core::command::{self, Command};
use crate::core::run::{Changes, Reply};
use crate::core::{EnvName, UserId};
use anyhow::Result;
use chrono::{DateTime, Utc};

impl App {
    /// Parses and carries out a command from any platform; the answer goes back to `origin`
    /// and is also returned (a Discord interaction answers with it).
    pub(super) fn handle_command(
        &mut self,
        pre: Option<Dedup>,
        uid: &UserId,
        text: &str,
        origin: &Origin,
        now: DateTime<Utc>,
    ) -> Result<Option<Reply>> {
        let Some(parsed) = command::parse_with(text, &self.version_patterns) else {
            return Ok(None);
        };
        let started = std::time::Instant::now();
        let ch = match parsed {
            Err(usage) => Changes {
                reply: Some(Reply {
                    text: usage.to_string(),
                    private: true,
                }),
                ..Default::default()
            },
            Ok(Command::History { env, limit }) => Changes {
                reply: Some(self.history_text(&env, limit)?),
                ..Default::default()
            },
            Ok(cmd) => {
                tracing::info!(user = %uid, command = %text, platform = %origin.platform(), "command");
                self.engine.command_from(uid, cmd, origin.platform(), now)
            }
        };
        let store = self.store.clone();
        let mut ws = store.begin();
        if let Some(p) = pre {
            p.write(&mut ws, now)?;
        }
        let reply = ch.reply.clone();
        self.commit_changes(ws, ch, Some(origin), now)?;
        self.telemetry
            .ack_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(reply)
    }

    /// The last runs on an environment, newest first.
    fn history_text(&self, env: &EnvName, limit: usize) -> Result<Reply> {
        if !self.cfg.environments.contains_key(env) {
            return Ok(Reply {
                text: format!(
                    "unknown environment \"{env}\" (known: {}). Usage: {}",
                    self.cfg.env_names(),
                    command::USAGE_HISTORY
                ),
                private: true,
            });
        }
        let runs = self.store.history(env, limit)?;
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
            private: false,
        })
    }
}
