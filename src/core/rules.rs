//! The rules the engine and the policy read: who is in which group, the freeze windows, and per
//! environment the deployers, the checklist, the services, the accepted versions and the
//! monitoring thresholds. `config` builds them from the file; the core never reads the file,
//! so it depends on nothing the file's parsing drags in (drivers, HTTP clients, smoke schemas).

use super::checklist::Checklist;
use super::evidence::{Evidence, Proof};
use super::freeze::FreezeRule;
use super::{Colour, EnvName, UserId};
use chrono_tz::Tz;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Everything the core needs to know about the configuration.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Freeze windows are read, and times shown, in this zone.
    pub timezone: Tz,
    pub freezes: Vec<FreezeRule>,
    /// Each person and the groups they are in.
    pub people: BTreeMap<UserId, BTreeSet<String>>,
    pub envs: BTreeMap<EnvName, EnvRules>,
}

/// One environment's rules.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvRules {
    pub name: EnvName,
    pub display_name: String,
    /// The group that may deploy, lock, unlock, cancel and roll back.
    pub deployers: String,
    pub checklist: Vec<ChecklistItem>,
    pub checklist_expiry: Duration,
    /// With more than one, `--service` is required.
    pub services: Vec<String>,
    /// Versions that are neither semver nor a git sha but accepted here (`*` = safe chars).
    pub version_pattern: Option<String>,
    pub monitor: Monitor,
    /// The live colour a person stated (`live = ...`) for a traffic step that cannot be asked:
    /// `Some(None)` is "nothing is live".
    pub stated_live: Option<Option<Colour>>,
    /// The health-check path, as a dry run names it.
    pub health_path: String,
    /// The smoke steps' names, as a dry run names them.
    pub smoke: Vec<String>,
    /// A smoke step is re-run during monitoring (the critical path).
    pub critical_path: bool,
    /// After a rollback, a revert of the rolled-back release is proposed (a pull or merge
    /// request; which forge is the revert step's business).
    pub revert: bool,
}

/// A checklist item as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct ChecklistItem {
    pub text: String,
    pub group: String,
    pub approvals: u32,
    /// Ticked by this evidence instead of by the group's reactions (break-glass may override).
    pub evidence: Option<Evidence>,
}

/// How a release is watched after the switch.
#[derive(Debug, Clone, PartialEq)]
pub struct Monitor {
    pub duration: Duration,
    pub interval: Duration,
    /// Error-rate threshold as a fraction (0.01 = 1%).
    pub error_rate: f64,
    /// Latency trigger: p99 more than this many times the baseline (3.0 = 200% above).
    pub latency_factor: f64,
    /// Fewer requests than this in a window: inconclusive.
    pub min_requests: u64,
    /// How long the old colour is kept warm after a stable run.
    pub keep_warm: Duration,
    /// A p99 under this is never called a spike (tiny baselines are noisy).
    pub latency_floor: Duration,
}

impl Rules {
    pub fn in_group(&self, id: &UserId, group: &str) -> bool {
        self.people.get(id).is_some_and(|g| g.contains(group))
    }

    /// Members of a group, in name order.
    pub fn members(&self, group: &str) -> Vec<UserId> {
        self.people
            .iter()
            .filter(|(_, g)| g.contains(group))
            .map(|(id, _)| id.clone())
            .collect()
    }

    pub fn env(&self, name: &EnvName) -> Option<&EnvRules> {
        self.envs.get(name)
    }

