//! The durable state: runs and environments, exactly as the store keeps them (serde shapes are
//! the stored format; fields only ever get added, with defaults for older records).

use super::analysis::Sample;
use super::checklist::Checklist;
use super::{Colour, EnvName, Platform, RunId, UserId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    AwaitingChecklist,
    /// Asking the traffic step which colour is live, before anything is deployed.
    Observing,
    DeployingIdle,
    VerifyingIdle,
    Baseline,
    Switching,
    Monitoring,
    RollingBack,
    Succeeded,
    /// Monitoring ended without enough data to call the release healthy: never a success.
    Unverified,
    Failed,
    RolledBack,
    Vetoed,
    Expired,
    Cancelled,
    Rejected,
}

impl Phase {
    pub const ALL: [Phase; 16] = [
        Phase::AwaitingChecklist,
        Phase::Observing,
        Phase::DeployingIdle,
        Phase::VerifyingIdle,
        Phase::Baseline,
        Phase::Switching,
        Phase::Monitoring,
        Phase::RollingBack,
        Phase::Succeeded,
        Phase::Unverified,
        Phase::Failed,
        Phase::RolledBack,
        Phase::Vetoed,
        Phase::Expired,
        Phase::Cancelled,
        Phase::Rejected,
    ];
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Phase::Succeeded
                | Phase::Unverified
                | Phase::Failed
                | Phase::RolledBack
                | Phase::Vetoed
                | Phase::Expired
                | Phase::Cancelled
                | Phase::Rejected
        )
    }
    pub fn label(self) -> &'static str {
        match self {
            Phase::AwaitingChecklist => "awaiting checklist",
            Phase::Observing => "checking the live colour",
            Phase::DeployingIdle => "deploying idle",
            Phase::VerifyingIdle => "verifying idle",
            Phase::Baseline => "taking baseline",
            Phase::Switching => "switching",
            Phase::Monitoring => "monitoring",
            Phase::RollingBack => "rolling back",
            Phase::Succeeded => "succeeded",
            Phase::Unverified => "unverified",
            Phase::Failed => "failed",
            Phase::RolledBack => "rolled back",
            Phase::Vetoed => "vetoed",
            Phase::Expired => "expired",
            Phase::Cancelled => "cancelled",
            Phase::Rejected => "rejected",
        }
    }
    /// Before the traffic switch: cancellable, and a failure leaves the live colour untouched.
    pub fn before_switch(self) -> bool {
        matches!(
            self,
            Phase::AwaitingChecklist
                | Phase::Observing
                | Phase::DeployingIdle
                | Phase::VerifyingIdle
                | Phase::Baseline
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    Deploy,
    /// `/rollback` by hand: no checklist, back to the previous version.
    Rollback,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lock {
    pub reason: String,
    pub by: LockOwner,
    pub at: DateTime<Utc>,
    pub run: Option<RunId>,
}

/// Who locked an environment: a person (`/deploy lock`), or greenlight itself after a rollback
/// or a failure a person must look at. Stored as the person's name, or `"greenlight"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum LockOwner {
    Greenlight,
    Person(UserId),
}

impl From<String> for LockOwner {
    fn from(s: String) -> LockOwner {
        if s == "greenlight" {
            LockOwner::Greenlight
        } else {
            LockOwner::Person(UserId(s))
        }
    }
}

impl From<LockOwner> for String {
    fn from(o: LockOwner) -> String {
        o.to_string()
    }
}

impl std::fmt::Display for LockOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockOwner::Greenlight => f.write_str("greenlight"),
            LockOwner::Person(u) => f.write_str(&u.0),
        }
    }
}

/// An environment's durable state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct EnvState {
    /// The live colour as last seen (`None`: nothing takes traffic). Only meaningful while
    /// `unseen` is `None`.
    pub live: Option<Colour>,
    /// Why greenlight cannot tell which colour is live right now (traffic step unreachable or
    /// ambiguous, nothing stored and nobody said). While set, nothing is deployed, switched or
    /// torn down. Records written before this field existed were trusted: they read as seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unseen: Option<String>,
    pub blue: Option<String>,
    pub green: Option<String>,
    /// The version that was live before the current one.
    pub previous: Option<String>,
    pub lock: Option<Lock>,
    pub active_run: Option<RunId>,
    /// The idle colour is kept warm until then, and torn down after.
    pub warm_until: Option<DateTime<Utc>>,
    /// Where the environment's traffic enters (router or load balancer), for `status`.
    #[serde(default)]
    pub url: Option<String>,
    /// A revert asked for after a rollback and not yet answered: asked again after a restart
    /// (the revert step finds what it already opened instead of opening a second one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revert: Option<PendingRevert>,
}

