//! A run's audit log: what happened, typed. Each kind is stored (and shown on the run's page)
//! as the sentence it always was, so event logs written before the kinds had types read back
//! as the same kinds, and are written back byte for byte.

use super::state::Phase;
use super::{Colour, EnvName, RunId, UserId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// An entry of a run's append-only event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub run: RunId,
    pub at: DateTime<Utc>,
    pub who: Option<UserId>,
    pub what: What,
}

/// The gate at which break-glass `--force` passed a freeze after the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    ChecklistComplete,
    BeforeSwitch,
}

impl Gate {
    pub fn as_str(self) -> &'static str {
        match self {
            Gate::ChecklistComplete => "when the checklist completed",
            Gate::BeforeSwitch => "before the traffic switch",
        }
    }
}

/// What happened. Kinds whose detail is a sentence made elsewhere (a verification summary, a
/// measurement) carry that sentence.
#[derive(Debug, Clone, PartialEq)]
pub enum What {
    Requested {
        version: String,
        env: EnvName,
    },
    /// Break-glass `--force` passed a freeze: at the request (`gate: None`) or a later gate.
    ForcedPastFreeze {
        freeze: String,
        gate: Option<Gate>,
        reason: String,
    },
    Approved {
        item: usize,
    },
    Withdrew {
        item: usize,
    },
    /// A reaction that does not count, and why.
    NotCounted(String),
    Vetoed,
    Cancelled,
    ChecklistExpired,
    ChecklistComplete,
    LiveSeen(Option<Colour>),
    Deployed {
        version: String,
        colour: Colour,
    },
    Verified(String),
    /// The baseline line of the status message.
    Baseline(String),
    SwitchIntent {
        to: Colour,
    },
    Switched {
        to: Colour,
    },
    Inconclusive(String),
    RollbackTrigger(String),
    /// `/rollback` by hand: who, and the reason they gave.
    ManualRollback {
        by: UserId,
        reason: Option<String>,
    },
    SwitchBackIntent {
        to: Colour,
    },
    SwitchedBack,
    /// The switch back failed: the alert as posted in the run's thread.
    RollbackFailed(String),
    Resumed {
        phase: Phase,
    },
    Ended {
        phase: Phase,
        outcome: String,
    },
    /// What a deploy or traffic step reported while it ran (a workflow run's link, a
    /// pipeline's id), as posted in the run's thread.
    StepNote(String),
    /// A revert proposed after a rollback (its link), or why it could not be.
    Revert(String),
    /// What checklist item `item`'s evidence said (each change of verdict, as a sentence
    /// naming the checks and the commit).
    Evidence {
        item: usize,
        verdict: String,
    },
    /// Break-glass ticked item `item` without green evidence (`Event::who` did), and why.
    EvidenceOverridden {
        item: usize,
        reason: String,
    },
    /// A sentence this version does not know (kept as it was written).
    Other(String),
}

/// Reads a kind's detail (what follows its prefix).
type Reader = fn(&str) -> Option<What>;

const BASELINE_MARKS: [&str; 2] = ["📏 baseline from ", "ℹ️ "];

impl fmt::Display for What {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            What::Requested { version, env } => write!(f, "requested {version} → {env}"),
            What::ForcedPastFreeze {
                freeze,
                gate: None,
                reason,
            } => write!(f, "forced past freeze \"{freeze}\": {reason}"),
            What::ForcedPastFreeze {
                freeze,
                gate: Some(g),
                reason,
            } => write!(
                f,
                "forced past freeze \"{freeze}\" {}: {reason}",
                g.as_str()
            ),
            What::Approved { item } => write!(f, "approved item {}", item + 1),
            What::Withdrew { item } => write!(f, "withdrew approval of item {}", item + 1),
            What::NotCounted(why) => write!(f, "reaction not counted: {why}"),
            What::Vetoed => f.write_str("vetoed"),
            What::Cancelled => f.write_str("cancelled"),
            What::ChecklistExpired => f.write_str("checklist expired"),
            What::ChecklistComplete => f.write_str("checklist complete"),
            What::LiveSeen(c) => write!(
                f,
                "live colour seen: {}",
                c.map(Colour::as_str).unwrap_or("none")
            ),
            What::Deployed { version, colour } => write!(f, "{version} deployed to {colour}"),
            What::Verified(summary) => write!(f, "verified: {summary}"),
            What::Baseline(line) | What::RollbackFailed(line) | What::Other(line) => {
                f.write_str(line)
            }
            What::SwitchIntent { to } => write!(f, "switch intent: traffic to {to}"),
            What::Switched { to } => write!(f, "traffic switched to {to}"),
            What::Inconclusive(why) => write!(f, "inconclusive: {why}"),
            What::StepNote(text) => write!(f, "step: {text}"),
            What::Revert(text) => write!(f, "revert: {text}"),
            What::Evidence { item, verdict } => {
                write!(f, "evidence for item {}: {verdict}", item + 1)
            }
            What::EvidenceOverridden { item, reason } => {
                write!(f, "break-glass override of item {}: {reason}", item + 1)
            }
            What::RollbackTrigger(why) => write!(f, "rollback trigger: {why}"),
            What::ManualRollback { by, reason } => {
                write!(f, "manual rollback by {by}")?;
                match reason {
                    Some(r) => write!(f, ": {r}"),
                    None => Ok(()),
                }
            }
            What::SwitchBackIntent { to } => write!(f, "switch-back intent: traffic to {to}"),
            What::SwitchedBack => f.write_str("traffic switched back"),
            What::Resumed { phase } => {
                write!(f, "resumed after restart in phase {}", phase.label())
            }
            What::Ended { phase, outcome } => write!(f, "ended: {} ({outcome})", phase.label()),
        }
    }
}

