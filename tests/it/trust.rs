//! The promises SREs buy greenlight for, tried the way they broke: a restart never changes a
//! verdict, a deadline survives a clock step, a reaction alias does not withdraw an approval,
//! and refusals say why without noise.

use crate::harness::*;
use std::time::Duration;

/// Staging with a monitoring interval long enough to stop the bot before the first check.
fn slow_checks() -> String {
    test_config("").replace(
        "[environments.staging.monitor]\nduration = \"4s\"\ninterval = \"1s\"",
        "[environments.staging.monitor]\nduration = \"12s\"\ninterval = \"3s\"",
    )
}

/// v1.2.0 stable on staging (run 1), then v1.3.0-faulty (run 2) approved.
async fn faulty_after_stable(bot: &Bot) {
    bot.say("alice", "/deploy v1.2.0 staging").await;
    bot.approve_all(1, "bob").await;
    bot.wait_text("Run 1 stable", LONG).await;
    bot.say("alice", "/deploy v1.3.0-faulty staging").await;
    bot.approve_all(2, "bob").await;
}

/// After the restart run 2 resumed monitoring, and rolled back: the faulty release is not live.
async fn rolled_back_after_restart(bot: &Bot) {
    bot.wait_text(
        "♻️ greenlight restarted: run 2 is monitoring v1.3.0-faulty on green; monitoring resumes.",
        SHORT,
    )
    .await;
    let end = bot
        .wait_for("run 2 over", LONG, |m| {
            let t = text(m);
            t.starts_with("⏪ Run 2 rolled back") || t.starts_with("✅ Run 2 stable")
        })
        .await;
    assert!(
        text(&end).starts_with("⏪ Run 2 rolled back"),
        "a restart never turns a failing release into a success: {}",
        text(&end)
    );
    let (_, run) = bot.get_json("/api/runs/2").await;
    assert_eq!(run["run"]["phase"], "rolled_back");
    let router = bot.router_url("staging").await;
    let (_, body) = bot.get_text(&format!("{router}/version")).await;
    assert!(body.contains("v1.2.0") && body.contains("blue"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_monitoring_of_a_failing_release_still_rolls_back() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("greenlight.toml"), slow_checks()).unwrap();
    let mut bot = Bot::start_in(tmp.path(), &[]).await;
    bot.say("alice", "/deploy v1.2.0 staging").await;
    bot.approve_all(1, "bob").await;
    bot.wait_text("Run 1 stable", LONG).await;
    bot.kill();
    // Killed at the instant the monitoring phase of run 2 is written, before any check.
    let mut bot = Bot::start_with(
        tmp.path(),
        &[],
        &[("GREENLIGHT_FAULT", "persisted:monitoring")],
    )
    .await;
    bot.say("alice", "/deploy v1.3.0-faulty staging").await;
    bot.approve_all_maybe(2, "bob").await;
    let deadline = std::time::Instant::now() + LONG;
    while !bot.exited() {
        assert!(
            std::time::Instant::now() < deadline,
            "the fault never fired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bot.restart().await;
    rolled_back_after_restart(&bot).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_monitoring_of_a_failing_release_still_rolls_back() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("greenlight.toml"), slow_checks()).unwrap();
    let mut old = Bot::start_in(tmp.path(), &[]).await;
    faulty_after_stable(&old).await;
    old.wait_text("✅ Deployment successful. Monitoring.", LONG)
        .await;
    old.wait_for("run 2 monitoring", LONG, |m| {
        text(m).starts_with("Run 2 status (monitoring)")
    })
    .await;
    // A clean stop well before the first check (3 s after the switch).
    let (status, _) = old.terminate();
    assert!(status.success(), "{status:?}");
    let bot = Bot::start_in(tmp.path(), &[]).await;
    rolled_back_after_restart(&bot).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_stepped_back_across_a_restart_does_not_stretch_monitoring() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("greenlight.toml"), slow_checks()).unwrap();
    let mut bot = Bot::start_in(tmp.path(), &["faketime", "-f", "@2026-12-02 10:00:00"]).await;
    bot.say("alice", "/deploy v1.2.0 staging").await;
    bot.approve_all(1, "bob").await;
    bot.wait_for("run 1 monitoring", LONG, |m| {
        text(m).starts_with("Run 1 status (monitoring)")
    })
    .await;
    bot.kill();
    // The wall clock is an hour earlier after the restart.
    let bot = Bot::start_in(tmp.path(), &["faketime", "-f", "@2026-12-02 09:00:30"]).await;
    bot.wait_text("♻️ greenlight restarted: run 1 is monitoring", SHORT)
        .await;
    // The window (12 s) ends within its length, not an hour later.
    let end = bot
        .wait_for("run 1 over", Duration::from_secs(30), |m| {
            let t = text(m);
            t.starts_with("✅ Run 1 stable") || t.starts_with("⚠️ Run 1")
        })
        .await;
    assert!(text(&end).starts_with("✅ Run 1 stable"), "{}", text(&end));
    let id = bot.say("carol", "/deploy status staging").await;
    let st = text(&bot.answer_to(&id).await);
    assert!(!st.contains("active run"), "staging is free again: {st}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_one_of_two_approving_emoji_keeps_the_approval() {
    let (bot, _tmp) = Bot::start(&test_config("")).await;
    bot.say("alice", "/deploy v1.2.0 staging").await;
    let (_, items) = bot.checklist_items(1).await;
    bot.react("bob", &items[0], "white_check_mark").await;
    bot.react("bob", &items[0], "+1").await;
    assert_eq!(
        bot.react_status(
            reqwest::Method::DELETE,
            "bob",
            &items[0],
            "white_check_mark"
        )
        .await,
        204
    );
    // 👍 is still there: the approval stands, and the checklist completes with item 2.
    let msgs = bot.messages().await;
    let line = msgs
        .iter()
        .find(|m| m["id"].as_str() == Some(items[0].as_str()))
        .map(text)
        .unwrap();
    assert!(
        line.starts_with("✅ 1.") && line.contains("by bob"),
        "{line}"
    );
    bot.react("bob", &items[1], "thumbsup").await;
    bot.wait_text("🚀 Deploying v1.2.0 to Staging...", SHORT)
        .await;
    let (_, run) = bot.get_json("/api/runs/1").await;
    assert!(!run["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["what"].as_str().unwrap().contains("withdrew")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_said_once_to_the_person_they_concern() {
    let (bot, _tmp) = Bot::start(&test_config("")).await;
    // alice approving her own run, five times over: told once, to her alone.
    bot.say("alice", "/deploy v1.2.0 staging").await;
    let (parent, items) = bot.checklist_items(1).await;
    for _ in 0..5 {
        bot.react("alice", &items[0], "white_check_mark").await;
        assert_eq!(
            bot.react_status(
                reqwest::Method::DELETE,
                "alice",
                &items[0],
                "white_check_mark"
            )
            .await,
            204
        );
    }
    let said = bot
        .wait_text(
            "alice's approval of \"CI passed: build, lint, test green\" does not count",
            SHORT,
        )
        .await;
    assert_eq!(said["visible_to"], "alice", "only the reactor sees it");
    assert_eq!(said["thread_id"].as_str(), Some(parent.as_str()));
    let msgs = bot.messages().await;
    assert!(
        !msgs
            .iter()
            .any(|m| m["visible_to"].is_null() && text(m).contains("does not count")),
        "nothing public about it:\n{}",
        transcript(&msgs)
    );

    // lock / unlock are announced once in the channel.
    bot.say("bob", "/deploy lock prod db maintenance").await;
    let ack = bot
        .wait_text(
            "🔒 Production is locked; announced in the deploys channel.",
            SHORT,
        )
        .await;
    assert_eq!(ack["visible_to"], "bob", "the confirmation is bob's only");
    bot.say("bob", "/deploy unlock prod").await;
    bot.wait_text("🔓 Production unlocked by @bob", SHORT).await;
    let msgs = bot.messages().await;
    assert_eq!(
        count(&msgs, "🔒 Production locked by @bob: db maintenance"),
        1
    );
    assert_eq!(count(&msgs, "🔓 Production unlocked by @bob"), 1);

    // A refusal of a well-formed command says why, without the usage line.
    let id = bot.say("bob", "/deploy v1.2.0 staging").await;
    let t = text(&bot.answer_to(&id).await);
    assert!(t.starts_with("Refused: run 1 is already active"), "{t}");
    assert!(!t.contains("Usage:"), "{t}");
    // Malformed input gets the usage, and a huge echo is clipped.
    let env = "x".repeat(10_000);
    let id = bot.say("bob", &format!("/deploy v1.2.0 {env}")).await;
    let t = text(&bot.answer_to(&id).await);
    assert!(t.contains("Usage:"), "{t}");
    assert!(
        t.len() < 600,
        "the 10,000-character name is not echoed whole ({} bytes)",
        t.len()
    );
}
