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

/// The branch a run's revert is proposed from (one per run, so a restart finds it).
pub fn branch_name(ctx: &super::StepCtx) -> String {
    format!("greenlight/revert-{}-run-{}", ctx.env, ctx.run.0)
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
