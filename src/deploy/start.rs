//! The one place an environment's config becomes its driver: a deploy step and a traffic step.

use super::argocd::ArgoDriver;
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
        Ok(match deploy {
            DeployConfig::Argocd(a) => {
                let argo = Arc::new(
                    ArgoDriver::new(env.clone(), a.clone(), journal.clone())
                        .map_err(|m| anyhow::anyhow!("environment {env}: {m}"))?,
                );
                let traffic: Arc<dyn TrafficStep> = match traffic {
                    TrafficConfig::Argocd => argo.clone(),
                    other => other_traffic(env, other, secrets, a.timeout)?,
                };
                Driver {
                    deploy: argo,
                    traffic,
                    entry: None,
                    synthetic: None,
                }
            }
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
                let traffic: Arc<dyn TrafficStep> = match traffic {
                    TrafficConfig::Haproxy(h) => Arc::new(HaproxyDriver::from_config(h)),
                    TrafficConfig::Command(t) => Arc::new(CommandTraffic {
                        runner: runner.clone(),
                        cfg: t.clone(),
                    }),
                    TrafficConfig::LocalRouter | TrafficConfig::Argocd => {
                        anyhow::bail!("environment {env}: this traffic step needs its own driver")
                    }
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

/// A haproxy or command traffic step beside a deploy step of another driver (argocd).
fn other_traffic(
    env: &EnvName,
    traffic: &TrafficConfig,
    secrets: &[String],
    timeout: std::time::Duration,
) -> anyhow::Result<Arc<dyn TrafficStep>> {
    Ok(match traffic {
        TrafficConfig::Haproxy(h) => Arc::new(HaproxyDriver::from_config(h)),
        TrafficConfig::Command(t) => Arc::new(CommandTraffic {
            runner: Arc::new(CommandRunner {
                env: env.clone(),
                vars_env: Default::default(),
                timeout,
                secrets: secrets.to_vec(),
            }),
            cfg: t.clone(),
        }),
        TrafficConfig::LocalRouter | TrafficConfig::Argocd => {
            anyhow::bail!("environment {env}: this traffic step needs its own driver")
        }
    })
}
