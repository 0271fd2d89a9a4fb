//! One request to a remote API, sent the way a careful client sends it:
//! - the base URL is configurable and must be `https://` unless it is a loopback address
//!   (tests, a port-forward), and the credentials go only to that origin (a pagination link
//!   elsewhere is refused);
//! - a network error, a timeout or a 5xx is retried with exponential backoff until the
//!   caller's deadline; a request that is not idempotent (POST) is retried only when it never
//!   left (connection refused), otherwise the failure is `Uncertain` and the caller looks
//!   before trying again;
//! - 429, and GitHub's 403 with `retry-after` or `x-ratelimit-remaining: 0`, wait as long as
//!   the service asks (`retry-after`, `x-ratelimit-reset`, GitLab's `ratelimit-reset`) when that
//!   fits before the deadline;
//! - 401 and any other 403 are a refused credential, never retried;
//! - every message is one line with the service's own `message` / `error`, and every secret
//!   the `Api` knows is masked in it.

use crate::core::text::{clip, mask, one_line};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use std::fmt;
use std::time::Duration;
use tokio::time::Instant;

/// How long to wait between tries of a request that failed for a passing reason.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// The first wait; each further one doubles, up to `max`.
    pub first: Duration,
    pub max: Duration,
    /// The longest one try may take.
    pub attempt_timeout: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            first: Duration::from_secs(1),
            max: Duration::from_secs(30),
            attempt_timeout: Duration::from_secs(30),
        }
    }
}

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 401, or a 403 that is not a rate limit: the credential is wrong or lacks permission.
    Refused,
    /// Rate limited for longer than the deadline leaves.
    RateLimited,
    /// Unreachable, timing out or answering 5xx until the deadline.
    Unavailable,
    /// A request that is not idempotent got no answer (a timeout, a 5xx): it may have taken
    /// effect. Look before trying again.
    Uncertain,
    /// 404.
    NotFound,
    /// Any other 4xx (422 validation, 409 conflict): the service's own message says why.
    Rejected,
    /// The answer could not be read (not the JSON the endpoint documents).
    Unreadable,
}

/// A failed request: what kind of failure, the HTTP status if there was one, and one line
/// (secrets masked) naming the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub status: Option<u16>,
    pub detail: String,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for ApiError {}

/// A successful answer (2xx or 3xx).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
}

/// A remote API: its name (for messages), base URL, credentials and client.
#[derive(Clone)]
pub struct Api {
    name: &'static str,
    base: reqwest::Url,
    client: reqwest::Client,
    headers: HeaderMap,
    secrets: Vec<String>,
    pub retry: Retry,
}

/// Checks a configured base URL: absolute, http(s), and `https://` unless the host is a
/// loopback address. One line on failure.
pub fn check_base_url(url: &str) -> Result<reqwest::Url, String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("\"{url}\" is not a URL: {e}"))?;
    match u.scheme() {
        "https" => Ok(u),
        "http" if is_loopback(&u) => Ok(u),
        "http" => Err(format!(
            "\"{url}\": plain http:// is allowed only for a loopback address (127.0.0.1, ::1, localhost); use https://"
        )),
        s => Err(format!("\"{url}\": scheme {s} is not http or https")),
    }
}

