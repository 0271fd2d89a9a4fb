//! Direct-scrape metrics provider: reads an app's `/metrics` and computes error rate and p99.
//!
//! No Prometheus server is needed: two scrapes of the same endpoint give counter and histogram
//! deltas, from which [`window`] computes the request count, the 5xx count and rate, and the p99
//! latency the way Prometheus' `histogram_quantile` would.
//!
//! The metric families understood are the ones the demo app (and most HTTP middlewares) expose:
//! the counter `http_requests_total{color, code, path}` and the histogram
//! `http_request_duration_seconds{color}` (`_bucket{le}`, `_sum`, `_count`).

use super::BoxFuture;
use super::{MetricsProvider, Target, Window};
use crate::core::analysis::{Measurement, Sample};
use crate::core::RunId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Counter of requests; a `code` label starting with `5` marks an error.
pub const REQUESTS_METRIC: &str = "http_requests_total";
/// Latency histogram (in seconds).
pub const DURATION_METRIC: &str = "http_request_duration_seconds";
/// Label that holds the deployment colour.
pub const COLOUR_LABEL: &str = "color";

const ACCEPT: &str =
    "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// Cumulative values of one scrape, summed over every matching label set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Sum of `http_requests_total`.
    pub requests: f64,
    /// Sum of `http_requests_total` whose `code` label is 5xx.
    pub errors: f64,
    /// `http_request_duration_seconds_bucket`: (upper bound `le`, cumulative count), sorted by
    /// bound, `+Inf` included when exposed.
    pub buckets: Vec<(f64, f64)>,
    /// `http_request_duration_seconds_count`.
    pub duration_count: f64,
    /// `http_request_duration_seconds_sum`.
    pub duration_sum: f64,
    /// How many sample lines of the two families matched (0: wrong colour or no such metrics).
    pub samples: usize,
}

impl Snapshot {
    fn add_bucket(&mut self, le: f64, count: f64) {
        match self.buckets.binary_search_by(|(b, _)| b.total_cmp(&le)) {
            Ok(i) => self.buckets[i].1 += count,
            Err(i) => self.buckets.insert(i, (le, count)),
        }
    }
}

/// What happened in the window between two snapshots.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowStats {
    pub requests: f64,
    pub errors: f64,
    /// `errors / requests`; `None` when there were no requests.
    pub error_rate: Option<f64>,
    /// 99th percentile latency in seconds; `None` when nothing was observed.
    pub p99_seconds: Option<f64>,
}

/// Why a scrape failed. Every message is one line.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error("metrics endpoint {url} unreachable: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("metrics endpoint {url} answered HTTP {status}")]
    HttpStatus { url: String, status: u16 },
    #[error("metrics endpoint {url} timed out after {}ms", .timeout.as_millis())]
    Timeout { url: String, timeout: Duration },
    #[error("metrics parse error at line {line}: {reason}")]
    Parse { line: usize, reason: String },
}

fn parse_err(line: usize, reason: impl Into<String>) -> ScrapeError {
    ScrapeError::Parse {
        line,
        reason: reason.into(),
    }
}

