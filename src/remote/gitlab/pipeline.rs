//! `GET /projects/:id/pipelines/:pipeline_id`: one pipeline, with its `status` and `web_url`.

use super::{Gitlab, Pipeline};
use crate::remote::ApiError;
use tokio::time::Instant;

pub async fn get(gl: &Gitlab, id: u64, until: Instant) -> Result<Pipeline, ApiError> {
    let answer = gl
        .api
        .get(&gl.path(&format!("pipelines/{id}")), until)
        .await?;
    answer.json(&gl.api)
}
