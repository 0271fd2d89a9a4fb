//! The core's rules, built from the file: what the engine and the policy read of it.

use super::{Config, EnvConfig};

impl Config {
    /// What the core reads of the file (the engine and the policy never see `Config`).
    pub fn rules(&self) -> crate::core::rules::Rules {
        use crate::core::rules::{ChecklistItem, EnvRules, Rules};
        let env = |e: &EnvConfig| EnvRules {
            name: e.name.clone(),
            display_name: e.display_name.clone(),
            deployers: e.deployers.clone(),
            checklist: e
                .checklist
                .iter()
                .map(|i| ChecklistItem {
                    text: i.text.clone(),
                    group: i.group.clone(),
                    approvals: i.approvals,
                    evidence: i.evidence.as_ref().map(|e| e.rule()),
                })
                .collect(),
            checklist_expiry: e.checklist_expiry,
            services: e.services.clone(),
            version_pattern: e.version_pattern.clone(),
            monitor: e.monitor.clone(),
            stated_live: e.stated_live(),
            health_path: e.health.path.clone(),
            smoke: e.smoke.iter().map(|s| s.name.clone()).collect(),
            critical_path: e.smoke.iter().any(|s| s.critical),
            revert: e.revert.is_some(),
        };
        Rules {
            timezone: self.bot.timezone,
            freezes: self.freezes.clone(),
            people: self
                .users
                .iter()
                .map(|(id, u)| (id.clone(), u.groups.clone()))
                .collect(),
            envs: self
                .environments
                .iter()
                .map(|(k, e)| (k.clone(), env(e)))
                .collect(),
        }
    }
}
