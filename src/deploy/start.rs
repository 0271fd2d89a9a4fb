//! The one place an environment's config becomes its driver: a deploy step and a traffic step.

use super::command::{CommandDeploy, CommandRunner, CommandTraffic};
use super::haproxy::HaproxyDriver;
use super::local::LocalDriver;
use super::{DeployStep, Driver, TrafficStep};
use crate::config::{DeployConfig, EnvConfig, TrafficConfig};
use std::sync::Arc;

impl Driver {
    /// Builds the driver of an environment (the local driver binds its router here).
    pub async fn start(env: &EnvConfig, data_dir: &std::path::Path) -> anyhow::Result<Driver> {
        Ok(match &env.deploy {
            DeployConfig::Local(l) => {
                let local = LocalDriver::start(env.name.clone(), l.port, data_dir).await?;
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
                    env: env.name.clone(),
                    vars_env: c.env.clone(),
                    timeout: c.timeout,
                    secrets: env.secrets.clone(),
                });
                let traffic: Arc<dyn TrafficStep> = match &env.traffic {
                    TrafficConfig::Haproxy(h) => Arc::new(HaproxyDriver::from_config(h)),
                    TrafficConfig::Command(t) => Arc::new(CommandTraffic {
                        runner: runner.clone(),
                        cfg: t.clone(),
                    }),
                    TrafficConfig::LocalRouter => anyhow::bail!(
                        "environment {}: the local router needs the local driver",
                        env.name
                    ),
                };
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
        })
    }
}
