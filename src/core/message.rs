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
    pub key: Option<MsgKey>,
    /// Key of the thread parent, for a thread reply.
    pub thread: Option<MsgKey>,
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
    pub fn keyed(mut self, key: MsgKey) -> Post {
        self.key = Some(key);
        self
    }
    /// A reply in run `run`'s checklist thread.
    pub fn in_thread(mut self, run: RunId) -> Post {
        self.thread = Some(MsgKey::Checklist(run));
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

/// The stable key of a message the core posts: the checklist parent is the thread everything
/// else of a run hangs under. Stored and sent as text (`run-7/checklist`, `run-7/item-0`,
/// `run-7/status`), exactly as when keys were strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MsgKey {
    Checklist(RunId),
    Item(RunId, usize),
    Status(RunId),
}

impl MsgKey {
    /// The run the message belongs to.
    pub fn run(self) -> RunId {
        match self {
            MsgKey::Checklist(id) | MsgKey::Item(id, _) | MsgKey::Status(id) => id,
        }
    }

    /// The key of a message the core posted; `None` for any other text (a chat message).
    pub fn parse(key: &str) -> Option<MsgKey> {
        let rest = key.strip_prefix("run-")?;
        let (id, what) = rest.split_once('/')?;
        let id = RunId(id.parse().ok()?);
        match what {
            "checklist" => Some(MsgKey::Checklist(id)),
            "status" => Some(MsgKey::Status(id)),
            _ => Some(MsgKey::Item(id, what.strip_prefix("item-")?.parse().ok()?)),
        }
    }
}

impl std::fmt::Display for MsgKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MsgKey::Checklist(id) => write!(f, "run-{id}/checklist"),
            MsgKey::Item(id, i) => write!(f, "run-{id}/item-{i}"),
            MsgKey::Status(id) => write!(f, "run-{id}/status"),
        }
    }
}

impl Serialize for MsgKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MsgKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<MsgKey, D::Error> {
        let s = String::deserialize(d)?;
        MsgKey::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("not a message key: {s}")))
    }
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

/// Who sees an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// Only the person it answers (Slack and Discord ephemeral replies).
    Ephemeral,
    /// Everyone in the channel.
    InChannel,
}

impl Visibility {
    /// `Ephemeral` when only one person is to see it.
    pub fn private(private: bool) -> Visibility {
        if private {
            Visibility::Ephemeral
        } else {
            Visibility::InChannel
        }
    }

    pub fn is_ephemeral(self) -> bool {
        self == Visibility::Ephemeral
    }
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
    fn keys_are_the_texts_they_always_were() {
        let id = RunId(7);
        let rows = [
            (MsgKey::Checklist(id), "run-7/checklist"),
            (MsgKey::Item(id, 3), "run-7/item-3"),
            (MsgKey::Status(id), "run-7/status"),
        ];
        for (key, text) in rows {
            assert_eq!(key.to_string(), text);
            assert_eq!(MsgKey::parse(text), Some(key));
            assert_eq!(serde_json::to_string(&key).unwrap(), format!("\"{text}\""));
            assert_eq!(
                serde_json::from_str::<MsgKey>(&format!("\"{text}\"")).unwrap(),
                key
            );
            assert_eq!(key.run(), id);
        }
        for other in [
            "hello",
            "run-x/checklist",
            "run-7/other",
            "run-7/item-x",
            "run-7",
        ] {
            assert_eq!(MsgKey::parse(other), None, "{other}");
        }
    }
}
