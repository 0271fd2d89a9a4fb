//! Who may do what, and the gates a deploy must pass (environment, permission, service, lock,
//! one active run, freeze windows with break-glass). A policy outcome is a value, not an error.

use super::freeze::{self, Window};
use super::run::{EnvState, Lock};
use super::{EnvName, RunId, UserId};
use crate::config::{Config, EnvConfig};
use chrono::{DateTime, Utc};

pub const BREAK_GLASS: &str = "break-glass";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Deploy,
    Lock,
    Unlock,
    Cancel,
    Rollback,
    Force,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Action::Deploy => "deploy to",
            Action::Lock => "lock",
            Action::Unlock => "unlock",
            Action::Cancel => "cancel runs on",
            Action::Rollback => "roll back",
            Action::Force => "force a deploy past a freeze on",
        }
    }
}

/// The permission table of the design: deployers deploy, lock, unlock, cancel and roll back;
/// only break-glass forces past a freeze. Read-only commands need no check.
pub fn may(cfg: &Config, env: &EnvConfig, user: &UserId, action: Action) -> Result<(), String> {
    let group = match action {
        Action::Force => BREAK_GLASS,
        _ => env.deployers.as_str(),
    };
    if cfg.in_group(user, group) {
        Ok(())
    } else {
        Err(format!(
            "{user} may not {} {}: that needs the {group} group",
            action.verb(),
            env.display_name
        ))
    }
}

/// One reason a deploy cannot start now.
#[derive(Debug, Clone, PartialEq)]
pub enum Blocker {
    NotAllowed(String),
    Service(String),
    Locked(Lock),
    ActiveRun {
        run: RunId,
        phase: String,
    },
    Freeze {
        window: Window,
        force_refused: Option<String>,
    },
}

impl Blocker {
    pub fn describe(&self, cfg: &Config, env: &EnvConfig) -> String {
        let tz = cfg.bot.timezone;
        match self {
            Blocker::NotAllowed(m) | Blocker::Service(m) => m.clone(),
            Blocker::Locked(l) => format!(
                "{} is locked by {} since {}: {} (/deploy unlock {} to lift it)",
                env.display_name,
                l.by,
                l.at.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z"),
                l.reason,
                env.name
            ),
            Blocker::ActiveRun { run, phase } => format!(
                "run {run} is already active on {} ({phase}); one run at a time per environment",
                env.display_name
            ),
            Blocker::Freeze {
                window,
                force_refused,
            } => {
                let mut s = format!("{} is frozen: {}", env.display_name, window.describe(tz));
                match force_refused {
                    Some(why) => {
                        s.push_str("; ");
                        s.push_str(why);
                    }
                    None => s.push_str(&format!(
                        "; members of {BREAK_GLASS} may pass it with --force \"<reason>\""
                    )),
                }
                s
            }
        }
    }
}

/// The result of checking a deploy request's gates.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Allowed {
        /// Freeze windows passed by break-glass `--force`.
        forced_past: Vec<Window>,
    },
    Blocked(Vec<Blocker>),
}

pub struct Request<'a> {
    pub user: &'a UserId,
    pub service: Option<&'a str>,
    pub force: Option<&'a str>,
}

/// Every gate that stops this deploy now (all of them, for `why-not`).
pub fn check_deploy(
    cfg: &Config,
    env: &EnvConfig,
    state: &EnvState,
    active_phase: Option<&str>,
    req: &Request,
    now: DateTime<Utc>,
) -> Verdict {
    let mut blockers = Vec::new();
    if let Err(m) = may(cfg, env, req.user, Action::Deploy) {
        blockers.push(Blocker::NotAllowed(m));
    }
    if let Err(m) = check_service(env, req.service) {
        blockers.push(Blocker::Service(m));
    }
    if let Some(lock) = &state.lock {
        blockers.push(Blocker::Locked(lock.clone()));
    }
    if let (Some(run), Some(phase)) = (state.active_run, active_phase) {
        blockers.push(Blocker::ActiveRun {
            run,
            phase: phase.to_string(),
        });
    }
    let (open, forced_past) = check_freeze(cfg, &env.name, req.user, req.force, now);
    blockers.extend(open);
    if blockers.is_empty() {
        Verdict::Allowed { forced_past }
    } else {
        Verdict::Blocked(blockers)
    }
}

/// Freeze windows open now: those that block, and those passed by break-glass force.
/// Used at the request and again at the later gates (checklist complete, before the switch).
pub fn check_freeze(
    cfg: &Config,
    env: &EnvName,
    user: &UserId,
    force: Option<&str>,
    now: DateTime<Utc>,
) -> (Vec<Blocker>, Vec<Window>) {
    let mut blockers = Vec::new();
    let mut passed = Vec::new();
    for window in freeze::open_windows(&cfg.freezes, &env.0, cfg.bot.timezone, now) {
        match force {
            Some(_) if cfg.in_group(user, BREAK_GLASS) => passed.push(window),
            Some(_) => blockers.push(Blocker::Freeze {
                window,
                force_refused: Some(format!(
                    "--force was refused: {user} is not in the {BREAK_GLASS} group"
                )),
            }),
            None => blockers.push(Blocker::Freeze {
                window,
                force_refused: None,
            }),
        }
    }
    (blockers, passed)
}

pub fn check_service(env: &EnvConfig, service: Option<&str>) -> Result<(), String> {
    match (env.services.len(), service) {
        (0, None) => Ok(()),
        (0, Some(s)) => Err(format!(
            "{} has no services configured, so --service {s} is not valid",
            env.display_name
        )),
        (1, None) => Ok(()),
        (_, None) => Err(format!(
            "{} runs several services: --service is required (one of {})",
            env.display_name,
            env.services.join(", ")
        )),
        (_, Some(s)) if env.services.iter().any(|x| x == s) => Ok(()),
        (_, Some(s)) => Err(format!(
            "unknown service \"{s}\" on {} (one of {})",
            env.display_name,
            env.services.join(", ")
        )),
    }
}
