//! The Prometheus provider against a fake `/api/v1/query` on 127.0.0.1:0, and its parsers.

use super::*;
use std::sync::{Arc, Mutex};
use std::time::Instant;

fn cfg(url: &str) -> PrometheusConfig {
    serde_json::from_value(serde_json::json!({ "url": url })).unwrap()
}

// ---- parsing ---------------------------------------------------------------------------

#[test]
fn prometheus_parse_documented_shapes() {
    let vector = |v: &str| {
        format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[1700000000.1,"{v}"]}}]}}}}"#
        )
    };
    let cases: Vec<(String, Result<Option<f64>, &str>)> = vec![
        (vector("0.012"), Ok(Some(0.012))),
        (vector("0"), Ok(Some(0.0))),
        (vector("1e-3"), Ok(Some(0.001))),
        (vector("NaN"), Ok(None)),
        (vector("+Inf"), Ok(None)),
        (vector("-Inf"), Ok(None)),
        (vector("lots"), Err("bad sample value")),
        (
            // With labels, an integer timestamp and warnings.
            r#"{"status":"success","warnings":["w"],"data":{"resultType":"vector","result":[{"metric":{"job":"app"},"value":[1700000000,"42"]}]}}"#.into(),
            Ok(Some(42.0)),
        ),
        (
            r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#.into(),
            Ok(None),
        ),
        (
            r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000.1,"0.5"]}}"#.into(),
            Ok(Some(0.5)),
        ),
        (
            r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000.1,"NaN"]}}"#.into(),
            Ok(None),
        ),
        (
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"code":"200"},"value":[1,"1"]},{"metric":{"code":"500"},"value":[1,"2"]}]}}"#.into(),
            Err("2 series, expected 1"),
        ),
        (
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"],[2,"2"]]}]}}"#.into(),
            Err("matrix result"),
        ),
        (
            r#"{"status":"success","data":{"resultType":"string","result":[1,"x"]}}"#.into(),
            Err("string result"),
        ),
        (
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"histogram":[1,{"count":"3"}]}]}}"#.into(),
            Err("native histogram"),
        ),
        (
            r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:5: parse error: unexpected \"}\""}"#.into(),
            Err("bad_data: invalid parameter \"query\": 1:5: parse error"),
        ),
        (
            r#"{"status":"error","errorType":"timeout","error":"query timed out in expression evaluation"}"#.into(),
            Err("timeout: query timed out"),
        ),
        (r#"{"status":"success"}"#.into(), Err("without data")),
        ("<html>502 Bad Gateway</html>".into(), Err("bad JSON")),
        ("".into(), Err("bad JSON")),
    ];
    for (body, want) in cases {
        let got = parse_query_response(&body);
        match (&got, &want) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{body}"),
            (Err(e), Err(frag)) => {
                assert!(e.contains(frag), "{body}: {e:?} lacks {frag:?}");
                assert!(!e.contains('\n'), "{e:?}");
            }
            _ => panic!("{body}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn prometheus_parse_error_reasons_are_one_line_and_bounded() {
    let long = "x\n".repeat(1000);
    let body =
        serde_json::json!({"status":"error","errorType":"execution","error": long}).to_string();
    let e = parse_query_response(&body).unwrap_err();
    assert!(!e.contains('\n'));
    assert!(e.chars().count() <= MAX_REASON + 1, "{}", e.len());
}

// ---- rendering and configuration -------------------------------------------------------

#[test]
fn prometheus_render_default_templates() {
    assert_eq!(
        Prometheus::render(DEFAULT_ERROR_RATE_QUERY, "green", "staging", "30s").unwrap(),
        r#"(sum(rate(http_requests_total{color="green",code=~"5.."}[30s])) or vector(0)) / sum(rate(http_requests_total{color="green"}[30s]))"#
    );
    assert_eq!(
        Prometheus::render(DEFAULT_LATENCY_QUERY, "blue", "prod", "1m30s").unwrap(),
        r#"histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{color="blue"}[1m30s])))"#
    );
    assert_eq!(
        Prometheus::render(DEFAULT_REQUESTS_QUERY, "green", "x", "5m").unwrap(),
        r#"sum(increase(http_requests_total{color="green"}[5m]))"#
    );
}

#[test]
fn prometheus_render_placeholders_and_literal_braces() {
    let t = r#"sum(rate(x{env="{env}",color="{colour}",code=~"5[0-9]{2}",a=~"b{1,3}"}[{window}])) or vector(0) + on() group_left {}"#;
    assert_eq!(
        Prometheus::render(t, "blue", "prod-eu.1", "2m").unwrap(),
        r#"sum(rate(x{env="prod-eu.1",color="blue",code=~"5[0-9]{2}",a=~"b{1,3}"}[2m])) or vector(0) + on() group_left {}"#
    );
    // A lone or unterminated brace is literal text.
    assert_eq!(
        Prometheus::render("a{ {colour", "g", "e", "1s").unwrap(),
        "a{ {colour"
    );
    assert_eq!(Prometheus::render("", "g", "e", "1s").unwrap(), "");
}

#[test]
fn prometheus_render_errors() {
    let e = Prometheus::render(r#"x{color="{color}"}"#, "g", "e", "30s").unwrap_err();
    assert!(e.contains("unknown placeholder {color}"), "{e}");
    assert!(e.contains("{colour}"), "{e}");
    let e = Prometheus::render("{namespace}", "g", "e", "30s").unwrap_err();
    assert!(e.contains("{namespace}"), "{e}");
    // Values that would change the query are refused.
    for bad in [r#"g"} or vector(1) #"#, "", "a b", "é"] {
        let e = Prometheus::render(r#"x{color="{colour}"}"#, bad, "e", "30s").unwrap_err();
        assert!(e.contains("colour"), "{e}");
    }
    let e = Prometheus::render("{env}", "g", "", "30s").unwrap_err();
    assert!(e.contains("env is empty"), "{e}");
    // Unused values are not checked.
    assert_eq!(Prometheus::render("up", "", "", "x").unwrap(), "up");
    for bad in [
        "30", "30 s", "s", "1.5m", "30S", "1s1m", "1m1m", "0s", "-5s", "5s]",
    ] {
        let e = Prometheus::render("x[{window}]", "g", "e", bad).unwrap_err();
        assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
    }
}

#[test]
fn prometheus_promql_durations() {
    let ms = |s| promql_duration(s).unwrap().as_millis();
    assert_eq!(ms("30s"), 30_000);
    assert_eq!(ms("1m30s"), 90_000);
    assert_eq!(ms("500ms"), 500);
    assert_eq!(ms("1h2m3s4ms"), 3_723_004);
    assert_eq!(ms("2d"), 172_800_000);
    assert_eq!(ms("1y1w"), 372 * 86_400_000);
    assert!(promql_duration("1ms1s").is_err());
    assert!(promql_duration("99999999999999999999s").is_err());
}

#[test]
fn prometheus_config_defaults_and_unknown_fields() {
    let c: PrometheusConfig = toml::from_str(r#"url = "http://127.0.0.1:9090""#).unwrap();
    assert_eq!(c.window, "30s");
    assert_eq!(c.timeout, "5s");
    assert_eq!(c.error_rate_query, DEFAULT_ERROR_RATE_QUERY);
    assert_eq!(c.latency_query, DEFAULT_LATENCY_QUERY);
    assert_eq!(c.requests_query, DEFAULT_REQUESTS_QUERY);
    let e = toml::from_str::<PrometheusConfig>("url = \"http://127.0.0.1:9090\"\nwindw = \"1m\"\n")
        .unwrap_err();
    assert!(e.to_string().contains("windw"), "{e}");
    assert!(toml::from_str::<PrometheusConfig>("window = \"1m\"").is_err());
}

#[test]
fn prometheus_new_validates() {
    let p = Prometheus::new(cfg("http://127.0.0.1:9090")).unwrap();
    assert_eq!(p.query_url, "http://127.0.0.1:9090/api/v1/query");
    assert_eq!(p.timeout, Duration::from_secs(5));
    let p = Prometheus::new(cfg("https://mon.example/prometheus/")).unwrap();
    assert_eq!(p.query_url, "https://mon.example/prometheus/api/v1/query");
    let p = Prometheus::new(cfg("http://u:secret@h:9090")).unwrap();
    assert!(!p.shown_url.contains("secret"), "{}", p.shown_url);

    let bad_url = |u: &str| Prometheus::new(cfg(u)).unwrap_err();
    for (u, frag) in [
        ("127.0.0.1:9090", "scheme"),
        ("localhost:9090", "scheme"),
        ("http://", "empty host"),
        ("ftp://h/", "scheme"),
        ("http://h:9090/?x=1", "query"),
        ("http://h:9090/#f", "fragment"),
        ("", "url"),
    ] {
        let e = bad_url(u);
        assert!(e.contains(frag), "{u}: {e}");
    }

    let with = |f: &dyn Fn(&mut PrometheusConfig)| {
        let mut c = cfg("http://127.0.0.1:9090");
        f(&mut c);
        Prometheus::new(c)
    };
    let e = with(&|c| c.window = "30 seconds".into()).unwrap_err();
    assert!(e.contains("window"), "{e}");
    let e = with(&|c| c.timeout = "soon".into()).unwrap_err();
    assert!(e.contains("timeout"), "{e}");
    let e = with(&|c| c.timeout = "0s".into()).unwrap_err();
    assert!(e.contains("> 0"), "{e}");
    let e = with(&|c| c.latency_query = "histogram_quantile(0.99, {bucket})".into()).unwrap_err();
    assert!(e.contains("latency_query") && e.contains("{bucket}"), "{e}");
    let e = with(&|c| c.requests_query = "  ".into()).unwrap_err();
    assert!(e.contains("requests_query: empty"), "{e}");
    assert!(with(&|c| c.timeout = "1500ms".into()).is_ok());
    assert!(with(&|c| c.window = "2m".into()).is_ok());
}

// ---- against a fake Prometheus ---------------------------------------------------------

/// A fake `/api/v1/query`: the handler picks an answer from the query text.
async fn fake(
    answer: impl Fn(&str) -> (u16, String) + Send + Sync + Clone + 'static,
) -> (String, Arc<Mutex<Vec<String>>>) {
    use axum::extract::Query;
    use axum::routing::get;
    use std::collections::HashMap;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/api/v1/query",
        get(move |Query(q): Query<HashMap<String, String>>| {
            let answer = answer.clone();
            let seen = seen2.clone();
            async move {
                let query = q.get("query").cloned().unwrap_or_default();
                seen.lock().unwrap().push(format!(
                    "{} timeout={}",
                    query,
                    q.get("timeout").map_or("-", |s| s.as_str())
                ));
                if query == "hang" {
                    std::future::pending::<()>().await;
                }
                let (status, body) = answer(&query);
                (
                    axum::http::StatusCode::from_u16(status).unwrap(),
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    body,
                )
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, seen)
}

fn ok_vector(v: &str) -> String {
    format!(
        r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[1700000000.1,"{v}"]}}]}}}}"#
    )
}

