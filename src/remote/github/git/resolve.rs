//! `GET /repos/{owner}/{repo}/commits/{ref}`: a version (tag, branch or sha) to its commit
//! and that commit's tree.

use crate::remote::rest::{Api, ApiError};
use serde::Deserialize;
use tokio::time::Instant;

#[derive(Deserialize)]
struct Commit {
    sha: String,
    commit: Inner,
}
#[derive(Deserialize)]
struct Inner {
    tree: Sha,
}
#[derive(Deserialize)]
struct Sha {
    sha: String,
}

/// The commit a ref names, and its tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub commit: String,
    pub tree: String,
}

pub async fn resolve(api: &Api, repo: &str, r: &str, until: Instant) -> Result<Resolved, ApiError> {
    let r = url::form_urlencoded::byte_serialize(r.as_bytes()).collect::<String>();
    let a = api.get(&format!("repos/{repo}/commits/{r}"), until).await?;
    let c: Commit = a.json(api)?;
    Ok(Resolved {
        commit: c.sha,
        tree: c.commit.tree.sha,
    })
}
