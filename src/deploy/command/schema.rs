//! The `command` driver's config sections: `[environments.X.deploy]` with
//! `driver = "command"` (which may also hold a command traffic step) and
//! `[environments.X.traffic]` with `driver = "command"`, as written and validated. Errors are
//! one line; `config` adds the section's line number.

use crate::core::Colour;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// argv templates run in order.
pub type ArgvSteps = Vec<Vec<String>>;

/// One argv (`["kubectl", "apply", ...]`) or several run in order (`[[...], [...]]`).
#[derive(Deserialize, Clone)]
#[serde(untagged)]
pub enum Steps {
    One(Vec<String>),
    Many(Vec<Vec<String>>),
}

impl Steps {
    fn into_vec(self) -> ArgvSteps {
        match self {
            Steps::One(v) => vec![v],
            Steps::Many(v) => v,
        }
    }
}

/// `[environments.X.deploy]` with `driver = "command"`, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploySection {
    deploy_idle: Steps,
    switch: Option<Steps>,
    rollback: Option<Steps>,
    live_query: Option<Steps>,
    live: Option<String>,
    teardown: Option<Steps>,
    timeout: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    blue_url: String,
    green_url: String,
}

/// `[environments.X.traffic]` with `driver = "command"`, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficSection {
    switch: Steps,
    rollback: Option<Steps>,
    live_query: Option<Steps>,
    live: Option<String>,
}

/// The deploy step, validated.
#[derive(Debug, Clone)]
pub struct CommandDriverConfig {
    /// One or more argv templates run in order.
    pub deploy_idle: ArgvSteps,
    pub teardown: Option<ArgvSteps>,
    pub timeout: Duration,
    /// Extra environment for the commands; values may be `${NAME}` references (secrets).
    pub env: BTreeMap<String, String>,
    /// Base URL of each colour, for health checks, smoke tests and metrics.
    pub blue_url: String,
    pub green_url: String,
}

/// The traffic step, validated: `switch` (and `rollback` to switch back, else `switch` again).
#[derive(Debug, Clone)]
pub struct CommandTrafficConfig {
    pub switch: ArgvSteps,
    pub rollback: Option<ArgvSteps>,
    /// argv templates whose output's last line names the live colour (`blue`, `green` or
    /// `none`); without it the step cannot be asked.
    pub query: Option<ArgvSteps>,
    /// The live colour stated by a person (`live = "blue" | "green" | "none"`), used when
    /// greenlight has no record of its own and cannot ask.
    pub live: Option<Option<Colour>>,
}

/// A validated deploy section: the deploy step, the traffic step written in it (if any), and
/// the secret values it resolved (to mask).
pub struct Deploy {
    pub deploy: CommandDriverConfig,
    pub traffic: Option<CommandTrafficConfig>,
    pub secrets: Vec<String>,
}

/// `live = "blue" | "green" | "none"`: the live colour a person states.
fn parse_stated_live(s: &str) -> Result<Option<Colour>, String> {
    match s.trim() {
        "blue" => Ok(Some(Colour::Blue)),
        "green" => Ok(Some(Colour::Green)),
        "none" => Ok(None),
        other => Err(format!(
            "\"{}\" is not a colour: use \"blue\", \"green\" or \"none\"",
            crate::core::text::clip(other, 40)
        )),
    }
}

fn names_a_program(steps: &ArgvSteps) -> bool {
    !steps.is_empty() && !steps.iter().any(|a| a.is_empty() || a[0].trim().is_empty())
}

