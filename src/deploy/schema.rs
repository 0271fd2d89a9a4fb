//! The deploy section's shape once validated: which deploy step and which traffic step an
//! environment uses, each holding its own component's schema. `config` parses the file into
//! these; `start.rs` turns them into steps. Adding a step is one arm here.

use super::argocd::ArgoConfig;
use super::command::{CommandDriverConfig, CommandTrafficConfig};
use super::github_actions::GitHubActionsConfig;
use super::gitlab::GitlabDeployConfig;
use super::haproxy::HaproxyConfig;
use super::local::LocalSection;

/// How traffic is sent to a colour.
#[derive(Debug, Clone)]
pub enum TrafficConfig {
    /// The local driver's own router.
    LocalRouter,
    /// argv templates: `switch` (and `rollback` to switch back, else `switch` again).
    Command(CommandTrafficConfig),
    /// HAProxy's runtime API over its admin socket (`unix:/path` or `tcp:host:port`).
    Haproxy(HaproxyConfig),
    /// The `argocd` driver in rolling mode: the rolling update is the switch.
    Argocd,
}

/// How a version is put on a colour.
#[derive(Debug, Clone)]
pub enum DeployConfig {
    /// The bundled demo app per colour, with a built-in router on `port`.
    Local(LocalSection),
    /// argv templates (never a shell).
    Command(CommandDriverConfig),
    /// A GitHub Actions workflow dispatched per deploy, followed until it completes.
    GitHubActions(GitHubActionsConfig),
    /// An Argo CD application per colour (blue-green) or one updated in place (rolling).
    Argocd(ArgoConfig),
    /// A GitLab CI pipeline per deploy, followed until it ends.
    Gitlab(GitlabDeployConfig),
}

/// Where a revert is proposed after a rollback (`[environments.X] revert = "github"`).
#[derive(Debug, Clone)]
pub enum RevertConfig {
    /// A pull request on the `[github]` repository.
    GitHub(crate::remote::github::GitHubSettings),
    /// A merge request on the `[gitlab]` project (an access token: a trigger token cannot).
    GitLab(crate::remote::gitlab::Settings),
}
