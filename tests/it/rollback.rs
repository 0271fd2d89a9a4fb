//! Automatic rollback on the demo environment: a faulty version (error rate), a slow version
//! (latency), and `/rollback` by hand; the pre-switch failure path of a broken deploy.

use crate::harness::*;

async fn stable_v120(bot: &Bot) {
    bot.say("alice", "/deploy v1.2.0 staging").await;
    bot.approve_all(1, "bob").await;
    bot.wait_text("Run 1 stable", LONG).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_faulty_version_is_rolled_back_with_the_measured_error_rate() {
    let (bot, _tmp) = Bot::start(&test_config("")).await;
    stable_v120(&bot).await;
    let router = bot.router_url("staging").await;

    bot.say("bob", "/deploy v1.3.0-faulty staging").await;
    bot.approve_all(2, "carol").await;
    let fail = bot
        .wait_text("❌ Deployment failed. Rolling back. Reason:", LONG)
        .await;
    let t = text(&fail);
    assert!(
        t.contains("error rate") && t.contains("is above the 1.0% threshold"),
        "{t}"
    );
    assert!(fail["thread_id"].is_null());
    let alert = bot
        .wait_for("incident alert", LONG, |m| m["channel"] == "incidents")
        .await;
    let a = text(&alert);
    for needle in [
        "v1.3.0-faulty",
        "run 2",
        "error rate",
        "approved by carol",
        "locked",
        "/runs/2",
        "database was not touched",
    ] {
        assert!(a.contains(needle), "alert names {needle}: {a}");
    }
    bot.wait_text("Run 2 rolled back", LONG).await;
    // Traffic is back on the previous version.
    let (_, body) = bot.get_text(&format!("{router}/version")).await;
    assert!(body.contains("v1.2.0") && body.contains("blue"), "{body}");
    // Locked with that reason until someone unlocks.
    let id = bot.say("alice", "/deploy v1.2.1 staging").await;
    let r = text(&bot.answer_to(&id).await);
    assert!(
        r.contains("locked by greenlight") && r.contains("rollback of v1.3.0-faulty (run 2)"),
        "{r}"
    );
    let (_, run) = bot.get_json("/api/runs/2").await;
    assert_eq!(run["run"]["phase"], "rolled_back");
    assert_eq!(run["run"]["switch_intents"], 1);
    assert_eq!(run["run"]["switch_back_intents"], 1);
    let (_, m) = bot.get_text(&format!("{}/metrics", bot.url)).await;
    assert!(
        m.contains("greenlight_rollbacks_total{env=\"staging\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("greenlight_runs_total{env=\"staging\",outcome=\"rolled_back\"} 1"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_version_is_rolled_back_on_latency() {
    let (bot, _tmp) = Bot::start(&test_config("")).await;
    stable_v120(&bot).await;
    bot.say("bob", "/deploy v1.3.0-slow staging").await;
    bot.approve_all(2, "carol").await;
    let fail = bot
        .wait_text("❌ Deployment failed. Rolling back. Reason:", LONG)
        .await;
    let t = text(&fail);
    assert!(
        t.contains("p99 latency") && t.contains("more than 200% above the baseline"),
        "{t}"
    );
    bot.wait_for("incident alert", LONG, |m| {
        m["channel"] == "incidents" && text(m).contains("v1.3.0-slow")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_by_hand_switches_back_to_the_warm_colour() {
    let (bot, _tmp) = Bot::start(&test_config("")).await;
    stable_v120(&bot).await;
    let id = bot.say("carol", "/rollback staging").await;
    assert!(text(&bot.answer_to(&id).await).contains("carol may not roll back Staging"));
    let id = bot.say("bob", "/rollback staging").await;
    assert!(text(&bot.answer_to(&id).await).contains("nothing to roll back to"));

    bot.say("alice", "/deploy v1.2.1 staging").await;
    bot.approve_all(2, "bob").await;
    bot.wait_text("Run 2 stable", LONG).await;
    let router = bot.router_url("staging").await;
    // A lock does not block a rollback: getting back to safety is never blocked.
    bot.say("bob", "/deploy lock staging investigating").await;
    bot.say("bob", "/rollback staging checkout errors").await;
    bot.wait_text("⏪ Rolling back Staging to v1.2.0 (run 3). Reason: manual rollback by bob: checkout errors", SHORT).await;
    bot.wait_text("Run 3 rolled back", LONG).await;
    let (_, body) = bot.get_text(&format!("{router}/version")).await;
    assert!(body.contains("v1.2.0") && body.contains("blue"), "{body}");
    bot.wait_for("incident alert", SHORT, |m| {
        m["channel"] == "incidents" && text(m).contains("run 3")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_smoke_test_never_switches_traffic() {
    // The smoke test expects a body the demo app never returns.
    let cfg = test_config("").replace(
        "name = \"main dashboard loads\"",
        "name = \"main dashboard loads\"\nexpect_body_contains = \"no-such-widget\"",
    );
    let (bot, _tmp) = Bot::start(&cfg).await;
    bot.say("alice", "/deploy v1.2.0 staging").await;
    bot.approve_all(1, "bob").await;
    let m = bot.wait_text("❌ Deployment failed. Reason:", LONG).await;
    let t = text(&m);
    assert!(
        t.contains("smoke test \"main dashboard loads\" failed"),
        "{t}"
    );
    assert!(
        t.ends_with("Live traffic was never switched: nothing was live before this deploy."),
        "{t}"
    );
    let msgs = bot.messages().await;
    assert_eq!(count(&msgs, "✅ Deployment successful"), 0);
    let (_, run) = bot.get_json("/api/runs/1").await;
    assert_eq!(run["run"]["phase"], "failed");
    assert_eq!(run["run"]["switch_intents"], 0);
}
