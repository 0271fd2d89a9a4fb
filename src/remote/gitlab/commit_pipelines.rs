//! What CI says about a commit on GitLab: `GET /projects/:id/repository/commits/:ref` (a ref
//! to its sha), `GET /projects/:id/pipelines?sha=SHA&order_by=id&sort=desc` (its latest
//! pipeline) and `GET /projects/:id/pipelines/:pid/jobs` (its jobs, paginated with `Link`).
//! `:id` is numeric or the URL-encoded path (`group%2Fproject`).

use crate::remote::path::segment;
use crate::remote::rest::{Api, ApiError, ErrorKind};
use serde::Deserialize;
use tokio::time::Instant;

const MAX_PAGES: usize = 10;

#[derive(Deserialize)]
struct Commit {
    id: String,
}

/// The pipeline type the deploy step reads too (`id`, `status`, `web_url`, ...).
pub use super::Pipeline;

#[derive(Debug, Clone, Deserialize)]
pub struct Job {
    pub name: String,
    pub status: String,
    /// A job allowed to fail does not fail the pipeline.
    #[serde(default)]
    pub allow_failure: bool,
}

/// The sha `reference` names in `project`; `None` when GitLab knows no such ref (404).
pub async fn resolve(
    api: &Api,
    project: &str,
    reference: &str,
    until: Instant,
) -> Result<Option<String>, ApiError> {
    let path = format!(
        "projects/{}/repository/commits/{}",
        segment(project),
        segment(reference)
    );
    match api.get(&path, until).await {
        Ok(a) => Ok(Some(a.json::<Commit>(api)?.id)),
        Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The newest pipeline for `sha`, if any ran.
pub async fn latest_pipeline(
    api: &Api,
    project: &str,
    sha: &str,
    until: Instant,
) -> Result<Option<Pipeline>, ApiError> {
    let path = format!(
        "projects/{}/pipelines?sha={sha}&order_by=id&sort=desc&per_page=1",
        segment(project)
    );
    let a = api.get(&path, until).await?;
    Ok(a.json::<Vec<Pipeline>>(api)?.into_iter().next())
}

/// Every job of pipeline `id` (retried jobs excluded, as GitLab lists them by default).
pub async fn jobs(api: &Api, project: &str, id: u64, until: Instant) -> Result<Vec<Job>, ApiError> {
    let mut next = Some(format!(
        "projects/{}/pipelines/{id}/jobs?per_page=100",
        segment(project)
    ));
    let mut out = Vec::new();
    for _ in 0..MAX_PAGES {
        let Some(path) = next.take() else { break };
        let a = api.get(&path, until).await?;
        out.extend(a.json::<Vec<Job>>(api)?);
        next = a.next_link();
    }
    Ok(out)
}
