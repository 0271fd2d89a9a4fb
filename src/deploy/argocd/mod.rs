//! The `argocd` driver: puts a version on an Argo CD application (patch its source, sync, wait
//! until the operation Succeeded and the application is Healthy). Two modes:
//!
//! - **blue-green** (default): one application per colour (`blue_app`, `green_app`), each
//!   serving at its own URL. This is a deploy step only; traffic moves with a `haproxy` or
//!   `command` traffic step, as with the `command` driver. Teardown leaves the idle
//!   application as it is (greenlight deletes nothing in Argo CD).
//! - **rolling**: one application updated in place. There is no idle colour, so the driver is
//!   its own traffic step and the engine's steps map onto Argo CD like this:
//!   `deploy` only checks the application exists and records its current history id (the
//!   rollback target); verification before the switch therefore checks the version that
//!   serves now (both colours' URL is the application's `url`); `switch` is the rolling update
//!   itself (patch, sync, wait until Healthy: Kubernetes' readiness gates are all that stands
//!   between an unverified pod and traffic, as far as rolling allows); `switch_back` turns
//!   auto-sync off if it is on (Argo CD refuses a rollback while it is on, and turning it back
//!   on re-deploys what git says), rolls back to the recorded history id and says in the
//!   thread that auto-sync stays off until a person turns it back on.
//!   `observe` says which "colour" is live: the colours are greenlight's names for the
//!   application's last two deployments; the one the last switch or switch back put there is
//!   live (the journal records it), an application with a history and no record is blue, one
//!   never deployed has nothing live, and an Argo CD that cannot be asked is `Unseen`.
//!
//! A sync is the side effect that must not happen twice: the step records
//! `{patched_at, app, version}` under its journal key (flushed) before it patches, and after a
//! restart follows an operation that started since then instead of syncing again (patching
//! the same source again is harmless).
//!
//! Shape: `schema.rs` the sections, `app.rs` the Application JSON, `client.rs` the endpoints
//! and source edits, `rolling.rs` the rolling mode's steps, this file the sync and wait they
//! share and the blue-green deploy step.

pub mod app;
pub mod client;
mod rolling;
pub mod schema;

pub use schema::{ArgoConfig, Mode, ServerSection};

use super::{BoxFuture, DeployStep, StepCtx};
use crate::core::{Colour, EnvName};
use crate::remote::{ApiError, ErrorKind};
use crate::store::Journal;
use crate::telemetry::fault;
use app::{App, OperationState};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// How far Argo CD's clock may lag ours when telling an operation this step started from an
/// older one.
const CLOCK_SLACK_SECS: i64 = 30;

/// The driver of one environment (both steps; blue-green uses only the deploy step).
pub struct ArgoDriver {
    env: EnvName,
    cfg: ArgoConfig,
    client: client::Client,
    journal: Journal,
}

/// Written before a patch and sync (blue-green deploy, rolling switch) or a rollback.
#[derive(Serialize, Deserialize, Debug, Clone)]
struct Started {
    patched_at: DateTime<Utc>,
    app: String,
    version: String,
    /// A rollback: the history id rolled back to (and whether this step turned auto-sync off).
    #[serde(default)]
    rollback_to: Option<i64>,
    #[serde(default)]
    disabled_auto_sync: bool,
}

/// The one line of a failed request: the sender's own, already naming Argo CD.
fn line(e: &ApiError) -> String {
    e.detail.clone()
}

impl ArgoDriver {
    pub fn new(env: EnvName, cfg: ArgoConfig, journal: Journal) -> Result<ArgoDriver, String> {
        let client = client::Client::new(&cfg.server, &cfg.token)?;
        Ok(ArgoDriver {
            env,
            cfg,
            client,
            journal,
        })
    }

    /// Shorter waits between tries (tests).
    pub fn with_retry(mut self, retry: crate::remote::Retry) -> ArgoDriver {
        self.client = self.client.with_retry(retry);
        self
    }

