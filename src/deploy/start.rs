//! The one place an environment's config becomes its driver: a deploy step and a traffic step.

use super::command::{CommandDeploy, CommandRunner, CommandTraffic};
use super::gitlab::GitlabDeploy;
use super::haproxy::HaproxyDriver;
use super::local::LocalDriver;
use super::schema::{DeployConfig, TrafficConfig};
use super::{DeployStep, Driver, TrafficStep};
use crate::core::EnvName;
use crate::store::Journal;
use std::path::Path;
use std::sync::Arc;

impl Driver {
    /// Builds the driver of an environment (the local driver binds its router here). `journal`
    /// is where steps with external side effects record them before acting.
    pub async fn start(
        env: &EnvName,
        deploy: &DeployConfig,
        traffic: &TrafficConfig,
        secrets: &[String],
        data_dir: &Path,
        journal: &Journal,
    ) -> anyhow::Result<Driver> {
        Ok(match deploy {
            DeployConfig::Local(l) => {
                let local = LocalDriver::start(env.clone(), l.port, data_dir).await?;
                let router = local.router_url().to_string();
                Driver {
                    entry: Some(router.clone()),
                    synthetic: Some(router),
                    deploy: local.clone(),
                    traffic: local,
                }
            }
            DeployConfig::Command(c) => {
                let runner = Arc::new(CommandRunner {
                    env: env.clone(),
                    vars_env: c.env.clone(),
                    timeout: c.timeout,
                    secrets: secrets.to_vec(),
                });
                let traffic = traffic_step(env, traffic, &runner)?;
                let deploy: Arc<dyn DeployStep> = Arc::new(CommandDeploy {
                    runner,
                    cfg: c.clone(),
                });
                Driver {
                    deploy,
                    traffic,
                    entry: None,
                    synthetic: None,
                }
            }
            DeployConfig::Gitlab(g) => {
                // Switch commands get the command driver's default time; the pipeline has its own.
                let runner = Arc::new(CommandRunner {
                    env: env.clone(),
                    vars_env: Default::default(),
                    timeout: std::time::Duration::from_secs(600),
                    secrets: secrets.to_vec(),
                });
                let client = reqwest::Client::builder().no_proxy().build()?;
                let step = GitlabDeploy::new(env.clone(), g.clone(), journal.clone(), client)
                    .map_err(|m| anyhow::anyhow!("environment {env}: {m}"))?;
                Driver {
                    deploy: Arc::new(step),
                    traffic: traffic_step(env, traffic, &runner)?,
                    entry: None,
                    synthetic: None,
                }
            }
        })
    }
}

/// The traffic step of a driver that has none of its own.
fn traffic_step(
    env: &EnvName,
    traffic: &TrafficConfig,
    runner: &Arc<CommandRunner>,
) -> anyhow::Result<Arc<dyn TrafficStep>> {
    Ok(match traffic {
        TrafficConfig::Haproxy(h) => Arc::new(HaproxyDriver::from_config(h)),
        TrafficConfig::Command(t) => Arc::new(CommandTraffic {
            runner: runner.clone(),
            cfg: t.clone(),
        }),
        TrafficConfig::LocalRouter => {
            anyhow::bail!("environment {env}: the local router needs the local driver")
        }
    })
}
