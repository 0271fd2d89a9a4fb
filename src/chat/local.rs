//! The local channel: a chat served by the bot itself (JSON API under `/api/local/` and the page
//! at `/`). Converts core posts to stored messages; its messages live in the store.

use super::inbound::{Inbound, Inbox, Kind};
use crate::config::Config;
use crate::core::message::{Post, Room};
use crate::core::Platform;
use crate::store::{LocalMessage, Reaction, Store, WriteSet};
use anyhow::Result;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::sync::Arc;

pub const BOT_USER: &str = "greenlight";
pub const PAGE: &str = include_str!("local_page.html");
/// The longest message text, in characters (Slack's cap; Discord's is 2,000).
pub const MAX_TEXT_CHARS: usize = 40_000;
/// The largest request body of the local API. A maximal text JSON-escaped fits many times;
/// the margin lets a merely too-long text be read whole and refused with a JSON answer (a
/// body over the limit is cut off mid-send, which a client sees as a reset connection).
pub const BODY_LIMIT: usize = 4 << 20;
/// The longest user, channel, id or emoji name accepted.
const MAX_NAME_CHARS: usize = 200;
/// The response header carrying the cursor for the next incremental read.
pub const CURSOR_HEADER: &str = "x-greenlight-cursor";

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

/// Adds or removes `user`'s reaction; true when something changed.
pub fn toggle_reaction(msg: &mut LocalMessage, user: &str, emoji: &str, add: bool) -> bool {
    let emoji = crate::core::checklist::base_name(emoji);
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
            if let Some(id) = ws.id_for_key(&key.to_string())? {
                if let Some(mut m) = ws.message(id)? {
                    m.text = render_text(&p.text);
                    ws.update_message(id, m);
                    return Ok(());
                }
            }
        }
    }
    let thread = match &p.thread {
        Some(k) => ws.id_for_key(&k.to_string())?.map(|id| id.to_string()),
        None => None,
    };
    let visible_to = p.to.as_ref().map(|u| u.0.clone());
    add_bot_message(
        ws,
        channel,
        thread,
        &p.text,
        visible_to,
        p.key.map(|k| k.to_string()),
        now,
    )?;
    Ok(())
}

// ---- HTTP handlers ----------------------------------------------------------------------

fn error(status: u16, message: impl Into<String>) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    (code, Json(serde_json::json!({"error": message.into()}))).into_response()
}

/// Parses a JSON object body (an array or any other JSON value is refused).
fn parse_body<T: for<'de> Deserialize<'de>>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, Box<Response>> {
    let body = body
        .map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                error(
                    413,
                    format!("the request body is too large (at most {BODY_LIMIT} bytes)"),
                )
            } else {
                let t = r.body_text();
                error(
                    r.status().as_u16(),
                    format!(
                        "bad request: {}",
                        t.lines().next().unwrap_or("unreadable body")
                    ),
                )
            }
        })
        .map_err(Box::new)?;
    let first_line = |e: serde_json::Error| {
        let msg = e.to_string();
        Box::new(error(
            400,
            format!("bad request: {}", msg.lines().next().unwrap_or("bad JSON")),
        ))
    };
    let v: serde_json::Value = serde_json::from_slice(&body).map_err(first_line)?;
    if !v.is_object() {
        return Err(Box::new(error(
            400,
            "bad request: the body must be a JSON object",
        )));
    }
    serde_json::from_value(v).map_err(first_line)
}

/// Refuses over-long names before they reach the loop (or an error line that echoes them).
fn check_names(fields: &[(&str, Option<&str>)]) -> Result<(), Box<Response>> {
    for (name, v) in fields {
        if v.is_some_and(|v| v.chars().count() > MAX_NAME_CHARS) {
            return Err(Box::new(error(
                400,
                format!("{name} is too long (at most {MAX_NAME_CHARS} characters)"),
            )));
        }
    }
    Ok(())
}

/// A message text must have something visible in it and at most `MAX_TEXT_CHARS` characters.
pub fn check_text(text: &str) -> Result<(), (u16, String)> {
    let n = text.chars().count();
    if n > MAX_TEXT_CHARS {
        return Err((
            413,
            format!("text is too long: {n} characters (at most {MAX_TEXT_CHARS})"),
        ));
    }
    let invisible = |c: char| {
        c.is_whitespace()
            || c.is_control()
            || matches!(c, '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}')
    };
    if text.chars().all(invisible) {
        return Err((
            400,
            "text is empty: it has only whitespace or control characters".into(),
        ));
    }
    Ok(())
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

/// What the local channel's API needs: the app's inbox, and the store and config it reads.
#[derive(Clone)]
pub struct LocalApi {
    pub inbox: Inbox,
    pub store: Store,
    pub cfg: Arc<Config>,
}

pub async fn page() -> Html<&'static str> {
    Html(PAGE)
}

