//! `POST /projects/:id/merge_requests` and `GET .../merge_requests?source_branch=...`.

use super::Gitlab;
use crate::remote::path::segment;
use crate::remote::ApiError;
use reqwest::Method;
use serde::Deserialize;
use tokio::time::Instant;

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct MergeRequest {
    pub iid: u64,
    pub web_url: String,
    pub state: String,
}

impl Gitlab {
    /// Opens a merge request of `source` into `target`. GitLab answers 409 "Another open merge
    /// request already exists for this source branch" when one is open: `Ok(None)`.
    pub async fn open_merge_request(
        &self,
        source: &str,
        target: &str,
        title: &str,
        description: &str,
        until: Instant,
    ) -> Result<Option<MergeRequest>, ApiError> {
        let body = serde_json::json!({
            "source_branch": source,
            "target_branch": target,
            "title": title,
            "description": description,
            "remove_source_branch": true,
        });
        match self
            .api
            .send(
                Method::POST,
                &self.path("merge_requests"),
                Some(&body),
                until,
            )
            .await
        {
            Ok(a) => Ok(Some(a.json(&self.api)?)),
            Err(e) if e.status == Some(409) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The merge requests (any state) from branch `source`.
    pub async fn merge_requests_from(
        &self,
        source: &str,
        until: Instant,
    ) -> Result<Vec<MergeRequest>, ApiError> {
        let path = self.path(&format!(
            "merge_requests?source_branch={}&state=all",
            segment(source)
        ));
        self.api.get(&path, until).await?.json(&self.api)
    }
}
