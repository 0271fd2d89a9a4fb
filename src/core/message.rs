//! Platform-neutral messages and the lifecycle texts, word for word. Chat adapters render
//! `Post`s; mentions are written `<@person>` and rendered per platform.

use super::{Colour, EnvName, RunId, UserId};
use serde::{Deserialize, Serialize};

/// Which of an environment's channels a post goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Room {
    Deploys,
    Incidents,
    Announce,
}

/// One message to post (or edit) in an environment's channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Post {
    pub env: EnvName,
    pub room: Room,
    /// Stable key of this message (for threading under it and for edits).
    pub key: Option<String>,
    /// Key of the thread parent, for a thread reply.
    pub thread: Option<String>,
    pub text: String,
    /// Replace the message with the same key, or post it if it does not exist yet.
    pub edit: bool,
    /// Meant for this person only: local `visible_to`, a Slack ephemeral message; Discord has
    /// no private reply to a reaction, so there it is posted in the thread.
    #[serde(default)]
    pub to: Option<UserId>,
}

impl Post {
    pub fn top(env: &EnvName, room: Room, text: impl Into<String>) -> Post {
        Post {
            env: env.clone(),
            room,
            key: None,
            thread: None,
            text: text.into(),
            edit: false,
            to: None,
        }
    }
    pub fn keyed(mut self, key: impl Into<String>) -> Post {
        self.key = Some(key.into());
        self
    }
    pub fn in_thread(mut self, parent: impl Into<String>) -> Post {
        self.thread = Some(parent.into());
        self
    }
    pub fn editing(mut self) -> Post {
        self.edit = true;
        self
    }
    pub fn only_for(mut self, user: &UserId) -> Post {
        self.to = Some(user.clone());
        self
    }
}

/// At most `max` characters of `s` (user input echoed back), with `…` when cut.
pub fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Replaces every `<@person>` mention marker with what `render` makes of the person's name;
/// an unclosed marker is left as it is.
pub fn render_mentions(text: &str, render: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("<@") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find('>') {
            Some(j) => {
                out.push_str(&render(&after[..j]));
                rest = &after[j + 1..];
            }
            None => {
                out.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Message keys of a run: the checklist parent is the thread everything else hangs under.
pub fn checklist_key(run: RunId) -> String {
    format!("run-{run}/checklist")
}
pub fn item_key(run: RunId, i: usize) -> String {
    format!("run-{run}/item-{i}")
}
pub fn status_key(run: RunId) -> String {
    format!("run-{run}/status")
}

/// What a message key points at, for reactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRef {
    Checklist(RunId),
    Item(RunId, usize),
    Other(RunId),
}

pub fn parse_key(key: &str) -> Option<KeyRef> {
    let rest = key.strip_prefix("run-")?;
    let (id, what) = rest.split_once('/')?;
    let id = RunId(id.parse().ok()?);
    Some(if what == "checklist" {
        KeyRef::Checklist(id)
    } else if let Some(i) = what.strip_prefix("item-") {
        KeyRef::Item(id, i.parse().ok()?)
    } else {
        KeyRef::Other(id)
    })
}

// ---- lifecycle texts (the seed's, word for word) ----

pub fn deploying(version: &str, display: &str) -> String {
    format!("🚀 Deploying {version} to {display}...")
}

pub fn deployed_monitoring() -> String {
    "✅ Deployment successful. Monitoring.".to_string()
}

pub fn failed_rolling_back(reason: &str) -> String {
    format!("❌ Deployment failed. Rolling back. Reason: {reason}")
}

pub fn failed_before_switch(reason: &str, live: Option<Colour>) -> String {
    match live {
        Some(c) => format!("❌ Deployment failed. Reason: {reason}. Live traffic was never switched: {c} stays live."),
        None => format!("❌ Deployment failed. Reason: {reason}. Live traffic was never switched: nothing was live before this deploy."),
    }
}

pub fn checklist_parent(version: &str, display: &str, run: RunId) -> String {
    format!("📋 Pre-deployment checklist: {version} → {display} (run {run})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_texts_are_the_seeds() {
        assert_eq!(
            deploying("v1.2.0", "Production"),
            "🚀 Deploying v1.2.0 to Production..."
        );
        assert_eq!(
            deployed_monitoring(),
            "✅ Deployment successful. Monitoring."
        );
        assert_eq!(
            failed_rolling_back("x"),
            "❌ Deployment failed. Rolling back. Reason: x"
        );
        assert_eq!(
            checklist_parent("v1.2.0", "Production", RunId(42)),
            "📋 Pre-deployment checklist: v1.2.0 → Production (run 42)"
        );
        assert_eq!(
            failed_before_switch("health check failed", Some(Colour::Blue)),
            "❌ Deployment failed. Reason: health check failed. Live traffic was never switched: blue stays live."
        );
    }

    #[test]
    fn keys_round_trip() {
        assert_eq!(
            parse_key(&checklist_key(RunId(7))),
            Some(KeyRef::Checklist(RunId(7)))
        );
        assert_eq!(
            parse_key(&item_key(RunId(7), 3)),
            Some(KeyRef::Item(RunId(7), 3))
        );
        assert_eq!(
            parse_key(&status_key(RunId(7))),
            Some(KeyRef::Other(RunId(7)))
        );
        assert_eq!(parse_key("hello"), None);
    }
}
