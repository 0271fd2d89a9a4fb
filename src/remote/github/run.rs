//! `GET /repos/{o}/{r}/actions/runs/{id}`: one workflow run, its status and conclusion.

use super::{GitHub, WorkflowRun};
use crate::remote::rest::ApiError;
use tokio::time::Instant;

impl GitHub {
    pub async fn run(&self, id: u64, until: Instant) -> Result<WorkflowRun, ApiError> {
        let answer = self
            .api
            .get(&self.path(&format!("actions/runs/{id}")), until)
            .await?;
        answer.json(&self.api)
    }
}
