//! The gateway: a serenity `Client` whose event handler hands commands, reactions and
//! mentions to the app.

use super::client::{build_http, checked_gateway, map_serenity_error, one_line};
use super::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serenity::builder::{
    CreateInteractionResponse, CreateInteractionResponseMessage, EditInteractionResponse,
};
use serenity::client::{Context, EventHandler};
use serenity::gateway::{ConnectionStage, ShardManager};
use serenity::model::application::{CommandInteraction, Interaction};
use serenity::model::channel::Reaction;
use serenity::model::gateway::Ready;
use tracing::{debug, info, warn};

// ---------------------------------------------------------------------------------------------
// Gateway
// ---------------------------------------------------------------------------------------------

pub(super) struct Handler {
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
