//! Evidence on a checklist item: an item that is ticked by what a system says (CI for the
//! version's commit), never by a person's reaction. The kinds an item may ask for, a check's
//! typed verdict, and what the item keeps of it. Pure: the shell reads GitHub or GitLab and
//! hands the verdict back.

use super::UserId;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What an item's evidence is, as configured (`evidence = "ci"`). More kinds (a staging run,
/// secrets present) are more arms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evidence {
    /// The version's commit has CI checks, all passing, including every `required` name.
    Ci {
        required: Vec<String>,
        /// How often a verdict that is not green is read again, until the checklist closes.
        recheck: Duration,
    },
}

impl Evidence {
    pub fn kind(&self) -> EvidenceKind {
        match self {
            Evidence::Ci { .. } => EvidenceKind::Ci,
        }
    }
    pub fn recheck(&self) -> Duration {
        match self {
            Evidence::Ci { recheck, .. } => *recheck,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    Ci,
}

/// What one reading of the evidence says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Every check passed: their names, and the commit they are pinned to.
    Green { checks: Vec<String>, sha: String },
    /// These checks failed (name, conclusion).
    Red {
        failing: Vec<(String, String)>,
        sha: String,
    },
    /// Nothing failed yet; these are still running or not reported yet.
    Pending { waiting: Vec<String>, sha: String },
    /// Nothing to go by: no checks at all, a required name absent, the version not found.
    Missing { why: String },
    /// The CI's API could not be read (down, refused the credential, rate limited).
    Unavailable { why: String },
}

impl Verdict {
    pub fn is_green(&self) -> bool {
        matches!(self, Verdict::Green { .. })
    }
}

/// A break-glass override of an item's evidence: who, and the reason they gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Override {
    pub by: UserId,
    pub reason: String,
}

/// What a checklist item with evidence holds (stored with the run).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    pub kind: EvidenceKind,
    /// The latest reading; `None` while the first one is under way.
    #[serde(default)]
    pub verdict: Option<Verdict>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overridden: Option<Override>,
}

impl Proof {
    pub fn new(kind: EvidenceKind) -> Proof {
        Proof {
            kind,
            verdict: None,
            overridden: None,
        }
    }

    /// The item is ticked: its evidence is green, or break-glass overrode it.
    pub fn passed(&self) -> bool {
        self.overridden.is_some() || self.verdict.as_ref().is_some_and(Verdict::is_green)
    }
}
