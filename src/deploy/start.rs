//! The one place an environment's config becomes its driver: a deploy step and a traffic step.

use super::command::{CommandDeploy, CommandRunner, CommandTraffic};
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
        let _ = journal; // used by the steps with external side effects
        Ok(match deploy {
            DeployConfig::Local(l) => {
                let local = LocalDriver::start(env.clone(), l.port, data_dir).await?;
                let router = local.router_url().to_string();
                Driver {
                    entry: Some(router.clone()),
                    synthetic: Some(router),
                    deploy: local.clone(),
                    traffic: local,
                    revert: None,
                }
            }
            DeployConfig::Command(c) => {
                let runner = Arc::new(CommandRunner {
                    env: env.clone(),
                    vars_env: c.env.clone(),
                    timeout: c.timeout,
                    secrets: secrets.to_vec(),
                });
                let traffic: Arc<dyn TrafficStep> = match traffic {
                    TrafficConfig::Haproxy(h) => Arc::new(HaproxyDriver::from_config(h)),
                    TrafficConfig::Command(t) => Arc::new(CommandTraffic {
                        runner: runner.clone(),
                        cfg: t.clone(),
                    }),
                    TrafficConfig::LocalRouter => {
                        anyhow::bail!("environment {env}: the local router needs the local driver")
                    }
                };
                let deploy: Arc<dyn DeployStep> = Arc::new(CommandDeploy {
                    runner,
                    cfg: c.clone(),
                });
                Driver {
                    deploy,
                    traffic,
                    revert: None,
                    entry: None,
                    synthetic: None,
                }
            }
        })
    }
}
