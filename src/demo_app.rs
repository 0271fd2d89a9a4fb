//! The bundled demo application that the demo environment deploys, one process per colour.
//!
//! It is a tiny shop (login, dashboard, checkout) that exposes Prometheus metrics and can be told
//! to misbehave: a version whose string contains `-faulty` answers about half of its requests with
//! HTTP 500 once armed (`POST /_demo/live`), and one containing `-slow` delays every request by
//! 300 ms once armed. `/metrics`, `/_demo/live` and `/healthz` are never affected, so a bad version
//! looks healthy to a liveness probe and is only caught by its metrics or by smoke tests.

use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::rejection::JsonRejection;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use serde_json::json;

/// Upper bounds of the `http_request_duration_seconds` buckets.
pub const LATENCY_BUCKETS: [f64; 11] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Extra latency of an armed `-slow` version.
pub const SLOW_DELAY: Duration = Duration::from_millis(300);

/// Header carried by every response.
pub const VERSION_HEADER: &str = "x-app-version";

const DEMO_USER: &str = "demo";
const DEMO_PASSWORD: &str = "demo";

/// What the demo process is: the version it pretends to be and the colour it was deployed as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoOptions {
    pub version: String,
    pub colour: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    color: String,
    code: String,
    path: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ColorLabels {
    color: String,
}

type HistogramFamily = Family<ColorLabels, Histogram, fn() -> Histogram>;

fn new_latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

struct Inner {
    opts: DemoOptions,
    version_header: HeaderValue,
    faulty: bool,
    slow: bool,
    armed: AtomicBool,
    /// Requests that were eligible for fault injection; drives the "about half fail" choice.
    fault_ticks: AtomicU64,
    token_seq: AtomicU64,
    order_seq: AtomicU64,
    token_hasher: std::collections::hash_map::RandomState,
    tokens: Mutex<HashSet<String>>,
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: HistogramFamily,
}

type AppState = Arc<Inner>;

impl Inner {
    fn new(opts: DemoOptions) -> Self {
        let version_header = HeaderValue::from_str(&opts.version)
            .unwrap_or_else(|_| HeaderValue::from_static("invalid"));
        let requests = Family::<RequestLabels, Counter>::default();
        let durations: HistogramFamily = Family::new_with_constructor(new_latency_histogram);
        // Expose the histogram (all zeros) from the start so a first scrape sees the family.
        drop(durations.get_or_create(&ColorLabels {
            color: opts.colour.clone(),
        }));
        let mut registry = Registry::default();
        registry.register(
            "http_requests",
            "HTTP requests served, by colour, status code and route",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency in seconds, by colour",
            durations.clone(),
        );
        Inner {
            faulty: opts.version.contains("-faulty"),
            slow: opts.version.contains("-slow"),
            opts,
            version_header,
            armed: AtomicBool::new(false),
            fault_ticks: AtomicU64::new(0),
            token_seq: AtomicU64::new(0),
            order_seq: AtomicU64::new(0),
            token_hasher: std::collections::hash_map::RandomState::new(),
            tokens: Mutex::new(HashSet::new()),
            registry,
            requests,
            durations,
        }
    }

    /// Whether this request should be answered with an injected 500: about half of them, chosen by
    /// a cheap hash of a counter so that the failures do not line up with any request pattern.
    fn should_fail(&self) -> bool {
        let n = self.fault_ticks.fetch_add(1, Ordering::Relaxed);
        splitmix64(n) & 1 == 1
    }

    fn new_token(&self) -> String {
        let seq = self.token_seq.fetch_add(1, Ordering::Relaxed);
        let mut a = self.token_hasher.build_hasher();
        a.write_u64(seq);
        let mut b = self.token_hasher.build_hasher();
        b.write_u64(!seq);
        let token = format!("{:016x}{:016x}", a.finish(), b.finish());
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token.clone());
        token
    }

    fn authorised(&self, headers: &HeaderMap) -> bool {
        let Some(token) = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
        else {
            return false;
        };
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(token)
    }
}

