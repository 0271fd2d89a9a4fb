//! The pure rules of greenlight: no IO, no clock reads, no async runtime; time comes in as an argument.

pub mod analysis;
pub mod checklist;
pub mod command;
pub mod freeze;
pub mod message;
pub mod policy;
pub mod run;
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
mod engine_tests;
