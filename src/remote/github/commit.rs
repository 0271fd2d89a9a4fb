//! `GET /repos/{owner}/{repo}/commits/{ref}`: a tag, branch or sha to the commit it names, so
//! that every piece of evidence is pinned to one sha.

use crate::remote::path::segment;
use crate::remote::rest::{Api, ApiError, ErrorKind};
use serde::Deserialize;
use tokio::time::Instant;

#[derive(Debug, Deserialize)]
struct Commit {
    sha: String,
}

/// The sha `reference` names in `repo` (`owner/name`); `None` when GitHub knows no such ref
/// (404, or 422 "No commit found for SHA").
pub async fn resolve(
    api: &Api,
    repo: &str,
    reference: &str,
    until: Instant,
) -> Result<Option<String>, ApiError> {
    let path = format!("repos/{repo}/commits/{}", segment(reference));
    match api.get(&path, until).await {
        Ok(a) => Ok(Some(a.json::<Commit>(api)?.sha)),
        Err(e) if e.kind == ErrorKind::NotFound || e.status == Some(422) => Ok(None),
        Err(e) => Err(e),
    }
}