/// SplitMix64 finaliser: a well-mixed 64-bit hash of `x`.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Builds the demo application with all its endpoints; its state lives inside the router.
pub fn router(opts: DemoOptions) -> Router {
    let state: AppState = Arc::new(Inner::new(opts));
    Router::new()
        .route("/", get(index))
        .route("/healthz", get(healthz))
        .route("/version", get(version))
        .route("/login", post(login))
        .route("/dashboard", get(dashboard))
        .route("/checkout", post(checkout))
        .route("/metrics", get(metrics))
        .route("/_demo/live", post(arm))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

/// Serves the demo application on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, opts: DemoOptions) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    tracing::debug!(%addr, version = %opts.version, colour = %opts.colour, "demo app serving");
    axum::serve(listener, router(opts)).await?;
    Ok(())
}

/// Paths that never misbehave.
fn is_exempt(path: &str) -> bool {
    matches!(path, "/metrics" | "/_demo/live" | "/healthz")
}

/// Middleware around every request: misbehaviour, the version header and the metrics.
async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let path = req.uri().path().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let misbehave = state.armed.load(Ordering::Relaxed) && !is_exempt(&path);

    if misbehave && state.slow {
        tokio::time::sleep(SLOW_DELAY).await;
    }
    let mut response = if misbehave && state.faulty && state.should_fail() {
        tracing::debug!(%path, "demo app: injected failure");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": "internal error (injected by demo app)"})),
        )
            .into_response()
    } else {
        next.run(req).await
    };

    response.headers_mut().insert(
        HeaderName::from_static(VERSION_HEADER),
        state.version_header.clone(),
    );
    if path != "/metrics" {
        state
            .requests
            .get_or_create(&RequestLabels {
                color: state.opts.colour.clone(),
                code: response.status().as_u16().to_string(),
                path: route,
            })
            .inc();
        state
            .durations
            .get_or_create(&ColorLabels {
                color: state.opts.colour.clone(),
            })
            .observe(start.elapsed().as_secs_f64());
    }
    response
}

fn unauthorised() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(WWW_AUTHENTICATE, "Bearer")],
        Json(json!({"error": "unauthorized"})),
    )
        .into_response()
}

fn bad_request(reason: impl std::fmt::Display) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": reason.to_string()})),
    )
        .into_response()
}

async fn index(State(state): State<AppState>) -> String {
    format!(
        "greenlight demo app {} ({})",
        state.opts.version, state.opts.colour
    )
}

async fn healthz(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({
        "status": "ok",
        "version": state.opts.version,
        "colour": state.opts.colour,
    }))
}

async fn version(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({"version": state.opts.version, "colour": state.opts.colour}))
}

#[derive(Deserialize)]
struct LoginRequest {
    user: String,
    password: String,
}

async fn login(
    State(state): State<AppState>,
    body: Result<Json<LoginRequest>, JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => return bad_request(e.body_text()),
    };
    if body.user != DEMO_USER || body.password != DEMO_PASSWORD {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid credentials"})),
        )
            .into_response();
    }
    Json(json!({"token": state.new_token()})).into_response()
}

async fn dashboard(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !state.authorised(&headers) {
        return unauthorised();
    }
    let orders = state.order_seq.load(Ordering::Relaxed);
    Json(json!({
        "widgets": [
            {"id": "orders", "title": "Orders", "value": orders},
            {"id": "revenue", "title": "Revenue", "value": "1234.56 EUR"},
            {"id": "status", "title": "Status", "value": "all systems normal"},
        ],
        "version": state.opts.version,
    }))
    .into_response()
}

#[derive(Deserialize)]
struct CheckoutRequest {
    item: String,
    qty: u32,
}

