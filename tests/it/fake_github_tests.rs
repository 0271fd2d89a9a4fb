//! The fake GitHub answers as GitHub documents: driven with plain HTTP, every shape the
//! client reads and every refusal it must tell apart.

use crate::fake_github::*;
use serde_json::{json, Value};

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

async fn call(
    gh: &FakeGitHub,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = client()
        .request(method, format!("{}{path}", gh.url))
        .header("user-agent", "fake-test")
        .header("accept", "application/vnd.github+json");
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let (s, h) = (r.status().as_u16(), r.headers().clone());
    let text = r.text().await.unwrap();
    (
        s,
        h,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

const DISPATCH: &str = "/repos/acme/shop/actions/workflows/deploy.yml/dispatches";

#[tokio::test]
async fn a_dispatch_starts_a_run_that_moves_on_with_each_get() {
    let gh = FakeGitHub::start().await;
    let post = reqwest::Method::POST;
    let (s, _, _) = call(
        &gh,
        post.clone(),
        DISPATCH,
        Some(TOKEN),
        Some(json!({"ref": "main", "inputs": {"version": "v1"}})),
    )
    .await;
    assert_eq!(s, 204);
    let (s, _, b) = call(
        &gh,
        post,
        &format!("/api/v3{DISPATCH}"),
        Some(TOKEN),
        Some(json!({"ref": "main", "inputs": {"version": "v2"}, "return_run_details": true})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let id = b["workflow_run_id"].as_u64().unwrap();
    assert!(b["run_url"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/api/v3/repos/acme/shop/actions/runs/{id}")));
    assert_eq!(
        b["html_url"],
        format!("https://github.com/acme/shop/actions/runs/{id}")
    );
    let mut seen = Vec::new();
    for _ in 0..3 {
        let (_, _, r) = call(
            &gh,
            reqwest::Method::GET,
            &format!("/repos/acme/shop/actions/runs/{id}"),
            Some(TOKEN),
            None,
        )
        .await;
        seen.push((r["status"].clone(), r["conclusion"].clone()));
        assert_eq!(r["run_number"], 2);
        assert!(r["created_at"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(
        seen,
        vec![
            (json!("queued"), Value::Null),
            (json!("in_progress"), Value::Null),
            (json!("completed"), json!("success"))
        ]
    );
    assert_eq!(gh.dispatches().len(), 2);
}

#[tokio::test]
async fn the_runs_list_filters_and_pages_with_link() {
    let gh = FakeGitHub::start().await;
    for v in ["v1", "v2", "v3"] {
        let b = json!({"ref": "main", "inputs": {"version": v}});
        call(&gh, reqwest::Method::POST, DISPATCH, Some(TOKEN), Some(b)).await;
    }
    call(
        &gh,
        reqwest::Method::POST,
        DISPATCH,
        Some(TOKEN),
        Some(json!({"ref": "other", "inputs": {"version": "v"}})),
    )
    .await;
    let path = "/repos/acme/shop/actions/workflows/deploy.yml/runs?event=workflow_dispatch&branch=main&created=%3E%3D2020-01-01T00%3A00%3A00Z&per_page=2";
    let (s, h, b) = call(&gh, reqwest::Method::GET, path, Some(TOKEN), None).await;
    assert_eq!(s, 200);
    assert_eq!(b["total_count"], 3);
    assert_eq!(b["workflow_runs"].as_array().unwrap().len(), 2);
    let link = h["link"].to_str().unwrap();
    assert!(
        link.contains("rel=\"next\"") && link.contains("page=2"),
        "{link}"
    );
    let next = link
        .split(';')
        .next()
        .unwrap()
        .trim_matches(['<', '>', ' ']);
    let next = next.strip_prefix(&gh.url).unwrap();
    let (_, h2, b2) = call(&gh, reqwest::Method::GET, next, Some(TOKEN), None).await;
    assert_eq!(b2["workflow_runs"].as_array().unwrap().len(), 1);
    assert!(!h2["link"].to_str().unwrap().contains("rel=\"next\""));
    let (_, _, none) = call(
        &gh,
        reqwest::Method::GET,
        "/repos/acme/shop/actions/runs?created=%3E2999-01-01T00%3A00%3A00Z",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(none["total_count"], 0);
}

#[tokio::test]
async fn refusals_are_githubs_own() {
    let gh = FakeGitHub::start().await;
    let post = reqwest::Method::POST;
    let ok = json!({"ref": "main", "inputs": {"version": "v1"}});
    let (s, _, b) = call(
        &gh,
        post.clone(),
        DISPATCH,
        Some("ghp_wrong"),
        Some(ok.clone()),
    )
    .await;
    assert_eq!((s, b["message"].as_str()), (401, Some("Bad credentials")));
    assert!(b["documentation_url"].is_string());
    let (s, _, b) = call(&gh, post.clone(), DISPATCH, None, Some(ok.clone())).await;
    assert_eq!(
        (s, b["message"].as_str()),
        (401, Some("Requires authentication"))
    );
    let r = client()
        .post(format!("{}{DISPATCH}", gh.url))
        .bearer_auth(TOKEN)
        .json(&ok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403, "no User-Agent");
    let (s, _, b) = call(
        &gh,
        post.clone(),
        DISPATCH,
        Some(TOKEN),
        Some(json!({"ref": "main", "inputs": {"version": "v1", "region": "eu"}})),
    )
    .await;
    assert_eq!(
        (s, b["message"].as_str()),
        (422, Some("Unexpected inputs provided: [\"region\"]"))
    );
    let (s, _, b) = call(
        &gh,
        post.clone(),
        DISPATCH,
        Some(TOKEN),
        Some(json!({"ref": "main"})),
    )
    .await;
    assert_eq!(
        (s, b["message"].as_str()),
        (422, Some("Required input 'version' not provided"))
    );
    let ci = "/repos/acme/shop/actions/workflows/ci.yml/dispatches";
    let (s, _, b) = call(
        &gh,
        post.clone(),
        ci,
        Some(TOKEN),
        Some(json!({"ref": "main"})),
    )
    .await;
    assert_eq!(
        (s, b["message"].as_str()),
        (
            422,
            Some("Workflow does not have 'workflow_dispatch' trigger")
        )
    );
    assert!(gh.runs().is_empty(), "nothing started");
    gh.push_fault(Route::Dispatch, Fault::PrimaryLimit { reset_in: 30 });
    gh.push_fault(Route::Dispatch, Fault::TooMany { retry_after: 2 });
    let (s, h, _) = call(&gh, post.clone(), DISPATCH, Some(TOKEN), Some(ok.clone())).await;
    assert_eq!(
        (s, h["x-ratelimit-remaining"].to_str().unwrap()),
        (403, "0")
    );
    let (s, h, _) = call(&gh, post.clone(), DISPATCH, Some(TOKEN), Some(ok.clone())).await;
    assert_eq!((s, h["retry-after"].to_str().unwrap()), (429, "2"));
    gh.push_fault(Route::Dispatch, Fault::StartedThen(502));
    let (s, _, _) = call(&gh, post, DISPATCH, Some(TOKEN), Some(ok)).await;
    assert_eq!(
        (s, gh.runs().len()),
        (502, 1),
        "the run started, the answer was lost"
    );
}

/// PyGithub, an independent client, against the fake (`tests/py/pygithub_fake.py`).
/// `scripts/test.sh` installs it in a venv under `target/` and names its python in
/// `GREENLIGHT_PYGITHUB`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pygithub_reads_the_fake() {
    let Ok(python) = std::env::var("GREENLIGHT_PYGITHUB") else {
        panic!(
            "set GREENLIGHT_PYGITHUB to a python with PyGithub installed (scripts/test.sh does)"
        );
    };
    let gh = FakeGitHub::start().await;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/pygithub_fake.py");
    let url = gh.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        let mut cmd = std::process::Command::new(python);
        cmd.arg(script).arg(url).arg(TOKEN).env("NO_PROXY", "*");
        crate::harness::die_with_the_test(&mut cmd);
        cmd.output().unwrap()
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("pygithub ok"),
        "{text}"
    );
}
