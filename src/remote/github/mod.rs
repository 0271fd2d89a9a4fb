//! GitHub's REST API: one small file per endpoint. The revert endpoints are `git/` (commits,
//! trees, refs of the git data API) and `pulls.rs`.
pub mod git;
pub mod pulls;
pub mod repo;
