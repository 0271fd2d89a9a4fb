//! A fake of the GitHub REST endpoints CI evidence reads, shaped field for field as GitHub
//! documents them: `GET /repos/{o}/{r}/commits/{ref}` (a ref to its commit; 422 "No commit
//! found"), `.../commits/{sha}/check-runs` (`total_count`, `check_runs[]`) and
//! `.../commits/{sha}/status` (the combined `state`, which is `pending` with zero statuses,
//! `statuses[]`, `total_count`), both paginated with `Link`. It checks the bearer token (401
//! `Bad credentials`), the `User-Agent` (403 without) and the API version header, and can be
//! scripted to answer 5xx, 401 or a rate limit (403 with `x-ratelimit-remaining: 0`).

#![allow(dead_code)]

use crate::fake_common::{self, json_response, Faults};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use axum::routing::get;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const TOKEN: &str = "ghp_fake_evidence_token";
pub const REPO: &str = "acme/shop";

/// A scripted failure of the next request to a route.
#[derive(Debug, Clone)]
pub enum Fault {
    /// This status with GitHub's error body.
    Status(u16),
    /// 401 `Bad credentials`.
    BadCredentials,
    /// 403 with `x-ratelimit-remaining: 0`, reset in a second.
    RateLimited,
}

#[derive(Default)]
pub struct Inner {
    /// ref (tag, branch, sha) -> commit sha.
    pub refs: BTreeMap<String, String>,
    /// sha -> (name, status, conclusion).
    pub runs: HashMap<String, Vec<(String, String, Option<String>)>>,
    /// sha -> (context, state).
    pub statuses: HashMap<String, Vec<(String, String)>>,
    /// Items per page at most (GitHub: `per_page` up to 100).
    pub page_size: Option<usize>,
    /// Every route answers 503 while set.
    pub down: bool,
    pub faults: Faults<&'static str, Fault>,
    /// Every request: path with query.
    pub seen: Vec<String>,
}

#[derive(Clone)]
pub struct FakeGithubChecks {
    pub url: String,
    pub inner: Arc<Mutex<Inner>>,
}

type S = Arc<Mutex<Inner>>;

fn error(status: u16, message: &str) -> Response {
    json_response(
        status,
        &json!({
            "message": message,
            "documentation_url": "https://docs.github.com/rest",
            "status": status.to_string(),
        }),
    )
}

/// Token, user agent and scripted faults, in the order GitHub checks them.
fn gate(
    inner: &mut Inner,
    route: &'static str,
    headers: &HeaderMap,
    path: String,
) -> Option<Response> {
    inner.seen.push(path);
    if inner.down {
        return Some(error(503, "Service Unavailable"));
    }
    if headers.get("user-agent").is_none() {
        return Some(error(403, "Request forbidden by administrative rules. Please make sure your request has a User-Agent header"));
    }
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {TOKEN}")) {
        return Some(error(401, "Bad credentials"));
    }
    match inner.faults.next(&route)? {
        Fault::Status(s) => Some(error(s, "Server Error")),
        Fault::BadCredentials => Some(error(401, "Bad credentials")),
        Fault::RateLimited => {
            let mut r = error(403, "API rate limit exceeded for installation ID 1.");
            let h = r.headers_mut();
            h.insert("x-ratelimit-limit", HeaderValue::from_static("5000"));
            h.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
            let reset = (fake_common::unix_secs() + 1).to_string();
            h.insert("x-ratelimit-reset", HeaderValue::from_str(&reset).unwrap());
            Some(r)
        }
    }
}

/// One page of `items` (1-based `page`), with GitHub's `Link` header to the next and last.
fn paginate(
    base: &str,
    path: &str,
    q: &HashMap<String, String>,
    limit: Option<usize>,
    items: Vec<Value>,
    wrap: impl Fn(Vec<Value>, usize) -> Value,
) -> Response {
    let per: usize = q
        .get("per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(30)
        .min(100)
        .min(limit.unwrap_or(100))
        .max(1);
    let page: usize = q
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let total = items.len();
    let last = total.div_ceil(per).max(1);
    let chunk = items.into_iter().skip((page - 1) * per).take(per).collect();
    let mut resp = json_response(200, &wrap(chunk, total));
    let mut extra: Vec<String> = q
        .iter()
        .filter(|(k, _)| *k != "page")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    extra.sort();
    let link =
        |p: usize, rel: &str| format!("<{base}{path}?{}&page={p}>; rel=\"{rel}\"", extra.join("&"));
    if page < last {
        let l = format!("{}, {}", link(page + 1, "next"), link(last, "last"));
        resp.headers_mut()
            .insert("link", HeaderValue::from_str(&l).unwrap());
    }
    resp
}

fn full(path: &str, q: &HashMap<String, String>) -> String {
    let mut qs: Vec<String> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
    qs.sort();
    if qs.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", qs.join("&"))
    }
}