fn colour(s: &str) -> Option<Colour> {
    match s {
        "blue" => Some(Colour::Blue),
        "green" => Some(Colour::Green),
        _ => None,
    }
}

fn phase(label: &str) -> Option<Phase> {
    Phase::ALL.into_iter().find(|p| p.label() == label)
}

fn item(n: &str) -> Option<usize> {
    n.parse::<usize>().ok()?.checked_sub(1)
}

impl What {
    /// Reads the sentence back into its kind: exact for every sentence `Display` writes.
    pub fn parse(s: &str) -> What {
        Self::known(s).unwrap_or_else(|| What::Other(s.to_string()))
    }

    fn known(s: &str) -> Option<What> {
        let exact = match s {
            "vetoed" => Some(What::Vetoed),
            "cancelled" => Some(What::Cancelled),
            "checklist expired" => Some(What::ChecklistExpired),
            "checklist complete" => Some(What::ChecklistComplete),
            "traffic switched back" => Some(What::SwitchedBack),
            _ => None,
        };
        exact
            .or_else(|| Self::with_prefix(s))
            .or_else(|| Self::structured(s))
            .filter(|w| w.to_string() == s)
    }

    /// Kinds that are a fixed prefix and a free detail.
    fn with_prefix(s: &str) -> Option<What> {
        let rows: [(&str, Reader); 13] = [
            ("step: ", |r| Some(What::StepNote(r.into()))),
            ("revert: ", |r| Some(What::Revert(r.into()))),
            ("reaction not counted: ", |r| {
                Some(What::NotCounted(r.into()))
            }),
            ("verified: ", |r| Some(What::Verified(r.into()))),
            ("inconclusive: ", |r| Some(What::Inconclusive(r.into()))),
            ("rollback trigger: ", |r| {
                Some(What::RollbackTrigger(r.into()))
            }),
            ("approved item ", |r| {
                Some(What::Approved { item: item(r)? })
            }),
            ("withdrew approval of item ", |r| {
                Some(What::Withdrew { item: item(r)? })
            }),
            ("live colour seen: ", |r| {
                Some(What::LiveSeen(if r == "none" {
                    None
                } else {
                    Some(colour(r)?)
                }))
            }),
            ("switch intent: traffic to ", |r| {
                Some(What::SwitchIntent { to: colour(r)? })
            }),
            ("traffic switched to ", |r| {
                Some(What::Switched { to: colour(r)? })
            }),
            ("switch-back intent: traffic to ", |r| {
                Some(What::SwitchBackIntent { to: colour(r)? })
            }),
            ("resumed after restart in phase ", |r| {
                Some(What::Resumed { phase: phase(r)? })
            }),
        ];
        if s.starts_with("⛔ Rollback of run ") {
            return Some(What::RollbackFailed(s.into()));
        }
        if BASELINE_MARKS.iter().any(|m| s.starts_with(m)) {
            return Some(What::Baseline(s.into()));
        }
        rows.iter()
            .find_map(|(prefix, make)| s.strip_prefix(prefix).and_then(make))
    }

