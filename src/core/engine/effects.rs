//! What the engine hands the shell and gets back: actions to carry out, timers to arm, the
//! outcomes of actions, and `Changes`, everything one input changed.

use crate::core::analysis::Sample;
use crate::core::event::Event;
use crate::core::evidence::{Evidence, Verdict};
use crate::core::message::Post;
use crate::core::message::Visibility;
use crate::core::state::{EnvState, Run};
use crate::core::{Colour, EnvName, RunId};
use chrono::{DateTime, Utc};

/// IO the shell carries out; results come back through `Engine::result`.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    DeployIdle {
        run: RunId,
        attempt: u32,
        env: EnvName,
        colour: Colour,
        version: String,
    },
    Verify {
        run: RunId,
        attempt: u32,
        env: EnvName,
        colour: Colour,
    },
    Baseline {
        run: RunId,
        attempt: u32,
        env: EnvName,
        colour: Colour,
    },
    Switch {
        run: RunId,
        attempt: u32,
        env: EnvName,
        to: Colour,
        from: Option<Colour>,
    },
    Sample {
        run: RunId,
        attempt: u32,
        env: EnvName,
        colour: Colour,
    },
    SwitchBack {
        run: RunId,
        attempt: u32,
        env: EnvName,
        to: Colour,
        from: Colour,
    },
    Teardown {
        env: EnvName,
        colour: Colour,
    },
    /// Propose a revert of release `bad` (back to `good`) after run `run` rolled it back. The
    /// run has ended; the answer comes back as `Outcome::Reverted` for it.
    Revert {
        run: RunId,
        env: EnvName,
        bad: String,
        good: String,
    },
    /// Ask the environment's traffic step which colour is live. For a run in `Observing` the
    /// answer comes back as its `Outcome::Observed`; otherwise through `Engine::observed`.
    Observe {
        env: EnvName,
        run: Option<(RunId, u32)>,
    },
    /// Read the evidence of checklist item `item` for `version` (CI for its commit); the
    /// verdict comes back as `Outcome::Evidence`.
    CheckEvidence {
        run: RunId,
        attempt: u32,
        env: EnvName,
        item: usize,
        version: String,
        evidence: Evidence,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Timer {
    ChecklistExpiry(RunId),
    MonitorTick(RunId, u32),
    Teardown(EnvName),
    /// Look again at an environment whose live colour cannot be seen.
    Observe(EnvName),
    /// Read a checklist item's evidence again (it was not green).
    Evidence(RunId, usize),
}

/// What a traffic step says about the live colour.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveView {
    /// It answered: this colour takes traffic (`None`: no server takes traffic).
    Seen(Option<Colour>),
    /// It could not be asked, or its answer was ambiguous.
    Unseen(String),
    /// It has no way to ask (a command traffic step without `live_query`): only what greenlight
    /// recorded itself, or what a person stated in the config, counts.
    Unasked,
}

/// How often an environment whose live colour cannot be seen is looked at again.
pub const OBSERVE_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    DeployIdle(Result<(), String>),
    Verify(Result<String, String>),
    Baseline(Sample),
    Switch(Result<(), String>),
    /// A monitoring sample and the critical-path smoke check's result, when it came with it.
    Sample(Sample, Option<Result<(), String>>),
    /// A monitoring sample whose critical-path check reports on its own (`CriticalPath`), so
    /// that a slow critical path (a slow release makes every step slow) never holds back the
    /// metrics verdict.
    Measured(Sample),
    /// The critical-path smoke steps of the check started with a `Measured` sample.
    CriticalPath(Result<(), String>),
    SwitchBack(Result<(), String>),
    Observed(LiveView),
    /// What checklist item `item`'s evidence says.
    Evidence {
        item: usize,
        verdict: Verdict,
    },
    /// The revert step's answer: the pull or merge request it opened (or found), or why not.
    Reverted(Result<RevertLink, String>),
}

/// A revert proposed for review: what the forge calls it and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct RevertLink {
    /// E.g. "pull request #42", "merge request !7".
    pub name: String,
    pub url: String,
}

/// The answer to the person who typed a command.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub text: String,
    /// Errors and refusals are `Ephemeral`: only the sender sees them.
    pub visibility: Visibility,
}

impl Reply {
    pub(super) fn public(text: impl Into<String>) -> Reply {
        Reply {
            text: text.into(),
            visibility: Visibility::InChannel,
        }
    }
    pub(super) fn private(text: impl Into<String>) -> Reply {
        Reply {
            text: text.into(),
            visibility: Visibility::Ephemeral,
        }
    }
}

/// Everything one input changed: persist `runs`, `envs`, `events`, `posts` atomically, then
/// do `actions` and arm `timers`.
#[derive(Debug, Default)]
pub struct Changes {
    pub runs: Vec<Run>,
    pub envs: Vec<(EnvName, EnvState)>,
    pub events: Vec<Event>,
    pub posts: Vec<Post>,
    pub actions: Vec<Action>,
    pub timers: Vec<(DateTime<Utc>, Timer)>,
    pub next_run: Option<u64>,
    pub reply: Option<Reply>,
}

impl Changes {
    /// Appends `other` (a later step's changes): later states of the same run or environment
    /// replace earlier ones.
    pub fn extend(&mut self, other: Changes) {
        for r in other.runs {
            self.runs.retain(|x| x.id != r.id);
            self.runs.push(r);
        }
        for (k, st) in other.envs {
            self.envs.retain(|(x, _)| *x != k);
            self.envs.push((k, st));
        }
        self.events.extend(other.events);
        self.posts.extend(other.posts);
        self.actions.extend(other.actions);
        self.timers.extend(other.timers);
        if other.next_run.is_some() {
            self.next_run = other.next_run;
        }
        if other.reply.is_some() {
            self.reply = other.reply;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
            && self.envs.is_empty()
            && self.events.is_empty()
            && self.posts.is_empty()
    }
}
