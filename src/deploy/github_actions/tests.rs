//! The step against a small scripted GitHub on 127.0.0.1:0 (the whole protocol is faked in
//! `tests/it/fake_github.rs`; here only what the step decides): one dispatch per deploy, the
//! run found and followed, the journal followed after a restart, a lost answer never resent.

use super::*;
use crate::core::RunId;
use crate::remote::github::GitHubSettings;
use axum::http::{Method, StatusCode, Uri};
use axum::response::IntoResponse;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the scripted GitHub does and saw.
#[derive(Default)]
struct Script {
    /// The dispatch's answer status (204, 200, 401, 502); a 502 still starts a run.
    dispatch_status: u16,
    conclusion: &'static str,
    dispatches: usize,
    /// Runs started: (id, GETs of it so far).
    runs: Vec<(u64, u32)>,
}

async fn github(dispatch_status: u16, conclusion: &'static str) -> (GitHub, Arc<Mutex<Script>>) {
    let s = Arc::new(Mutex::new(Script {
        dispatch_status,
        conclusion,
        ..Script::default()
    }));
    let s2 = s.clone();
    let app = axum::Router::new().fallback(move |m: Method, uri: Uri| {
        let s = s2.clone();
        async move {
            let mut s = s.lock().unwrap();
            let path = uri.path();
            let run = |id: u64, gets: u32, conclusion: &str| {
                let (status, c) = if gets >= 2 {
                    ("completed", serde_json::json!(conclusion))
                } else {
                    ("in_progress", serde_json::Value::Null)
                };
                serde_json::json!({"id": id, "run_number": id - 100, "event": "workflow_dispatch",
                    "status": status, "conclusion": c, "head_branch": "v1.0.0",
                    "html_url": format!("https://github.com/acme/shop/actions/runs/{id}"),
                    "created_at": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)})
            };
            if m == Method::POST && path.ends_with("/dispatches") {
                s.dispatches += 1;
                let code = s.dispatch_status;
                if code != 401 {
                    let id = 101 + s.runs.len() as u64;
                    s.runs.push((id, 0));
                }
                let body = if code == 401 {
                    r#"{"message":"Bad credentials"}"#
                } else {
                    ""
                };
                return (StatusCode::from_u16(code).unwrap(), body.to_string()).into_response();
            }
            if path.ends_with("/runs") {
                let list: Vec<_> = s.runs.iter().map(|(id, _)| run(*id, 0, "")).collect();
                let body = serde_json::json!({"total_count": list.len(), "workflow_runs": list});
                return body.to_string().into_response();
            }
            let id: u64 = path.rsplit('/').next().unwrap().parse().unwrap();
            let conclusion = s.conclusion;
            let r = s.runs.iter_mut().find(|(i, _)| *i == id).unwrap();
            r.1 += 1;
            run(id, r.1, conclusion).to_string().into_response()
        }
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    let settings = GitHubSettings {
        api_url: url,
        token: "ghp_t0ken".into(),
        repo: "acme/shop".into(),
    };
    let mut gh = GitHub::new(&settings, reqwest::Client::new()).unwrap();
    gh.api.retry.first = Duration::from_millis(10);
    (gh, s)
}

fn step(github: GitHub, dir: &std::path::Path) -> GitHubActionsDeploy {
    let ms = Duration::from_millis;
    GitHubActionsDeploy {
        env: EnvName::new("prod".to_string()),
        cfg: GitHubActionsConfig {
            github: GitHubSettings {
                api_url: String::new(),
                token: String::new(),
                repo: "acme/shop".into(),
            },
            workflow: "deploy.yml".into(),
            git_ref: "{version}".into(),
            inputs: BTreeMap::from([("target".to_string(), "{env}-{colour}".to_string())]),
            timeout: Duration::from_secs(10),
            poll_interval: ms(20),
            find_timeout: ms(300),
            blue_url: "http://b".into(),
            green_url: "http://g".into(),
        },
        github,
        journal: Journal::scratch(dir).unwrap(),
    }
}

fn ctx(notes: Arc<Mutex<Vec<String>>>) -> StepCtx {
    let env = EnvName::new("prod".to_string());
    StepCtx::new(
        RunId(1),
        env,
        Arc::new(move |t| notes.lock().unwrap().push(t)),
    )
}

#[tokio::test]
async fn one_dispatch_the_run_found_followed_and_noted() {
    let dir = tempfile::tempdir().unwrap();
    let (gh, script) = github(204, "success").await;
    let step = step(gh, dir.path());
    let notes = Arc::default();
    let c = ctx(Arc::clone(&notes));
    step.deploy(Colour::Blue, "v1.0.0", &c).await.unwrap();
    assert_eq!(script.lock().unwrap().dispatches, 1);
    let rec: Record = step.journal.get(&c.key("deploy")).unwrap().unwrap();
    assert_eq!(
        (rec.run_id, rec.inputs["target"].as_str()),
        (Some(101), "prod-blue")
    );
    assert_eq!(
        *notes.lock().unwrap(),
        vec!["GitHub Actions run #1: https://github.com/acme/shop/actions/runs/101".to_string()]
    );
    // The same deploy again (a restart after the switch): followed, not dispatched again.
    step.deploy(Colour::Blue, "v1.0.0", &c).await.unwrap();
    assert_eq!(script.lock().unwrap().dispatches, 1);
}

#[tokio::test]
async fn a_lost_answer_is_never_resent_and_a_failed_run_says_why_with_its_link() {
    let dir = tempfile::tempdir().unwrap();
    let (gh, script) = github(502, "failure").await;
    let step = step(gh, dir.path());
    let e = step
        .deploy(Colour::Green, "v1.0.0", &ctx(Arc::default()))
        .await
        .unwrap_err();
    assert_eq!(
        e,
        "GitHub Actions run #1 concluded failure: https://github.com/acme/shop/actions/runs/101"
    );
    assert_eq!(script.lock().unwrap().dispatches, 1);
}

#[tokio::test]
async fn an_intent_without_a_run_is_looked_for_never_dispatched_again() {
    let dir = tempfile::tempdir().unwrap();
    let (gh, script) = github(204, "success").await;
    let step = step(gh, dir.path());
    let c = ctx(Arc::default());
    let rec = Record {
        colour: Colour::Blue,
        version: "v1.0.0".into(),
        dispatched_at: Utc::now(),
        git_ref: "v1.0.0".into(),
        inputs: BTreeMap::new(),
        run_id: None,
        refused: None,
        lost: false,
    };
    step.journal.put(&c.key("deploy"), &rec).await.unwrap();
    let e = step.deploy(Colour::Blue, "v1.0.0", &c).await.unwrap_err();
    assert!(
        e.contains("the dispatch may not have happened, and greenlight will not dispatch twice"),
        "{e}"
    );
    assert_eq!(script.lock().unwrap().dispatches, 0);
}

#[tokio::test]
async fn a_refused_token_is_one_line_and_stays_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (gh, script) = github(401, "success").await;
    let step = step(gh, dir.path());
    let c = ctx(Arc::default());
    let e = step.deploy(Colour::Blue, "v1.0.0", &c).await.unwrap_err();
    assert_eq!(e, "GitHub Actions: dispatching deploy.yml on v1.0.0 failed, nothing was deployed: GitHub: refused the credential (401 Bad credentials)");
    assert_eq!(
        step.deploy(Colour::Blue, "v1.0.0", &c).await.unwrap_err(),
        e
    );
    assert_eq!(script.lock().unwrap().dispatches, 1);
}
