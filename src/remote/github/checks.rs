//! What CI says about a commit on GitHub, both ways it can say it: check runs (GitHub
//! Actions and apps), `GET /repos/{o}/{r}/commits/{sha}/check-runs?filter=latest`, and the
//! combined commit status (older CIs), `GET /repos/{o}/{r}/commits/{sha}/status`. Both are
//! paginated with `Link`. The combined `state` is `pending` when there are no statuses at all,
//! so only the statuses themselves are read.

use crate::remote::rest::{Api, ApiError};
use serde::Deserialize;
use tokio::time::Instant;

/// Pages read at most (100 items each): a commit with more checks than that is not normal.
const MAX_PAGES: usize = 10;

#[derive(Debug, Clone, Deserialize)]
pub struct CheckRun {
    pub name: String,
    /// queued, in_progress, completed (and waiting, requested, pending).
    pub status: String,
    /// success, failure, neutral, cancelled, skipped, timed_out, action_required, stale;
    /// null until completed.
    pub conclusion: Option<String>,
}

#[derive(Deserialize)]
struct CheckRuns {
    #[allow(dead_code)] // documented; the pages are followed by their links
    total_count: u64,
    check_runs: Vec<CheckRun>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Status {
    pub context: String,
    /// error, failure, pending, success.
    pub state: String,
}

#[derive(Deserialize)]
struct Combined {
    statuses: Vec<Status>,
}

/// Every latest check run on `sha`.
pub async fn check_runs(
    api: &Api,
    repo: &str,
    sha: &str,
    until: Instant,
) -> Result<Vec<CheckRun>, ApiError> {
    let first = format!("repos/{repo}/commits/{sha}/check-runs?filter=latest&per_page=100");
    let mut out = Vec::new();
    let mut next = Some(first);
    for _ in 0..MAX_PAGES {
        let Some(path) = next.take() else { break };
        let a = api.get(&path, until).await?;
        out.extend(a.json::<CheckRuns>(api)?.check_runs);
        next = a.next_link();
    }
    Ok(out)
}

/// Every commit status on `sha` (the latest per context, as GitHub combines them).
pub async fn statuses(
    api: &Api,
    repo: &str,
    sha: &str,
    until: Instant,
) -> Result<Vec<Status>, ApiError> {
    let first = format!("repos/{repo}/commits/{sha}/status?per_page=100");
    let mut out = Vec::new();
    let mut next = Some(first);
    for _ in 0..MAX_PAGES {
        let Some(path) = next.take() else { break };
        let a = api.get(&path, until).await?;
        out.extend(a.json::<Combined>(api)?.statuses);
        next = a.next_link();
    }
    Ok(out)
}
