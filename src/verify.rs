//! Verification of a freshly deployed colour: health-check polling and scripted HTTP smoke steps with captures.
//!
//! Smoke steps are templated with `{var}` placeholders (`{{` / `}}` for literal braces), filled from the initial
//! vars (which may hold config secrets) and from values captured out of earlier responses via JSON pointers.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use tokio::time::Instant;

use crate::core::text::{join_lines, mask, render_template};

/// Captured values at least this long are treated as credentials (tokens) and masked in failure reasons.
const CAPTURE_MASK_MIN_LEN: usize = 8;
/// How much of an unexpected response body is quoted in a failure reason.
const BODY_EXCERPT_CHARS: usize = 200;

fn default_method() -> String {
    "GET".to_string()
}

fn default_expect_status() -> u16 {
    200
}

/// One HTTP request of a smoke test, with its expectations.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmokeStep {
    /// Human name, used in reports and failures, e.g. "login/auth works".
    pub name: String,
    /// HTTP method (GET, POST, PUT, DELETE, ...); case-insensitive; default GET.
    #[serde(default = "default_method")]
    pub method: String,
    /// Appended to the base URL; may contain `{var}`.
    pub path: String,
    /// Request headers; values may contain `{var}`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// JSON body; string values (not keys) may contain `{var}`.
    #[serde(default)]
    pub body: Option<serde_json::Value>,
    /// Expected HTTP status; default 200.
    #[serde(default = "default_expect_status")]
    pub expect_status: u16,
    /// A substring the response body must contain.
    #[serde(default)]
    pub expect_body_contains: Option<String>,
    /// var name -> JSON pointer into the response body, e.g. `{"token": "/token"}`.
    #[serde(default)]
    pub capture: BTreeMap<String, String>,
    /// Marks the critical-path step re-run during monitoring.
    #[serde(default)]
    pub critical: bool,
}

/// A passed step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepReport {
    pub name: String,
    pub status: u16,
    pub millis: u64,
}

/// The first failed step; `reason` is one line with secrets masked.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("smoke test \"{step}\" failed: {reason}")]
pub struct SmokeFailure {
    pub step: String,
    pub reason: String,
}

/// Human duration for messages: milliseconds below a second, whole seconds (humantime) above.
fn fmt_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        humantime::format_duration(Duration::from_secs(d.as_secs_f64().round() as u64)).to_string()
    }
}

fn one_line(s: &str) -> String {
    // A lone `\r` ends a line too.
    join_lines(&s.replace('\r', "\n"), " ")
}

/// The most specific message of an error chain (e.g. "Connection refused (os error 111)" rather than reqwest's
/// "error sending request for url (...)", which would also repeat the URL).
fn describe_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".to_string();
    }
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg = s.to_string();
        src = s.source();
    }
    one_line(&msg)
}

