//! `GET /projects/:id/pipelines/:pipeline_id`: one pipeline, with its `status` and `web_url`.

use super::{Gitlab, Pipeline};
use crate::remote::ApiError;
use tokio::time::Instant;

impl Gitlab {
    pub async fn pipeline(&self, id: u64, until: Instant) -> Result<Pipeline, ApiError> {
        let answer = self
            .api
            .get(&self.path(&format!("pipelines/{id}")), until)
            .await?;
        answer.json(&self.api)
    }
}
