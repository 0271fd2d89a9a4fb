//! The `[github]` keys: `api_url`, `token` (always a `${NAME}` reference, resolved from the
//! environment), `repo`. The top-level section is the default of every environment; a
//! component's own section may override each key. Errors are one line; `config` adds the line.

use crate::remote::rest::check_base_url;
use serde::Deserialize;
use std::ops::Range;
use toml::Spanned;

pub const DEFAULT_API_URL: &str = "https://api.github.com";

/// `[github]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct GitHubSection {
    api_url: Option<Spanned<String>>,
    token: Option<Spanned<String>>,
    repo: Option<Spanned<String>>,
}

/// The keys once checked (the token resolved), each possibly unset.
#[derive(Clone, Default, PartialEq)]
pub struct GitHubKeys {
    pub api_url: Option<String>,
    pub token: Option<String>,
    pub repo: Option<String>,
}

/// Everything a client needs.
#[derive(Clone, PartialEq)]
pub struct GitHubSettings {
    pub api_url: String,
    pub token: String,
    pub repo: String,
}

// The token never reaches a log or a panic message through `Debug`.
impl std::fmt::Debug for GitHubKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHubKeys")
            .field("api_url", &self.api_url)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("repo", &self.repo)
            .finish()
    }
}

impl std::fmt::Debug for GitHubSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHubSettings")
            .field("api_url", &self.api_url)
            .field("token", &"***")
            .field("repo", &self.repo)
            .finish()
    }
}

impl GitHubSection {
    /// Checks each key; an error names the span of the key at fault.
    pub fn validate(
        self,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<GitHubKeys, (Range<usize>, String)> {
        let at = |s: &Spanned<String>, r: Result<String, String>| {
            r.map_err(|m| (s.span(), format!("github.{m}")))
        };
        Ok(GitHubKeys {
            api_url: match &self.api_url {
                Some(s) => Some(at(s, check_api_url(s.get_ref()))?),
                None => None,
            },
            token: match &self.token {
                Some(s) => Some(at(s, resolve_token(s.get_ref(), lookup))?),
                None => None,
            },
            repo: match &self.repo {
                Some(s) => Some(at(s, check_repo(s.get_ref()))?),
                None => None,
            },
        })
    }
}

impl GitHubKeys {
    /// Checks keys written as plain strings (a component's overrides; `prefix` names where,
    /// e.g. `deploy.`).
    pub fn from_written(
        api_url: Option<String>,
        token: Option<String>,
        repo: Option<String>,
        prefix: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<GitHubKeys, String> {
        let at = |r: Result<String, String>| r.map_err(|m| format!("{prefix}{m}"));
        Ok(GitHubKeys {
            api_url: api_url.map(|s| at(check_api_url(&s))).transpose()?,
            token: token.map(|s| at(resolve_token(&s, lookup))).transpose()?,
            repo: repo.map(|s| at(check_repo(&s))).transpose()?,
        })
    }

    /// These keys where set, else `defaults`' (the `[github]` section).
    pub fn over(self, defaults: &GitHubKeys) -> GitHubKeys {
        GitHubKeys {
            api_url: self.api_url.or_else(|| defaults.api_url.clone()),
            token: self.token.or_else(|| defaults.token.clone()),
            repo: self.repo.or_else(|| defaults.repo.clone()),
        }
    }

    /// The settings, or one line naming the missing key (`prefix`: where it may be set).
    pub fn settings(self, prefix: &str) -> Result<GitHubSettings, String> {
        let missing = |k: &str| format!("{prefix}{k} or [github] {k} is required");
        Ok(GitHubSettings {
            api_url: self.api_url.unwrap_or_else(|| DEFAULT_API_URL.into()),
            token: self.token.ok_or_else(|| missing("token"))?,
            repo: self.repo.ok_or_else(|| missing("repo"))?,
        })
    }
}

/// `https://api.github.com`, or GitHub Enterprise's `https://HOST/api/v3`; `http://` only on
/// a loopback address.
fn check_api_url(s: &str) -> Result<String, String> {
    check_base_url(s.trim())
        .map(|_| s.trim().trim_end_matches('/').to_string())
        .map_err(|m| format!("api_url: {m}"))
}

/// The token is never written in the file: only `${NAME}`, read from the environment.
fn resolve_token(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let name = s
        .trim()
        .strip_prefix("${")
        .and_then(|r| r.strip_suffix('}'))
        .filter(|n| {
            n.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
        .ok_or(
            "token must be a ${NAME} reference to an environment variable, never the token itself",
        )?;
    match lookup(name) {
        Some(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
        _ => Err(format!("token: environment variable {name} is not set")),
    }
}

/// `owner/name`.
fn check_repo(s: &str) -> Result<String, String> {
    let ok = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    match s.trim().split_once('/') {
        Some((o, n)) if ok(o) && ok(n) => Ok(s.trim().to_string()),
        _ => Err(format!(
            "repo \"{}\" is not owner/name",
            crate::core::text::clip(s, 60)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(n: &str) -> Option<String> {
        (n == "GH_TOKEN").then(|| "ghp_s3cret".to_string())
    }

    #[test]
    fn the_token_is_only_ever_a_reference() {
        let k =
            GitHubKeys::from_written(None, Some("${GH_TOKEN}".into()), None, "deploy.", &lookup)
                .unwrap();
        assert_eq!(k.token.as_deref(), Some("ghp_s3cret"));
        for (written, want) in [
            ("ghp_literal", "deploy.token must be a ${NAME} reference"),
            (
                "Bearer ${GH_TOKEN}",
                "deploy.token must be a ${NAME} reference",
            ),
            (
                "${NOPE}",
                "deploy.token: environment variable NOPE is not set",
            ),
        ] {
            let e = GitHubKeys::from_written(None, Some(written.into()), None, "deploy.", &lookup)
                .unwrap_err();
            assert!(e.starts_with(want), "{written}: {e}");
            assert!(
                !e.contains("ghp_literal"),
                "the literal is not repeated: {e}"
            );
        }
    }

    #[test]
    fn urls_and_repos_are_checked_and_overrides_win() {
        let e = |u: Option<&str>, r: Option<&str>| {
            GitHubKeys::from_written(u.map(Into::into), None, r.map(Into::into), "", &lookup)
                .unwrap_err()
        };
        assert!(e(Some("http://github.example.com/api/v3"), None).contains("loopback"));
        assert!(e(None, Some("just-a-name")).contains("not owner/name"));
        let base = GitHubKeys {
            api_url: Some("https://ghe.example.com/api/v3".into()),
            token: Some("t".into()),
            repo: Some("acme/shop".into()),
        };
        let over = GitHubKeys::from_written(None, None, Some("acme/api".into()), "", &lookup)
            .unwrap()
            .over(&base)
            .settings("deploy.")
            .unwrap();
        assert_eq!(over.repo, "acme/api");
        assert_eq!(over.api_url, "https://ghe.example.com/api/v3");
        let missing = GitHubKeys::default().settings("deploy.").unwrap_err();
        assert_eq!(missing, "deploy.token or [github] token is required");
    }
}
