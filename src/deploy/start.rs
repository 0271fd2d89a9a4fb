//! The one place an environment's config becomes its driver: a deploy step and a traffic step.

use super::argocd::ArgoDriver;
use super::command::{CommandDeploy, CommandRunner, CommandTraffic};
use super::github_actions::GitHubActionsDeploy;
use super::gitlab::GitlabDeploy;
use super::haproxy::HaproxyDriver;
use super::local::LocalDriver;
use super::revert::{GitHubRevert, GitLabRevert};
use super::schema::{DeployConfig, RevertConfig, TrafficConfig};
use super::{DeployStep, Driver, TrafficStep};
use crate::core::EnvName;
use crate::store::Journal;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

impl Driver {
    /// Builds the driver of an environment (the local driver binds its router here), with a
    /// revert step where `revert` asks for one. `journal` is where steps with external side
    /// effects record them before acting.
    pub async fn start(
        env: &EnvName,
        deploy: &DeployConfig,
        traffic: &TrafficConfig,
        revert: Option<&RevertConfig>,
        secrets: &[String],
        data_dir: &Path,
        journal: &Journal,
    ) -> anyhow::Result<Driver> {
        let mut d = Self::steps(env, deploy, traffic, secrets, data_dir, journal).await?;
        d.revert = match revert {
            None => None,
            Some(RevertConfig::GitHub(s)) => {
                let github = crate::remote::github::GitHub::new(s, crate::remote::client())
                    .map_err(|m| anyhow::anyhow!("environment {env}: {m}"))?;
                Some(Arc::new(GitHubRevert {
                    api: github.api,
                    repo: github.repo,
                    journal: journal.clone(),
                    timeout: REVERT_TIMEOUT,
                }))
            }
            Some(RevertConfig::GitLab(s)) => {
                let gitlab = crate::remote::gitlab::Gitlab::new(s, crate::remote::client())
                    .map_err(|m| anyhow::anyhow!("environment {env}: {m}"))?;
                Some(Arc::new(GitLabRevert {
                    gitlab,
                    journal: journal.clone(),
                    timeout: REVERT_TIMEOUT,
                }))
            }
        };
        Ok(d)
    }

    async fn steps(
        env: &EnvName,
        deploy: &DeployConfig,
        traffic: &TrafficConfig,
        secrets: &[String],
        data_dir: &Path,
        journal: &Journal,
    ) -> anyhow::Result<Driver> {
        let runner = |vars_env: BTreeMap<String, String>, timeout: Duration| {
            Arc::new(CommandRunner {
                env: env.clone(),
                vars_env,
                timeout,
                secrets: secrets.to_vec(),
            })
        };
        let deploy: Arc<dyn DeployStep> = match deploy {
            DeployConfig::Local(l) => {
                let local = LocalDriver::start(env.clone(), l.port, data_dir).await?;
                let router = local.router_url().to_string();
                return Ok(Driver {
                    entry: Some(router.clone()),
                    synthetic: Some(router),
                    deploy: local.clone(),
                    traffic: local,
                    revert: None,
                });
            }
            DeployConfig::Command(c) => {
                let runner = runner(c.env.clone(), c.timeout);
                let step = Arc::new(CommandDeploy {
                    runner: runner.clone(),
                    cfg: c.clone(),
                });
                let traffic = traffic_step(env, traffic, runner)?;
                return Ok(Driver::of(step, traffic));
            }
            DeployConfig::Argocd(a) => {
                let argo = Arc::new(
                    ArgoDriver::new(env.clone(), a.clone(), journal.clone())
                        .map_err(|m| anyhow::anyhow!("environment {env}: {m}"))?,
                );
                // Rolling: the application is its own traffic step (the update is the switch).
                if let TrafficConfig::Argocd = traffic {
                    return Ok(Driver::of(argo.clone(), argo));
                }
                let traffic = traffic_step(env, traffic, runner(BTreeMap::new(), a.timeout))?;
                return Ok(Driver::of(argo, traffic));
            }
            DeployConfig::GitHubActions(g) => {
                let github = crate::remote::github::GitHub::new(&g.github, crate::remote::client())
                    .map_err(|m| anyhow::anyhow!("environment {env}: {m}"))?;
                Arc::new(GitHubActionsDeploy {
                    env: env.clone(),
                    cfg: g.clone(),
                    github,
                    journal: journal.clone(),
                })
            }
            DeployConfig::Gitlab(g) => {
                let step = GitlabDeploy::new(
                    env.clone(),
                    g.clone(),
                    journal.clone(),
                    crate::remote::client(),
                )
                .map_err(|m| anyhow::anyhow!("environment {env}: {m}"))?;
                Arc::new(step)
            }
        };
        // A command traffic step beside a remote deploy step: its commands get the deploy
        // step's secrets to mask and a timeout of their own.
        let traffic = traffic_step(env, traffic, runner(BTreeMap::new(), COMMAND_TIMEOUT))?;
        Ok(Driver::of(deploy, traffic))
    }

    fn of(deploy: Arc<dyn DeployStep>, traffic: Arc<dyn TrafficStep>) -> Driver {
        Driver {
            deploy,
            traffic,
            revert: None,
            entry: None,
            synthetic: None,
        }
    }
}

/// How long proposing a revert may take, retries and rate-limit waits included.
const REVERT_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a `command` traffic step's command may take beside a deploy step without commands.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(600);

fn traffic_step(
    env: &EnvName,
    traffic: &TrafficConfig,
    runner: Arc<CommandRunner>,
) -> anyhow::Result<Arc<dyn TrafficStep>> {
    Ok(match traffic {
        TrafficConfig::Haproxy(h) => Arc::new(HaproxyDriver::from_config(h)),
        TrafficConfig::Command(t) => Arc::new(CommandTraffic {
            runner,
            cfg: t.clone(),
        }),
        TrafficConfig::LocalRouter | TrafficConfig::Argocd => {
            anyhow::bail!("environment {env}: this traffic step needs its own driver")
        }
    })
}
