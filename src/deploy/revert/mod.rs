//! Revert steps: after a rollback, propose a revert of the rolled-back release's changes for
//! review, as a pull request (`github.rs`) or a merge request (`gitlab.rs`) against the
//! default branch, never a push to it; `plan.rs` decides what either changes.
//! Each records what it opened in the journal under `ctx.key("revert")` and names its branch
//! after the environment and the run, so that after a crash it finds what it already opened
//! instead of opening a second one.
pub mod github;
pub mod gitlab;
pub mod plan;

pub use github::GitHubRevert;
pub use gitlab::GitLabRevert;

use super::StepCtx;
use crate::core::engine::RevertLink;
use crate::store::Journal;

/// The branch a run's revert is proposed from (one per run, so a restart finds it).
pub fn branch_name(ctx: &StepCtx) -> String {
    format!("greenlight/revert-{}-run-{}", ctx.env, ctx.run.0)
}

/// Runs `open` (which opens the revert from the run's branch) once per run: a link the journal
/// already holds is answered from it; otherwise the branch is recorded first, then the link.
pub async fn journaled<F>(
    journal: &Journal,
    ctx: &StepCtx,
    open: impl FnOnce(String) -> F,
) -> Result<RevertLink, String>
where
    F: std::future::Future<Output = Result<RevertLink, String>>,
{
    let key = ctx.key("revert");
    let err = |e: anyhow::Error| format!("{e:#}");
    if let Some(Record {
        name: Some(name),
        url: Some(url),
        ..
    }) = journal.get::<Record>(&key).map_err(err)?
    {
        return Ok(RevertLink { name, url });
    }
    let branch = branch_name(ctx);
    let mut record = Record {
        branch: branch.clone(),
        name: None,
        url: None,
    };
    journal.put(&key, &record).await.map_err(err)?;
    let link = open(branch).await?;
    record.name = Some(link.name.clone());
    record.url = Some(link.url.clone());
    journal.put(&key, &record).await.map_err(err)?;
    Ok(link)
}

/// What the journal keeps of a revert: its branch once started, its link once opened.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Record {
    pub branch: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
}