    /// Kinds with more than one field.
    fn structured(s: &str) -> Option<What> {
        if let Some(rest) = s.strip_prefix("requested ") {
            let (version, env) = rest.split_once(" → ")?;
            return Some(What::Requested {
                version: version.into(),
                env: EnvName::new(env),
            });
        }
        if let Some(rest) = s.strip_prefix("forced past freeze \"") {
            let (freeze, rest) = rest.split_once('"')?;
            let (gate, reason) = match rest.strip_prefix(": ") {
                Some(reason) => (None, reason),
                None => {
                    let g = [Gate::ChecklistComplete, Gate::BeforeSwitch]
                        .into_iter()
                        .find(|g| rest.starts_with(&format!(" {}: ", g.as_str())))?;
                    (Some(g), &rest[g.as_str().len() + 3..])
                }
            };
            return Some(What::ForcedPastFreeze {
                freeze: freeze.into(),
                gate,
                reason: reason.into(),
            });
        }
        for (prefix, overridden) in [
            ("evidence for item ", false),
            ("break-glass override of item ", true),
        ] {
            if let Some(rest) = s.strip_prefix(prefix) {
                let (n, text) = rest.split_once(": ")?;
                let (item, text) = (item(n)?, text.to_string());
                return Some(if overridden {
                    What::EvidenceOverridden { item, reason: text }
                } else {
                    What::Evidence {
                        item,
                        verdict: text,
                    }
                });
            }
        }
        if let Some(rest) = s.strip_prefix("manual rollback by ") {
            let (by, reason) = match rest.split_once(": ") {
                Some((by, r)) => (by, Some(r.to_string())),
                None => (rest, None),
            };
            return Some(What::ManualRollback {
                by: UserId::new(by),
                reason,
            });
        }
        if let Some(rest) = s.strip_prefix("ended: ") {
            let (phase, outcome) = Phase::ALL.into_iter().find_map(|p| {
                let o = rest.strip_prefix(p.label())?.strip_prefix(" (")?;
                Some((p, o.strip_suffix(')')?))
            })?;
            return Some(What::Ended {
                phase,
                outcome: outcome.into(),
            });
        }
        let (version, c) = s.rsplit_once(" deployed to ")?;
        Some(What::Deployed {
            version: version.into(),
            colour: colour(c)?,
        })
    }
}

impl Serialize for What {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for What {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<What, D::Error> {
        Ok(What::parse(&String::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_from_its_sentence() {
        let kinds = [
            What::Requested {
                version: "v1.2.0".into(),
                env: EnvName::new("staging"),
            },
            What::ForcedPastFreeze {
                freeze: "No Friday deploys".into(),
                gate: None,
                reason: "hotfix: it's down".into(),
            },
            What::ForcedPastFreeze {
                freeze: "No Friday deploys".into(),
                gate: Some(Gate::BeforeSwitch),
                reason: "hotfix".into(),
            },
            What::ForcedPastFreeze {
                freeze: "x".into(),
                gate: Some(Gate::ChecklistComplete),
                reason: "r".into(),
            },
            What::Approved { item: 0 },
            What::Withdrew { item: 4 },
            What::NotCounted("carol's ❌ does not count".into()),
            What::Vetoed,
            What::Cancelled,
            What::ChecklistExpired,
            What::ChecklistComplete,
            What::LiveSeen(None),
            What::LiveSeen(Some(Colour::Green)),
            What::Deployed {
                version: "release-42".into(),
                colour: Colour::Blue,
            },
            What::Verified("healthy; 3 smoke tests passed".into()),
            What::Baseline("📏 baseline from blue: 200 requests".into()),
            What::Baseline("ℹ️ baseline unavailable: timeout".into()),
            What::SwitchIntent { to: Colour::Green },
            What::Switched { to: Colour::Green },
            What::Inconclusive("no data".into()),
            What::RollbackTrigger("core business flow broken: 500".into()),
            What::ManualRollback {
                by: UserId::new("bob"),
                reason: None,
            },
            What::ManualRollback {
                by: UserId::new("bob"),
                reason: Some("slow: very".into()),
            },
            What::SwitchBackIntent { to: Colour::Blue },
            What::SwitchedBack,
            What::RollbackFailed("⛔ Rollback of run 3 FAILED: boom.".into()),
            What::Resumed {
                phase: Phase::AwaitingChecklist,
            },
            What::Ended {
                phase: Phase::RolledBack,
                outcome: "rolled back: error rate (200 requests)".into(),
            },
            What::StepNote("GitHub Actions run 42: https://github.example/runs/42".into()),
            What::Revert("↩️ Revert of v1.3.0 (back to v1.2.0) is ready for review: pull request #7 https://github.example/o/r/pull/7".into()),
            What::Evidence {
                item: 0,
                verdict: "green at abc1234: build, test".into(),
            },
            What::EvidenceOverridden {
                item: 2,
                reason: "hotfix: CI is down".into(),
            },
            What::Other("something an older version said".into()),
        ];
        for w in kinds {
            let text = w.to_string();
            assert_eq!(What::parse(&text), w, "{text}");
            let json = serde_json::to_string(&w).unwrap();
            assert_eq!(serde_json::from_str::<What>(&json).unwrap(), w, "{json}");
        }
    }
}
