//! Tests of the Slack adapter without Slack: conversion to `Inbound`, signatures, blocks, the
//! Web API client against a local fake, Socket Mode acking only after the
//! app answers and reconnecting.

use super::client::*;
use super::socket::*;
use super::*;
use crate::chat::inbound::{Button, Handled, Inbound, Inbox, Kind, Visibility};
use crate::core::Platform;
use crate::telemetry::Telemetry;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;
use std::sync::Mutex;

fn enc(s: &str) -> String {
    reqwest::Url::parse_with_params("http://x/", &[("v", s)])
        .unwrap()
        .query()
        .unwrap()
        .trim_start_matches("v=")
        .to_string()
}

fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

// ---- slash command form (fields as Slack documents them)

#[test]
fn command_form_becomes_command() {
    let body = form(&[
        ("token", "gIkuvaNzQIHg97ATvDxqgjtO"),
        ("team_id", "T0001"),
        ("team_domain", "example"),
        ("enterprise_id", "E0001"),
        ("enterprise_name", "Globular Construct Inc"),
        ("channel_id", "C01DEPLOYS"),
        ("channel_name", "deploys"),
        ("user_id", "U01ALICE"),
        ("user_name", "alice"),
        ("command", "/deploy"),
        ("text", "v1.2.0 prod --force \"hotfix: login & <checkout>\""),
        ("api_app_id", "A123456"),
        ("is_enterprise_install", "false"),
        (
            "response_url",
            "https://hooks.slack.com/commands/1234/5678/abcdef",
        ),
        ("trigger_id", "13345224609.738474920.8088930838d88f008e0"),
    ]);
    assert_eq!(
        parse_command_form(body.as_bytes()).unwrap(),
        Inbound {
            platform: Platform::Slack,
            dedup: Some("13345224609.738474920.8088930838d88f008e0".into()),
            user: "U01ALICE".into(),
            channel: "C01DEPLOYS".into(),
            kind: Kind::Message {
                text: "/deploy v1.2.0 prod --force \"hotfix: login & <checkout>\"".into(),
                thread: None,
            },
            response_url: Some("https://hooks.slack.com/commands/1234/5678/abcdef".into()),
        }
    );
}

#[test]
fn command_form_with_plus_spaces_and_empty_text() {
    // Slack encodes spaces as '+'; an empty text is `text=`.
    let body = "token=t&team_id=T1&team_domain=d&channel_id=C1&channel_name=deploys\
        &user_id=U1&user_name=bob&command=%2Frollback&text=prod+bad+release\
        &api_app_id=A1&is_enterprise_install=false\
        &response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1%2F1%2Fx&trigger_id=1.2.3";
    match parse_command_form(body.as_bytes()).unwrap().kind {
        Kind::Message { text, .. } => assert_eq!(text, "/rollback prod bad release"),
        other => panic!("{other:?}"),
    }
    // A sloppily encoded body (raw space and quote) still decodes.
    let raw = body.replace("text=prod+bad+release", "text=prod \"bad\"");
    match parse_command_form(raw.as_bytes()).unwrap().kind {
        Kind::Message { text, .. } => assert_eq!(text, "/rollback prod \"bad\""),
        other => panic!("{other:?}"),
    }
    let empty = body.replace("text=prod+bad+release", "text=");
    match parse_command_form(empty.as_bytes()).unwrap().kind {
        Kind::Message { text, .. } => assert_eq!(text, "/rollback "),
        other => panic!("{other:?}"),
    }
}

#[test]
fn command_form_missing_field_is_an_error() {
    let err =
        parse_command_form(b"team_id=T1&channel_id=C1&user_id=U1&command=%2Fdeploy").unwrap_err();
    assert!(err.contains("missing field"), "{err}");
    assert!(!err.contains('\n'));
    assert!(parse_command_form(b"\xff\xfe").is_err());
}

// ---- events API