    fn app_of(&self, colour: Colour) -> &str {
        match &self.cfg.mode {
            Mode::BlueGreen {
                blue_app,
                green_app,
                ..
            } => match colour {
                Colour::Blue => blue_app,
                Colour::Green => green_app,
            },
            Mode::Rolling { app, .. } => app,
        }
    }

    fn link(&self, app: &str) -> String {
        format!("{}/applications/{app}", self.cfg.server)
    }

    async fn put<T: Serialize>(&self, key: &str, v: &T) -> Result<(), String> {
        self.journal
            .put(key, v)
            .await
            .map_err(|e| format!("cannot record the Argo CD step before acting: {e}"))
    }

    /// The record under `key` for this app and version, or a new one written (and flushed)
    /// now. `true` when it was there already (a restart: follow what was started).
    async fn start_record(
        &self,
        key: &str,
        app: &str,
        version: &str,
        rollback_to: Option<i64>,
    ) -> Result<(Started, bool), String> {
        let old: Option<Started> = self.journal.get(key).ok().flatten();
        if let Some(r) = old.filter(|r| r.app == app && r.version == version) {
            return Ok((r, true));
        }
        let r = Started {
            patched_at: Utc::now(),
            app: app.to_string(),
            version: version.to_string(),
            rollback_to,
            disabled_auto_sync: false,
        };
        self.put(key, &r).await?;
        Ok((r, false))
    }