impl DeploySection {
    /// Validates the section of environment `name`; `lookup` resolves `${NAME}` references.
    pub fn validate(
        self,
        name: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Deploy, String> {
        let deploy_idle = self.deploy_idle.into_vec();
        let teardown = self.teardown.map(Steps::into_vec);
        let switch = self.switch.map(Steps::into_vec);
        let rollback = self.rollback.map(Steps::into_vec);
        let live_query = self.live_query.map(Steps::into_vec);
        let all = [
            ("deploy_idle", Some(&deploy_idle)),
            ("switch", switch.as_ref()),
            ("rollback", rollback.as_ref()),
            ("live_query", live_query.as_ref()),
            ("teardown", teardown.as_ref()),
        ];
        for (what, steps) in all {
            if steps.is_some_and(|s| !names_a_program(s)) {
                return Err(format!(
                    "environment \"{name}\": deploy.{what} must name a program in every step"
                ));
            }
        }
        if switch.is_none() && (live_query.is_some() || self.live.is_some()) {
            return Err(format!("environment \"{name}\": deploy.live_query and deploy.live go with deploy.switch; with a [environments.{name}.traffic] section, set them there"));
        }
        let traffic = match switch {
            Some(switch) => Some(CommandTrafficConfig {
                switch,
                rollback,
                query: live_query,
                live: stated_live(self.live, name, "deploy")?,
            }),
            None => None,
        };
        let timeout = match self.timeout {
            Some(t) => match humantime::parse_duration(&t) {
                Ok(d) if !d.is_zero() => d,
                _ => {
                    return Err(format!(
                        "environment \"{name}\": deploy.timeout \"{t}\" is not a duration"
                    ))
                }
            },
            None => Duration::from_secs(600),
        };
        let mut secrets = Vec::new();
        let mut resolved = BTreeMap::new();
        for (k, v) in self.env {
            let value = super::process::expand_env_refs(&v, lookup)
                .map_err(|m| format!("environment \"{name}\": deploy.env.{k}: {m}"))?;
            if v.contains("${") {
                secrets.push(value.clone());
            }
            resolved.insert(k, value);
        }
        let deploy = CommandDriverConfig {
            deploy_idle,
            teardown,
            timeout,
            env: resolved,
            blue_url: self.blue_url.trim_end_matches('/').to_string(),
            green_url: self.green_url.trim_end_matches('/').to_string(),
        };
        Ok(Deploy {
            deploy,
            traffic,
            secrets,
        })
    }
}

fn stated_live(
    live: Option<String>,
    name: &str,
    section: &str,
) -> Result<Option<Option<Colour>>, String> {
    live.as_deref()
        .map(parse_stated_live)
        .transpose()
        .map_err(|m| format!("environment \"{name}\": {section}.live: {m}"))
}

impl TrafficSection {
    /// Validates the section of environment `name`.
    pub fn validate(self, name: &str) -> Result<CommandTrafficConfig, String> {
        let switch = self.switch.into_vec();
        if switch.is_empty() || switch.iter().any(|a| a.is_empty()) {
            return Err(format!(
                "environment \"{name}\": traffic.switch must name a program in every step"
            ));
        }
        let query = self.live_query.map(Steps::into_vec);
        if query.as_ref().is_some_and(|q| !names_a_program(q)) {
            return Err(format!(
                "environment \"{name}\": traffic.live_query must name a program in every step"
            ));
        }
        Ok(CommandTrafficConfig {
            switch,
            rollback: self.rollback.map(Steps::into_vec),
            query,
            live: stated_live(self.live, name, "traffic")?,
        })
    }
}

/// Every placeholder in a command template must be one the driver fills in.
pub fn check_templates(
    name: &str,
    deploy: &CommandDriverConfig,
    traffic: Option<&CommandTrafficConfig>,
) -> Result<(), String> {
    let vars: BTreeMap<String, String> = ["env", "colour", "color", "other", "from", "version"]
        .iter()
        .map(|k| (k.to_string(), "x".to_string()))
        .collect();
    let mut templates: Vec<(&str, &Vec<String>)> = Vec::new();
    templates.extend(deploy.deploy_idle.iter().map(|a| ("deploy.deploy_idle", a)));
    if let Some(t) = &deploy.teardown {
        templates.extend(t.iter().map(|a| ("deploy.teardown", a)));
    }
    if let Some(t) = traffic {
        templates.extend(t.switch.iter().map(|a| ("switch", a)));
        if let Some(q) = &t.query {
            templates.extend(q.iter().map(|a| ("live_query", a)));
        }
        if let Some(r) = &t.rollback {
            templates.extend(r.iter().map(|a| ("rollback", a)));
        }
    }
    for (what, argv) in templates {
        if let Err(m) = super::process::render_argv(argv, &vars) {
            return Err(format!("environment \"{name}\": {what}: {m} (known: {{version}}, {{colour}}, {{other}}, {{from}}, {{env}})"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy(toml_text: &str) -> Result<Deploy, String> {
        let section: DeploySection = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        section.validate("prod", &|n| (n == "TOKEN").then(|| "s3cret".to_string()))
    }

    const URLS: &str = "blue_url = \"http://b/\"\ngreen_url = \"http://g\"\n";

    #[test]
    fn a_deploy_section_with_its_own_switch() {
        let d = deploy(&format!(
            "deploy_idle = [\"deploy\", \"{{version}}\"]\nswitch = [[\"a\"], [\"b\"]]\nlive = \"none\"\nenv = {{ T = \"${{TOKEN}}\" }}\n{URLS}"
        ))
        .unwrap();
        assert_eq!(d.deploy.blue_url, "http://b");
        assert_eq!(d.deploy.timeout, Duration::from_secs(600));
        assert_eq!(d.deploy.env["T"], "s3cret");
        assert_eq!(d.secrets, vec!["s3cret".to_string()]);
        let t = d.traffic.unwrap();
        assert_eq!(t.switch.len(), 2);
        assert_eq!(t.live, Some(None));
    }

    #[test]
    fn deploy_errors_say_which_key() {
        let cases = [
            (
                "deploy_idle = []\n",
                "deploy.deploy_idle must name a program",
            ),
            (
                "deploy_idle = [\"x\"]\nlive = \"blue\"\n",
                "go with deploy.switch",
            ),
            (
                "deploy_idle = [\"x\"]\nswitch = [\"s\"]\nlive = \"red\"\n",
                "deploy.live: \"red\" is not a colour",
            ),
            (
                "deploy_idle = [\"x\"]\ntimeout = \"soon\"\n",
                "deploy.timeout \"soon\" is not a duration",
            ),
            (
                "deploy_idle = [\"x\"]\nenv = { T = \"${NOPE}\" }\n",
                "deploy.env.T: environment variable NOPE is not set",
            ),
        ];
        for (text, want) in cases {
            let e = deploy(&format!("{text}{URLS}")).err().unwrap();
            assert!(e.starts_with("environment \"prod\": "), "{e}");
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn templates_may_use_only_the_drivers_placeholders() {
        let d = deploy(&format!("deploy_idle = [\"x\", \"{{colour}}\"]\n{URLS}")).unwrap();
        assert_eq!(check_templates("prod", &d.deploy, None), Ok(()));
        let t = CommandTrafficConfig {
            switch: vec![vec!["s".into(), "{region}".into()]],
            rollback: None,
            query: None,
            live: None,
        };
        let e = check_templates("prod", &d.deploy, Some(&t)).unwrap_err();
        assert!(e.starts_with("environment \"prod\": switch: "), "{e}");
        assert!(e.contains("region"), "{e}");
    }
}
