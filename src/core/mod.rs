//! The pure rules of greenlight: no IO, no clock reads, no async runtime; time comes in as an argument.

pub mod analysis;
pub mod checklist;
pub mod command;
pub mod engine;
pub mod event;
pub mod evidence;
pub mod freeze;
pub mod message;
pub mod policy;
pub mod rules;
pub mod state;
pub mod text;

use serde::{Deserialize, Serialize};
use std::fmt;

/// A run's number: runs are numbered 1, 2, 3... across the whole bot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RunId(pub u64);

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A person: the key under `[users]`, the same on every platform.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct UserId(pub String);

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl UserId {
    pub fn new(s: impl Into<String>) -> Self {
        UserId(s.into())
    }
    /// The mention marker that chat adapters render per platform.
    pub fn mention(&self) -> String {
        format!("<@{}>", self.0)
    }
}

/// An environment's key under `[environments]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EnvName(pub String);

impl fmt::Display for EnvName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl EnvName {
    pub fn new(s: impl Into<String>) -> Self {
        EnvName(s.into())
    }
}

/// One of the two slots of a blue-green environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Colour {
    Blue,
    Green,
}

impl Colour {
    pub fn other(self) -> Colour {
        match self {
            Colour::Blue => Colour::Green,
            Colour::Green => Colour::Blue,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Colour::Blue => "blue",
            Colour::Green => "green",
        }
    }
}

impl fmt::Display for Colour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A chat platform: where a command came from, where a run's thread lives, where a message goes.
/// Stored as its lowercase name (`"local"`, `"slack"`, `"discord"`), as the strings were before.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    #[default]
    Local,
    Slack,
    Discord,
}

impl Platform {
    pub const ALL: [Platform; 3] = [Platform::Local, Platform::Slack, Platform::Discord];
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Local => "local",
            Platform::Slack => "slack",
            Platform::Discord => "discord",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Crates that do IO or belong to the shell: the core never names them.
    const SHELL_CRATES: [&str; 9] = [
        "tokio",
        "sled",
        "reqwest",
        "axum",
        "hyper",
        "serenity",
        "slack_morphism",
        "toml",
        "tracing",
    ];

    fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("src/core") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// What a line says that an import rule forbids, if anything (comments are not code).
    fn forbidden(line: &str) -> Option<String> {
        let code = line.split("//").next().unwrap_or_default();
        let krate = concat!("crate", "::");
        let mut rest = code;
        while let Some(i) = rest.find(krate) {
            let after = &rest[i + krate.len()..];
            if !after.starts_with("core") {
                return Some(format!("{krate}{}", after.split(';').next().unwrap_or("")));
            }
            rest = after;
        }
        let words: Vec<&str> = code
            .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .collect();
        SHELL_CRATES
            .iter()
            .find(|c| {
                words
                    .iter()
                    .any(|w| w.trim_start_matches("::").starts_with(&format!("{c}::")))
                    || code.trim_start().starts_with(&format!("use {c}"))
                    || code.contains(&format!("extern crate {c}"))
            })
            .map(|c| c.to_string())
    }

    /// The core imports nothing outside itself but std and its pure crates (serde, chrono,
    /// chrono-tz, cron, humantime): the shell depends on the core, never the other way round.
    #[test]
    fn the_core_imports_nothing_outside_itself() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/core");
        let mut files = Vec::new();
        rust_files(&root, &mut files);
        assert!(files.len() > 5, "found the core's files: {files:?}");
        let mut found = Vec::new();
        for f in &files {
            let text = std::fs::read_to_string(f).expect("readable");
            for (n, line) in text.lines().enumerate() {
                if let Some(what) = forbidden(line) {
                    found.push(format!("{}:{}: {what}", f.display(), n + 1));
                }
            }
        }
        assert!(
            found.is_empty(),
            "the core imports the shell:\n{}",
            found.join("\n")
        );
    }

    #[test]
    fn the_import_check_sees_what_it_must() {
        let krate = concat!("crate", "::");
        assert!(forbidden(&format!("use {krate}config::Config;")).is_some());
        assert!(forbidden(&format!("    let c = {krate}config::parse(t);")).is_some());
        // (Names are put together here so that this file passes its own check.)
        assert!(forbidden(&format!("use {}::sync::mpsc;", "tokio")).is_some());
        assert!(forbidden(&format!("    let x = {}::open(p);", "sled")).is_some());
        assert!(forbidden(&format!("    let _ = ::{}::Client::new();", "reqwest")).is_some());
        assert!(forbidden(&format!("use {krate}core::rules::Rules;")).is_none());
        assert!(forbidden("use super::state::EnvState;").is_none());
        assert!(forbidden(&format!("// {}::spawn is the shell's business", "tokio")).is_none());
        assert!(forbidden("    let tokens = 3;").is_none());
    }
}