#[derive(Deserialize)]
pub struct MessagesQuery {
    /// Whose private replies to include (none without it).
    #[serde(rename = "as")]
    as_user: Option<String>,
    /// Only what changed after this cursor (a previous answer's `X-Greenlight-Cursor`).
    after: Option<String>,
}

/// Every message (or, with `after`, those created or changed since that cursor) that is public
/// or meant for `as`, in id order; the cursor for the next read is in `X-Greenlight-Cursor`.
pub async fn get_messages(
    State(h): State<LocalApi>,
    q: Result<Query<MessagesQuery>, QueryRejection>,
) -> Response {
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => return error(400, format!("bad query: {}", first_line(&e.body_text()))),
    };
    if let Some(u) = &q.as_user {
        if !h
            .cfg
            .users
            .contains_key(&crate::core::UserId::new(u.as_str()))
        {
            return error(
                400,
                format!("unknown user \"{}\": not a key under [users]", clip(u)),
            );
        }
    }
    let after = match q.after.as_deref().map(str::parse::<u64>) {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => {
            return error(
                400,
                "bad query: after must be a cursor from X-Greenlight-Cursor (a number)",
            )
        }
    };
    // The cursor is taken before reading: whatever changes meanwhile is numbered above it.
    let cursor = h.store.message_cursor();
    let read = match after {
        // A cursor ahead of this store's (another data directory): everything, as without it.
        Some(a) if a <= cursor => h.store.messages_changed(a, cursor),
        _ => h.store.messages(),
    };
    match read {
        Ok(mut msgs) => {
            msgs.retain(|m| {
                m.visible_to.is_none() || m.visible_to.as_deref() == q.as_user.as_deref()
            });
            (
                [
                    (CURSOR_HEADER, cursor.to_string()),
                    ("cache-control", "no-store".to_string()),
                ],
                Json(msgs),
            )
                .into_response()
        }
        Err(e) => error(500, format!("cannot read messages: {e}")),
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

fn clip(s: &str) -> String {
    s.chars().take(MAX_NAME_CHARS).collect()
}

pub async fn get_users(State(h): State<LocalApi>) -> Response {
    Json(h.cfg.users.keys().map(|u| u.0.clone()).collect::<Vec<_>>()).into_response()
}

pub async fn post_message(
    State(h): State<LocalApi>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let b: PostBody = match parse_body(body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    if let Err(r) = check_names(&[
        ("user", Some(&b.user)),
        ("thread_id", b.thread_id.as_deref()),
        ("channel", b.channel.as_deref()),
    ]) {
        return *r;
    }
    if let Err((status, m)) = check_text(&b.text) {
        return error(status, m);
    }
    let inbound = Inbound {
        platform: Platform::Local,
        dedup: None,
        user: b.user,
        channel: b.channel.unwrap_or_else(|| "deploys".to_string()),
        kind: Kind::Message {
            text: b.text,
            thread: b.thread_id,
        },
        response_url: None,
    };
    match h.inbox.handle(inbound).await {
        Ok(done) => (
            StatusCode::CREATED,
            Json(serde_json::json!({"id": done.message_id.unwrap_or_default()})),
        )
            .into_response(),
        Err(e) => error(e.status, e.message),
    }
}

pub async fn add_reaction(
    State(h): State<LocalApi>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    react(h, body, true).await
}

pub async fn remove_reaction(
    State(h): State<LocalApi>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    react(h, body, false).await
}

async fn react(h: LocalApi, body: Result<Bytes, BytesRejection>, add: bool) -> Response {
    let b: ReactionBody = match parse_body(body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    if let Err(r) = check_names(&[
        ("user", Some(&b.user)),
        ("message_id", Some(&b.message_id)),
        ("emoji", Some(&b.emoji)),
    ]) {
        return *r;
    }
    let inbound = Inbound {
        platform: Platform::Local,
        dedup: None,
        user: b.user,
        channel: String::new(),
        kind: Kind::Reaction {
            message: b.message_id,
            emoji: b.emoji,
            added: add,
        },
        response_url: None,
    };
    match h.inbox.handle(inbound).await {
        Ok(done) if add => {
            let code = if done.changed {
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
