//! Prometheus metrics provider: a colour's request count, error rate and p99 from PromQL queries.
//!
//! Three instant queries (`GET /api/v1/query`, evaluated at "now") per sample, built from
//! configurable templates with `{colour}`, `{env}` and `{window}` placeholders. Every way of not
//! getting a number (HTTP error, timeout, unreachable server, bad JSON, empty result, `NaN`,
//! `±Inf`) ends as [`Sample::Unavailable`] or a `None` field: no data is never a pass.

use std::time::Duration;

use serde::Deserialize;

use super::{MetricsProvider, Target, Window};
use crate::core::analysis::{Measurement, Sample};
use crate::core::text;
use crate::metrics::BoxFuture;

/// Default error-rate template: share of 5xx answers over the window.
/// A colour with no 5xx series at all has an error rate of 0, not "no data": `or vector(0)`
/// (the denominator still decides whether there is data).
pub const DEFAULT_ERROR_RATE_QUERY: &str = r#"(sum(rate(http_requests_total{color="{colour}",code=~"5.."}[{window}])) or vector(0)) / sum(rate(http_requests_total{color="{colour}"}[{window}]))"#;
/// Default latency template: p99 of the request-duration histogram over the window.
pub const DEFAULT_LATENCY_QUERY: &str = r#"histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{color="{colour}"}[{window}])))"#;
/// Default request-count template: requests served over the window.
pub const DEFAULT_REQUESTS_QUERY: &str =
    r#"sum(increase(http_requests_total{color="{colour}"}[{window}]))"#;

/// Longest error text (from Prometheus or a proxy in front of it) kept in a reason.
const MAX_REASON: usize = 300;

fn default_error_rate_query() -> String {
    DEFAULT_ERROR_RATE_QUERY.to_owned()
}
fn default_latency_query() -> String {
    DEFAULT_LATENCY_QUERY.to_owned()
}
fn default_requests_query() -> String {
    DEFAULT_REQUESTS_QUERY.to_owned()
}
fn default_window() -> String {
    "30s".to_owned()
}
fn default_timeout() -> String {
    "5s".to_owned()
}

/// `[metrics.prometheus]`-style configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusConfig {
    /// Base URL of the Prometheus server, e.g. `http://127.0.0.1:9090` (a path prefix is kept).
    pub url: String,
    #[serde(default = "default_error_rate_query")]
    pub error_rate_query: String,
    #[serde(default = "default_latency_query")]
    pub latency_query: String,
    #[serde(default = "default_requests_query")]
    pub requests_query: String,
    /// PromQL range inserted as `{window}` (`30s`, `1m30s`); keep it at least 4x the scrape
    /// interval.
    #[serde(default = "default_window")]
    pub window: String,
    /// Per-query deadline (humantime: `5s`, `1500ms`); also sent as Prometheus' `timeout`.
    #[serde(default = "default_timeout")]
    pub timeout: String,
}

/// A Prometheus HTTP API client for one configuration.
#[derive(Debug, Clone)]
pub struct Prometheus {
    client: reqwest::Client,
    cfg: PrometheusConfig,
    /// `{url}/api/v1/query`.
    query_url: String,
    /// The URL for messages (password masked).
    shown_url: String,
    timeout: Duration,
}

