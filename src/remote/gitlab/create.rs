//! `POST /projects/:id/pipeline`: creates a pipeline with an access token (`PRIVATE-TOKEN`).
//! JSON `{ref, variables: [{key, value, variable_type}]}`; 201 with the pipeline.

use super::{Gitlab, Pipeline};
use crate::remote::ApiError;
use reqwest::Method;
use std::collections::BTreeMap;
use tokio::time::Instant;

impl Gitlab {
    pub async fn create_pipeline(
        &self,
        git_ref: &str,
        variables: &BTreeMap<String, String>,
        until: Instant,
    ) -> Result<Pipeline, ApiError> {
        let vars: Vec<serde_json::Value> = variables
            .iter()
            .map(|(k, v)| serde_json::json!({"key": k, "value": v, "variable_type": "env_var"}))
            .collect();
        let body = serde_json::json!({"ref": git_ref, "variables": vars});
        let answer = self
            .api
            .send(Method::POST, &self.path("pipeline"), Some(&body), until)
            .await?;
        answer.json(&self.api)
    }
}
