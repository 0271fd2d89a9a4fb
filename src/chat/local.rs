//! The local channel: a chat served by the bot itself (JSON API under `/api/local/` and the page
//! at `/`). Converts core posts to stored messages; its messages live in the store.

use crate::app::{ApiError, AppEvent, Handle};
use crate::config::Config;
use crate::core::message::{Post, Room};
use crate::store::{LocalMessage, Reaction, WriteSet};
use anyhow::Result;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::sync::oneshot;

pub const BOT_USER: &str = "greenlight";
pub const PAGE: &str = include_str!("local_page.html");

/// Every channel name the local channel knows: the three defaults and those environments name.
pub fn known_channels(cfg: &Config) -> BTreeSet<String> {
    let mut s: BTreeSet<String> = ["deploys", "incidents", "announce"]
        .iter()
        .map(|c| c.to_string())
        .collect();
    for e in cfg.environments.values() {
        s.insert(e.channels.deploys.clone());
        s.insert(e.channels.incidents.clone());
        s.insert(e.channels.announce.clone());
    }
    s
}

/// Mentions are written `<@name>` by the core; the local channel shows `@name`.
pub fn render_text(text: &str) -> String {
    crate::core::message::render_mentions(text, |name| format!("@{name}"))
}

/// Normalises an emoji short name: skin-tone variants count as the base; `thumbsup` is `+1`.
pub fn base_emoji(e: &str) -> String {
    let base = e.split("::").next().unwrap_or(e);
    match base {
        "thumbsup" => "+1".to_string(),
        other => other.to_string(),
    }
}

/// Adds or removes `user`'s reaction; true when something changed.
pub fn toggle_reaction(msg: &mut LocalMessage, user: &str, emoji: &str, add: bool) -> bool {
    let emoji = base_emoji(emoji);
    let pos = msg.reactions.iter().position(|r| r.emoji == emoji);
    if add {
        match pos {
            Some(i) if msg.reactions[i].users.iter().any(|u| u == user) => false,
            Some(i) => {
                msg.reactions[i].users.push(user.to_string());
                true
            }
            None => {
                msg.reactions.push(Reaction {
                    emoji,
                    users: vec![user.to_string()],
                });
                true
            }
        }
    } else {
        match pos {
            Some(i) => match msg.reactions[i].users.iter().position(|u| u == user) {
                Some(j) => {
                    msg.reactions[i].users.remove(j);
                    if msg.reactions[i].users.is_empty() {
                        msg.reactions.remove(i);
                    }
                    true
                }
                None => false,
            },
            None => false,
        }
    }
}

pub fn add_bot_message(
    ws: &mut WriteSet<'_>,
    channel: &str,
    thread_id: Option<String>,
    text: &str,
    visible_to: Option<String>,
    key: Option<String>,
    now: DateTime<Utc>,
) -> Result<u64> {
    ws.add_message(LocalMessage {
        id: String::new(),
        channel: channel.to_string(),
        user: BOT_USER.to_string(),
        text: render_text(text),
        thread_id,
        ts: now,
        visible_to,
        reactions: vec![],
        key,
    })
}

/// Writes one core post into the local channel (in the same batch as the state change, so a
/// post is neither lost nor duplicated by a crash).
pub fn render_post(
    ws: &mut WriteSet<'_>,
    cfg: &Config,
    p: &Post,
    now: DateTime<Utc>,
) -> Result<()> {
    let Some(env) = cfg.env(&p.env) else {
        return Ok(());
    };
    let channel = match p.room {
        Room::Deploys => &env.channels.deploys,
        Room::Incidents => &env.channels.incidents,
        Room::Announce => &env.channels.announce,
    };
    if p.edit {
        if let Some(key) = &p.key {
            if let Some(id) = ws.id_for_key(key)? {
                if let Some(mut m) = ws.message(id)? {
                    m.text = render_text(&p.text);
                    ws.update_message(id, m);
                    return Ok(());
                }
            }
        }
    }
    let thread = match &p.thread {
        Some(k) => ws.id_for_key(k)?.map(|id| id.to_string()),
        None => None,
    };
    let visible_to = p.to.as_ref().map(|u| u.0.clone());
    add_bot_message(ws, channel, thread, &p.text, visible_to, p.key.clone(), now)?;
    Ok(())
}

