//! The `github-actions` deploy step in whole runs on the local channel against the fake
//! GitHub: one dispatch per deploy, the run's link in the status message, a failed run never
//! switched to, an API that is down or rate limiting, a refused token, and crashes between
//! the journal and the dispatch (no second dispatch, ever).

use crate::fake_github::{FakeGitHub, Fault, Route, RunDetails, TOKEN};
use crate::haproxy_prometheus::Load;
use crate::harness::*;
use std::time::{Duration, Instant};

const TOKEN_VAR: &str = "GL_TEST_GITHUB_TOKEN";

fn config(gh: &str, recorder: &str, blue: &str, green: &str, timeout: &str) -> String {
    test_config(&format!(
        r#"
[github]
api_url = "{gh}"
token = "${{{TOKEN_VAR}}}"
repo = "acme/shop"

[environments.api]
display_name = "API"
[environments.api.deploy]
driver = "github-actions"
workflow = "deploy.yml"
ref = "main"
inputs = {{ version = "{{version}}", colour = "{{colour}}", environment = "{{env}}" }}
timeout = "{timeout}"
poll_interval = "100ms"
find_timeout = "2s"
blue_url = "{blue}"
green_url = "{green}"
[environments.api.traffic]
driver = "command"
switch = ["{recorder}", "switch", "{{colour}}"]
live = "none"
[environments.api.monitor]
duration = "2s"
interval = "1s"
min_requests = 5
[[environments.api.checklist]]
text = "CI passed"
group = "reviewers"
"#
    ))
}

