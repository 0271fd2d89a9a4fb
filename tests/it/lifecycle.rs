//! The staging lifecycle on the local channel: checklist, approvals, deploy, switch, stable;
//! self-approval, veto, lock, malformed input, and the local API's contract.

use crate::harness::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_goes_from_checklist_to_stable() {
    let (bot, _tmp) = Bot::start(&test_config("")).await;
    let cmd = bot.say("alice", "/deploy v1.2.0 staging").await;
    let parent = bot
        .wait_text(
            "📋 Pre-deployment checklist: v1.2.0 → Staging (run 1)",
            SHORT,
        )
        .await;
    let t = text(&parent);
    assert!(
        t.contains("@bob") && t.contains("@carol"),
        "reviewers are mentioned: {t}"
    );
    assert!(
        !t.contains("Reviewers: @alice"),
        "the requester is not asked to review: {t}"
    );
    let (pid, items) = bot.checklist_items(1).await;
    assert_eq!(items.len(), 2);
    assert!(pid.parse::<u64>().unwrap() > cmd.parse::<u64>().unwrap());

    bot.approve_all(1, "bob").await;
    bot.wait_text("🚀 Deploying v1.2.0 to Staging...", SHORT)
        .await;
    bot.wait_text("✅ Deployment successful. Monitoring.", LONG)
        .await;
    bot.wait_text("Run 1 stable", LONG).await;

    let msgs = bot.messages().await;
    // Lifecycle messages are top-level; progress lives in one edited status reply.
    for needle in [
        "🚀 Deploying v1.2.0 to Staging...",
        "✅ Deployment successful. Monitoring.",
    ] {
        let m = msgs.iter().find(|m| text(m) == needle).expect(needle);
        assert!(m["thread_id"].is_null(), "{needle} is top-level");
        assert_eq!(count(&msgs, needle), 1);
    }
    let status: Vec<_> = msgs
        .iter()
        .filter(|m| text(m).starts_with("Run 1 status"))
        .collect();
    assert_eq!(status.len(), 1, "one status message, edited in place");
    assert_eq!(status[0]["thread_id"].as_str(), Some(pid.as_str()));
    let st = text(status[0]);
    assert!(st.contains("Run 1 status (succeeded)"), "{st}");
    assert!(st.contains("smoke tests passed: login/auth works"), "{st}");
    assert!(
        st.contains("first deploy"),
        "the missing baseline is stated: {st}"
    );
    assert!(
        st.contains("✔ check 1: error rate"),
        "measured values are posted: {st}"
    );
    // The requester is mentioned at the end.
    let end = bot.wait_text("Run 1 stable", SHORT).await;
    assert!(text(&end).contains("@alice"));

    // status names the version; the router serves it.
    let id = bot.say("carol", "/deploy status staging").await;
    let ans = bot.answer_to(&id).await;
    assert!(text(&ans).contains("v1.2.0 live on blue"), "{}", text(&ans));
    let router = bot.router_url("staging").await;
    let (code, body) = bot.get_text(&format!("{router}/version")).await;
    assert_eq!(code, 200);
    assert!(body.contains("v1.2.0"), "{body}");

    // A second deploy goes to green, takes a baseline from blue, swaps the roles.
    bot.say("bob", "/deploy v1.2.1 staging").await;
    bot.approve_all(2, "alice").await;
    bot.wait_text("Run 2 stable", LONG).await;
    let msgs = bot.messages().await;
    let st2 = msgs
        .iter()
        .find(|m| text(m).starts_with("Run 2 status"))
        .map(text)
        .unwrap();
    assert!(st2.contains("📏 baseline from blue"), "{st2}");
    assert!(st2.contains("blue (v1.2.0) is idle, kept warm"), "{st2}");
    let (_, body) = bot.get_text(&format!("{router}/version")).await;
    assert!(body.contains("v1.2.1") && body.contains("green"), "{body}");
    let id = bot.say("carol", "/deploy status staging").await;
    let ans = text(&bot.answer_to(&id).await);
    assert!(
        ans.contains("v1.2.1 live on green; blue idle with v1.2.0"),
        "{ans}"
    );

    // history lists both runs, through the running bot's API.
    let (code, out) = cli(
        &[
            "history",
            "staging",
            "--config",
            bot.config.to_str().unwrap(),
            "--data",
            bot.dir.join("data").to_str().unwrap(),
            "--listen",
            bot.url.trim_start_matches("http://"),
        ],
        &bot.dir,
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("run 2: v1.2.1") && out.contains("run 1: v1.2.0"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_follow_the_rules_and_a_veto_is_final() {
    let (bot, _tmp) = Bot::start(&test_config("")).await;
    bot.say("alice", "/deploy v1.2.0 staging").await;
    let (pid, items) = bot.checklist_items(1).await;

    // alice's own approval does not count, and the thread says why.
    bot.react("alice", &items[0], "white_check_mark").await;
    let why = bot.wait_text("alice's approval of", SHORT).await;
    assert!(text(&why).contains("the requester cannot approve their own run"));
    assert_eq!(why["thread_id"].as_str(), Some(pid.as_str()));
    let msgs = bot.messages().await;
    assert!(
        text(msgs.iter().find(|m| m["id"] == items[0].as_str()).unwrap()).starts_with("⬜"),
        "item still open"
    );

    // An approval on the parent does not count either.
    bot.react("bob", &pid, "+1").await;
    bot.wait_text("approve each item's reply", SHORT).await;

    // carol approves item 1 (skin tone counts as the base emoji), then withdraws it.
    bot.react("carol", &items[0], "+1::skin-tone-3").await;
    bot.wait_for("item 1 approved", SHORT, |m| {
        text(m).starts_with("✅ 1.") && text(m).contains("by carol")
    })
    .await;
    assert_eq!(
        bot.react_status(reqwest::Method::DELETE, "carol", &items[0], "+1")
            .await,
        204
    );
    bot.wait_for("item 1 withdrawn", SHORT, |m| text(m).starts_with("⬜ 1."))
        .await;

    // A reaction that is neither approval nor veto is ignored.
    bot.react("bob", &items[1], "tada").await;

    // bob vetoes: the run ends, nothing is deployed.
    bot.react("bob", &items[1], "x").await;
    let veto = bot.wait_text("vetoed by @bob", SHORT).await;
    assert!(text(&veto).contains("@alice"), "the requester is told");
    bot.react("carol", &items[0], "white_check_mark").await;
    bot.wait_text("carol's reaction does not count", SHORT)
        .await;
    let msgs = bot.messages().await;
    assert_eq!(count(&msgs, "🚀 Deploying"), 0);
    let (_, run) = bot.get_json("/api/runs/1").await;
    assert_eq!(run["run"]["phase"], "vetoed");
    assert!(run["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["what"] == "vetoed" && e["who"] == "bob"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_refuses_deploys_until_unlocked() {
    let (bot, _tmp) = Bot::start(&test_config("")).await;
    let id = bot
        .say("carol", "/deploy lock staging db maintenance")
        .await;
    let ans = bot.answer_to(&id).await;
    assert!(
        text(&ans).contains("carol may not lock Staging"),
        "{}",
        text(&ans)
    );
    assert_eq!(ans["visible_to"], "carol");

    bot.say("bob", "/deploy lock staging db maintenance").await;
    bot.wait_text("🔒 Staging locked by @bob: db maintenance", SHORT)
        .await;
    let id = bot.say("alice", "/deploy v1.2.0 staging").await;
    let ans = bot.answer_to(&id).await;
    let t = text(&ans);
    assert!(
        t.contains("Refused") && t.contains("locked by bob") && t.contains("db maintenance"),
        "{t}"
    );
    assert_eq!(
        ans["visible_to"], "alice",
        "refusals are shown to the sender only"
    );
    let (code, _) = bot.get_json("/api/runs/1").await;
    assert_eq!(code, 404, "no run was created");

    // why-not lists the lock; dry-run creates nothing.
    let id = bot.say("alice", "/deploy why-not v1.2.0 staging").await;
    assert!(text(&bot.answer_to(&id).await).contains("locked by bob"));
    bot.say("bob", "/deploy unlock staging").await;
    bot.wait_text("🔓 Staging unlocked by @bob", SHORT).await;
    let id = bot.say("alice", "/deploy v1.2.0 staging --dry-run").await;
    let t = text(&bot.answer_to(&id).await);
    assert!(
        t.contains("Nothing stops v1.2.0 → Staging now") && t.contains("Dry run: no run created"),
        "{t}"
    );
    assert_eq!(bot.get_json("/api/runs/1").await.0, 404);

    bot.say("alice", "/deploy v1.2.0 staging").await;
    bot.wait_text("(run 1)", SHORT).await;
    // One active run per environment: the answer names it.
    let id = bot.say("bob", "/deploy v1.2.1 staging").await;
    let t = text(&bot.answer_to(&id).await);
    assert!(t.contains("run 1 is already active on Staging"), "{t}");
    // Cancel it.
    bot.say("bob", "/deploy cancel 1").await;
    bot.wait_text("🚫 Run 1 (v1.2.0 → Staging) cancelled by @bob", SHORT)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_gets_reason_and_usage_and_creates_nothing() {
    let (bot, _tmp) = Bot::start(&test_config("")).await;
    let cases = [
        ("/deploy", "missing version and environment"),
        ("/deploy 1.2 nowhere", "invalid version \"1.2\""),
        (
            "/deploy v1.2.0;rm -rf / prod",
            "invalid version \"v1.2.0;rm\"",
        ),
        (
            "/deploy v1.2.0 nowhere",
            "unknown environment \"nowhere\" (known: prod, staging)",
        ),
        ("/deploy v1.2.0 staging --yolo", "unknown option --yolo"),
        ("/deploy v1.2.0 staging --force", "--force needs a value"),
        ("/deploy cancel x", "is not a run number"),
        ("/rollback", "missing environment"),
        ("/deploy history nowhere", "unknown environment"),
    ];
    for (input, reason) in cases {
        let id = bot.say("alice", input).await;
        let ans = bot.answer_to(&id).await;
        let t = text(&ans);
        assert!(t.contains(reason), "{input}: {t}");
        assert!(t.contains("Usage: /"), "{input}: usage is given: {t}");
        assert!(!t.contains('\n'), "{input}: one line: {t}");
        assert_eq!(ans["visible_to"], "alice", "{input}");
    }
    assert_eq!(
        bot.get_json("/api/runs/1").await.0,
        404,
        "no run was created"
    );
    let msgs = bot.messages().await;
    assert_eq!(count(&msgs, "📋"), 0);

    // The local API's own errors: one line, JSON.
    let (s, b) = bot.post_raw(json!({"user": "mallory", "text": "hi"})).await;
    assert_eq!(s, 400);
    assert!(b["error"].as_str().unwrap().contains("unknown user"));
    let (s, b) = bot.post_raw(json!({"user": "alice"})).await;
    assert_eq!(s, 400, "missing field");
    assert!(b["error"].as_str().unwrap().contains("text"), "{b}");
    let (s, _) = bot
        .post_raw(json!({"user": "alice", "text": "x", "thread_id": "99999"}))
        .await;
    assert_eq!(s, 404);
    assert_eq!(
        bot.react_status(reqwest::Method::POST, "alice", "99999", "x")
            .await,
        404
    );
    assert_eq!(
        bot.react_status(reqwest::Method::POST, "mallory", "1", "x")
            .await,
        400
    );

    // Plain chat is stored and answered by nobody; threads work; reactions toggle.
    let id = bot.say("bob", "hello").await;
    let (s, b) = bot
        .post_raw(json!({"user": "carol", "text": "hi bob", "thread_id": id}))
        .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(
        bot.react_status(reqwest::Method::POST, "carol", &id, "wave")
            .await,
        201
    );
    assert_eq!(
        bot.react_status(reqwest::Method::POST, "carol", &id, "wave")
            .await,
        200
    );
    let msgs = bot.messages().await;
    let m = msgs.iter().find(|m| m["id"] == id.as_str()).unwrap();
    assert_eq!(
        m["reactions"],
        json!([{"emoji": "wave", "users": ["carol"]}])
    );
    let reply = msgs.iter().find(|m| text(m) == "hi bob").unwrap();
    assert_eq!(reply["thread_id"].as_str(), Some(id.as_str()));
    assert!(
        reply["ts"].as_str().unwrap().ends_with('Z')
            || reply["ts"].as_str().unwrap().contains("+00:00")
    );
    assert_eq!(reply["channel"], "deploys");
    assert!(reply["visible_to"].is_null());
}
