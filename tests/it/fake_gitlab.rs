//! A fake GitLab (REST v4) on 127.0.0.1:0, shaped as GitLab's docs: one project, reachable
//! by its numeric id or its URL-encoded path, and its pipelines.
//!
//! - `POST /projects/:id/trigger/pipeline` (form `token`, `ref`, `variables[K]`): a trigger
//!   token; a token GitLab does not know is `404 Not Found`.
//! - `POST /projects/:id/pipeline` (JSON `ref`, `variables: [{key, value, variable_type}]`):
//!   `PRIVATE-TOKEN` (or `Authorization: Bearer`).
//! - `GET /projects/:id/pipelines/:pipeline_id`, `.../variables`, and `GET /projects/:id/pipelines`
//!   (`ref`, `sha`, `source`, `status`, `updated_after`, `order_by=id`, `sort`, `page`, `per_page`;
//!   `x-page`, `x-per-page`, `x-total`, `x-total-pages`, `x-next-page`, `x-prev-page`, `Link`).
//! - Errors as GitLab writes them: `401 {"message":"401 Unauthorized"}`, `403 Forbidden`,
//!   `404 {"message":"404 Project Not Found"}`, `400 {"message":{"base":["Reference not found"]}}`,
//!   429 `Retry later` with `Retry-After` and `RateLimit-*`.
//!
//! A pipeline's status follows a script: it is created with the first status and each
//! `GET` of the pipeline moves it one step on. Faults are queued per route; `set_down` makes
//! the server close every connection it accepts, as a backend behind a dead proxy does. Every
//! request is recorded, so a test can count pipeline creations.

#![allow(dead_code)]
// Handlers return a whole error answer early (`Err(Response)`): it is the answer, not an error.
#![allow(clippy::result_large_err)]

use crate::fake_common::{bind, json_response, unix_secs, wait_for, Faults};
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const PROJECT_ID: u64 = 4242;
pub const PROJECT_PATH: &str = "shop/api";
pub const TOKEN: &str = "glpat-fake-access-token";
pub const TRIGGER_TOKEN: &str = "glptt-fake-trigger-token";

/// The routes faults are queued on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    Trigger,
    Create,
    Pipeline,
    Pipelines,
}

/// A scripted failure of one call.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer this status with GitLab's `{"message": "<status> <reason>"}`.
    Status(u16),
    /// 429 `Retry later`, asking to wait `secs`.
    RateLimited { secs: u64 },
    /// Carry out the request (a pipeline is created), then answer this status: the answer
    /// was lost on the way back.
    Lost(u16),
}

/// A pipeline as a test reads it: `(id, ref, source, status, variables)`.
pub type PipelineView = (u64, String, String, String, BTreeMap<String, String>);

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub at: std::time::Instant,
    pub method: String,
    pub path: String,
    pub query: String,
    pub private_token: Option<String>,
    pub content_type: Option<String>,
    pub body: String,
}

