//! What GitLab's pipeline endpoints answer (the fields greenlight reads; others are ignored).

use chrono::{DateTime, Utc};
use serde::Deserialize;

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