async fn commit(
    State((s, _)): State<(S, String)>,
    Path((o, r, reference)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut inner = s.lock().unwrap();
    let path = format!("/repos/{o}/{r}/commits/{reference}");
    if let Some(resp) = gate(&mut inner, "commit", &headers, path) {
        return resp;
    }
    if format!("{o}/{r}") != REPO {
        return error(404, "Not Found");
    }
    match inner.refs.get(&reference) {
        Some(sha) => json_response(
            200,
            &json!({
                "sha": sha,
                "node_id": "C_fake",
                "html_url": format!("https://github.com/{REPO}/commit/{sha}"),
                "commit": {"message": "release", "tree": {"sha": "f00"}},
                "parents": [],
            }),
        ),
        None => error(422, &format!("No commit found for SHA: {reference}")),
    }
}

async fn check_runs(
    State((s, base)): State<(S, String)>,
    Path((o, r, sha)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut inner = s.lock().unwrap();
    let path = format!("/repos/{o}/{r}/commits/{sha}/check-runs");
    if let Some(resp) = gate(&mut inner, "check-runs", &headers, full(&path, &q)) {
        return resp;
    }
    let runs: Vec<Value> = inner
        .runs
        .get(&sha)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, (name, status, conclusion))| {
            json!({
                "id": i + 1,
                "head_sha": sha,
                "name": name,
                "status": status,
                "conclusion": conclusion,
                "started_at": "2026-11-25T10:00:00Z",
                "completed_at": if status == "completed" { json!("2026-11-25T10:05:00Z") } else { Value::Null },
                "html_url": format!("https://github.com/{REPO}/runs/{}", i + 1),
                "app": {"slug": "github-actions"},
            })
        })
        .collect();
    paginate(
        &base,
        &path,
        &q,
        inner.page_size,
        runs,
        |chunk, total| json!({"total_count": total, "check_runs": chunk}),
    )
}

async fn status(
    State((s, base)): State<(S, String)>,
    Path((o, r, sha)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut inner = s.lock().unwrap();
    let path = format!("/repos/{o}/{r}/commits/{sha}/status");
    if let Some(resp) = gate(&mut inner, "status", &headers, full(&path, &q)) {
        return resp;
    }
    let list = inner.statuses.get(&sha).cloned().unwrap_or_default();
    // GitHub's combined state: failure if any failed, pending if any pending or none at all.
    let combined = if list.iter().any(|(_, st)| st == "failure" || st == "error") {
        "failure"
    } else if list.is_empty() || list.iter().any(|(_, st)| st == "pending") {
        "pending"
    } else {
        "success"
    };
    let statuses: Vec<Value> = list
        .into_iter()
        .map(|(context, state)| {
            json!({"context": context, "state": state, "description": "", "target_url": null})
        })
        .collect();
    let sha2 = sha.clone();
    paginate(
        &base,
        &path,
        &q,
        inner.page_size,
        statuses,
        move |chunk, total| {
            json!({"state": combined, "sha": sha2, "total_count": total, "statuses": chunk,
               "repository": {"full_name": REPO}})
        },
    )
}

impl FakeGithubChecks {
    pub async fn start() -> FakeGithubChecks {
        let (listener, addr) = fake_common::bind("fake GitHub checks").await;
        let url = format!("http://{addr}");
        let inner: S = Arc::new(Mutex::new(Inner::default()));
        let app = axum::Router::new()
            .route("/repos/{o}/{r}/commits/{reference}", get(commit))
            .route(
                "/repos/{o}/{r}/commits/{reference}/check-runs",
                get(check_runs),
            )
            .route("/repos/{o}/{r}/commits/{reference}/status", get(status))
            .with_state((inner.clone(), url.clone()));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeGithubChecks { url, inner }
    }

    /// `reference` names commit `sha`.
    pub fn tag(&self, reference: &str, sha: &str) {
        let mut i = self.inner.lock().unwrap();
        i.refs.insert(reference.into(), sha.into());
        i.refs.insert(sha.into(), sha.into());
    }

    /// Sets a check run on `sha` (replacing one of the same name).
    pub fn run(&self, sha: &str, name: &str, status: &str, conclusion: Option<&str>) {
        let mut i = self.inner.lock().unwrap();
        let runs = i.runs.entry(sha.into()).or_default();
        runs.retain(|(n, _, _)| n != name);
        runs.push((name.into(), status.into(), conclusion.map(String::from)));
    }

    /// Sets a commit status on `sha`.
    pub fn status(&self, sha: &str, context: &str, state: &str) {
        let mut i = self.inner.lock().unwrap();
        let list = i.statuses.entry(sha.into()).or_default();
        list.retain(|(c, _)| c != context);
        list.push((context.into(), state.into()));
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

    /// Waits until `n` requests whose path contains `needle` were served.
    pub async fn wait_requests(&self, needle: &str, n: usize) {
        let inner = self.inner.clone();
        let dump = self.inner.clone();
        fake_common::wait_for(
            "fake GitHub checks",
            &format!("{n} requests to {needle}"),
            Duration::from_secs(20),
            move || {
                let c = inner
                    .lock()
                    .unwrap()
                    .seen
                    .iter()
                    .filter(|p| p.contains(needle))
                    .count();
                (c >= n).then_some(())
            },
            move || format!("seen: {:#?}", dump.lock().unwrap().seen),
        )
        .await
    }
}
