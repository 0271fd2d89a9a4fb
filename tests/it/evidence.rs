//! Whole runs on the local channel with a checklist item ticked by CI evidence, read from the
//! fake GitHub (and GitLab): green ticks itself and the deploy proceeds once people approved the
//! rest; red stays open, a reviewer's ✅ does not tick it, break-glass with a reason does
//! (audited, announced); pending is read again until green; no checks at all and an API that
//! is down are said, and never tick.

use crate::fake_github_checks::{self as gh, FakeGithubChecks};
use crate::fake_gitlab_pipelines::{self as gl, FakeGitlabPipelines};
use crate::harness::*;
use serde_json::Value;

const SHA: &str = "5f3e1c2b9a8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f";

/// The test config with a third staging item ticked by CI from `forge` (a `[github]` or
/// `[gitlab]` section).
fn config(forge: &str) -> String {
    test_config(&format!(
        r#"
{forge}

[[environments.staging.checklist]]
text = "CI green"
evidence = "ci"
required = ["build", "test"]
recheck = "1s"
"#
    ))
}

async fn start_github(f: &FakeGithubChecks) -> (Bot, tempfile::TempDir) {
    let forge = format!(
        "[github]\napi_url = \"{}\"\ntoken = \"${{GH_TOKEN}}\"\nrepo = \"{}\"",
        f.url,
        gh::REPO
    );
    start(&config(&forge), ("GH_TOKEN", gh::TOKEN)).await
}

async fn start(cfg: &str, token: (&str, &str)) -> (Bot, tempfile::TempDir) {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("greenlight.toml"), cfg).expect("write config");
    let bot = Bot::start_with(tmp.path(), &[], &[token]).await;
    (bot, tmp)
}

/// The CI item's line of run 1 once it says `needle`.
async fn ci_line(bot: &Bot, needle: &str) -> Value {
    let n = needle.to_string();
    bot.wait_for(needle, LONG, move |m| {
        let t = text(m);
        t.contains("3. CI green") && t.contains(&n)
    })
    .await
}

