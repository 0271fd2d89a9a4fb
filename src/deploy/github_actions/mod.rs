//! The `github-actions` deploy step: dispatches a workflow with the version, the colour and the
//! environment as inputs, finds the run it started, and waits until it completes. Traffic is
//! switched by the environment's traffic step (`haproxy` or `command`).
//!
//! A dispatch is never sent twice for one deploy of a run: the intent (`dispatched_at`, ref,
//! inputs) is written to the journal and flushed before the POST, and the run's id as soon as
//! it is known. After a restart, or a POST whose answer was lost (`Uncertain`), the step looks
//! for the run created after `dispatched_at` instead of dispatching again, and says so plainly
//! when none appears.
//!
//! Shape: `schema.rs` the section and its validation, this file the step; the client is
//! `remote::github`.

pub mod schema;
#[cfg(test)]
mod tests;

pub use schema::GitHubActionsConfig;

use super::{BoxFuture, DeployStep, StepCtx};
use crate::core::text::render_template;
use crate::core::{Colour, EnvName};
use crate::remote::github::{GitHub, WorkflowRun};
use crate::remote::{ApiError, ErrorKind};
use crate::store::Journal;
use crate::telemetry::fault;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tokio::time::Instant;

/// How far before `dispatched_at` a run may have been created and still be ours: GitHub's
/// timestamps are whole seconds and its clock is not ours.
const CLOCK_SKEW: chrono::Duration = chrono::Duration::seconds(10);

/// The step for one environment.
pub struct GitHubActionsDeploy {
    pub env: EnvName,
    pub cfg: GitHubActionsConfig,
    pub github: GitHub,
    pub journal: Journal,
}

/// What the journal holds under the run's `deploy` key.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    colour: Colour,
    version: String,
    dispatched_at: DateTime<Utc>,
    #[serde(rename = "ref")]
    git_ref: String,
    inputs: BTreeMap<String, String>,
    run_id: Option<u64>,
    /// GitHub refused the dispatch (nothing started): the reason, said again after a restart.
    refused: Option<String>,
    /// The dispatch's answer was lost (it may or may not have started a run).
    #[serde(default)]
    lost: bool,
}

impl DeployStep for GitHubActionsDeploy {
    fn url(&self, colour: Colour) -> Option<String> {
        Some(match colour {
            Colour::Blue => self.cfg.blue_url.clone(),
            Colour::Green => self.cfg.green_url.clone(),
        })
    }

    fn deploy<'a>(
        &'a self,
        colour: Colour,
        version: &'a str,
        ctx: &'a StepCtx,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(self.run(colour, version, ctx))
    }

    fn teardown(&self, colour: Colour) -> BoxFuture<'_, ()> {
        let env = self.env.clone();
        Box::pin(async move {
            tracing::info!(%env, %colour, "github-actions: no teardown workflow; {colour} is left as the last run put it");
        })
    }
}

impl GitHubActionsDeploy {
    async fn run(&self, colour: Colour, version: &str, ctx: &StepCtx) -> Result<(), String> {
        let until = Instant::now() + self.cfg.timeout;
        let key = ctx.key("deploy");
        let recorded: Option<Record> = self
            .journal
            .get(&key)
            .map_err(|e| format!("GitHub Actions: cannot read the journal: {e}"))?;
        // A record of another colour or version is an earlier deploy of this run; only the
        // same one is followed.
        let recorded = recorded.filter(|r| r.colour == colour && r.version == version);
        let resumed = recorded.is_some();
        let mut rec = match recorded {
            Some(r) => r,
            None => self.dispatch(colour, version, ctx, &key, until).await?,
        };
        if let Some(why) = &rec.refused {
            return Err(why.clone());
        }
        let id = match rec.run_id {
            Some(id) if resumed => id,
            known => {
                let id = match known {
                    Some(id) => id,
                    None => self.find(&rec, resumed, until).await?,
                };
                rec.run_id = Some(id);
                self.put(&key, &rec).await?;
                fault("github:dispatched");
                id
            }
        };
        self.follow(id, ctx, until).await
    }

