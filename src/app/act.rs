//! Running an action: IO only. Each action runs in a spawned task that carries it out against
//! the environment's driver and reports back as an `AppEvent::Done` (with the run's attempt,
//! so a stale result is ignored); no business logic lives here.

use super::{fault, AppEvent};
use crate::config::{Config, EnvConfig};
use crate::core::analysis::Sample;
use crate::core::engine::{Action, Outcome, Phase};
use crate::core::{Colour, EnvName, RunId};
use crate::deploy::{Driver, StepCtx};
use crate::evidence::EvidenceReader;
use crate::metrics::scrape::Scraper;
use crate::metrics::{MetricsProvider, Target, Window};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Everything an action needs, shared with the IO tasks it spawns.
pub(super) struct Actor {
    pub(super) cfg: Arc<Config>,
    pub(super) tx: mpsc::Sender<AppEvent>,
    pub(super) http: reqwest::Client,
    pub(super) drivers: BTreeMap<EnvName, Driver>,
    /// Each environment's metrics provider, built once (a client per sample would rebuild its
    /// connection pool and TLS setup every evaluation).
    pub(super) metrics: BTreeMap<EnvName, Arc<dyn MetricsProvider>>,
    /// Synthetic traffic through each demo router while a run needs data.
    pub(super) traffic: HashMap<EnvName, tokio::task::JoinHandle<()>>,
    /// Reads checklist items' CI evidence (one client per forge).
    pub(super) evidence: EvidenceReader,
}

/// One spawned action's view of the world (cheap clones of the actor's parts).
struct Task {
    cfg: Arc<Config>,
    env_name: EnvName,
    tx: mpsc::Sender<AppEvent>,
    http: reqwest::Client,
    driver: Driver,
    metrics: Arc<dyn MetricsProvider>,
    /// The run's version, for smoke steps' `{version}`.
    version: Option<String>,
}

pub(super) fn action_name(a: &Action) -> &'static str {
    match a {
        Action::DeployIdle { .. } => "deploy_idle",
        Action::Verify { .. } => "verify",
        Action::Baseline { .. } => "baseline",
        Action::Switch { .. } => "switch",
        Action::Sample { .. } => "sample",
        Action::SwitchBack { .. } => "switch_back",
        Action::Teardown { .. } => "teardown",
        Action::Observe { .. } => "observe",
        Action::Revert { .. } => "revert",
        Action::CheckEvidence { .. } => "check_evidence",
    }
}

fn env_of(a: &Action) -> &EnvName {
    match a {
        Action::DeployIdle { env, .. }
        | Action::Verify { env, .. }
        | Action::Baseline { env, .. }
        | Action::Switch { env, .. }
        | Action::Sample { env, .. }
        | Action::SwitchBack { env, .. }
        | Action::Teardown { env, .. }
        | Action::Observe { env, .. }
        | Action::Revert { env, .. } => env,
        Action::CheckEvidence { env, .. } => env,
    }
}