#[derive(Debug, Clone)]
struct Pipeline {
    id: u64,
    iid: u64,
    sha: String,
    git_ref: String,
    source: String,
    status: String,
    /// The statuses still to come, one per GET.
    script: VecDeque<String>,
    variables: BTreeMap<String, String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

struct Inner {
    base: String,
    tokens: BTreeSet<String>,
    trigger_tokens: BTreeSet<String>,
    refs: BTreeSet<String>,
    script: Vec<String>,
    pipelines: Vec<Pipeline>,
    requests: Vec<Request>,
    faults: Faults<Route, Fault>,
    next_id: u64,
}

type Shared = Arc<Mutex<Inner>>;

pub struct FakeGitlab {
    /// The API base, as `[gitlab] api_url` takes it.
    pub url: String,
    pub addr: SocketAddr,
    inner: Shared,
    down: Arc<AtomicBool>,
    dropped: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGitlab {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeGitlab {
    /// A fake whose project has the branch `main` and the tags in `refs`; pipelines go
    /// created → pending → running → success.
    pub async fn start(refs: &[&str]) -> FakeGitlab {
        let (listener, addr) = bind("fake GitLab").await;
        let base = format!("http://{addr}/api/v4");
        let inner = Arc::new(Mutex::new(Inner {
            base: base.clone(),
            tokens: [TOKEN.to_string()].into(),
            trigger_tokens: [TRIGGER_TOKEN.to_string()].into(),
            refs: refs
                .iter()
                .map(|r| r.to_string())
                .chain(["main".to_string()])
                .collect(),
            script: ["created", "pending", "running", "success"]
                .map(String::from)
                .to_vec(),
            pipelines: Vec::new(),
            requests: Vec::new(),
            faults: Faults::default(),
            next_id: 1000,
        }));
        let app = Router::new()
            .route("/api/v4/projects/{id}/trigger/pipeline", post(trigger))
            .route("/api/v4/projects/{id}/pipeline", post(create))
            .route("/api/v4/projects/{id}/pipelines", get(list))
            .route("/api/v4/projects/{id}/pipelines/{pid}", get(one))
            .route(
                "/api/v4/projects/{id}/pipelines/{pid}/variables",
                get(variables),
            )
            .fallback(|| async { json_response(404, &json!({"error": "404 Not Found"})) })
            .layer(axum::middleware::from_fn_with_state(inner.clone(), record))
            .with_state(inner.clone());
        let down = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicUsize::new(0));
        let gate = Gate {
            inner: listener,
            down: down.clone(),
            dropped: dropped.clone(),
        };
        let task = tokio::spawn(async move {
            let _ = axum::serve(gate, app).await;
        });
        FakeGitlab {
            url: base,
            addr,
            inner,
            down,
            dropped,
            task,
        }
    }

    /// The statuses every pipeline created from now on goes through, one per GET.
    pub fn set_script(&self, statuses: &[&str]) {
        self.inner.lock().unwrap().script = statuses.iter().map(|s| s.to_string()).collect();
    }

    /// The next call of `route` fails with `fault` (after those queued before it).
    pub fn fail_next(&self, route: Route, fault: Fault) {
        self.inner.lock().unwrap().faults.push(route, fault);
    }

    /// Down: every connection is closed as soon as it is accepted.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Connections closed unanswered while down.
    pub fn dropped(&self) -> usize {
        self.dropped.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// Requests that asked for a pipeline to be created (answered or not).
    pub fn creation_requests(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == "POST")
            .count()
    }

    /// Pipelines that exist.
    pub fn pipelines(&self) -> Vec<PipelineView> {
        self.inner
            .lock()
            .unwrap()
            .pipelines
            .iter()
            .map(|p| {
                (
                    p.id,
                    p.git_ref.clone(),
                    p.source.clone(),
                    p.status.clone(),
                    p.variables.clone(),
                )
            })
            .collect()
    }

    /// Creates a pipeline as someone else would (a push), created `ago` in the past.
    pub fn add_pipeline(&self, git_ref: &str, source: &str, status: &str, ago: Duration) -> u64 {
        let mut g = self.inner.lock().unwrap();
        let at = Utc::now() - chrono::Duration::from_std(ago).unwrap();
        let id = g.new_pipeline(git_ref, source, BTreeMap::new());
        let p = g.pipelines.iter_mut().find(|p| p.id == id).unwrap();
        p.status = status.to_string();
        p.script.clear();
        p.created_at = at;
        p.updated_at = at;
        id
    }

    /// Waits until `n` pipelines exist.
    pub async fn wait_pipelines(&self, n: usize, timeout: Duration) {
        wait_for(
            "fake GitLab",
            &format!("{n} pipelines"),
            timeout,
            || (self.inner.lock().unwrap().pipelines.len() >= n).then_some(()),
            || format!("{:#?}", self.requests()),
        )
        .await
    }
}

impl Inner {
    fn new_pipeline(
        &mut self,
        git_ref: &str,
        source: &str,
        variables: BTreeMap<String, String>,
    ) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        let mut script: VecDeque<String> = self.script.iter().cloned().collect();
        let status = script.pop_front().unwrap_or_else(|| "created".into());
        let now = Utc::now();
        self.pipelines.push(Pipeline {
            id,
            iid: self.pipelines.len() as u64 + 1,
            sha: format!("{:040x}", id * 7919),
            git_ref: git_ref.to_string(),
            source: source.to_string(),
            status,
            script,
            variables,
            created_at: now,
            updated_at: now,
        });
        id
    }

    fn web_url(&self, id: u64) -> String {
        let origin = self.base.trim_end_matches("/api/v4");
        format!("{origin}/{PROJECT_PATH}/-/pipelines/{id}")
    }

