//! The `gitlab` deploy step: a version goes on a colour by a GitLab CI pipeline, created with
//! a trigger token (`trigger.rs`) or an access token (`create.rs`), then followed until it
//! ends. Traffic is switched by the environment's traffic step.
//!
//! A pipeline is started at most once per run: the intent (`started_at`, `ref`, variables) is
//! in the journal, flushed, before the request, and the pipeline's id after it. After a
//! restart, or a request that may have reached GitLab without an answer, the step follows the
//! recorded pipeline, or finds the one created on that ref since `started_at`; when there is
//! none it fails and says so rather than start a second one.
//!
//! Shape: `schema.rs` the section and its validation, this file the step; the client is
//! `remote::gitlab`.

pub mod schema;

pub use schema::GitlabDeployConfig;

use super::{BoxFuture, DeployStep, StepCtx};
use crate::core::Colour;
use crate::remote::gitlab::pipelines::Query;
use crate::remote::gitlab::{Gitlab, Pipeline, State};
use crate::remote::{ApiError, ErrorKind};
use crate::store::Journal;
use crate::telemetry::fault;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tokio::time::Instant;

/// How far GitLab's clock may run behind ours when a pipeline is looked for by its creation
/// time after a restart.
const CLOCK_SKEW: chrono::Duration = chrono::Duration::seconds(10);

/// What the step writes in the journal under the run's `deploy` key.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    started_at: DateTime<Utc>,
    #[serde(rename = "ref")]
    git_ref: String,
    variables: BTreeMap<String, String>,
    /// `trigger` or `api`: the endpoint used, and the pipeline's `source`.
    source: String,
    pipeline: Option<u64>,
}

/// The step: one environment's GitLab project, its templates and its journal.
pub struct GitlabDeploy {
    gl: Gitlab,
    cfg: GitlabDeployConfig,
    journal: Journal,
    env: crate::core::EnvName,
}

impl GitlabDeploy {
    pub fn new(
        env: crate::core::EnvName,
        cfg: GitlabDeployConfig,
        journal: Journal,
        client: reqwest::Client,
    ) -> Result<GitlabDeploy, String> {
        let gl = Gitlab::new(&cfg.settings, client)?;
        Ok(GitlabDeploy {
            gl,
            cfg,
            journal,
            env,
        })
    }

    /// The client (tests point its retries at shorter waits).
    pub fn client_mut(&mut self) -> &mut Gitlab {
        &mut self.gl
    }

    async fn run(&self, colour: Colour, version: &str, ctx: &StepCtx) -> Result<(), String> {
        let until = Instant::now() + self.cfg.timeout;
        let key = ctx.key("deploy");
        let recorded: Option<Record> = self
            .journal
            .get(&key)
            .map_err(|e| format!("GitLab: cannot read this step's journal ({e}); greenlight will not start a second pipeline"))?;
        let p = match recorded {
            None => self.start(&key, colour, version, until).await?,
            Some(rec) => match rec.pipeline {
                Some(id) => self
                    .gl
                    .pipeline(id, until)
                    .await
                    .map_err(|e| self.failed(&e, None))?,
                None => self.find(&key, rec, until).await?,
            },
        };
        ctx.note(format!("GitLab pipeline #{}: {}", p.id, p.web_url));
        self.follow(p, until).await
    }

    /// Records the intent, creates the pipeline, records its id.
    async fn start(
        &self,
        key: &str,
        colour: Colour,
        version: &str,
        until: Instant,
    ) -> Result<Pipeline, String> {
        let mut vars = BTreeMap::new();
        vars.insert("version".to_string(), version.to_string());
        vars.insert("env".to_string(), self.env.0.clone());
        vars.insert("colour".to_string(), colour.to_string());
        vars.insert("color".to_string(), colour.to_string());
        let git_ref =
            schema::render(&self.cfg.git_ref, &vars).map_err(|m| format!("GitLab ref: {m}"))?;
        let mut variables = BTreeMap::new();
        for (k, t) in &self.cfg.variables {
            let v = schema::render(t, &vars).map_err(|m| format!("GitLab variable {k}: {m}"))?;
            variables.insert(k.clone(), v);
        }
        let source = if self.gl.trigger_token.is_some() {
            "trigger"
        } else {
            "api"
        };
        let mut rec = Record {
            started_at: Utc::now(),
            git_ref,
            variables,
            source: source.to_string(),
            pipeline: None,
        };
        self.put(key, &rec)
            .await
            .map_err(|e| format!("{e}; no pipeline was created"))?;
        fault("gitlab:journaled");
        let created = match &self.gl.trigger_token {
            Some(t) => {
                self.gl
                    .trigger(t, &rec.git_ref, &rec.variables, until)
                    .await
            }
            None => {
                self.gl
                    .create_pipeline(&rec.git_ref, &rec.variables, until)
                    .await
            }
        };
        let p = match created {
            Ok(p) => p,
            // It may have been created: look, never send it again.
            Err(e) if e.kind == ErrorKind::Uncertain => {
                tracing::warn!(env = %self.env, error = %e, "GitLab: no answer to the pipeline request; looking for it");
                return self.find(key, rec, until).await;
            }
            Err(e) => return Err(self.not_created(&e, &rec.git_ref)),
        };
        rec.pipeline = Some(p.id);
        self.put(key, &rec).await?;
        fault("gitlab:created");
        Ok(p)
    }

