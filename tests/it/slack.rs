//! greenlight in Slack: the real slack-morphism code inside the binary against the fake Slack
//! (Web API, Socket Mode, response URLs) on 127.0.0.1, and signed HTTP mode.

use crate::fake_slack::{FakeSlack, Fault, Outage};
use crate::harness::*;
use std::time::Duration;

const STAGING: &str = "C02STAGING";
const INCIDENTS: &str = "C01INCIDENT";

fn slack_config(api_url: &str, mode: &str) -> String {
    test_config("")
        .replace("[users.alice]\n", "[users.alice]\nslack = \"U01ALICE\"\n")
        .replace("[users.bob]\n", "[users.bob]\nslack = \"U01BOB\"\n")
        .replace("[users.carol]\n", "[users.carol]\nslack = \"U01CAROL\"\n")
        .replace(
            "[environments.staging]\n",
            &format!("[environments.staging]\nslack_channel = \"{STAGING}\"\nslack_incident_channel = \"{INCIDENTS}\"\n"),
        )
        .replace("[bot]\n", &format!("[slack]\nmode = \"{mode}\"\napi_url = \"{api_url}\"\n\n[bot]\n"))
}

async fn start_bot(fake: &FakeSlack, dir: &std::path::Path) -> Bot {
    std::fs::write(
        dir.join("greenlight.toml"),
        slack_config(&fake.api_url(), "socket"),
    )
    .unwrap();
    Bot::start_with(
        dir,
        &[],
        &[
            ("SLACK_BOT_TOKEN", "xoxb-test"),
            ("SLACK_APP_TOKEN", "xapp-test"),
        ],
    )
    .await
}

/// The checklist parent and its item replies in Slack, once posted.
async fn checklist(fake: &FakeSlack, run: u64) -> (String, Vec<String>) {
    let needle = format!("(run {run})");
    let parent = fake
        .wait_message("the checklist", LONG, |m| {
            m.text.contains(&needle) && m.thread_ts.is_none()
        })
        .await;
    let items = fake
        .wait_for("the checklist items", LONG, |f| {
            let t = f.thread(STAGING, &parent.ts);
            let items: Vec<String> = t
                .iter()
                .filter(|m| m.text.starts_with('⬜') || m.text.starts_with('✅'))
                .map(|m| m.ts.clone())
                .collect();
            (items.len() == 2).then_some(items)
        })
        .await;
    (parent.ts, items)
}