fn reaction_event(kind: &str) -> Value {
    json!({
        "token": "XXYYZZ",
        "team_id": "T0001",
        "api_app_id": "A123456",
        "event": {
            "type": kind,
            "user": "U01BOB",
            "reaction": "white_check_mark",
            "item_user": "U01ALICE",
            "item": { "type": "message", "channel": "C01DEPLOYS", "ts": "1360782400.498405" },
            "event_ts": "1360782804.083113"
        },
        "type": "event_callback",
        "authed_users": ["U0BOT"],
        "authorizations": [
            { "enterprise_id": null, "team_id": "T0001", "user_id": "U0BOT", "is_bot": true, "is_enterprise_install": false }
        ],
        "event_id": "Ev0PV52K21",
        "event_time": 1360782804,
        "event_context": "4-eyJldCI6InJlYWN0aW9uX2FkZGVkIn0"
    })
}

#[test]
fn reaction_added_and_removed() {
    for (kind, added) in [("reaction_added", true), ("reaction_removed", false)] {
        let body = serde_json::to_vec(&reaction_event(kind)).unwrap();
        assert_eq!(
            parse_events_json(&body).unwrap(),
            EventsBody::Inbound(Inbound {
                platform: Platform::Slack,
                dedup: Some("Ev0PV52K21".into()),
                user: "U01BOB".into(),
                channel: "C01DEPLOYS".into(),
                kind: Kind::Reaction {
                    message: "1360782400.498405".into(),
                    emoji: "white_check_mark".into(),
                    added,
                },
                response_url: None,
            })
        );
    }
}