async fn checkout(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<CheckoutRequest>, JsonRejection>,
) -> Response {
    if !state.authorised(&headers) {
        return unauthorised();
    }
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => return bad_request(e.body_text()),
    };
    if body.item.trim().is_empty() {
        return bad_request("item must not be empty");
    }
    if body.qty == 0 {
        return bad_request("qty must be at least 1");
    }
    let n = state.order_seq.fetch_add(1, Ordering::Relaxed) + 1;
    tracing::debug!(item = %body.item, qty = body.qty, order = n, "demo app: checkout");
    Json(json!({
        "order_id": format!("ord-{n:06}"),
        "status": "confirmed",
        "item": body.item,
        "qty": body.qty,
    }))
    .into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &state.registry) {
        tracing::warn!(error = %e, "demo app: encoding metrics failed");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    (
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn arm(State(state): State<AppState>) -> Json<serde_json::Value> {
    let was = state.armed.swap(true, Ordering::Relaxed);
    if !was {
        tracing::debug!(version = %state.opts.version, "demo app: live, misbehaviour armed");
    }
    Json(json!({
        "armed": true,
        "faulty": state.faulty,
        "slow": state.slow,
    }))
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Json(json!({"error": "not found"}))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TestApp {
        base: String,
        client: reqwest::Client,
    }

    impl TestApp {
        async fn start(version: &str) -> Self {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let opts = DemoOptions {
                version: version.to_owned(),
                colour: "blue".to_owned(),
            };
            tokio::spawn(async move { serve(listener, opts).await.unwrap() });
            TestApp {
                base,
                client: reqwest::Client::new(),
            }
        }

        fn url(&self, path: &str) -> String {
            format!("{}{}", self.base, path)
        }

        async fn get(&self, path: &str) -> reqwest::Response {
            self.client.get(self.url(path)).send().await.unwrap()
        }

        async fn arm(&self) {
            let r = self
                .client
                .post(self.url("/_demo/live"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }

        async fn login(&self) -> String {
            let r = self
                .client
                .post(self.url("/login"))
                .json(&json!({"user": "demo", "password": "demo"}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let body: serde_json::Value = r.json().await.unwrap();
            body["token"].as_str().unwrap().to_owned()
        }

        async fn metrics_text(&self) -> String {
            let r = self.get("/metrics").await;
            assert_eq!(r.status(), 200);
            r.text().await.unwrap()
        }
    }

    /// The value of the first sample of `name` that carries every one of `labels` (`k="v"`).
    fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
        text.lines()
            .filter(|l| l.strip_prefix(name).is_some_and(|r| r.starts_with('{')))
            .find(|l| labels.iter().all(|lab| l.contains(lab)))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    fn assert_version_header(r: &reqwest::Response, version: &str) {
        assert_eq!(
            r.headers()
                .get(VERSION_HEADER)
                .and_then(|v| v.to_str().ok()),
            Some(version),
            "missing {VERSION_HEADER} on {}",
            r.url()
        );
    }

    #[tokio::test]
    async fn demo_app_serves_every_endpoint() {
        let v = "v1.2.0";
        let app = TestApp::start(v).await;

        let r = app.get("/").await;
        assert_eq!(r.status(), 200);
        assert_version_header(&r, v);
        assert_eq!(r.text().await.unwrap(), "greenlight demo app v1.2.0 (blue)");

        let r = app.get("/healthz").await;
        assert_eq!(r.status(), 200);
        assert_version_header(&r, v);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(
            body,
            json!({"status": "ok", "version": "v1.2.0", "colour": "blue"})
        );

        let r = app.get("/version").await;
        assert_eq!(r.status(), 200);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body, json!({"version": "v1.2.0", "colour": "blue"}));

        // Login: wrong credentials, garbage, then right.
        let r = app
            .client
            .post(app.url("/login"))
            .json(&json!({"user": "demo", "password": "nope"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        assert_version_header(&r, v);
        let r = app
            .client
            .post(app.url("/login"))
            .body("not json")
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error());
        let token = app.login().await;
        assert!(token.len() >= 16);
        assert_ne!(token, app.login().await, "tokens are unique");

        // Dashboard: needs the token.
        let r = app.get("/dashboard").await;
        assert_eq!(r.status(), 401);
        assert_version_header(&r, v);
        let r = app
            .client
            .get(app.url("/dashboard"))
            .bearer_auth("not-a-token")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let r = app
            .client
            .get(app.url("/dashboard"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_version_header(&r, v);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["version"], "v1.2.0");
        assert!(!body["widgets"].as_array().unwrap().is_empty());

        // Checkout: needs the token, confirms the order.
        let order = json!({"item": "widget", "qty": 1});
        let r = app
            .client
            .post(app.url("/checkout"))
            .json(&order)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let r = app
            .client
            .post(app.url("/checkout"))
            .bearer_auth(&token)
            .json(&order)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_version_header(&r, v);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["status"], "confirmed");
        assert!(!body["order_id"].as_str().unwrap().is_empty());
        let r = app
            .client
            .post(app.url("/checkout"))
            .bearer_auth(&token)
            .json(&json!({"item": "widget", "qty": 0}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);

        // Unknown paths still carry the header.
        let r = app.get("/nope").await;
        assert_eq!(r.status(), 404);
        assert_version_header(&r, v);

        // Arming a healthy version changes nothing, and is idempotent.
        app.arm().await;
        app.arm().await;
        for _ in 0..10 {
            assert_eq!(app.get("/").await.status(), 200);
        }

        let r = app.get("/metrics").await;
        assert_eq!(r.status(), 200);
        assert_version_header(&r, v);
        let text = r.text().await.unwrap();
        assert!(text.contains("# TYPE http_requests counter"), "{text}");
        assert!(
            text.contains(r#"http_requests_total{color="blue",code="200",path="/"} 11"#),
            "{text}"
        );
        assert!(
            text.contains(r#"http_requests_total{color="blue",code="401",path="/dashboard"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"http_requests_total{color="blue",code="404",path="unmatched"} 1"#),
            "{text}"
        );
        assert!(!text.contains(r#"path="/metrics""#), "{text}");
        assert!(
            text.contains("# TYPE http_request_duration_seconds histogram"),
            "{text}"
        );
        for le in ["0.001", "0.0025", "0.1", "0.25", "1.0", "2.5", "+Inf"] {
            let le = format!(r#"le="{le}""#);
            let bucket = sample(
                &text,
                "http_request_duration_seconds_bucket",
                &[r#"color="blue""#, &le],
            );
            assert!(bucket.is_some(), "no bucket {le} in {text}");
        }
        assert!(text.contains("http_request_duration_seconds_count{color=\"blue\"}"));
        assert!(text.trim_end().ends_with("# EOF"));
    }

    #[tokio::test]
    async fn faulty_version_fails_about_half_only_after_arming() {
        let app = TestApp::start("v1.3.0-faulty").await;
        for _ in 0..40 {
            assert_eq!(app.get("/version").await.status(), 200, "before arming");
        }
        let token = app.login().await;

        app.arm().await;
        app.arm().await;
        let mut failures = 0;
        for _ in 0..100 {
            let r = app.get("/version").await;
            assert_version_header(&r, "v1.3.0-faulty");
            match r.status().as_u16() {
                200 => {}
                500 => failures += 1,
                other => panic!("unexpected status {other}"),
            }
        }
        assert!((30..=70).contains(&failures), "{failures} of 100 failed");

        // Authenticated endpoints fail too; exempt ones never do.
        let mut checkout_failures = 0;
        for _ in 0..20 {
            let r = app
                .client
                .post(app.url("/checkout"))
                .bearer_auth(&token)
                .json(&json!({"item": "widget", "qty": 1}))
                .send()
                .await
                .unwrap();
            if r.status() == 500 {
                checkout_failures += 1;
            }
        }
        assert!(checkout_failures > 0);
        for _ in 0..20 {
            assert_eq!(app.get("/healthz").await.status(), 200);
            assert_eq!(app.get("/metrics").await.status(), 200);
        }
        let text = app.metrics_text().await;
        let line =
            format!(r#"http_requests_total{{color="blue",code="500",path="/version"}} {failures}"#);
        assert!(text.contains(&line), "no {line} in {text}");
    }

    #[tokio::test]
    async fn slow_version_is_slow_only_after_arming() {
        let app = TestApp::start("v1.3.0-slow").await;
        let timed = |path: &'static str| {
            let app = &app;
            async move {
                let t = Instant::now();
                let r = app.get(path).await;
                assert_eq!(r.status(), 200);
                t.elapsed()
            }
        };
        let before = timed("/version").await;
        assert!(
            before < Duration::from_millis(250),
            "{before:?} before arming"
        );

        app.arm().await;
        let after = timed("/version").await;
        assert!(after > Duration::from_millis(250), "{after:?} after arming");
        let after = timed("/").await;
        assert!(after > Duration::from_millis(250), "{after:?} after arming");
        let health = timed("/healthz").await;
        assert!(
            health < Duration::from_millis(250),
            "{health:?} for healthz"
        );

        // The delay shows in the histogram: two observations above 0.25 s.
        let text = app.metrics_text().await;
        let le_025 = sample(
            &text,
            "http_request_duration_seconds_bucket",
            &[r#"le="0.25""#],
        )
        .unwrap();
        let count = sample(&text, "http_request_duration_seconds_count", &[]).unwrap();
        assert_eq!(count - le_025, 2.0, "{text}");
    }
}
