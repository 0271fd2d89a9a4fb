//! Deploy drivers: put a version on a colour (deploy step) and send traffic to a colour
//! (traffic step). An environment combines one of each: `local` (demo apps + router), or
//! `command` deploys with a `command` or `haproxy` traffic step.
pub mod command;
pub mod haproxy;
pub mod local;

use crate::config::{CommandDriverConfig, DeployConfig, EnvConfig, TrafficConfig};
use crate::core::run::LiveView;
use crate::core::{Colour, EnvName};
use std::collections::BTreeMap;
use std::sync::Arc;

/// How much command output is kept for the thread.
const MAX_OUTPUT: usize = 1500;

/// One environment's driver, shared with the IO tasks.
#[derive(Clone)]
pub enum Driver {
    /// The demo apps and their router: deploy and traffic in one.
    Local(Arc<local::LocalDriver>),
    /// Commands put versions on colours; `traffic` sends traffic.
    Command(Arc<CommandDriver>, Traffic),
}

/// The traffic step of a `command` deploy.
#[derive(Clone)]
pub enum Traffic {
    Command {
        runner: Arc<CommandRunner>,
        switch: Vec<Vec<String>>,
        rollback: Option<Vec<Vec<String>>>,
        /// Asks which colour is live (`live_query`), if configured.
        query: Option<Vec<Vec<String>>>,
    },
    Haproxy(Arc<haproxy::HaproxyDriver>),
}

pub struct CommandDriver {
    pub runner: Arc<CommandRunner>,
    pub cfg: CommandDriverConfig,
}

/// Runs argv templates for one environment (with its secrets and timeout).
pub struct CommandRunner {
    pub env: EnvName,
    pub vars_env: BTreeMap<String, String>,
    pub timeout: std::time::Duration,
    pub secrets: Vec<String>,
}

impl Driver {
    /// Builds the driver of an environment (the local driver binds its router here).
    pub async fn start(env: &EnvConfig, data_dir: &std::path::Path) -> anyhow::Result<Driver> {
        Ok(match &env.deploy {
            DeployConfig::Local { port } => {
                Driver::Local(local::LocalDriver::start(env.name.clone(), *port, data_dir).await?)
            }
            DeployConfig::Command(c) => {
                let runner = Arc::new(CommandRunner {
                    env: env.name.clone(),
                    vars_env: c.env.clone(),
                    timeout: c.timeout,
                    secrets: env.secrets.clone(),
                });
                let traffic = match &env.traffic {
                    TrafficConfig::Haproxy {
                        socket,
                        backend,
                        timeout,
                    } => {
                        let mut h = haproxy::HaproxyDriver::new(
                            haproxy::Socket::parse(socket),
                            backend.clone(),
                        );
                        h.timeout = *timeout;
                        Traffic::Haproxy(Arc::new(h))
                    }
                    TrafficConfig::Command {
                        switch,
                        rollback,
                        query,
                        ..
                    } => Traffic::Command {
                        runner: runner.clone(),
                        switch: switch.clone(),
                        rollback: rollback.clone(),
                        query: query.clone(),
                    },
                    TrafficConfig::LocalRouter => anyhow::bail!(
                        "environment {}: the local router needs the local driver",
                        env.name
                    ),
                };
                Driver::Command(
                    Arc::new(CommandDriver {
                        runner,
                        cfg: c.clone(),
                    }),
                    traffic,
                )
            }
        })
    }

    /// Where the environment's traffic enters, for `status`.
    pub fn entry_url(&self) -> Option<String> {
        match self {
            Driver::Local(l) => Some(l.router_url().to_string()),
            Driver::Command(..) => None,
        }
    }

    /// Base URL of a colour, for health checks, smoke tests and metrics.
    pub fn url(&self, colour: Colour) -> Option<String> {
        match self {
            Driver::Local(l) => l.url(colour),
            Driver::Command(c, _) => Some(match colour {
                Colour::Blue => c.cfg.blue_url.clone(),
                Colour::Green => c.cfg.green_url.clone(),
            }),
        }
    }

    pub async fn deploy(&self, colour: Colour, version: &str) -> Result<(), String> {
        match self {
            Driver::Local(l) => l
                .deploy(colour, version)
                .await
                .map_err(|e| format!("{e:#}")),
            Driver::Command(c, _) => {
                c.runner
                    .run_steps(
                        "deploy_idle",
                        &c.cfg.deploy_idle,
                        colour,
                        None,
                        Some(version),
                    )
                    .await
            }
        }
    }

    /// Sends traffic to `to` (from `from`).
    pub async fn switch(&self, to: Colour, from: Option<Colour>) -> Result<(), String> {
        self.switch_inner(to, from, false).await
    }

    /// Sends traffic back to `to` after a failed release (the `rollback` commands if any).
    pub async fn switch_back(&self, to: Colour, from: Colour) -> Result<(), String> {
        self.switch_inner(to, Some(from), true).await
    }

