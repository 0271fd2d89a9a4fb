//! Running an action: IO only. Each action runs in a spawned task that carries it out against
//! the environment's driver and reports back as an `AppEvent::Done` (with the run's attempt,
//! so a stale result is ignored); no business logic lives here.

use super::{fault, AppEvent};
use crate::config::{Config, EnvConfig, MetricsConfig};
use crate::core::analysis::{Measurement, Sample};
use crate::core::run::{Action, Outcome, Phase};
use crate::core::{Colour, EnvName, RunId};
use crate::deploy::Driver;
use crate::metrics::prometheus::Prometheus;
use crate::metrics::scrape::{self, Scraper, Snapshot};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Everything an action needs, shared with the IO tasks it spawns.
pub(super) struct Actor {
    pub(super) cfg: Arc<Config>,
    pub(super) tx: mpsc::Sender<AppEvent>,
    pub(super) http: reqwest::Client,
    pub(super) drivers: BTreeMap<EnvName, Driver>,
    pub(super) scraper: Arc<Scraper>,
    /// The last scrape of each monitored run, so the next sample measures from it.
    pub(super) snapshots: Arc<Mutex<HashMap<RunId, Snapshot>>>,
    /// Each Prometheus-judged environment's client, built once (a client per sample would
    /// rebuild its connection pool and TLS setup every evaluation).
    pub(super) prometheus: BTreeMap<EnvName, Prometheus>,
    /// Synthetic traffic through each demo router while a run needs data.
    pub(super) traffic: HashMap<EnvName, tokio::task::JoinHandle<()>>,
}

/// One spawned action's view of the world (cheap clones of the actor's parts).
struct Task {
    cfg: Arc<Config>,
    env_name: EnvName,
    tx: mpsc::Sender<AppEvent>,
    http: reqwest::Client,
    driver: Driver,
    scraper: Arc<Scraper>,
    snapshots: Arc<Mutex<HashMap<RunId, Snapshot>>>,
    prometheus: Option<Prometheus>,
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
        | Action::Observe { env, .. } => env,
    }
}

impl Actor {
    pub(super) fn new(
        cfg: Arc<Config>,
        tx: mpsc::Sender<AppEvent>,
        http: reqwest::Client,
    ) -> Actor {
        let prometheus = cfg
            .environments
            .iter()
            .filter_map(|(k, e)| match &e.metrics {
                // Validated when the config was loaded.
                MetricsConfig::Prometheus(pc) => {
                    Prometheus::new(pc.clone()).ok().map(|p| (k.clone(), p))
                }
                _ => None,
            })
            .collect();
        Actor {
            cfg,
            tx,
            http,
            drivers: BTreeMap::new(),
            scraper: Arc::new(Scraper::new(Duration::from_secs(5))),
            snapshots: Arc::new(Mutex::new(HashMap::new())),
            prometheus,
            traffic: HashMap::new(),
        }
    }

    /// Starts an action in its own task; `version` is the run's (for smoke steps).
    pub(super) fn spawn(&self, action: Action, version: Option<String>) {
        let env_name = env_of(&action).clone();
        let Some(driver) = self.drivers.get(&env_name).cloned() else {
            return;
        };
        tracing::info!(env = %env_name, action = ?action, "action");
        let name = action_name(&action);
        let prometheus = match &action {
            Action::Baseline { .. } | Action::Sample { .. } => {
                self.prometheus.get(&env_name).cloned()
            }
            _ => None,
        };
        let task = Task {
            cfg: self.cfg.clone(),
            env_name,
            tx: self.tx.clone(),
            http: self.http.clone(),
            driver,
            scraper: self.scraper.clone(),
            snapshots: self.snapshots.clone(),
            prometheus,
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

    /// A run reached a terminal phase: its last scrape is no longer needed.
    pub(super) fn forget(&self, run: RunId) {
        self.snapshots.lock().expect("snapshots").remove(&run);
    }

    /// Steady synthetic traffic through the demo router while a run is between verification
    /// and stable, so that the baseline and the monitoring have data.
    pub(super) fn traffic_for(&mut self, env: EnvName, phase: Phase) {
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
                Outcome::DeployIdle(self.driver.deploy(colour, &version).await),
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
                Outcome::Switch(self.switch(run, to, from).await),
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
                Outcome::SwitchBack(self.driver.switch_back(to, from).await),
            ),
            Action::Teardown { colour, .. } => {
                self.driver.teardown(colour).await;
                return None;
            }
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

    /// The old colour's metrics before the switch, over a short window.
    async fn baseline(&self, colour: Colour) -> Sample {
        let window = self
            .env()
            .monitor
            .interval
            .clamp(Duration::from_secs(1), Duration::from_secs(5));
        let p = self.prometheus.as_ref();
        sample(
            &self.scraper,
            p,
            &self.driver,
            self.env(),
            colour,
            None,
            window,
        )
        .await
        .0
    }

    /// Switches, then takes the new colour's first scrape (the monitoring measures from it).
    async fn switch(&self, run: RunId, to: Colour, from: Option<Colour>) -> Result<(), String> {
        let r = self.driver.switch(to, from).await;
        if r.is_ok() {
            if let (MetricsConfig::Scrape { path, match_colour }, Some(url)) =
                (&self.env().metrics, self.driver.url(to))
            {
                let label = match_colour.then_some(to.as_str());
                if let Ok(s) = self.scraper.scrape(&format!("{url}{path}"), label).await {
                    self.snapshots.lock().expect("snapshots").insert(run, s);
                }
            }
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
        let prev = self.snapshots.lock().expect("snapshots").get(&run).cloned();
        let p = self.prometheus.as_ref();
        let window = Duration::from_secs(1);
        let (s, snap) = sample(
            &self.scraper,
            p,
            &self.driver,
            self.env(),
            colour,
            prev,
            window,
        )
        .await;
        if let Some(snap) = snap {
            self.snapshots.lock().expect("snapshots").insert(run, snap);
        }
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

/// Measures a colour over a window: from `prev` (the last snapshot) to now, or over `window`.
async fn sample(
    scraper: &Scraper,
    prometheus: Option<&Prometheus>,
    driver: &Driver,
    env: &EnvConfig,
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

#[cfg(test)]
#[path = "act_tests.rs"]
mod tests;
