//! CI evidence from GitHub: the version resolved to its commit, then its check runs AND its
//! commit statuses (Actions reports only the first, older CIs only the second).

use super::judge::{judge, Check, State};
use super::schema::ForgeSettings;
use super::{BoxFuture, CiSource};
use crate::core::evidence::Verdict;
use crate::remote::github::{self, checks};
use crate::remote::rest::{Api, ApiError};
use std::time::Duration;
use tokio::time::Instant;

pub struct GithubCi {
    api: Api,
    repo: String,
}

impl GithubCi {
    pub fn new(s: &ForgeSettings, http: reqwest::Client) -> Result<GithubCi, String> {
        Ok(GithubCi {
            api: github::GitHub::api(&s.api_url, &s.token, http)?,
            repo: s.repo.clone(),
        })
    }

    async fn checks(
        &self,
        version: &str,
        until: Instant,
    ) -> Result<Result<(String, Vec<Check>), String>, ApiError> {
        let Some(sha) = github::commit::resolve(&self.api, &self.repo, version, until).await?
        else {
            return Ok(Err(format!("version {version} not found in {}", self.repo)));
        };
        let runs = checks::check_runs(&self.api, &self.repo, &sha, until).await?;
        let statuses = checks::statuses(&self.api, &self.repo, &sha, until).await?;
        let mut out: Vec<Check> = runs.into_iter().map(check_run).collect();
        out.extend(statuses.into_iter().map(status));
        Ok(Ok((sha, out)))
    }
}

/// A check run's state: `conclusion` once `completed`, else still running.
fn check_run(r: checks::CheckRun) -> Check {
    let state = match (r.status.as_str(), r.conclusion.as_deref()) {
        ("completed", Some("success")) => State::Passed,
        ("completed", Some(c @ ("neutral" | "skipped"))) => State::Neutral(c.into()),
        ("completed", Some(c)) => State::Failed(c.into()),
        ("completed", None) => State::Failed("completed without a conclusion".into()),
        (s, _) => State::Running(s.into()),
    };
    Check::new(r.name, state)
}

fn status(s: checks::Status) -> Check {
    let state = match s.state.as_str() {
        "success" => State::Passed,
        "pending" => State::Running("pending".into()),
        other => State::Failed(other.into()),
    };
    Check::new(s.context, state)
}

impl CiSource for GithubCi {
    fn read<'a>(
        &'a self,
        version: &'a str,
        required: &'a [String],
        deadline: Duration,
    ) -> BoxFuture<'a, Verdict> {
        Box::pin(async move {
            match self.checks(version, Instant::now() + deadline).await {
                Ok(Ok((sha, checks))) => judge(&checks, required, &sha),
                Ok(Err(why)) => Verdict::Missing { why },
                Err(e) => Verdict::Unavailable { why: e.detail },
            }
        })
    }
}
