//! The forges evidence is read from: the top-level `[github]` and `[gitlab]` sections (their
//! schema; `config::forges` places them and adds line numbers), and which one an item reads.
//! Tokens are `${NAME}` references, resolved from the environment, never written in the file.

use serde::Deserialize;
use std::fmt;

pub const GITHUB_API: &str = "https://api.github.com";
pub use crate::remote::gitlab::schema::DEFAULT_API_URL as GITLAB_API;

/// Which forge an evidence item reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Github,
    Gitlab,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Github => "github",
            Source::Gitlab => "gitlab",
        }
    }
}

/// `[github]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubSection {
    api_url: Option<String>,
    token: String,
    /// `owner/name`.
    repo: String,
}

/// A forge's settings, validated; the token resolved (and kept out of `Debug`).
#[derive(Clone, PartialEq, Eq)]
pub struct ForgeSettings {
    pub api_url: String,
    pub token: String,
    /// GitHub's `owner/name`, GitLab's project.
    pub repo: String,
}

impl fmt::Debug for ForgeSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForgeSettings")
            .field("api_url", &self.api_url)
            .field("token", &"***")
            .field("repo", &self.repo)
            .finish()
    }
}

/// The configured forges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forges {
    pub github: Option<ForgeSettings>,
    pub gitlab: Option<ForgeSettings>,
}

impl Forges {
    pub fn get(&self, s: Source) -> Option<&ForgeSettings> {
        match s {
            Source::Github => self.github.as_ref(),
            Source::Gitlab => self.gitlab.as_ref(),
        }
    }

    /// The one configured forge, when there is exactly one.
    pub fn only(&self) -> Option<Source> {
        match (&self.github, &self.gitlab) {
            (Some(_), None) => Some(Source::Github),
            (None, Some(_)) => Some(Source::Gitlab),
            _ => None,
        }
    }
}

/// `${NAME}` resolved; a literal token is refused (secrets are never in the file).
fn token(
    section: &str,
    t: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let name = t
        .strip_prefix("${")
        .and_then(|r| r.strip_suffix('}'))
        .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .ok_or_else(|| {
            format!("[{section}] token must be a ${{NAME}} reference to an environment variable, never the token itself")
        })?;
    match lookup(name) {
        Some(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(format!(
            "[{section}] token: environment variable {name} is not set"
        )),
    }
}

fn api_url(section: &str, url: Option<String>, default: &str) -> Result<String, String> {
    let url = url.unwrap_or_else(|| default.to_string());
    crate::remote::rest::check_base_url(&url).map_err(|e| format!("[{section}] api_url: {e}"))?;
    Ok(url)
}

impl GithubSection {
    pub fn validate(
        self,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ForgeSettings, String> {
        let parts: Vec<&str> = self.repo.split('/').collect();
        if parts.len() != 2
            || parts
                .iter()
                .any(|p| p.is_empty() || p.contains(char::is_whitespace))
        {
            return Err(format!("[github] repo \"{}\" is not owner/name", self.repo));
        }
        Ok(ForgeSettings {
            api_url: api_url("github", self.api_url, GITHUB_API)?,
            token: token("github", &self.token, lookup)?,
            repo: self.repo,
        })
    }
}
