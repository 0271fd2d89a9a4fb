//! A protocol-faithful fake of GitHub's REST API on 127.0.0.1:0, shaped field for field as
//! docs.github.com describes it (API version 2022-11-28), served both at the root (as
//! api.github.com) and under `/api/v3` (as GitHub Enterprise Server).
//!
//! Served today (one handler each; add an endpoint as a route in `router` and a handler that
//! starts with `gate`):
//! - `POST /repos/{o}/{r}/actions/workflows/{workflow}/dispatches`: 204, or 200 with
//!   `workflow_run_id`, `run_url`, `html_url` when asked with `return_run_details`; 422 for an
//!   unknown ref, unexpected or missing inputs, a workflow without `workflow_dispatch`;
//! - `GET /repos/{o}/{r}/actions/runs` and `.../actions/workflows/{workflow}/runs`:
//!   `total_count` + `workflow_runs`, newest first, filtered by `event`, `branch`, `status`,
//!   `created` (`>=`, `>`, `<=`, `<` a timestamp), paginated (`per_page`, `page`, `Link`);
//! - `GET /repos/{o}/{r}/actions/workflows/{workflow}`: the workflow (by file name or id);
//! - `GET /repos/{o}/{r}/actions/runs/{id}`: each GET moves a run on: `queued`, then
//!   `in_progress`, then `completed` with its scripted conclusion.
//!
//! Every request is checked as GitHub does: a User-Agent (403 without), a token (401 `Bad
//! credentials` / `Requires authentication`), and recorded. Faults are scripted per route:
//! a 5xx, a run started whose answer is lost, primary (403, `x-ratelimit-remaining: 0`) and
//! secondary (403/429 with `retry-after`) rate limits; `set_down` answers everything 503.
#![allow(dead_code)]

use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::fake_common::{self as common, Faults};

pub const TOKEN: &str = "ghp_faketoken0123456789";
pub const OWNER: &str = "acme";
pub const REPO: &str = "shop";
const DOCS: &str = "https://docs.github.com/rest";

/// The routes faults are scripted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    Dispatch,
    ListRuns,
    GetRun,
    GetWorkflow,
}

/// A scripted failure of the next call of a route.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// This status with GitHub's HTML-ish error body; nothing takes effect.
    Status(u16),
    /// The dispatch starts its run, but the answer is this status (a lost answer).
    StartedThen(u16),
    /// 429 with `retry-after` (a secondary rate limit).
    TooMany { retry_after: u64 },
    /// 403 with `x-ratelimit-remaining: 0` and the reset `reset_in` seconds from now.
    PrimaryLimit { reset_in: u64 },
}

/// What a dispatch does with `return_run_details` (GitHub has answered 200 with the run's
/// details since 2026-02; older servers do not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunDetails {
    /// 200 with `workflow_run_id`, `run_url`, `html_url`.
    #[default]
    Answered,
    /// Ignored: 204 as before.
    Ignored,
    /// Refused as an unknown key: 422 "... is not a permitted key.", nothing started.
    Refused,
}

/// A workflow of the repository.
#[derive(Debug, Clone)]
pub struct Workflow {
    pub id: u64,
    pub file: String,
    /// Has `on: workflow_dispatch`.
    pub dispatchable: bool,
    /// Declared inputs: (name, required).
    pub inputs: Vec<(String, bool)>,
}

/// A workflow run.
#[derive(Debug, Clone)]
pub struct Run {
    pub id: u64,
    pub run_number: u64,
    pub workflow_id: u64,
    pub path: String,
    pub head_branch: String,
    pub event: String,
    pub inputs: BTreeMap<String, String>,
    pub conclusion: String,
    pub created_at: DateTime<Utc>,
    /// GETs of this run so far (they move it on).
    pub gets: u32,
    /// List requests that did not show it yet (a new run takes a moment to appear).
    pub hidden_for: u32,
}

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    pub authorization: Option<String>,
    pub user_agent: Option<String>,
    pub accept: Option<String>,
    pub api_version: Option<String>,
    pub body: Value,
}

