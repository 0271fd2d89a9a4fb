//! `POST /projects/:id/repository/commits`: one commit of file actions on a new branch
//! started from `start_sha` (the branch and the commit in one request).

use super::Gitlab;
use crate::remote::ApiError;
use reqwest::Method;
use serde::Deserialize;
use tokio::time::Instant;

/// One file action: `create`, `update` or `delete` (content base64-encoded).
pub struct FileAction {
    pub action: &'static str,
    pub path: String,
    pub content: Option<Vec<u8>>,
    pub executable: bool,
}

impl Gitlab {
    /// Commits `actions` on new branch `branch` from `start_sha`. GitLab answers 400 "A branch
    /// called ... already exists" for a branch that exists: `Ok(None)`, for the caller to look.
    pub async fn commit_on_new_branch(
        &self,
        branch: &str,
        start_sha: &str,
        message: &str,
        actions: &[FileAction],
        until: Instant,
    ) -> Result<Option<String>, ApiError> {
        use base64::Engine;
        let actions: Vec<serde_json::Value> = actions
            .iter()
            .map(|a| {
                let mut v = serde_json::json!({"action": a.action, "file_path": a.path});
                if let Some(c) = &a.content {
                    v["content"] = base64::engine::general_purpose::STANDARD.encode(c).into();
                    v["encoding"] = "base64".into();
                    v["execute_filemode"] = a.executable.into();
                }
                v
            })
            .collect();
        let body = serde_json::json!({
            "branch": branch,
            "start_sha": start_sha,
            "commit_message": message,
            "actions": actions,
        });
        #[derive(Deserialize)]
        struct Created {
            id: String,
        }
        match self
            .api
            .send(
                Method::POST,
                &self.path("repository/commits"),
                Some(&body),
                until,
            )
            .await
        {
            Ok(a) => Ok(Some(a.json::<Created>(&self.api)?.id)),
            Err(e) if e.status == Some(400) && e.detail.contains("already exists") => Ok(None),
            Err(e) => Err(e),
        }
    }
}
