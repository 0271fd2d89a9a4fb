//! GitLab's REST API v4: its token header, and one file per endpoint. The evidence endpoints
//! are in `commit_pipelines.rs` (a ref to its commit, the commit's latest pipeline, its jobs).
pub mod commit_pipelines;

use super::rest::Api;

/// A GitLab API at `base` (e.g. `https://gitlab.com/api/v4`) with a personal, project or
/// group access token.
pub fn api(base: &str, token: &str, client: reqwest::Client) -> Result<Api, String> {
    Api::new("GitLab", base, client, vec![token.to_string()])?.header("private-token", token, true)
}