#[derive(Default)]
pub struct Inner {
    pub workflows: Vec<Workflow>,
    pub runs: Vec<Run>,
    pub requests: Vec<Request>,
    pub faults: Faults<Route, Fault>,
    /// Answer every request with this status.
    pub down: Option<u16>,
    /// Refs that exist (`None`: every ref).
    pub refs: Option<Vec<String>>,
    /// Conclusions of the next runs, in order (then `success`).
    pub conclusions: VecDeque<String>,
    /// GETs a run stays `queued`, then `in_progress`.
    pub queued_gets: u32,
    pub in_progress_gets: u32,
    /// List requests a new run is missing from.
    pub appear_after: u32,
    pub run_details: RunDetails,
    next_id: u64,
}

type Shared = Arc<Mutex<Inner>>;

pub struct FakeGitHub {
    /// As `api_url`: `http://127.0.0.1:PORT` (the `/api/v3` prefix works as well).
    pub url: String,
    state: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeGitHub {
    /// A repository `acme/shop` with `deploy.yml` (inputs `version` required, `colour`,
    /// `environment`), `ci.yml` (no `workflow_dispatch`).
    pub async fn start() -> FakeGitHub {
        let (listener, addr) = common::bind("fake GitHub").await;
        let state: Shared = Arc::new(Mutex::new(Inner {
            workflows: vec![
                Workflow {
                    id: 1001,
                    file: "deploy.yml".into(),
                    dispatchable: true,
                    inputs: vec![
                        ("version".into(), true),
                        ("colour".into(), false),
                        ("environment".into(), false),
                    ],
                },
                Workflow {
                    id: 1002,
                    file: "ci.yml".into(),
                    dispatchable: false,
                    inputs: vec![],
                },
            ],
            queued_gets: 1,
            in_progress_gets: 1,
            next_id: 9000,
            ..Inner::default()
        }));
        let app = router(state.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeGitHub {
            url: format!("http://{addr}"),
            state,
            server,
        }
    }

    pub fn state(&self) -> MutexGuard<'_, Inner> {
        self.state.lock().unwrap()
    }

    pub fn push_fault(&self, route: Route, fault: Fault) {
        self.state().faults.push(route, fault);
    }

    pub fn set_down(&self, status: Option<u16>) {
        self.state().down = status;
    }

    /// The next run concludes `conclusion` (`failure`, `cancelled`, ...).
    pub fn conclude_next(&self, conclusion: &str) {
        self.state().conclusions.push_back(conclusion.into());
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state().requests.clone()
    }

    /// The dispatch requests that reached the fake (whatever their answer).
    pub fn dispatches(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/dispatches"))
            .collect()
    }

    pub fn runs(&self) -> Vec<Run> {
        self.state().runs.clone()
    }

    /// Waits until `n` runs exist.
    pub async fn wait_runs(&self, n: usize, timeout: Duration) -> Vec<Run> {
        common::wait_for(
            "fake GitHub",
            &format!("{n} runs"),
            timeout,
            || {
                let runs = self.runs();
                (runs.len() >= n).then_some(runs)
            },
            || format!("{:#?}", self.requests()),
        )
        .await
    }
}

fn router(state: Shared) -> Router {
    let api = Router::new()
        .route(
            "/repos/{owner}/{repo}/actions/workflows/{workflow}/dispatches",
            post(dispatch),
        )
        .route(
            "/repos/{owner}/{repo}/actions/workflows/{workflow}/runs",
            get(list_workflow_runs),
        )
        .route(
            "/repos/{owner}/{repo}/actions/workflows/{workflow}",
            get(get_workflow),
        )
        .route("/repos/{owner}/{repo}/actions/runs", get(list_runs))
        .route("/repos/{owner}/{repo}/actions/runs/{id}", get(get_run));
    Router::new()
        .merge(api.clone())
        .nest("/api/v3", api)
        .fallback(|| async { error(404, "Not Found") })
        .with_state(state)
}

// ---- answers ----------------------------------------------------------------------------

/// GitHub's error body: `message`, `documentation_url`, `status`.
fn error(status: u16, message: &str) -> Response {
    let body = json!({"message": message, "documentation_url": DOCS, "status": status.to_string()});
    with_limits(common::json_response(status, &body), 4999)
}

/// The rate-limit headers GitHub puts on every answer.
fn with_limits(mut r: Response, remaining: u64) -> Response {
    let reset = common::unix_secs() + 3600;
    let h = r.headers_mut();
    for (k, v) in [
        ("x-ratelimit-limit", "5000".to_string()),
        ("x-ratelimit-remaining", remaining.to_string()),
        ("x-ratelimit-reset", reset.to_string()),
        ("x-ratelimit-used", (5000 - remaining).to_string()),
        ("x-ratelimit-resource", "core".to_string()),
        ("x-github-api-version-selected", "2022-11-28".to_string()),
    ] {
        h.insert(k, HeaderValue::from_str(&v).unwrap());
    }
    r
}

fn ok_json(body: &Value) -> Response {
    with_limits(common::json_response(200, body), 4999)
}

fn fault_answer(f: &Fault) -> Response {
    match f {
        Fault::Status(s) | Fault::StartedThen(s) => {
            let mut r = error(*s, "Server Error");
            if *s == 502 {
                r = (
                    axum::http::StatusCode::BAD_GATEWAY,
                    "<html><body><h1>502 Bad Gateway</h1></body></html>",
                )
                    .into_response();
            }
            r
        }
        Fault::TooMany { retry_after } => common::rate_limited(
            *retry_after as f64,
            &json!({"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.", "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"}),
        ),
        Fault::PrimaryLimit { reset_in } => {
            let mut r = with_limits(
                common::json_response(
                    403,
                    &json!({"message": "API rate limit exceeded for user ID 1.", "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"}),
                ),
                0,
            );
            let reset = common::unix_secs() + reset_in;
            r.headers_mut()
                .insert("x-ratelimit-reset", HeaderValue::from(reset));
            r
        }
    }
}

/// What every request goes through, in GitHub's order: outage, User-Agent, token, the
/// repository, a scripted fault. Records the request.
#[allow(clippy::result_large_err)] // the refusal is the answer itself
fn gate<'a>(
    state: &'a Shared,
    route: Route,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &str,
    repo: (&str, &str),
) -> Result<(MutexGuard<'a, Inner>, Option<Fault>), Response> {
    let mut s = state.lock().unwrap();
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    s.requests.push(Request {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or("").to_string(),
        authorization: h("authorization"),
        user_agent: h("user-agent"),
        accept: h("accept"),
        api_version: h("x-github-api-version"),
        body: serde_json::from_str(body).unwrap_or(Value::Null),
    });
    if let Some(code) = s.down {
        return Err(error(code, "Service Unavailable"));
    }
    if h("user-agent").is_none() {
        return Err((axum::http::StatusCode::FORBIDDEN, "Request forbidden by administrative rules. Please make sure your request has a User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required). Check https://developer.github.com for other possible causes.\n").into_response());
    }
    let token = h("authorization").and_then(|a| {
        a.strip_prefix("Bearer ")
            .or_else(|| a.strip_prefix("token "))
            .map(String::from)
    });
    match token.as_deref() {
        None => return Err(error(401, "Requires authentication")),
        Some(TOKEN) => {}
        Some(_) => return Err(error(401, "Bad credentials")),
    }
    if repo != (OWNER, REPO) {
        return Err(error(404, "Not Found"));
    }
    let fault = s.faults.next(&route);
    match &fault {
        Some(Fault::StartedThen(_)) | None => Ok((s, fault)),
        Some(f) => Err(fault_answer(f)),
    }
}

