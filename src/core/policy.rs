//! Who may do what, and the gates a deploy must pass (environment, permission, service, lock,
//! one active run, freeze windows with break-glass). A policy outcome is a value, not an error.

use super::freeze::{self, Window};
use super::rules::{EnvRules, Rules};
use super::state::{EnvState, Lock, Phase};
use super::{EnvName, RunId, UserId};
use chrono::{DateTime, Utc};
use std::fmt;

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

/// A person may not do this here: who, what, where, and the group it needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Denied {
    pub user: UserId,
    pub action: Action,
    pub env: String,
    pub group: String,
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} may not {} {}: that needs the {} group",
            self.user,
            self.action.verb(),
            self.env,
            self.group
        )
    }
}

/// The permission table of the design: deployers deploy, lock, unlock, cancel and roll back;
/// only break-glass forces past a freeze. Read-only commands need no check.
pub fn may(rules: &Rules, env: &EnvRules, user: &UserId, action: Action) -> Result<(), Denied> {
    let group = match action {
        Action::Force => BREAK_GLASS,
        _ => env.deployers.as_str(),
    };
    if rules.in_group(user, group) {
        Ok(())
    } else {
        Err(Denied {
            user: user.clone(),
            action,
            env: env.display_name.clone(),
            group: group.to_string(),
        })
    }
}

/// A `--service` that does not fit the environment's services.
#[derive(Debug, Clone, PartialEq)]
pub enum ServiceProblem {
    /// The environment has no services, yet one was named.
    NoneConfigured { env: String, given: String },
    /// The environment runs several: one must be named.
    Required { env: String, services: Vec<String> },
    Unknown {
        env: String,
        given: String,
        services: Vec<String>,
    },
}

impl fmt::Display for ServiceProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceProblem::NoneConfigured { env, given } => write!(
                f,
                "{env} has no services configured, so --service {given} is not valid"
            ),
            ServiceProblem::Required { env, services } => write!(
                f,
                "{env} runs several services: --service is required (one of {})",
                services.join(", ")
            ),
            ServiceProblem::Unknown {
                env,
                given,
                services,
            } => write!(
                f,
                "unknown service \"{given}\" on {env} (one of {})",
                services.join(", ")
            ),
        }
    }
}

/// One reason a deploy cannot start now.
#[derive(Debug, Clone, PartialEq)]
pub enum Blocker {
    NotAllowed(Denied),
    Service(ServiceProblem),
    Locked(Lock),
    ActiveRun {
        run: RunId,
        phase: Phase,
    },
    Freeze {
        window: Window,
        force_refused: Option<String>,
    },
    /// The traffic step cannot be seen: deploying could land on the live colour.
    LiveUnseen(String),
}