    /// The pipeline as the single-pipeline and create endpoints show it.
    fn full(&self, p: &Pipeline) -> Value {
        let mut v = self.short(p);
        let m = v.as_object_mut().unwrap();
        m.insert("before_sha".into(), json!("0".repeat(40)));
        m.insert("tag".into(), json!(p.git_ref.starts_with('v')));
        m.insert("yaml_errors".into(), Value::Null);
        m.insert(
            "user".into(),
            json!({"id": 1, "username": "deploy-bot", "name": "Deploy Bot"}),
        );
        m.insert("started_at".into(), Value::Null);
        m.insert("finished_at".into(), Value::Null);
        m.insert("committed_at".into(), Value::Null);
        m.insert("duration".into(), Value::Null);
        m.insert("queued_duration".into(), Value::Null);
        m.insert("coverage".into(), Value::Null);
        m.insert(
            "detailed_status".into(),
            json!({"icon": format!("status_{}", p.status), "text": p.status, "label": p.status, "group": p.status}),
        );
        v
    }

    /// The pipeline as the list endpoint shows it.
    fn short(&self, p: &Pipeline) -> Value {
        let t = |d: &DateTime<Utc>| d.to_rfc3339_opts(SecondsFormat::Millis, true);
        json!({
            "id": p.id,
            "iid": p.iid,
            "project_id": PROJECT_ID,
            "sha": p.sha,
            "ref": p.git_ref,
            "status": p.status,
            "source": p.source,
            "created_at": t(&p.created_at),
            "updated_at": t(&p.updated_at),
            "web_url": self.web_url(p.id),
            "name": Value::Null,
        })
    }
}

// ---- the wire ----------------------------------------------------------------------------

fn message(status: u16, text: &str) -> Response {
    json_response(status, &json!({ "message": text }))
}

fn status_text(code: u16) -> String {
    let reason = StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    format!("{code} {reason}")
}

fn rate_limited(secs: u64) -> Response {
    let reset = unix_secs() + secs;
    let mut r = (StatusCode::TOO_MANY_REQUESTS, "Retry later\n").into_response();
    let h = r.headers_mut();
    let set = |h: &mut HeaderMap, k: &'static str, v: String| {
        h.insert(k, v.parse().unwrap());
    };
    set(h, "retry-after", secs.to_string());
    set(h, "ratelimit-name", "throttle_authenticated_api".into());
    set(h, "ratelimit-limit", "60".into());
    set(h, "ratelimit-observed", "61".into());
    set(h, "ratelimit-remaining", "0".into());
    set(h, "ratelimit-reset", reset.to_string());
    set(
        h,
        "ratelimit-resettime",
        (Utc::now() + chrono::Duration::seconds(secs as i64))
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string(),
    );
    r
}

/// Records the request and closes the connection after the answer (so `set_down` applies
/// to the next request, never to a pooled connection).
async fn record(
    State(s): State<Shared>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let h = |n: &str| {
        parts
            .headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    s.lock().unwrap().requests.push(Request {
        at: std::time::Instant::now(),
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        private_token: h("private-token"),
        content_type: h("content-type"),
        body: String::from_utf8_lossy(&bytes).into_owned(),
    });
    let req = axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes));
    let mut resp = next.run(req).await;
    resp.headers_mut()
        .insert("connection", "close".parse().unwrap());
    resp
}

/// The project `:id` names (numeric or URL-encoded path), else GitLab's 404.
fn project(id: &str) -> Result<(), Response> {
    let decoded = id.replace("%2F", "/").replace("%2f", "/");
    if decoded == PROJECT_ID.to_string() || decoded == PROJECT_PATH {
        Ok(())
    } else {
        Err(message(404, "404 Project Not Found"))
    }
}

/// The access token of a request: `PRIVATE-TOKEN` or `Authorization: Bearer`.
fn access(s: &Inner, headers: &HeaderMap) -> Result<(), Response> {
    let given = headers
        .get("private-token")
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
        });
    match given {
        Some(t) if s.tokens.contains(t) => Ok(()),
        _ => Err(message(401, "401 Unauthorized")),
    }
}