fn run_json(base: &str, r: &Run, status: &str) -> Value {
    let at = r.created_at.to_rfc3339_opts(SecondsFormat::Secs, true);
    let api = format!("{base}/repos/{OWNER}/{REPO}/actions/runs/{}", r.id);
    json!({
        "id": r.id,
        "name": "Deploy",
        "node_id": format!("WFR_kwLO{}", r.id),
        "check_suite_id": r.id + 50000,
        "head_branch": r.head_branch,
        "head_sha": "009b8a3a9ccbb128af87f9b1c0f4c62e8a304f6d",
        "path": r.path,
        "display_title": "Deploy",
        "run_number": r.run_number,
        "event": r.event,
        "status": status,
        "conclusion": if status == "completed" { json!(r.conclusion) } else { Value::Null },
        "workflow_id": r.workflow_id,
        "url": api,
        "html_url": format!("https://github.com/{OWNER}/{REPO}/actions/runs/{}", r.id),
        "pull_requests": [],
        "created_at": at,
        "updated_at": at,
        "run_attempt": 1,
        "run_started_at": at,
        "actor": {"login": "greenlight-bot", "id": 1, "type": "Bot"},
        "triggering_actor": {"login": "greenlight-bot", "id": 1, "type": "Bot"},
        "jobs_url": format!("{api}/jobs"),
        "logs_url": format!("{api}/logs"),
        "check_suite_url": format!("{base}/repos/{OWNER}/{REPO}/check-suites/{}", r.id + 50000),
        "artifacts_url": format!("{api}/artifacts"),
        "cancel_url": format!("{api}/cancel"),
        "rerun_url": format!("{api}/rerun"),
        "workflow_url": format!("{base}/repos/{OWNER}/{REPO}/actions/workflows/{}", r.workflow_id),
        "repository": {"id": 1296269, "name": REPO, "full_name": format!("{OWNER}/{REPO}"), "private": false,
            "owner": {"login": OWNER, "id": 1, "type": "Organization"}},
        "head_repository": {"id": 1296269, "name": REPO, "full_name": format!("{OWNER}/{REPO}")},
    })
}