    /// The environments' names, for "unknown environment" answers.
    pub fn env_names(&self) -> String {
        self.envs
            .keys()
            .map(|e| e.0.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl EnvRules {
    /// A new run's checklist, every item open.
    pub fn new_checklist(&self) -> Checklist {
        let mut c = Checklist::new(
            self.checklist
                .iter()
                .map(|i| (i.text.clone(), i.group.clone(), i.approvals)),
        );
        for (item, rule) in c.items.iter_mut().zip(&self.checklist) {
            item.evidence = rule.evidence.as_ref().map(|e| Proof::new(e.kind()));
        }
        c
    }

    /// Item `i`'s evidence, as configured.
    pub fn evidence(&self, i: usize) -> Option<&Evidence> {
        self.checklist.get(i).and_then(|c| c.evidence.as_ref())
    }
}

/// Rules written in Rust for tests, with the config file's defaults; `demo()` is the bundled
/// `config/greenlight.toml` (config's tests check that the two agree).
#[cfg(test)]
pub mod build {
    use super::*;

    /// An environment with the config file's defaults.
    pub fn env(name: &str) -> EnvRules {
        EnvRules {
            name: EnvName::new(name),
            display_name: name.to_string(),
            deployers: "deployers".into(),
            checklist: Vec::new(),
            checklist_expiry: Duration::from_secs(4 * 3600),
            services: Vec::new(),
            version_pattern: None,
            monitor: Monitor {
                duration: Duration::from_secs(30),
                interval: Duration::from_secs(5),
                error_rate: 0.01,
                latency_factor: 3.0,
                min_requests: 20,
                keep_warm: Duration::from_secs(600),
                latency_floor: Duration::from_millis(50),
            },
            stated_live: None,
            health_path: "/healthz".into(),
            smoke: Vec::new(),
            critical_path: false,
            revert: false,
        }
    }

    pub fn item(text: &str, group: &str, approvals: u32) -> ChecklistItem {
        ChecklistItem {
            text: text.into(),
            group: group.into(),
            approvals,
            evidence: None,
        }
    }

    /// An item ticked by CI evidence, read again every 30 s.
    pub fn ci_item(text: &str, required: &[&str]) -> ChecklistItem {
        ChecklistItem {
            evidence: Some(Evidence::Ci {
                required: required.iter().map(|s| s.to_string()).collect(),
                recheck: Duration::from_secs(30),
            }),
            ..item(text, "reviewers", 1)
        }
    }

    /// Rules with these people (name, groups) and environments, in UTC, no freezes.
    pub fn rules(people: &[(&str, &[&str])], envs: Vec<EnvRules>) -> Rules {
        Rules {
            timezone: chrono_tz::UTC,
            freezes: Vec::new(),
            people: people
                .iter()
                .map(|(u, gs)| (UserId::new(*u), gs.iter().map(|g| g.to_string()).collect()))
                .collect(),
            envs: envs.into_iter().map(|e| (e.name.clone(), e)).collect(),
        }
    }

    /// `config/greenlight.toml`: alice, bob and carol; staging and prod with the demo's
    /// checklists and monitoring; no prod deploys from Friday 17:00 for 55 hours.
    pub fn demo() -> Rules {
        let smoke = || {
            vec![
                "login/auth works".to_string(),
                "main dashboard loads".into(),
                "checkout works".into(),
            ]
        };
        let ci = item("CI passed: build, lint, test green", "reviewers", 1);
        let migrations = item(
            "Migrations reviewed: DB changes are backwards compatible",
            "reviewers",
            1,
        );
        let mut staging = env("staging");
        staging.display_name = "Staging".into();
        staging.checklist = vec![ci.clone(), migrations.clone()];
        staging.monitor.duration = Duration::from_secs(20);
        staging.monitor.interval = Duration::from_secs(4);
        staging.smoke = smoke();
        staging.critical_path = true;
        let mut prod = env("prod");
        prod.display_name = "Production".into();
        prod.checklist = vec![
            ci,
            item(
                "Staging verified: this version ran on staging",
                "reviewers",
                1,
            ),
            migrations,
            item(
                "Secrets set: new config and secrets exist in prod",
                "reviewers",
                1,
            ),
            item("Stakeholders notified", "reviewers", 1),
        ];
        prod.smoke = smoke();
        prod.critical_path = true;
        let mut r = rules(
            &[
                ("alice", &["deployers", "reviewers", "break-glass"]),
                ("bob", &["deployers", "reviewers"]),
                ("carol", &["reviewers"]),
            ],
            vec![staging, prod],
        );
        r.freezes = vec![FreezeRule::parse(
            "No Friday deploys",
            "0 17 * * 5",
            "55h",
            vec!["prod".into()],
        )
        .expect("the demo freeze")];
        r
    }
}