    /// The pipeline on the recorded ref created since the intent was written: the first one
    /// (a later one is someone else's). Looked for until `find_timeout` has passed.
    async fn find(&self, key: &str, mut rec: Record, until: Instant) -> Result<Pipeline, String> {
        let since = rec.started_at - CLOCK_SKEW;
        let give_up = until.min(Instant::now() + self.cfg.find_timeout);
        let q = Query {
            git_ref: Some(&rec.git_ref),
            source: Some(&rec.source),
            updated_after: Some(since),
            ..Query::default()
        };
        loop {
            // Each look may take until the step's deadline (a slow answer is still an answer);
            // `give_up` only ends the looking.
            let found = self
                .gl
                .pipelines(&q, 5, until)
                .await
                .map_err(|e| self.failed(&e, None))?
                .into_iter()
                .filter(|p| p.created_at.is_some_and(|c| c >= since))
                .min_by_key(|p| p.id);
            if let Some(p) = found {
                rec.pipeline = Some(p.id);
                self.put(key, &rec).await?;
                return Ok(p);
            }
            if Instant::now() + self.cfg.poll_interval > give_up {
                return Err(format!(
                    "GitLab: no pipeline on ref {} created since {}: it may not have started; greenlight will not start a second one (look at the project's pipelines in GitLab)",
                    rec.git_ref,
                    rec.started_at.format("%Y-%m-%d %H:%M:%S UTC")
                ));
            }
            tokio::time::sleep(self.cfg.poll_interval).await;
        }
    }

    /// Polls the pipeline until it ends or the step's time is up.
    async fn follow(&self, mut p: Pipeline, until: Instant) -> Result<(), String> {
        loop {
            match p.state() {
                State::Succeeded => return Ok(()),
                State::Ended => {
                    return Err(format!("GitLab pipeline #{} {}: {}", p.id, p.status, p.web_url))
                }
                State::Manual => return Err(format!(
                    "GitLab pipeline #{} waits for a person: a manual job must be started in GitLab ({})",
                    p.id, p.web_url
                )),
                State::Going => {}
            }
            if Instant::now() + self.cfg.poll_interval > until {
                return Err(self.timed_out(&p));
            }
            tokio::time::sleep(self.cfg.poll_interval).await;
            p = match self.gl.pipeline(p.id, until).await {
                Ok(next) => next,
                Err(e) => return Err(self.failed(&e, Some(&p))),
            };
        }
    }

    fn timed_out(&self, p: &Pipeline) -> String {
        format!(
            "GitLab pipeline #{} did not finish within {} (still {}; greenlight did not cancel it): {}",
            p.id,
            humantime::format_duration(self.cfg.timeout),
            p.status,
            p.web_url
        )
    }

    /// A request about a pipeline that exists failed (the sender already retried what can be).
    fn failed(&self, e: &ApiError, p: Option<&Pipeline>) -> String {
        let link = p
            .map(|p| format!(" (pipeline #{}: {})", p.id, p.web_url))
            .unwrap_or_default();
        // Without an access token only a public project's pipelines can be read.
        let hint = if self.cfg.settings.token.is_none()
            && matches!(e.kind, ErrorKind::NotFound | ErrorKind::Refused)
        {
            " (following a private project's pipeline needs token = \"${NAME}\", an access token with read_api)"
        } else {
            ""
        };
        let link = format!("{hint}{link}");
        match e.kind {
            ErrorKind::Unavailable => format!(
                "{e}: gave up within the step's {}{link}",
                humantime::format_duration(self.cfg.timeout)
            ),
            _ => format!("{e}{link}"),
        }
    }

    /// The create request failed for sure: nothing runs in GitLab.
    fn not_created(&self, e: &ApiError, git_ref: &str) -> String {
        let why = match e.kind {
            ErrorKind::NotFound => {
                format!("{e} (the project, or the trigger token, is not known to GitLab)")
            }
            ErrorKind::Rejected => format!("{e} (ref {git_ref})"),
            _ => e.to_string(),
        };
        format!("{why}; no pipeline was created, nothing was deployed")
    }

    async fn put(&self, key: &str, rec: &Record) -> Result<(), String> {
        self.journal
            .put(key, rec)
            .await
            .map_err(|e| format!("GitLab: cannot write this step's journal ({e})"))
    }
}

impl DeployStep for GitlabDeploy {
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

    /// A pipeline deploys; nothing here takes a colour down (the pipeline's own jobs may).
    fn teardown(&self, colour: Colour) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            tracing::debug!(env = %self.env, %colour, "gitlab: no teardown; the idle colour stays as the pipeline left it");
        })
    }
}
