//! `[environments.X.deploy]` with `driver = "gitlab"`: which pipeline to create (`ref`,
//! `variables`, templates with `{version}`, `{env}`, `{colour}`), how long it may take, the
//! colours' URLs, and overrides of the top-level `[gitlab]` keys. Traffic is switched by the
//! environment's traffic section (`haproxy` or `command`).

use crate::remote::gitlab::{Keys, Settings};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

/// The section as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploySection {
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    timeout: Option<String>,
    poll_interval: Option<String>,
    find_timeout: Option<String>,
    blue_url: String,
    green_url: String,
    api_url: Option<String>,
    token: Option<String>,
    trigger_token: Option<String>,
    project: Option<String>,
}

/// The deploy step, validated.
#[derive(Debug, Clone)]
pub struct GitlabDeployConfig {
    pub settings: Settings,
    /// Branch or tag template (default `{version}`: a tag per release).
    pub git_ref: String,
    /// Pipeline variables, values are templates.
    pub variables: BTreeMap<String, String>,
    /// From creating the pipeline to its end (default 30 minutes).
    pub timeout: Duration,
    /// How often the pipeline is looked at (default 5 seconds).
    pub poll_interval: Duration,
    /// How long a pipeline that may have been created (a lost answer, a restart) is looked
    /// for before the step gives up rather than create a second one (default 30 seconds).
    pub find_timeout: Duration,
    pub blue_url: String,
    pub green_url: String,
}

/// A validated section and the secrets it resolved (to mask).
pub struct Deploy {
    pub deploy: GitlabDeployConfig,
    pub secrets: Vec<String>,
}

/// The placeholders a template may use.
pub const PLACEHOLDERS: [&str; 4] = ["version", "env", "colour", "color"];

impl DeploySection {
    /// Validates the section of environment `name` (at `span` in the file), its keys over the
    /// top-level `[gitlab]` ones (`base`); `lookup` resolves `${NAME}` references. An error
    /// comes with the span it is about.
    pub fn validate(
        self,
        name: &str,
        span: Range<usize>,
        base: &Keys,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Deploy, (Range<usize>, String)> {
        let what = format!("environment \"{name}\"");
        let err = |m: String| (span.clone(), format!("{what}: deploy.{m}"));
        let own = |v: Option<String>| v.map(|v| (v, span.clone()));
        let keys = Keys {
            api_url: own(self.api_url),
            token: own(self.token),
            trigger_token: own(self.trigger_token),
            project: own(self.project),
        }
        .over(base);
        let settings = keys.resolve(&what, span.clone(), lookup)?;
        let git_ref = self.git_ref.unwrap_or_else(|| "{version}".to_string());
        check_template(&git_ref).map_err(|m| err(format!("ref: {m}")))?;
        if git_ref.trim().is_empty() {
            return Err(err("ref is empty".into()));
        }
        for (k, v) in &self.variables {
            // GitLab's own rule for variable keys.
            if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(err(format!(
                    "variables: \"{k}\" is not a variable name (letters, digits and _)"
                )));
            }
            check_template(v).map_err(|m| err(format!("variables.{k}: {m}")))?;
        }
        let duration = |v: Option<String>, key: &str, default: u64| match v {
            None => Ok(Duration::from_secs(default)),
            Some(t) => match humantime::parse_duration(&t) {
                Ok(d) if !d.is_zero() => Ok(d),
                _ => Err(err(format!("{key} \"{t}\" is not a duration"))),
            },
        };
        let deploy = GitlabDeployConfig {
            git_ref,
            variables: self.variables,
            timeout: duration(self.timeout, "timeout", 30 * 60)?,
            poll_interval: duration(self.poll_interval, "poll_interval", 5)?,
            find_timeout: duration(self.find_timeout, "find_timeout", 30)?,
            blue_url: self.blue_url.trim_end_matches('/').to_string(),
            green_url: self.green_url.trim_end_matches('/').to_string(),
            settings,
        };
        let secrets = deploy.settings.secrets();
        Ok(Deploy { deploy, secrets })
    }
}

/// Renders `template` with the step's values.
pub fn render(template: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    crate::core::text::render_template(template, vars)
}

fn check_template(t: &str) -> Result<(), String> {
    let vars = PLACEHOLDERS
        .iter()
        .map(|k| (k.to_string(), "x".to_string()))
        .collect();
    render(t, &vars)
        .map(|_| ())
        .map_err(|m| format!("{m} (known: {{version}}, {{env}}, {{colour}})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const URLS: &str = "blue_url = \"http://b/\"\ngreen_url = \"http://g\"\n";

    fn validate(text: &str, base: &Keys) -> Result<Deploy, String> {
        let s: DeploySection =
            toml::from_str(&format!("{text}{URLS}")).map_err(|e| e.to_string())?;
        let env = |n: &str| (n == "GL").then(|| "glpat-s3cret".to_string());
        s.validate("prod", 0..1, base, &env).map_err(|(_, m)| m)
    }

    fn base() -> Keys {
        Keys {
            token: Some(("${GL}".into(), 0..1)),
            project: Some(("g/p".into(), 0..1)),
            ..Keys::default()
        }
    }

    #[test]
    fn defaults_and_overrides() {
        let d = validate("variables = { COLOUR = \"{colour}\" }\n", &base()).unwrap();
        assert_eq!(d.deploy.git_ref, "{version}");
        assert_eq!(d.deploy.timeout, Duration::from_secs(1800));
        assert_eq!(d.deploy.poll_interval, Duration::from_secs(5));
        assert_eq!(d.deploy.find_timeout, Duration::from_secs(30));
        assert_eq!(d.deploy.blue_url, "http://b");
        assert_eq!(d.deploy.settings.project, "g/p");
        assert_eq!(d.secrets, vec!["glpat-s3cret".to_string()]);
        let d = validate("project = \"42\"\nref = \"main\"\n", &base()).unwrap();
        assert_eq!(d.deploy.settings.project, "42");
        assert_eq!(d.deploy.git_ref, "main");
    }

    #[test]
    fn errors_say_which_key() {
        let cases = [
            ("ref = \"{branch}\"\n", "deploy.ref: "),
            (
                "variables = { \"A-B\" = \"x\" }\n",
                "\"A-B\" is not a variable name",
            ),
            ("variables = { A = \"{region}\" }\n", "deploy.variables.A: "),
            (
                "timeout = \"soon\"\n",
                "deploy.timeout \"soon\" is not a duration",
            ),
            ("token = \"glpat-literal\"\n", "must be a ${NAME} reference"),
        ];
        for (text, want) in cases {
            let e = validate(text, &base()).err().unwrap();
            assert!(e.starts_with("environment \"prod\""), "{e}");
            assert!(e.contains(want), "{text}: {e}");
        }
        let e = validate("", &Keys::default()).err().unwrap();
        assert!(e.contains("GitLab needs token"), "{e}");
    }
}
