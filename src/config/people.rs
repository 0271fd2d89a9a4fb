//! `[users.NAME]` and `[[freeze]]`.

use super::context::{ConfigError, Ctx};
use crate::core::freeze::FreezeRule;
use crate::core::UserId;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use toml::Spanned;

#[derive(Debug, Clone)]
pub struct User {
    pub slack: Option<String>,
    pub discord: Option<String>,
    pub groups: BTreeSet<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUser {
    slack: Option<String>,
    discord: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFreeze {
    name: String,
    cron: Spanned<String>,
    duration: Spanned<String>,
    #[serde(default)]
    environments: Vec<Spanned<String>>,
}

pub(super) fn users(
    cx: &Ctx,
    raw: BTreeMap<String, RawUser>,
) -> Result<BTreeMap<UserId, User>, ConfigError> {
    let mut users = BTreeMap::new();
    for (name, u) in raw {
        if !crate::core::command::is_name(&name) {
            return Err(ConfigError {
                line: cx.find_line(&format!("[users.{name}]")),
                message: format!("user name \"{name}\" must use letters, digits, - and _"),
            });
        }
        users.insert(
            UserId::new(name),
            User {
                slack: u.slack,
                discord: u.discord,
                groups: u.groups.into_iter().collect(),
            },
        );
    }
    Ok(users)
}

pub(super) fn freezes(
    cx: &Ctx,
    raw: &[RawFreeze],
    env_keys: &BTreeSet<String>,
) -> Result<Vec<FreezeRule>, ConfigError> {
    let mut freezes = Vec::new();
    for f in raw {
        for e in &f.environments {
            if !env_keys.contains(e.get_ref()) {
                return cx.err(
                    e.span(),
                    format!(
                        "freeze \"{}\" names unknown environment \"{}\"",
                        f.name,
                        e.get_ref()
                    ),
                );
            }
        }
        let envs = f.environments.iter().map(|e| e.get_ref().clone()).collect();
        match FreezeRule::parse(&f.name, f.cron.get_ref(), f.duration.get_ref(), envs) {
            Ok(rule) => freezes.push(rule),
            Err(e) => {
                let span = match e {
                    crate::core::freeze::FreezeError::Duration(_) => f.duration.span(),
                    _ => f.cron.span(),
                };
                return cx.err(span, format!("freeze \"{}\": {e}", f.name));
            }
        }
    }
    Ok(freezes)
}