fn is_loopback(u: &reqwest::Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

impl Api {
    /// An API at `base` (checked as `check_base_url` does). `secrets` are masked in every
    /// message (the credential values, once resolved from their `${NAME}` references).
    pub fn new(
        name: &'static str,
        base: &str,
        client: reqwest::Client,
        secrets: Vec<String>,
    ) -> Result<Api, String> {
        let mut base = check_base_url(base)?;
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        Ok(Api {
            name,
            base,
            client,
            headers: HeaderMap::new(),
            secrets,
            retry: Retry::default(),
        })
    }

    /// Sends `value` as header `name` with every request (`sensitive`: a credential, kept out
    /// of debug output).
    pub fn header(
        mut self,
        name: &'static str,
        value: &str,
        sensitive: bool,
    ) -> Result<Api, String> {
        let mut v = HeaderValue::from_str(value).map_err(|_| {
            format!(
                "{}: header {name} holds characters HTTP does not allow",
                self.name
            )
        })?;
        v.set_sensitive(sensitive);
        self.headers.insert(HeaderName::from_static(name), v);
        Ok(self)
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The URL of `path` (relative to the base, e.g. `repos/o/r/actions/runs`), or `path`
    /// itself when it is an absolute URL on the same origin (a pagination link).
    pub fn url(&self, path: &str) -> Result<reqwest::Url, ApiError> {
        let u = if path.starts_with("http://") || path.starts_with("https://") {
            reqwest::Url::parse(path).map_err(|e| self.err(ErrorKind::Unreadable, None, e))?
        } else {
            self.base
                .join(path.trim_start_matches('/'))
                .map_err(|e| self.err(ErrorKind::Unreadable, None, e))?
        };
        if u.origin() != self.base.origin() {
            return Err(self.err(
                ErrorKind::Unreadable,
                None,
                format!(
                    "refusing to send credentials to {} (not {})",
                    u.origin().ascii_serialization(),
                    self.base.origin().ascii_serialization()
                ),
            ));
        }
        Ok(u)
    }

    /// GET `path` until `until`.
    pub async fn get(&self, path: &str, until: Instant) -> Result<Answer, ApiError> {
        self.send(Method::GET, path, None, until).await
    }

    /// Sends one request (JSON `body` if any), retrying as the module says, until `until`.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        until: Instant,
    ) -> Result<Answer, ApiError> {
        let body = body.map_or(Body::None, Body::Json);
        self.send_body(method, path, body, until).await
    }

    /// POSTs `form` as `application/x-www-form-urlencoded` (GitLab's pipeline trigger takes
    /// only that), with the same retries as `send`.
    pub async fn send_form(
        &self,
        path: &str,
        form: &[(String, String)],
        until: Instant,
    ) -> Result<Answer, ApiError> {
        self.send_body(Method::POST, path, Body::Form(form), until)
            .await
    }

    async fn send_body(
        &self,
        method: Method,
        path: &str,
        body: Body<'_>,
        until: Instant,
    ) -> Result<Answer, ApiError> {
        let url = self.url(path)?;
        let idempotent = method != Method::POST && method != Method::PATCH;
        let mut wait = self.retry.first;
        let mut tries = 0u32;
        loop {
            tries += 1;
            let left = until.saturating_duration_since(Instant::now());
            let mut req = self
                .client
                .request(method.clone(), url.clone())
                .headers(self.headers.clone())
                .timeout(
                    left.min(self.retry.attempt_timeout)
                        .max(Duration::from_millis(1)),
                );
            req = match body {
                Body::None => req,
                Body::Json(b) => req.json(b),
                Body::Form(f) => req.form(f),
            };
            let failure = match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    let body = resp.bytes().await.unwrap_or_default();
                    if status.is_success() || status.is_redirection() {
                        return Ok(Answer {
                            status: status.as_u16(),
                            headers,
                            body,
                        });
                    }
                    match self.classify(status, &headers, &body) {
                        Step::Fail(e) => return Err(e),
                        Step::WaitFor(d, e) => {
                            if Instant::now() + d > until {
                                return Err(self.err(
                                    ErrorKind::RateLimited,
                                    Some(status.as_u16()),
                                    format!(
                                        "rate limited for another {}s, past this step's deadline ({})",
                                        d.as_secs(),
                                        e.detail
                                    ),
                                ));
                            }
                            tokio::time::sleep(d).await;
                            continue;
                        }
                        Step::Retry(e) if idempotent => e,
                        Step::Retry(e) => {
                            return Err(ApiError {
                                kind: ErrorKind::Uncertain,
                                ..e
                            })
                        }
                    }
                }
                Err(e) => {
                    let e2 = self.err(
                        ErrorKind::Unavailable,
                        None,
                        crate::core::text::error_chain(&e),
                    );
                    if !idempotent && !e.is_connect() {
                        return Err(ApiError {
                            kind: ErrorKind::Uncertain,
                            ..e2
                        });
                    }
                    e2
                }
            };
            if Instant::now() + wait > until {
                return Err(ApiError {
                    detail: format!("{} (after {tries} tries)", failure.detail),
                    ..failure
                });
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(self.retry.max);
        }
    }

    fn classify(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Step {
        let code = status.as_u16();
        let msg = service_message(body);
        let e = |kind| self.err(kind, Some(code), format!("{code} {}", msg));
        let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::trim);
        let rate_limited = code == 429
            || (code == 403
                && (h("retry-after").is_some() || h("x-ratelimit-remaining") == Some("0")));
        if rate_limited {
            return Step::WaitFor(
                rate_limit_wait(headers, self.retry.first),
                e(ErrorKind::RateLimited),
            );
        }
        match code {
            401 => Step::Fail(self.err(
                ErrorKind::Refused,
                Some(code),
                format!("refused the credential (401 {msg})"),
            )),
            403 => Step::Fail(self.err(
                ErrorKind::Refused,
                Some(code),
                format!("refused: the credential lacks permission (403 {msg})"),
            )),
            404 => Step::Fail(e(ErrorKind::NotFound)),
            500..=599 => Step::Retry(e(ErrorKind::Unavailable)),
            _ => Step::Fail(e(ErrorKind::Rejected)),
        }
    }

    /// One line naming the service, secrets masked.
    fn err(&self, kind: ErrorKind, status: Option<u16>, detail: impl fmt::Display) -> ApiError {
        let text = format!("{}: {detail}", self.name);
        ApiError {
            kind,
            status,
            detail: clip(&one_line(&mask(&text, &self.secrets)), 300),
        }
    }
}