const EMPTY: &str = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;

#[tokio::test]
async fn prometheus_query_scalar_error_shapes() {
    let (base, seen) = fake(|q| match q {
        "ok" => (200, ok_vector("0.25")),
        "unavailable" => (
            503,
            r#"{"status":"error","errorType":"unavailable","error":"TSDB not ready"}"#.into(),
        ),
        "execution" => (
            422,
            r#"{"status":"error","errorType":"execution","error":"found duplicate series for the match group"}"#.into(),
        ),
        "bad" => (
            400,
            r#"{"status":"error","errorType":"bad_data","error":"1:1: parse error: unexpected end of input"}"#.into(),
        ),
        "proxy" => (502, "<html>\n<h1>Bad Gateway</h1>\n</html>".into()),
        "garbage" => (200, "{not json".into()),
        "two" => (
            200,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"1"},"value":[1,"1"]},{"metric":{"a":"2"},"value":[1,"2"]}]}}"#.into(),
        ),
        _ => (200, EMPTY.into()),
    })
    .await;
    let mut c = cfg(&base);
    c.timeout = "300ms".into();
    let p = Prometheus::new(c).unwrap();

    assert_eq!(p.query_scalar("ok").await, Ok(Some(0.25)));
    assert_eq!(p.query_scalar("nothing").await, Ok(None));
    let cases = [
        ("unavailable", "HTTP 503: unavailable: TSDB not ready"),
        (
            "execution",
            "HTTP 422: execution: found duplicate series for the match group",
        ),
        ("bad", "HTTP 400: bad_data: 1:1: parse error"),
        ("proxy", "HTTP 502: <html> <h1>Bad Gateway</h1> </html>"),
        ("garbage", "bad JSON"),
        ("two", "2 series, expected 1"),
    ];
    for (q, frag) in cases {
        let e = p.query_scalar(q).await.unwrap_err();
        assert!(e.contains(frag), "{q}: {e:?}");
        assert!(!e.contains('\n'), "{e:?}");
    }

    let started = Instant::now();
    let e = p.query_scalar("hang").await.unwrap_err();
    let took = started.elapsed();
    assert!(e.contains("timeout") && e.contains("300ms"), "{e}");
    assert!(e.contains(&base), "{e}");
    assert!(took < Duration::from_secs(3), "{took:?}");

    // The query is URL-encoded and Prometheus is told the deadline too.
    let q = r#"sum(rate(x{a="b c",d=~"5.."}[30s])) / 2 + 1"#;
    assert_eq!(p.query_scalar(q).await, Ok(None));
    let seen = seen.lock().unwrap().clone();
    assert!(seen.contains(&format!("{q} timeout=300ms")), "{seen:?}");
}