    /// The application's operation if this step started it: begun since the record (within
    /// the clock slack) and, when Argo CD says what it synced, with this version.
    fn ours<'a>(&self, a: &'a App, r: &Started) -> Option<&'a OperationState> {
        let op = a.status.operation_state.as_ref()?;
        let since = r.patched_at - chrono::Duration::seconds(CLOCK_SLACK_SECS);
        if op.started_at.is_none_or(|t| t < since) {
            return None;
        }
        // What the operation synced, when Argo CD says: this version, or the history entry
        // rolled back to (an older operation still shows until the controller starts ours).
        let src = op.sync_result.as_ref().map(|s| &s.source);
        if let Some(src) = src.filter(|s| !s.is_null()) {
            let same = match r.rollback_to {
                None => client::has_version(src, &self.cfg.set, &r.version),
                Some(id) => a
                    .status
                    .history
                    .iter()
                    .find(|h| h.id == id)
                    .is_none_or(|h| h.source == *src),
            };
            if !same {
                return None;
            }
        }
        Some(op)
    }

    /// Patch (if needed) and sync `app` to `version`, once, then wait until it is Healthy.
    async fn roll_out(
        &self,
        app: &str,
        version: &str,
        key: &str,
        ctx: &StepCtx,
    ) -> Result<(), String> {
        let until = Instant::now() + self.cfg.timeout;
        let (rec, resumed) = self.start_record(key, app, version, None).await?;
        fault("argocd:journaled");
        let current = self.client.app(app, until).await.map_err(|e| line(&e))?;
        let running = resumed && self.ours(&current, &rec).is_some();
        if !running {
            if !client::has_version(&current.spec.source, &self.cfg.set, version) {
                let patch = client::version_patch(&current.spec.source, &self.cfg.set, version);
                self.client
                    .patch(app, &patch, until)
                    .await
                    .map_err(|e| format!("setting {version} on {app}: {}", line(&e)))?;
            }
            self.sync_once(app, &rec, until).await?;
        }
        fault("argocd:synced");
        ctx.note(format!(
            "Argo CD: syncing {app} to {version}: {}",
            self.link(app)
        ));
        self.wait(app, &rec, until).await
    }

    /// One sync. Refused (a sync window, another operation running) is one line; a request
    /// that may have gone through is looked at before it is sent again.
    async fn sync_once(&self, app: &str, rec: &Started, until: Instant) -> Result<(), String> {
        loop {
            match self.client.sync(app, until).await {
                Ok(()) => return Ok(()),
                Err(e) if e.kind == ErrorKind::Uncertain => {
                    let a = self.client.app(app, until).await.map_err(|e| line(&e))?;
                    if self.ours(&a, rec).is_some() {
                        return Ok(());
                    }
                    if Instant::now() >= until {
                        return Err(line(&e));
                    }
                }
                // Argo CD answers a closed sync window with 403 PermissionDenied: it is the
                // project's rule, not the token's fault, and the thread says so.
                Err(e) if e.status == Some(403) && e.detail.contains("sync window") => {
                    let msg = e
                        .detail
                        .split_once("(403 ")
                        .map_or(e.detail.as_str(), |(_, m)| m.trim_end_matches(')'));
                    return Err(format!(
                        "Argo CD refused to sync {app}: {msg} (the project's sync window is closed)"
                    ));
                }
                // Auto-sync may have started this version's sync on its own after the patch:
                // follow that operation rather than fail or start another.
                Err(e)
                    if e.kind == ErrorKind::Rejected
                        && e.detail
                            .contains("another operation is already in progress") =>
                {
                    let a = self.client.app(app, until).await.map_err(|e| line(&e))?;
                    if self.ours(&a, rec).is_some() {
                        return Ok(());
                    }
                    return Err(format!(
                        "Argo CD refused to sync {app}: another operation is in progress (not this release's)"
                    ));
                }
                Err(e) if e.kind == ErrorKind::Rejected => {
                    return Err(format!(
                        "Argo CD refused to sync {app}: {}",
                        e.detail.trim_start_matches("Argo CD: ")
                    ))
                }
                Err(e) => return Err(line(&e)),
            }
        }
    }

    /// Polls `app` until this step's operation Succeeded and the application is Healthy.
    async fn wait(&self, app: &str, rec: &Started, until: Instant) -> Result<(), String> {
        let what = match rec.rollback_to {
            Some(id) => format!("rollback of {app} to history id {id}"),
            None => format!("sync of {app} to {}", rec.version),
        };
        let mut last = "the operation had not started".to_string();
        loop {
            match self.client.app(app, until).await {
                Ok(a) => {
                    if let Some(op) = self.ours(&a, rec) {
                        let health = &a.status.health;
                        if op.failed() {
                            return Err(format!(
                                "Argo CD: {what} {}: {}",
                                op.phase.to_lowercase(),
                                crate::core::text::one_line(&op.message)
                            ));
                        }
                        if op.phase == "Succeeded" {
                            match health.status.as_str() {
                                "Healthy" => return Ok(()),
                                "Degraded" | "Missing" => {
                                    return Err(format!(
                                        "Argo CD: {app} is {} after the {what}: {}",
                                        health.status,
                                        crate::core::text::one_line(&health.message)
                                    ))
                                }
                                _ => {}
                            }
                        }
                        last = format!("operation {}, health {}", op.phase, health.status);
                    }
                }
                Err(e) if matches!(e.kind, ErrorKind::Refused | ErrorKind::NotFound) => {
                    return Err(line(&e))
                }
                Err(e) => last = line(&e),
            }
            if Instant::now() + self.cfg.poll >= until {
                return Err(format!(
                    "Argo CD: the {what} did not finish within {} ({last})",
                    humantime::format_duration(self.cfg.timeout)
                ));
            }
            tokio::time::sleep(self.cfg.poll).await;
        }
    }
}

impl DeployStep for ArgoDriver {
    fn url(&self, colour: Colour) -> Option<String> {
        Some(match &self.cfg.mode {
            Mode::BlueGreen {
                blue_url,
                green_url,
                ..
            } => match colour {
                Colour::Blue => blue_url.clone(),
                Colour::Green => green_url.clone(),
            },
            Mode::Rolling { url, .. } => url.clone(),
        })
    }

    fn deploy<'a>(
        &'a self,
        colour: Colour,
        version: &'a str,
        ctx: &'a StepCtx,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            if self.cfg.rolling() {
                return self.plan(colour, version, ctx).await;
            }
            let app = self.app_of(colour).to_string();
            self.roll_out(&app, version, &ctx.key("deploy"), ctx).await
        })
    }

    /// Nothing: greenlight never deletes or scales an Argo CD application; the idle colour's
    /// application stays as it is (warm for the next rollback).
    fn teardown(&self, _colour: Colour) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}
