//! Deploy drivers: put a version on a colour and send traffic to a colour.
pub mod command;
pub mod local;

use crate::config::{CommandDriverConfig, DeployConfig, EnvConfig};
use crate::core::{Colour, EnvName};
use std::collections::BTreeMap;
use std::sync::Arc;

/// How much command output is kept for the thread.
const MAX_OUTPUT: usize = 1500;

/// One environment's driver, shared with the IO tasks.
#[derive(Clone)]
pub enum Driver {
    Local(Arc<local::LocalDriver>),
    Command(Arc<CommandDriver>),
}

pub struct CommandDriver {
    pub env: EnvName,
    pub cfg: CommandDriverConfig,
    pub secrets: Vec<String>,
    live: std::sync::Mutex<Option<Colour>>,
}

impl Driver {
    /// Builds the driver of an environment (the local driver binds its router here).
    pub async fn start(env: &EnvConfig, data_dir: &std::path::Path) -> anyhow::Result<Driver> {
        Ok(match &env.deploy {
            DeployConfig::Local { port } => {
                Driver::Local(local::LocalDriver::start(env.name.clone(), *port, data_dir).await?)
            }
            DeployConfig::Command(c) => Driver::Command(Arc::new(CommandDriver {
                env: env.name.clone(),
                cfg: c.clone(),
                secrets: env.secrets.clone(),
                live: std::sync::Mutex::new(None),
            })),
        })
    }

    /// Where the environment's traffic enters, for `status`.
    pub fn entry_url(&self) -> Option<String> {
        match self {
            Driver::Local(l) => Some(l.router_url().to_string()),
            Driver::Command(_) => None,
        }
    }

    /// Base URL of a colour, for health checks, smoke tests and metrics.
    pub fn url(&self, colour: Colour) -> Option<String> {
        match self {
            Driver::Local(l) => l.url(colour),
            Driver::Command(c) => Some(match colour {
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
            Driver::Command(c) => {
                c.run(
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

    pub async fn switch(&self, to: Colour, from: Option<Colour>) -> Result<(), String> {
        match self {
            Driver::Local(l) => l.switch(to).await.map_err(|e| format!("{e:#}")),
            Driver::Command(c) => {
                c.run("switch", &c.cfg.switch, to, from, None).await?;
                *c.live.lock().expect("live") = Some(to);
                Ok(())
            }
        }
    }

    pub async fn teardown(&self, colour: Colour) {
        match self {
            Driver::Local(l) => l.teardown(colour).await,
            Driver::Command(c) => {
                if let Some(t) = &c.cfg.teardown {
                    if let Err(e) = c.run("teardown", t, colour, None, None).await {
                        tracing::warn!(env = %c.env, %colour, error = %e, "teardown failed");
                    }
                }
            }
        }
    }

    /// At start: bring the environment back as the store knows it; returns the colour that is
    /// really live.
    pub async fn restore(
        &self,
        live: Option<Colour>,
        blue: Option<&str>,
        green: Option<&str>,
    ) -> anyhow::Result<Option<Colour>> {
        match self {
            Driver::Local(l) => l.restore(live, blue, green).await,
            Driver::Command(c) => {
                *c.live.lock().expect("live") = live;
                Ok(live)
            }
        }
    }
}

impl CommandDriver {
    async fn run(
        &self,
        step: &str,
        argv: &[String],
        colour: Colour,
        from: Option<Colour>,
        version: Option<&str>,
    ) -> Result<(), String> {
        let mut vars = BTreeMap::new();
        vars.insert("env".to_string(), self.env.0.clone());
        vars.insert("colour".to_string(), colour.to_string());
        vars.insert("color".to_string(), colour.to_string());
        vars.insert("other".to_string(), colour.other().to_string());
        if let Some(f) = from {
            vars.insert("from".to_string(), f.to_string());
        }
        if let Some(v) = version {
            vars.insert("version".to_string(), v.to_string());
        }
        let argv = command::render_argv(argv, &vars).map_err(|e| format!("{step} command: {e}"))?;
        let out = command::run(command::RunSpec {
            argv: argv.clone(),
            env: self
                .cfg
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            timeout: self.cfg.timeout,
            secrets: &self.secrets,
            max_output: MAX_OUTPUT,
        })
        .await;
        if out.success {
            Ok(())
        } else {
            let what = if out.timed_out {
                format!(
                    "timed out after {}",
                    humantime::format_duration(self.cfg.timeout)
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