/// Parses Prometheus / OpenMetrics text exposition, keeping only the two families above.
///
/// Comments (`# HELP`, `# TYPE`, `# UNIT`, `# EOF`, anything else after `#`), other metrics,
/// `_created` samples, timestamps and exemplars are skipped; label order does not matter. With
/// `colour` set, only samples whose `color` label equals it count (samples without that label do
/// not). Every sample line must start with a valid metric name, so an HTML error page is an error
/// rather than an empty snapshot; lines of our families must parse completely.
pub fn parse(text: &str, colour: Option<&str>) -> Result<Snapshot, ScrapeError> {
    let mut snap = Snapshot::default();
    for (idx, raw) in text.lines().enumerate() {
        let line_no = idx + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line
            .find(|c: char| c == '{' || c.is_whitespace())
            .unwrap_or(line.len());
        let name = &line[..name_end];
        if !is_metric_name(name) {
            return Err(parse_err(
                line_no,
                format!("not a metric sample: {:?}", super::head(line, 60)),
            ));
        }
        let kind = if name == REQUESTS_METRIC {
            Family::Requests
        } else {
            match name.strip_prefix(DURATION_METRIC) {
                Some("_bucket") => Family::Bucket,
                Some("_count") => Family::Count,
                Some("_sum") => Family::Sum,
                _ => continue,
            }
        };
        let (labels, rest) = parse_labels(&line[name_end..]).map_err(|r| parse_err(line_no, r))?;
        let value_str = rest
            .split_whitespace()
            .next()
            .ok_or_else(|| parse_err(line_no, format!("{name}: missing value")))?;
        let value = parse_value(value_str)
            .ok_or_else(|| parse_err(line_no, format!("{name}: bad value {value_str:?}")))?;
        let label = |key: &str| {
            labels
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        if let Some(want) = colour {
            if label(COLOUR_LABEL) != Some(want) {
                continue;
            }
        }
        snap.samples += 1;
        match kind {
            Family::Requests => {
                snap.requests += value;
                if label("code").is_some_and(|c| c.starts_with('5')) {
                    snap.errors += value;
                }
            }
            Family::Bucket => {
                let le_str =
                    label("le").ok_or_else(|| parse_err(line_no, "bucket without le label"))?;
                let le = parse_value(le_str)
                    .filter(|le| !le.is_nan())
                    .ok_or_else(|| parse_err(line_no, format!("bad le {le_str:?}")))?;
                snap.add_bucket(le, value);
            }
            Family::Count => snap.duration_count += value,
            Family::Sum => snap.duration_sum += value,
        }
    }
    Ok(snap)
}

enum Family {
    Requests,
    Bucket,
    Count,
    Sum,
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// Label pairs of one sample, in exposition order.
type Labels = Vec<(String, String)>;

/// Parses an optional `{k="v",...}` block; returns the labels and the text after it.
fn parse_labels(s: &str) -> Result<(Labels, &str), String> {
    let mut labels = Vec::new();
    let s = s.trim_start();
    let Some(body) = s.strip_prefix('{') else {
        return Ok((labels, s));
    };
    let mut chars = body.char_indices().peekable();
    loop {
        // Skip whitespace and separators, stop at the closing brace.
        while let Some(&(_, c)) = chars.peek() {
            if c.is_whitespace() || c == ',' {
                chars.next();
            } else {
                break;
            }
        }
        let Some(&(start, c)) = chars.peek() else {
            return Err("unterminated label set".into());
        };
        if c == '}' {
            return Ok((labels, &body[start + 1..]));
        }
        // Label name.
        let mut end = start;
        while let Some(&(i, c)) = chars.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                chars.next();
                end = i + c.len_utf8();
            } else {
                break;
            }
        }
        let key = &body[start..end];
        if key.is_empty() {
            return Err(format!(
                "bad label name at {:?}",
                super::head(&body[start..], 20)
            ));
        }
        while chars.peek().is_some_and(|&(_, c)| c.is_whitespace()) {
            chars.next();
        }
        if chars.next().map(|(_, c)| c) != Some('=') {
            return Err(format!("label {key}: expected '='"));
        }
        while chars.peek().is_some_and(|&(_, c)| c.is_whitespace()) {
            chars.next();
        }
        if chars.next().map(|(_, c)| c) != Some('"') {
            return Err(format!("label {key}: expected '\"'"));
        }
        let mut value = String::new();
        loop {
            match chars.next() {
                None => return Err(format!("label {key}: unterminated value")),
                Some((_, '"')) => break,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => return Err(format!("label {key}: unterminated value")),
                },
                Some((_, c)) => value.push(c),
            }
        }
        labels.push((key.to_owned(), value));
    }
}

/// Counter delta, treating a decrease as a reset (the current value is then the delta).
fn counter_reset(prev: &[f64], cur: &[f64]) -> bool {
    prev.iter().zip(cur).any(|(p, c)| c < p)
}

