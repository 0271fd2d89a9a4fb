//! Deploy drivers. An environment combines one **deploy step** (put a version on a colour,
//! tear a colour down) and one **traffic step** (say which colour is live, send traffic to a
//! colour): `local` (demo apps + router, both steps in one), `command`, `github-actions`,
//! `gitlab` or `argocd` deploys with a `command` or `haproxy` traffic step, or `argocd` in
//! rolling mode (both steps in one).
//!
//! Every step is a file or folder of the same shape: its config schema (the serde struct the
//! config file's section deserialises into, and its validation), its client, its tests, and an
//! impl of [`DeployStep`] or [`TrafficStep`]. The app only calls these traits; `start.rs` is
//! the one place that turns a config section into a step. Adding one (GitHub Actions, Argo CD)
//! is a new file here, an arm in `schema.rs` (`DeployConfig` / `TrafficConfig`), one in
//! `config`'s section parsing and one in `start.rs`.
//!
//! This file imports nothing above `core`, so a step can implement the traits without an
//! import cycle through `config`.
pub mod argocd;
pub mod command;
pub mod github_actions;
pub mod gitlab;
pub mod haproxy;
pub mod local;
pub mod revert;
pub mod schema;
mod start;

use crate::core::engine::{LiveView, RevertLink};
use crate::core::{Colour, EnvName, RunId};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A future a step returns (the traits are object-safe, so they cannot use `async fn`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a step knows of the run it works for. `key` names the step of the run and stays the
/// same across a restart (a redeploy after a crash is the same step), so a step with an
/// external side effect (a workflow dispatch, a sync) records it in the store's journal under
/// that key before acting, and after a restart follows what it started instead of starting
/// it again. `note` puts a line in the run's status message (a workflow run's link).
#[derive(Clone)]
pub struct StepCtx {
    pub run: RunId,
    pub env: EnvName,
    notes: Arc<dyn Fn(String) + Send + Sync>,
}

impl StepCtx {
    pub fn new(run: RunId, env: EnvName, notes: Arc<dyn Fn(String) + Send + Sync>) -> StepCtx {
        StepCtx { run, env, notes }
    }

    /// A context whose notes go nowhere (tests, and steps outside a run).
    pub fn detached(run: RunId, env: EnvName) -> StepCtx {
        StepCtx::new(run, env, Arc::new(|_| {}))
    }

    /// The journal key of this run's `step` (`deploy`, `switch`, `switch_back`).
    pub fn key(&self, step: &str) -> String {
        format!("{}/{}/{step}", self.env, self.run.0)
    }

    /// Reports progress in the run's status message (one line; secrets already masked).
    pub fn note(&self, text: impl Into<String>) {
        (self.notes)(text.into())
    }
}

/// Puts versions on colours. Errors are one reason fit for the run's thread.
pub trait DeployStep: Send + Sync {
    /// Base URL of a colour, for health checks, smoke tests and metrics (`None`: not running).
    fn url(&self, colour: Colour) -> Option<String>;
    /// Starts `version` on `colour`, replacing whatever ran there.
    fn deploy<'a>(
        &'a self,
        colour: Colour,
        version: &'a str,
        ctx: &'a StepCtx,
    ) -> BoxFuture<'a, Result<(), String>>;
    /// Takes `colour` down (a failure is logged, never fatal: the colour is idle).
    fn teardown(&self, colour: Colour) -> BoxFuture<'_, ()>;
    /// At start, brings the environment back as the store knows it (a step that keeps no
    /// process of its own has nothing to do).
    fn restore<'a>(
        &'a self,
        _live: Option<Colour>,
        _blue: Option<&'a str>,
        _green: Option<&'a str>,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

/// Sends traffic to a colour and says which one takes it.
pub trait TrafficStep: Send + Sync {
    /// Which colour takes traffic, as the step itself says. Never the store's word: a step
    /// that cannot answer is `Unseen`, one that has no way to ask is `Unasked`.
    fn observe(&self) -> BoxFuture<'_, LiveView>;
    /// Sends traffic to `to` (from `from`).
    fn switch<'a>(
        &'a self,
        to: Colour,
        from: Option<Colour>,
        ctx: &'a StepCtx,
    ) -> BoxFuture<'a, Result<(), String>>;
    /// Sends traffic back to `to` after a failed release (by default, a switch).
    fn switch_back<'a>(
        &'a self,
        to: Colour,
        from: Colour,
        ctx: &'a StepCtx,
    ) -> BoxFuture<'a, Result<(), String>> {
        self.switch(to, Some(from), ctx)
    }
}