#[test]
fn url_verification_and_ignored_events() {
    let body = json!({
        "token": "Jhj5dZrVaK7ZwHHjRyZWjbDl",
        "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
        "type": "url_verification"
    });
    assert_eq!(
        parse_events_json(&serde_json::to_vec(&body).unwrap()).unwrap(),
        EventsBody::UrlVerification {
            challenge: "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P".into()
        }
    );

    let mut message = reaction_event("reaction_added");
    message["event"] = json!({
        "type": "message", "channel": "C01DEPLOYS", "user": "U01BOB",
        "text": "hello", "ts": "1355517523.000005", "channel_type": "channel"
    });
    assert_eq!(
        parse_events_json(&serde_json::to_vec(&message).unwrap()).unwrap(),
        EventsBody::Ignored
    );

    let mut on_file = reaction_event("reaction_added");
    on_file["event"]["item"] = json!({ "type": "file", "file": "F0HS27V1Z" });
    assert_eq!(
        parse_events_json(&serde_json::to_vec(&on_file).unwrap()).unwrap(),
        EventsBody::Ignored
    );

    let limited = json!({
        "token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "type": "app_rate_limited",
        "team_id": "T123456", "minute_rate_limited": 1518467820, "api_app_id": "A123456"
    });
    assert_eq!(
        parse_events_json(&serde_json::to_vec(&limited).unwrap()).unwrap(),
        EventsBody::Ignored
    );

    assert!(parse_events_json(b"{not json").is_err());
    assert!(parse_events_json(br#"{"type":"something_else"}"#).is_err());
}

// ---- interactions

fn block_actions_payload() -> Value {
    json!({
        "type": "block_actions",
        "user": { "id": "U01BOB", "username": "bob", "name": "bob", "team_id": "T0001" },
        "api_app_id": "A123456",
        "token": "9s8d9as89d8as9d8as989",
        "container": {
            "type": "message", "message_ts": "1548261231.000200",
            "channel_id": "C01DEPLOYS", "is_ephemeral": false
        },
        "trigger_id": "12466734323.1395872398.f0e0b8a8c8",
        "team": { "id": "T0001", "domain": "example" },
        "enterprise": null,
        "is_enterprise_install": false,
        "channel": { "id": "C01DEPLOYS", "name": "deploys" },
        "message": {
            "type": "message", "user": "U0BOT", "ts": "1548261231.000200",
            "bot_id": "B0BOT", "text": "Migrations reviewed",
            "blocks": [
                { "type": "section", "block_id": "s1",
                  "text": { "type": "mrkdwn", "text": "Migrations reviewed", "verbatim": false } },
                { "type": "actions", "block_id": "greenlight_review", "elements": [
                    { "type": "button", "action_id": "greenlight_approve",
                      "text": { "type": "plain_text", "text": "Approve", "emoji": true },
                      "value": "greenlight_approve", "style": "primary" },
                    { "type": "button", "action_id": "greenlight_veto",
                      "text": { "type": "plain_text", "text": "Veto", "emoji": true },
                      "value": "greenlight_veto", "style": "danger" }
                ] }
            ]
        },
        "state": { "values": {} },
        "response_url": "https://hooks.slack.com/actions/T0001/1234/abcd",
        "actions": [
            {
                "action_id": "greenlight_veto",
                "block_id": "greenlight_review",
                "text": { "type": "plain_text", "text": "Veto", "emoji": true },
                "value": "greenlight_veto",
                "style": "danger",
                "type": "button",
                "action_ts": "1548426417.840180"
            }
        ]
    })
}

fn payload_form(payload: &Value) -> String {
    form(&[("payload", &payload.to_string())])
}

#[test]
fn block_actions_becomes_action() {
    let body = payload_form(&block_actions_payload());
    assert_eq!(
        parse_interaction_form(body.as_bytes()).unwrap(),
        Some(Inbound {
            platform: Platform::Slack,
            dedup: Some("12466734323.1395872398.f0e0b8a8c8".into()),
            user: "U01BOB".into(),
            channel: "C01DEPLOYS".into(),
            kind: Kind::Click {
                message: "1548261231.000200".into(),
                button: Button::Veto,
            },
            response_url: Some("https://hooks.slack.com/actions/T0001/1234/abcd".into()),
        })
    );
    // A button greenlight does not know is ignored.
    let mut other = block_actions_payload();
    other["actions"][0]["action_id"] = json!("someone_elses_button");
    let body = payload_form(&other);
    assert_eq!(parse_interaction_form(body.as_bytes()).unwrap(), None);
}

#[test]
fn other_interactions_are_errors() {
    let shortcut = json!({
        "type": "shortcut", "token": "XXXX", "action_ts": "1581106241.371594",
        "team": { "id": "T0001", "domain": "example" },
        "user": { "id": "U01BOB", "username": "bob", "team_id": "T0001" },
        "callback_id": "greenlight_shortcut", "trigger_id": "944799105734.773906753841.38b5894552bdd4a780554ee59d1f3638"
    });
    assert!(parse_interaction_form(payload_form(&shortcut).as_bytes()).is_err());
    let mut no_actions = block_actions_payload();
    no_actions["actions"] = json!([]);
    assert!(parse_interaction_form(payload_form(&no_actions).as_bytes()).is_err());
    assert!(parse_interaction_form(b"payload=%7Bnot%20json").is_err());
    assert!(parse_interaction_form(b"nopayload=1").is_err());
}

// ---- signatures

// Slack's documented example (https://api.slack.com/authentication/verifying-requests-from-slack),
// signature recomputed with `openssl dgst -sha256 -hmac 8f742231b10e8888abcd99yyyzzz85a5`.
const DOC_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const DOC_TS: &str = "1531420618";
const DOC_BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
const DOC_SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

#[test]
fn signature_good() {
    let now = 1_531_420_618;
    verify_signature(DOC_SECRET, DOC_TS, DOC_BODY.as_bytes(), DOC_SIG, now).unwrap();
    // Within the window either way.
    verify_signature(DOC_SECRET, DOC_TS, DOC_BODY.as_bytes(), DOC_SIG, now + 300).unwrap();
    verify_signature(DOC_SECRET, DOC_TS, DOC_BODY.as_bytes(), DOC_SIG, now - 300).unwrap();
    // A greenlight body, signed by hand:
    // printf 'v0:1700000000:{"type":"url_verification","challenge":"c"}' | openssl dgst -sha256 -hmac s3cret
    verify_signature(
        "s3cret",
        "1700000000",
        br#"{"type":"url_verification","challenge":"c"}"#,
        "v0=e0fe0c1c56b346603db1b2daa230abe2ce851fd8055b10b3cc8e231f205206f0",
        1_700_000_000,
    )
    .unwrap();
}

#[test]
fn signature_bad_missing_stale_future() {
    let now = 1_531_420_618;
    let body = DOC_BODY.as_bytes();
    let bad = DOC_SIG.replace("a2114d", "a2114e");
    assert!(verify_signature(DOC_SECRET, DOC_TS, body, &bad, now)
        .unwrap_err()
        .contains("does not match"));
    assert!(verify_signature("other-secret", DOC_TS, body, DOC_SIG, now).is_err());
    let tampered = DOC_BODY.replace("text=", "text=x");
    assert!(verify_signature(DOC_SECRET, DOC_TS, tampered.as_bytes(), DOC_SIG, now).is_err());
    assert!(verify_signature(DOC_SECRET, DOC_TS, body, "", now).is_err());
    assert!(verify_signature(DOC_SECRET, "", body, DOC_SIG, now).is_err());
    assert!(verify_signature(DOC_SECRET, "abc", body, DOC_SIG, now).is_err());
    assert!(verify_signature("", DOC_TS, body, DOC_SIG, now).is_err());
    // Stale (more than 300 s old) and from the future (more than 300 s ahead).
    let stale = verify_signature(DOC_SECRET, DOC_TS, body, DOC_SIG, now + 301).unwrap_err();
    assert!(stale.contains("300"), "{stale}");
    assert!(verify_signature(DOC_SECRET, DOC_TS, body, DOC_SIG, now - 301).is_err());
}

// ---- client construction

fn settings(api_url: &str) -> SlackSettings {
    SlackSettings {
        api_url: api_url.into(),
        bot_token: "xoxb-test".into(),
        app_token: Some("xapp-test".into()),
        request_timeout: Duration::from_secs(5),
    }
}

#[test]
fn http_only_for_loopback() {
    for ok in [
        "https://slack.com/api/",
        "https://slack-gov.com/api",
        "http://127.0.0.1:9/api/",
        "http://127.1.2.3:9/api/",
        "http://[::1]:9/api/",
        "http://localhost:9/api/",
    ] {
        SlackClient::new(&settings(ok)).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for bad in [
        "http://slack.com/api/",
        "http://10.0.0.1/api/",
        "http://127.0.0.1.example.com/api/",
        "ftp://127.0.0.1/api/",
        "not a url",
    ] {
        let err = SlackClient::new(&settings(bad)).unwrap_err();
        assert!(!err.contains('\n'), "{err}");
    }
    let mut no_token = settings("https://slack.com/api/");
    no_token.bot_token = String::new();
    assert!(SlackClient::new(&no_token).is_err());
    assert_eq!(
        api_base("https://slack.com/api/").unwrap(),
        ("https://slack.com/api".to_string(), false)
    );
}

#[test]
fn message_blocks() {
    let c = serde_json::to_value(message_content("*run 42* ok", true)).unwrap();
    assert_eq!(c["text"], "*run 42* ok");
    assert_eq!(c["blocks"][0]["type"], "section");
    assert_eq!(c["blocks"][0]["text"]["type"], "mrkdwn");
    assert_eq!(c["blocks"][0]["text"]["text"], "*run 42* ok");
    let actions = &c["blocks"][1];
    assert_eq!(actions["type"], "actions");
    assert_eq!(
        actions["elements"][0]["action_id"],
        Button::Approve.action_id()
    );
    assert_eq!(actions["elements"][0]["text"]["text"], "Approve");
    assert_eq!(actions["elements"][0]["text"]["type"], "plain_text");
    assert_eq!(actions["elements"][0]["style"], "primary");
    assert_eq!(
        actions["elements"][1]["action_id"],
        Button::Veto.action_id()
    );
    assert_eq!(actions["elements"][1]["text"]["text"], "Veto");
    assert_eq!(actions["elements"][1]["style"], "danger");
    let plain = serde_json::to_value(message_content("x", false)).unwrap();
    assert_eq!(plain["blocks"].as_array().unwrap().len(), 1);

    let long = format!("{}\n{}", "a".repeat(2500), "b".repeat(2000));
    let parts = split_sections(&long);
    assert_eq!(parts.len(), 2);
    assert_eq!(parts.concat(), long);
    assert!(parts
        .iter()
        .all(|p| p.chars().count() <= SECTION_TEXT_LIMIT));
    let huge = "é".repeat(SECTION_TEXT_LIMIT * 60);
    let parts = split_sections(&huge);
    assert_eq!(parts.len(), MAX_SECTIONS);
    assert!(parts
        .iter()
        .all(|p| p.chars().count() <= SECTION_TEXT_LIMIT));
    assert!(split_sections("").is_empty());
}

// ---- round trip against a recorder on 127.0.0.1

/// (method or "response_url", Authorization header, JSON body)
type Call = (String, Option<String>, Value);

#[derive(Clone, Default)]
struct Recorder {
    calls: Arc<Mutex<Vec<Call>>>,
}

async fn api(
    State(rec): State<Recorder>,
    Path(method): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let auth = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_string());
    rec.calls
        .lock()
        .unwrap()
        .push((method.clone(), auth, body.clone()));
    let channel = body["channel"].as_str().unwrap_or_default().to_string();
    match channel.as_str() {
        "C429" => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "1")],
            Json(json!({"ok": false, "error": "ratelimited"})),
        )
            .into_response(),
        "C500" => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        "CGONE" => Json(json!({"ok": false, "error": "channel_not_found"})).into_response(),
        "CHANG" => std::future::pending::<Response>().await,
        _ => {
            let ts = if method == "chat.update" {
                body["ts"].as_str().unwrap().to_string()
            } else {
                "1700000000.000100".to_string()
            };
            Json(json!({
                "ok": true, "channel": channel, "ts": ts,
                "message": { "type": "message", "text": body["text"], "ts": ts, "bot_id": "B0BOT" }
            }))
            .into_response()
        }
    }
}