/// Applies a queued fault; `Lost` is returned for the handler to carry out first.
fn fault(s: &mut Inner, route: Route) -> Result<Option<u16>, Response> {
    match s.faults.next(&route) {
        None => Ok(None),
        Some(Fault::Status(c)) => Err(message(c, &status_text(c))),
        Some(Fault::RateLimited { secs }) => Err(rate_limited(secs)),
        Some(Fault::Lost(c)) => Ok(Some(c)),
    }
}

fn created(
    s: &mut Inner,
    lost: Option<u16>,
    git_ref: &str,
    source: &str,
    vars: BTreeMap<String, String>,
) -> Response {
    if !s.refs.contains(git_ref) {
        return json_response(400, &json!({"message": {"base": ["Reference not found"]}}));
    }
    let id = s.new_pipeline(git_ref, source, vars);
    if let Some(c) = lost {
        return message(c, &status_text(c));
    }
    let p = s.pipelines.iter().find(|p| p.id == id).unwrap().clone();
    json_response(201, &s.full(&p))
}

async fn trigger(
    State(s): State<Shared>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: String,
) -> Response {
    let mut g = s.lock().unwrap();
    if let Err(r) = project(&id) {
        return r;
    }
    let lost = match fault(&mut g, Route::Trigger) {
        Ok(l) => l,
        Err(r) => return r,
    };
    // GitLab takes the fields from a form, a JSON body (`variables` an object, as
    // python-gitlab sends it) or the query string.
    let json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let mut fields: Vec<(String, String)> = if json {
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let text = |v: &Value| {
            v.as_str()
                .map(String::from)
                .unwrap_or_else(|| v.to_string())
        };
        let mut f: Vec<(String, String)> = ["token", "ref"]
            .iter()
            .filter_map(|k| v.get(*k).map(|x| (k.to_string(), text(x))))
            .collect();
        if let Some(vars) = v.get("variables").and_then(Value::as_object) {
            f.extend(
                vars.iter()
                    .map(|(k, x)| (format!("variables[{k}]"), text(x))),
            );
        }
        f
    } else {
        url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect()
    };
    fields.extend(url::form_urlencoded::parse(q.unwrap_or_default().as_bytes()).into_owned());
    let field = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let Some(token) = field("token") else {
        return json_response(400, &json!({"error": "token is missing"}));
    };
    let Some(git_ref) = field("ref") else {
        return json_response(400, &json!({"error": "ref is missing"}));
    };
    if !g.trigger_tokens.contains(&token) {
        return message(404, "404 Not Found");
    }
    let vars = fields
        .iter()
        .filter_map(|(k, v)| {
            let key = k.strip_prefix("variables[")?.strip_suffix(']')?;
            Some((key.to_string(), v.clone()))
        })
        .collect();
    created(&mut g, lost, &git_ref, "trigger", vars)
}

async fn create(
    State(s): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let mut g = s.lock().unwrap();
    if let Err(r) = access(&g, &headers).and_then(|_| project(&id)) {
        return r;
    }
    let lost = match fault(&mut g, Route::Create) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let Ok(v) = serde_json::from_str::<Value>(&body) else {
        return json_response(400, &json!({"error": "body is not JSON"}));
    };
    let Some(git_ref) = v["ref"].as_str() else {
        return json_response(400, &json!({"error": "ref is missing"}));
    };
    let mut vars = BTreeMap::new();
    for var in v["variables"].as_array().cloned().unwrap_or_default() {
        match (var["key"].as_str(), var["value"].as_str()) {
            (Some(k), Some(val)) => {
                vars.insert(k.to_string(), val.to_string());
            }
            _ => return json_response(400, &json!({"error": "variables is invalid"})),
        }
    }
    created(&mut g, lost, git_ref, "api", vars)
}

async fn one(
    State(s): State<Shared>,
    Path((id, pid)): Path<(String, u64)>,
    headers: HeaderMap,
) -> Response {
    let mut g = s.lock().unwrap();
    if let Err(r) = access(&g, &headers).and_then(|_| project(&id)) {
        return r;
    }
    if let Err(r) = fault(&mut g, Route::Pipeline) {
        return r;
    }
    let Some(p) = g.pipelines.iter_mut().find(|p| p.id == pid) else {
        return message(404, "404 Not found");
    };
    if let Some(next) = p.script.pop_front() {
        p.status = next;
        p.updated_at = Utc::now();
    }
    let p = p.clone();
    json_response(200, &g.full(&p))
}