impl Prometheus {
    /// Validates the URL (http/https, no query or fragment), the window (a PromQL duration), the
    /// timeout (humantime, non-zero) and the three templates (placeholders known).
    pub fn new(cfg: PrometheusConfig) -> Result<Prometheus, String> {
        if !cfg.url.contains("://") {
            return Err(format!(
                "prometheus url {:?}: needs a scheme, e.g. http://127.0.0.1:9090",
                cfg.url
            ));
        }
        let mut url = reqwest::Url::parse(cfg.url.trim())
            .map_err(|e| format!("prometheus url {:?}: {e}", cfg.url))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "prometheus url {:?}: scheme must be http or https",
                cfg.url
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("prometheus url {:?}: no host", cfg.url));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "prometheus url {:?}: must not have a query or fragment",
                cfg.url
            ));
        }
        let query_url = format!("{}/api/v1/query", url.as_str().trim_end_matches('/'));
        if url.password().is_some() {
            let _ = url.set_password(Some("***"));
        }
        let shown_url = url.as_str().trim_end_matches('/').to_owned();

        promql_duration(&cfg.window).map_err(|e| format!("prometheus window: {e}"))?;
        let timeout = humantime::parse_duration(cfg.timeout.trim())
            .map_err(|e| format!("prometheus timeout {:?}: {e}", cfg.timeout))?;
        if timeout.is_zero() {
            return Err(format!("prometheus timeout {:?}: must be > 0", cfg.timeout));
        }
        for (name, template) in [
            ("error_rate_query", &cfg.error_rate_query),
            ("latency_query", &cfg.latency_query),
            ("requests_query", &cfg.requests_query),
        ] {
            if template.trim().is_empty() {
                return Err(format!("prometheus {name}: empty"));
            }
            Self::render(template, "green", "staging", &cfg.window)
                .map_err(|e| format!("prometheus {name}: {e}"))?;
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| format!("prometheus client: {e}"))?;
        Ok(Prometheus {
            client,
            cfg,
            query_url,
            shown_url,
            timeout,
        })
    }

    /// The configuration this client was built from.
    pub fn config(&self) -> &PrometheusConfig {
        &self.cfg
    }

    /// Fills `{colour}`, `{env}`, `{window}` in a query template (unknown placeholder = error).
    ///
    /// A placeholder is `{` + identifier + `}`; other braces (label matchers such as
    /// `{color="x"}`, regex repetitions such as `{2}`) are left alone. Substituted values are
    /// checked so they cannot change the query's structure: colour and env must match
    /// `[A-Za-z0-9_.-]+`, window must be a PromQL duration.
    pub fn render(template: &str, colour: &str, env: &str, window: &str) -> Result<String, String> {
        let mut out = String::with_capacity(template.len() + 32);
        let mut rest = template;
        while let Some(i) = rest.find('{') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            let ident_len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            let is_placeholder = ident_len > 0
                && !after.starts_with(|c: char| c.is_ascii_digit())
                && after[ident_len..].starts_with('}');
            if !is_placeholder {
                out.push('{');
                rest = after;
                continue;
            }
            let value = match &after[..ident_len] {
                "colour" => label_value("colour", colour)?,
                "env" => label_value("env", env)?,
                "window" => {
                    promql_duration(window)?;
                    window
                }
                other => {
                    return Err(format!(
                        "unknown placeholder {{{other}}} in query template \
                         (known: {{colour}}, {{env}}, {{window}})"
                    ))
                }
            };
            out.push_str(value);
            rest = &after[ident_len + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// GET `{url}/api/v1/query?query=...` (time omitted = now). Returns the single scalar of the
    /// result: `Ok(Some(v))` for a finite value, `Ok(None)` for `NaN` / empty result / `±Inf`;
    /// `Err(one-line reason)` for HTTP errors (with Prometheus' `errorType` and `error`),
    /// timeouts, an unreachable server, bad JSON, more than one series.
    pub async fn query_scalar(&self, promql: &str) -> Result<Option<f64>, String> {
        let timeout_param = format!("{}ms", self.timeout.as_millis().max(1));
        let response = self
            .client
            .get(&self.query_url)
            .query(&[("query", promql), ("timeout", timeout_param.as_str())])
            .send()
            .await
            .map_err(|e| self.transport_error(e))?;
        let status = response.status();
        let body = response.text().await.map_err(|e| self.transport_error(e))?;
        if !status.is_success() {
            let reason = match api_error(&body) {
                Some((kind, msg)) => format!("HTTP {}: {kind}: {msg}", status.as_u16()),
                None if body.trim().is_empty() => format!("HTTP {}", status.as_u16()),
                None => format!("HTTP {}: {}", status.as_u16(), one_line(&body)),
            };
            tracing::debug!(query = promql, %reason, "prometheus query failed");
            return Err(one_line(&reason));
        }
        let (value, warnings) = decode(&body)?;
        for w in &warnings {
            tracing::warn!(query = promql, warning = %w, "prometheus query warning");
        }
        tracing::debug!(query = promql, ?value, "prometheus query");
        Ok(value)
    }

    /// Runs the three queries for a colour (concurrently) and builds a sample: any error gives
    /// `Unavailable("prometheus: <which query>: <reason>")`, no request count gives
    /// `Unavailable("prometheus: no request data for <colour>")`; otherwise `Data`, whose error
    /// rate and p99 may be `None`.
    pub async fn sample(&self, colour: &str, env: &str) -> Sample {
        let render = |t: &str| Self::render(t, colour, env, &self.cfg.window);
        let queries = (
            render(&self.cfg.requests_query),
            render(&self.cfg.error_rate_query),
            render(&self.cfg.latency_query),
        );
        let (requests_q, error_q, latency_q) = match queries {
            (Ok(r), Ok(e), Ok(l)) => (r, e, l),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                return Sample::Unavailable(format!("prometheus: {e}"))
            }
        };
        let (requests, error_rate, p99) = tokio::join!(
            self.query_scalar(&requests_q),
            self.query_scalar(&error_q),
            self.query_scalar(&latency_q),
        );
        let unavailable = |which: &str, e: String| {
            tracing::info!(colour, env, query = which, reason = %e, "prometheus sample unavailable");
            Sample::Unavailable(format!("prometheus: {which} query: {e}"))
        };
        let requests = match requests {
            Ok(v) => v,
            Err(e) => return unavailable("requests", e),
        };
        let error_rate = match error_rate {
            Ok(v) => v,
            Err(e) => return unavailable("error rate", e),
        };
        let p99_seconds = match p99 {
            Ok(v) => v,
            Err(e) => return unavailable("latency", e),
        };
        let Some(requests) = requests else {
            tracing::info!(colour, env, "prometheus: no request data");
            return Sample::Unavailable(format!("prometheus: no request data for {colour}"));
        };
        Sample::Data(Measurement {
            requests,
            error_rate,
            p99_seconds,
        })
    }

    fn transport_error(&self, e: reqwest::Error) -> String {
        if e.is_timeout() {
            return format!(
                "{} did not answer within {} (timeout)",
                self.shown_url,
                humantime::format_duration(self.timeout)
            );
        }
        // The cause chain on one line, without the URL (it holds the whole query).
        let reason = text::error_chain(&e.without_url());
        one_line(&format!("cannot reach {}: {reason}", self.shown_url))
    }
}

