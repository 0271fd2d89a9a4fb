//! The one event loop: inputs from chat, drivers and timers go to the core; the changes it
//! returns are written to sled (and flushed) before any action is carried out or any input
//! acknowledged. The inputs waiting when a commit starts share its batch and its flush (group
//! commit). IO runs in spawned tasks that only report results back; no business logic lives
//! in them.
//!
//! Rooms: `mod.rs` the loop and timers; `commit.rs` group commit, then act; `command.rs` a
//! command from any platform; `inbound.rs` chat events; `route.rs` a step's messages per
//! platform; `act.rs` running an action.

mod act;
mod command;
mod commit;
mod inbound;
mod route;

use crate::config::Config;
use crate::core::engine::{Engine, Outcome, Phase, Run, Timer};
use crate::core::{EnvName, RunId};
use crate::deploy::Driver;
use crate::store::{Store, WriteSet};
use crate::telemetry::{EnvLabels, OutcomeLabels, Telemetry};
use act::Actor;
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use commit::AfterFlush;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

use crate::telemetry::fault;

pub use crate::chat::ApiError;

/// Everything the loop reacts to.
pub enum AppEvent {
    /// Something a person did on a chat platform; the answer goes back through `reply` once
    /// it is handled and written.
    Chat {
        inbound: crate::chat::Inbound,
        reply: crate::chat::Reply,
    },
    Done {
        run: RunId,
        attempt: u32,
        outcome: Outcome,
    },
    /// A step reported progress (a workflow run's link) while it ran.
    Note {
        run: RunId,
        attempt: u32,
        text: String,
    },
    /// The traffic step's answer outside any run (looking again at an unseen environment).
    Observed {
        env: EnvName,
        view: crate::core::engine::LiveView,
    },
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
    /// Armed timers by monotonic deadline: a wall clock that steps back (or forward) while
    /// the bot runs neither delays nor hurries them.
    timers: BTreeMap<(tokio::time::Instant, u64), Timer>,
    timer_seq: u64,
    /// The drivers and metrics clients, and the tasks that carry out actions.
    act: Actor,
    messages: usize,
    telemetry: Telemetry,
    platforms: Platforms,
    /// Every environment's `version_pattern`, for the command parser (fixed at start).
    version_patterns: Vec<String>,
    /// What the inputs of the commit being built lead to once it is flushed, in order.
    after: Vec<AfterFlush>,
    /// Inputs taken up by the loop since start (for the `unflushed:<n>` fault point).
    inputs: u64,
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
            timers: BTreeMap::new(),
            timer_seq: 0,
            act: Actor::new(cfg.clone(), tx.clone(), http),
            messages: store.message_count(),
            telemetry: telemetry.clone(),
            platforms,
            version_patterns: cfg.version_patterns(),
            after: Vec::new(),
            inputs: 0,
        };
        let _ = store.prune_idempotency(Utc::now() - chrono::Duration::hours(24));
        let now = Utc::now();
        let journal = store.journal()?;
        // Every environment's restored state in one batch, one flush; then the actions.
        let mut ws = store.begin();
        for (name, env) in &cfg.environments {
            let driver = Driver::start(
                &env.name,
                &env.deploy,
                &env.traffic,
                env.revert.as_ref(),
                &env.secrets,
                &cfg.bot.data_dir,
                &journal,
            )
            .await
            .with_context(|| format!("environment {name}"))?;
            let st = app.engine.env(name).cloned().unwrap_or_default();
            let view = driver
                .restore(st.live, st.blue.as_deref(), st.green.as_deref())
                .await
                .with_context(|| format!("restoring environment {name}"))?;
            if let crate::core::engine::LiveView::Unseen(why) = &view {
                tracing::warn!(env = %name, reason = %why, "cannot see which colour is live; deploys are refused until it can");
            }
            let url = driver.entry_url();
            app.act.drivers.insert(name.clone(), driver);
            let active = st.active_run.filter(|id| app.engine.run(*id).is_some());
            let mut ch = match active {
                Some(id) => app.engine.resume(id, view, now),
                None => app.engine.observed(name, view, now),
            };
            ch.extend(app.engine.set_entry_url(name, url, now));
            app.stage(&mut ws, ch, None, now)?;
        }
        // Reverts asked for before a restart and not answered are asked again.
        let ch = app.engine.restart_reverts(now);
        app.stage(&mut ws, ch, None, now)?;
        app.commit(ws)?;
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
            let first = tokio::select! {
                _ = &mut shutdown => break,
                ev = rx.recv() => match ev {
                    Some(ev) => Some(ev),
                    None => break,
                },
                _ = sleep => None,
            };
            self.group(first, &mut rx)?;
        }
        self.store.flush()?;
        self.act.stop_traffic();
        Ok(())
    }

    fn arm(&mut self, at: DateTime<Utc>, t: Timer) {
        self.timer_seq += 1;
        let wait = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        self.timers
            .insert((tokio::time::Instant::now() + wait, self.timer_seq), t);
    }

    /// Applies one input to the engine and writes its changes into the batch `ws`; its answer
    /// waits for the flush.
    fn handle(&mut self, ev: AppEvent, ws: &mut WriteSet<'_>) -> Result<()> {
        let now = Utc::now();
        match ev {
            // An `ApiError` goes back to the caller (after the flush, like every answer); any
            // other error is the store failing, which stops the loop (the caller is told at
            // once: nothing of this group is written).
            AppEvent::Chat { inbound, reply } => match self.inbound(inbound, ws, now) {
                Ok(done) => self.after.push(AfterFlush::Answer(reply, Ok(done))),
                Err(e) => match e.downcast::<ApiError>() {
                    Ok(api) => self.after.push(AfterFlush::Answer(reply, Err(api))),
                    Err(e) => {
                        let _ = reply.send(Err(ApiError::new(500, "internal error")));
                        return Err(e);
                    }
                },
            },
            AppEvent::Done {
                run,
                attempt,
                outcome,
            } => {
                let ch = self.engine.result(run, attempt, outcome, now);
                self.stage(ws, ch, None, now)?;
            }
            AppEvent::Note { run, attempt, text } => {
                let ch = self.engine.note(run, attempt, &text, now);
                self.stage(ws, ch, None, now)?;
            }
            AppEvent::Observed { env, view } => {
                let ch = self.engine.observed(&env, view, now);
                self.stage(ws, ch, None, now)?;
            }
        }
        Ok(())
    }

    /// The bot's own metrics of finished runs.
    fn count(&self, runs: &[Run]) {
        for r in runs.iter().filter(|r| r.phase.is_terminal()) {
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
        self.telemetry
            .active_runs
            .set(self.engine.runs().count() as i64);
    }
}