/// A switch step that records its arguments.
fn recorder(dir: &std::path::Path) -> (String, std::path::PathBuf) {
    let log = dir.join("calls.log");
    let script = dir.join("record.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$@\" >> {}\n", log.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    (script.display().to_string(), log)
}

struct Setup {
    gh: FakeGitHub,
    blue: DemoApp,
    _green: DemoApp,
    log: std::path::PathBuf,
    tmp: tempfile::TempDir,
}

async fn setup(timeout: &str) -> Setup {
    let gh = FakeGitHub::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let (rec, log) = recorder(tmp.path());
    let (blue, green) = (DemoApp::start("v0", "blue"), DemoApp::start("v0", "green"));
    let cfg = config(&gh.url, &rec, &blue.1, &green.1, timeout);
    std::fs::write(tmp.path().join("greenlight.toml"), cfg).unwrap();
    Setup {
        gh,
        blue,
        _green: green,
        log,
        tmp,
    }
}

impl Setup {
    async fn bot(&self, token: &str, fault: Option<&str>) -> Bot {
        let mut envs = vec![(TOKEN_VAR, token)];
        envs.extend(fault.map(|f| ("GREENLIGHT_FAULT", f)));
        Bot::start_with(self.tmp.path(), &[], &envs).await
    }

    fn switches(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

async fn request(bot: &Bot) {
    bot.say("alice", "/deploy v2.0.0 api").await;
    bot.approve_all(1, "bob").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_run_dispatches_once_links_the_run_and_ends_stable() {
    let s = setup("20s").await;
    let bot = s.bot(TOKEN, None).await;
    let load = Load::start(&s.blue.1, 2, Duration::from_millis(20));
    request(&bot).await;
    let note = bot
        .wait_text(
            "GitHub Actions run #1: https://github.com/acme/shop/actions/runs/",
            LONG,
        )
        .await;
    assert!(text(&note).starts_with("Run 1 status"), "{}", text(&note));
    bot.wait_text("Run 1 stable", LONG).await;
    load.stop().await;
    let d = s.gh.dispatches();
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(
        d[0].body,
        serde_json::json!({"ref": "main", "return_run_details": true,
            "inputs": {"version": "v2.0.0", "colour": "blue", "environment": "api"}})
    );
    assert_eq!(d[0].user_agent.as_deref(), Some("greenlight"));
    assert_eq!(d[0].api_version.as_deref(), Some("2022-11-28"));
    assert_eq!(s.switches(), "switch blue\n");
    assert!(
        !bot.log().contains(TOKEN),
        "the token never reaches the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_workflow_is_never_switched_to_and_says_why_with_its_link() {
    let s = setup("20s").await;
    s.gh.conclude_next("failure");
    let bot = s.bot(TOKEN, None).await;
    request(&bot).await;
    let m = bot.wait_text("❌ Deployment failed. Reason:", LONG).await;
    let t = text(&m);
    assert!(
        t.contains(
            "GitHub Actions run #1 concluded failure: https://github.com/acme/shop/actions/runs/"
        ),
        "{t}"
    );
    assert_eq!(s.gh.dispatches().len(), 1);
    assert_eq!(s.switches(), "", "no switch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_waited_out_and_passing_5xx_retried() {
    let s = setup("20s").await;
    s.gh.push_fault(Route::Dispatch, Fault::TooMany { retry_after: 1 });
    s.gh.push_fault(Route::GetRun, Fault::Status(502));
    s.gh.push_fault(Route::GetRun, Fault::PrimaryLimit { reset_in: 1 });
    let bot = s.bot(TOKEN, None).await;
    request(&bot).await;
    bot.wait_text("✅ Deployment successful. Monitoring.", LONG)
        .await;
    // The rate-limited POST was not taken (nothing started), so it was sent again: one run.
    assert_eq!(s.gh.dispatches().len(), 2);
    assert_eq!(s.gh.runs().len(), 1);
    assert_eq!(s.switches(), "switch blue\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_run_details_the_run_is_found_in_the_list_once_it_appears() {
    for details in [RunDetails::Ignored, RunDetails::Refused] {
        let s = setup("20s").await;
        s.gh.state().run_details = details;
        s.gh.state().appear_after = 2;
        let bot = s.bot(TOKEN, None).await;
        request(&bot).await;
        bot.wait_text("✅ Deployment successful. Monitoring.", LONG)
            .await;
        let posts = s.gh.dispatches().len();
        // A refused key started nothing, so the dispatch was sent once more without it.
        let want = if details == RunDetails::Refused { 2 } else { 1 };
        assert_eq!((posts, s.gh.runs().len()), (want, 1), "{details:?}");
        let lists =
            s.gh.requests()
                .iter()
                .filter(|r| r.path.ends_with("/runs"))
                .count();
        assert!(
            lists >= 3,
            "{details:?}: looked until it appeared ({lists})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_that_is_down_fails_the_deploy_within_its_timeout() {
    let s = setup("4s").await;
    s.gh.set_down(Some(503));
    let bot = s.bot(TOKEN, None).await;
    let t0 = Instant::now();
    request(&bot).await;
    let m = bot.wait_text("❌ Deployment failed. Reason:", LONG).await;
    assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());
    let t = text(&m);
    // A 503 to the POST may still have started a run: looked for, never sent again.
    assert!(t.contains("greenlight will not dispatch twice"), "{t}");
    assert!(t.contains("503"), "{t}");
    assert_eq!(s.gh.dispatches().len(), 1);
    assert_eq!(s.switches(), "", "no switch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_one_clear_line_and_nothing_is_deployed() {
    let s = setup("20s").await;
    let bot = s.bot("ghp_revoked0000", None).await;
    request(&bot).await;
    let m = bot.wait_text("❌ Deployment failed. Reason:", LONG).await;
    let t = text(&m);
    assert!(
        t.contains("GitHub Actions: dispatching deploy.yml on main failed, nothing was deployed: GitHub: refused the credential (401 Bad credentials)"),
        "{t}"
    );
    assert!(!t.contains("ghp_revoked0000"), "{t}");
    assert!(s.gh.runs().is_empty());
    assert_eq!(s.switches(), "");
}

/// Waits until the bot killed itself at its fault point.
async fn wait_dead(bot: &mut Bot) {
    let deadline = Instant::now() + LONG;
    while !bot.exited() {
        assert!(
            Instant::now() < deadline,
            "the fault point never fired\n{}",
            bot.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_the_dispatch_the_run_is_followed_not_dispatched_again() {
    let s = setup("20s").await;
    let mut bot = s.bot(TOKEN, Some("github:dispatched")).await;
    bot.say_maybe("alice", "/deploy v2.0.0 api").await;
    bot.approve_all_maybe(1, "bob").await;
    wait_dead(&mut bot).await;
    bot.restart().await;
    bot.wait_text("♻️ greenlight restarted: run 1", SHORT).await;
    bot.wait_text("✅ Deployment successful. Monitoring.", LONG)
        .await;
    bot.wait_text(
        "GitHub Actions run #1: https://github.com/acme/shop/actions/runs/",
        SHORT,
    )
    .await;
    assert_eq!(s.gh.dispatches().len(), 1, "exactly one dispatch");
    assert_eq!(s.gh.runs().len(), 1);
    assert_eq!(s.switches(), "switch blue\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_the_journal_and_the_dispatch_it_fails_clearly_and_never_dispatches() {
    let s = setup("20s").await;
    let mut bot = s.bot(TOKEN, Some("github:journaled")).await;
    bot.say_maybe("alice", "/deploy v2.0.0 api").await;
    bot.approve_all_maybe(1, "bob").await;
    wait_dead(&mut bot).await;
    bot.restart().await;
    let m = bot.wait_text("❌ Deployment failed. Reason:", LONG).await;
    let t = text(&m);
    assert!(
        t.contains("no run of deploy.yml on main appeared within 2s of the dispatch sent before greenlight restarted: the dispatch may not have happened, and greenlight will not dispatch twice"),
        "{t}"
    );
    assert!(s.gh.dispatches().is_empty(), "{:?}", s.gh.dispatches());
    assert_eq!(s.switches(), "");
}

#[test]
fn the_example_is_accepted_and_a_literal_token_is_refused_with_its_line() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let (code, out) = cli(
        &["check-config", "config/examples/github-actions.toml"],
        root,
    );
    assert_eq!(code, 0, "{out}");
    let tmp = tempfile::tempdir().unwrap();
    let example =
        std::fs::read_to_string(root.join("config/examples/github-actions.toml")).unwrap();
    // In [github] and in an environment's deploy section: the error names the token's line.
    for (var, prefix) in [
        ("GITHUB_TOKEN", "github.token"),
        ("GITHUB_DEPLOY_TOKEN", "environment \"prod\": deploy.token"),
    ] {
        let written = format!("token = \"${{{var}}}\"");
        let f = tmp.path().join(format!("{var}.toml"));
        std::fs::write(
            &f,
            example.replace(&written, "token = \"ghp_pasted_by_mistake\""),
        )
        .unwrap();
        let (code, out) = cli(&["check-config", f.to_str().unwrap()], tmp.path());
        assert_eq!(code, 1, "{out}");
        let line = example
            .lines()
            .position(|l| l.starts_with(&written))
            .unwrap()
            + 1;
        let want = format!(":{line}: {prefix} must be a ${{NAME}} reference");
        assert!(out.contains(&want), "{want}: {out}");
        assert!(!out.contains("ghp_pasted_by_mistake"), "{out}");
    }
}
