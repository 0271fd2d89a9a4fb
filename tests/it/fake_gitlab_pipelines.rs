//! A fake of the GitLab REST v4 endpoints CI evidence reads, shaped as GitLab documents them:
//! `GET /api/v4/projects/:id/repository/commits/:ref` (`id` is the sha; 404 `{"message":
//! "404 Commit Not Found"}`), `GET /projects/:id/pipelines?sha=&order_by=id&sort=desc`
//! (newest first) and `GET /projects/:id/pipelines/:pid/jobs` (paginated with `Link` and
//! `x-next-page`). `:id` is the URL-encoded path. It checks `PRIVATE-TOKEN` (401 `{"message":
//! "401 Unauthorized"}`) and can answer 5xx or 429 with `RateLimit-*` and `Retry-After`.

#![allow(dead_code)]

use crate::fake_common::{self, json_response, Faults};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use axum::routing::get;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

pub const TOKEN: &str = "glpat-fake-evidence";
pub const PROJECT: &str = "acme/shop";

#[derive(Debug, Clone)]
pub enum Fault {
    Status(u16),
    Unauthorized,
    /// 429 with `Retry-After: 1`.
    RateLimited,
}

/// A job: name, status, allow_failure.
pub type Job = (String, String, bool);

#[derive(Default)]
pub struct Inner {
    pub refs: BTreeMap<String, String>,
    /// sha -> pipelines (id, status, jobs), oldest first.
    pub pipelines: HashMap<String, Vec<(u64, String, Vec<Job>)>>,
    pub page_size: Option<usize>,
    pub down: bool,
    pub faults: Faults<&'static str, Fault>,
    pub seen: Vec<String>,
}

#[derive(Clone)]
pub struct FakeGitlabPipelines {
    /// The API base, `http://127.0.0.1:PORT/api/v4`.
    pub url: String,
    pub inner: Arc<Mutex<Inner>>,
}

type S = Arc<Mutex<Inner>>;

fn error(status: u16, message: &str) -> Response {
    json_response(status, &json!({ "message": message }))
}

fn gate(
    inner: &mut Inner,
    route: &'static str,
    headers: &HeaderMap,
    path: String,
) -> Option<Response> {
    inner.seen.push(path);
    if inner.down {
        return Some(error(502, "502 Bad Gateway"));
    }
    if headers.get("private-token").and_then(|v| v.to_str().ok()) != Some(TOKEN) {
        return Some(error(401, "401 Unauthorized"));
    }
    match inner.faults.next(&route)? {
        Fault::Status(s) => Some(error(s, "500 Internal Server Error")),
        Fault::Unauthorized => Some(error(401, "401 Unauthorized")),
        Fault::RateLimited => {
            let mut r = error(429, "Retry later");
            let h = r.headers_mut();
            h.insert("retry-after", HeaderValue::from_static("1"));
            h.insert("ratelimit-limit", HeaderValue::from_static("600"));
            h.insert("ratelimit-remaining", HeaderValue::from_static("0"));
            let reset = (fake_common::unix_secs() + 1).to_string();
            h.insert("ratelimit-reset", HeaderValue::from_str(&reset).unwrap());
            Some(r)
        }
    }
}

/// The project's path from `:id` (axum has already percent-decoded it).
fn project_ok(id: &str) -> bool {
    id == PROJECT
}

async fn commit(
    State((s, _)): State<(S, String)>,
    Path((id, reference)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut inner = s.lock().unwrap();
    let path = format!("/projects/{id}/repository/commits/{reference}");
    if let Some(r) = gate(&mut inner, "commit", &headers, path) {
        return r;
    }
    if !project_ok(&id) {
        return error(404, "404 Project Not Found");
    }
    match inner.refs.get(&reference) {
        Some(sha) => json_response(
            200,
            &json!({
                "id": sha,
                "short_id": &sha[..8.min(sha.len())],
                "title": "release",
                "message": "release\n",
                "created_at": "2026-11-25T10:00:00.000Z",
                "parent_ids": [],
                "web_url": format!("https://gitlab.com/{PROJECT}/-/commit/{sha}"),
            }),
        ),
        None => error(404, "404 Commit Not Found"),
    }
}

async fn pipelines(
    State((s, _)): State<(S, String)>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut inner = s.lock().unwrap();
    let mut qs: Vec<String> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
    qs.sort();
    let path = format!("/projects/{id}/pipelines?{}", qs.join("&"));
    if let Some(r) = gate(&mut inner, "pipelines", &headers, path) {
        return r;
    }
    if !project_ok(&id) {
        return error(404, "404 Project Not Found");
    }
    let sha = q.get("sha").cloned().unwrap_or_default();
    let mut list: Vec<Value> = inner
        .pipelines
        .get(&sha)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|(pid, status, _)| {
            json!({
                "id": pid, "iid": pid, "project_id": 1, "sha": sha, "ref": "main",
                "status": status, "source": "push",
                "created_at": "2026-11-25T10:00:00.000Z",
                "updated_at": "2026-11-25T10:05:00.000Z",
                "web_url": format!("https://gitlab.com/{PROJECT}/-/pipelines/{pid}"),
            })
        })
        .collect();
    if q.get("sort").map(String::as_str) != Some("asc") {
        list.reverse();
    }
    let per: usize = q.get("per_page").and_then(|p| p.parse().ok()).unwrap_or(20);
    list.truncate(per);
    json_response(200, &Value::Array(list))
}