async fn variables(
    State(s): State<Shared>,
    Path((id, pid)): Path<(String, u64)>,
    headers: HeaderMap,
) -> Response {
    let g = s.lock().unwrap();
    if let Err(r) = access(&g, &headers).and_then(|_| project(&id)) {
        return r;
    }
    let Some(p) = g.pipelines.iter().find(|p| p.id == pid) else {
        return message(404, "404 Not found");
    };
    let vars: Vec<Value> = p
        .variables
        .iter()
        .map(|(k, v)| json!({"key": k, "value": v, "variable_type": "env_var"}))
        .collect();
    json_response(200, &Value::Array(vars))
}

async fn list(
    State(s): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
) -> Response {
    let _ = method;
    let mut g = s.lock().unwrap();
    if let Err(r) = access(&g, &headers).and_then(|_| project(&id)) {
        return r;
    }
    if let Err(r) = fault(&mut g, Route::Pipelines) {
        return r;
    }
    let after = match q
        .get("updated_after")
        .map(|t| DateTime::parse_from_rfc3339(t))
    {
        Some(Ok(t)) => Some(t.with_timezone(&Utc)),
        Some(Err(_)) => return json_response(400, &json!({"error": "updated_after is invalid"})),
        None => None,
    };
    let mut ps: Vec<&Pipeline> = g
        .pipelines
        .iter()
        .filter(|p| q.get("ref").is_none_or(|r| *r == p.git_ref))
        .filter(|p| q.get("sha").is_none_or(|r| *r == p.sha))
        .filter(|p| q.get("source").is_none_or(|r| *r == p.source))
        .filter(|p| q.get("status").is_none_or(|r| *r == p.status))
        .filter(|p| after.is_none_or(|a| p.updated_at >= a))
        .collect();
    ps.sort_by_key(|p| p.id);
    if q.get("sort").map(String::as_str) != Some("asc") {
        ps.reverse();
    }
    let per_page: usize = q
        .get("per_page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
        .clamp(1, 100);
    let page: usize = q
        .get("page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let total = ps.len();
    let pages = total.div_ceil(per_page).max(1);
    let items: Vec<Value> = ps
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|p| g.short(p))
        .collect();
    let mut resp = json_response(200, &Value::Array(items));
    let link_to = |n: usize| {
        let mut pairs: Vec<(String, String)> = q
            .iter()
            .filter(|(k, _)| k.as_str() != "page")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        pairs.sort();
        pairs.push(("page".into(), n.to_string()));
        let qs = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        let origin = g.base.trim_end_matches("/api/v4");
        format!("{origin}{}?{qs}", uri.path())
    };
    let mut links = Vec::new();
    if page > 1 {
        links.push(format!("<{}>; rel=\"prev\"", link_to(page - 1)));
    }
    if page < pages {
        links.push(format!("<{}>; rel=\"next\"", link_to(page + 1)));
    }
    links.push(format!("<{}>; rel=\"first\"", link_to(1)));
    links.push(format!("<{}>; rel=\"last\"", link_to(pages)));
    let h = resp.headers_mut();
    let next = if page < pages {
        (page + 1).to_string()
    } else {
        String::new()
    };
    let prev = if page > 1 {
        (page - 1).to_string()
    } else {
        String::new()
    };
    for (k, v) in [
        ("x-page", page.to_string()),
        ("x-per-page", per_page.to_string()),
        ("x-total", total.to_string()),
        ("x-total-pages", pages.to_string()),
        ("x-next-page", next),
        ("x-prev-page", prev),
        ("link", links.join(", ")),
    ] {
        h.insert(k, v.parse().unwrap());
    }
    resp
}

/// The listener: while down, each connection is closed as soon as it is accepted.
struct Gate {
    inner: tokio::net::TcpListener,
    down: Arc<AtomicBool>,
    dropped: Arc<AtomicUsize>,
}

impl axum::serve::Listener for Gate {
    type Io = tokio::net::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            if let Ok((stream, addr)) = self.inner.accept().await {
                if self.down.load(Ordering::SeqCst) {
                    self.dropped.fetch_add(1, Ordering::SeqCst);
                    drop(stream);
                    continue;
                }
                return (stream, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}
