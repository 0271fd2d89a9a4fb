//! The endpoints against a scripted server on 127.0.0.1:0: the headers GitHub requires, both
//! dispatch answers, the 422 of a server that does not know `return_run_details`, and the
//! runs list followed through its `Link` pages.

use super::*;
use axum::http::{HeaderMap, Uri};
use axum::response::IntoResponse;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Seen = Arc<Mutex<Vec<(String, HeaderMap, String)>>>;
/// One scripted answer: status, headers, body.
type Scripted = (u16, Vec<(&'static str, &'static str)>, &'static str);

/// Answers each request with the next scripted (status, headers, body); `{base}` in a header
/// becomes the server's URL.
async fn server(script: Vec<Scripted>) -> (String, Seen) {
    let script = Arc::new(Mutex::new(VecDeque::from(script)));
    let seen: Seen = Arc::default();
    let s2 = seen.clone();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    let b2 = base.clone();
    let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: String| {
        let (script, seen, base) = (script.clone(), s2.clone(), b2.clone());
        async move {
            seen.lock().unwrap().push((uri.to_string(), headers, body));
            let (code, hs, body) = script.lock().unwrap().pop_front().expect("scripted");
            let mut r = (axum::http::StatusCode::from_u16(code).unwrap(), body).into_response();
            for (k, v) in hs {
                r.headers_mut()
                    .insert(k, v.replace("{base}", &base).parse().unwrap());
            }
            r
        }
    });
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (base, seen)
}

fn client(base: &str) -> GitHub {
    let s = GitHubSettings {
        api_url: base.into(),
        token: "ghp_t0ken".into(),
        repo: "acme/shop".into(),
    };
    GitHub::new(&s, reqwest::Client::new()).unwrap()
}

fn soon() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(5)
}

const RUN: &str = r#"{"id":7,"run_number":3,"event":"workflow_dispatch","status":"queued","conclusion":null,"head_branch":"main","html_url":"https://github.com/acme/shop/actions/runs/7","created_at":"2026-03-01T10:00:00Z"}"#;

#[tokio::test]
async fn a_dispatch_sends_githubs_headers_and_reads_either_answer() {
    let details = r#"{"workflow_run_id":7,"run_url":"x","html_url":"https://github.com/acme/shop/actions/runs/7"}"#;
    let (base, seen) = server(vec![(204, vec![], ""), (200, vec![], details)]).await;
    let gh = client(&base);
    let inputs = BTreeMap::from([("version".to_string(), "v1".to_string())]);
    let d = gh
        .dispatch("deploy.yml", "main", &inputs, soon())
        .await
        .unwrap();
    assert_eq!(d, dispatch::Dispatched::default());
    let d = gh
        .dispatch("deploy.yml", "main", &inputs, soon())
        .await
        .unwrap();
    assert_eq!(d.run_id, Some(7));
    let seen = seen.lock().unwrap();
    let (uri, h, body) = &seen[0];
    assert_eq!(
        uri,
        "/repos/acme/shop/actions/workflows/deploy.yml/dispatches"
    );
    assert_eq!(h["authorization"], "Bearer ghp_t0ken");
    assert_eq!(h["accept"], "application/vnd.github+json");
    assert_eq!(h["x-github-api-version"], "2022-11-28");
    assert_eq!(h["user-agent"], "greenlight");
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"ref": "main", "inputs": {"version": "v1"}, "return_run_details": true})
    );
}

#[tokio::test]
async fn a_server_that_does_not_know_return_run_details_gets_the_dispatch_without_it() {
    let refused = r#"{"message":"Invalid request.\n\n\"return_run_details\" is not a permitted key.","documentation_url":"https://docs.github.com/rest"}"#;
    let (base, seen) = server(vec![(422, vec![], refused), (204, vec![], "")]).await;
    let d = client(&base)
        .dispatch("deploy.yml", "main", &BTreeMap::new(), soon())
        .await
        .unwrap();
    assert_eq!(d.run_id, None);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert!(!seen[1].2.contains("return_run_details"), "{}", seen[1].2);
}

#[tokio::test]
async fn the_runs_list_is_filtered_and_followed_through_its_pages() {
    let page1: &'static str =
        Box::leak(format!(r#"{{"total_count":2,"workflow_runs":[{RUN}]}}"#).into_boxed_str());
    let page2: &'static str = Box::leak(
        format!(
            r#"{{"total_count":2,"workflow_runs":[{}]}}"#,
            RUN.replace("\"id\":7", "\"id\":8")
        )
        .into_boxed_str(),
    );
    let link = r#"<{base}/repos/acme/shop/actions/runs?page=2>; rel="next", <{base}/repos/acme/shop/actions/runs?page=2>; rel="last""#;
    let (base, seen) = server(vec![
        (200, vec![("link", link)], page1),
        (200, vec![], page2),
    ])
    .await;
    let since = "2026-03-01T09:59:50Z".parse().unwrap();
    let runs = client(&base)
        .dispatched_runs("deploy.yml", "main", since, soon())
        .await
        .unwrap();
    assert_eq!(runs.iter().map(|r| r.id).collect::<Vec<_>>(), vec![7, 8]);
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen[0].0,
        "/repos/acme/shop/actions/workflows/deploy.yml/runs?event=workflow_dispatch&branch=main&created=%3E%3D2026-03-01T09%3A59%3A50Z&per_page=100"
    );
    assert_eq!(seen[1].0, "/repos/acme/shop/actions/runs?page=2");
}

#[tokio::test]
async fn a_run_reads_its_status_and_a_wrong_token_is_one_refusal_without_it() {
    let bad = r#"{"message":"Bad credentials","documentation_url":"https://docs.github.com/rest","status":"401"}"#;
    let (base, _) = server(vec![(200, vec![], RUN), (401, vec![], bad)]).await;
    let gh = client(&base);
    let run = gh.run(7, soon()).await.unwrap();
    assert_eq!((run.run_number, run.completed()), (3, false));
    let e = gh.run(7, soon()).await.unwrap_err();
    assert_eq!(e.kind, crate::remote::ErrorKind::Refused);
    assert_eq!(
        e.detail,
        "GitHub: refused the credential (401 Bad credentials)"
    );
}
