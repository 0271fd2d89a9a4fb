//! Self-tests without greenlight: the HTTP side through reqwest, answers parsed with
//! slack-morphism's response types; the Socket Mode side through a minimal raw
//! WebSocket client (no WS client crate is available to the tests), every frame parsed
//! into a mirror of slack-morphism's `SlackSocketModeEvent` (that enum is not exported)
//! whose payloads are the crate's own exported types.

use crate::fake_slack::*;
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{json, Value};
use slack_morphism::api::{
    SlackApiAppsConnectionOpenResponse, SlackApiAuthTestResponse,
    SlackApiChatPostEphemeralResponse, SlackApiChatPostMessageResponse, SlackApiChatUpdateResponse,
};
use slack_morphism::events::{
    SlackCommandEvent, SlackEventCallbackBody, SlackInteractionEvent, SlackPushEventCallback,
};
use slack_morphism::SlackReactionsItem;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const T: Duration = Duration::from_secs(5);

// Mirror of slack-morphism's models/socket_mode/mod.rs (same serde attributes).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Deserialize)]
#[serde(tag = "type")]
enum SmEvent {
    #[serde(rename = "hello")]
    Hello(SmHello),
    #[serde(rename = "disconnect")]
    Disconnect(SmDisconnect),
    #[serde(rename = "interactive")]
    Interactive(SmEnvelope<SlackInteractionEvent>),
    #[serde(rename = "events_api")]
    EventsApi(SmEnvelope<SlackPushEventCallback>),
    #[serde(rename = "slash_commands")]
    SlashCommands(SmEnvelope<SlackCommandEvent>),
}
#[allow(dead_code)] // the whole wire shape, read or not
#[derive(Debug, Deserialize)]
struct SmHello {
    connection_info: SmConnectionInfo,
    num_connections: u32,
    debug_info: SmDebugInfo,
}
#[derive(Debug, Deserialize)]
struct SmConnectionInfo {
    app_id: String,
}
#[allow(dead_code)] // the whole wire shape, read or not
#[derive(Debug, Deserialize)]
struct SmDebugInfo {
    host: String,
    started: Option<String>,
    build_number: Option<u64>,
    approximate_connection_time: Option<u64>,
}
#[allow(dead_code)] // the whole wire shape, read or not
#[derive(Debug, Deserialize)]
struct SmDisconnect {
    reason: String,
    debug_info: SmDebugInfo,
}
#[derive(Debug, Deserialize)]
struct SmEnvelope<P> {
    #[serde(flatten)]
    envelope_params: SmEnvelopeParams,
    payload: P,
}
#[derive(Debug, Deserialize)]
struct SmEnvelopeParams {
    envelope_id: String,
    accepts_response_payload: bool,
}

enum Frame {
    Text(String),
    Close,
    Eof,
}

/// Just enough RFC 6455 client for the self-test: handshake, masked text frames out,
/// unfragmented frames in.
struct RawWs {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RawWs {
    async fn connect(url: &str) -> Result<RawWs, String> {
        let rest = url.strip_prefix("ws://").ok_or("not ws://")?;
        let slash = rest.find('/').ok_or("no path")?;
        let (host, path) = rest.split_at(slash);
        let mut stream = TcpStream::connect(host).await.map_err(|e| e.to_string())?;
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream
            .write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        let head_end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p;
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("eof during handshake".into());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let status = head.lines().next().unwrap_or("").to_string();
        if !status.contains(" 101 ") {
            return Err(status);
        }
        Ok(RawWs {
            stream,
            buf: buf[head_end + 4..].to_vec(),
        })
    }

    async fn send_text(&mut self, text: &str) {
        let payload = text.as_bytes();
        let mut frame = vec![0x81u8];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n < 65536 => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let mask = [0x12u8, 0x34, 0x56, 0x78];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&frame).await.expect("ws write");
    }

