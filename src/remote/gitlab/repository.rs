//! What a revert reads of a project's repository: `GET /projects/:id` (the default branch),
//! `GET .../repository/branches/:branch` (a branch's head), `GET .../repository/tree`
//! (every file at a ref, recursively, page by page) and `GET .../repository/blobs/:sha/raw`.

use super::Gitlab;
use crate::remote::path::segment;
use crate::remote::{ApiError, ErrorKind};
use serde::Deserialize;
use tokio::time::Instant;

/// One entry of a repository tree.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct TreeEntry {
    /// The blob's (or submodule commit's) id.
    pub id: String,
    /// `blob`, `tree` or `commit`.
    #[serde(rename = "type")]
    pub kind: String,
    pub path: String,
    pub mode: String,
}

/// Pages of a tree are read up to this many (10,000 files).
const MAX_PAGES: usize = 100;

impl Gitlab {
    pub async fn default_branch(&self, until: Instant) -> Result<String, ApiError> {
        #[derive(Deserialize)]
        struct Project {
            default_branch: Option<String>,
        }
        let a = self.api.get(&self.path(""), until).await?;
        let p: Project = a.json(&self.api)?;
        p.default_branch.ok_or_else(|| ApiError {
            kind: ErrorKind::Rejected,
            status: Some(a.status),
            detail: "GitLab: the project has no default branch (an empty repository)".into(),
        })
    }

    /// The commit branch `name` points at; `None` when there is no such branch.
    pub async fn branch_head(
        &self,
        name: &str,
        until: Instant,
    ) -> Result<Option<String>, ApiError> {
        #[derive(Deserialize)]
        struct Branch {
            commit: Commit,
        }
        #[derive(Deserialize)]
        struct Commit {
            id: String,
        }
        let path = self.path(&format!("repository/branches/{}", segment(name)));
        match self.api.get(&path, until).await {
            Ok(a) => Ok(Some(a.json::<Branch>(&self.api)?.commit.id)),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every entry under `r` (a tag, branch or sha), recursively.
    pub async fn tree(&self, r: &str, until: Instant) -> Result<Vec<TreeEntry>, ApiError> {
        let mut next = Some(self.path(&format!(
            "repository/tree?ref={}&recursive=true&per_page=100",
            segment(r)
        )));
        let mut all = Vec::new();
        for _ in 0..MAX_PAGES {
            let Some(url) = next.take() else {
                return Ok(all);
            };
            let a = self.api.get(&url, until).await?;
            all.extend(a.json::<Vec<TreeEntry>>(&self.api)?);
            next = a.next_link();
        }
        Err(ApiError {
            kind: ErrorKind::Rejected,
            status: None,
            detail: format!(
                "GitLab: the tree at {r} has more than {} entries",
                MAX_PAGES * 100
            ),
        })
    }

    /// A blob's bytes.
    pub async fn blob(&self, sha: &str, until: Instant) -> Result<bytes::Bytes, ApiError> {
        let a = self
            .api
            .get(&self.path(&format!("repository/blobs/{sha}/raw")), until)
            .await?;
        Ok(a.body)
    }
}