async fn jobs(
    State((s, base)): State<(S, String)>,
    Path((id, pid)): Path<(String, u64)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut inner = s.lock().unwrap();
    let page: usize = q
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let path = format!("/projects/{id}/pipelines/{pid}/jobs?page={page}");
    if let Some(r) = gate(&mut inner, "jobs", &headers, path) {
        return r;
    }
    let jobs: Vec<Job> = inner
        .pipelines
        .values()
        .flatten()
        .find(|(p, _, _)| *p == pid)
        .map(|(_, _, j)| j.clone())
        .unwrap_or_default();
    let per: usize = q
        .get("per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(20)
        .min(100)
        .min(inner.page_size.unwrap_or(100))
        .max(1);
    let total = jobs.len();
    let chunk: Vec<Value> = jobs
        .into_iter()
        .enumerate()
        .skip((page - 1) * per)
        .take(per)
        .map(|(i, (name, status, allow_failure))| {
            json!({
                "id": pid * 1000 + i as u64, "name": name, "stage": "test",
                "status": status, "allow_failure": allow_failure,
                "web_url": format!("https://gitlab.com/{PROJECT}/-/jobs/{}", pid * 1000 + i as u64),
                "pipeline": {"id": pid, "status": "running"},
            })
        })
        .collect();
    let mut resp = json_response(200, &Value::Array(chunk));
    let h = resp.headers_mut();
    h.insert(
        "x-total",
        HeaderValue::from_str(&total.to_string()).unwrap(),
    );
    h.insert("x-page", HeaderValue::from_str(&page.to_string()).unwrap());
    if page * per < total {
        let encoded = id.replace('/', "%2F");
        let next = format!(
            "<{base}/projects/{encoded}/pipelines/{pid}/jobs?page={}&per_page={per}>; rel=\"next\"",
            page + 1
        );
        h.insert("link", HeaderValue::from_str(&next).unwrap());
        h.insert(
            "x-next-page",
            HeaderValue::from_str(&(page + 1).to_string()).unwrap(),
        );
    }
    resp
}

impl FakeGitlabPipelines {
    pub async fn start() -> FakeGitlabPipelines {
        let (listener, addr) = fake_common::bind("fake GitLab pipelines").await;
        let url = format!("http://{addr}/api/v4");
        let inner: S = Arc::new(Mutex::new(Inner::default()));
        let api = axum::Router::new()
            .route("/projects/{id}/repository/commits/{reference}", get(commit))
            .route("/projects/{id}/pipelines", get(pipelines))
            .route("/projects/{id}/pipelines/{pid}/jobs", get(jobs))
            .with_state((inner.clone(), url.clone()));
        let app = axum::Router::new().nest("/api/v4", api);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeGitlabPipelines { url, inner }
    }

    pub fn tag(&self, reference: &str, sha: &str) {
        let mut i = self.inner.lock().unwrap();
        i.refs.insert(reference.into(), sha.into());
        i.refs.insert(sha.into(), sha.into());
    }

    /// Adds (or replaces) pipeline `pid` on `sha`.
    pub fn pipeline(&self, sha: &str, pid: u64, status: &str, jobs: &[(&str, &str, bool)]) {
        let mut i = self.inner.lock().unwrap();
        let list = i.pipelines.entry(sha.into()).or_default();
        list.retain(|(p, _, _)| *p != pid);
        let jobs = jobs
            .iter()
            .map(|(n, s, a)| (n.to_string(), s.to_string(), *a))
            .collect();
        list.push((pid, status.into(), jobs));
        list.sort_by_key(|(p, _, _)| *p);
    }

    pub fn set_down(&self, down: bool) {
        self.inner.lock().unwrap().down = down;
    }

    pub fn fail_next(&self, route: &'static str, f: Fault) {
        self.inner.lock().unwrap().faults.push(route, f);
    }

    pub fn seen(&self) -> Vec<String> {
        self.inner.lock().unwrap().seen.clone()
    }
}