impl Inner {
    /// A run's status after `gets` GETs.
    fn status(&self, r: &Run) -> &'static str {
        if r.gets <= self.queued_gets {
            "queued"
        } else if r.gets <= self.queued_gets + self.in_progress_gets {
            "in_progress"
        } else {
            "completed"
        }
    }

    fn workflow(&self, w: &str) -> Option<Workflow> {
        self.workflows
            .iter()
            .find(|x| x.file == w || x.id.to_string() == w)
            .cloned()
    }
}

/// The base URL as the client called it (for URLs in bodies and links).
fn base_of(headers: &HeaderMap, uri: &Uri) -> String {
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    let prefix = if uri.path().starts_with("/api/v3/") {
        "/api/v3"
    } else {
        ""
    };
    format!("http://{host}{prefix}")
}

// ---- handlers ---------------------------------------------------------------------------

async fn dispatch(
    State(state): State<Shared>,
    Path((owner, repo, workflow)): Path<(String, String, String)>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: String,
) -> Response {
    let (mut s, fault) = match gate(
        &state,
        Route::Dispatch,
        &method,
        &uri,
        &headers,
        &body,
        (&owner, &repo),
    ) {
        Ok(g) => g,
        Err(r) => return r,
    };
    let Some(wf) = s.workflow(&workflow) else {
        return error(404, "Not Found");
    };
    let Ok(body) = serde_json::from_str::<Value>(&body) else {
        return error(400, "Problems parsing JSON");
    };
    let asked = body.get("return_run_details").is_some();
    if asked && s.run_details == RunDetails::Refused {
        return error(
            422,
            "Invalid request.\n\n\"return_run_details\" is not a permitted key.",
        );
    }
    let Some(git_ref) = body["ref"].as_str().map(String::from) else {
        return error(422, "Invalid request.\n\n\"ref\" wasn't supplied.");
    };
    if !wf.dispatchable {
        return error(422, "Workflow does not have 'workflow_dispatch' trigger");
    }
    if s.refs.as_ref().is_some_and(|r| !r.contains(&git_ref)) {
        return error(422, &format!("No ref found for: {git_ref}"));
    }
    let mut inputs = BTreeMap::new();
    let mut unexpected = Vec::new();
    for (k, v) in body["inputs"].as_object().into_iter().flatten() {
        if !wf.inputs.iter().any(|(n, _)| n == k) {
            unexpected.push(format!("\"{k}\""));
        }
        inputs.insert(
            k.clone(),
            v.as_str()
                .map(String::from)
                .unwrap_or_else(|| v.to_string()),
        );
    }
    if !unexpected.is_empty() {
        return error(
            422,
            &format!("Unexpected inputs provided: [{}]", unexpected.join(", ")),
        );
    }
    if let Some((n, _)) = wf
        .inputs
        .iter()
        .find(|(n, req)| *req && !inputs.contains_key(n))
    {
        return error(422, &format!("Required input '{n}' not provided"));
    }
    s.next_id += 1;
    let id = s.next_id;
    let run_number = s.runs.iter().filter(|r| r.workflow_id == wf.id).count() as u64 + 1;
    let conclusion = s
        .conclusions
        .pop_front()
        .unwrap_or_else(|| "success".into());
    let hidden_for = s.appear_after;
    s.runs.push(Run {
        id,
        run_number,
        workflow_id: wf.id,
        path: format!(".github/workflows/{}", wf.file),
        head_branch: git_ref,
        event: "workflow_dispatch".into(),
        inputs,
        conclusion,
        created_at: Utc::now(),
        gets: 0,
        hidden_for,
    });
    if let Some(f) = fault {
        return fault_answer(&f);
    }
    if body["return_run_details"] == json!(true) && s.run_details == RunDetails::Answered {
        let base = base_of(&headers, &uri);
        return ok_json(&json!({
            "workflow_run_id": id,
            "run_url": format!("{base}/repos/{OWNER}/{REPO}/actions/runs/{id}"),
            "html_url": format!("https://github.com/{OWNER}/{REPO}/actions/runs/{id}"),
        }));
    }
    with_limits(axum::http::StatusCode::NO_CONTENT.into_response(), 4999)
}