#[tokio::test]
async fn prometheus_connection_refused() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let p = Prometheus::new(cfg(&format!("http://127.0.0.1:{port}"))).unwrap();
    let e = p.query_scalar("up").await.unwrap_err();
    assert!(
        e.starts_with(&format!("cannot reach http://127.0.0.1:{port}")),
        "{e}"
    );
    assert!(e.to_lowercase().contains("refused"), "{e}");
    assert!(
        !e.contains("query="),
        "the URL with the query is left out: {e}"
    );
    assert!(!e.contains('\n'), "{e}");
    match p.sample("green", "staging").await {
        Sample::Unavailable(why) => {
            assert!(why.starts_with("prometheus: "), "{why}");
            assert!(why.contains("refused"), "{why}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn prometheus_sample_against_fake() {
    // green: full data; blue: no latency (NaN) and empty error rate; purple: nothing at all;
    // red: the latency query fails.
    let (base, _) = fake(|q| {
        let colour = ["green", "blue", "purple", "red"]
            .into_iter()
            .find(|c| q.contains(&format!("color=\"{c}\"")))
            .unwrap_or("?");
        let kind = if q.starts_with("sum(increase") {
            "requests"
        } else if q.starts_with("histogram_quantile") {
            "latency"
        } else {
            "errors"
        };
        match (colour, kind) {
            ("green", "requests") => (200, ok_vector("1200")),
            ("green", "errors") => (200, ok_vector("0.01")),
            ("green", "latency") => (200, ok_vector("0.25")),
            ("blue", "requests") => (200, ok_vector("0")),
            ("blue", "errors") => (200, EMPTY.into()),
            ("blue", "latency") => (200, ok_vector("NaN")),
            ("red", "latency") => (
                422,
                r#"{"status":"error","errorType":"execution","error":"boom"}"#.into(),
            ),
            ("red", _) => (200, ok_vector("5")),
            _ => (200, EMPTY.into()),
        }
    })
    .await;
    let p = Prometheus::new(cfg(&base)).unwrap();
    assert_eq!(
        p.sample("green", "staging").await,
        Sample::Data(Measurement {
            requests: 1200.0,
            error_rate: Some(0.01),
            p99_seconds: Some(0.25),
        })
    );
    assert_eq!(
        p.sample("blue", "staging").await,
        Sample::Data(Measurement {
            requests: 0.0,
            error_rate: None,
            p99_seconds: None,
        })
    );
    assert_eq!(
        p.sample("purple", "staging").await,
        Sample::Unavailable("prometheus: no request data for purple".into())
    );
    assert_eq!(
        p.sample("red", "staging").await,
        Sample::Unavailable("prometheus: latency query: HTTP 422: execution: boom".into())
    );
    match p.sample("bad colour", "staging").await {
        Sample::Unavailable(why) => assert!(why.starts_with("prometheus: colour"), "{why}"),
        other => panic!("{other:?}"),
    }
}

// ---- against a real Prometheus ---------------------------------------------------------

/// Counters of the fake app, updated together so every scrape sees 10% errors.
#[derive(Default)]
struct AppCounts {
    ok: u64,
    errors: u64,
    /// Cumulative counts for the bounds of [`BOUNDS`], then `+Inf`.
    buckets: [u64; 6],
    sum: f64,
}

const BOUNDS: [&str; 6] = ["0.05", "0.1", "0.25", "0.5", "1", "+Inf"];

impl AppCounts {
    /// Nine fast successes (30 ms) and one slow failure (400 ms).
    fn tick(&mut self) {
        self.ok += 9;
        self.errors += 1;
        for (i, b) in self.buckets.iter_mut().enumerate() {
            *b += if i < 3 { 9 } else { 10 };
        }
        self.sum += 9.0 * 0.03 + 0.4;
    }

    fn exposition(&self) -> String {
        let mut s = String::from("# TYPE http_requests_total counter\n");
        s += &format!(
            "http_requests_total{{color=\"green\",code=\"200\"}} {}\n",
            self.ok
        );
        s += &format!(
            "http_requests_total{{color=\"green\",code=\"500\"}} {}\n",
            self.errors
        );
        s += "# TYPE http_request_duration_seconds histogram\n";
        for (le, n) in BOUNDS.iter().zip(self.buckets) {
            s += &format!(
                "http_request_duration_seconds_bucket{{color=\"green\",le=\"{le}\"}} {n}\n"
            );
        }
        s += &format!(
            "http_request_duration_seconds_sum{{color=\"green\"}} {}\n",
            self.sum
        );
        s += &format!(
            "http_request_duration_seconds_count{{color=\"green\"}} {}\n",
            self.buckets[5]
        );
        s
    }
}

async fn poll<T, F, Fut>(what: &str, deadline: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let until = Instant::now() + deadline;
    loop {
        let last = match f().await {
            Ok(v) => return v,
            Err(e) => e,
        };
        assert!(
            Instant::now() < until,
            "{what}: not within {deadline:?}; last: {last}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_real_server_end_to_end() {
    use axum::routing::get;
    let started = Instant::now();
    let bin = std::env::var("PROMETHEUS_BIN").unwrap_or_else(|_| "/usr/bin/prometheus".into());
    assert!(
        std::path::Path::new(&bin).exists(),
        "{bin} not found: install the prometheus package (or set PROMETHEUS_BIN)"
    );

    // The app Prometheus scrapes, with counters ticking in the background.
    let counts = Arc::new(Mutex::new(AppCounts::default()));
    let app_counts = counts.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let text = app_counts.lock().unwrap().exposition();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4",
                    )],
                    text,
                )
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let ticker_counts = counts.clone();
    let ticker = tokio::spawn(async move {
        loop {
            ticker_counts.lock().unwrap().tick();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });

    // Prometheus itself.
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(
        &config_path,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: app\n    scrape_interval: 1s\n    scrape_timeout: 1s\n\
             \x20   static_configs:\n      - targets: ['{app_addr}']\n"
        ),
    )
    .unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let log_path = dir.path().join("prometheus.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = tokio::process::Command::new(&bin)
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let log_tail = || {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    };

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    {
        let child = &mut child;
        let http = &http;
        let base = &base;
        poll("prometheus /-/ready", Duration::from_secs(30), || {
            let exited = child.try_wait().unwrap();
            async move {
                if let Some(status) = exited {
                    panic!("prometheus exited early ({status}):\n{}", log_tail());
                }
                match http.get(format!("{base}/-/ready")).send().await {
                    Ok(r) if r.status().is_success() => Ok(()),
                    Ok(r) => Err(format!("HTTP {}", r.status())),
                    Err(e) => Err(e.to_string()),
                }
            }
        })
        .await;
    }
    let ready_after = started.elapsed();

    // Default templates and window (30s); the sample appears after two scrapes.
    let p = Prometheus::new(cfg(&base)).unwrap();
    let m = poll("a green sample", Duration::from_secs(30), || async {
        match p.sample("green", "staging").await {
            Sample::Data(m) if m.error_rate.is_some() && m.p99_seconds.is_some() => Ok(m),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let data_after = started.elapsed();
    let rate = m.error_rate.unwrap();
    assert!((rate - 0.1).abs() < 0.01, "{m:?}");
    // Rank 99% falls in (0.25, 0.5] where the slow tenth is: 0.25 + 0.25 * 0.9.
    let p99 = m.p99_seconds.unwrap();
    assert!((p99 - 0.475).abs() < 0.01, "{m:?}");
    assert!(m.requests >= 10.0, "{m:?}");

    // No such colour: unavailable, not a pass.
    assert_eq!(
        p.sample("purple", "staging").await,
        Sample::Unavailable("prometheus: no request data for purple".into())
    );
    // Real error shapes: a parse error (400 bad_data) and more than one series.
    let e = p.query_scalar("sum(rate(").await.unwrap_err();
    assert!(e.starts_with("HTTP 400: bad_data: "), "{e}");
    let e = p
        .query_scalar(r#"http_requests_total{color="green"}"#)
        .await
        .unwrap_err();
    assert!(e.contains("2 series, expected 1"), "{e}");
    // A NaN from a real division by zero.
    assert_eq!(p.query_scalar("0/0").await, Ok(None));
    assert_eq!(p.query_scalar("scalar(vector(2))").await, Ok(Some(2.0)));

    ticker.abort();
    child.kill().await.unwrap();
    drop(dir);
    eprintln!(
        "real prometheus: ready after {ready_after:?}, data after {data_after:?}, \
         total {:?}",
        started.elapsed()
    );
}