/// Parses a `/api/v1/query` answer: the single scalar of a vector or scalar result.
///
/// `Ok(Some(v))` for a finite value; `Ok(None)` for an empty vector, `NaN`, `+Inf`, `-Inf`;
/// `Err` for an error answer (`errorType: error`), bad JSON, a matrix or string result, a
/// native-histogram sample, or more than one series.
pub fn parse_query_response(body: &str) -> Result<Option<f64>, String> {
    decode(body).map(|(value, _warnings)| value)
}

#[derive(Deserialize)]
struct ApiResponse {
    status: String,
    #[serde(default)]
    data: Option<ApiData>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    warnings: Vec<String>,
}

#[derive(Deserialize)]
struct ApiData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct VectorSample {
    #[serde(default)]
    value: Option<(f64, String)>,
    #[serde(default)]
    histogram: Option<serde_json::Value>,
}

fn decode(body: &str) -> Result<(Option<f64>, Vec<String>), String> {
    let resp: ApiResponse = serde_json::from_str(body)
        .map_err(|e| one_line(&format!("bad JSON from Prometheus: {e}")))?;
    if resp.status != "success" {
        return Err(one_line(&format!(
            "{}: {}",
            resp.error_type.as_deref().unwrap_or("error"),
            resp.error.as_deref().unwrap_or("(no error message)")
        )));
    }
    let data = resp
        .data
        .ok_or_else(|| "bad answer from Prometheus: success without data".to_owned())?;
    let value = match data.result_type.as_str() {
        "vector" => {
            let samples: Vec<VectorSample> = serde_json::from_value(data.result)
                .map_err(|e| one_line(&format!("bad vector result from Prometheus: {e}")))?;
            match samples.as_slice() {
                [] => None,
                [one] => match (&one.value, &one.histogram) {
                    (Some((_ts, v)), _) => finite(v)?,
                    (None, Some(_)) => {
                        return Err("query returned a native histogram, expected a number \
                                    (use histogram_quantile)"
                            .into())
                    }
                    (None, None) => {
                        return Err("bad vector result from Prometheus: sample without value".into())
                    }
                },
                many => {
                    return Err(format!(
                        "query returned {} series, expected 1 (aggregate with sum() or similar)",
                        many.len()
                    ))
                }
            }
        }
        "scalar" => {
            let (_ts, v): (f64, String) = serde_json::from_value(data.result)
                .map_err(|e| one_line(&format!("bad scalar result from Prometheus: {e}")))?;
            finite(&v)?
        }
        other => {
            return Err(format!(
                "query returned a {other} result, expected an instant vector or scalar"
            ))
        }
    };
    Ok((value, resp.warnings))
}