/// No deploy started (and none will, from what is in the channel now).
async fn not_deployed(bot: &Bot) {
    let msgs = bot.messages().await;
    assert_eq!(count(&msgs, "🚀 Deploying"), 0, "{}", transcript(&msgs));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn green_ci_ticks_its_item_and_the_deploy_proceeds() {
    let f = FakeGithubChecks::start().await;
    f.tag("v1.2.0", SHA);
    f.run(SHA, "build", "completed", Some("success"));
    f.run(SHA, "test", "completed", Some("success"));
    f.status(SHA, "ci/jenkins", "success");
    let (bot, _tmp) = start_github(&f).await;
    bot.say("alice", "/deploy v1.2.0 staging").await;
    let line = ci_line(&bot, "green at 5f3e1c2").await;
    assert_eq!(
        text(&line),
        "✅ 3. CI green: CI for v1.2.0 is green at 5f3e1c2: build, test, ci/jenkins"
    );
    // The people's items are still theirs.
    bot.approve_all(1, "bob").await;
    bot.wait_text("🚀 Deploying v1.2.0 to Staging...", LONG)
        .await;
    bot.wait_text("Run 1 stable", LONG).await;
    // Pinned to the commit: the check runs of that sha were read.
    assert!(f
        .seen()
        .iter()
        .any(|p| p.contains(&format!("commits/{SHA}/check-runs"))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn red_ci_stays_open_until_break_glass_overrides_it_with_a_reason() {
    let f = FakeGithubChecks::start().await;
    f.tag("v1.2.0", SHA);
    f.run(SHA, "build", "completed", Some("success"));
    f.run(SHA, "test", "completed", Some("failure"));
    let (bot, _tmp) = start_github(&f).await;
    bot.say("bob", "/deploy v1.2.0 staging").await;
    let line = ci_line(&bot, "is red").await;
    assert!(
        text(&line).starts_with("⛔ 3. CI green: CI for v1.2.0 is red at 5f3e1c2: test failure"),
        "{}",
        text(&line)
    );
    // A reviewer's ✅ does not tick it, and carol is told why.
    bot.react("carol", line["id"].as_str().unwrap(), "white_check_mark")
        .await;
    bot.wait_text("CI evidence ticks this item by itself", LONG)
        .await;
    bot.approve_all(1, "carol").await;
    // Still red after being read again: nothing deploys.
    let read = f
        .seen()
        .iter()
        .filter(|p| p.contains("/check-runs"))
        .count();
    f.wait_requests("/check-runs", read + 1).await;
    not_deployed(&bot).await;

    // Not break-glass: refused. Break-glass with a reason: ticked, audited and announced.
    let id = bot.say("carol", "/deploy override 1 3 \"trust me\"").await;
    let ans = bot.answer_to(&id).await;
    assert!(
        text(&ans).contains("only members of break-glass"),
        "{}",
        text(&ans)
    );
    bot.say(
        "alice",
        "/deploy override 1 3 \"flaky test, verified by hand: INC-7\"",
    )
    .await;
    let note = bot
        .wait_text("ticked item 3 \"CI green\" of run 1", LONG)
        .await;
    let t = text(&note);
    assert!(
        t.contains("CI was red at 5f3e1c2: test failure")
            && t.contains("Reason: flaky test, verified by hand: INC-7"),
        "{t}"
    );
    let msgs = bot.messages().await;
    assert!(
        msgs.iter()
            .any(|m| m["channel"] == "announce" && text(m).contains("ticked item 3")),
        "announced: {}",
        transcript(&msgs)
    );
    ci_line(&bot, "overridden by alice (break-glass)").await;
    bot.wait_text("🚀 Deploying v1.2.0 to Staging...", LONG)
        .await;
    // The audit log has it, with who.
    let (code, page) = bot.get_json("/api/runs/1").await;
    assert_eq!(code, 200);
    let events = page["events"].as_array().unwrap();
    assert!(
        events.iter().any(|e| e["who"] == "alice"
            && e["what"] == "break-glass override of item 3: flaky test, verified by hand: INC-7"),
        "{page}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["what"] == "evidence for item 3: red at 5f3e1c2: test failure"),
        "{page}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_ci_is_read_again_until_green() {
    let f = FakeGithubChecks::start().await;
    f.tag("v1.2.0", SHA);
    f.run(SHA, "build", "completed", Some("success"));
    f.run(SHA, "test", "in_progress", None);
    let (bot, _tmp) = start_github(&f).await;
    bot.say("alice", "/deploy v1.2.0 staging").await;
    bot.approve_all(1, "bob").await;
    ci_line(&bot, "pending at 5f3e1c2: waiting for test").await;
    not_deployed(&bot).await;
    f.run(SHA, "test", "completed", Some("success"));
    ci_line(&bot, "green at 5f3e1c2: build, test").await;
    bot.wait_text("🚀 Deploying v1.2.0 to Staging...", LONG)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_checks_at_all_and_an_api_that_is_down_never_tick() {
    let f = FakeGithubChecks::start().await;
    f.tag("v1.2.0", SHA);
    let (bot, _tmp) = start_github(&f).await;
    bot.say("alice", "/deploy v1.2.0 staging").await;
    bot.approve_all(1, "bob").await;
    let line = ci_line(&bot, "no CI evidence").await;
    assert!(
        text(&line).contains("no checks or statuses report on commit 5f3e1c2"),
        "{}",
        text(&line)
    );
    f.set_down(true);
    let line = ci_line(&bot, "could not be read").await;
    assert!(text(&line).contains("GitHub: 503"), "{}", text(&line));
    not_deployed(&bot).await;
    bot.say("alice", "/deploy cancel 1").await;
    bot.wait_text("cancelled", LONG).await;
    not_deployed(&bot).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_pipeline_jobs_tick_the_item() {
    let f = FakeGitlabPipelines::start().await;
    f.tag("v1.2.0", SHA);
    f.pipeline(
        SHA,
        41,
        "success",
        &[
            ("build", "success", false),
            ("test", "success", false),
            ("lint", "failed", true),
        ],
    );
    let forge = format!(
        "[gitlab]\napi_url = \"{}\"\ntoken = \"${{GL_TOKEN}}\"\nproject = \"{}\"",
        f.url,
        gl::PROJECT
    );
    let (bot, _tmp) = start(&config(&forge), ("GL_TOKEN", gl::TOKEN)).await;
    bot.say("alice", "/deploy v1.2.0 staging").await;
    let line = ci_line(&bot, "green at 5f3e1c2").await;
    assert!(
        text(&line).contains("build, test, lint (failed, allowed to fail)"),
        "{}",
        text(&line)
    );
}

#[test]
fn the_ci_evidence_example_passes_check_config() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = root.join("config/examples/ci-evidence.toml");
    let (code, out) = cli(&["check-config", example.to_str().unwrap()], root);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok (1 environments"), "{out}");
}
