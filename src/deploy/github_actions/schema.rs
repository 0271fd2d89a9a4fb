//! `[environments.X.deploy]` with `driver = "github-actions"`, as written and validated. The
//! `[github]` keys (`api_url`, `token`, `repo`) may be overridden here. Errors are one line;
//! `config` adds the section's line number.

use crate::core::text::render_template;
use crate::remote::github::{GitHubKeys, GitHubSettings};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// The placeholders `ref` and `inputs` may use.
pub const PLACEHOLDERS: [&str; 4] = ["version", "env", "colour", "color"];

/// `[environments.X.deploy]` with `driver = "github-actions"`, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploySection {
    workflow: String,
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    #[serde(default)]
    inputs: BTreeMap<String, String>,
    timeout: Option<String>,
    poll_interval: Option<String>,
    find_timeout: Option<String>,
    blue_url: String,
    green_url: String,
    api_url: Option<String>,
    token: Option<String>,
    repo: Option<String>,
}

/// The deploy step, validated.
#[derive(Debug, Clone)]
pub struct GitHubActionsConfig {
    pub github: GitHubSettings,
    /// The workflow's file name (`deploy.yml`) or numeric id.
    pub workflow: String,
    /// Template of the git ref the workflow runs on (default `{version}`).
    pub git_ref: String,
    /// Templates of the workflow's inputs (strings, as GitHub takes them).
    pub inputs: BTreeMap<String, String>,
    /// The whole step: dispatch, finding the run, waiting for it (every retry and rate-limit
    /// wait included).
    pub timeout: Duration,
    /// How often the run is asked for its status.
    pub poll_interval: Duration,
    /// How long a dispatched run may take to appear in the runs list before greenlight says
    /// the dispatch did not start one.
    pub find_timeout: Duration,
    pub blue_url: String,
    pub green_url: String,
}

fn duration(
    name: &str,
    key: &str,
    v: Option<String>,
    default: Duration,
) -> Result<Duration, String> {
    match v {
        None => Ok(default),
        Some(t) => match humantime::parse_duration(&t) {
            Ok(d) if !d.is_zero() => Ok(d),
            _ => Err(format!(
                "environment \"{name}\": deploy.{key} \"{t}\" is not a duration"
            )),
        },
    }
}

impl DeploySection {
    /// Validates the section of environment `name` over the `[github]` section's keys;
    /// returns the step and the secret it resolved (to mask).
    pub fn validate(
        self,
        name: &str,
        github: &GitHubKeys,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(GitHubActionsConfig, Vec<String>), String> {
        let at = |m: String| format!("environment \"{name}\": {m}");
        let settings =
            GitHubKeys::from_written(self.api_url, self.token, self.repo, "deploy.", lookup)
                .and_then(|k| k.over(github).settings("deploy."))
                .map_err(at)?;
        let workflow = self.workflow.trim().to_string();
        let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
        if workflow.is_empty() || !workflow.chars().all(plain) {
            return Err(at(format!(
                "deploy.workflow \"{}\" must be a workflow file name (deploy.yml) or id",
                crate::core::text::clip(&workflow, 60)
            )));
        }
        let git_ref = self.git_ref.unwrap_or_else(|| "{version}".into());
        let vars: BTreeMap<String, String> = PLACEHOLDERS
            .iter()
            .map(|k| (k.to_string(), "x".into()))
            .collect();
        let templates = std::iter::once(("ref".to_string(), &git_ref))
            .chain(self.inputs.iter().map(|(k, v)| (format!("inputs.{k}"), v)));
        for (what, t) in templates {
            render_template(t, &vars).map_err(|m| {
                at(format!(
                    "deploy.{what}: {m} (known: {{version}}, {{env}}, {{colour}})"
                ))
            })?;
        }
        let secs = Duration::from_secs;
        let cfg = GitHubActionsConfig {
            workflow,
            git_ref,
            inputs: self.inputs,
            timeout: duration(name, "timeout", self.timeout, secs(30 * 60))?,
            poll_interval: duration(name, "poll_interval", self.poll_interval, secs(3))?,
            find_timeout: duration(name, "find_timeout", self.find_timeout, secs(60))?,
            blue_url: self.blue_url.trim_end_matches('/').to_string(),
            green_url: self.green_url.trim_end_matches('/').to_string(),
            github: settings,
        };
        let secrets = vec![cfg.github.token.clone()];
        Ok((cfg, secrets))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(extra: &str) -> Result<(GitHubActionsConfig, Vec<String>), String> {
        let text = format!("workflow = \"deploy.yml\"\nblue_url = \"http://b/\"\ngreen_url = \"http://g\"\n{extra}");
        let s: DeploySection = toml::from_str(&text).map_err(|e| e.to_string())?;
        let github = GitHubKeys {
            token: Some("ghp_default".into()),
            repo: Some("acme/shop".into()),
            ..GitHubKeys::default()
        };
        s.validate("prod", &github, &|n| {
            (n == "PROD_TOKEN").then(|| "ghp_prod".into())
        })
    }

    #[test]
    fn defaults_and_overrides() {
        let (c, secrets) = section("").unwrap();
        assert_eq!(c.git_ref, "{version}");
        assert_eq!(c.timeout, Duration::from_secs(1800));
        assert_eq!(c.github.api_url, "https://api.github.com");
        assert_eq!(
            (c.github.repo.as_str(), secrets),
            ("acme/shop", vec!["ghp_default".to_string()])
        );
        assert_eq!(c.blue_url, "http://b");
        let (c, secrets) = section("token = \"${PROD_TOKEN}\"\nrepo = \"acme/prod\"\ninputs = { version = \"{version}\", target = \"{env}-{colour}\" }\nref = \"main\"").unwrap();
        assert_eq!(
            (c.github.token.as_str(), c.github.repo.as_str()),
            ("ghp_prod", "acme/prod")
        );
        assert_eq!(secrets, vec!["ghp_prod".to_string()]);
        assert_eq!(c.inputs["target"], "{env}-{colour}");
    }

    #[test]
    fn errors_say_which_key() {
        for (extra, want) in [
            (
                "token = \"ghp_literal\"",
                "deploy.token must be a ${NAME} reference",
            ),
            (
                "inputs = { v = \"{sha}\" }",
                "deploy.inputs.v: unknown placeholder {sha}",
            ),
            ("ref = \"{version\"", "deploy.ref: unclosed"),
            (
                "timeout = \"soon\"",
                "deploy.timeout \"soon\" is not a duration",
            ),
            (
                "api_url = \"http://ghe.example.com/api/v3\"",
                "deploy.api_url:",
            ),
        ] {
            let e = section(extra).unwrap_err();
            assert!(e.starts_with("environment \"prod\": "), "{e}");
            assert!(e.contains(want), "{extra}: {e}");
        }
        let bad = "workflow = \"../x\"\nblue_url = \"b\"\ngreen_url = \"g\"\n";
        let s: DeploySection = toml::from_str(bad).unwrap();
        let e = s
            .validate("prod", &GitHubKeys::default(), &|_| None)
            .unwrap_err();
        assert!(
            e.contains("deploy.token or [github] token is required"),
            "{e}"
        );
    }
}