impl Answer {
    /// The body as the JSON type the endpoint documents.
    pub fn json<T: serde::de::DeserializeOwned>(&self, api: &Api) -> Result<T, ApiError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            api.err(
                ErrorKind::Unreadable,
                Some(self.status),
                format!("unreadable answer ({e})"),
            )
        })
    }

    /// The `rel="next"` link of a paginated answer (RFC 8288 `Link` header, as GitHub and
    /// GitLab send it).
    pub fn next_link(&self) -> Option<String> {
        let link = self.headers.get("link")?.to_str().ok()?;
        link.split(',').find_map(|part| {
            let (url, params) = part.split_once(';')?;
            let is_next = params
                .split(';')
                .any(|p| p.trim().replace(' ', "") == "rel=\"next\"");
            is_next.then(|| {
                url.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
        })
    }
}

/// What a request carries.
#[derive(Clone, Copy)]
enum Body<'a> {
    None,
    Json(&'a serde_json::Value),
    Form(&'a [(String, String)]),
}

enum Step {
    Fail(ApiError),
    /// Try again after the wait the service asked for.
    WaitFor(Duration, ApiError),
    /// A passing failure: try again after the backoff.
    Retry(ApiError),
}

/// How long a rate-limited answer asks to wait: `retry-after` (seconds), else the reset time
/// (`x-ratelimit-reset` or GitLab's `ratelimit-reset`, epoch seconds), else `fallback`
/// (GitHub: "wait at least one minute" for a secondary limit without headers; the caller's
/// deadline bounds it).
fn rate_limit_wait(headers: &HeaderMap, fallback: Duration) -> Duration {
    let num = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    if let Some(s) = num("retry-after") {
        return Duration::from_secs(s);
    }
    for n in ["x-ratelimit-reset", "ratelimit-reset"] {
        if let Some(reset) = num(n) {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            return Duration::from_secs(reset.saturating_sub(now).max(1));
        }
    }
    fallback.max(Duration::from_secs(60))
}

/// The service's own explanation in an error body: `message` (GitHub, GitLab, Argo CD),
/// `error` / `error_description` (GitLab OAuth, Argo CD), else the body's first line.
fn service_message(body: &[u8]) -> String {
    let v: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let field = |k: &str| {
        v.as_ref().and_then(|v| v.get(k)).map(|m| match m {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    };
    let main = field("message")
        .or_else(|| field("error_description"))
        .or_else(|| field("error"))
        .unwrap_or_else(|| one_line(&String::from_utf8_lossy(body)));
    // GitHub's 422 "Validation Failed" says what failed in `errors[].message` (or `.code`).
    let details: Vec<String> = v
        .as_ref()
        .and_then(|v| v.get("errors"))
        .and_then(|e| e.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|e| {
                    e.get("message")
                        .or_else(|| e.get("code"))
                        .and_then(|m| m.as_str())
                        .map(String::from)
                })
                .collect()
        })
        .unwrap_or_default();
    if details.is_empty() {
        main
    } else {
        format!("{main}: {}", details.join("; "))
    }
}

#[cfg(test)]
#[path = "rest_tests.rs"]
mod tests;
