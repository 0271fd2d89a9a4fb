//! A protocol-faithful fake of Argo CD's REST API (grpc-gateway) on 127.0.0.1:0, for the
//! `argocd` driver: `GET/PATCH /api/v1/applications/NAME`, `POST .../sync`,
//! `POST .../rollback`.
//!
//! Faithful details worth knowing when writing tests:
//! - Errors are grpc-gateway bodies `{error, code, message}`: 401 code 16 without the token,
//!   403 code 7 (permission, a sync window), 404 code 5 for an unknown application, 400 code 9
//!   (FailedPrecondition) for a rollback while auto-sync is on or a sync while an operation
//!   runs.
//! - PATCH takes `{"name", "patchType": "merge", "patch": "<json string>"}` and applies it as
//!   a JSON merge patch (RFC 7386: lists replaced whole, `null` deletes).
//! - A sync or rollback starts an operation `Running`; it moves on as the application is read
//!   (`running_reads` GETs, 2 by default), then ends as scripted (`Succeeded` + `Healthy` by
//!   default, or `Failed`, or `Succeeded` with health `Degraded`) and adds a history entry.
//!   No timers: a client that stops reading (a crashed bot) finds the operation where it was.
//! - The controller's own auto-sync is modelled only as `controller_auto_syncs`: a PATCH of an
//!   auto-synced application's source starts the operation at once (a later POST sync is then
//!   refused with code 9). Otherwise only a POST sync or rollback starts one.
//! - `/_workload/NAME/...` stands in for the cluster: it forwards to the backend registered
//!   for the version the application's last successful operation deployed.
#![allow(dead_code)]

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::fake_common::{self as common, Faults};

pub const TOKEN: &str = "argocd-test-token";

/// How the next operation of an application ends.
#[derive(Debug, Clone, PartialEq)]
pub enum Ending {
    Succeeded,
    /// Phase `Failed` with this `operationState.message`.
    Failed(String),
    /// Phase `Succeeded`, health `Degraded` with this message.
    Degraded(String),
}

/// A scripted failure for the next call of a route (`"GET"`, `"PATCH"`, `"sync"`,
/// `"rollback"`).
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// This HTTP status with a grpc-gateway body (503: code 14 Unavailable).
    Status(u16),
    /// 429 with `Retry-After`.
    RateLimited(u64),
}

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub body: Value,
    pub authorized: bool,
}

#[derive(Default)]
struct AppState {
    app: Value,
    endings: VecDeque<Ending>,
    /// Reads left before the running operation ends, and how it ends.
    running: Option<(u32, Ending)>,
    /// The source of the last successful operation (what the cluster runs).
    deployed: Value,
}

#[derive(Default)]
struct Inner {
    apps: BTreeMap<String, AppState>,
    requests: Vec<Request>,
    faults: Faults<String, Fault>,
    outage: Option<u16>,
    running_reads: u32,
    sync_window: Option<String>,
    forbidden: bool,
    /// The controller auto-syncs an application with `automated` as soon as its source changes.
    controller_auto_syncs: bool,
    /// Deployed-source text -> backend base URL (`/_workload`).
    backends: Vec<(String, String)>,
    next_id: i64,
    operations: usize,
}

