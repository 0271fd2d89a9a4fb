//! The revert of a release on GitLab: the files the release changed (the trees of `good` and
//! `bad` compared by blob id) are set back to `good`'s on top of the default branch's head, as
//! one commit on a new branch (GitLab's commits API makes the branch and the commit in one
//! request, from `start_sha`), and a merge request is opened. A conflict is named and nothing
//! is opened, as on GitHub (`plan.rs`). Commit-by-commit `.../commits/:sha/revert` was not
//! used: a crash between two of them would leave a half-reverted branch that a restart cannot
//! tell from a whole one.

use super::journaled;
use super::plan::{plan, File, Listing};
use crate::core::engine::RevertLink;
use crate::deploy::{BoxFuture, RevertStep, StepCtx};
use crate::remote::gitlab::commits::FileAction;
use crate::remote::gitlab::merge_requests::MergeRequest;
use crate::remote::gitlab::repository::TreeEntry;
use crate::remote::gitlab::Gitlab;
use crate::remote::{ApiError, ErrorKind};
use crate::store::Journal;
use crate::telemetry::fault;
use std::time::Duration;
use tokio::time::Instant;

pub struct GitLabRevert {
    pub gitlab: Gitlab,
    pub journal: Journal,
    /// How long one revert may take, retries included.
    pub timeout: Duration,
}

impl RevertStep for GitLabRevert {
    fn revert<'a>(
        &'a self,
        bad: &'a str,
        good: &'a str,
        ctx: &'a StepCtx,
    ) -> BoxFuture<'a, Result<RevertLink, String>> {
        Box::pin(journaled(&self.journal, ctx, move |branch| async move {
            self.open(bad, good, ctx, &branch).await
        }))
    }
}

impl GitLabRevert {
    async fn open(
        &self,
        bad: &str,
        good: &str,
        ctx: &StepCtx,
        branch: &str,
    ) -> Result<RevertLink, String> {
        let gl = &self.gitlab;
        let until = Instant::now() + self.timeout;
        let base = gl.default_branch(until).await.map_err(line)?;
        // Opened before a crash: found, not opened again.
        if let Some(mr) = gl
            .merge_requests_from(branch, until)
            .await
            .map_err(line)?
            .first()
        {
            return Ok(link(mr));
        }
        if gl.branch_head(branch, until).await.map_err(line)?.is_none() {
            let head = gl
                .branch_head(&base, until)
                .await
                .map_err(line)?
                .ok_or_else(|| format!("GitLab: the default branch {base} does not exist"))?;
            let files = |t: Vec<TreeEntry>| -> Listing {
                t.into_iter()
                    .filter(|e| e.kind != "tree")
                    .map(|e| {
                        let f = File {
                            mode: e.mode,
                            kind: e.kind,
                            id: e.id,
                        };
                        (e.path, f)
                    })
                    .collect()
            };
            let gt = files(gl.tree(good, until).await.map_err(|e| not_found(e, good))?);
            let bt = files(gl.tree(bad, until).await.map_err(|e| not_found(e, bad))?);
            let ht = files(gl.tree(&head, until).await.map_err(line)?);
            let changes = plan(&gt, &bt, &ht).map_err(|p| p.say(bad, good, &base))?;
            let mut actions = Vec::new();
            for (path, f) in changes {
                actions.push(match f {
                    None => FileAction {
                        action: "delete",
                        path,
                        content: None,
                        executable: false,
                    },
                    // GitLab's commits API writes files only: a symlink or a submodule is
                    // reverted by hand.
                    Some(f) if f.kind != "blob" || f.mode == "120000" => {
                        return Err(format!(
                            "{path} is a symlink or a submodule, which GitLab's API cannot restore: revert by hand"
                        ))
                    }
                    Some(f) => FileAction {
                        action: if ht.contains_key(&path) { "update" } else { "create" },
                        content: Some(gl.blob(&f.id, until).await.map_err(line)?.to_vec()),
                        executable: f.mode == "100755",
                        path,
                    },
                });
            }
            let message = format!(
                "Revert {bad} (back to {good})\n\nRolled back by greenlight in {} (run {}).",
                ctx.env, ctx.run
            );
            // A branch that appeared meanwhile (`None`) is used as it is.
            gl.commit_on_new_branch(branch, &head, &message, &actions, until)
                .await
                .map_err(line)?;
        }
        fault("revert:branch");
        let title = format!("Revert {bad} (rolled back in {})", ctx.env);
        let description = format!(
            "greenlight rolled {bad} back to {good} in {} (run {}). This reverts the files {bad} changed since {good}, on top of {base}, for review.\n\nMerge it to keep the default branch in step with what runs; close it if the fix goes forward instead.",
            ctx.env, ctx.run
        );
        let mr = match gl
            .open_merge_request(branch, &base, &title, &description, until)
            .await
            .map_err(line)?
        {
            Some(mr) => mr,
            None => gl
                .merge_requests_from(branch, until)
                .await
                .map_err(line)?
                .into_iter()
                .next()
                .ok_or("GitLab said a merge request exists for the revert branch but lists none")?,
        };
        fault("revert:opened");
        Ok(link(&mr))
    }
}

fn line(e: ApiError) -> String {
    e.detail
}

/// A version GitLab does not know (404 "Tree Not Found").
fn not_found(e: ApiError, version: &str) -> String {
    match e.kind {
        ErrorKind::NotFound => {
            format!("GitLab: {version} is not a tag, branch or commit of the project")
        }
        _ => e.detail,
    }
}

fn link(mr: &MergeRequest) -> RevertLink {
    RevertLink {
        name: format!("merge request !{}", mr.iid),
        url: mr.web_url.clone(),
    }
}