fn render_json(
    v: &serde_json::Value,
    vars: &BTreeMap<String, String>,
) -> Result<serde_json::Value, String> {
    use serde_json::Value;
    Ok(match v {
        Value::String(s) => Value::String(render_template(s, vars)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| render_json(i, vars))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render_json(v, vars)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

fn join_url(base: &str, path: &str) -> String {
    let base = base.trim_end_matches('/');
    if path.is_empty() || path.starts_with('/') {
        format!("{base}{path}")
    } else {
        format!("{base}/{path}")
    }
}

/// Build and send one step; returns (status, body) or an unmasked reason.
async fn execute_step(
    client: &reqwest::Client,
    base_url: &str,
    step: &SmokeStep,
    vars: &BTreeMap<String, String>,
    per_step_timeout: Duration,
) -> Result<(u16, String), String> {
    let method = reqwest::Method::from_bytes(step.method.trim().to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("invalid HTTP method {:?}", step.method))?;
    let path = render_template(&step.path, vars).map_err(|e| format!("path: {e}"))?;
    let url = join_url(base_url, &path);
    let mut req = client.request(method, &url).timeout(per_step_timeout);
    for (name, value) in &step.headers {
        let value = render_template(value, vars).map_err(|e| format!("header {name}: {e}"))?;
        let header_name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name {name:?}"))?;
        let mut header_value = HeaderValue::from_str(&value)
            .map_err(|_| format!("invalid value for header {name}"))?;
        // Keep templated header values (tokens) out of any debug output of the request.
        header_value.set_sensitive(true);
        req = req.header(header_name, header_value);
    }
    if let Some(body) = &step.body {
        req = req.json(&render_json(body, vars).map_err(|e| format!("body: {e}"))?);
    }
    let timed_out = || format!("timed out after {}", fmt_duration(per_step_timeout));
    let exchange = async {
        let resp = req.send().await.map_err(|e| {
            if e.is_timeout() {
                timed_out()
            } else {
                format!("request failed: {}", describe_error(&e))
            }
        })?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| {
            if e.is_timeout() {
                timed_out()
            } else {
                format!("reading the response failed: {}", describe_error(&e))
            }
        })?;
        Ok::<_, String>((status, String::from_utf8_lossy(&bytes).into_owned()))
    };
    // reqwest's own timeout normally fires first; this is the backstop.
    tokio::time::timeout(per_step_timeout, exchange)
        .await
        .unwrap_or_else(|_| Err(timed_out()))
}

fn excerpt(body: &str) -> String {
    let line = one_line(body);
    let mut chars = line.chars();
    let head: String = chars.by_ref().take(BODY_EXCERPT_CHARS).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

/// Check the expectations and do the captures of one step; returns an unmasked reason on failure.
fn check_step(
    step: &SmokeStep,
    status: u16,
    body: &str,
    vars: &BTreeMap<String, String>,
    captured: &mut Vec<(String, String)>,
) -> Result<(), String> {
    if status != step.expect_status {
        let mut reason = format!("expected HTTP {}, got {status}", step.expect_status);
        if !body.trim().is_empty() {
            reason.push_str(&format!("; body: {}", excerpt(body)));
        }
        return Err(reason);
    }
    if let Some(needle) = &step.expect_body_contains {
        // The expectation may use variables too (`"version": "{version}"`).
        let needle =
            render_template(needle, vars).map_err(|e| format!("expect_body_contains: {e}"))?;
        if !body.contains(needle.as_str()) {
            return Err(format!(
                "response body does not contain {needle:?}; body: {}",
                excerpt(body)
            ));
        }
    }
    if !step.capture.is_empty() {
        let json: serde_json::Value = serde_json::from_str(body).map_err(|_| {
            let names: Vec<&str> = step.capture.keys().map(String::as_str).collect();
            format!("response is not JSON, cannot capture {}", names.join(", "))
        })?;
        for (var, pointer) in &step.capture {
            let value = match json.pointer(pointer) {
                None | Some(serde_json::Value::Null) => {
                    return Err(format!("response has no {pointer} to capture"));
                }
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
            };
            captured.push((var.clone(), value));
        }
    }
    Ok(())
}

/// Runs steps in order against base_url (e.g. "http://127.0.0.1:41234"); vars start from `initial_vars` (may hold
/// config secrets) and grow with captures; a `{var}` with no value is a failure naming it. Each request has
/// `per_step_timeout`. Stops at the first failure.
///
/// Failure reasons are one line and have `secrets` masked, and also every captured value of 8+ characters (captures
/// are usually tokens).
pub async fn run_smoke(
    client: &reqwest::Client,
    base_url: &str,
    steps: &[SmokeStep],
    initial_vars: &BTreeMap<String, String>,
    per_step_timeout: Duration,
    secrets: &[String],
) -> Result<Vec<StepReport>, SmokeFailure> {
    let mut vars = initial_vars.clone();
    let mut masked: Vec<String> = secrets.to_vec();
    let mut reports = Vec::with_capacity(steps.len());
    for step in steps {
        let started = Instant::now();
        let mut captured = Vec::new();
        let result = match execute_step(client, base_url, step, &vars, per_step_timeout).await {
            Ok((status, body)) => {
                check_step(step, status, &body, &vars, &mut captured).map(|()| status)
            }
            Err(e) => Err(e),
        };
        let millis = started.elapsed().as_millis() as u64;
        match result {
            Ok(status) => {
                for (var, value) in captured {
                    if value.len() >= CAPTURE_MASK_MIN_LEN {
                        masked.push(value.clone());
                    }
                    vars.insert(var, value);
                }
                tracing::info!(step = %step.name, method = %step.method, path = %step.path, status, millis, "smoke step passed");
                reports.push(StepReport {
                    name: step.name.clone(),
                    status,
                    millis,
                });
            }
            Err(reason) => {
                // Mask with this step's captures too: a reason may quote the body they came from.
                masked.extend(
                    captured
                        .into_iter()
                        .map(|(_, v)| v)
                        .filter(|v| v.len() >= CAPTURE_MASK_MIN_LEN),
                );
                let reason = one_line(&mask(&reason, &masked));
                tracing::warn!(step = %step.name, method = %step.method, path = %step.path, millis, reason = %reason, "smoke step failed");
                return Err(SmokeFailure {
                    step: step.name.clone(),
                    reason,
                });
            }
        }
    }
    Ok(reports)
}

/// Polls url (GET) every `interval` until a 2xx answer or `timeout` elapses; Err carries a one-line reason with the
/// last status or error seen and the time waited, e.g.
/// "health check http://127.0.0.1:5/healthz not healthy after 10s: last answer HTTP 503".
///
/// Ok carries the time it took. No request is started once `timeout` has elapsed, and each request is cut off at
/// the deadline, so the call returns within about `timeout`.
pub async fn wait_healthy(
    client: &reqwest::Client,
    url: &str,
    timeout: Duration,
    interval: Duration,
) -> Result<Duration, String> {
    let interval = interval.max(Duration::from_millis(10));
    let started = Instant::now();
    let deadline = started + timeout;
    let mut last = String::from("no answer yet");
    let mut attempts = 0u32;
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        attempts += 1;
        let remaining = deadline - now;
        match tokio::time::timeout(remaining, client.get(url).timeout(remaining).send()).await {
            Ok(Ok(resp)) if resp.status().is_success() => {
                let took = started.elapsed();
                tracing::info!(
                    url,
                    attempts,
                    took_ms = took.as_millis() as u64,
                    status = resp.status().as_u16(),
                    "healthy"
                );
                return Ok(took);
            }
            Ok(Ok(resp)) => last = format!("last answer HTTP {}", resp.status().as_u16()),
            Ok(Err(e)) if e.is_timeout() => last = "last request timed out".to_string(),
            Ok(Err(e)) => last = format!("last error: {}", describe_error(&e)),
            Err(_) => last = "last request timed out".to_string(),
        }
        tracing::debug!(url, attempts, last = %last, "not healthy yet");
        let next = (Instant::now() + interval).min(deadline);
        tokio::time::sleep_until(next).await;
    }
    let reason = format!(
        "health check {url} not healthy after {}: {last}",
        fmt_duration(started.elapsed())
    );
    tracing::warn!(url, attempts, reason = %reason, "health check failed");
    Err(reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::{get, post};
    use axum::{Json, Router};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    const TOKEN: &str = "tok-0123456789abcdef";

    async fn serve(app: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        format!("http://{addr}")
    }

    fn client() -> reqwest::Client {
        reqwest::Client::builder().no_proxy().build().unwrap()
    }

    fn app() -> Router {
        async fn login(
            Json(body): Json<serde_json::Value>,
        ) -> (StatusCode, Json<serde_json::Value>) {
            if body["user"] == "smoke" && body["password"] == "pa55word-xyz" {
                (
                    StatusCode::OK,
                    Json(serde_json::json!({ "token": TOKEN, "ttl": 60 })),
                )
            } else {
                (
                    StatusCode::UNAUTHORIZED,
                    Json(serde_json::json!({ "error": "bad credentials" })),
                )
            }
        }
        async fn dashboard(headers: HeaderMap) -> (StatusCode, &'static str) {
            let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
            if auth == Some(&format!("Bearer {TOKEN}")) {
                (StatusCode::OK, "welcome to the dashboard")
            } else {
                (StatusCode::UNAUTHORIZED, "who are you?")
            }
        }
        async fn leak(headers: HeaderMap) -> (StatusCode, String) {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("boom\nwhile handling {auth}"),
            )
        }
        Router::new()
            .route("/login", post(login))
            .route("/dashboard", get(dashboard))
            .route(
                "/broken",
                get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "internal error") }),
            )
            .route("/leak", get(leak))
            .route("/hang", get(std::future::pending::<&'static str>))
    }

    fn steps(json: serde_json::Value) -> Vec<SmokeStep> {
        serde_json::from_value(json).unwrap()
    }

    fn login_vars() -> BTreeMap<String, String> {
        [("user", "smoke"), ("password", "pa55word-xyz")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn login_step() -> serde_json::Value {
        serde_json::json!({
            "name": "login/auth works",
            "method": "post",
            "path": "/login",
            "body": { "user": "{user}", "password": "{password}" },
            "capture": { "token": "/token" }
        })
    }

    #[test]
    fn step_defaults_and_unknown_fields() {
        let s: SmokeStep = serde_json::from_str(r#"{"name":"home","path":"/"}"#).unwrap();
        assert_eq!(s.method, "GET");
        assert_eq!(s.expect_status, 200);
        assert!(s.headers.is_empty() && s.capture.is_empty() && s.body.is_none() && !s.critical);
        assert!(
            serde_json::from_str::<SmokeStep>(r#"{"name":"x","path":"/","expect":200}"#).is_err()
        );
    }

    #[tokio::test]
    async fn login_then_dashboard_with_captured_token() {
        let base = serve(app()).await;
        let steps = steps(serde_json::json!([
            login_step(),
            {
                "name": "dashboard loads",
                "path": "/dashboard",
                "headers": { "Authorization": "Bearer {token}" },
                "expect_body_contains": "welcome",
                "critical": true
            }
        ]));
        assert!(steps[1].critical);
        let reports = run_smoke(
            &client(),
            &base,
            &steps,
            &login_vars(),
            Duration::from_secs(5),
            &[],
        )
        .await
        .unwrap();
        assert_eq!(reports.len(), 2);
        assert_eq!(reports[0].name, "login/auth works");
        assert_eq!(reports[0].status, 200);
        assert_eq!(reports[1].name, "dashboard loads");
        assert_eq!(reports[1].status, 200);
    }

    #[tokio::test]
    async fn wrong_status_fails_naming_the_step() {
        let base = serve(app()).await;
        let steps = steps(serde_json::json!([
            { "name": "home", "path": "/dashboard", "expect_status": 401 },
            { "name": "broken page", "path": "broken" },
            { "name": "never reached", "path": "/dashboard" }
        ]));
        let err = run_smoke(
            &client(),
            &base,
            &steps,
            &BTreeMap::new(),
            Duration::from_secs(5),
            &[],
        )
        .await
        .unwrap_err();
        assert_eq!(err.step, "broken page");
        assert!(
            err.reason.starts_with("expected HTTP 200, got 500"),
            "{}",
            err.reason
        );
        assert!(err
            .to_string()
            .starts_with("smoke test \"broken page\" failed: expected HTTP 200, got 500"));
    }

    #[tokio::test]
    async fn missing_capture_fails() {
        let base = serve(app()).await;
        let mut step = login_step();
        step["capture"] = serde_json::json!({ "session": "/session/id" });
        let err = run_smoke(
            &client(),
            &base,
            &steps(serde_json::json!([step])),
            &login_vars(),
            Duration::from_secs(5),
            &[],
        )
        .await
        .unwrap_err();
        assert_eq!(err.step, "login/auth works");
        assert_eq!(err.reason, "response has no /session/id to capture");
    }

    #[tokio::test]
    async fn unset_var_and_unexpected_body_fail() {
        let base = serve(app()).await;
        let s = steps(
            serde_json::json!([{ "name": "dash", "path": "/dashboard", "headers": { "Authorization": "Bearer {token}" } }]),
        );
        let err = run_smoke(
            &client(),
            &base,
            &s,
            &BTreeMap::new(),
            Duration::from_secs(5),
            &[],
        )
        .await
        .unwrap_err();
        assert_eq!(err.step, "dash");
        assert!(err.reason.contains("{token}"), "{}", err.reason);

        let s = steps(
            serde_json::json!([{ "name": "content", "path": "/dashboard", "expect_status": 401, "expect_body_contains": "welcome" }]),
        );
        let err = run_smoke(
            &client(),
            &base,
            &s,
            &BTreeMap::new(),
            Duration::from_secs(5),
            &[],
        )
        .await
        .unwrap_err();
        assert!(
            err.reason
                .starts_with("response body does not contain \"welcome\""),
            "{}",
            err.reason
        );
    }

    #[tokio::test]
    async fn reasons_are_one_line_and_masked() {
        let base = serve(app()).await;
        let s = steps(serde_json::json!([
            login_step(),
            { "name": "leaky", "path": "/leak", "headers": { "Authorization": "{password} {token}" } }
        ]));
        let secrets = vec!["pa55word-xyz".to_string()];
        let err = run_smoke(
            &client(),
            &base,
            &s,
            &login_vars(),
            Duration::from_secs(5),
            &secrets,
        )
        .await
        .unwrap_err();
        assert_eq!(err.step, "leaky");
        assert!(!err.reason.contains('\n'));
        assert!(!err.reason.contains("pa55word"), "{}", err.reason);
        assert!(!err.reason.contains(TOKEN), "{}", err.reason);
        assert!(
            err.reason.contains("while handling *** ***"),
            "{}",
            err.reason
        );
    }

    #[tokio::test]
    async fn step_timeout() {
        let base = serve(app()).await;
        let s = steps(serde_json::json!([{ "name": "slow", "path": "/hang" }]));
        let t0 = std::time::Instant::now();
        let err = run_smoke(
            &client(),
            &base,
            &s,
            &BTreeMap::new(),
            Duration::from_millis(200),
            &[],
        )
        .await
        .unwrap_err();
        assert_eq!(err.reason, "timed out after 200ms");
        assert!(t0.elapsed() < Duration::from_secs(5));
    }

    async fn refused_base() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn connection_refused() {
        let base = refused_base().await;
        let s = steps(serde_json::json!([{ "name": "home", "path": "/" }]));
        let err = run_smoke(
            &client(),
            &base,
            &s,
            &BTreeMap::new(),
            Duration::from_secs(5),
            &[],
        )
        .await
        .unwrap_err();
        assert!(err.reason.starts_with("request failed: "), "{}", err.reason);
        assert!(
            err.reason.to_lowercase().contains("refused"),
            "{}",
            err.reason
        );

        let url = format!("{base}/healthz");
        let t0 = std::time::Instant::now();
        let err = wait_healthy(
            &client(),
            &url,
            Duration::from_millis(300),
            Duration::from_millis(20),
        )
        .await
        .unwrap_err();
        assert!(t0.elapsed() < Duration::from_secs(5));
        assert!(
            err.starts_with(&format!("health check {url} not healthy after ")),
            "{err}"
        );
        assert!(err.to_lowercase().contains("refused"), "{err}");
        assert!(!err.contains('\n'));
    }

    #[tokio::test]
    async fn becomes_healthy_after_some_polls() {
        let hits = Arc::new(AtomicUsize::new(0));
        let app = Router::new()
            .route(
                "/healthz",
                get(|State(hits): State<Arc<AtomicUsize>>| async move {
                    if hits.fetch_add(1, Ordering::SeqCst) < 3 {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::NO_CONTENT
                    }
                }),
            )
            .with_state(hits.clone());
        let base = serve(app).await;
        let took = wait_healthy(
            &client(),
            &format!("{base}/healthz"),
            Duration::from_secs(20),
            Duration::from_millis(10),
        )
        .await
        .unwrap();
        assert!(took < Duration::from_secs(20));
        assert_eq!(hits.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn always_unavailable_fails_within_timeout() {
        let hits = Arc::new(AtomicUsize::new(0));
        let app = Router::new()
            .route(
                "/healthz",
                get(|State(hits): State<Arc<AtomicUsize>>| async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    StatusCode::SERVICE_UNAVAILABLE
                }),
            )
            .with_state(hits.clone());
        let base = serve(app).await;
        let url = format!("{base}/healthz");
        let t0 = std::time::Instant::now();
        let err = wait_healthy(
            &client(),
            &url,
            Duration::from_millis(300),
            Duration::from_millis(20),
        )
        .await
        .unwrap_err();
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(3),
            "took {took:?}"
        );
        assert!(
            err.starts_with(&format!("health check {url} not healthy after ")),
            "{err}"
        );
        assert!(err.ends_with(": last answer HTTP 503"), "{err}");
        assert!(hits.load(Ordering::SeqCst) >= 2);
    }

    #[test]
    fn helpers() {
        assert_eq!(fmt_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(fmt_duration(Duration::from_millis(10_020)), "10s");
        assert_eq!(fmt_duration(Duration::from_secs(90)), "1m 30s");
        assert_eq!(join_url("http://h:1/", "/a"), "http://h:1/a");
        assert_eq!(join_url("http://h:1", "a"), "http://h:1/a");
        assert_eq!(one_line("a\r\n b \n\nc"), "a b c");
        assert_eq!(
            excerpt(&"x".repeat(300)).chars().count(),
            BODY_EXCERPT_CHARS + 1
        );
    }
}