async fn top(fake: &FakeSlack, text: &str) -> crate::fake_slack::FakeMessage {
    let t = text.to_string();
    fake.wait_message(text, LONG, move |m| {
        m.channel == STAGING && m.thread_ts.is_none() && m.text == t
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_staging_lifecycle_in_slack() {
    let fake = FakeSlack::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let mut bot = start_bot(&fake, tmp.path()).await;
    fake.wait_connected(1, SHORT).await;

    // A 429 on the first post: delivered after Retry-After.
    fake.fail_next(
        "chat.postMessage",
        Fault::RateLimited {
            retry_after_secs: 1,
        },
    );
    let env1 = fake.slash_command("U01ALICE", STAGING, "/deploy", "v1.2.0 staging");
    fake.wait_acked(&env1, SHORT).await;
    // A redelivered envelope acts once.
    fake.redeliver(&env1);
    let (parent, items) = checklist(&fake, 1).await;
    // The 429 really happened, and the same message was posted again at least a second later.
    let posts: Vec<_> = fake
        .api_calls()
        .into_iter()
        .filter(|c| c.method == "chat.postMessage")
        .collect();
    let limited = posts
        .iter()
        .position(|c| matches!(c.fault, Some(Fault::RateLimited { .. })))
        .expect("a rate-limited post");
    let retry = &posts[limited + 1];
    assert_eq!(
        retry.body["text"], posts[limited].body["text"],
        "the limited message is retried first (in order)"
    );
    assert!(
        retry.at.duration_since(posts[limited].at) >= Duration::from_millis(900),
        "Retry-After honoured"
    );
    let p = fake.message(STAGING, &parent).unwrap();
    assert!(
        p.text
            .contains("📋 Pre-deployment checklist: v1.2.0 → Staging (run 1)"),
        "{}",
        p.text
    );
    assert!(
        p.text.contains("<@U01BOB>") && p.text.contains("<@U01CAROL>"),
        "reviewers mentioned with Slack ids: {}",
        p.text
    );
    let item = fake.message(STAGING, &items[0]).unwrap();
    assert!(
        item.blocks.to_string().contains("greenlight_approve"),
        "items carry Approve / Veto buttons"
    );

    // Self-approval does not count, and alice alone is told why, in the thread.
    fake.reaction("U01ALICE", STAGING, &items[0], "white_check_mark", true);
    let e = fake
        .wait_for("self-approval refused", LONG, |f| {
            f.ephemerals()
                .into_iter()
                .find(|e| e.text.contains("cannot approve their own run"))
        })
        .await;
    assert_eq!(e.user, "U01ALICE");
    assert_eq!(e.thread_ts.as_deref(), Some(parent.as_str()));
    assert!(
        !fake
            .messages()
            .iter()
            .any(|m| m.text.contains("cannot approve their own run")),
        "nothing public about it"
    );
    // An ineligible click is answered to the clicker only.
    fake.block_action("U01ALICE", STAGING, &items[1], "greenlight_approve");
    fake.wait_for("ephemeral refusal", LONG, |f| {
        f.responses().into_iter().find(|r| {
            r.text().contains("cannot approve their own run")
                && r.response_type() == Some("ephemeral")
        })
    })
    .await;

    // bob approves item 1 with a reaction, carol item 2 with the button.
    fake.reaction("U01BOB", STAGING, &items[0], "+1", true);
    fake.block_action("U01CAROL", STAGING, &items[1], "greenlight_approve");
    top(&fake, "🚀 Deploying v1.2.0 to Staging...").await;
    top(&fake, "✅ Deployment successful. Monitoring.").await;

    // Restarted while monitoring: messages still delivered, the run resumes.
    bot.restart().await;
    fake.wait_connected(2, LONG).await;
    fake.wait_message("resume note", LONG, |m| {
        m.thread_ts.as_deref() == Some(parent.as_str())
            && m.text.contains("♻️ greenlight restarted")
    })
    .await;
    fake.wait_message("stable", LONG, |m| {
        m.text.contains("Run 1 stable") && m.text.contains("<@U01ALICE>")
    })
    .await;
    let status = fake
        .wait_message("status", LONG, |m| {
            m.text.starts_with("Run 1 status (succeeded)")
        })
        .await;
    assert!(status.edits > 0, "the status message is edited in place");
    assert_eq!(status.thread_ts.as_deref(), Some(parent.as_str()));
    let checklists = fake
        .messages()
        .into_iter()
        .filter(|m| m.text.contains("Pre-deployment checklist"))
        .count();
    assert_eq!(checklists, 1, "the redelivered command acted once");
    assert_eq!(
        fake.messages()
            .iter()
            .filter(|m| m.text == "🚀 Deploying v1.2.0 to Staging...")
            .count(),
        1
    );

    // /deploy status answers through the response URL.
    fake.slash_command("U01CAROL", STAGING, "/deploy", "status staging");
    fake.wait_for("status answer", LONG, |f| {
        f.responses()
            .into_iter()
            .find(|r| r.text().contains("v1.2.0 live on blue"))
    })
    .await;

    // A disconnect frame: the bot reconnects and keeps working.
    let before = fake.connections();
    fake.disconnect();
    fake.wait_connected(before + 1, LONG).await;

    // A faulty version: rollback, incident alert.
    fake.slash_command("U01BOB", STAGING, "/deploy", "v1.3.0-faulty staging");
    let (_, items) = checklist(&fake, 2).await;
    for i in &items {
        fake.reaction("U01CAROL", STAGING, i, "white_check_mark", true);
    }
    let fail = fake
        .wait_message("rollback", LONG, |m| {
            m.channel == STAGING
                && m.text
                    .starts_with("❌ Deployment failed. Rolling back. Reason:")
        })
        .await;
    assert!(fail.text.contains("error rate"), "{}", fail.text);
    let alert = fake
        .wait_message("incident alert", LONG, |m| m.channel == INCIDENTS)
        .await;
    assert!(
        alert.text.contains("v1.3.0-faulty") && alert.text.contains("locked"),
        "{}",
        alert.text
    );
    let (_, m) = bot.get_text(&format!("{}/metrics", bot.url)).await;
    assert!(
        m.contains("greenlight_platform_connected{platform=\"slack\"} 1"),
        "{m}"
    );
    assert!(m.contains("greenlight_outbox_depth"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_ephemeral_and_unknown_users_are_told() {
    let fake = FakeSlack::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let _bot = start_bot(&fake, tmp.path()).await;
    fake.wait_connected(1, SHORT).await;
    fake.slash_command("U01ALICE", STAGING, "/deploy", "1.2 nowhere");
    let r = fake
        .wait_for("usage error", LONG, |f| {
            f.responses()
                .into_iter()
                .find(|r| r.text().contains("invalid version"))
        })
        .await;
    assert_eq!(r.response_type(), Some("ephemeral"));
    assert!(r.text().contains("Usage: /deploy"));
    fake.slash_command("U09NOBODY", STAGING, "/deploy", "v1.2.0 staging");
    let r = fake
        .wait_for("unknown user", LONG, |f| {
            f.responses()
                .into_iter()
                .find(|r| r.text().contains("does not know slack user U09NOBODY"))
        })
        .await;
    assert_eq!(r.response_type(), Some("ephemeral"));
    assert!(
        !fake
            .messages()
            .iter()
            .any(|m| m.text.contains("Pre-deployment checklist")),
        "nothing was created"
    );
}

fn sign(secret: &str, ts: i64, body: &str) -> String {
    // The documented algorithm, computed with openssl (an independent implementation).
    let out = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", secret])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(format!("v0:{ts}:{body}").as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    let hex = String::from_utf8_lossy(&out.stdout)
        .trim()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string();
    format!("v0={hex}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_mode_checks_signatures_windows_and_replays() {
    let fake = FakeSlack::start().await;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("greenlight.toml"),
        slack_config(&fake.api_url(), "http"),
    )
    .unwrap();
    let secret = "8f742231b10e8888abcd99yyyzzz85a5";
    let bot = Bot::start_with(
        tmp.path(),
        &[],
        &[
            ("SLACK_BOT_TOKEN", "xoxb-test"),
            ("SLACK_SIGNING_SECRET", secret),
        ],
    )
    .await;
    let http = reqwest::Client::new();
    let response_url = format!("{}/response/900", fake.base_url().trim_end_matches('/'));
    let encoded = response_url.replace(':', "%3A").replace('/', "%2F");
    let form = |text: &str, trigger: &str| {
        format!(
            "token=x&team_id=T01&team_domain=fake&channel_id={STAGING}&channel_name=staging&user_id=U01ALICE&user_name=alice&command=%2Fdeploy&text={}&api_app_id=A01&is_enterprise_install=false&response_url={encoded}&trigger_id={trigger}",
            text.replace(' ', "+"),
        )
    };
    let send = |body: String, ts: i64, sig: String, path: &'static str| {
        let (http, url) = (http.clone(), bot.url.clone());
        async move {
            http.post(format!("{url}{path}"))
                .header("content-type", "application/x-www-form-urlencoded")
                .header("x-slack-request-timestamp", ts.to_string())
                .header("x-slack-signature", sig)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let now = chrono::Utc::now().timestamp();

    // A wrong signature, a stale timestamp: 401, no effect.
    let body = form("v1.2.0 staging", "t1");
    assert_eq!(
        send(
            body.clone(),
            now,
            sign("wrong-secret", now, &body),
            "/slack/commands"
        )
        .await,
        401
    );
    assert_eq!(
        send(
            body.clone(),
            now - 600,
            sign(secret, now - 600, &body),
            "/slack/commands"
        )
        .await,
        401
    );
    assert_eq!(bot.get_json("/api/runs/1").await.0, 404);

    // Signed with the real algorithm: accepted, the run exists when the answer comes.
    let sig = sign(secret, now, &body);
    assert_eq!(
        send(body.clone(), now, sig.clone(), "/slack/commands").await,
        200
    );
    assert_eq!(bot.get_json("/api/runs/1").await.0, 200);
    // The same timestamp and signature again: a replay.
    assert_eq!(send(body.clone(), now, sig, "/slack/commands").await, 401);
    // A Slack retry is signed afresh: 200, and no second run.
    let later = now + 1;
    assert_eq!(
        send(
            body.clone(),
            later,
            sign(secret, later, &body),
            "/slack/commands"
        )
        .await,
        200
    );
    assert_eq!(
        bot.get_json("/api/runs/2").await.0,
        404,
        "the retry acted once"
    );
    fake.wait_message("checklist", LONG, |m| m.text.contains("(run 1)"))
        .await;

    // url_verification is answered.
    let ev = r#"{"token":"x","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let r = http
        .post(format!("{}/slack/events", bot.url))
        .header("x-slack-request-timestamp", now.to_string())
        .header("x-slack-signature", sign(secret, now, ev))
        .body(ev)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"));
}

/// Polls `/readyz` until `pred(status, body)` holds; returns them.
async fn wait_readyz(bot: &Bot, what: &str, pred: impl Fn(u16, &str) -> bool) -> (u16, String) {
    let deadline = std::time::Instant::now() + LONG;
    loop {
        let (code, body) = bot.get_text(&format!("{}/readyz", bot.url)).await;
        if pred(code, &body) {
            return (code, body);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for /readyz: {what}; last answer {code} {body}\n{}",
            bot.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn metrics(bot: &Bot) -> String {
    bot.get_text(&format!("{}/metrics", bot.url)).await.1
}

fn is_ready(code: u16, body: &str) -> bool {
    code == 200 && body == "ready\n"
}

/// One line: "not ready: ..." and a newline.
fn one_line_reason(body: &str) -> bool {
    body.starts_with("not ready: ") && body.ends_with('\n') && body.trim_end().lines().count() == 1
}

const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

/// A slash command signed as Slack signs it, posted to the bot in HTTP mode; the status.
async fn signed_command(bot: &Bot, text: &str, trigger: &str, response_url: &str) -> u16 {
    let encoded = response_url.replace(':', "%3A").replace('/', "%2F");
    let body = format!(
        "token=x&team_id=T01&team_domain=fake&channel_id={STAGING}&channel_name=staging&user_id=U01ALICE&user_name=alice&command=%2Fdeploy&text={}&api_app_id=A01&is_enterprise_install=false&response_url={encoded}&trigger_id={trigger}",
        text.replace(' ', "+"),
    );
    let now = chrono::Utc::now().timestamp();
    reqwest::Client::new()
        .post(format!("{}/slack/commands", bot.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", now.to_string())
        .header("x-slack-signature", sign(SECRET, now, &body))
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_mode_is_not_ready_while_the_slack_api_fails_and_ready_once_it_delivers() {
    let fake = FakeSlack::start().await;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("greenlight.toml"),
        slack_config(&fake.api_url(), "http"),
    )
    .unwrap();
    let bot = Bot::start_with(
        tmp.path(),
        &[],
        &[
            ("SLACK_BOT_TOKEN", "xoxb-test"),
            ("SLACK_SIGNING_SECRET", SECRET),
        ],
    )
    .await;
    wait_readyz(&bot, "ready at start", is_ready).await;

    // Slack answers 503 to everything: the command is taken (its state written), its messages
    // wait in the outbox, and /readyz says why.
    fake.set_outage(Some(Outage::Status(503)));
    let url = fake.response_url(STAGING, "U01ALICE");
    assert_eq!(
        signed_command(&bot, "v1.2.0 staging", "t1", &url).await,
        200
    );
    let (_, body) = wait_readyz(&bot, "not ready: the API answers 503", |code, body| {
        code == 503 && body.contains("slack: cannot deliver since ")
    })
    .await;
    assert!(one_line_reason(&body), "{body:?}");
    assert!(body.contains("HTTP 503"), "{body}");
    let waiting = messages_waiting(&body);
    assert!(waiting > 1, "the checklist and the answer wait: {body}");
    assert!(fake.refused_calls() > 0);
    let m = metrics(&bot).await;
    assert!(
        m.contains("greenlight_outbox_stalled{platform=\"slack\"} 1"),
        "{m}"
    );
    // The depth gauge is recounted at most once a second: it gets there (and once it has
    // left 0, a 0 below means the outbox really was emptied).
    wait_outbox_depth(&bot, waiting).await;
    assert!(fake.messages().is_empty(), "nothing got through");
    assert!(fake.responses().is_empty(), "nothing got through");

    // Slack is back: the outbox drains and the bot is ready again. /readyz is ready as soon as
    // one delivery goes through (the outbox is draining), not once it is empty: what was queued
    // (the checklist, then the command's answer) keeps arriving after it.
    fake.set_outage(None);
    wait_readyz(&bot, "ready after the 503s", is_ready).await;
    checklist(&fake, 1).await;
    let answered = fake
        .wait_for("the answer to the deploy", LONG, |f| {
            f.responses().into_iter().find(|r| r.url_id == url_id(&url))
        })
        .await;
    assert!(answered.text().contains("Run 1: v1.2.0"), "{answered:?}");
    // Delivered and recorded as such: the outbox is empty before Slack goes away again, so
    // below exactly one message (the status answer) waits. The fake having the answer is not
    // enough: the cut below could still reset the connection before the bot reads the 200.
    wait_outbox_depth(&bot, 0).await;
    let m = metrics(&bot).await;
    assert!(
        m.contains("greenlight_outbox_stalled{platform=\"slack\"} 0"),
        "{m}"
    );

    // Slack unreachable: open connections cut, new ones closed before any answer.
    fake.set_outage(Some(Outage::Unreachable));
    let url = fake.response_url(STAGING, "U01ALICE");
    assert_eq!(
        signed_command(&bot, "status staging", "t2", &url).await,
        200
    );
    let (_, body) = wait_readyz(&bot, "not ready: the API is unreachable", |code, body| {
        code == 503 && body.contains("slack: cannot deliver since ")
    })
    .await;
    assert!(one_line_reason(&body), "{body:?}");
    assert!(body.contains("response_url: "), "{body}");
    assert!(body.contains("1 message waiting"), "{body}");
    fake.set_outage(None);
    wait_readyz(&bot, "ready after the outage", is_ready).await;
    let status = fake
        .wait_for("the status answer", LONG, |f| {
            f.responses().into_iter().find(|r| r.url_id == url_id(&url))
        })
        .await;
    assert!(status.text().contains("v1.2.0"), "{status:?}");
}

/// The N of "N message(s) waiting" in a /readyz answer.
fn messages_waiting(body: &str) -> usize {
    let (before, _) = body
        .split_once(" message")
        .unwrap_or_else(|| panic!("no count of messages waiting: {body:?}"));
    before
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of messages waiting: {body:?}"))
}

/// The N of a fake `response_url` (`.../response/N`).
fn url_id(url: &str) -> u64 {
    url.rsplit('/').next().unwrap().parse().unwrap()
}

/// Waits until `/metrics` shows `n` Slack messages in the outbox.
async fn wait_outbox_depth(bot: &Bot, n: usize) {
    let want = format!("greenlight_outbox_depth{{platform=\"slack\"}} {n}\n");
    let deadline = std::time::Instant::now() + LONG;
    loop {
        let m = metrics(bot).await;
        if m.contains(&want) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {want:?} in /metrics:\n{m}\n{}",
            bot.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_mode_connection_state_follows_the_socket() {
    let fake = FakeSlack::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let bot = start_bot(&fake, tmp.path()).await;
    fake.wait_connected(1, SHORT).await;
    wait_readyz(&bot, "ready once connected", is_ready).await;
    let connected = |n: u8| format!("greenlight_platform_connected{{platform=\"slack\"}} {n}");
    assert!(metrics(&bot).await.contains(&connected(1)));

    // Slack closes the socket and refuses to open a new one for a while.
    fake.set_outage(Some(Outage::Status(503)));
    fake.drop_connections();
    let (_, body) = wait_readyz(&bot, "not ready: socket closed", |code, body| {
        code == 503 && body.contains("slack: not connected since ")
    })
    .await;
    assert!(one_line_reason(&body), "{body:?}");
    assert!(body.contains("Socket Mode"), "{body}");
    assert!(metrics(&bot).await.contains(&connected(0)));
    // It keeps trying: apps.connections.open was refused at least once.
    fake.wait_until("a refused reconnect", LONG, |f| f.refused_calls() > 0)
        .await;
    assert_eq!(fake.live_connections(), 0);

    fake.set_outage(None);
    fake.wait_connected(2, LONG).await;
    wait_readyz(&bot, "ready after the reconnect", is_ready).await;
    assert!(metrics(&bot).await.contains(&connected(1)));

    // The network goes: the socket is cut without a close frame.
    fake.set_outage(Some(Outage::Unreachable));
    let (_, body) = wait_readyz(&bot, "not ready: socket cut", |code, body| {
        code == 503 && body.contains("slack: not connected since ")
    })
    .await;
    assert!(one_line_reason(&body), "{body:?}");
    assert!(metrics(&bot).await.contains(&connected(0)));
    fake.set_outage(None);
    fake.wait_connected(3, LONG).await;
    wait_readyz(&bot, "ready after the network is back", is_ready).await;
    assert!(metrics(&bot).await.contains(&connected(1)));

    // And the connection works.
    fake.slash_command("U01CAROL", STAGING, "/deploy", "status staging");
    fake.wait_for("status answer", LONG, |f| {
        f.responses()
            .into_iter()
            .find(|r| r.text().contains("Staging") || r.text().contains("staging"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_click_without_response_url_is_answered_ephemerally() {
    let fake = FakeSlack::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let _bot = start_bot(&fake, tmp.path()).await;
    fake.wait_connected(1, SHORT).await;
    fake.slash_command("U01ALICE", STAGING, "/deploy", "v1.2.0 staging");
    let (parent, items) = checklist(&fake, 1).await;

    // The requester clicks Approve; Slack sent no response_url with the click.
    fake.block_action_without_response_url("U01ALICE", STAGING, &items[0], "greenlight_approve");
    let e = fake
        .wait_for("an ephemeral refusal", LONG, |f| {
            f.ephemerals()
                .into_iter()
                .find(|e| e.text.contains("cannot approve their own run"))
        })
        .await;
    assert_eq!(e.user, "U01ALICE");
    assert_eq!(e.channel, STAGING);
    assert_eq!(
        e.thread_ts.as_deref(),
        Some(parent.as_str()),
        "in the checklist's thread"
    );

    // Someone greenlight does not know clicks: told, to them alone.
    fake.block_action_without_response_url("U09NOBODY", STAGING, &items[1], "greenlight_approve");
    let e = fake
        .wait_for("an ephemeral answer to an unknown user", LONG, |f| {
            f.ephemerals()
                .into_iter()
                .find(|e| e.text.contains("does not know slack user U09NOBODY"))
        })
        .await;
    assert_eq!(e.user, "U09NOBODY");

    let about_clicks = |t: &str| t.contains("cannot approve") || t.contains("does not know");
    assert!(
        !fake.messages().iter().any(|m| about_clicks(&m.text))
            && !fake.responses().iter().any(|r| about_clicks(&r.text())),
        "nothing else said about the clicks: {}",
        fake.dump()
    );
    let items_now: Vec<_> = items
        .iter()
        .map(|ts| fake.message(STAGING, ts).unwrap().text)
        .collect();
    assert!(
        items_now.iter().all(|t| t.starts_with('⬜')),
        "neither click counted: {items_now:?}"
    );
}

/// Socket Mode acknowledges an envelope only once the command's effects are written: right
/// after the ack, the run it created is in the store (a crash before the ack loses nothing,
/// because Slack redelivers an unacknowledged envelope).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_mode_acks_a_command_once_its_run_is_written() {
    let fake = FakeSlack::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let bot = start_bot(&fake, tmp.path()).await;
    fake.wait_connected(1, SHORT).await;
    for (run, env) in [(1, "staging"), (2, "prod")] {
        let envelope = fake.slash_command("U01ALICE", STAGING, "/deploy", &format!("v1.2.0 {env}"));
        fake.wait_acked(&envelope, SHORT).await;
        let (code, body) = bot.get_json(&format!("/api/runs/{run}")).await;
        assert_eq!(code, 200, "run {run} not written when acked: {body}");
        assert_eq!(body["run"]["env"], env, "{body}");
    }
}
