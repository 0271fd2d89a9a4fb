//! Actions without the binary: an action against a driver and a colour served on
//! `127.0.0.1:0` -> the `AppEvent::Done` it reports.

use super::*;
use crate::core::engine::LiveView;

/// A colour that is healthy and serves one smoke step.
async fn colour_server() -> String {
    use axum::routing::get;
    let app = axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/ping", get(|| async { "pong" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

async fn actor(url: &str, deploy_idle: &str) -> (Actor, mpsc::Receiver<AppEvent>) {
    let text = format!(
        r#"
[users.alice]
groups = ["deployers"]
[environments.prod.deploy]
driver = "command"
deploy_idle = {deploy_idle}
switch = ["true"]
blue_url = "{url}"
green_url = "{url}"
[environments.prod.metrics]
provider = "none"
[[environments.prod.smoke]]
name = "ping"
path = "/api/ping"
critical = true
"#
    );
    let cfg = Arc::new(crate::config::parse(&text, &|_| None).unwrap());
    let (tx, rx) = mpsc::channel(16);
    let mut a = Actor::new(cfg.clone(), tx, reqwest::Client::new());
    let env = &cfg.environments[&EnvName::new("prod")];
    let driver = Driver::start(
        &env.name,
        &env.deploy,
        &env.traffic,
        None,
        &env.secrets,
        std::path::Path::new("unused"),
        &crate::store::Journal::scratch(tempfile::tempdir().unwrap().path()).unwrap(),
    )
    .await
    .unwrap();
    a.drivers.insert(env.name.clone(), driver);
    (a, rx)
}

fn prod() -> EnvName {
    EnvName::new("prod")
}

async fn done(rx: &mut mpsc::Receiver<AppEvent>) -> (RunId, u32, Outcome) {
    match rx.recv().await {
        Some(AppEvent::Done {
            run,
            attempt,
            outcome,
        }) => (run, attempt, outcome),
        _ => panic!("expected a Done"),
    }
}

#[tokio::test]
async fn a_deploy_reports_its_result_with_the_runs_attempt() {
    let url = colour_server().await;
    let (a, mut rx) = actor(&url, r#"["true"]"#).await;
    let deploy = |attempt| Action::DeployIdle {
        run: RunId(4),
        attempt,
        env: prod(),
        colour: Colour::Green,
        version: "v1.2.0".into(),
    };
    a.spawn(deploy(2), None);
    let (run, attempt, outcome) = done(&mut rx).await;
    assert_eq!((run, attempt), (RunId(4), 2));
    assert!(
        matches!(outcome, Outcome::DeployIdle(Ok(()))),
        "{outcome:?}"
    );

    let (a, mut rx) = actor(&url, r#"["false"]"#).await;
    a.spawn(deploy(1), None);
    let (_, _, outcome) = done(&mut rx).await;
    let Outcome::DeployIdle(Err(why)) = outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        why.starts_with("deploy_idle command `false` exited with status 1"),
        "{why}"
    );
}

#[tokio::test]
async fn verify_polls_health_then_runs_the_smoke_steps() {
    let url = colour_server().await;
    let (a, mut rx) = actor(&url, r#"["true"]"#).await;
    let verify = Action::Verify {
        run: RunId(1),
        attempt: 1,
        env: prod(),
        colour: Colour::Blue,
    };
    a.spawn(verify, Some("v1".into()));
    let (_, _, outcome) = done(&mut rx).await;
    let Outcome::Verify(Ok(text)) = outcome else {
        panic!("{outcome:?}")
    };
    assert!(text.starts_with("healthy after "), "{text}");
    assert!(text.contains("smoke tests passed: ping (200 in "), "{text}");
}

#[tokio::test]
async fn a_check_reports_its_metrics_then_its_critical_path() {
    let url = colour_server().await;
    let (a, mut rx) = actor(&url, r#"["true"]"#).await;
    let sample = Action::Sample {
        run: RunId(1),
        attempt: 3,
        env: prod(),
        colour: Colour::Green,
    };
    a.spawn(sample, Some("v1".into()));
    let (_, attempt, outcome) = done(&mut rx).await;
    assert_eq!(attempt, 3);
    let Outcome::Measured(Sample::Unavailable(why)) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(why, "no metrics provider is configured");
    let (_, _, outcome) = done(&mut rx).await;
    assert!(
        matches!(outcome, Outcome::CriticalPath(Ok(()))),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn observing_outside_a_run_reports_the_view_alone() {
    let url = colour_server().await;
    let (a, mut rx) = actor(&url, r#"["true"]"#).await;
    a.spawn(
        Action::Observe {
            env: prod(),
            run: None,
        },
        None,
    );
    match rx.recv().await {
        Some(AppEvent::Observed { env, view }) => {
            assert_eq!(env, prod());
            // A command traffic step without `live_query` cannot be asked.
            assert_eq!(view, LiveView::Unasked);
        }
        _ => panic!("expected Observed"),
    }
    a.spawn(
        Action::Observe {
            env: prod(),
            run: Some((RunId(9), 2)),
        },
        None,
    );
    let (run, attempt, outcome) = done(&mut rx).await;
    assert_eq!((run, attempt), (RunId(9), 2));
    assert!(matches!(outcome, Outcome::Observed(LiveView::Unasked)));
}

/// A traffic step that records what it was asked and refuses to switch back.
#[derive(Default)]
struct StubTraffic {
    calls: std::sync::Mutex<Vec<String>>,
}

impl crate::deploy::TrafficStep for StubTraffic {
    fn observe(&self) -> crate::deploy::BoxFuture<'_, LiveView> {
        Box::pin(async { LiveView::Seen(Some(Colour::Blue)) })
    }
    fn switch<'a>(
        &'a self,
        to: Colour,
        from: Option<Colour>,
        _ctx: &'a crate::deploy::StepCtx,
    ) -> crate::deploy::BoxFuture<'a, Result<(), String>> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("switch {to} from {from:?}"));
        Box::pin(async { Ok(()) })
    }
    fn switch_back<'a>(
        &'a self,
        to: Colour,
        from: Colour,
        _ctx: &'a crate::deploy::StepCtx,
    ) -> crate::deploy::BoxFuture<'a, Result<(), String>> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("back {to} from {from}"));
        Box::pin(async { Err("the load balancer said no".to_string()) })
    }
}

#[tokio::test]
async fn switches_go_through_the_environments_traffic_step() {
    let url = colour_server().await;
    let (mut a, mut rx) = actor(&url, r#"["true"]"#).await;
    let stub = Arc::new(StubTraffic::default());
    a.drivers.get_mut(&prod()).unwrap().traffic = stub.clone();
    a.spawn(
        Action::Switch {
            run: RunId(2),
            attempt: 1,
            env: prod(),
            to: Colour::Green,
            from: Some(Colour::Blue),
        },
        None,
    );
    let (_, _, outcome) = done(&mut rx).await;
    assert!(matches!(outcome, Outcome::Switch(Ok(()))), "{outcome:?}");
    a.spawn(
        Action::SwitchBack {
            run: RunId(2),
            attempt: 1,
            env: prod(),
            to: Colour::Blue,
            from: Colour::Green,
        },
        None,
    );
    let (_, _, outcome) = done(&mut rx).await;
    let Outcome::SwitchBack(Err(why)) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(why, "the load balancer said no");
    assert_eq!(
        *stub.calls.lock().unwrap(),
        vec!["switch green from Some(Blue)", "back blue from green"]
    );
}
