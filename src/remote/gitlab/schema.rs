//! The `[gitlab]` keys: `api_url`, `token`, `trigger_token`, `project`. They sit in the
//! top-level `[gitlab]` section and may be overridden per environment (a gitlab deploy
//! section holds the same keys). Credentials are always `${NAME}` references: a token
//! written into the file is refused, so it never reaches the repository.

use serde::Deserialize;
use std::ops::Range;
use toml::Spanned;

/// GitLab.com's API; a self-managed instance is `https://gitlab.example.com/api/v4`.
pub const DEFAULT_API_URL: &str = "https://gitlab.com/api/v4";

/// The top-level `[gitlab]` section, as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct GitlabSection {
    api_url: Option<Spanned<String>>,
    token: Option<Spanned<String>>,
    trigger_token: Option<Spanned<String>>,
    project: Option<Spanned<String>>,
}

/// One key as written and where (a span of the config text, for the error's line).
pub type Key = Option<(String, Range<usize>)>;

/// The keys from wherever they were written, not yet resolved.
#[derive(Debug, Clone, Default)]
pub struct Keys {
    pub api_url: Key,
    pub token: Key,
    pub trigger_token: Key,
    pub project: Key,
}

/// The keys resolved: what a client needs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub api_url: String,
    /// Numeric id or `group/project` path, as written.
    pub project: String,
    /// A personal, project or group access token (`PRIVATE-TOKEN`): creates pipelines and
    /// reads them.
    pub token: Option<String>,
    /// A pipeline trigger token: creates pipelines only.
    pub trigger_token: Option<String>,
}

impl Settings {
    /// The credential values, to mask in anything said.
    pub fn secrets(&self) -> Vec<String> {
        [&self.token, &self.trigger_token]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }
}

type Error = (Range<usize>, String);

impl GitlabSection {
    /// The section's keys; errors (a literal token, a bad URL) name the key's line.
    pub fn keys(self) -> Result<Keys, Error> {
        let k = |s: Option<Spanned<String>>| s.map(|s| (s.get_ref().clone(), s.span()));
        let keys = Keys {
            api_url: k(self.api_url),
            token: k(self.token),
            trigger_token: k(self.trigger_token),
            project: k(self.project),
        };
        keys.check("[gitlab]")?;
        Ok(keys)
    }
}

impl Keys {
    /// These keys, and `base`'s where these have none.
    pub fn over(self, base: &Keys) -> Keys {
        Keys {
            api_url: self.api_url.or_else(|| base.api_url.clone()),
            token: self.token.or_else(|| base.token.clone()),
            trigger_token: self.trigger_token.or_else(|| base.trigger_token.clone()),
            project: self.project.or_else(|| base.project.clone()),
        }
    }

    /// The shape of what is written, without reading the environment.
    fn check(&self, what: &str) -> Result<(), Error> {
        for (name, key) in [
            ("token", &self.token),
            ("trigger_token", &self.trigger_token),
        ] {
            if let Some((v, span)) = key {
                reference(v).map_err(|m| (span.clone(), format!("{what} {name} {m}")))?;
            }
        }
        if let Some((u, span)) = &self.api_url {
            crate::remote::rest::check_base_url(u)
                .map_err(|m| (span.clone(), format!("{what} api_url: {m}")))?;
        }
        if let Some((p, span)) = &self.project {
            let p = p.trim().trim_matches('/');
            if p.is_empty() || p.chars().any(char::is_whitespace) {
                return Err((
                    span.clone(),
                    format!("{what} project: \"{p}\" is not a project id or path (write 42 or \"group/project\")"),
                ));
            }
        }
        Ok(())
    }

