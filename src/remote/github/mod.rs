//! GitHub's REST API: the client built from resolved settings (`schema.rs`: the `[github]`
//! keys), the data types greenlight reads, and one small file per endpoint. A new endpoint
//! is a new file beside these, using [`GitHub`]. Actions: `dispatch.rs`, `runs.rs`, `run.rs`;
//! a revert: `repo.rs`, `git/` (the git data API: resolve, trees, commits, refs), `pulls.rs`;
//! checklist evidence: `commit.rs` (a ref to its commit), `checks.rs` (check runs and the
//! combined status of a commit).

pub mod checks;
pub mod commit;
pub mod dispatch;
pub mod git;
pub mod pulls;
pub mod repo;
pub mod run;
pub mod runs;
pub mod schema;

pub use schema::{GitHubKeys, GitHubSection, GitHubSettings};

use super::rest::Api;
use chrono::{DateTime, Utc};
use serde::Deserialize;

/// The API version greenlight is written against (GitHub answers older shapes without it).
pub const API_VERSION: &str = "2022-11-28";

/// A client of one repository: the careful sender with GitHub's headers, and `owner/name`.
#[derive(Clone)]
pub struct GitHub {
    pub api: Api,
    pub repo: String,
}

impl GitHub {
    /// A client from resolved settings. The token is masked in every message.
    pub fn new(s: &GitHubSettings, client: reqwest::Client) -> Result<GitHub, String> {
        let api = Api::new("GitHub", &s.api_url, client, vec![s.token.clone()])?
            .header("authorization", &format!("Bearer {}", s.token), true)?
            .header("accept", "application/vnd.github+json", false)?
            .header("x-github-api-version", API_VERSION, false)?
            // GitHub answers 403 to a request without a User-Agent.
            .header("user-agent", "greenlight", false)?;
        Ok(GitHub {
            api,
            repo: s.repo.clone(),
        })
    }

    /// The careful sender alone, with GitHub's headers, for `base` and `token` (the evidence
    /// reader builds one per forge setting).
    pub fn api(base: &str, token: &str, client: reqwest::Client) -> Result<Api, String> {
        Ok(GitHub::new(
            &GitHubSettings {
                api_url: base.into(),
                token: token.into(),
                repo: String::new(),
            },
            client,
        )?
        .api)
    }

    /// `repos/{owner}/{name}/{rest}`.
    pub fn path(&self, rest: &str) -> String {
        format!("repos/{}/{rest}", self.repo)
    }
}

/// A workflow run, as `GET .../actions/runs` and `.../runs/{id}` describe it (the fields read).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct WorkflowRun {
    pub id: u64,
    pub run_number: u64,
    pub event: String,
    /// `queued`, `in_progress`, `completed` (also `waiting`, `requested`, `pending`).
    pub status: Option<String>,
    /// `success`, `failure`, `cancelled`, `timed_out`, ... or null while it runs.
    pub conclusion: Option<String>,
    pub head_branch: Option<String>,
    pub html_url: String,
    pub created_at: DateTime<Utc>,
}

impl WorkflowRun {
    pub fn completed(&self) -> bool {
        self.status.as_deref() == Some("completed")
    }
}

/// Percent-encodes one query value (`>=2024-...` in a `created` filter).
fn query_value(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

#[cfg(test)]
mod tests;
