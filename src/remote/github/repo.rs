//! `GET /repos/{owner}/{repo}`: the repository's default branch (where a revert is proposed).

use crate::remote::rest::{Api, ApiError};
use serde::Deserialize;
use tokio::time::Instant;

#[derive(Deserialize)]
struct Repository {
    default_branch: String,
}

pub async fn default_branch(api: &Api, repo: &str, until: Instant) -> Result<String, ApiError> {
    let a = api.get(&format!("repos/{repo}"), until).await?;
    Ok(a.json::<Repository>(api)?.default_branch)
}
