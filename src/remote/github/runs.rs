//! `GET /repos/{o}/{r}/actions/workflows/{workflow}/runs`: one workflow's runs, newest first,
//! filtered by event, branch and creation time, paginated with `Link`. (The same list as
//! `GET .../actions/runs`, with the same filters, narrowed to the workflow: a run of another
//! workflow dispatched on the same branch is never taken for the one greenlight started.)

use super::{query_value, GitHub, WorkflowRun};
use crate::remote::rest::ApiError;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use tokio::time::Instant;

/// Pages read at most (100 runs each): a dispatch looked for minutes after it was sent.
const MAX_PAGES: usize = 5;

#[derive(Deserialize)]
struct Page {
    workflow_runs: Vec<WorkflowRun>,
}

impl GitHub {
    /// The `workflow_dispatch` runs of `workflow` (file name or id) on `branch` created at or
    /// after `since`.
    pub async fn dispatched_runs(
        &self,
        workflow: &str,
        branch: &str,
        since: DateTime<Utc>,
        until: Instant,
    ) -> Result<Vec<WorkflowRun>, ApiError> {
        let created = format!(">={}", since.to_rfc3339_opts(SecondsFormat::Secs, true));
        let mut next = Some(self.path(&format!(
            "actions/workflows/{workflow}/runs?event=workflow_dispatch&branch={}&created={}&per_page=100",
            query_value(branch),
            query_value(&created)
        )));
        let mut runs = Vec::new();
        for _ in 0..MAX_PAGES {
            let Some(path) = next.take() else { break };
            let answer = self.api.get(&path, until).await?;
            runs.extend(answer.json::<Page>(&self.api)?.workflow_runs);
            next = answer.next_link();
        }
        Ok(runs)
    }
}
