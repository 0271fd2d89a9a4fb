//! `POST /repos/{owner}/{repo}/git/commits`: a commit of `tree` on `parent`.

use crate::remote::rest::{Api, ApiError};
use reqwest::Method;
use serde::Deserialize;
use tokio::time::Instant;

pub async fn create(
    api: &Api,
    repo: &str,
    message: &str,
    tree: &str,
    parent: &str,
    until: Instant,
) -> Result<String, ApiError> {
    let body = serde_json::json!({"message": message, "tree": tree, "parents": [parent]});
    let a = api
        .send(
            Method::POST,
            &format!("repos/{repo}/git/commits"),
            Some(&body),
            until,
        )
        .await?;
    #[derive(Deserialize)]
    struct Created {
        sha: String,
    }
    Ok(a.json::<Created>(api)?.sha)
}