    /// Resolves the `${NAME}` references with `lookup`; `what` names where the keys are used
    /// (`environment "prod"`), `whole` is the span for a key that is missing.
    pub fn resolve(
        &self,
        what: &str,
        whole: Range<usize>,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, Error> {
        self.check(&format!("{what}: gitlab"))?;
        let secret = |key: &Key, name: &str| -> Result<Option<String>, Error> {
            let Some((v, span)) = key else {
                return Ok(None);
            };
            let var =
                reference(v).map_err(|m| (span.clone(), format!("{what}: gitlab {name}: {m}")))?;
            match lookup(var) {
                Some(value) if !value.is_empty() => Ok(Some(value)),
                _ => Err((
                    span.clone(),
                    format!("{what}: gitlab {name}: environment variable {var} is not set"),
                )),
            }
        };
        let token = secret(&self.token, "token")?;
        let trigger_token = secret(&self.trigger_token, "trigger_token")?;
        if token.is_none() && trigger_token.is_none() {
            return Err((whole, format!("{what}: GitLab needs token = \"${{NAME}}\" (an access token with the api scope) or trigger_token = \"${{NAME}}\", in [gitlab] or the deploy section")));
        }
        let Some((project, _)) = &self.project else {
            return Err((whole, format!("{what}: GitLab needs project (42 or \"group/project\"), in [gitlab] or the deploy section")));
        };
        Ok(Settings {
            api_url: self
                .api_url
                .as_ref()
                .map(|(u, _)| u.trim().to_string())
                .unwrap_or_else(|| DEFAULT_API_URL.to_string()),
            project: project.trim().trim_matches('/').to_string(),
            token,
            trigger_token,
        })
    }
}

impl Keys {
    /// The settings of a reader of the section's own project (the checklist's CI evidence):
    /// `None` unless the keys name a project and an access token (a trigger token reads
    /// nothing). Errors name the key's span.
    pub fn reader(
        &self,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Settings>, Error> {
        let (Some((token, span)), Some((project, _))) = (&self.token, &self.project) else {
            return Ok(None);
        };
        let var = reference(token).map_err(|m| (span.clone(), format!("[gitlab] token {m}")))?;
        let token = match lookup(var) {
            Some(v) if !v.trim().is_empty() => v,
            _ => {
                return Err((
                    span.clone(),
                    format!("[gitlab] token: environment variable {var} is not set"),
                ))
            }
        };
        Ok(Some(Settings {
            api_url: self
                .api_url
                .as_ref()
                .map(|(u, _)| u.trim().to_string())
                .unwrap_or_else(|| DEFAULT_API_URL.to_string()),
            project: project.trim().trim_matches('/').to_string(),
            token: Some(token),
            trigger_token: None,
        }))
    }
}

/// The variable name in a value that must be exactly one `${NAME}` reference.
fn reference(v: &str) -> Result<&str, String> {
    let name = v
        .trim()
        .strip_prefix("${")
        .and_then(|r| r.strip_suffix('}'))
        .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    name.ok_or_else(|| {
        "must be a ${NAME} reference to an environment variable, never the token itself".to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(text: &str) -> Result<Keys, Error> {
        toml::from_str::<GitlabSection>(text).unwrap().keys()
    }

    fn env(n: &str) -> Option<String> {
        (n == "GL_TOKEN").then(|| "glpat-s3cret".to_string())
    }

    #[test]
    fn keys_resolve_with_the_environment_and_defaults() {
        let k = keys("token = \"${GL_TOKEN}\"\nproject = \"g/p\"\n").unwrap();
        let s = k.resolve("environment \"prod\"", 0..1, &env).unwrap();
        assert_eq!(s.api_url, DEFAULT_API_URL);
        assert_eq!(s.token.as_deref(), Some("glpat-s3cret"));
        assert_eq!(s.secrets(), vec!["glpat-s3cret".to_string()]);
        let over = Keys {
            project: Some(("7".into(), 0..1)),
            ..Keys::default()
        }
        .over(&k);
        assert_eq!(over.resolve("e", 0..1, &env).unwrap().project, "7");
    }

    #[test]
    fn a_literal_token_or_a_plain_http_url_is_refused_at_its_key() {
        let text = "project = \"1\"\ntoken = \"glpat-literal\"\n";
        let (span, m) = keys(text).unwrap_err();
        assert_eq!(&text[span], "\"glpat-literal\"");
        assert!(m.contains("must be a ${NAME} reference"), "{m}");
        let (_, m) = keys("api_url = \"http://gitlab.example.com/api/v4\"\n").unwrap_err();
        assert!(
            m.contains("plain http:// is allowed only for a loopback"),
            "{m}"
        );
        assert!(keys("api_url = \"http://127.0.0.1:8080/api/v4\"\n").is_ok());
    }

    #[test]
    fn missing_pieces_say_what_to_add() {
        let k = keys("project = \"1\"\n").unwrap();
        let (_, m) = k.resolve("environment \"prod\"", 0..1, &env).unwrap_err();
        assert!(m.contains("needs token"), "{m}");
        let k = keys("trigger_token = \"${NOPE}\"\nproject = \"1\"\n").unwrap();
        let (_, m) = k.resolve("environment \"prod\"", 0..1, &env).unwrap_err();
        assert!(m.contains("environment variable NOPE is not set"), "{m}");
        let k = keys("token = \"${GL_TOKEN}\"\n").unwrap();
        let (_, m) = k.resolve("environment \"prod\"", 0..1, &env).unwrap_err();
        assert!(m.contains("needs project"), "{m}");
    }
}