/// Prometheus' sample value text (`strconv.FormatFloat`): `None` unless finite.
fn finite(v: &str) -> Result<Option<f64>, String> {
    match v {
        "NaN" | "+Inf" | "-Inf" | "Inf" => Ok(None),
        _ => {
            let x: f64 = v.parse().map_err(|_| {
                format!("bad sample value {:?} from Prometheus", super::head(v, 40))
            })?;
            Ok(x.is_finite().then_some(x))
        }
    }
}

/// `errorType` and `error` of an error answer, if the body is one.
fn api_error(body: &str) -> Option<(String, String)> {
    let resp: ApiResponse = serde_json::from_str(body).ok()?;
    if resp.error_type.is_none() && resp.error.is_none() {
        return None;
    }
    Some((
        resp.error_type.unwrap_or_else(|| "error".into()),
        resp.error.unwrap_or_else(|| "(no error message)".into()),
    ))
}

fn label_value<'a>(what: &str, v: &'a str) -> Result<&'a str, String> {
    if v.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if v.len() > 128
        || !v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Err(format!(
            "{what} {:?} may only hold letters, digits, '_', '.', '-'",
            super::head(v, 40)
        ));
    }
    Ok(v)
}

/// Parses a PromQL duration (`[0-9]+` followed by `y`, `w`, `d`, `h`, `m`, `s` or `ms`; several
/// parts from largest to smallest unit, each at most once: `1h30m`). Zero is refused.
fn promql_duration(s: &str) -> Result<Duration, String> {
    const UNITS: [(&str, u64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("ms", 1),
        ("m", 60_000),
        ("s", 1000),
    ];
    // Units in the order they must appear.
    const ORDER: [&str; 7] = ["y", "w", "d", "h", "m", "s", "ms"];
    let bad = || {
        format!(
            "{:?} is not a PromQL duration (e.g. 30s, 2m, 1m30s)",
            super::head(s, 40)
        )
    };
    if s.is_empty() {
        return Err(bad());
    }
    let mut rest = s;
    let mut total: u64 = 0;
    let mut next_allowed = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let (unit, ms) = UNITS
            .iter()
            .find(|(u, _)| rest.starts_with(u))
            .ok_or_else(bad)?;
        let pos = ORDER.iter().position(|u| u == unit).expect("unit listed");
        if pos < next_allowed {
            return Err(bad());
        }
        next_allowed = pos + 1;
        total = n
            .checked_mul(*ms)
            .and_then(|x| total.checked_add(x))
            .ok_or_else(bad)?;
        rest = &rest[unit.len()..];
    }
    if total == 0 {
        return Err(format!("{:?}: the window must be longer than zero", s));
    }
    Ok(Duration::from_millis(total))
}

/// Whitespace collapsed to single spaces, cut at [`MAX_REASON`] characters.
fn one_line(s: &str) -> String {
    text::clip(&text::one_line(s), MAX_REASON)
}

impl PrometheusConfig {
    /// The section's values over the provider's own defaults (its serde defaults), checked by
    /// building a client.
    pub fn with_defaults(
        url: String,
        error_rate_query: Option<String>,
        latency_query: Option<String>,
        requests_query: Option<String>,
        window: Option<String>,
        timeout: Option<String>,
    ) -> Result<PrometheusConfig, String> {
        let d: PrometheusConfig =
            serde_json::from_value(serde_json::json!({ "url": url })).expect("defaults");
        let pc = PrometheusConfig {
            error_rate_query: error_rate_query.unwrap_or(d.error_rate_query),
            latency_query: latency_query.unwrap_or(d.latency_query),
            requests_query: requests_query.unwrap_or(d.requests_query),
            window: window.unwrap_or(d.window),
            timeout: timeout.unwrap_or(d.timeout),
            url: d.url,
        };
        Prometheus::new(pc.clone())?;
        Ok(pc)
    }
}

/// PromQL rates cover their own window: nothing is kept between samples.
impl MetricsProvider for Prometheus {
    fn sample<'a>(&'a self, target: &'a Target, _window: Window) -> BoxFuture<'a, Sample> {
        Box::pin(Prometheus::sample(
            self,
            target.colour.as_str(),
            &target.env.0,
        ))
    }
}

#[cfg(test)]
mod tests;