impl Blocker {
    pub fn describe(&self, rules: &Rules, env: &EnvRules) -> String {
        let tz = rules.timezone;
        match self {
            Blocker::NotAllowed(d) => d.to_string(),
            Blocker::Service(p) => p.to_string(),
            Blocker::Locked(l) => format!(
                "{} is locked by {} since {}: {} (/deploy unlock {} to lift it)",
                env.display_name,
                l.by,
                l.at.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z"),
                l.reason,
                env.name
            ),
            Blocker::LiveUnseen(why) => format!(
                "greenlight cannot see which colour is live on {}: {why}",
                env.display_name
            ),
            Blocker::ActiveRun { run, phase } => format!(
                "run {run} is already active on {} ({}); one run at a time per environment",
                env.display_name,
                phase.label()
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
    rules: &Rules,
    env: &EnvRules,
    state: &EnvState,
    active_phase: Option<Phase>,
    req: &Request,
    now: DateTime<Utc>,
) -> Verdict {
    let mut blockers = Vec::new();
    if let Err(m) = may(rules, env, req.user, Action::Deploy) {
        blockers.push(Blocker::NotAllowed(m));
    }
    if let Err(m) = check_service(env, req.service) {
        blockers.push(Blocker::Service(m));
    }
    if let Some(lock) = &state.lock {
        blockers.push(Blocker::Locked(lock.clone()));
    }
    if let Some(why) = &state.unseen {
        blockers.push(Blocker::LiveUnseen(why.clone()));
    }
    if let (Some(run), Some(phase)) = (state.active_run, active_phase) {
        blockers.push(Blocker::ActiveRun { run, phase });
    }
    let (open, forced_past) = check_freeze(rules, &env.name, req.user, req.force, now);
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
    rules: &Rules,
    env: &EnvName,
    user: &UserId,
    force: Option<&str>,
    now: DateTime<Utc>,
) -> (Vec<Blocker>, Vec<Window>) {
    let mut blockers = Vec::new();
    let mut passed = Vec::new();
    for window in freeze::open_windows(&rules.freezes, &env.0, rules.timezone, now) {
        match force {
            Some(_) if rules.in_group(user, BREAK_GLASS) => passed.push(window),
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

pub fn check_service(env: &EnvRules, service: Option<&str>) -> Result<(), ServiceProblem> {
    let name = || env.display_name.clone();
    match (env.services.len(), service) {
        (0, None) | (1, None) => Ok(()),
        (0, Some(s)) => Err(ServiceProblem::NoneConfigured {
            env: name(),
            given: s.into(),
        }),
        (_, None) => Err(ServiceProblem::Required {
            env: name(),
            services: env.services.clone(),
        }),
        (_, Some(s)) if env.services.iter().any(|x| x == s) => Ok(()),
        (_, Some(s)) => Err(ServiceProblem::Unknown {
            env: name(),
            given: s.into(),
            services: env.services.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn cfg() -> Rules {
        crate::core::rules::build::demo()
    }

    #[test]
    fn the_permission_table() {
        let c = cfg();
        let prod = c.env(&EnvName::new("prod")).unwrap();
        let rows = [
            ("alice", Action::Deploy, true),
            ("bob", Action::Deploy, true),
            ("carol", Action::Deploy, false),
            ("carol", Action::Lock, false),
            ("carol", Action::Unlock, false),
            ("carol", Action::Cancel, false),
            ("carol", Action::Rollback, false),
            ("bob", Action::Rollback, true),
            ("alice", Action::Force, true),
            ("bob", Action::Force, false),
            ("mallory", Action::Deploy, false),
        ];
        for (who, action, allowed) in rows {
            let r = may(&c, prod, &UserId::new(who), action);
            assert_eq!(r.is_ok(), allowed, "{who} {action:?}: {r:?}");
            if let Err(m) = r.map_err(|d| d.to_string()) {
                assert!(m.contains(who) && m.contains("group"), "{m}");
            }
        }
    }

    #[test]
    fn gates_list_every_blocker_and_force_passes_only_freezes() {
        let c = cfg();
        let prod = c.env(&EnvName::new("prod")).unwrap();
        let friday = Utc.with_ymd_and_hms(2026, 11, 27, 17, 30, 0).unwrap();
        let thursday = Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap();
        let locked = EnvState {
            lock: Some(Lock {
                reason: "db work".into(),
                by: crate::core::state::LockOwner::Person(UserId::new("bob")),
                at: thursday,
                run: None,
            }),
            active_run: Some(RunId(7)),
            ..Default::default()
        };
        let alice = UserId::new("alice");
        let bob = UserId::new("bob");
        let req = |user, force| Request {
            user,
            service: None,
            force,
        };
        // Nothing in the way on a Thursday.
        assert_eq!(
            check_deploy(
                &c,
                prod,
                &EnvState::default(),
                None,
                &req(&alice, None),
                thursday
            ),
            Verdict::Allowed {
                forced_past: vec![]
            }
        );
        // Friday evening: frozen; alice's force passes the freeze, bob's does not.
        match check_deploy(
            &c,
            prod,
            &EnvState::default(),
            None,
            &req(&alice, None),
            friday,
        ) {
            Verdict::Blocked(b) => assert!(matches!(
                &b[..],
                [Blocker::Freeze {
                    force_refused: None,
                    ..
                }]
            )),
            v => panic!("{v:?}"),
        }
        match check_deploy(
            &c,
            prod,
            &EnvState::default(),
            None,
            &req(&alice, Some("hotfix")),
            friday,
        ) {
            Verdict::Allowed { forced_past } => assert_eq!(forced_past.len(), 1),
            v => panic!("{v:?}"),
        }
        match check_deploy(
            &c,
            prod,
            &EnvState::default(),
            None,
            &req(&bob, Some("hotfix")),
            friday,
        ) {
            Verdict::Blocked(b) => assert!(b[0]
                .describe(&c, prod)
                .contains("bob is not in the break-glass group")),
            v => panic!("{v:?}"),
        }
        // Lock, active run and freeze together; force never passes a lock.
        match check_deploy(
            &c,
            prod,
            &locked,
            Some(Phase::Monitoring),
            &req(&alice, Some("hotfix")),
            friday,
        ) {
            Verdict::Blocked(b) => {
                assert_eq!(b.len(), 2, "{b:?}");
                assert!(b[0].describe(&c, prod).contains("locked by bob"));
                assert!(b[1].describe(&c, prod).contains("run 7 is already active"));
            }
            v => panic!("{v:?}"),
        }
        // staging is never frozen by the prod rule.
        let staging = c.env(&EnvName::new("staging")).unwrap();
        assert!(matches!(
            check_deploy(
                &c,
                staging,
                &EnvState::default(),
                None,
                &req(&bob, None),
                friday
            ),
            Verdict::Allowed { .. }
        ));
    }

    #[test]
    fn services() {
        let mut c = cfg();
        let e = c.envs.get_mut(&EnvName::new("prod")).unwrap();
        assert!(check_service(e, None).is_ok());
        assert!(check_service(e, Some("api"))
            .unwrap_err()
            .to_string()
            .contains("no services configured"));
        e.services = vec!["api".into(), "web".into()];
        assert!(check_service(e, None)
            .unwrap_err()
            .to_string()
            .contains("--service is required (one of api, web)"));
        assert!(check_service(e, Some("web")).is_ok());
        assert!(check_service(e, Some("db"))
            .unwrap_err()
            .to_string()
            .contains("unknown service \"db\""));
    }
}
