//! The Friday freeze on prod, with the binary run under faketime at Friday 17:30 UTC.

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn friday_evening_freeze_refuses_and_break_glass_passes() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("greenlight.toml"), test_config("")).unwrap();
    let bot = Bot::start_in(tmp.path(), &["faketime", "-f", "@2026-11-27 17:30:00"]).await;

    let id = bot.say("alice", "/deploy v1.2.0 prod").await;
    let ans = bot.answer_to(&id).await;
    let t = text(&ans);
    assert!(
        t.contains("Production is frozen: \"No Friday deploys\""),
        "{t}"
    );
    assert!(
        t.contains("until Mon 2026-11-30 00:00 UTC"),
        "names when it ends: {t}"
    );
    assert_eq!(ans["visible_to"], "alice");

    let id = bot
        .say("bob", "/deploy v1.2.0 prod --force \"hotfix\"")
        .await;
    let t = text(&bot.answer_to(&id).await);
    assert!(
        t.contains("--force was refused: bob is not in the break-glass group"),
        "{t}"
    );
    assert_eq!(bot.get_json("/api/runs/1").await.0, 404);

    // staging is not frozen.
    let id = bot.say("bob", "/deploy why-not v1.2.0 staging").await;
    assert!(text(&bot.answer_to(&id).await).contains("Nothing stops v1.2.0 → Staging now"));

    bot.say("alice", "/deploy v1.2.0 prod --force \"hotfix\"")
        .await;
    let ann = bot
        .wait_for("announcement", SHORT, |m| m["channel"] == "announce")
        .await;
    let a = text(&ann);
    assert!(
        a.contains("Break-glass: @alice forced run 1") && a.contains("Reason: hotfix"),
        "{a}"
    );
    bot.wait_text(
        "📋 Pre-deployment checklist: v1.2.0 → Production (run 1)",
        SHORT,
    )
    .await;
    // Passing the freeze is audited.
    let (_, run) = bot.get_json("/api/runs/1").await;
    assert!(run["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["what"].as_str().unwrap().contains("forced past freeze")));
    // The forced run passes the re-check when the checklist completes.
    bot.approve_all(1, "bob").await;
    bot.wait_text("🚀 Deploying v1.2.0 to Production...", LONG)
        .await;
}