    fn parse(&mut self) -> Option<Frame> {
        let b = &self.buf;
        if b.len() < 2 {
            return None;
        }
        let opcode = b[0] & 0x0f;
        let masked = b[1] & 0x80 != 0;
        let (len, mut at) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
            127 if b.len() >= 10 => (u64::from_be_bytes(b[2..10].try_into().ok()?) as usize, 10),
            126 | 127 => return None,
            n => (n as usize, 2),
        };
        let mask = if masked {
            at += 4;
            Some([b[at - 4], b[at - 3], b[at - 2], b[at - 1]])
        } else {
            None
        };
        if b.len() < at + len {
            return None;
        }
        let mut payload = b[at..at + len].to_vec();
        if let Some(m) = mask {
            payload
                .iter_mut()
                .enumerate()
                .for_each(|(i, x)| *x ^= m[i % 4]);
        }
        self.buf.drain(..at + len);
        Some(match opcode {
            0x1 => Frame::Text(String::from_utf8(payload).expect("utf8 text frame")),
            0x8 => Frame::Close,
            other => panic!("unexpected ws opcode {other}"),
        })
    }

    async fn recv(&mut self) -> Frame {
        let read = async {
            loop {
                if let Some(f) = self.parse() {
                    return f;
                }
                let mut chunk = [0u8; 8192];
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return Frame::Eof,
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                }
            }
        };
        tokio::time::timeout(T, read)
            .await
            .expect("ws frame within 5s")
    }

    async fn recv_event(&mut self) -> (Value, SmEvent) {
        match self.recv().await {
            Frame::Text(t) => {
                let v: Value = serde_json::from_str(&t).expect("frame is JSON");
                let e = serde_json::from_str::<SmEvent>(&t)
                    .unwrap_or_else(|e| panic!("slack-morphism would not parse {t}: {e}"));
                (v, e)
            }
            Frame::Close => panic!("unexpected close"),
            Frame::Eof => panic!("unexpected eof"),
        }
    }
}