async fn respond_hook(
    State(rec): State<Recorder>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> &'static str {
    let auth = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_string());
    rec.calls
        .lock()
        .unwrap()
        .push(("response_url".into(), auth, body));
    "ok"
}

async fn recorder() -> (String, Recorder) {
    let rec = Recorder::default();
    let app = Router::new()
        .route("/api/{method}", post(api))
        .route("/hooks/commands/{a}/{b}", post(respond_hook))
        .with_state(rec.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), rec)
}

#[tokio::test]
async fn round_trip_through_loopback() {
    let (base, rec) = recorder().await;
    let client = SlackClient::new(&settings(&format!("{base}/api/"))).unwrap();

    let ts = client
        .post_message("C01DEPLOYS", None, "📋 Pre-deployment checklist", false)
        .await
        .unwrap();
    assert_eq!(ts, "1700000000.000100");
    let reply = client
        .post_message("C01DEPLOYS", Some(&ts), "Migrations reviewed", true)
        .await
        .unwrap();
    assert_eq!(reply, "1700000000.000100");
    client
        .update_message("C01DEPLOYS", &ts, "✅ approved", false)
        .await
        .unwrap();
    client
        .respond(
            &format!("{base}/hooks/commands/T1/42"),
            "bad version",
            Visibility::Ephemeral,
        )
        .await
        .unwrap();
    client
        .respond(
            &format!("{base}/hooks/commands/T1/43"),
            "on it",
            Visibility::InChannel,
        )
        .await
        .unwrap();
    client
        .post_ephemeral(
            "C01DEPLOYS",
            Some("1700000000.000100"),
            "U01BOB",
            "you cannot approve your own run",
        )
        .await
        .unwrap();

    assert_eq!(
        client.post_message("C429", None, "x", false).await,
        Err(DeliveryError::rate_limited(
            Platform::Slack,
            Duration::from_secs(1)
        ))
    );
    assert!(matches!(
        client.update_message("C500", "1.2", "x", false).await,
        Err(DeliveryError {
            kind: ErrorKind::Transient,
            detail: _,
            ..
        })
    ));
    match client.post_message("CGONE", None, "x", false).await {
        Err(DeliveryError {
            kind: ErrorKind::Permanent,
            detail: m,
            ..
        }) => assert!(m.contains("channel_not_found"), "{m}"),
        other => panic!("{other:?}"),
    }

    let calls = rec.calls.lock().unwrap().clone();
    let (m, auth, first) = &calls[0];
    assert_eq!(m, "chat.postMessage");
    assert_eq!(auth.as_deref(), Some("Bearer xoxb-test"));
    assert_eq!(first["channel"], "C01DEPLOYS");
    assert_eq!(first["text"], "📋 Pre-deployment checklist");
    assert!(first.get("thread_ts").is_none());
    assert_eq!(first["blocks"].as_array().unwrap().len(), 1);

    let (_, _, second) = &calls[1];
    assert_eq!(second["thread_ts"], "1700000000.000100");
    assert_eq!(second["blocks"][1]["type"], "actions");
    assert_eq!(
        second["blocks"][1]["elements"][0]["action_id"],
        "greenlight_approve"
    );
    assert_eq!(
        second["blocks"][1]["elements"][1]["action_id"],
        "greenlight_veto"
    );

    let (m, _, update) = &calls[2];
    assert_eq!(m, "chat.update");
    assert_eq!(update["ts"], "1700000000.000100");
    assert_eq!(update["text"], "✅ approved");
    assert_eq!(update["blocks"].as_array().unwrap().len(), 1);

    let (m, auth, eph) = &calls[3];
    assert_eq!(m, "response_url");
    assert_eq!(auth, &None, "the bot token never goes to a response_url");
    assert_eq!(eph["response_type"], "ephemeral");
    assert_eq!(eph["text"], "bad version");
    assert_eq!(eph["replace_original"], false);
    let (_, _, public) = &calls[4];
    assert_eq!(public["response_type"], "in_channel");

    let (m, _, pe) = &calls[5];
    assert_eq!(m, "chat.postEphemeral");
    assert_eq!(pe["user"], "U01BOB");
    assert_eq!(pe["channel"], "C01DEPLOYS");
    assert_eq!(pe["thread_ts"], "1700000000.000100");
}

