//! CI evidence from GitLab: the version resolved to its commit, the commit's latest pipeline,
//! and that pipeline's jobs (each job is a check, so `required` names jobs; a pipeline without
//! jobs listed counts as one check).

use super::judge::{judge, Check, State};
use super::schema::ForgeSettings;
use super::{BoxFuture, CiSource};
use crate::core::evidence::Verdict;
use crate::remote::gitlab::{self, commit_pipelines as cp};
use crate::remote::rest::{Api, ApiError};
use std::time::Duration;
use tokio::time::Instant;

pub struct GitlabCi {
    api: Api,
    project: String,
}

impl GitlabCi {
    pub fn new(s: &ForgeSettings, http: reqwest::Client) -> Result<GitlabCi, String> {
        Ok(GitlabCi {
            api: gitlab::api(&s.api_url, &s.token, http)?,
            project: s.repo.clone(),
        })
    }

    async fn checks(
        &self,
        version: &str,
        until: Instant,
    ) -> Result<Result<(String, Vec<Check>), String>, ApiError> {
        let Some(sha) = cp::resolve(&self.api, &self.project, version, until).await? else {
            return Ok(Err(format!(
                "version {version} not found in {}",
                self.project
            )));
        };
        let Some(p) = cp::latest_pipeline(&self.api, &self.project, &sha, until).await? else {
            return Ok(Ok((sha, Vec::new())));
        };
        let jobs = cp::jobs(&self.api, &self.project, p.id, until).await?;
        if jobs.is_empty() {
            let name = format!("pipeline #{}", p.id);
            return Ok(Ok((sha, vec![Check::new(name, state(&p.status, false))])));
        }
        let checks = jobs
            .into_iter()
            .map(|j| {
                let s = state(&j.status, j.allow_failure);
                Check::new(j.name, s)
            })
            .collect();
        Ok(Ok((sha, checks)))
    }
}

/// A pipeline's or job's status; a job allowed to fail (or a manual one that is optional)
/// never blocks.
fn state(status: &str, allow_failure: bool) -> State {
    match (status, allow_failure) {
        ("success", _) => State::Passed,
        ("skipped", _) => State::Neutral("skipped".into()),
        ("failed" | "canceled", true) => State::Neutral(format!("{status}, allowed to fail")),
        ("manual", true) => State::Neutral("manual, optional".into()),
        ("failed" | "canceled", false) => State::Failed(status.into()),
        (other, _) => State::Running(other.into()),
    }
}

impl CiSource for GitlabCi {
    fn read<'a>(
        &'a self,
        version: &'a str,
        required: &'a [String],
        deadline: Duration,
    ) -> BoxFuture<'a, Verdict> {
        Box::pin(async move {
            match self.checks(version, Instant::now() + deadline).await {
                Ok(Ok((sha, checks))) if checks.is_empty() => Verdict::Missing {
                    why: format!(
                        "no pipeline ran for commit {}",
                        sha.get(..7).unwrap_or(&sha)
                    ),
                },
                Ok(Ok((sha, checks))) => judge(&checks, required, &sha),
                Ok(Err(why)) => Verdict::Missing { why },
                Err(e) => Verdict::Unavailable { why: e.detail },
            }
        })
    }
}
