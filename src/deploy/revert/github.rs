//! The revert of a release on GitHub, without a checkout: the files the release changed
//! (the trees of `good` and `bad` compared) are set back to what `good` had, on top of the
//! default branch's head, as one commit on a branch of its own, and a pull request is opened.
//! A file that also changed on the default branch since `bad` is a conflict: it is named and
//! nothing is opened (a person reverts by hand). GitHub has no REST revert endpoint; the git
//! data API builds the commit (platform notes).

use super::journaled;
use super::plan::{plan, File, Listing};
use crate::core::engine::RevertLink;
use crate::deploy::{BoxFuture, RevertStep, StepCtx};
use crate::remote::github::git::{self, tree::Change, Entry};
use crate::remote::github::{pulls, repo};
use crate::remote::rest::{Api, ApiError, ErrorKind};
use crate::store::Journal;
use crate::telemetry::fault;
use std::time::Duration;
use tokio::time::Instant;

pub struct GitHubRevert {
    pub api: Api,
    /// `owner/name`.
    pub repo: String,
    pub journal: Journal,
    /// How long one revert may take, retries included.
    pub timeout: Duration,
}

impl RevertStep for GitHubRevert {
    fn revert<'a>(
        &'a self,
        bad: &'a str,
        good: &'a str,
        ctx: &'a StepCtx,
    ) -> BoxFuture<'a, Result<RevertLink, String>> {
        Box::pin(journaled(&self.journal, ctx, move |branch| async move {
            self.open(bad, good, ctx, &branch)
                .await
                .map_err(|e| e.to_string())
        }))
    }
}

/// Why a revert was not opened, in one line.
#[derive(Debug)]
struct Why(String);

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<ApiError> for Why {
    fn from(e: ApiError) -> Why {
        Why(e.detail)
    }
}

impl GitHubRevert {
    async fn open(
        &self,
        bad: &str,
        good: &str,
        ctx: &StepCtx,
        branch: &str,
    ) -> Result<RevertLink, Why> {
        let (api, repo) = (&self.api, self.repo.as_str());
        let until = Instant::now() + self.timeout;
        let base = repo::default_branch(api, repo, until).await?;
        // Opened before a crash: found, not opened again.
        if let Some(p) = pulls::find(api, repo, branch, until)
            .await?
            .into_iter()
            .next()
        {
            return Ok(link(&p));
        }
        if git::refs::head(api, repo, branch, until).await?.is_none() {
            let head = git::refs::head(api, repo, &base, until)
                .await?
                .ok_or_else(|| Why(format!("GitHub: the default branch {base} does not exist")))?;
            let commit = self
                .revert_commit(bad, good, ctx, &base, &head, until)
                .await?;
            // A branch that appeared meanwhile (a restart racing itself) is used as it is.
            git::refs::create(api, repo, branch, &commit, until).await?;
        }
        fault("revert:branch");
        let title = format!("Revert {bad} (rolled back in {})", ctx.env);
        let body = format!(
            "greenlight rolled {bad} back to {good} in {} (run {}). This reverts the files {bad} changed since {good}, on top of {base}, for review.\n\nMerge it to keep the default branch in step with what runs; close it if the fix goes forward instead.",
            ctx.env, ctx.run
        );
        let pr = match pulls::open(api, repo, branch, &base, &title, &body, until).await? {
            Some(p) => p,
            None => pulls::find(api, repo, branch, until)
                .await?
                .into_iter()
                .next()
                .ok_or_else(|| {
                    Why(
                        "GitHub said a pull request exists for the revert branch but lists none"
                            .into(),
                    )
                })?,
        };
        fault("revert:opened");
        Ok(link(&pr))
    }

    /// The commit that sets every file `bad` changed back to `good`'s, on `head`.
    async fn revert_commit(
        &self,
        bad: &str,
        good: &str,
        ctx: &StepCtx,
        base: &str,
        head: &str,
        until: Instant,
    ) -> Result<String, Why> {
        let (api, repo) = (&self.api, self.repo.as_str());
        let g = git::resolve::resolve(api, repo, good, until)
            .await
            .map_err(|e| not_found(e, good, repo))?;
        let b = git::resolve::resolve(api, repo, bad, until)
            .await
            .map_err(|e| not_found(e, bad, repo))?;
        let h = git::resolve::resolve(api, repo, head, until).await?;
        let files = |t: Vec<Entry>| -> Listing {
            t.into_iter()
                .filter(|e| e.kind != "tree")
                .map(|e| {
                    let f = File {
                        mode: e.mode,
                        kind: e.kind,
                        id: e.sha,
                    };
                    (e.path, f)
                })
                .collect()
        };
        let gt = files(git::tree::read(api, repo, &g.tree, until).await?);
        let bt = files(git::tree::read(api, repo, &b.tree, until).await?);
        let ht = files(git::tree::read(api, repo, &h.tree, until).await?);
        let changes: Vec<Change> = plan(&gt, &bt, &ht)
            .map_err(|p| Why(p.say(bad, good, base)))?
            .into_iter()
            .map(|(path, f)| Change {
                entry: f.map(|f| Entry {
                    path: path.clone(),
                    mode: f.mode,
                    kind: f.kind,
                    sha: f.id,
                }),
                path,
            })
            .collect();
        let tree = git::tree::create(api, repo, &h.tree, &changes, until).await?;
        let message = format!(
            "Revert {bad} (back to {good})\n\nRolled back by greenlight in {} (run {}).",
            ctx.env, ctx.run
        );
        Ok(git::commit::create(api, repo, &message, &tree, &h.commit, until).await?)
    }
}

/// A version GitHub does not know (404, or 422 "No commit found for SHA").
fn not_found(e: ApiError, version: &str, repo: &str) -> Why {
    match e.kind {
        ErrorKind::NotFound | ErrorKind::Rejected => Why(format!(
            "GitHub: {version} is not a tag, branch or commit of {repo}"
        )),
        _ => Why(e.detail),
    }
}

fn link(p: &pulls::Pull) -> RevertLink {
    RevertLink {
        name: format!("pull request #{}", p.number),
        url: p.html_url.clone(),
    }
}