#[tokio::test]
async fn a_call_that_never_answers_times_out() {
    let (base, _rec) = recorder().await;
    let mut s = settings(&format!("{base}/api/"));
    // tokio's paused clock needs `test-util`, not enabled here; the timeout itself is the
    // thing under test, so it is kept tiny.
    s.request_timeout = Duration::from_millis(20);
    let client = SlackClient::new(&s).unwrap();
    match client.post_message("CHANG", None, "x", false).await {
        Err(DeliveryError {
            kind: ErrorKind::Transient,
            detail: m,
            ..
        }) => assert!(m.contains("no answer"), "{m}"),
        other => panic!("{other:?}"),
    }
}

// ---- Socket Mode against a loopback fake (apps.connections.open + a WebSocket)

#[derive(Clone)]
struct FakeSocketSlack {
    ws_url: Arc<Mutex<String>>,
    opens: Arc<Mutex<Vec<Option<String>>>>,
    sockets: tokio::sync::mpsc::UnboundedSender<axum::extract::ws::WebSocket>,
}

async fn connections_open(State(f): State<FakeSocketSlack>, headers: HeaderMap) -> Json<Value> {
    let auth = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_string());
    f.opens.lock().unwrap().push(auth);
    let url = f.ws_url.lock().unwrap().clone();
    Json(json!({ "ok": true, "url": url }))
}

