//! The `gitlab` deploy step against the fake GitLab, without the bot: one pipeline per run
//! whatever happens, its end read right, failures in one line with the link.

use crate::fake_gitlab::*;
use greenlight::core::{Colour, EnvName, RunId};
use greenlight::deploy::gitlab::schema::GitlabDeployConfig;
use greenlight::deploy::gitlab::GitlabDeploy;
use greenlight::deploy::{DeployStep, StepCtx};
use greenlight::remote::gitlab::Settings;
use greenlight::remote::Retry;
use greenlight::store::Journal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Setup {
    gl: FakeGitlab,
    _dir: tempfile::TempDir,
    journal: Journal,
}

impl Setup {
    async fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        Setup {
            gl: FakeGitlab::start(&["v1.2.0"]).await,
            journal: Journal::scratch(&dir.path().join("db")).unwrap(),
            _dir: dir,
        }
    }

    /// The step, with a trigger token or not, `timeout` in all.
    fn step(&self, trigger: bool, token: Option<&str>, timeout: Duration) -> GitlabDeploy {
        let cfg = GitlabDeployConfig {
            settings: Settings {
                api_url: self.gl.url.clone(),
                project: PROJECT_PATH.into(),
                token: token.map(String::from),
                trigger_token: trigger.then(|| TRIGGER_TOKEN.to_string()),
            },
            git_ref: "{version}".into(),
            variables: [
                ("DEPLOY_COLOUR".to_string(), "{colour}".to_string()),
                ("DEPLOY_ENV".to_string(), "{env}".to_string()),
            ]
            .into(),
            timeout,
            poll_interval: Duration::from_millis(20),
            find_timeout: Duration::from_secs(1),
            blue_url: "http://127.0.0.1:1".into(),
            green_url: "http://127.0.0.1:2".into(),
        };
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let mut s = GitlabDeploy::new(
            EnvName::new("prod".to_string()),
            cfg,
            self.journal.clone(),
            client,
        )
        .unwrap();
        s.client_mut().api.retry = Retry {
            first: Duration::from_millis(20),
            max: Duration::from_millis(100),
            attempt_timeout: Duration::from_secs(2),
        };
        s
    }
}

/// A run's context whose notes are kept.
fn ctx(run: u64) -> (StepCtx, Arc<Mutex<Vec<String>>>) {
    let notes = Arc::new(Mutex::new(Vec::new()));
    let n2 = notes.clone();
    let c = StepCtx::new(
        RunId(run),
        EnvName::new("prod".to_string()),
        Arc::new(move |t| n2.lock().unwrap().push(t)),
    );
    (c, notes)
}

const MINUTE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_trigger_runs_one_pipeline_with_the_variables_and_notes_its_link() {
    let s = Setup::new().await;
    let step = s.step(true, Some(TOKEN), MINUTE);
    let (c, notes) = ctx(1);
    step.deploy(Colour::Green, "v1.2.0", &c).await.unwrap();
    let ps = s.gl.pipelines();
    assert_eq!(ps.len(), 1);
    let (id, r, source, status, vars) = &ps[0];
    assert_eq!(
        (r.as_str(), source.as_str(), status.as_str()),
        ("v1.2.0", "trigger", "success")
    );
    assert_eq!(vars["DEPLOY_COLOUR"], "green");
    assert_eq!(vars["DEPLOY_ENV"], "prod");
    let notes = notes.lock().unwrap().clone();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].starts_with(&format!("GitLab pipeline #{id}: http://")),
        "{notes:?}"
    );
    assert!(
        notes[0].ends_with(&format!("/shop/api/-/pipelines/{id}")),
        "{notes:?}"
    );
    // The same step of the same run again (a redeploy after a restart) follows the
    // recorded pipeline: nothing new is created.
    step.deploy(Colour::Green, "v1.2.0", &c).await.unwrap();
    assert_eq!(s.gl.creation_requests(), 1);
}