/// Steady synthetic traffic through a demo router (about 20 requests a second), with the demo
/// app's login, dashboard and checkout in the mix. Runs until aborted.
pub async fn synthetic_traffic(client: reqwest::Client, url: String) {
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut token: Option<String> = None;
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        n += 1;
        let c = client.clone();
        let u = url.clone();
        match n % 4 {
            0 => {
                let r = c
                    .post(format!("{u}/login"))
                    .json(&serde_json::json!({"user": "demo", "password": "demo"}))
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await;
                if let Ok(r) = r {
                    if let Ok(v) = r.json::<serde_json::Value>().await {
                        token = v.get("token").and_then(|t| t.as_str()).map(String::from);
                    }
                }
            }
            1 if token.is_some() => {
                let t = token.clone().unwrap_or_default();
                tokio::spawn(async move {
                    let _ = c
                        .get(format!("{u}/dashboard"))
                        .bearer_auth(t)
                        .timeout(Duration::from_secs(2))
                        .send()
                        .await;
                });
            }
            2 if token.is_some() => {
                let t = token.clone().unwrap_or_default();
                tokio::spawn(async move {
                    let _ = c
                        .post(format!("{u}/checkout"))
                        .bearer_auth(t)
                        .json(&serde_json::json!({"item": "synthetic", "qty": 1}))
                        .timeout(Duration::from_secs(2))
                        .send()
                        .await;
                });
            }
            _ => {
                tokio::spawn(async move {
                    let _ = c
                        .get(format!("{u}/"))
                        .timeout(Duration::from_secs(2))
                        .send()
                        .await;
                });
            }
        }
    }
}

// ---- HTTP handlers ----------------------------------------------------------------------

fn error(status: u16, message: impl Into<String>) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    (code, Json(serde_json::json!({"error": message.into()}))).into_response()
}

fn parse_body<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| {
        let msg = e.to_string();
        format!("bad request: {}", msg.lines().next().unwrap_or("bad JSON"))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PostBody {
    user: String,
    text: String,
    #[serde(default)]
    thread_id: Option<String>,
    #[serde(default)]
    channel: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReactionBody {
    user: String,
    message_id: String,
    emoji: String,
}

pub async fn page() -> Html<&'static str> {
    Html(PAGE)
}

pub async fn get_messages(State(h): State<Handle>) -> Response {
    match h.store.messages() {
        Ok(msgs) => Json(msgs).into_response(),
        Err(e) => error(500, format!("cannot read messages: {e}")),
    }
}

pub async fn get_users(State(h): State<Handle>) -> Response {
    Json(h.cfg.users.keys().map(|u| u.0.clone()).collect::<Vec<_>>()).into_response()
}

pub async fn post_message(State(h): State<Handle>, body: Bytes) -> Response {
    let b: PostBody = match parse_body(&body) {
        Ok(b) => b,
        Err(m) => return error(400, m),
    };
    let (tx, rx) = oneshot::channel();
    let ev = AppEvent::LocalPost {
        user: b.user,
        text: b.text,
        channel: b.channel,
        thread_id: b.thread_id,
        reply: tx,
    };
    match send(&h, ev, rx).await {
        Ok(id) => (StatusCode::CREATED, Json(serde_json::json!({"id": id}))).into_response(),
        Err(e) => error(e.status, e.message),
    }
}

pub async fn add_reaction(State(h): State<Handle>, body: Bytes) -> Response {
    react(h, body, true).await
}

pub async fn remove_reaction(State(h): State<Handle>, body: Bytes) -> Response {
    react(h, body, false).await
}

async fn react(h: Handle, body: Bytes, add: bool) -> Response {
    let b: ReactionBody = match parse_body(&body) {
        Ok(b) => b,
        Err(m) => return error(400, m),
    };
    let (tx, rx) = oneshot::channel();
    let ev = AppEvent::LocalReaction {
        user: b.user,
        message_id: b.message_id,
        emoji: b.emoji,
        add,
        reply: tx,
    };
    match send(&h, ev, rx).await {
        Ok(changed) if add => {
            let code = if changed {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (code, Json(serde_json::json!({"ok": true}))).into_response()
        }
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error(e.status, e.message),
    }
}

async fn send<T>(
    h: &Handle,
    ev: AppEvent,
    rx: oneshot::Receiver<Result<T, ApiError>>,
) -> Result<T, ApiError> {
    if h.tx.send(ev).await.is_err() {
        return Err(ApiError::new(503, "greenlight is shutting down"));
    }
    match rx.await {
        Ok(r) => r,
        Err(_) => Err(ApiError::new(503, "greenlight is shutting down")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_render_as_at_names() {
        assert_eq!(
            render_text("hi <@bob> and <@carol>!"),
            "hi @bob and @carol!"
        );
        assert_eq!(render_text("a <@unclosed"), "a <@unclosed");
    }

    #[test]
    fn reactions_toggle_and_normalise() {
        let mut m = LocalMessage {
            id: "1".into(),
            channel: "deploys".into(),
            user: "greenlight".into(),
            text: "x".into(),
            thread_id: None,
            ts: Utc::now(),
            visible_to: None,
            reactions: vec![],
            key: None,
        };
        assert!(toggle_reaction(&mut m, "bob", "thumbsup", true));
        assert!(!toggle_reaction(&mut m, "bob", "+1::skin-tone-2", true));
        assert_eq!(m.reactions[0].emoji, "+1");
        assert!(toggle_reaction(&mut m, "bob", "+1", false));
        assert!(m.reactions.is_empty());
        assert!(!toggle_reaction(&mut m, "bob", "+1", false));
    }
}
