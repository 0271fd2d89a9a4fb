//! The gateway: a serenity `Client` whose event handler hands commands, reactions and
//! mentions to the app.

use super::client::{build_http, checked_gateway, map_serenity_error, one_line};
use super::*;
use crate::chat::inbound::{Answer, ApiError, Handled, Inbound, Inbox, Kind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serenity::builder::{
    CreateInteractionResponse, CreateInteractionResponseMessage, EditInteractionResponse,
};
use serenity::client::{Context, EventHandler};
use serenity::gateway::{ConnectionStage, ShardManager};
use serenity::model::application::{CommandInteraction, Interaction};
use serenity::model::channel::{Message, Reaction};
use serenity::model::gateway::Ready;
use tracing::{debug, info, warn};

// ---------------------------------------------------------------------------------------------
// Gateway
// ---------------------------------------------------------------------------------------------

pub(super) struct Handler {
    inbox: Inbox,
    client: DiscordClient,
    environments: Vec<(String, String)>,
    version_patterns: Vec<String>,
    registered: AtomicBool,
    ledger: Mutex<ReactionLedger>,
}

const NOT_HANDLED: &str = "greenlight could not handle this command.";

impl Handler {
    async fn respond(&self, ctx: &Context, cmd: &CommandInteraction, answer: Answer) {
        let message = CreateInteractionResponseMessage::new()
            .content(message_content(&answer.text))
            .ephemeral(answer.visibility.is_ephemeral())
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

    /// A slash command: built from its typed options (a usage error is answered here, before
    /// any deferral: whether an answer is ephemeral is fixed by the first response), then handed
    /// to the app; its answer is the interaction's response.
    async fn handle_command(&self, ctx: &Context, cmd: CommandInteraction) {
        if cmd.guild_id.is_some_and(|g| g != self.client.guild_id) {
            let answer = Answer::ephemeral("greenlight is not set up for this server.");
            return self.respond(ctx, &cmd, answer).await;
        }
        let command = match interaction_command(&cmd.data, &self.version_patterns) {
            Ok(command) => command,
            Err(usage) => {
                return self
                    .respond(ctx, &cmd, Answer::ephemeral(usage.to_string()))
                    .await
            }
        };
        let inbound = Inbound {
            platform: PLATFORM,
            dedup: Some(cmd.id.to_string()),
            user: cmd.user.id.to_string(),
            channel: cmd.channel_id.to_string(),
            kind: Kind::Command(command),
            response_url: None,
        };
        // Spawned, so that a slow answer is not cancelled by the deadline below.
        let inbox = self.inbox.clone();
        let mut task = tokio::spawn(async move { answer_of(inbox.handle(inbound).await) });
        match tokio::time::timeout(ANSWER_WITHIN, &mut task).await {
            Ok(Ok(answer)) => self.respond(ctx, &cmd, answer).await,
            Ok(Err(e)) => {
                warn!(error = %e, "the Discord command handler failed");
                self.respond(ctx, &cmd, Answer::ephemeral(NOT_HANDLED))
                    .await;
            }
            Err(_) => self.defer_then_edit(ctx, &cmd, task).await,
        }
    }

    /// Too slow for the 3 s window: defer (ephemeral, because the answer may be an error; its
    /// visibility is fixed here), then edit the answer in.
    async fn defer_then_edit(
        &self,
        ctx: &Context,
        cmd: &CommandInteraction,
        task: tokio::task::JoinHandle<Answer>,
    ) {
        warn!(
            "a Discord command took longer than {:?}; deferring",
            ANSWER_WITHIN
        );
        match self.client.timed(cmd.defer_ephemeral(&ctx.http)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return warn!(error = %map_serenity_error(e), "cannot defer a Discord command")
            }
            Err(e) => return warn!(error = %e, "cannot defer a Discord command"),
        }
        let text = match task.await {
            Ok(answer) => answer.text,
            Err(_) => NOT_HANDLED.to_string(),
        };
        let edit = EditInteractionResponse::new()
            .content(message_content(&text))
            .allowed_mentions(allowed_mentions());
        match self.client.timed(cmd.edit_response(&ctx.http, edit)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => warn!(error = %map_serenity_error(e), "cannot edit a deferred answer"),
            Err(e) => warn!(error = %e, "cannot edit a deferred answer"),
        }
    }

    /// A message that mentions the bot with a command in it: handled as the slash command
    /// would be, answered with a reply to the message (a message has no private answer).
    async fn handle_mention(&self, ctx: &Context, message: &Message) {
        if message.guild_id.is_some_and(|g| g != self.client.guild_id) {
            return;
        }
        let Some(inbound) = mention_inbound(message, ctx.cache.current_user().id) else {
            return;
        };
        debug!(?inbound, "Discord mention");
        let Some(answer) = self.inbox.handle(inbound).await.ok().and_then(|h| h.answer) else {
            return;
        };
        let (channel, id) = (message.channel_id.to_string(), message.id.to_string());
        if let Err(e) = self.client.reply(&channel, &id, &answer.text).await {
            warn!(error = %e, "cannot answer a Discord mention");
        }
    }

    /// A reaction, handed to the app (each gateway event is its own task: waiting here holds
    /// nothing else up).
    async fn handle_reaction(&self, ctx: &Context, reaction: &Reaction, added: bool) {
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
            if let Err(e) = self.inbox.handle(inbound).await {
                warn!(error = %e, "a Discord reaction was not handled");
            }
        }
    }
}

/// The answer to send for what the app said (the app is gone: say so).
fn answer_of(handled: Result<Handled, ApiError>) -> Answer {
    match handled {
        Ok(Handled {
            answer: Some(answer),
            ..
        }) => answer,
        Ok(_) => Answer::ephemeral("Done."),
        Err(_) => Answer::ephemeral("greenlight is shutting down; try again in a moment."),
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

    async fn message(&self, ctx: Context, message: Message) {
        self.handle_mention(&ctx, &message).await;
    }

    async fn reaction_add(&self, ctx: Context, reaction: Reaction) {
        self.handle_reaction(&ctx, &reaction, true).await;
    }

    async fn reaction_remove(&self, ctx: Context, reaction: Reaction) {
        self.handle_reaction(&ctx, &reaction, false).await;
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
    pub async fn start(settings: &DiscordSettings, inbox: Inbox) -> Result<Gateway, String> {
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
            inbox,
            client,
            environments: settings.environments.clone(),
            version_patterns: settings.version_patterns.clone(),
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