#[tokio::test]
async fn with_an_access_token_the_pipeline_is_created_with_json() {
    let s = Setup::new().await;
    let (c, _) = ctx(1);
    s.step(false, Some(TOKEN), MINUTE)
        .deploy(Colour::Blue, "main", &c)
        .await
        .unwrap();
    let reqs = s.gl.requests();
    let post = reqs.iter().find(|r| r.method == "POST").unwrap();
    assert_eq!(post.path, "/api/v4/projects/shop%2Fapi/pipeline");
    assert_eq!(post.private_token.as_deref(), Some(TOKEN));
    let body: serde_json::Value = serde_json::from_str(&post.body).unwrap();
    assert_eq!(body["ref"], "main");
    assert!(body["variables"].as_array().unwrap().contains(
        &serde_json::json!({"key": "DEPLOY_COLOUR", "value": "blue", "variable_type": "env_var"})
    ));
    assert_eq!(s.gl.pipelines()[0].2, "api");
}

#[tokio::test]
async fn failed_canceled_skipped_and_manual_end_the_step_with_the_link() {
    for (end, want) in [
        ("failed", "failed: http://"),
        ("canceled", "canceled: http://"),
        ("skipped", "skipped: http://"),
        (
            "manual",
            "waits for a person: a manual job must be started in GitLab",
        ),
    ] {
        let s = Setup::new().await;
        s.gl.set_script(&["created", "running", end]);
        let (c, _) = ctx(1);
        let e = s
            .step(true, Some(TOKEN), MINUTE)
            .deploy(Colour::Green, "v1.2.0", &c)
            .await
            .unwrap_err();
        assert!(e.starts_with("GitLab pipeline #"), "{e}");
        assert!(e.contains(want), "{end}: {e}");
        assert!(e.contains("/-/pipelines/"), "the link: {e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }
}

#[tokio::test]
async fn a_pipeline_that_does_not_finish_in_time_fails_with_the_link() {
    let s = Setup::new().await;
    s.gl.set_script(&["running"]);
    let (c, _) = ctx(1);
    let t = Instant::now();
    let e = s
        .step(true, Some(TOKEN), Duration::from_millis(1500))
        .deploy(Colour::Green, "v1.2.0", &c)
        .await
        .unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    // On a loaded machine the last look may itself run into the deadline: then the sender's
    // own words say so; either way the step's time and the pipeline's link are named.
    assert!(
        e.contains(
            "did not finish within 1s 500ms (still running; greenlight did not cancel it): http://"
        ) || (e.contains("within the step's 1s 500ms (pipeline #") && e.contains("http://")),
        "{e}"
    );
}

#[tokio::test]
async fn a_refused_token_is_one_line_and_nothing_is_deployed() {
    let s = Setup::new().await;
    let (c, _) = ctx(1);
    let e = s
        .step(false, Some("glpat-wrong"), MINUTE)
        .deploy(Colour::Green, "v1.2.0", &c)
        .await
        .unwrap_err();
    assert_eq!(
        e,
        "GitLab: refused the credential (401 401 Unauthorized); no pipeline was created, nothing was deployed"
    );
    assert!(s.gl.pipelines().is_empty());
    assert_eq!(s.gl.creation_requests(), 1, "never retried");
}

#[tokio::test]
async fn a_bad_ref_or_trigger_token_says_so() {
    let s = Setup::new().await;
    let (c, _) = ctx(1);
    let e = s
        .step(true, Some(TOKEN), MINUTE)
        .deploy(Colour::Green, "v9.9.9", &c)
        .await
        .unwrap_err();
    assert!(
        e.contains("400 {\"base\":[\"Reference not found\"]} (ref v9.9.9)"),
        "{e}"
    );
    assert!(e.ends_with("nothing was deployed"), "{e}");
}

#[tokio::test]
async fn server_errors_and_rate_limits_while_polling_are_ridden_out() {
    let s = Setup::new().await;
    s.gl.fail_next(Route::Pipeline, Fault::Status(502));
    s.gl.fail_next(Route::Pipeline, Fault::RateLimited { secs: 1 });
    s.gl.fail_next(Route::Pipeline, Fault::Status(500));
    let (c, _) = ctx(1);
    let t = Instant::now();
    s.step(true, Some(TOKEN), MINUTE)
        .deploy(Colour::Green, "v1.2.0", &c)
        .await
        .unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "the 429's Retry-After was honoured"
    );
    assert_eq!(s.gl.creation_requests(), 1);
}

#[tokio::test]
async fn a_rate_limit_on_creation_is_waited_out_once_then_created() {
    let s = Setup::new().await;
    s.gl.fail_next(Route::Trigger, Fault::RateLimited { secs: 1 });
    let (c, _) = ctx(1);
    s.step(true, Some(TOKEN), MINUTE)
        .deploy(Colour::Green, "v1.2.0", &c)
        .await
        .unwrap();
    assert_eq!(s.gl.pipelines().len(), 1);
}

#[tokio::test]
async fn gitlab_down_is_retried_then_failed_within_the_timeout() {
    let s = Setup::new().await;
    let (c, _) = ctx(1);
    let step = s.step(true, Some(TOKEN), Duration::from_secs(2));
    // Down while following: the step gives up at its deadline, with the link.
    s.gl.set_script(&["created", "running"]);
    let gl = &s.gl;
    let run = step.deploy(Colour::Green, "v1.2.0", &c);
    let watch = async {
        gl.wait_pipelines(1, Duration::from_secs(5)).await;
        gl.set_down(true);
    };
    let t = Instant::now();
    let (r, _) = tokio::join!(run, watch);
    let e = r.unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(6), "{:?}", t.elapsed());
    assert!(s.gl.dropped() >= 2, "retried: {}", s.gl.dropped());
    assert!(
        e.contains("gave up within the step's 2s (pipeline #"),
        "{e}"
    );
    assert_eq!(s.gl.creation_requests(), 1);
}

