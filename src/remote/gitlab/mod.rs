//! GitLab's REST API (v4): the client built from resolved settings, the pipeline types, and
//! one small file per endpoint. Plain requests through `remote::rest` (retries, rate limits,
//! refusals in one line, secrets masked); the `gitlab` crate is synchronous-first and far
//! larger than the handful of endpoints greenlight calls.
//!
//! Shape: `schema.rs` the `[gitlab]` keys (the top-level section and a driver's overrides)
//! and their resolution, this file the client and what the endpoints answer, then one file
//! per endpoint, each an `impl` block on [`Gitlab`]: `trigger.rs`, `create.rs`, `pipeline.rs`,
//! `pipelines.rs`. A new endpoint is a new file beside these. The checklist's CI evidence
//! reads `commit_pipelines.rs` (a ref's commit, its latest pipeline, its jobs) with [`api`]. A
//! revert reads `repository.rs` (default branch, a branch's head, trees, blobs) and writes
//! `commits.rs` (a commit on a new branch) and `merge_requests.rs`.

pub mod commit_pipelines;
pub mod commits;
pub mod create;
pub mod merge_requests;
pub mod pipeline;
pub mod pipelines;
pub mod repository;
pub mod schema;
pub mod trigger;

pub use schema::{GitlabSection, Keys, Settings};

use super::rest::Api;
use chrono::{DateTime, Utc};
use serde::Deserialize;

/// A GitLab API at `base` (e.g. `https://gitlab.com/api/v4`) with a personal, project or
/// group access token.
pub fn api(base: &str, token: &str, client: reqwest::Client) -> Result<Api, String> {
    Api::new("GitLab", base, client, vec![token.to_string()])?.header("private-token", token, true)
}

/// A project on a GitLab instance, with the credentials to reach it.
#[derive(Clone)]
pub struct Gitlab {
    pub api: Api,
    /// The project's id as it goes in a path: numeric, or the URL-encoded path.
    project: String,
    /// The pipeline trigger token, if the settings hold one (sent in the form, never a header).
    pub trigger_token: Option<String>,
}

impl Gitlab {
    /// The client for `s`: `PRIVATE-TOKEN` on every request when a personal, project or group
    /// access token is set (reading pipelines of a private project needs one).
    pub fn new(s: &Settings, client: reqwest::Client) -> Result<Gitlab, String> {
        let mut api = Api::new("GitLab", &s.api_url, client, s.secrets())?;
        if let Some(t) = &s.token {
            api = api.header("private-token", t, true)?;
        }
        Ok(Gitlab {
            api,
            project: project_id(&s.project),
            trigger_token: s.trigger_token.clone(),
        })
    }

    /// `projects/:id/<rest>`.
    pub fn path(&self, rest: &str) -> String {
        format!("projects/{}/{rest}", self.project)
    }
}

/// A project as the API's `:id` takes it: a number as is, a path (`group/sub/project`)
/// URL-encoded (`group%2Fsub%2Fproject`); one already encoded is left alone.
pub fn project_id(project: &str) -> String {
    let p = project.trim().trim_matches('/');
    if p.contains('%') || p.bytes().all(|b| b.is_ascii_digit()) {
        return p.to_string();
    }
    url::form_urlencoded::byte_serialize(p.as_bytes())
        .collect::<String>()
        // form encoding writes a space as `+`; a path segment wants `%20`.
        .replace('+', "%20")
}

/// A pipeline, as `POST .../pipeline`, `POST .../trigger/pipeline`, `GET .../pipelines/:id`
/// and `GET .../pipelines` answer it.
#[derive(Debug, Clone, Deserialize)]
pub struct Pipeline {
    pub id: u64,
    #[serde(default)]
    pub iid: Option<u64>,
    #[serde(default)]
    pub project_id: Option<u64>,
    #[serde(default)]
    pub sha: Option<String>,
    #[serde(rename = "ref", default)]
    pub git_ref: Option<String>,
    /// created, waiting_for_resource, preparing, pending, running, success, failed, canceled,
    /// skipped, manual, scheduled.
    pub status: String,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub web_url: String,
}

/// Where a pipeline's status leaves a deploy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// created, waiting_for_resource, preparing, pending, running, scheduled (a delayed job
    /// starts by itself): keep waiting.
    Going,
    Succeeded,
    /// failed, canceled, skipped.
    Ended,
    /// Blocked on a manual job: it waits for a person in GitLab, not for time.
    Manual,
}

impl Pipeline {
    pub fn state(&self) -> State {
        match self.status.as_str() {
            "success" => State::Succeeded,
            "failed" | "canceled" | "skipped" => State::Ended,
            "manual" => State::Manual,
            // Unknown statuses a newer GitLab may add are waited on, bounded by the timeout.
            _ => State::Going,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_project_is_a_number_or_an_encoded_path() {
        assert_eq!(project_id("42"), "42");
        assert_eq!(project_id("group/project"), "group%2Fproject");
        assert_eq!(project_id("/g/sub/p.x/"), "g%2Fsub%2Fp.x");
        assert_eq!(project_id("group%2Fproject"), "group%2Fproject");
    }

    #[test]
    fn the_token_goes_in_private_token_and_paths_keep_the_encoding() {
        let s = Settings {
            api_url: "http://127.0.0.1:9/api/v4".into(),
            project: "g/p".into(),
            token: Some("glpat-x".into()),
            trigger_token: None,
        };
        let gl = Gitlab::new(&s, reqwest::Client::new()).unwrap();
        let u = gl.api.url(&gl.path("pipelines/7")).unwrap();
        assert_eq!(
            u.as_str(),
            "http://127.0.0.1:9/api/v4/projects/g%2Fp/pipelines/7"
        );
    }
}