    /// Writes the intent, then dispatches once. A refusal is recorded and returned; a lost
    /// answer leaves the run to be looked for.
    async fn dispatch(
        &self,
        colour: Colour,
        version: &str,
        ctx: &StepCtx,
        key: &str,
        until: Instant,
    ) -> Result<Record, String> {
        let vars: BTreeMap<String, String> = [
            ("version", version),
            ("env", ctx.env.0.as_str()),
            ("colour", colour.as_str()),
            ("color", colour.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let render =
            |t: &str| render_template(t, &vars).map_err(|m| format!("GitHub Actions: {m}"));
        let mut inputs = BTreeMap::new();
        for (k, t) in &self.cfg.inputs {
            inputs.insert(k.clone(), render(t)?);
        }
        let mut rec = Record {
            colour,
            version: version.to_string(),
            dispatched_at: Utc::now(),
            git_ref: render(&self.cfg.git_ref)?,
            inputs,
            run_id: None,
            refused: None,
            lost: false,
        };
        self.put(key, &rec).await?;
        fault("github:journaled");
        let workflow = &self.cfg.workflow;
        match self
            .github
            .dispatch(workflow, &rec.git_ref, &rec.inputs, until)
            .await
        {
            Ok(d) => rec.run_id = d.run_id,
            Err(e) if e.kind == ErrorKind::Uncertain => {
                rec.lost = true;
                tracing::warn!(env = %self.env, error = %e, "the dispatch may have started a run: looking for it");
            }
            Err(e) => {
                let why = format!(
                    "GitHub Actions: dispatching {workflow} on {} failed, nothing was deployed: {e}",
                    rec.git_ref
                );
                rec.refused = Some(why);
                self.put(key, &rec).await?;
            }
        }
        Ok(rec)
    }

    /// The run a dispatch started: the oldest `workflow_dispatch` run of the workflow on the
    /// ref created since the dispatch (a later one may be somebody else's), looked for until
    /// `find_timeout` (runs take seconds to appear).
    async fn find(&self, rec: &Record, resumed: bool, until: Instant) -> Result<u64, String> {
        let since = rec.dispatched_at - CLOCK_SKEW;
        let give_up = until.min(Instant::now() + self.cfg.find_timeout);
        let mut last: Option<ApiError> = None;
        loop {
            let runs = self
                .github
                .dispatched_runs(&self.cfg.workflow, &rec.git_ref, since, give_up)
                .await;
            match runs {
                Ok(runs) => {
                    if let Some(r) = oldest_since(&runs, &rec.git_ref, since) {
                        return Ok(r.id);
                    }
                }
                Err(e) if e.kind == ErrorKind::Refused => {
                    return Err(format!("GitHub Actions: looking for the run failed: {e}"))
                }
                Err(e) => last = Some(e),
            }
            if Instant::now() + self.cfg.poll_interval > give_up {
                break;
            }
            tokio::time::sleep(self.cfg.poll_interval).await;
        }
        let dispatch = if resumed {
            "the dispatch sent before greenlight restarted: the dispatch may not have happened"
        } else if rec.lost {
            "the dispatch whose answer was lost: the dispatch may not have happened"
        } else {
            "the dispatch GitHub accepted"
        };
        let last = last
            .map(|e| format!(" (last error: {e})"))
            .unwrap_or_default();
        Err(format!(
            "GitHub Actions: no run of {} on {} appeared within {} of {dispatch}, and greenlight will not dispatch twice; check the Actions page of {}, then deploy again{last}",
            self.cfg.workflow,
            rec.git_ref,
            humantime::format_duration(self.cfg.find_timeout),
            self.github.repo,
        ))
    }

    /// Polls the run until it completes or the step's time is up.
    async fn follow(&self, id: u64, ctx: &StepCtx, until: Instant) -> Result<(), String> {
        let mut noted = false;
        loop {
            let run = self
                .github
                .run(id, until)
                .await
                .map_err(|e| format!("GitHub Actions run {id}: {e}"))?;
            if !noted {
                ctx.note(format!(
                    "GitHub Actions run #{}: {}",
                    run.run_number, run.html_url
                ));
                noted = true;
            }
            if run.completed() {
                return match run.conclusion.as_deref() {
                    Some("success") => Ok(()),
                    other => Err(format!(
                        "GitHub Actions run #{} concluded {}: {}",
                        run.run_number,
                        other.unwrap_or("without a conclusion"),
                        run.html_url
                    )),
                };
            }
            if Instant::now() + self.cfg.poll_interval > until {
                return Err(format!(
                    "GitHub Actions run #{} did not complete within {} (still {}): {}",
                    run.run_number,
                    humantime::format_duration(self.cfg.timeout),
                    run.status.as_deref().unwrap_or("unknown"),
                    run.html_url
                ));
            }
            tokio::time::sleep(self.cfg.poll_interval).await;
        }
    }

    async fn put(&self, key: &str, rec: &Record) -> Result<(), String> {
        self.journal
            .put(key, rec)
            .await
            .map_err(|e| format!("GitHub Actions: cannot write the journal: {e}"))
    }
}

fn oldest_since<'a>(
    runs: &'a [WorkflowRun],
    git_ref: &str,
    since: DateTime<Utc>,
) -> Option<&'a WorkflowRun> {
    runs.iter()
        .filter(|r| r.event == "workflow_dispatch" && r.created_at >= since)
        .filter(|r| r.head_branch.as_deref().is_none_or(|b| b == git_ref))
        .min_by_key(|r| (r.created_at, r.id))
}