#[tokio::test]
async fn a_lost_answer_is_looked_for_never_sent_again() {
    let s = Setup::new().await;
    s.gl.fail_next(Route::Trigger, Fault::Lost(502));
    let (c, notes) = ctx(1);
    s.step(true, Some(TOKEN), MINUTE)
        .deploy(Colour::Green, "v1.2.0", &c)
        .await
        .unwrap();
    assert_eq!(s.gl.creation_requests(), 1);
    assert_eq!(s.gl.pipelines().len(), 1);
    assert!(notes.lock().unwrap()[0].starts_with("GitLab pipeline #"));
}

#[tokio::test]
async fn a_lost_answer_finds_ours_not_an_older_or_other_pipeline() {
    let s = Setup::new().await;
    let older =
        s.gl.add_pipeline("v1.2.0", "trigger", "failed", Duration::from_secs(600));
    s.gl.fail_next(Route::Trigger, Fault::Lost(504));
    let (c, notes) = ctx(1);
    s.step(true, Some(TOKEN), MINUTE)
        .deploy(Colour::Green, "v1.2.0", &c)
        .await
        .unwrap();
    let notes = notes.lock().unwrap().clone();
    assert!(!notes[0].contains(&format!("#{older}:")), "{notes:?}");
}

#[tokio::test]
async fn journaled_but_never_created_fails_clearly_without_a_second_pipeline() {
    let s = Setup::new().await;
    let (c, _) = ctx(7);
    // What a crash right after the journal write leaves behind.
    s.journal
        .put(
            &c.key("deploy"),
            &serde_json::json!({"started_at": chrono::Utc::now(), "ref": "v1.2.0", "variables": {}, "source": "trigger", "pipeline": null}),
        )
        .await
        .unwrap();
    let e = s
        .step(true, Some(TOKEN), MINUTE)
        .deploy(Colour::Green, "v1.2.0", &c)
        .await
        .unwrap_err();
    assert!(e.contains("no pipeline on ref v1.2.0 created since"), "{e}");
    assert!(
        e.contains("it may not have started; greenlight will not start a second one"),
        "{e}"
    );
    assert_eq!(s.gl.creation_requests(), 0);
}

#[tokio::test]
async fn a_trigger_token_alone_cannot_follow_a_private_project_and_says_what_is_missing() {
    let s = Setup::new().await;
    let (c, _) = ctx(1);
    let e = s
        .step(true, None, MINUTE)
        .deploy(Colour::Green, "v1.2.0", &c)
        .await
        .unwrap_err();
    assert!(e.contains("401 Unauthorized"), "{e}");
    assert!(
        e.contains("needs token = \"${NAME}\", an access token with read_api"),
        "{e}"
    );
    assert_eq!(s.gl.creation_requests(), 1, "created once, never again");
}
