//! The configuration file: the file-level schema, parsing with line numbers, and validation
//! into `Config`. Pure apart from `load`, which reads the file; secrets are `${NAME}`
//! references read from the environment, never stored in the file.
//!
//! One file per part of the file: `bot.rs` (`[bot]`, `[local]`, `[slack]`, `[discord]`),
//! `people.rs` (`[users]`, `[[freeze]]`), `environment.rs` (`[environments.X]`). A driver's or
//! provider's own section is its component's schema (`[github]`: `remote::github::schema`;
//! `[gitlab]`: `remote::gitlab::schema`; `deploy::command::schema`,
//! `deploy::haproxy`, `deploy::local`, `metrics::schema`, `verify::SmokeStep`): config
//! knows which section holds it and adds line numbers, never its fields.

mod bot;
mod context;
mod environment;
mod forges;
mod people;
mod rules;
#[cfg(test)]
mod tests;

pub use crate::deploy::schema::{DeployConfig, TrafficConfig};
pub use crate::evidence::schema::Forges;
pub use crate::metrics::schema::MetricsConfig;
pub use bot::{BotConfig, DiscordConfig, LocalConfig, SlackConfig, SlackMode};
pub use context::ConfigError;
pub use environment::{Channels, ChecklistItemConfig, EnvConfig, HealthConfig, MonitorConfig};
pub use forges::CiItem;
pub use people::User;

use crate::core::freeze::FreezeRule;
use crate::core::{EnvName, UserId};
use crate::remote::github::{GitHubKeys, GitHubSection};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use toml::Spanned;

#[derive(Debug, Clone)]
pub struct Config {
    pub bot: BotConfig,
    pub local: LocalConfig,
    pub slack: Option<SlackConfig>,
    pub discord: Option<DiscordConfig>,
    pub users: BTreeMap<UserId, User>,
    pub freezes: Vec<FreezeRule>,
    pub environments: BTreeMap<EnvName, EnvConfig>,
    /// The `[github]` section's keys (the token resolved), each environment's default.
    pub github: GitHubKeys,
    /// `[github]` and `[gitlab]`, where checklist evidence is read.
    pub forges: Forges,
    /// Non-fatal remarks (inactive platform sections and the like).
    pub warnings: Vec<String>,
}

impl Config {
    pub fn user(&self, id: &UserId) -> Option<&User> {
        self.users.get(id)
    }
    pub fn in_group(&self, id: &UserId, group: &str) -> bool {
        self.users.get(id).is_some_and(|u| u.groups.contains(group))
    }
    /// Members of a group, in name order.
    pub fn members(&self, group: &str) -> Vec<UserId> {
        self.users
            .iter()
            .filter(|(_, u)| u.groups.contains(group))
            .map(|(id, _)| id.clone())
            .collect()
    }
    pub fn env(&self, name: &EnvName) -> Option<&EnvConfig> {
        self.environments.get(name)
    }
    /// Every environment's `version_pattern`, for the command parser.
    pub fn version_patterns(&self) -> Vec<String> {
        self.environments
            .values()
            .filter_map(|e| e.version_pattern.clone())
            .collect()
    }

    /// Every evidence item (environment, index, forge), for the evidence reader.
    pub fn evidence_items(&self) -> Vec<(EnvName, usize, crate::evidence::schema::Source)> {
        let mut out = Vec::new();
        for (name, e) in &self.environments {
            for (i, item) in e.checklist.iter().enumerate() {
                if let Some(ci) = &item.evidence {
                    out.push((name.clone(), i, ci.source));
                }
            }
        }
        out
    }

    pub fn env_names(&self) -> String {
        self.environments
            .keys()
            .map(|e| e.0.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

// ---- the file ---------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    bot: bot::RawBot,
    #[serde(default)]
    local: bot::RawLocal,
    slack: Option<bot::RawSlack>,
    discord: Option<bot::RawDiscord>,
    gitlab: Option<crate::remote::gitlab::GitlabSection>,
    #[serde(default)]
    users: BTreeMap<String, people::RawUser>,
    #[serde(default)]
    freeze: Vec<people::RawFreeze>,
    github: Option<GitHubSection>,
    #[serde(default)]
    environments: BTreeMap<Spanned<String>, environment::RawEnv>,
    /// The Argo CD server every `driver = "argocd"` environment uses unless it says otherwise.
    #[serde(default)]
    argocd: crate::deploy::argocd::ServerSection,
}

/// Reads and parses a config file. Environment references are resolved with the process env.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        line: None,
        message: format!("cannot read {}: {e}", path.display()),
    })?;
    parse(&text, &|name| std::env::var(name).ok())
}

/// Parses config text; `lookup` resolves `${NAME}` references.
pub fn parse(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let cx = context::Ctx { text, lookup };
    let raw: Raw = toml::from_str(text).map_err(|e| ConfigError {
        line: e.span().map(|s| cx.line_of(s.start)),
        message: e.message().replace('\n', " ").trim().to_string(),
    })?;
    let mut warnings = Vec::new();
    let bot = bot::bot(&cx, raw.bot)?;
    let slack = bot::slack(&cx, raw.slack, &mut warnings)?;
    let discord = bot::discord(&cx, raw.discord, &mut warnings);
    let users = people::users(&cx, raw.users)?;
    let groups: BTreeSet<&str> = users
        .values()
        .flat_map(|u| u.groups.iter().map(|g| g.as_str()))
        .collect();
    let env_keys: BTreeSet<String> = raw
        .environments
        .keys()
        .map(|k| k.get_ref().clone())
        .collect();
    let freezes = people::freezes(&cx, &raw.freeze, &env_keys)?;
    let github = match raw.github {
        Some(g) => g.validate(cx.lookup).or_else(|(span, m)| cx.err(span, m))?,
        None => GitHubKeys::default(),
    };
    // `[gitlab]` is parsed once: its keys are every gitlab environment's default, and the
    // evidence reads it when it names a project and an access token.
    let gitlab = match raw.gitlab {
        Some(g) => g.keys().or_else(|(span, m)| cx.err(span, m))?,
        None => Default::default(),
    };
    let forges = forges::forges(&cx, &github, &gitlab)?;
    raw.argocd.check().or_else(|(span, m)| cx.err(span, m))?;
    let defaults = environment::Defaults {
        github: &github,
        gitlab: &gitlab,
        argocd: &raw.argocd,
    };
    let mut environments = BTreeMap::new();
    for (key, e) in raw.environments {
        let env = environment::environment(&cx, &groups, &defaults, key, e)?;
        environments.insert(env.name.clone(), env);
    }
    forges::resolve_sources(&cx, &forges, &mut environments)?;
    if environments.is_empty() {
        return Err(ConfigError {
            line: None,
            message: "no environments configured: add an [environments.NAME] section".into(),
        });
    }
    Ok(Config {
        bot,
        local: LocalConfig {
            enabled: raw.local.enabled,
        },
        slack,
        discord,
        users,
        freezes,
        environments,
        github,
        forges,
        warnings,
    })
}
