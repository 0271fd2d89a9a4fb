//! `POST /repos/{owner}/{repo}/pulls` and `GET .../pulls?head=owner:branch&state=all`.

use crate::remote::rest::{Api, ApiError};
use reqwest::Method;
use serde::Deserialize;
use tokio::time::Instant;

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Pull {
    pub number: u64,
    pub html_url: String,
    pub state: String,
}

/// Opens a pull request of `head` into `base`. GitHub answers 422 "A pull request already
/// exists for owner:branch." when one is open: that is `Ok(None)`, find it with `find`.
pub async fn open(
    api: &Api,
    repo: &str,
    head: &str,
    base: &str,
    title: &str,
    body: &str,
    until: Instant,
) -> Result<Option<Pull>, ApiError> {
    let req = serde_json::json!({"title": title, "head": head, "base": base, "body": body});
    match api
        .send(
            Method::POST,
            &format!("repos/{repo}/pulls"),
            Some(&req),
            until,
        )
        .await
    {
        Ok(a) => Ok(Some(a.json(api)?)),
        Err(e) if e.status == Some(422) && e.detail.contains("already exists") => Ok(None),
        Err(e) => Err(e),
    }
}

/// The pull requests (open or closed) from branch `head` of the repository's owner.
pub async fn find(
    api: &Api,
    repo: &str,
    head: &str,
    until: Instant,
) -> Result<Vec<Pull>, ApiError> {
    let owner = repo.split('/').next().unwrap_or_default();
    let a = api
        .get(
            &format!("repos/{repo}/pulls?head={owner}:{head}&state=all"),
            until,
        )
        .await?;
    a.json(api)
}