async fn list_runs(
    State(state): State<Shared>,
    Path((owner, repo)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    list(state, owner, repo, None, q, method, uri, headers)
}

async fn list_workflow_runs(
    State(state): State<Shared>,
    Path((owner, repo, workflow)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    list(state, owner, repo, Some(workflow), q, method, uri, headers)
}

#[allow(clippy::too_many_arguments)]
fn list(
    state: Shared,
    owner: String,
    repo: String,
    workflow: Option<String>,
    q: HashMap<String, String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let (mut s, _) = match gate(
        &state,
        Route::ListRuns,
        &method,
        &uri,
        &headers,
        "",
        (&owner, &repo),
    ) {
        Ok(g) => g,
        Err(r) => return r,
    };
    let wf_id = match &workflow {
        Some(w) => match s.workflow(w) {
            Some(wf) => Some(wf.id),
            None => return error(404, "Not Found"),
        },
        None => None,
    };
    let created = match q.get("created").map(|c| created_filter(c)) {
        Some(None) => return error(422, "Invalid value for created"),
        Some(Some(f)) => Some(f),
        None => None,
    };
    let mut runs: Vec<Run> = s
        .runs
        .iter()
        .filter(|r| r.hidden_for == 0)
        .filter(|r| wf_id.is_none_or(|w| r.workflow_id == w))
        .filter(|r| q.get("event").is_none_or(|e| &r.event == e))
        .filter(|r| q.get("branch").is_none_or(|b| &r.head_branch == b))
        .filter(|r| q.get("status").is_none_or(|st| s.status(r) == st))
        .filter(|r| created.as_ref().is_none_or(|f| f(r.created_at)))
        .cloned()
        .collect();
    // A new run shows up only after a few list requests.
    for r in s.runs.iter_mut() {
        r.hidden_for = r.hidden_for.saturating_sub(1);
    }
    runs.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    let per_page: usize = q
        .get("per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let page: usize = q
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let total = runs.len();
    let base = base_of(&headers, &uri);
    let items: Vec<Value> = runs
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|r| run_json(&base, r, s.status(r)))
        .collect();
    let mut resp = ok_json(&json!({"total_count": total, "workflow_runs": items}));
    let last = total.div_ceil(per_page).max(1);
    let link_to = |p: usize, rel: &str| {
        let mut q2: Vec<(String, String)> = q
            .iter()
            .filter(|(k, _)| *k != "page")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        q2.sort();
        q2.push(("page".into(), p.to_string()));
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(q2)
            .finish();
        format!(
            "<http://{}{}?{query}>; rel=\"{rel}\"",
            headers
                .get("host")
                .and_then(|h| h.to_str().ok())
                .unwrap_or(""),
            uri.path()
        )
    };
    let mut links = Vec::new();
    if page > 1 {
        links.push(link_to(page - 1, "prev"));
    }
    if page < last {
        links.push(link_to(page + 1, "next"));
        links.push(link_to(last, "last"));
    }
    if page > 1 {
        links.push(link_to(1, "first"));
    }
    if !links.is_empty() {
        resp.headers_mut()
            .insert("link", HeaderValue::from_str(&links.join(", ")).unwrap());
    }
    resp
}

/// GitHub's `created` search qualifier: `>=T`, `>T`, `<=T`, `<T` or `T` (a date-time).
fn created_filter(c: &str) -> Option<Box<dyn Fn(DateTime<Utc>) -> bool>> {
    let (op, t) = [">=", "<=", ">", "<"]
        .iter()
        .find_map(|op| c.strip_prefix(op).map(|t| (*op, t)))
        .unwrap_or(("=", c));
    let t: DateTime<Utc> = DateTime::parse_from_rfc3339(t).ok()?.with_timezone(&Utc);
    Some(match op {
        ">=" => Box::new(move |x| x >= t),
        ">" => Box::new(move |x| x > t),
        "<=" => Box::new(move |x| x <= t),
        "<" => Box::new(move |x| x < t),
        _ => Box::new(move |x| x == t),
    })
}

async fn get_run(
    State(state): State<Shared>,
    Path((owner, repo, id)): Path<(String, String, String)>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let (mut s, _) = match gate(
        &state,
        Route::GetRun,
        &method,
        &uri,
        &headers,
        "",
        (&owner, &repo),
    ) {
        Ok(g) => g,
        Err(r) => return r,
    };
    let Some(i) = s.runs.iter().position(|r| r.id.to_string() == id) else {
        return error(404, "Not Found");
    };
    s.runs[i].gets += 1;
    let r = s.runs[i].clone();
    let status = s.status(&r);
    ok_json(&run_json(&base_of(&headers, &uri), &r, status))
}

async fn get_workflow(
    State(state): State<Shared>,
    Path((owner, repo, workflow)): Path<(String, String, String)>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let (s, _) = match gate(
        &state,
        Route::GetWorkflow,
        &method,
        &uri,
        &headers,
        "",
        (&owner, &repo),
    ) {
        Ok(g) => g,
        Err(r) => return r,
    };
    let Some(w) = s.workflow(&workflow) else {
        return error(404, "Not Found");
    };
    let base = base_of(&headers, &uri);
    let path = format!(".github/workflows/{}", w.file);
    ok_json(&json!({
        "id": w.id,
        "node_id": format!("W_kwDO{}", w.id),
        "name": w.file.trim_end_matches(".yml"),
        "path": path,
        "state": "active",
        "created_at": "2024-01-01T00:00:00.000Z",
        "updated_at": "2024-01-01T00:00:00.000Z",
        "url": format!("{base}/repos/{OWNER}/{REPO}/actions/workflows/{}", w.id),
        "html_url": format!("https://github.com/{OWNER}/{REPO}/blob/main/{path}"),
        "badge_url": format!("https://github.com/{OWNER}/{REPO}/workflows/{}/badge.svg", w.file),
    }))
}
