//! The one event loop: inputs from chat, drivers and timers go to the core; the changes it
//! returns are written to sled (and flushed) before any action is carried out. IO runs in
//! spawned tasks that only report results back; no business logic lives in them.

use crate::chat::local as localchat;
use crate::config::{Config, MetricsConfig};
use crate::core::analysis::{Measurement, Sample};
use crate::core::command::{self, Command};
use crate::core::run::{Action, Changes, Engine, Outcome, Phase, Timer};
use crate::core::{Colour, EnvName, Platform, RunId, UserId};
use crate::deploy::Driver;
use crate::metrics::scrape::{self, Scraper, Snapshot};
use crate::store::{LocalMessage, OutboxEntry, Store};
use crate::telemetry::{EnvLabels, OutcomeLabels, Telemetry};
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Fault injection for the crash tests: `GREENLIGHT_FAULT=before:switch` (or `after:<action>`,
/// `persisted:<phase>`) makes the bot SIGKILL itself at that point, exactly as a crash would.
fn fault(point: &str) {
    static FAULT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let f = FAULT.get_or_init(|| std::env::var("GREENLIGHT_FAULT").ok());
    if f.as_deref() == Some(point) {
        tracing::warn!(point, "fault injection: killing myself");
        // SAFETY: kill(2) on our own pid.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

fn action_name(a: &Action) -> &'static str {
    match a {
        Action::DeployIdle { .. } => "deploy_idle",
        Action::Verify { .. } => "verify",
        Action::Baseline { .. } => "baseline",
        Action::Switch { .. } => "switch",
        Action::Sample { .. } => "sample",
        Action::SwitchBack { .. } => "switch_back",
        Action::Teardown { .. } => "teardown",
        Action::Observe { .. } => "observe",
    }
}

/// An error answered by the local API: status and one line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

/// Everything the loop reacts to.
pub enum AppEvent {
    LocalPost {
        user: String,
        text: String,
        channel: Option<String>,
        thread_id: Option<String>,
        reply: oneshot::Sender<Result<String, ApiError>>,
    },
    LocalReaction {
        user: String,
        message_id: String,
        emoji: String,
        add: bool,
        /// Ok(true) when the reaction set changed.
        reply: oneshot::Sender<Result<bool, ApiError>>,
    },
    Done {
        run: RunId,
        attempt: u32,
        outcome: Outcome,
    },
    /// The traffic step's answer outside any run (looking again at an unseen environment).
    Observed {
        env: EnvName,
        view: crate::core::run::LiveView,
    },
    /// Something from Discord; a command's answer goes back through `answer`.
    Discord {
        inbound: crate::chat::discord::DiscordInbound,
        answer: Option<oneshot::Sender<crate::chat::discord::CommandAnswer>>,
    },
    /// Something from Slack; `done` is answered once it is handled and written.
    Slack {
        inbound: crate::chat::slack::SlackInbound,
        done: Option<oneshot::Sender<()>>,
    },
}

/// Where a command came from, so its answer goes back there.
enum Origin {
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
    fn platform(&self) -> Platform {
        match self {
            Origin::Local { .. } => Platform::Local,
            Origin::Slack { .. } => Platform::Slack,
            Origin::Discord => Platform::Discord,
        }
    }
}

/// The chat platforms that are active, and how to wake the remote ones' deliverers.
#[derive(Clone, Default)]
pub struct Platforms {
    pub local: bool,
    pub slack: Option<Arc<tokio::sync::Notify>>,
    pub discord: Option<Arc<tokio::sync::Notify>>,
}

pub struct App {
    cfg: Arc<Config>,
    store: Store,
    engine: Engine,
    drivers: BTreeMap<EnvName, Driver>,
    /// Armed timers by monotonic deadline: a wall clock that steps back (or forward) while
    /// the bot runs neither delays nor hurries them.
    timers: BTreeMap<(tokio::time::Instant, u64), Timer>,
    timer_seq: u64,
    tx: mpsc::Sender<AppEvent>,
    http: reqwest::Client,
    scraper: Arc<Scraper>,
    snapshots: Arc<Mutex<HashMap<RunId, Snapshot>>>,
    traffic: HashMap<EnvName, tokio::task::JoinHandle<()>>,
    messages: usize,
    telemetry: Telemetry,
    platforms: Platforms,
    /// Each Prometheus-judged environment's client, built once (a client per sample would
    /// rebuild its connection pool and TLS setup every evaluation).
    prometheus: BTreeMap<EnvName, crate::metrics::prometheus::Prometheus>,
    /// Every environment's `version_pattern`, for the command parser (fixed at start).
    version_patterns: Vec<String>,
}

/// A handle the HTTP server uses to talk to the loop and read the store.
#[derive(Clone)]
pub struct Handle {
    pub tx: mpsc::Sender<AppEvent>,
    pub store: Store,
    pub cfg: Arc<Config>,
    pub telemetry: Telemetry,
    /// Set in Slack HTTP mode: requests to /slack/* must be signed with it.
    pub slack_signing_secret: Option<String>,
}

impl App {
    /// Opens the store, starts the drivers and restores every environment; resumes active runs.
    pub async fn start(
        cfg: Arc<Config>,
        link_base: String,
        telemetry: Telemetry,
        platforms: Platforms,
    ) -> Result<(App, Handle, mpsc::Receiver<AppEvent>)> {
        let store = Store::open(&cfg.bot.data_dir, cfg.bot.cache_bytes)?;
        let mut engine = Engine::new(Arc::new(cfg.rules()), link_base);
        engine.restore(store.envs()?, store.active_runs()?, store.next_run()?);
        let (tx, rx) = mpsc::channel(1024);
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()?;
        let mut app = App {
            cfg: cfg.clone(),
            store: store.clone(),
            engine,
            drivers: BTreeMap::new(),
            timers: BTreeMap::new(),
            timer_seq: 0,
            tx: tx.clone(),
            http,
            scraper: Arc::new(Scraper::new(Duration::from_secs(5))),
            snapshots: Arc::new(Mutex::new(HashMap::new())),
            traffic: HashMap::new(),
            messages: store.message_count(),
            telemetry: telemetry.clone(),
            platforms,
            version_patterns: cfg.version_patterns(),
            prometheus: cfg
                .environments
                .iter()
                .filter_map(|(k, e)| match &e.metrics {
                    MetricsConfig::Prometheus(pc) => {
                        // Validated when the config was loaded.
                        crate::metrics::prometheus::Prometheus::new(pc.clone())
                            .ok()
                            .map(|p| (k.clone(), p))
                    }
                    _ => None,
                })
                .collect(),
        };
        let _ = store.prune_idempotency(Utc::now() - chrono::Duration::hours(24));
        let now = Utc::now();
        for (name, env) in &cfg.environments {
            let driver = Driver::start(env, &cfg.bot.data_dir)
                .await
                .with_context(|| format!("environment {name}"))?;
            let st = app.engine.env(name).cloned().unwrap_or_default();
            let view = driver
                .restore(st.live, st.blue.as_deref(), st.green.as_deref())
                .await
                .with_context(|| format!("restoring environment {name}"))?;
            if let crate::core::run::LiveView::Unseen(why) = &view {
                tracing::warn!(env = %name, reason = %why, "cannot see which colour is live; deploys are refused until it can");
            }
            let url = driver.entry_url();
            app.drivers.insert(name.clone(), driver);
            let active = st.active_run.filter(|id| app.engine.run(*id).is_some());
            let mut ch = match active {
                Some(id) => app.engine.resume(id, view, now),
                None => app.engine.observed(name, view, now),
            };
            ch.extend(app.engine.set_entry_url(name, url, now));
            app.apply(ch, None)?;
        }
        for (at, t) in app.engine.startup_timers() {
            app.arm(at, t);
        }
        app.telemetry
            .active_runs
            .set(app.engine.runs().count() as i64);
        let handle = Handle {
            tx,
            store,
            cfg,
            telemetry,
            slack_signing_secret: None,
        };
        Ok((app, handle, rx))
    }

    /// Runs until `shutdown` resolves or every sender is gone.
    pub async fn run(
        mut self,
        mut rx: mpsc::Receiver<AppEvent>,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<()> {
        tokio::pin!(shutdown);
        loop {
            let next = self.timers.keys().next().map(|(at, _)| *at);
            let sleep = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut shutdown => break,
                ev = rx.recv() => match ev {
                    Some(ev) => self.handle(ev)?,
                    None => break,
                },
                _ = sleep => {
                    let now = Utc::now();
                    let mono = tokio::time::Instant::now();
                    while let Some(entry) = self.timers.first_entry() {
                        if entry.key().0 > mono {
                            break;
                        }
                        let t = entry.remove();
                        let ch = self.engine.timer(t, now);
                        self.apply(ch, None)?;
                    }
                }
            }
        }
        self.store.flush()?;
        for (_, t) in self.traffic.drain() {
            t.abort();
        }
        Ok(())
    }

    fn arm(&mut self, at: DateTime<Utc>, t: Timer) {
        self.timer_seq += 1;
        let wait = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        self.timers
            .insert((tokio::time::Instant::now() + wait, self.timer_seq), t);
    }

    fn handle(&mut self, ev: AppEvent) -> Result<()> {
        let now = Utc::now();
        match ev {
            AppEvent::LocalPost {
                user,
                text,
                channel,
                thread_id,
                reply,
            } => {
                let r = self.local_post(user, text, channel, thread_id, now);
                answer_api(reply, r)?;
            }
            AppEvent::LocalReaction {
                user,
                message_id,
                emoji,
                add,
                reply,
            } => {
                let r = self.local_reaction(user, message_id, emoji, add, now);
                answer_api(reply, r)?;
            }
            AppEvent::Discord { inbound, answer } => {
                let a = self.discord_inbound(inbound, now)?;
                if let (Some(tx), Some(a)) = (answer, a) {
                    let _ = tx.send(a);
                }
            }
            AppEvent::Slack { inbound, done } => {
                self.slack_inbound(inbound, now)?;
                if let Some(d) = done {
                    let _ = d.send(());
                }
            }
            AppEvent::Done {
                run,
                attempt,
                outcome,
            } => {
                let ch = self.engine.result(run, attempt, outcome, now);
                self.apply(ch, None)?;
            }
            AppEvent::Observed { env, view } => {
                let ch = self.engine.observed(&env, view, now);
                self.apply(ch, None)?;
            }
        }
        Ok(())
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

    fn local_post(
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

    /// Parses and carries out a command from any platform; the answer goes back to `origin`
    /// and is also returned (a Discord interaction answers with it).
    fn handle_command(
        &mut self,
        pre: Option<PreWrite>,
        uid: &UserId,
        text: &str,
        origin: &Origin,
        now: DateTime<Utc>,
    ) -> Result<Option<crate::core::run::Reply>> {
        let Some(parsed) = command::parse_with(text, &self.version_patterns) else {
            return Ok(None);
        };
        let started = std::time::Instant::now();
        let ch = match parsed {
            Err(usage) => Changes {
                reply: Some(crate::core::run::Reply {
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
            p.apply(&mut ws, now)?;
        }
        let reply = ch.reply.clone();
        self.commit_changes(ws, ch, Some(origin), now)?;
        self.telemetry
            .ack_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(reply)
    }

    /// Handles one Discord event, once. A command's answer is returned for the interaction.
    fn discord_inbound(
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
        let pre = PreWrite::Idempotency {
            platform: Platform::Discord,
            id: dedup,
        };
        match inbound {
            In::Command { user, text, .. } => {
                let Some(uid) = self.person(Platform::Discord, &user) else {
                    let store = self.store.clone();
                    let mut ws = store.begin();
                    pre.apply(&mut ws, now)?;
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
                        text: mentions_for(&self.cfg, Platform::Discord, &r.text),
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
                pre.apply(&mut ws, now)?;
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
    fn slack_inbound(
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
        let pre = PreWrite::Idempotency {
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
        pre.apply(&mut ws, now)?;
        self.commit_changes(ws, ch, origin.as_ref(), now)
    }

    fn history_text(&self, env: &EnvName, limit: usize) -> Result<crate::core::run::Reply> {
        if !self.cfg.environments.contains_key(env) {
            return Ok(crate::core::run::Reply {
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
        Ok(crate::core::run::Reply {
            text,
            private: false,
        })
    }

    fn local_reaction(
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

    /// Persists a step's changes (flushed), then arms timers and starts actions.
    fn apply(&mut self, ch: Changes, origin: Option<&Origin>) -> Result<()> {
        let store = self.store.clone();
        let ws = store.begin();
        self.commit_changes(ws, ch, origin, Utc::now())
    }

    fn commit_changes(
        &mut self,
        mut ws: crate::store::WriteSet<'_>,
        ch: Changes,
        origin: Option<&Origin>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        for r in &ch.runs {
            ws.put_run(r);
        }
        for (k, st) in &ch.envs {
            ws.put_env(k, st);
        }
        for e in &ch.events {
            ws.put_event(e)?;
        }
        if let Some(n) = ch.next_run {
            ws.put_next_run(n);
        }
        for p in &ch.posts {
            // A run's thread lives on the platform its command came from; lifecycle and
            // incident messages go to every configured platform.
            let thread_of = p
                .thread
                .or(p
                    .key
                    .filter(|k| matches!(k, crate::core::message::MsgKey::Checklist(_))))
                .map(|k| k.run());
            let origin_of = |id: RunId| -> Platform {
                ch.runs
                    .iter()
                    .find(|r| r.id == id)
                    .map(|r| r.origin)
                    .or_else(|| self.engine.run(id).map(|r| r.origin))
                    .unwrap_or_default()
            };
            let wants = |platform: Platform| thread_of.is_none_or(|id| origin_of(id) == platform);
            if self.platforms.local && wants(Platform::Local) {
                localchat::render_post(&mut ws, &self.cfg, p, now)?;
            }
            if self.platforms.discord.is_some() && wants(Platform::Discord) {
                if let Some(channel) = discord_channel(&self.cfg, p) {
                    ws.push_outbox(&OutboxEntry {
                        platform: Platform::Discord,
                        channel,
                        text: mentions_for(&self.cfg, Platform::Discord, &p.text),
                        key: p.key.map(|k| k.to_string()),
                        thread_key: p.thread.map(|k| k.to_string()),
                        edit: p.edit,
                        buttons: false,
                        respond_url: None,
                        ephemeral_to: None,
                    })?;
                }
            }
            // A post meant for one person reaches Slack only as an ephemeral message to them.
            let slack_to = match &p.to {
                Some(u) => match self.cfg.users.get(u).and_then(|x| x.slack.clone()) {
                    Some(id) => Some(id),
                    None => continue,
                },
                None => None,
            };
            if self.platforms.slack.is_some() && wants(Platform::Slack) {
                if let Some(channel) = slack_channel(&self.cfg, p) {
                    let buttons = matches!(p.key, Some(crate::core::message::MsgKey::Item(..)));
                    ws.push_outbox(&OutboxEntry {
                        platform: Platform::Slack,
                        channel,
                        text: mentions_for(&self.cfg, Platform::Slack, &p.text),
                        key: p.key.map(|k| k.to_string()),
                        thread_key: p.thread.map(|k| k.to_string()),
                        edit: p.edit,
                        buttons,
                        respond_url: None,
                        ephemeral_to: slack_to,
                    })?;
                }
            }
        }
        match (&ch.reply, origin) {
            (
                Some(reply),
                Some(Origin::Local {
                    user,
                    channel,
                    thread_id,
                }),
            ) => {
                let visible = reply.private.then(|| user.0.clone());
                localchat::add_bot_message(
                    &mut ws,
                    channel,
                    thread_id.clone(),
                    &reply.text,
                    visible,
                    None,
                    now,
                )?;
            }
            (
                Some(reply),
                Some(Origin::Slack {
                    channel,
                    response_url,
                    user,
                    thread_key,
                }),
            ) => {
                // No response URL: a post in the thread, or chat.postEphemeral when private.
                let url = Some(response_url.clone()).filter(|u| !u.is_empty());
                ws.push_outbox(&OutboxEntry {
                    platform: Platform::Slack,
                    channel: channel.clone(),
                    text: mentions_for(&self.cfg, Platform::Slack, &reply.text),
                    key: None,
                    thread_key: thread_key.clone().filter(|_| url.is_none()),
                    edit: false,
                    buttons: false,
                    respond_url: url,
                    ephemeral_to: reply.private.then(|| user.clone()),
                })?;
            }
            _ => {}
        }
        let added = ws.new_messages;
        let outboxed = ws.outboxed;
        ws.commit().context("writing to the store")?;
        if outboxed > 0 {
            for n in [&self.platforms.slack, &self.platforms.discord]
                .into_iter()
                .flatten()
            {
                n.notify_one();
            }
        }
        self.messages += added;
        if self.messages > self.cfg.bot.local_retention + 500 {
            self.store.trim_messages(self.cfg.bot.local_retention)?;
            self.messages = self.store.message_count();
        }
        // Written: now act.
        for r in &ch.runs {
            if r.phase.is_terminal() {
                self.telemetry
                    .runs
                    .get_or_create(&OutcomeLabels {
                        env: r.env.0.clone(),
                        outcome: r.phase.label().replace(' ', "_"),
                    })
                    .inc();
                if r.phase == Phase::RolledBack {
                    self.telemetry
                        .rollbacks
                        .get_or_create(&EnvLabels {
                            env: r.env.0.clone(),
                        })
                        .inc();
                }
            }
        }
        self.telemetry
            .active_runs
            .set(self.engine.runs().count() as i64);
        for r in &ch.runs {
            fault(&format!(
                "persisted:{}",
                serde_json::to_value(r.phase)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default()
            ));
        }
        for (at, t) in ch.timers {
            self.arm(at, t);
        }
        for r in &ch.runs {
            self.traffic_for(r.env.clone(), r.phase);
            if r.phase.is_terminal() {
                self.snapshots.lock().expect("snapshots").remove(&r.id);
            }
        }
        for a in ch.actions {
            self.spawn(a);
        }
        Ok(())
    }

    /// Steady synthetic traffic through the demo router while a run is between verification
    /// and stable, so that the baseline and the monitoring have data.
    fn traffic_for(&mut self, env: EnvName, phase: Phase) {
        let Some(Driver::Local(l)) = self.drivers.get(&env) else {
            return;
        };
        let wanted = matches!(
            phase,
            Phase::VerifyingIdle
                | Phase::Baseline
                | Phase::Switching
                | Phase::Monitoring
                | Phase::RollingBack
        );
        if wanted {
            if !self.traffic.contains_key(&env) {
                let url = l.router_url().to_string();
                let client = self.http.clone();
                self.traffic
                    .insert(env, tokio::spawn(localchat::synthetic_traffic(client, url)));
            }
        } else if let Some(t) = self.traffic.remove(&env) {
            t.abort();
        }
    }

    fn spawn(&self, action: Action) {
        let tx = self.tx.clone();
        let cfg = self.cfg.clone();
        let http = self.http.clone();
        let scraper = self.scraper.clone();
        let prometheus = match &action {
            Action::Baseline { env, .. } | Action::Sample { env, .. } => {
                self.prometheus.get(env).cloned()
            }
            _ => None,
        };
        let snapshots = self.snapshots.clone();
        let env_name = match &action {
            Action::DeployIdle { env, .. }
            | Action::Verify { env, .. }
            | Action::Baseline { env, .. }
            | Action::Switch { env, .. }
            | Action::Sample { env, .. }
            | Action::SwitchBack { env, .. }
            | Action::Teardown { env, .. }
            | Action::Observe { env, .. } => env.clone(),
        };
        let Some(driver) = self.drivers.get(&env_name).cloned() else {
            return;
        };
        tracing::info!(env = %env_name, action = ?action, "action");
        let name = action_name(&action);
        let run_version = match &action {
            Action::Verify { run, .. } | Action::Sample { run, .. } => {
                self.engine.run(*run).map(|r| r.version.clone())
            }
            _ => None,
        };
        fault(&format!("before:{name}"));
        tokio::spawn(async move {
            let env = &cfg.environments[&env_name];
            let (run, attempt, outcome) = match action {
                Action::DeployIdle {
                    run,
                    attempt,
                    colour,
                    version,
                    ..
                } => (
                    run,
                    attempt,
                    Outcome::DeployIdle(driver.deploy(colour, &version).await),
                ),
                Action::Verify {
                    run,
                    attempt,
                    colour,
                    ..
                } => (
                    run,
                    attempt,
                    Outcome::Verify(
                        verify(&http, &driver, env, colour, run_version.as_deref()).await,
                    ),
                ),
                Action::Baseline {
                    run,
                    attempt,
                    colour,
                    ..
                } => {
                    let window = env
                        .monitor
                        .interval
                        .clamp(Duration::from_secs(1), Duration::from_secs(5));
                    (
                        run,
                        attempt,
                        Outcome::Baseline(
                            sample(
                                &scraper,
                                prometheus.as_ref(),
                                &driver,
                                env,
                                colour,
                                None,
                                window,
                            )
                            .await
                            .0,
                        ),
                    )
                }
                Action::Switch {
                    run,
                    attempt,
                    to,
                    from,
                    ..
                } => {
                    let r = driver.switch(to, from).await;
                    if r.is_ok() {
                        if let (MetricsConfig::Scrape { path, match_colour }, Some(url)) =
                            (&env.metrics, driver.url(to))
                        {
                            let label = match_colour.then_some(to.as_str());
                            if let Ok(s) = scraper.scrape(&format!("{url}{path}"), label).await {
                                snapshots.lock().expect("snapshots").insert(run, s);
                            }
                        }
                    }
                    (run, attempt, Outcome::Switch(r))
                }
                Action::Sample {
                    run,
                    attempt,
                    colour,
                    ..
                } => {
                    let critical = env.smoke.iter().any(|s| s.critical);
                    // The critical path runs beside the metrics (a slow one, as every step of a
                    // slow release is, must not hold back the metrics verdict) and reports right
                    // after this check's metrics, so a breach in them always names the reason.
                    let smoke = critical.then(|| {
                        let (http, driver, cfg, env_name, version) = (
                            http.clone(),
                            driver.clone(),
                            cfg.clone(),
                            env_name.clone(),
                            run_version.clone(),
                        );
                        tokio::spawn(async move {
                            let env = &cfg.environments[&env_name];
                            critical_path(&http, &driver, env, colour, version.as_deref()).await
                        })
                    });
                    let prev = snapshots.lock().expect("snapshots").get(&run).cloned();
                    let (s, snap) = sample(
                        &scraper,
                        prometheus.as_ref(),
                        &driver,
                        env,
                        colour,
                        prev,
                        Duration::from_secs(1),
                    )
                    .await;
                    if let Some(snap) = snap {
                        snapshots.lock().expect("snapshots").insert(run, snap);
                    }
                    match smoke {
                        Some(handle) => {
                            let _ = tx
                                .send(AppEvent::Done {
                                    run,
                                    attempt,
                                    outcome: Outcome::Measured(s),
                                })
                                .await;
                            let r = handle.await.unwrap_or_else(|e| {
                                Err(format!("critical path check failed: {e}"))
                            });
                            (run, attempt, Outcome::CriticalPath(r))
                        }
                        None => (run, attempt, Outcome::Sample(s, None)),
                    }
                }
                Action::SwitchBack {
                    run,
                    attempt,
                    to,
                    from,
                    ..
                } => (
                    run,
                    attempt,
                    Outcome::SwitchBack(driver.switch_back(to, from).await),
                ),
                Action::Teardown { colour, .. } => {
                    driver.teardown(colour).await;
                    return;
                }
                Action::Observe { env, run } => {
                    let view = driver.observe().await;
                    match run {
                        Some((run, attempt)) => (run, attempt, Outcome::Observed(view)),
                        None => {
                            let _ = tx.send(AppEvent::Observed { env, view }).await;
                            return;
                        }
                    }
                }
            };
            fault(&format!("after:{name}"));
            let _ = tx
                .send(AppEvent::Done {
                    run,
                    attempt,
                    outcome,
                })
                .await;
        });
    }
}

/// Values smoke steps can use: the configured ones plus `{version}`, `{colour}`, `{env}`.
fn smoke_vars(
    env: &crate::config::EnvConfig,
    colour: Colour,
    version: Option<&str>,
) -> BTreeMap<String, String> {
    let mut v = env.smoke_vars.clone();
    v.insert("colour".into(), colour.to_string());
    v.insert("env".into(), env.name.0.clone());
    if let Some(ver) = version {
        v.insert("version".into(), ver.to_string());
    }
    v
}

/// Health check polling, then every smoke step, against one colour.
async fn verify(
    http: &reqwest::Client,
    driver: &Driver,
    env: &crate::config::EnvConfig,
    colour: Colour,
    version: Option<&str>,
) -> Result<String, String> {
    let Some(url) = driver.url(colour) else {
        return Err(format!("{colour} has no address to check"));
    };
    let waited = crate::verify::wait_healthy(
        http,
        &format!("{url}{}", env.health.path),
        env.health.timeout,
        env.health.interval,
    )
    .await
    .map_err(|e| e.to_string())?;
    let reports = crate::verify::run_smoke(
        http,
        &url,
        &env.smoke,
        &smoke_vars(env, colour, version),
        Duration::from_secs(10),
        &env.secrets,
    )
    .await
    .map_err(|f| f.to_string())?;
    let steps: Vec<String> = reports
        .iter()
        .map(|r| format!("{} ({} in {} ms)", r.name, r.status, r.millis))
        .collect();
    Ok(format!(
        "healthy after {} ms; smoke tests passed: {}",
        waited.as_millis(),
        if steps.is_empty() {
            "none configured".into()
        } else {
            steps.join(", ")
        }
    ))
}

/// The smoke steps up to and including the last critical one (earlier steps supply captures).
async fn critical_path(
    http: &reqwest::Client,
    driver: &Driver,
    env: &crate::config::EnvConfig,
    colour: Colour,
    version: Option<&str>,
) -> Result<(), String> {
    let Some(url) = driver.url(colour) else {
        return Err(format!("{colour} is not running"));
    };
    let last = env
        .smoke
        .iter()
        .rposition(|s| s.critical)
        .map(|i| i + 1)
        .unwrap_or(0);
    crate::verify::run_smoke(
        http,
        &url,
        &env.smoke[..last],
        &smoke_vars(env, colour, version),
        Duration::from_secs(5),
        &env.secrets,
    )
    .await
    .map(|_| ())
    .map_err(|f| f.to_string())
}

/// Measures a colour over a window: from `prev` (the last snapshot) to now, or over `window`.
async fn sample(
    scraper: &Scraper,
    prometheus: Option<&crate::metrics::prometheus::Prometheus>,
    driver: &Driver,
    env: &crate::config::EnvConfig,
    colour: Colour,
    prev: Option<Snapshot>,
    window: Duration,
) -> (Sample, Option<Snapshot>) {
    let (path, label) = match &env.metrics {
        MetricsConfig::Scrape { path, match_colour } => {
            (path, match_colour.then_some(colour.as_str()))
        }
        MetricsConfig::Prometheus(_) => {
            // PromQL rates over the configured window: no deltas to keep.
            let s = match prometheus {
                Some(p) => p.sample(colour.as_str(), &env.name.0).await,
                None => Sample::Unavailable("prometheus: no client for this environment".into()),
            };
            return (s, None);
        }
        MetricsConfig::None => {
            return (
                Sample::Unavailable("no metrics provider is configured".into()),
                None,
            )
        }
    };
    let Some(url) = driver.url(colour) else {
        return (
            Sample::Unavailable(format!("{colour} is not running")),
            None,
        );
    };
    let url = format!("{url}{path}");
    let prev = match prev {
        Some(p) => p,
        None => match scraper.scrape(&url, label).await {
            Ok(p) => {
                tokio::time::sleep(window).await;
                p
            }
            Err(e) => return (Sample::Unavailable(e.to_string()), None),
        },
    };
    match scraper.scrape(&url, label).await {
        Ok(cur) => {
            if cur.samples == 0 {
                return (
                    Sample::Unavailable(format!("{url} exposes no request metrics for {colour}")),
                    Some(cur),
                );
            }
            let w = scrape::window(&prev, &cur);
            (
                Sample::Data(Measurement {
                    requests: w.requests,
                    error_rate: w.error_rate,
                    p99_seconds: w.p99_seconds,
                }),
                Some(cur),
            )
        }
        Err(e) => (Sample::Unavailable(e.to_string()), None),
    }
}

/// Answers a local API call: an `ApiError` goes back to the caller; any other error is the
/// store failing, which stops the loop (after telling the caller).
fn answer_api<T>(reply: oneshot::Sender<Result<T, ApiError>>, r: Result<T>) -> Result<()> {
    match r {
        Ok(v) => {
            let _ = reply.send(Ok(v));
            Ok(())
        }
        Err(e) => match e.downcast::<ApiError>() {
            Ok(api) => {
                let _ = reply.send(Err(api));
                Ok(())
            }
            Err(e) => {
                let _ = reply.send(Err(ApiError::new(500, "internal error")));
                Err(e)
            }
        },
    }
}

/// Writes that must land in the same batch as a step's changes (a platform event's id, so that
/// a redelivery is recognised exactly when the step it caused was written).
enum PreWrite {
    Idempotency { platform: Platform, id: String },
}

impl PreWrite {
    fn apply(self, ws: &mut crate::store::WriteSet<'_>, now: DateTime<Utc>) -> Result<()> {
        match self {
            PreWrite::Idempotency { platform, id } => {
                ws.first_time(platform, &id, now)?;
            }
        }
        Ok(())
    }
}

/// The Slack channel of a post's room in its environment (incidents and announcements fall
/// back to the deploys channel).
fn slack_channel(cfg: &Config, p: &crate::core::message::Post) -> Option<String> {
    let ch = &cfg.env(&p.env)?.channels;
    match p.room {
        crate::core::message::Room::Deploys | crate::core::message::Room::Announce => {
            ch.slack_channel.clone()
        }
        crate::core::message::Room::Incidents => ch
            .slack_incident_channel
            .clone()
            .or_else(|| ch.slack_channel.clone()),
    }
}

/// The Discord channel of a post's room (incidents and announcements fall back to the deploys
/// channel).
fn discord_channel(cfg: &Config, p: &crate::core::message::Post) -> Option<String> {
    let ch = &cfg.env(&p.env)?.channels;
    match p.room {
        crate::core::message::Room::Deploys | crate::core::message::Room::Announce => {
            ch.discord_channel.clone()
        }
        crate::core::message::Room::Incidents => ch
            .discord_incident_channel
            .clone()
            .or_else(|| ch.discord_channel.clone()),
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

/// Renders `<@person>` mentions with the platform's user ids (`<@U123>`), or `@person` when
/// the person has no id there.
fn mentions_for(cfg: &Config, platform: Platform, text: &str) -> String {
    crate::core::message::render_mentions(text, |name| {
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