/// The statistics of the window between two snapshots of the same endpoint.
pub fn window(prev: &Snapshot, cur: &Snapshot) -> WindowStats {
    let (requests, errors) =
        if counter_reset(&[prev.requests, prev.errors], &[cur.requests, cur.errors]) {
            (cur.requests, cur.errors)
        } else {
            (cur.requests - prev.requests, cur.errors - prev.errors)
        };
    let error_rate = (requests > 0.0).then(|| (errors / requests).clamp(0.0, 1.0));
    let deltas = bucket_deltas(prev, cur);
    WindowStats {
        requests,
        errors,
        error_rate,
        p99_seconds: histogram_quantile(0.99, &deltas),
    }
}

/// Per-bound deltas of the cumulative buckets; on a reset or a change of bucket layout the
/// current buckets are the delta.
fn bucket_deltas(prev: &Snapshot, cur: &Snapshot) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(cur.buckets.len());
    for &(le, count) in &cur.buckets {
        let before = match prev.buckets.iter().find(|(b, _)| *b == le) {
            Some(&(_, p)) => p,
            None if prev.buckets.is_empty() => 0.0,
            None => return cur.buckets.clone(),
        };
        if count < before {
            return cur.buckets.clone();
        }
        out.push((le, count - before));
    }
    if prev.buckets.len() > cur.buckets.len() {
        // A bound disappeared: different layout, so not comparable.
        return cur.buckets.clone();
    }
    out
}

/// `histogram_quantile` over cumulative buckets sorted by bound: linear interpolation inside the
/// bucket that holds the rank (the first bucket starts at 0). A rank in `+Inf` gives the highest
/// finite bound. `None` when there are no observations or no finite bound.
pub fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    // Make counts monotonic, as Prometheus does for slightly inconsistent scrapes.
    let mut fixed: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    let mut max = 0.0_f64;
    for &(le, count) in buckets {
        max = max.max(count);
        fixed.push((le, max));
    }
    let total = fixed.last()?.1;
    if total <= 0.0 || q.is_nan() {
        return None;
    }
    let highest_finite = fixed.iter().rev().map(|b| b.0).find(|le| le.is_finite())?;
    let rank = q.clamp(0.0, 1.0) * total;
    let i = fixed.iter().position(|&(_, c)| c >= rank)?;
    let (upper, count) = fixed[i];
    if !upper.is_finite() {
        return Some(highest_finite);
    }
    let (lower, below) = if i == 0 {
        (0.0_f64.min(upper), 0.0)
    } else {
        fixed[i - 1]
    };
    let in_bucket = count - below;
    if in_bucket <= 0.0 {
        return Some(upper);
    }
    Some(lower + (upper - lower) * ((rank - below) / in_bucket))
}

/// Scrapes `/metrics` endpoints over HTTP.
#[derive(Debug, Clone)]
pub struct Scraper {
    client: reqwest::Client,
    timeout: Duration,
}

impl Scraper {
    /// A scraper whose every request (connect, headers and body) must finish within `timeout`.
    pub fn new(timeout: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .expect("building an HTTP client with rustls cannot fail");
        Scraper { client, timeout }
    }

    /// Fetches `url` (the full metrics URL, e.g. `http://127.0.0.1:8081/metrics`) and parses it.
    pub async fn scrape(&self, url: &str, colour: Option<&str>) -> Result<Snapshot, ScrapeError> {
        let response = self
            .client
            .get(url)
            .header(reqwest::header::ACCEPT, ACCEPT)
            .send()
            .await
            .map_err(|e| self.classify(url, e))?;
        let status = response.status();
        if !status.is_success() {
            tracing::debug!(url, status = status.as_u16(), "metrics scrape: bad status");
            return Err(ScrapeError::HttpStatus {
                url: url.to_owned(),
                status: status.as_u16(),
            });
        }
        let text = response.text().await.map_err(|e| self.classify(url, e))?;
        let snap = parse(&text, colour)?;
        tracing::debug!(
            url,
            colour,
            requests = snap.requests,
            errors = snap.errors,
            samples = snap.samples,
            "metrics scraped"
        );
        Ok(snap)
    }

    fn classify(&self, url: &str, e: reqwest::Error) -> ScrapeError {
        if e.is_timeout() {
            return ScrapeError::Timeout {
                url: url.to_owned(),
                timeout: self.timeout,
            };
        }
        let reason = crate::core::text::error_chain(&e);
        ScrapeError::Unreachable {
            url: url.to_owned(),
            reason,
        }
    }
}