/// Proposes a revert of a rolled-back release's changes for review (a pull or merge request
/// against the default branch, never a push to it).
pub trait RevertStep: Send + Sync {
    /// Opens the revert of `bad` (back to `good`), or finds the one this run already opened
    /// (`ctx.key("revert")`). A conflict or a refusal is reported, never retried blindly.
    fn revert<'a>(
        &'a self,
        bad: &'a str,
        good: &'a str,
        ctx: &'a StepCtx,
    ) -> BoxFuture<'a, Result<RevertLink, String>>;
}

/// One environment's driver, shared with the IO tasks: its two steps.
#[derive(Clone)]
pub struct Driver {
    pub deploy: Arc<dyn DeployStep>,
    pub traffic: Arc<dyn TrafficStep>,
    /// Where the environment asks for a revert after a rollback (`revert = ...`).
    pub revert: Option<Arc<dyn RevertStep>>,
    /// Where the environment's traffic enters, for `status`.
    pub entry: Option<String>,
    /// Where the bot drives steady synthetic traffic while a run needs data: the demo's
    /// router only (never a real environment's entry).
    pub synthetic: Option<String>,
}

impl Driver {
    /// Where the environment's traffic enters, for `status`.
    pub fn entry_url(&self) -> Option<String> {
        self.entry.clone()
    }

    /// Base URL of a colour, for health checks, smoke tests and metrics.
    pub fn url(&self, colour: Colour) -> Option<String> {
        self.deploy.url(colour)
    }

    pub async fn deploy(&self, colour: Colour, version: &str, ctx: &StepCtx) -> Result<(), String> {
        self.deploy.deploy(colour, version, ctx).await
    }

    /// Sends traffic to `to` (from `from`).
    pub async fn switch(
        &self,
        to: Colour,
        from: Option<Colour>,
        ctx: &StepCtx,
    ) -> Result<(), String> {
        self.traffic.switch(to, from, ctx).await
    }

    /// Sends traffic back to `to` after a failed release (the `rollback` commands if any).
    pub async fn switch_back(&self, to: Colour, from: Colour, ctx: &StepCtx) -> Result<(), String> {
        self.traffic.switch_back(to, from, ctx).await
    }

    /// Proposes the revert of `bad` (back to `good`).
    pub async fn revert(&self, bad: &str, good: &str, ctx: &StepCtx) -> Result<RevertLink, String> {
        match &self.revert {
            Some(r) => r.revert(bad, good, ctx).await,
            None => Err("this environment has no revert step".into()),
        }
    }

    pub async fn teardown(&self, colour: Colour) {
        self.deploy.teardown(colour).await
    }

    /// At start: bring the environment back as the store knows it (the local driver restarts
    /// its demo apps), then say what the traffic step sees.
    pub async fn restore(
        &self,
        live: Option<Colour>,
        blue: Option<&str>,
        green: Option<&str>,
    ) -> anyhow::Result<LiveView> {
        self.deploy.restore(live, blue, green).await?;
        Ok(self.observe().await)
    }

    /// Which colour takes traffic, as the traffic step itself says.
    pub async fn observe(&self) -> LiveView {
        self.traffic.observe().await
    }
}
