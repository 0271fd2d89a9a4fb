//! `GET /repos/{owner}/{repo}/git/trees/{sha}?recursive=1` and `POST .../git/trees`.

use super::Entry;
use crate::remote::rest::{Api, ApiError, ErrorKind};
use reqwest::Method;
use serde::Deserialize;
use tokio::time::Instant;

#[derive(Deserialize)]
struct Tree {
    sha: String,
    tree: Vec<Entry>,
    /// GitHub lists at most 100,000 entries (7 MB) recursively; past that the list is cut.
    #[serde(default)]
    truncated: bool,
}

/// Every entry under tree `sha`, recursively. A cut list is an error: a revert built from
/// part of a tree could delete what it did not see.
pub async fn read(
    api: &Api,
    repo: &str,
    sha: &str,
    until: Instant,
) -> Result<Vec<Entry>, ApiError> {
    let a = api
        .get(&format!("repos/{repo}/git/trees/{sha}?recursive=1"), until)
        .await?;
    let t: Tree = a.json(api)?;
    if t.truncated {
        return Err(ApiError {
            kind: ErrorKind::Rejected,
            status: Some(a.status),
            detail: format!("GitHub: tree {} is too large to list whole", t.sha),
        });
    }
    Ok(t.tree)
}

/// A change of one path in a new tree: its new entry, or `None` to delete it.
pub struct Change {
    pub path: String,
    pub entry: Option<Entry>,
}

/// Creates a tree: `base` with `changes` applied. Returns its sha.
pub async fn create(
    api: &Api,
    repo: &str,
    base: &str,
    changes: &[Change],
    until: Instant,
) -> Result<String, ApiError> {
    let tree: Vec<serde_json::Value> = changes
        .iter()
        .map(|c| match &c.entry {
            Some(e) => {
                serde_json::json!({"path": c.path, "mode": e.mode, "type": e.kind, "sha": e.sha})
            }
            // A null sha deletes the path.
            None => {
                serde_json::json!({"path": c.path, "mode": "100644", "type": "blob", "sha": null})
            }
        })
        .collect();
    let body = serde_json::json!({"base_tree": base, "tree": tree});
    let a = api
        .send(
            Method::POST,
            &format!("repos/{repo}/git/trees"),
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
