//! The local channel's API under hostile input, through the real binary with raw HTTP: a
//! foreign web page (text/plain from another Origin, DNS rebinding with a foreign Host), private
//! replies, size and content limits, and incremental reads.

use crate::harness::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

fn port(bot: &Bot) -> String {
    bot.url.rsplit(':').next().unwrap().to_string()
}

/// The answer's status and its `error` line (which must be one line).
async fn status_and_error(r: reqwest::Response) -> (u16, String) {
    let s = r.status().as_u16();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    let e = v["error"].as_str().unwrap_or("").to_string();
    assert!(!e.contains('\n'), "error is one line: {e:?}");
    (s, e)
}

/// Everything stored, as the public and every user's view together.
async fn stored(bot: &Bot) -> Vec<Value> {
    bot.messages().await
}

/// Posts a marker message and waits for it: anything a refused request could have started
/// has been handled by then (the loop handles inputs in order).
async fn settle(bot: &Bot) {
    let id = bot.say("carol", "marker").await;
    bot.wait_for("the marker", SHORT, |m| m["id"] == id.as_str())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_page_cannot_post_or_react() {
    let (bot, _tmp) = Bot::start(&test_config("")).await;
    let c = client();
    let url = format!("{}/api/local/messages", bot.url);
    let body = r#"{"user":"alice","text":"/deploy v1.2.0 staging"}"#;

    // What a form or fetch() from another site sends without a preflight.
    let r = c
        .post(&url)
        .header("content-type", "text/plain;charset=UTF-8")
        .header("origin", "http://evil.example")
        .body(body)
        .send()
        .await
        .unwrap();
    let (s, e) = status_and_error(r).await;
    assert_eq!(s, 403, "foreign origin: {e}");
    assert!(e.contains("evil.example"), "{e}");

    // The right Content-Type from a foreign origin: refused too.
    let r = c
        .post(&url)
        .header("content-type", "application/json")
        .header("origin", "http://127.0.0.1.evil.example")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(status_and_error(r).await.0, 403);

    // Another port on loopback is another origin.
    let r = c
        .post(&url)
        .header("content-type", "application/json")
        .header("origin", "http://127.0.0.1:1")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(status_and_error(r).await.0, 403);

    // No Origin (curl, scripts) but not JSON: 415.
    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut req = c.post(&url).body(body);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        let (s, e) = status_and_error(req.send().await.unwrap()).await;
        assert_eq!(s, 415, "{ct:?}: {e}");
        assert!(e.contains("application/json"), "{e}");
    }

    // A reaction (an approval) from a foreign page: refused.
    let parent = bot.say("bob", "something to react to").await;
    for method in [reqwest::Method::POST, reqwest::Method::DELETE] {
        let r = c
            .request(method.clone(), format!("{}/api/local/reactions", bot.url))
            .header("content-type", "text/plain")
            .header("origin", "http://evil.example")
            .body(
                json!({"user": "alice", "message_id": parent, "emoji": "white_check_mark"})
                    .to_string(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(status_and_error(r).await.0, 403, "{method}");
        let r = c
            .request(method.clone(), format!("{}/api/local/reactions", bot.url))
            .header("content-type", "text/plain")
            .body(
                json!({"user": "alice", "message_id": parent, "emoji": "white_check_mark"})
                    .to_string(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(status_and_error(r).await.0, 415, "{method}");
    }

    settle(&bot).await;
    let msgs = stored(&bot).await;
    assert_eq!(
        count(&msgs, "/deploy v1.2.0 staging"),
        0,
        "{}",
        transcript(&msgs)
    );
    assert_eq!(count(&msgs, "checklist"), 0, "{}", transcript(&msgs));
    let p = msgs.iter().find(|m| m["id"] == parent.as_str()).unwrap();
    assert_eq!(p["reactions"], json!([]));

    // The page's own origin (any of the loopback names, with the bound port) is accepted.
    for origin in [
        format!("http://127.0.0.1:{}", port(&bot)),
        format!("http://localhost:{}", port(&bot)),
    ] {
        let r = c
            .post(&url)
            .header("content-type", "application/json; charset=utf-8")
            .header("origin", origin.as_str())
            .body(r#"{"user":"alice","text":"hello from the page"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201, "{origin}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_host_reads_nothing() {
    let (bot, _tmp) = Bot::start(&test_config("")).await;
    let c = client();
    let p = port(&bot);
    bot.say("alice", "/deploy help").await;
    bot.wait_text("/deploy why-not", SHORT).await;

    // DNS rebinding: a foreign name resolving to 127.0.0.1 reaches the bot with its own Host.
    for host in [
        format!("evil.example:{p}"),
        "evil.example".to_string(),
        format!("127.0.0.1.evil.example:{p}"),
        format!("127.0.0.1:{}", p.parse::<u16>().unwrap().wrapping_add(1)),
        format!("localhost:+{p}"),
    ] {
        for path in [
            "/api/local/messages",
            "/api/local/messages?as=alice",
            "/api/local/users",
            "/",
        ] {
            let r = c
                .get(format!("{}{path}", bot.url))
                .header("host", host.as_str())
                .send()
                .await
                .unwrap();
            let (s, e) = status_and_error(r).await;
            assert_eq!(s, 403, "Host {host} {path}: {e}");
        }
        let r = c
            .post(format!("{}/api/local/messages", bot.url))
            .header("host", host.as_str())
            .json(&json!({"user": "alice", "text": "rebound"}))
            .send()
            .await
            .unwrap();
        assert_eq!(status_and_error(r).await.0, 403, "POST with Host {host}");
    }
    // A foreign page reading through the browser (a CORS GET) is refused too.
    let r = c
        .get(format!("{}/api/local/messages", bot.url))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(status_and_error(r).await.0, 403);

    // The loopback names with the bound port work.
    for host in [
        format!("127.0.0.1:{p}"),
        format!("localhost:{p}"),
        format!("LocalHost:{p}"),
        format!("[::1]:{p}"),
    ] {
        for path in ["/api/local/messages", "/"] {
            let r = c
                .get(format!("{}{path}", bot.url))
                .header("host", host.as_str())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200, "Host {host} {path}");
        }
    }
    assert_eq!(count(&stored(&bot).await, "rebound"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_replies_are_served_to_their_person_only() {
    let (bot, _tmp) = Bot::start(&test_config("")).await;
    let asked = bot.say("alice", "/deploy help").await;
    let reply = bot.answer_to(&asked).await;
    assert_eq!(reply["visible_to"], "alice", "help is a private reply");
    let rid = reply["id"].as_str().unwrap().to_string();
    bot.say("bob", "a public line").await;

    let has = |msgs: &[Value], id: &str| msgs.iter().any(|m| m["id"] == id);
    let alice = bot.messages_as(Some("alice")).await;
    assert!(has(&alice, &rid), "alice sees her reply");
    assert_eq!(count(&alice, "a public line"), 1);
    let bob = bot.messages_as(Some("bob")).await;
    assert!(
        !has(&bob, &rid),
        "bob must not see alice's reply:\n{}",
        transcript(&bob)
    );
    assert_eq!(count(&bob, "a public line"), 1);
    assert_eq!(count(&bob, "/deploy help"), 1, "alice's own post is public");
    let anyone = bot.messages_as(None).await;
    assert!(!has(&anyone, &rid), "no private reply without ?as=");
    assert!(anyone.iter().all(|m| m["visible_to"].is_null()));

    // Incremental reads filter the same way.
    let c = client();
    let r = c
        .get(format!("{}/api/local/messages?as=bob&after=0", bot.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Vec<Value> = r.json().await.unwrap();
    assert!(!has(&v, &rid));

    let (s, e) = status_and_error(
        c.get(format!("{}/api/local/messages?as=mallory", bot.url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 400, "{e}");
    assert!(e.contains("mallory"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_array_and_invisible_messages_are_refused() {
    let (bot, _tmp) = Bot::start(&test_config("")).await;
    let before = stored(&bot).await.len();

    let huge = "a".repeat(2_000_000);
    let (s, body) = bot.post_raw(json!({"user": "alice", "text": huge})).await;
    assert!(s == 413 || s == 400, "2,000,000 characters: {s} {body}");
    assert!(!body["error"].as_str().unwrap().contains('\n'));

    let (s, body) = bot
        .post_raw(json!({"user": "alice", "text": "é".repeat(40_001)}))
        .await;
    assert_eq!(s, 413, "{body}");
    assert!(body["error"].as_str().unwrap().contains("40000"), "{body}");

    // A JSON array is not a message, even one whose items would fill the fields.
    let (s, body) = bot
        .post_raw(json!(["alice", "/deploy v1.2.0 staging"]))
        .await;
    assert_eq!(s, 400, "array: {body}");
    let (s, _) = bot
        .post_raw(json!(["alice", "/deploy v1.2.0 staging", null, null]))
        .await;
    assert_eq!(s, 400);

    for t in [
        "\u{0}",
        "\u{0}\u{0}\u{0}",
        "\u{0} \t\r\n\u{7}\u{1b}",
        "\u{200b}\u{feff}",
    ] {
        let (s, body) = bot.post_raw(json!({"user": "alice", "text": t})).await;
        assert_eq!(s, 400, "{t:?}: {body}");
        assert!(!body["error"].as_str().unwrap().contains('\n'));
    }

    // A long name is refused without being echoed back.
    let (s, body) = bot
        .post_raw(json!({"user": "x".repeat(100_000), "text": "hi"}))
        .await;
    assert_eq!(s, 400);
    assert!(body["error"].as_str().unwrap().len() < 200, "{body}");

    settle(&bot).await;
    let msgs = stored(&bot).await;
    assert_eq!(
        msgs.len(),
        before + 1,
        "only the marker:\n{}",
        transcript(&msgs)
    );
    assert_eq!(count(&msgs, "checklist"), 0);

    // Right at the cap is fine.
    let (s, body) = bot
        .post_raw(json!({"user": "alice", "text": "é".repeat(40_000)}))
        .await;
    assert_eq!(s, 201, "{body}");
}

/// One incremental read: the messages and the next cursor.
async fn read_after(c: &reqwest::Client, bot: &Bot, after: Option<&str>) -> (Vec<Value>, String) {
    let mut req = c
        .get(format!("{}/api/local/messages", bot.url))
        .query(&[("as", "alice")]);
    if let Some(a) = after {
        req = req.query(&[("after", a)]);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let cursor = r
        .headers()
        .get("x-greenlight-cursor")
        .expect("X-Greenlight-Cursor")
        .to_str()
        .unwrap()
        .to_string();
    (r.json().await.unwrap(), cursor)
}

/// Reads after `cursor` until `pred` holds for the accumulated changes (with a deadline);
/// returns them and the newest cursor.
async fn changes_until(
    c: &reqwest::Client,
    bot: &Bot,
    cursor: &str,
    pred: impl Fn(&[Value]) -> bool,
) -> (Vec<Value>, String) {
    let deadline = Instant::now() + SHORT;
    let mut cur = cursor.to_string();
    let mut got: Vec<Value> = Vec::new();
    loop {
        let (msgs, next) = read_after(c, bot, Some(&cur)).await;
        for m in msgs {
            got.retain(|g| g["id"] != m["id"]);
            got.push(m);
        }
        cur = next;
        if pred(&got) {
            return (got, cur);
        }
        assert!(
            Instant::now() < deadline,
            "changes so far:\n{}",
            transcript(&got)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_reads_return_only_new_and_changed_messages() {
    let (mut bot, _tmp) = Bot::start(&test_config("")).await;
    let c = client();
    let hello = bot.say("bob", "hello").await;
    let (all, c0) = read_after(&c, &bot, None).await;
    assert_eq!(count(&all, "hello"), 1);

    // Nothing changed: nothing to send.
    let (none, c0b) = read_after(&c, &bot, Some(&c0)).await;
    assert!(none.is_empty(), "{}", transcript(&none));
    assert_eq!(c0b, c0);

    // A new message: only it.
    let second = bot.say("carol", "second").await;
    let (new, c1) = read_after(&c, &bot, Some(&c0)).await;
    assert_eq!(new.len(), 1, "{}", transcript(&new));
    assert_eq!(new[0]["id"], second.as_str());
    assert_ne!(c1, c0);

    // A reaction changes a message: it comes again, with the reaction.
    bot.react("alice", &hello, "eyes").await;
    let (changed, c2) = read_after(&c, &bot, Some(&c1)).await;
    assert_eq!(changed.len(), 1, "{}", transcript(&changed));
    assert_eq!(changed[0]["id"], hello.as_str());
    assert_eq!(
        changed[0]["reactions"],
        json!([{"emoji": "eyes", "users": ["alice"]}])
    );

    // An edit: approving a checklist item rewrites its text in place.
    let asked = bot.say("alice", "/deploy v1.2.0 staging").await;
    let (pid, items) = bot.checklist_items(1).await;
    let (_, c3) = changes_until(&c, &bot, &c2, |got| {
        got.iter().any(|m| m["id"] == pid.as_str())
            && items
                .iter()
                .all(|i| got.iter().any(|m| m["id"] == i.as_str()))
    })
    .await;
    bot.react("bob", &items[0], "white_check_mark").await;
    let (edited, c4) = changes_until(&c, &bot, &c3, |got| {
        got.iter()
            .any(|m| m["id"] == items[0].as_str() && text(m).starts_with('✅'))
    })
    .await;
    assert!(
        edited
            .iter()
            .all(|m| m["id"] != asked.as_str() && m["id"] != hello.as_str()),
        "only what changed:\n{}",
        transcript(&edited)
    );
    assert!(edited.iter().all(|m| m["id"] != items[1].as_str()));
    // What the increments built equals a full read.
    let full = bot.messages_as(Some("alice")).await;
    let item0 = full.iter().find(|m| m["id"] == items[0].as_str()).unwrap();
    let inc0 = edited
        .iter()
        .find(|m| m["id"] == items[0].as_str())
        .unwrap();
    assert_eq!(item0, inc0);

    // The cursor survives a restart: nothing new after it, and later changes come.
    bot.restart().await;
    let resumed = bot.wait_text("greenlight restarted", SHORT).await;
    let (after_restart, c5) = changes_until(&c, &bot, &c4, |got| {
        got.iter().any(|m| m["id"] == resumed["id"])
    })
    .await;
    assert!(
        after_restart
            .iter()
            .all(|m| m["id"] != items[0].as_str() && m["id"] != second.as_str()),
        "{}",
        transcript(&after_restart)
    );
    let late = bot.say("bob", "after the restart").await;
    let (got, _) = changes_until(&c, &bot, &c5, |got| {
        got.iter().any(|m| m["id"] == late.as_str())
    })
    .await;
    assert!(got.iter().all(|m| m["id"] != hello.as_str()));

    // A cursor from another store (ahead of this one) gets everything.
    let (all2, _) = read_after(&c, &bot, Some("999999999999")).await;
    assert!(all2.iter().any(|m| m["id"] == hello.as_str()));
    let r = c
        .get(format!("{}/api/local/messages?after=soon", bot.url))
        .send()
        .await
        .unwrap();
    assert_eq!(status_and_error(r).await.0, 400);
}

/// The channel keeps `local_retention` messages: past it the oldest go after each commit, a
/// few at a time (with their change-index entries), and what is read back is the newest, in
/// order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oldest_messages_go_past_the_retention() {
    let cfg = test_config("").replace("[bot]\n", "[bot]\nlocal_retention = 10\n");
    let (bot, _tmp) = Bot::start(&cfg).await;
    let mut ids = Vec::new();
    for i in 0..511 {
        ids.push(bot.say("alice", &format!("note {i}")).await);
    }
    let kept: Vec<String> = stored(&bot)
        .await
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kept, ids[ids.len() - 10..].to_vec());
    // Again from the 10 kept: the count the loop keeps matches the store's.
    for i in 511..1012 {
        ids.push(bot.say("alice", &format!("note {i}")).await);
    }
    let kept: Vec<String> = stored(&bot)
        .await
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kept, ids[ids.len() - 10..].to_vec());
}
