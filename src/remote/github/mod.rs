//! GitHub's REST API: the headers GitHub asks for, and one file per endpoint. The evidence
//! endpoints are `commit.rs` (a ref to its commit) and `checks.rs` (check runs and the
//! combined status of a commit).
pub mod checks;
pub mod commit;

use super::rest::Api;

/// A GitHub API at `base` with `token`: a bearer token, GitHub's media type and API version,
/// and a `User-Agent` (GitHub answers 403 without one).
pub fn api(base: &str, token: &str, client: reqwest::Client) -> Result<Api, String> {
    Api::new("GitHub", base, client, vec![token.to_string()])?
        .header("authorization", &format!("Bearer {token}"), true)?
        .header("accept", "application/vnd.github+json", false)?
        .header("x-github-api-version", "2022-11-28", false)?
        .header("user-agent", "greenlight", false)
}
