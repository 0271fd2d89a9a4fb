//! `POST /projects/:id/trigger/pipeline`: creates a pipeline with a pipeline trigger token.
//! The body is a form (`token`, `ref`, `variables[KEY]=VALUE`); 201 with the pipeline.

use super::{Gitlab, Pipeline};
use crate::remote::ApiError;
use std::collections::BTreeMap;
use tokio::time::Instant;

impl Gitlab {
    pub async fn trigger(
        &self,
        token: &str,
        git_ref: &str,
        variables: &BTreeMap<String, String>,
        until: Instant,
    ) -> Result<Pipeline, ApiError> {
        let mut form = vec![
            ("token".to_string(), token.to_string()),
            ("ref".to_string(), git_ref.to_string()),
        ];
        form.extend(
            variables
                .iter()
                .map(|(k, v)| (format!("variables[{k}]"), v.clone())),
        );
        let answer = self
            .api
            .send_form(&self.path("trigger/pipeline"), &form, until)
            .await?;
        answer.json(&self.api)
    }
}