async fn ws_upgrade(
    State(f): State<FakeSocketSlack>,
    ws: axum::extract::ws::WebSocketUpgrade,
) -> Response {
    ws.on_upgrade(move |socket| async move {
        let _ = f.sockets.send(socket);
    })
}

async fn next_text(socket: &mut axum::extract::ws::WebSocket) -> Value {
    use axum::extract::ws::Message;
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), socket.recv())
            .await
            .expect("no frame within 10 s")
            .expect("socket closed")
            .unwrap();
        if let Message::Text(t) = msg {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

/// Awaits `f` with a 10 s deadline (a hang fails the test instead of blocking it).
async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("nothing within 10 s")
}

async fn send(socket: &mut axum::extract::ws::WebSocket, v: Value) {
    socket
        .send(axum::extract::ws::Message::Text(v.to_string().into()))
        .await
        .unwrap();
}

#[tokio::test]
async fn socket_mode_converts_acks_and_reconnects_on_disconnect() {
    let (sock_tx, mut sock_rx) = tokio::sync::mpsc::unbounded_channel();
    let fake = FakeSocketSlack {
        ws_url: Arc::default(),
        opens: Arc::default(),
        sockets: sock_tx,
    };
    let app = Router::new()
        .route("/api/apps.connections.open", post(connections_open))
        .route("/ws", axum::routing::get(ws_upgrade))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    *fake.ws_url.lock().unwrap() = format!("ws://{addr}/ws");
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // The app's side: each event with its reply channel, answered by the test.
    let (in_tx, mut in_rx) =
        tokio::sync::mpsc::unbounded_channel::<(Inbound, crate::chat::Reply)>();
    let inbox = Inbox::new(move |inbound, reply| {
        let sent = in_tx.send((inbound, reply)).is_ok();
        async move { sent }
    });
    let handled = |(inbound, reply): (Inbound, crate::chat::Reply)| {
        let _ = reply.send(Ok(Handled::default()));
        inbound
    };
    let telemetry = Telemetry::new();
    let sm = SocketMode::start_with_reconnect(
        &settings(&format!("http://{addr}/api/")),
        inbox,
        &telemetry,
        Duration::from_secs(1),
    )
    .await
    .unwrap();

    let mut socket = within(sock_rx.recv()).await.unwrap();
    // Socket open, no hello yet: not connected.
    assert_eq!(telemetry.connected_gauge(Platform::Slack), 0);
    send(
        &mut socket,
        json!({"type": "hello", "num_connections": 1,
               "debug_info": {"host": "applink-1", "build_number": 1, "approximate_connection_time": 18060},
               "connection_info": {"app_id": "A123456"}}),
    )
    .await;

    let command = json!({
        "token": "t", "team_id": "T0001", "team_domain": "example", "channel_id": "C01DEPLOYS",
        "channel_name": "deploys", "user_id": "U01ALICE", "user_name": "alice",
        "command": "/deploy", "text": "v1.2.0 prod", "api_app_id": "A123456",
        "is_enterprise_install": "false",
        "response_url": "https://hooks.slack.com/commands/T0001/1/x", "trigger_id": "111.222.abc"
    });
    send(
        &mut socket,
        json!({"envelope_id": "env-1", "payload": command, "type": "slash_commands",
               "accepts_response_payload": true}),
    )
    .await;
    let (inbound, reply) = within(in_rx.recv()).await.unwrap();
    assert_eq!(
        inbound,
        Inbound {
            platform: Platform::Slack,
            dedup: Some("111.222.abc".into()),
            user: "U01ALICE".into(),
            channel: "C01DEPLOYS".into(),
            kind: Kind::Message {
                text: "/deploy v1.2.0 prod".into(),
                thread: None,
            },
            response_url: Some("https://hooks.slack.com/commands/T0001/1/x".into()),
        }
    );
    // Not acked while the app has not handled (and written) it: a crash now loses nothing,
    // Slack redelivers.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), next_text(&mut socket))
            .await
            .is_err(),
        "acked before the command was handled"
    );
    let _ = reply.send(Ok(Handled::default()));
    // Acked with no payload: nothing is shown to the user until greenlight answers.
    assert_eq!(
        next_text(&mut socket).await,
        json!({"envelope_id": "env-1"})
    );
    // The hello (handled before the envelope) marked the connection up.
    assert_eq!(telemetry.connected_gauge(Platform::Slack), 1);
    assert!(telemetry.problems(|_| 0).is_empty());

    send(
        &mut socket,
        json!({"envelope_id": "env-2", "payload": reaction_event("reaction_removed"),
               "type": "events_api", "accepts_response_payload": false,
               "retry_attempt": 0, "retry_reason": ""}),
    )
    .await;
    let inbound = handled(within(in_rx.recv()).await.unwrap());
    assert_eq!(
        next_text(&mut socket).await,
        json!({"envelope_id": "env-2"})
    );
    assert!(matches!(
        inbound,
        Inbound { kind: Kind::Reaction { added: false, .. }, ref dedup, .. }
            if dedup.as_deref() == Some("Ev0PV52K21")
    ));

    send(
        &mut socket,
        json!({"envelope_id": "env-3", "payload": block_actions_payload(),
               "type": "interactive", "accepts_response_payload": false}),
    )
    .await;
    let inbound = handled(within(in_rx.recv()).await.unwrap());
    assert_eq!(
        next_text(&mut socket).await,
        json!({"envelope_id": "env-3"})
    );
    assert!(matches!(
        inbound.kind,
        Kind::Click {
            button: Button::Veto,
            ..
        }
    ));

    // `disconnect` makes slack-morphism open a new connection through apps.connections.open.
    send(
        &mut socket,
        json!({"type": "disconnect", "reason": "refresh_requested",
               "debug_info": {"host": "applink-1"}}),
    )
    .await;
    let mut second = within(sock_rx.recv()).await.unwrap();
    // Reconnecting through apps.connections.open: down until the new socket's hello.
    assert_eq!(telemetry.connected_gauge(Platform::Slack), 0);
    let why = telemetry.problems(|_| 0).join("; ");
    assert!(
        why.starts_with("slack: not connected since ") && why.contains("reconnecting"),
        "{why}"
    );
    let opens = fake.opens.lock().unwrap().clone();
    assert_eq!(opens.len(), 2);
    assert!(opens
        .iter()
        .all(|a| a.as_deref() == Some("Bearer xapp-test")));
    send(
        &mut second,
        json!({"envelope_id": "env-4", "payload": reaction_event("reaction_added"),
               "type": "events_api", "accepts_response_payload": false}),
    )
    .await;
    let inbound = handled(within(in_rx.recv()).await.unwrap());
    assert_eq!(
        next_text(&mut second).await,
        json!({"envelope_id": "env-4"})
    );
    // No hello on this socket, but an envelope came through it: connected.
    assert_eq!(telemetry.connected_gauge(Platform::Slack), 1);
    assert!(matches!(inbound.kind, Kind::Reaction { added: true, .. }));

    sm.shutdown().await;
    // The client closes its socket; no new connection is opened.
    loop {
        match within(second.recv()).await {
            Some(Ok(axum::extract::ws::Message::Close(_))) | None | Some(Err(_)) => break,
            Some(Ok(_)) => {}
        }
    }
    assert_eq!(fake.opens.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn socket_mode_needs_an_app_token() {
    let mut s = settings("https://slack.com/api/");
    s.app_token = None;
    let inbox = Inbox::new(|_, _| async { false });
    assert!(SocketMode::start(&s, inbox, &Telemetry::new())
        .await
        .is_err());
}

#[tokio::test]
async fn production_client_refuses_a_plain_http_response_url() {
    let client = SlackClient::new(&settings("https://slack.com/api/")).unwrap();
    match client
        .respond(
            "http://hooks.example.com/commands/1",
            "x",
            Visibility::Ephemeral,
        )
        .await
    {
        Err(DeliveryError {
            kind: ErrorKind::Permanent,
            detail: m,
            ..
        }) => assert!(m.contains("https"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn connection_refused_is_transient() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = SlackClient::new(&settings(&format!("http://{addr}/api/"))).unwrap();
    match client.post_message("C1", None, "x", false).await {
        // Readable, on one line: what /readyz shows.
        Err(DeliveryError {
            kind: ErrorKind::Transient,
            detail: m,
            ..
        }) => assert!(
            m.starts_with("chat.postMessage: ")
                && m.contains("onnection refused")
                && !m.contains("Some(")
                && !m.contains('\n'),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
}