/// The scrape provider's config: the metrics path relative to a colour's URL, and whether
/// only series labelled with the colour count.
#[derive(Debug, Clone, PartialEq)]
pub struct ScrapeConfig {
    pub path: String,
    pub match_colour: bool,
}

impl ScrapeConfig {
    /// The section's values over the defaults (`/metrics`, colour-matched).
    pub fn new(path: Option<String>, match_colour: Option<bool>) -> ScrapeConfig {
        ScrapeConfig {
            match_colour: match_colour.unwrap_or(true),
            path: path.unwrap_or_else(|| "/metrics".into()),
        }
    }
}

/// Judges a colour by two scrapes of its own `/metrics`: counter and histogram deltas. Keeps
/// each monitored run's last scrape, so the next sample measures from it.
pub struct ScrapeProvider {
    cfg: ScrapeConfig,
    scraper: Arc<Scraper>,
    last: Mutex<HashMap<RunId, Snapshot>>,
}

impl ScrapeProvider {
    pub fn new(cfg: ScrapeConfig, scraper: Arc<Scraper>) -> ScrapeProvider {
        ScrapeProvider {
            cfg,
            scraper,
            last: Mutex::new(HashMap::new()),
        }
    }

    fn label<'a>(&self, target: &'a Target) -> Option<&'a str> {
        self.cfg.match_colour.then_some(target.colour.as_str())
    }

    /// Measures from `prev` (or a fresh scrape `window` ago) to now; the new scrape, if any,
    /// is returned to keep.
    async fn measure(
        &self,
        target: &Target,
        prev: Option<Snapshot>,
        fresh: Duration,
    ) -> (Sample, Option<Snapshot>) {
        let colour = target.colour;
        let Some(url) = &target.url else {
            return (
                Sample::Unavailable(format!("{colour} is not running")),
                None,
            );
        };
        let url = format!("{url}{}", self.cfg.path);
        let label = self.label(target);
        let prev = match prev {
            Some(p) => p,
            None => match self.scraper.scrape(&url, label).await {
                Ok(p) => {
                    tokio::time::sleep(fresh).await;
                    p
                }
                Err(e) => return (Sample::Unavailable(e.to_string()), None),
            },
        };
        match self.scraper.scrape(&url, label).await {
            Ok(cur) if cur.samples == 0 => (
                Sample::Unavailable(format!("{url} exposes no request metrics for {colour}")),
                Some(cur),
            ),
            Ok(cur) => {
                let w = window(&prev, &cur);
                let m = Measurement {
                    requests: w.requests,
                    error_rate: w.error_rate,
                    p99_seconds: w.p99_seconds,
                };
                (Sample::Data(m), Some(cur))
            }
            Err(e) => (Sample::Unavailable(e.to_string()), None),
        }
    }
}

impl MetricsProvider for ScrapeProvider {
    fn sample<'a>(&'a self, target: &'a Target, window: Window) -> BoxFuture<'a, Sample> {
        Box::pin(async move {
            match window {
                Window::Fresh(d) => self.measure(target, None, d).await.0,
                Window::Since { run, or } => {
                    let prev = self.last.lock().expect("last").get(&run).cloned();
                    let (s, snap) = self.measure(target, prev, or).await;
                    if let Some(snap) = snap {
                        self.last.lock().expect("last").insert(run, snap);
                    }
                    s
                }
            }
        })
    }