#[derive(Clone)]
pub struct FakeArgo {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl Drop for FakeArgo {
    fn drop(&mut self) {
        if Arc::strong_count(&self.task) == 1 {
            self.task.abort();
        }
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// grpc-gateway's error body.
fn grpc(status: u16, code: u32, message: &str) -> Response {
    common::json_response(
        status,
        &json!({"error": message, "code": code, "message": message}),
    )
}

/// RFC 7386 JSON merge patch.
pub fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().unwrap();
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

impl FakeArgo {
    pub async fn start() -> FakeArgo {
        let (listener, addr) = common::bind("fake Argo CD").await;
        let inner = Arc::new(Mutex::new(Inner {
            running_reads: 2,
            next_id: 1,
            ..Default::default()
        }));
        let router = Router::new()
            .route("/api/v1/applications/{name}", get(get_app).patch(patch_app))
            .route("/api/v1/applications/{name}/sync", post(sync))
            .route("/api/v1/applications/{name}/rollback", post(rollback))
            .route("/_workload/{name}/{*rest}", any(workload))
            .with_state(inner.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        FakeArgo {
            url: format!("http://{addr}"),
            inner,
            task: Arc::new(task),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap()
    }

    /// Adds an application whose source is `source`, deployed once (history id 1... ), with
    /// auto-sync on or off.
    pub fn add_app(&self, name: &str, source: Value, auto_sync: bool) {
        let mut g = self.lock();
        let id = g.next_id;
        g.next_id += 1;
        let mut app = json!({
            "metadata": {"name": name, "namespace": "argocd"},
            "spec": {
                "project": "default",
                "source": source.clone(),
                "destination": {"server": "https://kubernetes.default.svc", "namespace": name},
                "syncPolicy": {}
            },
            "status": {
                "sync": {"status": "Synced", "revision": "abc123"},
                "health": {"status": "Healthy"},
                "history": [{"id": id, "revision": "abc123", "deployedAt": now(), "source": source.clone()}],
                "operationState": {"phase": "Succeeded", "message": "successfully synced (all tasks run)",
                    "startedAt": "2024-01-01T00:00:00Z", "finishedAt": "2024-01-01T00:00:05Z",
                    "syncResult": {"revision": "abc123", "source": source.clone()}}
            }
        });
        if auto_sync {
            app["spec"]["syncPolicy"]["automated"] = json!({"prune": true, "selfHeal": true});
        }
        g.apps.insert(
            name.into(),
            AppState {
                app,
                deployed: source,
                ..Default::default()
            },
        );
    }

    /// The application as GET would answer it (without moving its operation on).
    pub fn app(&self, name: &str) -> Value {
        self.lock().apps[name].app.clone()
    }

    /// The next operation of `app` ends like this.
    pub fn script(&self, app: &str, ending: Ending) {
        self.lock()
            .apps
            .get_mut(app)
            .unwrap()
            .endings
            .push_back(ending);
    }

    /// How many reads an operation stays Running.
    pub fn running_reads(&self, n: u32) {
        self.lock().running_reads = n;
    }

    pub fn fault(&self, route: &str, f: Fault) {
        self.lock().faults.push(route.to_string(), f);
    }

    /// Every request answered with this status (`None`: back to normal).
    pub fn outage(&self, status: Option<u16>) {
        self.lock().outage = status;
    }

    /// Syncs are refused by a sync window (403 code 7, as Argo CD answers).
    pub fn sync_window(&self, on: bool) {
        self.lock().sync_window = on.then(|| "cannot sync: blocked by sync window".into());
    }

    /// A change of an auto-synced application's source starts a sync by itself (the
    /// controller noticing at once, as with a git webhook), before the client asks for one.
    pub fn controller_auto_syncs(&self, on: bool) {
        self.lock().controller_auto_syncs = on;
    }

    /// How many operations (syncs, auto-syncs, rollbacks) started.
    pub fn operations(&self) -> usize {
        self.lock().operations
    }

    /// The token lacks permission (403 code 7).
    pub fn forbid(&self, on: bool) {
        self.lock().forbidden = on;
    }

    /// `/_workload/APP/...` goes to `backend` while the deployed source mentions `needle`.
    pub fn backend(&self, needle: &str, backend: &str) {
        self.lock()
            .backends
            .push((needle.to_string(), backend.to_string()));
    }

    pub fn requests(&self) -> Vec<Request> {
        self.lock().requests.clone()
    }

    /// The recorded requests as `METHOD path` lines (for order assertions and dumps).
    pub fn log(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    /// How many requests went to a path ending with `suffix` with `method`.
    pub fn count(&self, method: &str, suffix: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == method && r.path.ends_with(suffix))
            .count()
    }

    pub async fn wait_for(&self, what: &str, f: impl Fn(&FakeArgo) -> bool) {
        let me = self.clone();
        common::wait_for(
            "fake Argo CD",
            what,
            Duration::from_secs(60),
            || f(&me).then_some(()),
            || self.log().join("\n"),
        )
        .await
    }
}

type St = State<Arc<Mutex<Inner>>>;

/// Records the request and answers the checks every route shares: outage, token, scripted
/// fault, permission, the application's existence.
fn gate(
    g: &mut Inner,
    headers: &HeaderMap,
    method: &str,
    path: String,
    body: Value,
    route: &str,
    name: &str,
) -> Option<Response> {
    let authorized = headers.get("authorization").and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {TOKEN}"));
    g.requests.push(Request {
        method: method.into(),
        path,
        body,
        authorized,
    });
    if let Some(s) = g.outage {
        return Some(grpc(
            s,
            14,
            "connection error: desc = \"transport: error while dialing\"",
        ));
    }
    if !authorized {
        return Some(grpc(401, 16, "no session information"));
    }
    match g.faults.next(&route.to_string()) {
        Some(Fault::Status(s)) => return Some(grpc(s, 14, "upstream connect error")),
        Some(Fault::RateLimited(secs)) => {
            return Some(common::rate_limited(
                secs as f64,
                &json!({"error": "too many requests", "code": 8, "message": "too many requests"}),
            ))
        }
        None => {}
    }
    if g.forbidden {
        return Some(grpc(
            403,
            7,
            &format!("permission denied: applications, {route}, default/{name}, sub: greenlight"),
        ));
    }
    if !g.apps.contains_key(name) {
        return Some(grpc(
            404,
            5,
            &format!("applications.argoproj.io \"{name}\" not found"),
        ));
    }
    None
}

/// Reading an application moves its running operation on.
fn advance(g: &mut Inner, name: &str) {
    let next_id = g.next_id;
    let a = g.apps.get_mut(name).unwrap();
    let Some((left, ending)) = a.running.take() else {
        return;
    };
    if left > 0 {
        a.running = Some((left - 1, ending));
        return;
    }
    let op = &mut a.app["status"]["operationState"];
    op["finishedAt"] = json!(now());
    let source = op["syncResult"]["source"].clone();
    match ending {
        Ending::Failed(m) => {
            op["phase"] = json!("Failed");
            op["message"] = json!(m);
            a.app["status"]["sync"]["status"] = json!("OutOfSync");
            return;
        }
        Ending::Succeeded => {
            op["phase"] = json!("Succeeded");
            op["message"] = json!("successfully synced (all tasks run)");
            a.app["status"]["health"] = json!({"status": "Healthy"});
        }
        Ending::Degraded(m) => {
            op["phase"] = json!("Succeeded");
            op["message"] = json!("successfully synced (all tasks run)");
            a.app["status"]["health"] = json!({"status": "Degraded", "message": m});
        }
    }
    a.app["status"]["sync"]["status"] = json!("Synced");
    a.deployed = source.clone();
    let entry = json!({"id": next_id, "revision": "abc123", "deployedAt": now(), "source": source});
    a.app["status"]["history"]
        .as_array_mut()
        .unwrap()
        .push(entry);
    g.next_id += 1;
}

async fn get_app(State(s): St, Path(name): Path<String>, headers: HeaderMap) -> Response {
    let mut g = s.lock().unwrap();
    let path = format!("/api/v1/applications/{name}");
    if let Some(r) = gate(&mut g, &headers, "GET", path, Value::Null, "GET", &name) {
        return r;
    }
    advance(&mut g, &name);
    common::json_response(200, &g.apps[&name].app)
}

async fn patch_app(
    State(s): St,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut g = s.lock().unwrap();
    let path = format!("/api/v1/applications/{name}");
    if let Some(r) = gate(
        &mut g,
        &headers,
        "PATCH",
        path,
        body.clone(),
        "PATCH",
        &name,
    ) {
        return r;
    }
    if body["patchType"] != "merge" || body["name"] != json!(name) {
        return grpc(400, 3, "error unmarshaling patch: unsupported patch type");
    }
    let Some(patch) = body["patch"]
        .as_str()
        .and_then(|p| serde_json::from_str::<Value>(p).ok())
    else {
        return grpc(400, 3, "error unmarshaling patch: invalid JSON");
    };
    let auto = g.controller_auto_syncs;
    let a = g.apps.get_mut(&name).unwrap();
    merge(&mut a.app, &patch);
    if patch.pointer("/spec/source").is_some() {
        a.app["status"]["sync"]["status"] = json!("OutOfSync");
        let automated = a.app.pointer("/spec/syncPolicy/automated").is_some();
        if auto && automated && a.running.is_none() {
            let source = a.app["spec"]["source"].clone();
            start_operation(&mut g, &name, source);
        }
    }
    common::json_response(200, &g.apps[&name].app)
}

/// Starts an operation syncing `source` (a sync: the spec's; a rollback: a history entry's).
fn start_operation(g: &mut Inner, name: &str, source: Value) -> Response {
    let reads = g.running_reads;
    if g.apps[name].running.is_some() {
        return grpc(400, 9, "another operation is already in progress");
    }
    g.operations += 1;
    let a = g.apps.get_mut(name).unwrap();
    let ending = a.endings.pop_front().unwrap_or(Ending::Succeeded);
    a.running = Some((reads, ending));
    a.app["spec"]["source"] = source.clone();
    a.app["status"]["operationState"] = json!({
        "phase": "Running", "message": "waiting for healthy state of apps/Deployment/app",
        "startedAt": now(),
        "syncResult": {"revision": "abc123", "source": source}
    });
    a.app["status"]["health"] = json!({"status": "Progressing"});
    common::json_response(200, &a.app)
}

async fn sync(State(s): St, Path(name): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut g = s.lock().unwrap();
    let path = format!("/api/v1/applications/{name}/sync");
    if let Some(r) = gate(&mut g, &headers, "POST", path, body, "sync", &name) {
        return r;
    }
    if let Some(m) = g.sync_window.clone() {
        return grpc(403, 7, &m);
    }
    let source = g.apps[&name].app["spec"]["source"].clone();
    start_operation(&mut g, &name, source)
}

async fn rollback(
    State(s): St,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut g = s.lock().unwrap();
    let path = format!("/api/v1/applications/{name}/rollback");
    if let Some(r) = gate(
        &mut g,
        &headers,
        "POST",
        path,
        body.clone(),
        "rollback",
        &name,
    ) {
        return r;
    }
    let app = &g.apps[&name].app;
    let automated = app.pointer("/spec/syncPolicy/automated");
    if automated.is_some_and(|a| !a.is_null()) {
        return grpc(
            400,
            9,
            "rollback cannot be initiated when auto-sync is enabled",
        );
    }
    let id = body["id"].as_i64().unwrap_or(-1);
    let Some(entry) = app["status"]["history"]
        .as_array()
        .and_then(|h| h.iter().find(|e| e["id"] == json!(id)))
    else {
        return grpc(
            404,
            5,
            &format!("application {name} does not have deployment with id {id}"),
        );
    };
    let source = entry["source"].clone();
    start_operation(&mut g, &name, source)
}

/// The cluster: forwards to the backend of the version the application runs.
async fn workload(
    State(s): St,
    Path((name, rest)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let backend = {
        let g = s.lock().unwrap();
        let deployed = g
            .apps
            .get(&name)
            .map(|a| a.deployed.to_string())
            .unwrap_or_default();
        g.backends
            .iter()
            .find(|(needle, _)| deployed.contains(needle.as_str()))
            .map(|(_, b)| b.clone())
    };
    let Some(backend) = backend else {
        return (axum::http::StatusCode::SERVICE_UNAVAILABLE, "no pods").into_response();
    };
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut req = client
        .request(method, format!("{backend}/{rest}"))
        .body(body);
    for h in ["authorization", "content-type"] {
        if let Some(v) = headers.get(h) {
            req = req.header(h, v.clone());
        }
    }
    match req.send().await {
        Ok(r) => {
            let status = r.status();
            let ct = r.headers().get("content-type").cloned();
            let b = r.bytes().await.unwrap_or_default();
            let mut resp = (status, b).into_response();
            if let Some(ct) = ct {
                resp.headers_mut().insert("content-type", ct);
            }
            resp
        }
        Err(_) => (axum::http::StatusCode::BAD_GATEWAY, "backend down").into_response(),
    }
}