async fn api(
    fake: &FakeSlack,
    method: &str,
    token: Option<&str>,
    body: Value,
) -> (u16, HeaderMap, Value) {
    // Exactly the URL slack-morphism builds: "<api_url>/<method>".
    let url = format!("{}/{method}", fake.api_url());
    let mut req = reqwest::Client::new().post(url).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn open_socket(fake: &FakeSlack) -> RawWs {
    let (_, _, open) = api(fake, "apps.connections.open", Some(APP_TOKEN), json!({})).await;
    let parsed: SlackApiAppsConnectionOpenResponse =
        serde_json::from_value(open.clone()).expect("open shape");
    RawWs::connect(parsed.url.0.as_str())
        .await
        .unwrap_or_else(|e| panic!("connect {open}: {e}"))
}

#[tokio::test]
async fn fake_slack_web_api_shapes_and_state() {
    let fake = FakeSlack::start().await;
    let post = json!({"channel": "C01DEPLOYS", "text": "deploying"});

    let (_, _, r) = api(&fake, "chat.postMessage", Some("xoxb-wrong"), post.clone()).await;
    assert_eq!(r, json!({"ok": false, "error": "invalid_auth"}));
    let (_, _, r) = api(&fake, "chat.postMessage", None, post.clone()).await;
    assert_eq!(r["error"], "not_authed");
    let (_, _, r) = api(&fake, "chat.postMessage", Some(APP_TOKEN), post.clone()).await;
    assert_eq!(r["error"], "not_allowed_token_type");
    let (_, _, r) = api(
        &fake,
        "chat.postMessage",
        Some(BOT_TOKEN),
        json!({"channel": "C99NOPE", "text": "x"}),
    )
    .await;
    assert_eq!(r, json!({"ok": false, "error": "channel_not_found"}));
    let (_, _, r) = api(
        &fake,
        "chat.postMessage",
        Some(BOT_TOKEN),
        json!({"channel": "C01DEPLOYS"}),
    )
    .await;
    assert_eq!(r["error"], "no_text");

    let blocks = json!([
        {"type": "section", "block_id": "b1", "text": {"type": "mrkdwn", "text": "*Deploy v2*"}},
        {"type": "actions", "block_id": "b2", "elements": [
            {"type": "button", "action_id": "approve", "value": "run-7",
             "text": {"type": "plain_text", "text": "Approve"}}
        ]}
    ]);
    let (status, _, r) = api(
        &fake,
        "chat.postMessage",
        Some(BOT_TOKEN),
        json!({"channel": "C01DEPLOYS", "text": "deploying", "blocks": blocks}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(r["ok"], true);
    let parsed: SlackApiChatPostMessageResponse =
        serde_json::from_value(r.clone()).expect("postMessage shape");
    assert_eq!(parsed.ts.0, "1700000000.000100");
    assert_eq!(parsed.channel.0, "C01DEPLOYS");
    assert_eq!(parsed.message.content.text.as_deref(), Some("deploying"));
    assert_eq!(
        parsed.message.content.blocks.as_ref().map(Vec::len),
        Some(2)
    );
    let parent = parsed.ts.0.clone();

    // A thread reply, by channel name, as a form body.
    let resp = reqwest::Client::new()
        .post(format!("{}chat.postMessage", fake.api_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "token={BOT_TOKEN}&channel=%23deploys&text=step+1+ok&thread_ts={parent}"
        ))
        .send()
        .await
        .unwrap();
    let r: Value = resp.json().await.unwrap();
    let reply: SlackApiChatPostMessageResponse =
        serde_json::from_value(r.clone()).expect("reply shape");
    assert_eq!(reply.channel.0, "C01DEPLOYS");
    assert_eq!(
        reply
            .message
            .origin
            .thread_ts
            .as_ref()
            .map(|t| t.0.as_str()),
        Some(parent.as_str())
    );
    assert!(reply.ts.0 > parent, "ts increases");
    assert_eq!(
        fake.calls("chat.postMessage").last().unwrap()["text"],
        "step 1 ok"
    );

    // Update: text changes, omitted blocks are kept.
    let (_, _, r) = api(
        &fake,
        "chat.update",
        Some(BOT_TOKEN),
        json!({"channel": "C01DEPLOYS", "ts": parent, "text": "deployed"}),
    )
    .await;
    let upd: SlackApiChatUpdateResponse = serde_json::from_value(r.clone()).expect("update shape");
    assert_eq!(upd.ts.0, parent);
    assert_eq!(r["text"], "deployed");
    let (_, _, r) = api(
        &fake,
        "chat.update",
        Some(BOT_TOKEN),
        json!({"channel": "C01DEPLOYS", "ts": "1.2", "text": "x"}),
    )
    .await;
    assert_eq!(r["error"], "message_not_found");

    let msgs = fake.messages();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0].text, "deployed");
    assert_eq!(msgs[0].edits, 1);
    assert!(msgs[0].rendered().contains("*Deploy v2*"));
    assert_eq!(msgs[1].thread_ts.as_deref(), Some(parent.as_str()));
    assert!(msgs[1].is_reply());
    assert_eq!(fake.thread("C01DEPLOYS", &parent).len(), 1);

    let (_, _, r) = api(
        &fake,
        "chat.postEphemeral",
        Some(BOT_TOKEN),
        json!({"channel": "C01DEPLOYS", "user": "U1", "text": "only you"}),
    )
    .await;
    let _: SlackApiChatPostEphemeralResponse =
        serde_json::from_value(r.clone()).expect("ephemeral shape");
    assert!(r["message_ts"].is_string());
    assert_eq!(fake.ephemerals()[0].user, "U1");

    fake.echo_own_reactions(false);
    let react = json!({"channel": "C01DEPLOYS", "name": "white_check_mark", "timestamp": parent});
    let (_, _, r) = api(&fake, "reactions.add", Some(BOT_TOKEN), react.clone()).await;
    assert_eq!(r, json!({"ok": true}));
    let (_, _, r) = api(&fake, "reactions.add", Some(BOT_TOKEN), react).await;
    assert_eq!(r["error"], "already_reacted");
    assert_eq!(fake.messages()[0].reactions, vec!["white_check_mark"]);

    // auth.test is a GET in slack-morphism.
    let r: Value = reqwest::Client::new()
        .get(format!("{}/auth.test", fake.api_url()))
        .bearer_auth(BOT_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let auth: SlackApiAuthTestResponse = serde_json::from_value(r).expect("auth.test shape");
    assert_eq!(auth.user_id.0, BOT_USER_ID);

    let (_, _, r) = api(&fake, "apps.connections.open", Some(BOT_TOKEN), json!({})).await;
    assert_eq!(r["error"], "not_allowed_token_type");
    let (_, _, r) = api(&fake, "apps.connections.open", Some(APP_TOKEN), json!({})).await;
    let open: SlackApiAppsConnectionOpenResponse = serde_json::from_value(r).expect("open shape");
    assert_eq!(
        open.url.0.as_str(),
        format!("ws://127.0.0.1:{}/socket?n=1", fake.addr().port())
    );
    let (_, _, r) = api(&fake, "conversations.nope", Some(BOT_TOKEN), json!({})).await;
    assert_eq!(r["error"], "unknown_method");
}

#[tokio::test]
async fn fake_slack_scripted_faults() {
    let fake = FakeSlack::start().await;
    let post = json!({"channel": "C01DEPLOYS", "text": "hi"});
    fake.fail_next(
        "chat.postMessage",
        Fault::RateLimited {
            retry_after_secs: 2,
        },
    );
    fake.fail_next("chat.postMessage", Fault::ServerError);
    fake.fail_next("chat.postMessage", Fault::ApiError("msg_too_long".into()));

    let (status, headers, body) =
        api(&fake, "chat.postMessage", Some(BOT_TOKEN), post.clone()).await;
    assert_eq!(status, 429);
    assert_eq!(headers.get("retry-after").unwrap(), "2");
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(body, json!({"ok": false, "error": "ratelimited"}));
    let (status, _, _) = api(&fake, "chat.postMessage", Some(BOT_TOKEN), post.clone()).await;
    assert_eq!(status, 500);
    let (_, _, body) = api(&fake, "chat.postMessage", Some(BOT_TOKEN), post.clone()).await;
    assert_eq!(body["error"], "msg_too_long");
    let (status, _, body) = api(&fake, "chat.postMessage", Some(BOT_TOKEN), post.clone()).await;
    assert_eq!((status, body["ok"].clone()), (200, json!(true)));
    assert!(fake.messages().len() == 1, "faulted calls post nothing");

    fake.fail_next("chat.update", Fault::Hang);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = client
        .post(format!("{}chat.update", fake.api_url()))
        .bearer_auth(BOT_TOKEN)
        .json(&json!({"channel": "C01DEPLOYS", "ts": "1700000000.000100", "text": "x"}))
        .send()
        .await
        .expect_err("hangs");
    assert!(err.is_timeout());
    let calls = fake.api_calls();
    assert_eq!(calls.len(), 5);
    assert_eq!(calls[4].fault, Some(Fault::Hang));
    assert_eq!(fake.calls("chat.postMessage").len(), 4);
}

#[tokio::test]
async fn fake_slack_socket_mode_envelopes() {
    let fake = FakeSlack::start().await;
    fake.set_user_name("U1", "alice");
    // Queued before any connection: delivered after hello.
    let early = fake.slash_command("U1", "C01DEPLOYS", "/deploy", "staging v1");

    let mut ws = open_socket(&fake).await;
    fake.wait_connected(1, T).await;
    let (_, hello) = ws.recv_event().await;
    let SmEvent::Hello(h) = hello else {
        panic!("hello first")
    };
    assert_eq!(
        (h.connection_info.app_id.as_str(), h.num_connections),
        (APP_ID, 1)
    );

    let (raw, ev) = ws.recv_event().await;
    let SmEvent::SlashCommands(cmd) = ev else {
        panic!("slash command: {raw}")
    };
    assert_eq!(cmd.envelope_params.envelope_id, early);
    assert!(cmd.envelope_params.accepts_response_payload);
    assert_eq!(cmd.payload.command.0, "/deploy");
    assert_eq!(cmd.payload.text.as_deref(), Some("staging v1"));
    assert_eq!(cmd.payload.channel_name.as_deref(), Some("deploys"));
    assert_eq!(raw["payload"]["user_name"], "alice");
    assert_eq!(raw["retry_attempt"], 0);

    // Ack with a payload, then answer through response_url.
    ws.send_text(&json!({"envelope_id": early, "payload": {"text": "queued"}}).to_string())
        .await;
    let ack = fake.wait_acked(&early, T).await;
    assert_eq!(ack.payload.unwrap()["text"], "queued");
    let response_url = cmd.payload.response_url.0.to_string();
    let r: Value = reqwest::Client::new()
        .post(&response_url)
        .json(&json!({"text": "started", "response_type": "in_channel"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["ok"], true);
    assert_eq!(fake.responses()[0].text(), "started");
    assert_eq!(fake.channel_messages("C01DEPLOYS")[0].text, "started");

    // A bot message with a button; a reaction on it; a click on it.
    let (_, _, posted) = api(
        &fake,
        "chat.postMessage",
        Some(BOT_TOKEN),
        json!({"channel": "C01DEPLOYS", "text": "approve?", "blocks": [
            {"type": "actions", "block_id": "acts", "elements": [
                {"type": "button", "action_id": "approve", "value": "run-9",
                 "text": {"type": "plain_text", "text": "Approve"}}]}]}),
    )
    .await;
    let ts = posted["ts"].as_str().unwrap().to_string();

    let reaction = fake.reaction("U1", "C01DEPLOYS", &ts, ":white_check_mark:", true);
    let (raw, ev) = ws.recv_event().await;
    let SmEvent::EventsApi(push) = ev else {
        panic!("events_api: {raw}")
    };
    assert_eq!(push.envelope_params.envelope_id, reaction);
    let SlackEventCallbackBody::ReactionAdded(added) = &push.payload.event else {
        panic!("parsed as {:?}", push.payload.event)
    };
    assert_eq!(
        (added.user.0.as_str(), added.reaction.0.as_str()),
        ("U1", "white_check_mark")
    );
    let SlackReactionsItem::Message(item) = &added.item else {
        panic!("message item")
    };
    assert_eq!(item.origin.ts.0, ts);
    assert_eq!(item.origin.channel.as_ref().unwrap().0, "C01DEPLOYS");
    let event_id = push.payload.event_id.0.clone();

    // Redelivery: same envelope and event id, retry_attempt 1.
    fake.redeliver(&reaction);
    let (raw, ev) = ws.recv_event().await;
    let SmEvent::EventsApi(again) = ev else {
        panic!("redelivery")
    };
    assert_eq!(again.payload.event_id.0, event_id);
    assert_eq!(
        (raw["retry_attempt"].clone(), raw["retry_reason"].clone()),
        (json!(1), json!("timeout"))
    );
    ws.send_text(&json!({"envelope_id": reaction}).to_string())
        .await;

    let click = fake.block_action("U1", "C01DEPLOYS", &ts, "approve");
    let (raw, ev) = ws.recv_event().await;
    let SmEvent::Interactive(inter) = ev else {
        panic!("interactive: {raw}")
    };
    assert_eq!(inter.envelope_params.envelope_id, click);
    let SlackInteractionEvent::BlockActions(act) = inter.payload else {
        panic!("block_actions")
    };
    let action = &act.actions.as_ref().unwrap()[0];
    assert_eq!(action.action_id.0, "approve");
    assert_eq!(action.value.as_deref(), Some("run-9"));
    assert_eq!(action.block_id.as_ref().unwrap().0, "acts");
    assert_eq!(act.user.as_ref().unwrap().id.0, "U1");
    assert_eq!(act.message.as_ref().unwrap().origin.ts.0, ts);
    assert_eq!(
        act.message
            .as_ref()
            .unwrap()
            .content
            .blocks
            .as_ref()
            .map(Vec::len),
        Some(1)
    );
    // replace_original through the action's response_url edits the message.
    reqwest::Client::new()
        .post(act.response_url.as_ref().unwrap().0.as_str())
        .json(&json!({"replace_original": true, "text": "approved by alice"}))
        .send()
        .await
        .unwrap();
    let m = fake.message("C01DEPLOYS", &ts).unwrap();
    assert_eq!(
        (m.text.as_str(), m.edits, m.blocks.is_null()),
        ("approved by alice", 1, true)
    );

    // The bot's own reaction comes back as an event from UBOT.
    api(
        &fake,
        "reactions.add",
        Some(BOT_TOKEN),
        json!({"channel": "C01DEPLOYS", "name": "rocket", "timestamp": ts}),
    )
    .await;
    let (_, ev) = ws.recv_event().await;
    let SmEvent::EventsApi(own) = ev else {
        panic!("own reaction")
    };
    let SlackEventCallbackBody::ReactionAdded(own) = own.payload.event else {
        panic!("reaction")
    };
    assert_eq!(own.user.0, BOT_USER_ID);

    // Disconnect: the frame, then a close; the old ticket no longer opens a socket.
    fake.disconnect();
    let (_, ev) = ws.recv_event().await;
    let SmEvent::Disconnect(d) = ev else {
        panic!("disconnect")
    };
    assert_eq!(d.reason, "refresh_requested");
    assert!(matches!(ws.recv().await, Frame::Close | Frame::Eof));
    let reused = format!("ws://127.0.0.1:{}/socket?n=1", fake.addr().port());
    let Err(refused) = RawWs::connect(&reused).await else {
        panic!("a used ticket must not open a socket")
    };
    assert!(refused.contains("401"), "{refused}");
    assert_eq!(fake.rejected_sockets(), 1);

    // Sent while disconnected: delivered on the next connection.
    let queued = fake.slash_command("U1", "C02STAGING", "/deploy", "prod");
    let mut ws2 = open_socket(&fake).await;
    fake.wait_connected(2, T).await;
    assert!(matches!(ws2.recv_event().await.1, SmEvent::Hello(_)));
    let (_, ev) = ws2.recv_event().await;
    let SmEvent::SlashCommands(c) = ev else {
        panic!("queued command")
    };
    assert_eq!(c.envelope_params.envelope_id, queued);
    assert_ne!(c.payload.trigger_id.0, cmd.payload.trigger_id.0);
    assert!(fake.acked(&reaction) && !fake.acked(&click) && fake.acked(&early));
    assert_eq!(fake.connections(), 2);
}
