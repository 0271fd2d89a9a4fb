//! `GET /repos/{owner}/{repo}/git/ref/heads/{branch}` and `POST .../git/refs`.

use crate::remote::rest::{Api, ApiError, ErrorKind};
use reqwest::Method;
use serde::Deserialize;
use tokio::time::Instant;

#[derive(Deserialize)]
struct Ref {
    object: Object,
}
#[derive(Deserialize)]
struct Object {
    sha: String,
}

/// The commit branch `name` points at; `None` when there is no such branch.
pub async fn head(
    api: &Api,
    repo: &str,
    name: &str,
    until: Instant,
) -> Result<Option<String>, ApiError> {
    match api
        .get(&format!("repos/{repo}/git/ref/heads/{name}"), until)
        .await
    {
        Ok(a) => Ok(Some(a.json::<Ref>(api)?.object.sha)),
        Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Creates branch `name` at `sha`. GitHub answers 422 "Reference already exists" for a
/// branch that exists: that is `Ok(false)`, for the caller to look at.
pub async fn create(
    api: &Api,
    repo: &str,
    name: &str,
    sha: &str,
    until: Instant,
) -> Result<bool, ApiError> {
    let body = serde_json::json!({"ref": format!("refs/heads/{name}"), "sha": sha});
    match api
        .send(
            Method::POST,
            &format!("repos/{repo}/git/refs"),
            Some(&body),
            until,
        )
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if e.status == Some(422) && e.detail.contains("already exists") => Ok(false),
        Err(e) => Err(e),
    }
}
