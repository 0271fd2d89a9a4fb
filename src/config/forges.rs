//! `[github]` and `[gitlab]` as the evidence reads them (their keys parsed once, in
//! `remote::github` and `remote::gitlab`), and
//! the evidence keys of a checklist item: `evidence = "ci"`, `required`, `source`, `recheck`.

use super::context::{ConfigError, Ctx};
use super::EnvConfig;
use crate::core::evidence::Evidence;
use crate::core::EnvName;
use crate::evidence::schema::{ForgeSettings, Forges, Source};
use crate::remote::github::GitHubKeys;
use crate::remote::gitlab::Keys as GitlabKeys;
use std::collections::BTreeMap;
use std::time::Duration;
use toml::Spanned;

/// How often CI that is not green is read again, unless the item says.
pub const RECHECK: Duration = Duration::from_secs(30);

/// The evidence keys of `[[environments.X.checklist]]`, as written.
pub(super) struct RawEvidence {
    pub(super) evidence: Option<Spanned<String>>,
    pub(super) required: Option<Spanned<Vec<String>>>,
    pub(super) source: Option<Spanned<Source>>,
    pub(super) recheck: Option<Spanned<String>>,
}

/// A checklist item ticked by CI.
#[derive(Debug, Clone, PartialEq)]
pub struct CiItem {
    pub required: Vec<String>,
    pub recheck: Duration,
    /// Filled in once the forges are known (`resolve_sources`).
    pub source: Source,
    stated: Option<Source>,
    line: Option<usize>,
}

impl CiItem {
    /// The core's rule for it.
    pub fn rule(&self) -> Evidence {
        Evidence::Ci {
            required: self.required.clone(),
            recheck: self.recheck,
        }
    }
}

pub(super) fn forges(
    cx: &Ctx,
    github: &GitHubKeys,
    gitlab: &GitlabKeys,
) -> Result<Forges, ConfigError> {
    // `[github]` is parsed once (its keys, checked, are every environment's default); the
    // evidence reads it when it names a repository and a token.
    let github = match (&github.token, &github.repo) {
        (Some(token), Some(repo)) => Some(ForgeSettings {
            api_url: github
                .api_url
                .clone()
                .unwrap_or_else(|| crate::evidence::schema::GITHUB_API.to_string()),
            token: token.clone(),
            repo: repo.clone(),
        }),
        _ => None,
    };
    // `[gitlab]` likewise (`remote::gitlab::schema`): read when it names a project and an
    // access token.
    let gitlab = gitlab
        .reader(cx.lookup)
        .or_else(|(span, m)| cx.err(span, m))?
        .map(|s| ForgeSettings {
            api_url: s.api_url,
            token: s.token.unwrap_or_default(),
            repo: s.project,
        });
    Ok(Forges { github, gitlab })
}

/// An item's evidence keys: none, or a valid `evidence = "ci"` with its options.
pub(super) fn ci_item(
    cx: &Ctx,
    text: &str,
    raw: RawEvidence,
) -> Result<Option<CiItem>, ConfigError> {
    let Some(kind) = raw.evidence else {
        let stray = [
            raw.required.as_ref().map(|s| ("required", s.span())),
            raw.source.as_ref().map(|s| ("source", s.span())),
            raw.recheck.as_ref().map(|s| ("recheck", s.span())),
        ];
        if let Some((key, span)) = stray.into_iter().flatten().next() {
            return cx.err(
                span,
                format!("checklist item \"{text}\": {key} needs evidence = \"ci\""),
            );
        }
        return Ok(None);
    };
    if kind.get_ref() != "ci" {
        return cx.err(
            kind.span(),
            format!(
                "checklist item \"{text}\": evidence \"{}\" is not known (known: ci)",
                kind.get_ref()
            ),
        );
    }
    let required = raw.required.map(|r| r.into_inner()).unwrap_or_default();
    if let Some(bad) = required.iter().find(|r| r.trim().is_empty()) {
        return Err(ConfigError {
            line: cx.find_line(text),
            message: format!("checklist item \"{text}\": required names a check \"{bad}\""),
        });
    }
    Ok(Some(CiItem {
        required,
        recheck: cx.opt_duration(&raw.recheck, "recheck", RECHECK)?,
        source: Source::Github,
        stated: raw.source.as_ref().map(|s| *s.get_ref()),
        line: Some(cx.line_of(kind.span().start)),
    }))
}

/// Each evidence item reads a configured forge: the one it names, or the only one there is.
pub(super) fn resolve_sources(
    _cx: &Ctx,
    forges: &Forges,
    envs: &mut BTreeMap<EnvName, EnvConfig>,
) -> Result<(), ConfigError> {
    for env in envs.values_mut() {
        for item in &mut env.checklist {
            let Some(ci) = item.evidence.as_mut() else {
                continue;
            };
            let fail = |message: String| {
                Err(ConfigError {
                    line: ci.line,
                    message,
                })
            };
            ci.source = match (ci.stated, forges.only()) {
                (Some(s), _) if forges.get(s).is_some() => s,
                (Some(s), _) => {
                    return fail(format!(
                        "checklist item \"{}\": source = \"{}\" but there is no [{}] section",
                        item.text,
                        s.as_str(),
                        s.as_str()
                    ))
                }
                (None, Some(s)) => s,
                (None, None) if forges.github.is_some() => {
                    return fail(format!(
                        "checklist item \"{}\": both [github] and [gitlab] are configured: say which with source = \"github\" or \"gitlab\"",
                        item.text
                    ))
                }
                (None, None) => {
                    return fail(format!(
                        "checklist item \"{}\": evidence = \"ci\" needs a [github] or [gitlab] section to read CI from",
                        item.text
                    ))
                }
            };
        }
    }
    Ok(())
}
