//! The shared sender against a scripted server on 127.0.0.1:0: what is retried, what waits,
//! what fails at once, and that no message holds a secret.

use super::*;
use axum::http::HeaderMap as AxumHeaders;
use axum::response::IntoResponse;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// One scripted answer: status, extra headers, body.
type Scripted = (u16, Vec<(&'static str, String)>, &'static str);

/// Serves the script in order (the last answer repeats) and keeps each request's headers.
async fn server(script: Vec<Scripted>) -> (String, Arc<Mutex<Vec<AxumHeaders>>>) {
    let script = Arc::new(Mutex::new(VecDeque::from(script)));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let app = axum::Router::new().fallback(move |headers: AxumHeaders| {
        let script = script.clone();
        let seen = s2.clone();
        async move {
            seen.lock().unwrap().push(headers);
            let (code, hs, body) = {
                let mut q = script.lock().unwrap();
                if q.len() > 1 {
                    q.pop_front().unwrap()
                } else {
                    q.front().cloned().unwrap()
                }
            };
            let mut resp = (
                axum::http::StatusCode::from_u16(code).unwrap(),
                body.to_string(),
            )
                .into_response();
            for (k, v) in hs {
                resp.headers_mut().insert(k, v.parse().unwrap());
            }
            resp
        }
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/v3", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (url, seen)
}

fn api(url: &str) -> Api {
    let mut a = Api::new("GitHub", url, reqwest::Client::new(), vec!["s3cr3t".into()])
        .unwrap()
        .header("authorization", "Bearer s3cr3t", true)
        .unwrap();
    a.retry = Retry {
        first: Duration::from_millis(20),
        max: Duration::from_millis(80),
        attempt_timeout: Duration::from_secs(5),
    };
    a
}

fn soon(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

#[tokio::test]
async fn a_5xx_is_retried_until_it_answers() {
    let (url, seen) = server(vec![
        (502, vec![], "bad gateway"),
        (503, vec![], "{\"message\":\"down\"}"),
        (200, vec![], "{\"ok\":true}"),
    ])
    .await;
    let a = api(&url);
    let ans = a.get("repos/o/r", soon(5)).await.unwrap();
    assert_eq!(ans.status, 200);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0]["authorization"], "Bearer s3cr3t");
}

#[tokio::test]
async fn a_5xx_past_the_deadline_fails_naming_the_tries() {
    let (url, _) = server(vec![(500, vec![], "{\"message\":\"Server Error\"}")]).await;
    let e = api(&url)
        .get("x", Instant::now() + Duration::from_millis(200))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable);
    assert!(
        e.detail.starts_with("GitHub: 500 Server Error (after "),
        "{e}"
    );
}

#[tokio::test]
async fn a_post_that_got_a_5xx_is_uncertain_and_not_sent_again() {
    let (url, seen) = server(vec![(502, vec![], ""), (204, vec![], "")]).await;
    let e = api(&url)
        .send(
            Method::POST,
            "dispatches",
            Some(&serde_json::json!({})),
            soon(5),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Uncertain);
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_post_to_a_closed_port_is_retried_it_never_left() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    let e = api(&url)
        .send(
            Method::POST,
            "x",
            None,
            Instant::now() + Duration::from_millis(150),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
    assert!(e.detail.contains("tries)"), "{e}");
}

#[tokio::test]
async fn a_429_waits_as_asked_then_goes_on() {
    let (url, seen) = server(vec![
        (
            429,
            vec![("retry-after", "0".into())],
            "{\"message\":\"slow down\"}",
        ),
        (200, vec![], "{}"),
    ])
    .await;
    assert_eq!(api(&url).get("x", soon(5)).await.unwrap().status, 200);
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_rate_limit_longer_than_the_deadline_fails_at_once() {
    let reset = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3000)
        .to_string();
    let (url, seen) = server(vec![(
        403,
        vec![
            ("x-ratelimit-remaining", "0".into()),
            ("x-ratelimit-reset", reset),
        ],
        "{\"message\":\"API rate limit exceeded for installation ID 1.\"}",
    )])
    .await;
    let e = api(&url).get("x", soon(5)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::RateLimited);
    assert!(e.detail.contains("rate limited for another"), "{e}");
    assert!(e.detail.contains("API rate limit exceeded"), "{e}");
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_refused_token_is_one_line_never_retried_and_masked() {
    let (url, seen) = server(vec![(
        401,
        vec![],
        "{\"message\":\"Bad credentials: s3cr3t\",\"documentation_url\":\"https://docs.github.com/rest\"}",
    )])
    .await;
    let e = api(&url).get("x", soon(5)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Refused);
    assert_eq!(e.status, Some(401));
    assert!(
        !e.detail.contains("s3cr3t") && !e.detail.contains('\n'),
        "{e}"
    );
    assert!(
        e.detail
            .starts_with("GitHub: refused the credential (401 Bad credentials"),
        "{e}"
    );
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_422_carries_the_services_message() {
    let (url, _) = server(vec![(
        422,
        vec![],
        "{\"message\":\"Unexpected inputs provided: [\\\"colour\\\"]\"}",
    )])
    .await;
    let e = api(&url).get("x", soon(5)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Rejected);
    assert_eq!(
        e.detail,
        "GitHub: 422 Unexpected inputs provided: [\"colour\"]"
    );
}

#[tokio::test]
async fn a_validation_failure_names_what_failed() {
    let (url, _) = server(vec![(
        422,
        vec![],
        "{\"message\":\"Validation Failed\",\"errors\":[{\"resource\":\"PullRequest\",\"code\":\"custom\",\"message\":\"A pull request already exists for o:b.\"}],\"documentation_url\":\"https://docs.github.com/rest\"}",
    )])
    .await;
    let e = api(&url).get("x", soon(5)).await.unwrap_err();
    assert_eq!(
        e.detail,
        "GitHub: 422 Validation Failed: A pull request already exists for o:b."
    );
}

#[test]
fn base_urls_are_https_unless_loopback() {
    assert!(check_base_url("https://api.github.com").is_ok());
    assert!(check_base_url("http://127.0.0.1:8080/api/v3").is_ok());
    assert!(check_base_url("http://[::1]:80").is_ok());
    assert!(check_base_url("http://localhost:9").is_ok());
    let e = check_base_url("http://github.example.com").unwrap_err();
    assert!(e.contains("only for a loopback address"), "{e}");
    assert!(check_base_url("ftp://x").is_err());
    assert!(check_base_url("not a url").is_err());
}

#[test]
fn credentials_go_only_to_the_configured_origin() {
    let a = api("https://ghe.example.com/api/v3");
    assert_eq!(
        a.url("repos/o/r").unwrap().as_str(),
        "https://ghe.example.com/api/v3/repos/o/r"
    );
    assert!(a.url("https://ghe.example.com/api/v3/x?page=2").is_ok());
    let e = a.url("https://evil.example/x").unwrap_err();
    assert!(e.detail.contains("refusing to send credentials"), "{e}");
}

#[test]
fn the_next_link_is_read_from_the_link_header() {
    let mut headers = HeaderMap::new();
    headers.insert(
        "link",
        "<https://api.github.com/x?page=2>; rel=\"next\", <https://api.github.com/x?page=5>; rel=\"last\""
            .parse()
            .unwrap(),
    );
    let a = Answer {
        status: 200,
        headers,
        body: bytes::Bytes::new(),
    };
    assert_eq!(
        a.next_link().as_deref(),
        Some("https://api.github.com/x?page=2")
    );
}

#[tokio::test]
async fn a_form_is_sent_urlencoded_and_a_5xx_to_it_is_uncertain() {
    let seen = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let s2 = seen.clone();
    let app = axum::Router::new().fallback(move |headers: AxumHeaders, body: String| {
        let seen = s2.clone();
        async move {
            let ct = headers["content-type"].to_str().unwrap().to_string();
            seen.lock().unwrap().push((ct, body));
            let n = seen.lock().unwrap().len();
            if n == 1 {
                (axum::http::StatusCode::CREATED, "{\"id\":1}").into_response()
            } else {
                (axum::http::StatusCode::BAD_GATEWAY, "").into_response()
            }
        }
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/v4", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    let form = vec![
        ("token".to_string(), "s3cr3t".to_string()),
        ("variables[A B]".to_string(), "x&y".to_string()),
    ];
    let a = api(&url);
    let ans = a
        .send_form("projects/1/trigger/pipeline", &form, soon(5))
        .await;
    assert_eq!(ans.unwrap().status, 201);
    let e = a
        .send_form("projects/1/trigger/pipeline", &form, soon(5))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Uncertain, "a POST is never sent twice");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].0, "application/x-www-form-urlencoded");
    assert_eq!(seen[0].1, "token=s3cr3t&variables%5BA+B%5D=x%26y");
}