impl Actor {
    pub(super) fn new(
        cfg: Arc<Config>,
        tx: mpsc::Sender<AppEvent>,
        http: reqwest::Client,
    ) -> Actor {
        // One scraper (one connection pool) for every scraping environment.
        let scraper = Arc::new(Scraper::new(Duration::from_secs(5)));
        let metrics = cfg
            .environments
            .iter()
            .map(|(k, e)| {
                (
                    k.clone(),
                    crate::metrics::start::provider(&e.metrics, &scraper),
                )
            })
            .collect();
        // The config checked every item's forge, so a failure here is a bug: such items
        // then read as unavailable, and are never ticked.
        let evidence = EvidenceReader::start(&cfg.forges, cfg.evidence_items(), http.clone())
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "CI evidence cannot be read");
                EvidenceReader::default()
            });
        Actor {
            cfg,
            tx,
            http,
            drivers: BTreeMap::new(),
            metrics,
            traffic: HashMap::new(),
            evidence,
        }
    }

    /// Reads a checklist item's evidence in its own task; the verdict comes back as the run's
    /// `Outcome::Evidence`.
    fn read_evidence(&self, action: Action) {
        let Action::CheckEvidence {
            run,
            attempt,
            env,
            item,
            version,
            evidence,
        } = action
        else {
            return;
        };
        let (reader, tx) = (self.evidence.clone(), self.tx.clone());
        tokio::spawn(async move {
            let verdict = reader.read(&env, item, &version, &evidence).await;
            let outcome = Outcome::Evidence { item, verdict };
            let done = AppEvent::Done {
                run,
                attempt,
                outcome,
            };
            let _ = tx.send(done).await;
        });
    }

    /// Starts an action in its own task; `version` is the run's (for smoke steps).
    pub(super) fn spawn(&self, action: Action, version: Option<String>) {
        if matches!(action, Action::CheckEvidence { .. }) {
            tracing::info!(action = ?action, "action");
            return self.read_evidence(action);
        }
        let env_name = env_of(&action).clone();
        let Some(driver) = self.drivers.get(&env_name).cloned() else {
            return;
        };
        tracing::info!(env = %env_name, action = ?action, "action");
        let name = action_name(&action);
        let Some(metrics) = self.metrics.get(&env_name).cloned() else {
            return;
        };
        let task = Task {
            cfg: self.cfg.clone(),
            env_name,
            tx: self.tx.clone(),
            http: self.http.clone(),
            driver,
            metrics,
            version,
        };
        fault(&format!("before:{name}"));
        tokio::spawn(async move {
            let tx = task.tx.clone();
            let Some((run, attempt, outcome)) = task.carry_out(action).await else {
                return;
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

    /// A run reached a terminal phase: what its metrics provider kept is no longer needed.
    pub(super) fn forget(&self, env: &EnvName, run: RunId) {
        if let Some(m) = self.metrics.get(env) {
            m.forget(run);
        }
    }

    /// Steady synthetic traffic through the demo router while a run is between verification
    /// and stable, so that the baseline and the monitoring have data.
    pub(super) fn traffic_for(&mut self, env: EnvName, phase: Phase) {
        let Some(url) = self.drivers.get(&env).and_then(|d| d.synthetic.clone()) else {
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
                let client = self.http.clone();
                self.traffic.insert(
                    env,
                    tokio::spawn(crate::demo_traffic::synthetic_traffic(client, url)),
                );
            }
        } else if let Some(t) = self.traffic.remove(&env) {
            t.abort();
        }
    }

    /// Stops every synthetic traffic task (the loop is ending).
    pub(super) fn stop_traffic(&mut self) {
        for (_, t) in self.traffic.drain() {
            t.abort();
        }
    }
}

impl Task {
    fn env(&self) -> &EnvConfig {
        &self.cfg.environments[&self.env_name]
    }

    /// Carries out one action; `None` when there is nothing to report to a run.
    async fn carry_out(self, action: Action) -> Option<(RunId, u32, Outcome)> {
        Some(match action {
            Action::DeployIdle {
                run,
                attempt,
                colour,
                version,
                ..
            } => (
                run,
                attempt,
                Outcome::DeployIdle(
                    self.driver
                        .deploy(colour, &version, &self.ctx(run, attempt))
                        .await,
                ),
            ),
            Action::Verify {
                run,
                attempt,
                colour,
                ..
            } => {
                let r = verify(
                    &self.http,
                    &self.driver,
                    self.env(),
                    colour,
                    self.version.as_deref(),
                );
                (run, attempt, Outcome::Verify(r.await))
            }
            Action::Baseline {
                run,
                attempt,
                colour,
                ..
            } => (run, attempt, Outcome::Baseline(self.baseline(colour).await)),
            Action::Switch {
                run,
                attempt,
                to,
                from,
                ..
            } => (
                run,
                attempt,
                Outcome::Switch(self.switch(run, attempt, to, from).await),
            ),
            Action::Sample {
                run,
                attempt,
                colour,
                ..
            } => (run, attempt, self.sample(run, attempt, colour).await),
            Action::SwitchBack {
                run,
                attempt,
                to,
                from,
                ..
            } => (
                run,
                attempt,
                Outcome::SwitchBack(
                    self.driver
                        .switch_back(to, from, &self.ctx(run, attempt))
                        .await,
                ),
            ),
            Action::Teardown { colour, .. } => {
                self.driver.teardown(colour).await;
                return None;
            }
            Action::Revert { run, bad, good, .. } => {
                // The run has ended: its journal key is what ties a restart to the revert.
                let r = self.driver.revert(&bad, &good, &self.ctx(run, 0)).await;
                (run, 0, Outcome::Reverted(r))
            }
            // Read without a driver (`Actor::read_evidence`).
            Action::CheckEvidence { .. } => return None,
            Action::Observe { env, run } => {
                let view = self.driver.observe().await;
                match run {
                    Some((run, attempt)) => (run, attempt, Outcome::Observed(view)),
                    None => {
                        let _ = self.tx.send(AppEvent::Observed { env, view }).await;
                        return None;
                    }
                }
            }
        })
    }

    /// What a step of run `run` knows of it; its notes go to the loop as `AppEvent::Note`.
    fn ctx(&self, run: RunId, attempt: u32) -> StepCtx {
        let tx = self.tx.clone();
        let notes = move |text: String| {
            let tx = tx.clone();
            tokio::spawn(async move {
                let _ = tx.send(AppEvent::Note { run, attempt, text }).await;
            });
        };
        StepCtx::new(run, self.env_name.clone(), Arc::new(notes))
    }

    /// The colour a sample is about.
    fn target(&self, colour: Colour) -> Target {
        Target {
            env: self.env_name.clone(),
            colour,
            url: self.driver.url(colour),
        }
    }

    /// The old colour's metrics before the switch, over a short window.
    async fn baseline(&self, colour: Colour) -> Sample {
        let window = self
            .env()
            .monitor
            .interval
            .clamp(Duration::from_secs(1), Duration::from_secs(5));
        let target = self.target(colour);
        self.metrics.sample(&target, Window::Fresh(window)).await
    }

    /// Switches, then starts the run's monitoring window on the new colour.
    async fn switch(
        &self,
        run: RunId,
        attempt: u32,
        to: Colour,
        from: Option<Colour>,
    ) -> Result<(), String> {
        let r = self.driver.switch(to, from, &self.ctx(run, attempt)).await;
        if r.is_ok() {
            self.metrics.mark(&self.target(to), run).await;
        }
        r
    }

    /// One monitoring check: the metrics since the last one and, if any smoke step is
    /// critical, the critical path.
    async fn sample(&self, run: RunId, attempt: u32, colour: Colour) -> Outcome {
        let critical = self.env().smoke.iter().any(|s| s.critical);
        // The critical path runs beside the metrics (a slow one, as every step of a slow
        // release is, must not hold back the metrics verdict) and reports right after this
        // check's metrics, so a breach in them always names the reason.
        let smoke = critical.then(|| {
            let (http, driver, cfg, env_name, version) = (
                self.http.clone(),
                self.driver.clone(),
                self.cfg.clone(),
                self.env_name.clone(),
                self.version.clone(),
            );
            tokio::spawn(async move {
                let env = &cfg.environments[&env_name];
                critical_path(&http, &driver, env, colour, version.as_deref()).await
            })
        });
        let window = Window::Since {
            run,
            or: Duration::from_secs(1),
        };
        let s = self.metrics.sample(&self.target(colour), window).await;
        let Some(handle) = smoke else {
            return Outcome::Sample(s, None);
        };
        let measured = AppEvent::Done {
            run,
            attempt,
            outcome: Outcome::Measured(s),
        };
        let _ = self.tx.send(measured).await;
        let r = handle
            .await
            .unwrap_or_else(|e| Err(format!("critical path check failed: {e}")));
        Outcome::CriticalPath(r)
    }
}

/// Values smoke steps can use: the configured ones plus `{version}`, `{colour}`, `{env}`.
fn smoke_vars(env: &EnvConfig, colour: Colour, version: Option<&str>) -> BTreeMap<String, String> {
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
    env: &EnvConfig,
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
    env: &EnvConfig,
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

#[cfg(test)]
#[path = "act_tests.rs"]
mod tests;