/// The revert of a rolled-back release: run `run` rolled `bad` back to `good`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingRevert {
    pub run: RunId,
    pub bad: String,
    pub good: String,
}

impl EnvState {
    /// An environment greenlight has not looked at yet: nothing is assumed about it.
    pub fn unknown() -> EnvState {
        EnvState {
            unseen: Some("greenlight has not asked its traffic step yet".into()),
            ..EnvState::default()
        }
    }
    pub fn version_on(&self, c: Colour) -> Option<&String> {
        match c {
            Colour::Blue => self.blue.as_ref(),
            Colour::Green => self.green.as_ref(),
        }
    }
    pub fn set_version(&mut self, c: Colour, v: Option<String>) {
        match c {
            Colour::Blue => self.blue = v,
            Colour::Green => self.green = v,
        }
    }
    pub fn live_version(&self) -> Option<&String> {
        self.live.and_then(|c| self.version_on(c))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct MonitorProgress {
    pub started: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub passes: u32,
    pub inconclusive: u32,
    pub last: Option<String>,
    pub last_conclusive: bool,
    /// The window is over and the metrics passed; the last check's critical path has not
    /// reported yet, and has the last word.
    #[serde(default)]
    pub awaiting_critical_path: bool,
}

/// One run, durable. Its event log is kept beside it (append-only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub id: RunId,
    pub kind: RunKind,
    pub env: EnvName,
    pub service: Option<String>,
    pub version: String,
    pub requester: UserId,
    pub force: Option<String>,
    pub reason: Option<String>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    pub ended: Option<DateTime<Utc>>,
    pub phase: Phase,
    pub checklist: Checklist,
    pub checklist_expires: DateTime<Utc>,
    /// The colour live when the deploy started (None on an environment's first deploy).
    pub from: Option<Colour>,
    pub from_version: Option<String>,
    pub to: Colour,
    /// Bumped each time the deploy steps start again; stale driver results are ignored.
    pub attempt: u32,
    pub baseline: Option<Sample>,
    pub baseline_p99: Option<f64>,
    pub switch_intents: u32,
    pub switched: bool,
    pub switch_back_intents: u32,
    pub success_posted: bool,
    pub monitor: MonitorProgress,
    /// Lines of the status message (edited in place).
    pub status: Vec<String>,
    /// The stated end.
    pub outcome: Option<String>,
    /// Freeze windows this run was forced past (break-glass), each announced once.
    #[serde(default)]
    pub forced: Vec<String>,
    /// The platform the command came from: the run's thread lives there.
    #[serde(default)]
    pub origin: Platform,
    /// The 🚀 lifecycle message was posted (once per run, also across restarts).
    #[serde(default)]
    pub announced: bool,
    /// Why-not answers already given to a reactor ("user: reason"): each is said once per run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub told: Vec<String>,
}

impl Run {
    /// A new run of `kind`, nothing done yet: a deploy waits for its checklist (none here: the
    /// caller sets it), a rollback (no checklist, no 🚀) starts by preparing the idle colour.
    pub fn new(
        id: RunId,
        kind: RunKind,
        env: EnvName,
        version: String,
        requester: UserId,
        origin: Platform,
        now: DateTime<Utc>,
    ) -> Run {
        Run {
            id,
            kind,
            env,
            service: None,
            version,
            requester,
            force: None,
            reason: None,
            created: now,
            updated: now,
            ended: None,
            phase: match kind {
                RunKind::Deploy => Phase::AwaitingChecklist,
                RunKind::Rollback => Phase::DeployingIdle,
            },
            checklist: Checklist::default(),
            checklist_expires: now,
            from: None,
            from_version: None,
            to: Colour::Blue,
            attempt: 0,
            baseline: None,
            baseline_p99: None,
            switch_intents: 0,
            switched: false,
            switch_back_intents: 0,
            success_posted: false,
            monitor: MonitorProgress::default(),
            status: Vec::new(),
            outcome: None,
            forced: Vec::new(),
            origin,
            announced: kind == RunKind::Rollback,
            told: Vec::new(),
        }
    }

    pub fn summary_line(&self, tz: chrono_tz::Tz) -> String {
        format!(
            "run {}: {} → {} by {}, {} — {}{}",
            self.id,
            self.version,
            self.env,
            self.requester,
            self.created.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z"),
            self.phase.label(),
            self.outcome
                .as_ref()
                .map(|o| format!(": {o}"))
                .unwrap_or_default()
        )
    }
}