    async fn switch_inner(
        &self,
        to: Colour,
        from: Option<Colour>,
        back: bool,
    ) -> Result<(), String> {
        match self {
            Driver::Local(l) => l.switch(to).await.map_err(|e| format!("{e:#}")),
            Driver::Command(_, Traffic::Haproxy(h)) => h.switch(to, from).await,
            Driver::Command(
                _,
                Traffic::Command {
                    runner,
                    switch,
                    rollback,
                    ..
                },
            ) => {
                let (what, steps) = match (back, rollback) {
                    (true, Some(r)) => ("rollback", r),
                    _ => ("switch", switch),
                };
                runner.run_steps(what, steps, to, from, None).await
            }
        }
    }

    pub async fn teardown(&self, colour: Colour) {
        match self {
            Driver::Local(l) => l.teardown(colour).await,
            Driver::Command(c, _) => {
                if let Some(t) = &c.cfg.teardown {
                    if let Err(e) = c.runner.run_steps("teardown", t, colour, None, None).await {
                        tracing::warn!(env = %c.runner.env, %colour, error = %e, "teardown failed");
                    }
                }
            }
        }
    }

    /// At start: bring the environment back as the store knows it (the local driver restarts
    /// its demo apps), then say what the traffic step sees.
    pub async fn restore(
        &self,
        live: Option<Colour>,
        blue: Option<&str>,
        green: Option<&str>,
    ) -> anyhow::Result<LiveView> {
        if let Driver::Local(l) = self {
            l.restore(live, blue, green).await?;
        }
        Ok(self.observe().await)
    }

    /// Which colour takes traffic, as the traffic step itself says. Never the store's word:
    /// a step that cannot answer is `Unseen`, one that has no way to ask is `Unasked`.
    pub async fn observe(&self) -> LiveView {
        match self {
            // The router is in this process: what it routes to is the truth.
            Driver::Local(l) => LiveView::Seen(l.live()),
            Driver::Command(_, Traffic::Haproxy(h)) => match h.live().await {
                Ok(c) => LiveView::Seen(c),
                Err(e) => LiveView::Unseen(format!("HAProxy: {e}")),
            },
            Driver::Command(
                _,
                Traffic::Command {
                    runner,
                    query: Some(q),
                    ..
                },
            ) => match runner.query_live(q).await {
                Ok(c) => LiveView::Seen(c),
                Err(e) => LiveView::Unseen(e),
            },
            Driver::Command(_, Traffic::Command { query: None, .. }) => LiveView::Unasked,
        }
    }
}

impl CommandRunner {
    /// Runs each argv template in order; the first failure stops and explains.
    pub async fn run_steps(
        &self,
        step: &str,
        steps: &[Vec<String>],
        colour: Colour,
        from: Option<Colour>,
        version: Option<&str>,
    ) -> Result<(), String> {
        for argv in steps {
            self.run(step, argv, colour, from, version).await?;
        }
        Ok(())
    }

    /// Runs the `live_query` steps; the last line the last one prints names the live colour:
    /// `blue`, `green` or `none`. Anything else is an answer greenlight cannot read.
    pub async fn query_live(&self, steps: &[Vec<String>]) -> Result<Option<Colour>, String> {
        let mut last = String::new();
        for argv in steps {
            // The query is about the environment, not a colour: `{colour}` renders as blue.
            last = self
                .run("live_query", argv, Colour::Blue, None, None)
                .await?;
        }
        let line = last
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("");
        match line.to_ascii_lowercase().as_str() {
            "blue" => Ok(Some(Colour::Blue)),
            "green" => Ok(Some(Colour::Green)),
            "none" => Ok(None),
            other => Err(format!(
                "live_query printed \"{}\" as its last line, not blue, green or none",
                crate::core::message::clip(other, 60)
            )),
        }
    }

    async fn run(
        &self,
        step: &str,
        argv: &[String],
        colour: Colour,
        from: Option<Colour>,
        version: Option<&str>,
    ) -> Result<String, String> {
        let mut vars = BTreeMap::new();
        vars.insert("env".to_string(), self.env.0.clone());
        vars.insert("colour".to_string(), colour.to_string());
        vars.insert("color".to_string(), colour.to_string());
        vars.insert("other".to_string(), colour.other().to_string());
        vars.insert(
            "from".to_string(),
            from.unwrap_or(colour.other()).to_string(),
        );
        if let Some(v) = version {
            vars.insert("version".to_string(), v.to_string());
        }
        let argv = command::render_argv(argv, &vars).map_err(|e| format!("{step} command: {e}"))?;
        let out = command::run(command::RunSpec {
            argv: argv.clone(),
            env: self
                .vars_env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            timeout: self.timeout,
            secrets: &self.secrets,
            max_output: MAX_OUTPUT,
        })
        .await;
        if out.success {
            Ok(out.output)
        } else {
            let what = if out.timed_out {
                format!(
                    "timed out after {}",
                    humantime::format_duration(self.timeout)
                )
            } else {
                match out.exit_code {
                    Some(c) => format!("exited with status {c}"),
                    None => "was killed".to_string(),
                }
            };
            let output = out.output.trim();
            Err(format!(
                "{step} command `{}` {what}{}",
                command::mask(&argv.join(" "), &self.secrets),
                if output.is_empty() {
                    String::new()
                } else {
                    format!("; output:\n```\n{output}\n```")
                }
            ))
        }
    }
}