    fn mark<'a>(&'a self, target: &'a Target, run: RunId) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let Some(url) = &target.url else {
                return;
            };
            let url = format!("{url}{}", self.cfg.path);
            if let Ok(s) = self.scraper.scrape(&url, self.label(target)).await {
                self.last.lock().expect("last").insert(run, s);
            }
        })
    }

    fn forget(&self, run: RunId) {
        self.last.lock().expect("last").remove(&run);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What prometheus-client 0.26 emits for the demo app (OpenMetrics), plus a few extras that a
    /// tolerant parser must skip: other metrics, `_created`, timestamps, exemplars, another
    /// colour, label order shuffled.
    const FIXTURE: &str = r#"# HELP http_requests HTTP requests served, by colour, status code and route.
# TYPE http_requests counter
http_requests_total{color="blue",code="200",path="/"} 90
http_requests_total{code="200",path="/login",color="blue"} 5
http_requests_total{color="blue",code="500",path="/"} 4 1712345678.123
http_requests_total{color="blue",code="503",path="/checkout"} 1 # {trace_id="abc}"} 1.0 1712345678.1
http_requests_total{color="blue",code="401",path="/dashboard"} 3
http_requests_total{color="green",code="500",path="/"} 100
http_requests_created{color="blue",code="200",path="/"} 1712345600.0
# HELP http_request_duration_seconds HTTP request latency in seconds, by colour.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_sum{color="blue"} 1.2345
http_request_duration_seconds_count{color="blue"} 103
http_request_duration_seconds_bucket{le="0.001",color="blue"} 50
http_request_duration_seconds_bucket{le="0.0025",color="blue"} 80
http_request_duration_seconds_bucket{le="0.005",color="blue"} 90
http_request_duration_seconds_bucket{color="blue",le="0.01"} 100
http_request_duration_seconds_bucket{le="0.025",color="blue"} 101
http_request_duration_seconds_bucket{le="0.05",color="blue"} 102
http_request_duration_seconds_bucket{le="0.1",color="blue"} 102
http_request_duration_seconds_bucket{le="0.25",color="blue"} 103 # {trace_id="x"} 0.2
http_request_duration_seconds_bucket{le="0.5",color="blue"} 103
http_request_duration_seconds_bucket{le="1.0",color="blue"} 103
http_request_duration_seconds_bucket{le="2.5",color="blue"} 103
http_request_duration_seconds_bucket{le="+Inf",color="blue"} 103
http_request_duration_seconds_sum{color="green"} 10
http_request_duration_seconds_count{color="green"} 100
http_request_duration_seconds_bucket{le="0.001",color="green"} 0
http_request_duration_seconds_bucket{le="2.5",color="green"} 0
http_request_duration_seconds_bucket{le="+Inf",color="green"} 100
# HELP process_cpu_seconds Total user and system CPU time.
# TYPE process_cpu_seconds counter
process_cpu_seconds_total 12.5
go_info{version="go1.22 {weird}"} 1
# EOF
"#;

    #[test]
    fn metrics_parse_realistic_fixture_for_one_colour() {
        let s = parse(FIXTURE, Some("blue")).unwrap();
        assert_eq!(s.requests, 103.0);
        assert_eq!(s.errors, 5.0);
        assert_eq!(s.duration_count, 103.0);
        assert!((s.duration_sum - 1.2345).abs() < 1e-12);
        assert_eq!(s.buckets.len(), 12);
        assert_eq!(s.buckets[0], (0.001, 50.0));
        assert_eq!(s.buckets[9], (1.0, 103.0));
        assert_eq!(s.buckets[11], (f64::INFINITY, 103.0));
        assert!(s.buckets.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(s.samples, 5 + 2 + 12);
    }

    #[test]
    fn metrics_parse_colour_filtering() {
        let green = parse(FIXTURE, Some("green")).unwrap();
        assert_eq!(green.requests, 100.0);
        assert_eq!(green.errors, 100.0);
        assert_eq!(
            green.buckets,
            vec![(0.001, 0.0), (2.5, 0.0), (f64::INFINITY, 100.0)]
        );

        let all = parse(FIXTURE, None).unwrap();
        assert_eq!(all.requests, 203.0);
        assert_eq!(all.errors, 105.0);
        assert_eq!(all.duration_count, 203.0);
        // Buckets are summed across label sets by bound.
        let inf = all.buckets.last().unwrap();
        assert_eq!(*inf, (f64::INFINITY, 203.0));
        assert_eq!(all.buckets[0], (0.001, 50.0));

        let none = parse(FIXTURE, Some("purple")).unwrap();
        assert_eq!(none.samples, 0);
        assert_eq!(none.requests, 0.0);
        assert_eq!(window(&Snapshot::default(), &none).error_rate, None);

        // Without a color label a sample does not match a colour filter.
        let s = parse("http_requests_total{code=\"200\"} 7\n", Some("blue")).unwrap();
        assert_eq!(s.requests, 0.0);
        let s = parse("http_requests_total{code=\"200\"} 7\n", None).unwrap();
        assert_eq!(s.requests, 7.0);
    }

    #[test]
    fn metrics_parse_classic_prometheus_format_and_escapes() {
        let text = "# HELP http_requests_total Requests.\n\
                    # TYPE http_requests_total counter\n\
                    http_requests_total { color = \"blue\" , code=\"500\", path=\"/a\\\"b\\\\c\\n\", } 2e1\n\
                    http_requests_total{color=\"blue\",code=\"200\"} 80\n\
                    http_request_duration_seconds_bucket{color=\"blue\",le=\"+Inf\"} 3\n\
                    http_request_duration_seconds_bucket{color=\"blue\",le=\"1\"} 3\n\
                    \n";
        let s = parse(text, Some("blue")).unwrap();
        assert_eq!(s.requests, 100.0);
        assert_eq!(s.errors, 20.0);
        assert_eq!(s.buckets, vec![(1.0, 3.0), (f64::INFINITY, 3.0)]);
    }

    #[test]
    fn metrics_parse_errors_carry_line_numbers() {
        let err = parse("# TYPE x counter\n<html>oops</html>\n", None).unwrap_err();
        assert!(matches!(err, ScrapeError::Parse { line: 2, .. }), "{err}");
        let err = parse("a 1\nhttp_requests_total{color=\"blue\" 3\n", Some("blue")).unwrap_err();
        assert!(matches!(err, ScrapeError::Parse { line: 2, .. }), "{err}");
        let err = parse("\n\n\nhttp_requests_total{color=\"blue\"} lots\n", None).unwrap_err();
        assert!(matches!(err, ScrapeError::Parse { line: 4, .. }), "{err}");
        assert!(!err.to_string().contains('\n'));
        let err = parse(
            "http_request_duration_seconds_bucket{color=\"b\"} 3\n",
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("le"), "{err}");
    }

    fn snap(requests: f64, errors: f64, buckets: &[(f64, f64)]) -> Snapshot {
        Snapshot {
            requests,
            errors,
            buckets: buckets.to_vec(),
            duration_count: buckets.last().map_or(0.0, |b| b.1),
            ..Snapshot::default()
        }
    }

    const INF: f64 = f64::INFINITY;

    #[test]
    fn metrics_window_one_percent_errors_and_p99_interpolation() {
        let prev = snap(
            1000.0,
            3.0,
            &[(0.1, 500.0), (0.5, 900.0), (1.0, 1000.0), (INF, 1000.0)],
        );
        // 1000 more requests, 10 of them 5xx; of the new observations 900 <= 0.1 s,
        // 80 in (0.1, 0.5], 20 in (0.5, 1.0].
        let cur = snap(
            2000.0,
            13.0,
            &[(0.1, 1400.0), (0.5, 1880.0), (1.0, 2000.0), (INF, 2000.0)],
        );
        let w = window(&prev, &cur);
        assert_eq!(w.requests, 1000.0);
        assert_eq!(w.errors, 10.0);
        assert!((w.error_rate.unwrap() - 0.01).abs() < 1e-12);
        // rank 990: 10 into the 20 observations of (0.5, 1.0] -> 0.75.
        assert!((w.p99_seconds.unwrap() - 0.75).abs() < 1e-12, "{w:?}");
    }

    #[test]
    fn metrics_window_quantile_edge_cases() {
        // All in the first bucket: interpolates from 0.
        let b = [(0.01, 100.0), (INF, 100.0)];
        assert!((histogram_quantile(0.99, &b).unwrap() - 0.0099).abs() < 1e-12);
        // Rank lands in +Inf: the highest finite bound.
        let b = [(0.1, 10.0), (2.5, 50.0), (INF, 100.0)];
        assert_eq!(histogram_quantile(0.99, &b), Some(2.5));
        // Only +Inf, or nothing observed.
        assert_eq!(histogram_quantile(0.99, &[(INF, 5.0)]), None);
        assert_eq!(histogram_quantile(0.99, &[(0.1, 0.0), (INF, 0.0)]), None);
        assert_eq!(histogram_quantile(0.99, &[]), None);
        // Missing +Inf bucket: the last bucket is the total.
        let b = [(0.1, 50.0), (0.2, 100.0)];
        assert!((histogram_quantile(0.5, &b).unwrap() - 0.1).abs() < 1e-12);
    }

    #[test]
    fn metrics_window_empty_is_none() {
        let s = snap(500.0, 5.0, &[(0.1, 500.0), (INF, 500.0)]);
        let w = window(&s, &s);
        assert_eq!(
            w,
            WindowStats {
                requests: 0.0,
                errors: 0.0,
                error_rate: None,
                p99_seconds: None
            }
        );
        let w = window(&Snapshot::default(), &Snapshot::default());
        assert_eq!(w.error_rate, None);
        assert_eq!(w.p99_seconds, None);
    }

    #[test]
    fn metrics_window_counter_reset_uses_current_values() {
        let prev = snap(5000.0, 10.0, &[(0.1, 5000.0), (1.0, 5000.0), (INF, 5000.0)]);
        // The process restarted: 200 requests since, 100 failed, half of them slow.
        let cur = snap(200.0, 100.0, &[(0.1, 100.0), (1.0, 200.0), (INF, 200.0)]);
        let w = window(&prev, &cur);
        assert_eq!(w.requests, 200.0);
        assert_eq!(w.errors, 100.0);
        assert_eq!(w.error_rate, Some(0.5));
        // rank 198: 98 into the 100 of (0.1, 1.0] -> 0.1 + 0.9 * 0.98.
        assert!((w.p99_seconds.unwrap() - 0.982).abs() < 1e-12, "{w:?}");

        // First scrape (nothing before): the whole history is the window.
        let w = window(&Snapshot::default(), &cur);
        assert_eq!(w.requests, 200.0);
        assert!(w.p99_seconds.is_some());
    }

    #[tokio::test]
    async fn metrics_scrape_unreachable_is_one_line() {
        // A port that was bound and released: nothing listens there.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let scraper = Scraper::new(Duration::from_secs(5));
        let err = scraper
            .scrape(&format!("http://127.0.0.1:{port}/metrics"), None)
            .await
            .unwrap_err();
        assert!(matches!(err, ScrapeError::Unreachable { .. }), "{err}");
        assert!(!err.to_string().contains('\n'), "{err}");
    }

    #[tokio::test]
    async fn metrics_scrape_status_and_timeout() {
        use axum::routing::get;
        // A server that answers 503 on /metrics and never answers on /hang.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .route(
                "/metrics",
                get(|| async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "down") }),
            )
            .route(
                "/hang",
                get(|| async { std::future::pending::<&'static str>().await }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        let scraper = Scraper::new(Duration::from_millis(200));
        let err = scraper
            .scrape(&format!("{base}/metrics"), None)
            .await
            .unwrap_err();
        assert!(
            matches!(err, ScrapeError::HttpStatus { status: 503, .. }),
            "{err}"
        );
        let err = scraper
            .scrape(&format!("{base}/hang"), None)
            .await
            .unwrap_err();
        assert!(matches!(err, ScrapeError::Timeout { .. }), "{err}");
        assert!(err.to_string().contains("200ms"), "{err}");
    }

    #[tokio::test]
    async fn metrics_scrape_the_demo_app() {
        use crate::demo_app::{serve, DemoOptions};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let opts = DemoOptions {
            version: "v9.9.9-faulty".into(),
            colour: "green".into(),
        };
        tokio::spawn(async move { serve(listener, opts).await.unwrap() });
        let client = reqwest::Client::new();
        let scraper = Scraper::new(Duration::from_secs(5));
        let metrics_url = format!("{base}/metrics");

        let first = scraper.scrape(&metrics_url, Some("green")).await.unwrap();
        assert_eq!(first.requests, 0.0);
        assert!(
            !first.buckets.is_empty(),
            "histogram exposed from the start"
        );
        assert_eq!(
            scraper
                .scrape(&metrics_url, Some("blue"))
                .await
                .unwrap()
                .samples,
            0
        );

        // Healthy window: 20 requests, no errors.
        for _ in 0..20 {
            let r = client.get(format!("{base}/version")).send().await.unwrap();
            assert_eq!(r.status(), 200);
        }
        let second = scraper.scrape(&metrics_url, Some("green")).await.unwrap();
        let w = window(&first, &second);
        assert_eq!(w.requests, 20.0, "scrapes themselves are not counted");
        assert_eq!(w.errors, 0.0);
        assert_eq!(w.error_rate, Some(0.0));
        let p99 = w.p99_seconds.unwrap();
        assert!(p99 > 0.0 && p99 <= 2.5, "{p99}");

        // Armed faulty window: about half fail.
        client
            .post(format!("{base}/_demo/live"))
            .send()
            .await
            .unwrap();
        let armed = scraper.scrape(&metrics_url, Some("green")).await.unwrap();
        let mut failed = 0.0;
        for _ in 0..100 {
            let r = client.get(format!("{base}/")).send().await.unwrap();
            if r.status() == 500 {
                failed += 1.0;
            }
        }
        let third = scraper.scrape(&metrics_url, Some("green")).await.unwrap();
        let w = window(&armed, &third);
        assert_eq!(w.requests, 100.0);
        assert_eq!(w.errors, failed);
        let rate = w.error_rate.unwrap();
        assert!((0.3..=0.7).contains(&rate), "{rate}");
        assert!(w.p99_seconds.is_some());
    }

    /// A colour whose request counter grows by 10 at every scrape; the count of scrapes.
    async fn counting_colour() -> (String, Arc<std::sync::atomic::AtomicU64>) {
        use std::sync::atomic::{AtomicU64, Ordering};
        let scrapes = Arc::new(AtomicU64::new(0));
        let n = scrapes.clone();
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let k = n.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    format!(
                        "http_requests_total{{color=\"blue\",code=\"200\"}} {}\n",
                        k * 10
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{addr}"), scrapes)
    }

    #[tokio::test]
    async fn the_provider_measures_a_run_from_its_last_scrape_or_mark() {
        use std::sync::atomic::Ordering;
        let (url, scrapes) = counting_colour().await;
        let p = ScrapeProvider::new(
            ScrapeConfig::new(None, None),
            Arc::new(Scraper::new(Duration::from_secs(5))),
        );
        let target = Target {
            env: crate::core::EnvName::new("prod"),
            colour: crate::core::Colour::Blue,
            url: Some(url),
        };
        let requests = |s: Sample| match s {
            Sample::Data(m) => m.requests,
            other => panic!("{other:?}"),
        };
        let run = RunId(1);
        let since = Window::Since {
            run,
            or: Duration::from_millis(1),
        };
        // No earlier scrape: a fresh window (two scrapes), whose end is kept.
        assert_eq!(requests(p.sample(&target, since).await), 10.0);
        assert_eq!(scrapes.load(Ordering::SeqCst), 2);
        assert_eq!(requests(p.sample(&target, since).await), 10.0);
        assert_eq!(scrapes.load(Ordering::SeqCst), 3);
        // A mark starts the window again; a fresh window keeps nothing.
        p.mark(&target, run).await;
        let fresh = Window::Fresh(Duration::from_millis(1));
        assert_eq!(requests(p.sample(&target, fresh).await), 10.0);
        assert_eq!(requests(p.sample(&target, since).await), 30.0);
        assert_eq!(scrapes.load(Ordering::SeqCst), 7);
        // A finished run's scrape is forgotten.
        p.forget(run);
        assert_eq!(requests(p.sample(&target, since).await), 10.0);
        assert_eq!(scrapes.load(Ordering::SeqCst), 9);
        let stopped = Target {
            url: None,
            ..target
        };
        match p.sample(&stopped, since).await {
            Sample::Unavailable(why) => assert_eq!(why, "blue is not running"),
            other => panic!("{other:?}"),
        }
    }
}
