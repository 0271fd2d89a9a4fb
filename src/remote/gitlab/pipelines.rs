//! `GET /projects/:id/pipelines`: a project's pipelines, newest first (`order_by=id`,
//! `sort=desc`), filtered by ref, source, sha and last update; paginated (`Link` and
//! `x-next-page`), followed up to `max_pages`.

use super::{Gitlab, Pipeline};
use crate::remote::ApiError;
use chrono::{DateTime, SecondsFormat, Utc};
use tokio::time::Instant;

/// The filters GitLab applies; `None` is no filter.
#[derive(Debug, Default, Clone)]
pub struct Query<'a> {
    pub git_ref: Option<&'a str>,
    pub sha: Option<&'a str>,
    /// `trigger` (a trigger token), `api` (an access token), `push`, `web`, ...
    pub source: Option<&'a str>,
    pub updated_after: Option<DateTime<Utc>>,
}

impl Gitlab {
    /// The pipelines `q` selects, newest first, reading at most `max_pages` pages of 100.
    pub async fn pipelines(
        &self,
        q: &Query<'_>,
        max_pages: usize,
        until: Instant,
    ) -> Result<Vec<Pipeline>, ApiError> {
        let first = format!("{}?{}", self.path("pipelines"), query(q));
        let mut next = Some(first.clone());
        let mut all = Vec::new();
        for _ in 0..max_pages.max(1) {
            let Some(path) = next.take() else { break };
            let answer = self.api.get(&path, until).await?;
            all.extend(answer.json::<Vec<Pipeline>>(&self.api)?);
            next = answer.next_link().or_else(|| {
                // Without a `Link` header, `x-next-page` names the page (empty on the last).
                let page = answer.headers.get("x-next-page")?.to_str().ok()?.trim();
                (!page.is_empty()).then(|| format!("{first}&page={page}"))
            });
        }
        Ok(all)
    }
}

/// The query string (a helper of its own: the serializer is not `Send`).
fn query(q: &Query<'_>) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    if let Some(r) = q.git_ref {
        s.append_pair("ref", r);
    }
    if let Some(sha) = q.sha {
        s.append_pair("sha", sha);
    }
    if let Some(src) = q.source {
        s.append_pair("source", src);
    }
    if let Some(t) = q.updated_after {
        s.append_pair(
            "updated_after",
            &t.to_rfc3339_opts(SecondsFormat::Secs, true),
        );
    }
    s.append_pair("order_by", "id");
    s.append_pair("sort", "desc");
    s.append_pair("per_page", "100");
    s.finish()
}
