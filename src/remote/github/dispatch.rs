//! `POST /repos/{o}/{r}/actions/workflows/{workflow}/dispatches`: starts a workflow run.
//!
//! GitHub answers 204 without a body, or (asked with `return_run_details`) 200 with the new
//! run's `workflow_run_id`, `run_url` and `html_url`. A server that does not know the key
//! refuses it with 422 (nothing was dispatched), and the request is sent once more without it.

use super::GitHub;
use crate::remote::rest::{ApiError, ErrorKind};
use reqwest::Method;
use serde::Deserialize;
use std::collections::BTreeMap;
use tokio::time::Instant;

/// What a dispatch answered: the run's id and page when the server says.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Dispatched {
    #[serde(rename = "workflow_run_id")]
    pub run_id: Option<u64>,
    pub html_url: Option<String>,
}

impl GitHub {
    /// Dispatches `workflow` (file name or id) on `git_ref` with string `inputs`. A failure of
    /// kind `Uncertain` may have started a run: look for it, never send this again blindly.
    pub async fn dispatch(
        &self,
        workflow: &str,
        git_ref: &str,
        inputs: &BTreeMap<String, String>,
        until: Instant,
    ) -> Result<Dispatched, ApiError> {
        let path = self.path(&format!("actions/workflows/{workflow}/dispatches"));
        let mut body = serde_json::json!({ "ref": git_ref, "inputs": inputs });
        body["return_run_details"] = true.into();
        let answer = match self.api.send(Method::POST, &path, Some(&body), until).await {
            Err(e) if e.kind == ErrorKind::Rejected && e.detail.contains("return_run_details") => {
                body.as_object_mut().map(|b| b.remove("return_run_details"));
                self.api
                    .send(Method::POST, &path, Some(&body), until)
                    .await?
            }
            other => other?,
        };
        if answer.status == 204 || answer.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Dispatched::default());
        }
        answer.json(&self.api)
    }
}
