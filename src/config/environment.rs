//! `[environments.NAME]`: who deploys, the checklist, channels, the driver's deploy and
//! traffic steps (their sections are the components' schemas), health, smoke, monitoring and
//! metrics.

use super::context::{ConfigError, Ctx};
use crate::core::EnvName;
use crate::deploy::argocd::schema as argocd;
use crate::deploy::command::schema as command;
use crate::deploy::github_actions::schema as github_actions;
use crate::deploy::gitlab::schema as gitlab;
use crate::deploy::haproxy;
use crate::deploy::local::LocalSection;
use crate::deploy::schema::{DeployConfig, RevertConfig, TrafficConfig};
use crate::metrics::schema::MetricsConfig;
use crate::metrics::schema::MetricsSection;
use crate::remote::github::GitHubKeys;
use crate::remote::gitlab::Keys as GitlabKeys;
use crate::verify::SmokeStep;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use toml::Spanned;

#[derive(Debug, Clone)]
pub struct ChecklistItemConfig {
    pub text: String,
    pub group: String,
    pub approvals: u32,
    /// Ticked by CI evidence instead of reactions (`forges.rs` resolves its source).
    pub evidence: Option<super::forges::CiItem>,
}

#[derive(Debug, Clone)]
pub struct Channels {
    pub deploys: String,
    pub incidents: String,
    pub announce: String,
    pub slack_channel: Option<String>,
    pub slack_incident_channel: Option<String>,
    pub discord_channel: Option<String>,
    pub discord_incident_channel: Option<String>,
}

#[derive(Debug, Clone)]
pub struct HealthConfig {
    pub path: String,
    pub timeout: Duration,
    pub interval: Duration,
}

/// The monitoring section once validated is the core's own rule: one shape, read by both.
pub type MonitorConfig = crate::core::rules::Monitor;

#[derive(Debug, Clone)]
pub struct EnvConfig {
    pub name: EnvName,
    pub display_name: String,
    pub deployers: String,
    pub checklist_expiry: Duration,
    pub channels: Channels,
    pub services: Vec<String>,
    /// Versions that are neither semver nor a git sha but accepted here (`*` = safe chars).
    pub version_pattern: Option<String>,
    pub checklist: Vec<ChecklistItemConfig>,
    pub deploy: DeployConfig,
    pub traffic: TrafficConfig,
    pub health: HealthConfig,
    pub smoke: Vec<SmokeStep>,
    /// Values available to smoke steps as `{name}` (secrets resolved from the environment).
    pub smoke_vars: BTreeMap<String, String>,
    pub monitor: MonitorConfig,
    pub metrics: MetricsConfig,
    /// Where a revert is proposed after a rollback, if anywhere.
    pub revert: Option<RevertConfig>,
    /// Secret values to mask in anything posted.
    pub secrets: Vec<String>,
}

impl EnvConfig {
    /// The live colour a person stated in the config, for a traffic step that cannot be asked.
    pub fn stated_live(&self) -> Option<Option<crate::core::Colour>> {
        match &self.traffic {
            TrafficConfig::Command(c) => c.live,
            _ => None,
        }
    }
}

// ---- the section as written -------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEnv {
    display_name: Option<String>,
    deployers: Option<Spanned<String>>,
    checklist_expiry: Option<Spanned<String>>,
    channel: Option<String>,
    incident_channel: Option<String>,
    announce_channel: Option<String>,
    slack_channel: Option<String>,
    slack_incident_channel: Option<String>,
    discord_channel: Option<String>,
    discord_incident_channel: Option<String>,
    #[serde(default)]
    services: Vec<String>,
    version_pattern: Option<Spanned<String>>,
    #[serde(default)]
    checklist: Vec<RawItem>,
    deploy: Option<Spanned<RawDeploy>>,
    traffic: Option<Spanned<RawTraffic>>,
    #[serde(default)]
    health: RawHealth,
    #[serde(default)]
    smoke: Vec<SmokeStep>,
    #[serde(default)]
    smoke_vars: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    monitor: RawMonitor,
    #[serde(default)]
    metrics: MetricsSection,
    revert: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawItem {
    text: String,
    group: Option<Spanned<String>>,
    approvals: Option<u32>,
    // Evidence keys (`forges.rs` reads them).
    evidence: Option<Spanned<String>>,
    required: Option<Spanned<Vec<String>>>,
    source: Option<Spanned<crate::evidence::schema::Source>>,
    recheck: Option<Spanned<String>>,
}

/// `[environments.X.deploy]`: `driver` picks the deploy step, whose schema the rest is.
#[allow(clippy::large_enum_variant)] // parsed once at start
#[derive(Deserialize)]
#[serde(deny_unknown_fields, tag = "driver", rename_all = "lowercase")]
enum RawDeploy {
    Local(LocalSection),
    Command(command::DeploySection),
    #[serde(rename = "github-actions")]
    GitHubActions(github_actions::DeploySection),
    Gitlab(gitlab::DeploySection),
    Argocd(argocd::DeploySection),
}

/// `[environments.X.traffic]`: `driver` picks the traffic step, whose schema the rest is.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, tag = "driver", rename_all = "lowercase")]
enum RawTraffic {
    Command(command::TrafficSection),
    Haproxy(haproxy::TrafficSection),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    path: Option<String>,
    timeout: Option<Spanned<String>>,
    interval: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMonitor {
    duration: Option<Spanned<String>>,
    interval: Option<Spanned<String>>,
    error_rate: Option<Spanned<f64>>,
    latency_factor: Option<Spanned<f64>>,
    min_requests: Option<u64>,
    keep_warm: Option<Spanned<String>>,
    latency_floor: Option<Spanned<String>>,
}

// ---- validation -------------------------------------------------------------------------

/// The top-level sections an environment's components fall back on (each may override them).
pub(super) struct Defaults<'a> {
    pub(super) github: &'a GitHubKeys,
    pub(super) gitlab: &'a GitlabKeys,
    pub(super) argocd: &'a argocd::ServerSection,
}

/// One environment; `groups` are the groups that have somebody in them; `defaults` the
/// top-level sections' keys (a component's section may override them).
pub(super) fn environment(
    cx: &Ctx,
    groups: &BTreeSet<&str>,
    defaults: &Defaults<'_>,
    key: Spanned<String>,
    e: RawEnv,
) -> Result<EnvConfig, ConfigError> {
    let name = key.get_ref().clone();
    if !crate::core::command::is_name(&name) {
        return cx.err(
            key.span(),
            format!("environment name \"{name}\" must use letters, digits, - and _"),
        );
    }
    let deployers = deployers(cx, groups, &key, e.deployers.as_ref())?;
    let checklist = checklist(cx, groups, e.checklist)?;
    let (deploy, traffic, mut secrets) = steps(cx, &key, defaults, e.deploy, e.traffic)?;
    let smoke_vars = smoke_vars(cx, &name, e.smoke_vars, &mut secrets)?;
    let revert = revert(cx, &name, defaults, e.revert, &mut secrets)?;
    let health = health(cx, e.health)?;
    let monitor = monitor(cx, &key, &e.monitor)?;
    let metrics = e
        .metrics
        .validate(&name)
        .or_else(|(span, m)| cx.err(span, m))?;
    let version_pattern = match e.version_pattern {
        Some(p) => {
            if let Err(m) = crate::core::command::check_pattern(p.get_ref()) {
                return cx.err(p.span(), format!("environment \"{name}\": {m}"));
            }
            Some(p.into_inner())
        }
        None => None,
    };
    let checklist_expiry = cx.opt_duration(
        &e.checklist_expiry,
        "checklist_expiry",
        Duration::from_secs(4 * 3600),
    )?;
    Ok(EnvConfig {
        name: EnvName::new(name.clone()),
        display_name: e.display_name.unwrap_or_else(|| name.clone()),
        deployers,
        checklist_expiry,
        channels: Channels {
            deploys: e.channel.unwrap_or_else(|| "deploys".into()),
            incidents: e.incident_channel.unwrap_or_else(|| "incidents".into()),
            announce: e.announce_channel.unwrap_or_else(|| "announce".into()),
            slack_channel: e.slack_channel,
            slack_incident_channel: e.slack_incident_channel,
            discord_channel: e.discord_channel,
            discord_incident_channel: e.discord_incident_channel,
        },
        services: e.services,
        version_pattern,
        checklist,
        deploy,
        traffic,
        health,
        smoke: e.smoke,
        smoke_vars,
        monitor,
        metrics,
        revert,
        secrets,
    })
}

fn deployers(
    cx: &Ctx,
    groups: &BTreeSet<&str>,
    key: &Spanned<String>,
    raw: Option<&Spanned<String>>,
) -> Result<String, ConfigError> {
    let name = key.get_ref();
    let deployers = raw
        .map(|d| d.get_ref().clone())
        .unwrap_or_else(|| "deployers".into());
    if groups.contains(deployers.as_str()) {
        return Ok(deployers);
    }
    let line = raw
        .map(|d| cx.line_of(d.span().start))
        .or_else(|| Some(cx.line_of(key.span().start)));
    Err(ConfigError {
        line,
        message: format!(
            "environment \"{name}\": deployers group \"{deployers}\" has nobody in it"
        ),
    })
}

fn checklist(
    cx: &Ctx,
    groups: &BTreeSet<&str>,
    raw: Vec<RawItem>,
) -> Result<Vec<ChecklistItemConfig>, ConfigError> {
    let mut checklist = Vec::new();
    for item in raw {
        let group = item
            .group
            .as_ref()
            .map(|g| g.get_ref().clone())
            .unwrap_or_else(|| "reviewers".into());
        if !groups.contains(group.as_str()) {
            let line = item
                .group
                .as_ref()
                .map(|g| cx.line_of(g.span().start))
                .or_else(|| cx.find_line(&item.text));
            return Err(ConfigError {
                line,
                message: format!(
                    "checklist item \"{}\": group \"{group}\" has nobody in it",
                    item.text
                ),
            });
        }
        let approvals = item.approvals.unwrap_or(1);
        if approvals == 0 {
            return Err(ConfigError {
                line: cx.find_line(&item.text),
                message: format!(
                    "checklist item \"{}\": approvals must be at least 1",
                    item.text
                ),
            });
        }
        let raw = super::forges::RawEvidence {
            evidence: item.evidence,
            required: item.required,
            source: item.source,
            recheck: item.recheck,
        };
        let evidence = super::forges::ci_item(cx, &item.text, raw)?;
        checklist.push(ChecklistItemConfig {
            text: item.text,
            group,
            approvals,
            evidence,
        });
    }
    Ok(checklist)
}

/// The deploy step and the traffic step (written in the deploy section or in its own), and
/// the secrets they resolved.
fn steps(
    cx: &Ctx,
    key: &Spanned<String>,
    defaults: &Defaults<'_>,
    deploy: Option<Spanned<RawDeploy>>,
    traffic: Option<Spanned<RawTraffic>>,
) -> Result<(DeployConfig, TrafficConfig, Vec<String>), ConfigError> {
    let name = key.get_ref();
    let Some(deploy_raw) = deploy else {
        return cx.err(
            key.span(),
            format!("environment \"{name}\" has no [environments.{name}.deploy] section: set driver = \"local\", \"command\", \"github-actions\" or \"gitlab\""),
        );
    };
    let span = deploy_raw.span();
    let c = match deploy_raw.into_inner() {
        RawDeploy::Local(l) => {
            if let Some(t) = traffic {
                return cx.err(t.span(), format!("environment \"{name}\": the local driver has its own router; remove [environments.{name}.traffic]"));
            }
            return Ok((DeployConfig::Local(l), TrafficConfig::LocalRouter, vec![]));
        }
        RawDeploy::Command(c) => c
            .validate(name, cx.lookup)
            .or_else(|m| cx.err(span.clone(), m))?,
        RawDeploy::GitHubActions(g) => {
            let (g, secrets) = g
                .validate(name, defaults.github, cx.lookup)
                .or_else(|m| cx.err(key_span(cx, span.clone(), &m), m))?;
            let Some(t) = traffic else {
                return cx.err(span, format!("environment \"{name}\" has no way to switch traffic: add an [environments.{name}.traffic] section (driver = \"haproxy\" or \"command\")"));
            };
            let traffic = traffic_section(cx, name, t)?;
            return Ok((DeployConfig::GitHubActions(g), traffic, secrets));
        }
        RawDeploy::Gitlab(g) => {
            let g = g
                .validate(name, span.clone(), defaults.gitlab, cx.lookup)
                .or_else(|(at, m)| cx.err(at, m))?;
            let Some(t) = traffic else {
                return cx.err(span, format!("environment \"{name}\" has no way to switch traffic: a gitlab deploy needs an [environments.{name}.traffic] section (driver = \"haproxy\" or \"command\")"));
            };
            let traffic = traffic_section(cx, name, t)?;
            if let TrafficConfig::Command(t) = &traffic {
                check_switch_templates(name, t).or_else(|m| cx.err(span, m))?;
            }
            return Ok((DeployConfig::Gitlab(g.deploy), traffic, g.secrets));
        }
        RawDeploy::Argocd(a) => return argocd_steps(cx, name, defaults.argocd, span, a, traffic),
    };
    let traffic = match (traffic, c.traffic) {
        (Some(t), sw) => {
            if sw.is_some() {
                return cx.err(t.span(), format!("environment \"{name}\": set the switch either in deploy.switch or in [environments.{name}.traffic], not both"));
            }
            traffic_section(cx, name, t)?
        }
        (None, Some(sw)) => TrafficConfig::Command(sw),
        (None, None) => {
            return cx.err(
                span,
                format!("environment \"{name}\" has no way to switch traffic: add deploy.switch or an [environments.{name}.traffic] section (driver = \"haproxy\" or \"command\")"),
            )
        }
    };
    let command_traffic = match &traffic {
        TrafficConfig::Command(t) => Some(t),
        _ => None,
    };
    command::check_templates(name, &c.deploy, command_traffic).or_else(|m| cx.err(span, m))?;
    Ok((DeployConfig::Command(c.deploy), traffic, c.secrets))
}

/// Where the `deploy.KEY` an error names is written in the section (a component's section is
/// parsed as a whole, without spans of its own), else the section.
fn key_span(cx: &Ctx, section: std::ops::Range<usize>, message: &str) -> std::ops::Range<usize> {
    let key: String = message
        .split_once("deploy.")
        .map(|(_, rest)| {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .unwrap_or_default();
    let start = section.start.min(cx.text.len());
    let mut offset = start;
    for (i, line) in cx.text[start..].split_inclusive('\n').enumerate() {
        let l = line.trim_start();
        if i > 0 && l.starts_with('[') {
            break;
        }
        let rest = l.strip_prefix(key.as_str()).map(str::trim_start);
        if !key.is_empty() && rest.is_some_and(|r| r.starts_with('=')) {
            return offset..offset + line.len();
        }
        offset += line.len();
    }
    section
}

/// `[environments.X.traffic]`, validated by its component.
fn traffic_section(
    cx: &Ctx,
    name: &str,
    t: Spanned<RawTraffic>,
) -> Result<TrafficConfig, ConfigError> {
    let span = t.span();
    match t.into_inner() {
        RawTraffic::Command(t) => t.validate(name).map(TrafficConfig::Command),
        RawTraffic::Haproxy(h) => h.validate(name).map(TrafficConfig::Haproxy),
    }
    .or_else(|m| cx.err(span, m))
}

/// The switch templates of a command traffic step beside a deploy step that is not `command`.
fn check_switch_templates(name: &str, t: &command::CommandTrafficConfig) -> Result<(), String> {
    let no_deploy = command::CommandDriverConfig {
        deploy_idle: vec![],
        teardown: None,
        timeout: Duration::from_secs(1),
        env: BTreeMap::new(),
        blue_url: String::new(),
        green_url: String::new(),
    };
    command::check_templates(name, &no_deploy, Some(t))
}

/// The argocd driver: blue-green takes a haproxy or command traffic step; rolling is its own.
fn argocd_steps(
    cx: &Ctx,
    name: &str,
    server: &argocd::ServerSection,
    span: std::ops::Range<usize>,
    a: argocd::DeploySection,
    traffic: Option<Spanned<RawTraffic>>,
) -> Result<(DeployConfig, TrafficConfig, Vec<String>), ConfigError> {
    let line = match_line(cx, &span);
    let cfg = a
        .validate(name, server, span.clone(), cx.lookup)
        .map_err(|(at, message)| ConfigError {
            line: line(at),
            message,
        })?;
    let secrets = vec![cfg.token.clone()];
    let traffic = match (cfg.rolling(), traffic) {
        (true, None) => TrafficConfig::Argocd,
        (true, Some(t)) => return cx.err(t.span(), format!("environment \"{name}\": a rolling Argo CD update is its own traffic step; remove [environments.{name}.traffic]")),
        (false, Some(t)) => traffic_section(cx, name, t)?,
        (false, None) => return cx.err(span.clone(), format!("environment \"{name}\": blue-green on Argo CD needs a way to switch traffic: add [environments.{name}.traffic] (driver = \"haproxy\" or \"command\"), or use mode = \"rolling\"")),
    };
    Ok((DeployConfig::Argocd(cfg), traffic, secrets))
}

/// The line of a component's error location: its span, or the first line holding its text
/// after the section's start (else the section's line).
fn match_line<'a>(
    cx: &'a Ctx,
    section: &'a std::ops::Range<usize>,
) -> impl Fn(argocd::Where) -> Option<usize> + 'a {
    move |at| match at {
        argocd::Where::Span(s) => Some(cx.line_of(s.start)),
        argocd::Where::Text(t) => {
            let from = section.start.min(cx.text.len());
            Some(match cx.text[from..].find(&t) {
                Some(i) => cx.line_of(from + i),
                None => cx.line_of(section.start),
            })
        }
    }
}

fn smoke_vars(
    cx: &Ctx,
    name: &str,
    raw: BTreeMap<String, Spanned<String>>,
    secrets: &mut Vec<String>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut smoke_vars = BTreeMap::new();
    for (k, v) in raw {
        let span = v.span();
        let value = crate::deploy::command::expand_env_refs(v.get_ref(), cx.lookup)
            .or_else(|m| cx.err(span, format!("environment \"{name}\": smoke_vars.{k}: {m}")))?;
        if v.get_ref().contains("${") {
            secrets.push(value.clone());
        }
        smoke_vars.insert(k, value);
    }
    Ok(smoke_vars)
}

fn health(cx: &Ctx, h: RawHealth) -> Result<HealthConfig, ConfigError> {
    Ok(HealthConfig {
        path: h.path.unwrap_or_else(|| "/healthz".into()),
        timeout: cx.opt_duration(&h.timeout, "health.timeout", Duration::from_secs(30))?,
        interval: cx.opt_duration(&h.interval, "health.interval", Duration::from_millis(250))?,
    })
}

fn monitor(cx: &Ctx, key: &Spanned<String>, m: &RawMonitor) -> Result<MonitorConfig, ConfigError> {
    let name = key.get_ref();
    let error_rate = match &m.error_rate {
        Some(v) if !(v.get_ref() > &0.0 && v.get_ref() < &1.0) => {
            return cx.err(
                v.span(),
                "monitor.error_rate is a fraction between 0 and 1 (0.01 = 1%)",
            )
        }
        Some(v) => *v.get_ref(),
        None => 0.01,
    };
    let latency_factor = match &m.latency_factor {
        Some(v) if *v.get_ref() <= 1.0 => {
            return cx.err(
                v.span(),
                "monitor.latency_factor must be above 1 (3.0 = 200% above the baseline)",
            )
        }
        Some(v) => *v.get_ref(),
        None => 3.0,
    };
    let secs = Duration::from_secs;
    let monitor = MonitorConfig {
        duration: cx.opt_duration(&m.duration, "monitor.duration", secs(30))?,
        interval: cx.opt_duration(&m.interval, "monitor.interval", secs(5))?,
        error_rate,
        latency_factor,
        min_requests: m.min_requests.unwrap_or(20),
        keep_warm: cx.opt_duration(&m.keep_warm, "monitor.keep_warm", secs(600))?,
        latency_floor: cx.opt_duration(
            &m.latency_floor,
            "monitor.latency_floor",
            Duration::from_millis(50),
        )?,
    };
    if monitor.interval > monitor.duration {
        return cx.err(
            m.interval.as_ref().map(|s| s.span()).unwrap_or(key.span()),
            format!("environment \"{name}\": monitor.interval is longer than monitor.duration"),
        );
    }
    Ok(monitor)
}

/// `revert = "github"` or `"gitlab"`: after a rollback, a pull request that reverts the release
/// on the `[github]` repository (whose token and repo must be set), or a merge request on the
/// `[gitlab]` project (whose project and access token must be set).
fn revert(
    cx: &Ctx,
    name: &str,
    defaults: &Defaults<'_>,
    raw: Option<Spanned<String>>,
    secrets: &mut Vec<String>,
) -> Result<Option<RevertConfig>, ConfigError> {
    let Some(r) = raw else {
        return Ok(None);
    };
    match r.get_ref().as_str() {
        "github" => match defaults.github.clone().settings("") {
            Ok(s) => {
                secrets.push(s.token.clone());
                Ok(Some(RevertConfig::GitHub(s)))
            }
            Err(_) => cx.err(
                r.span(),
                format!("environment \"{name}\": revert = \"github\" needs token and repo in the [github] section"),
            ),
        },
        "gitlab" => match defaults.gitlab.reader(cx.lookup) {
            Ok(Some(s)) => {
                secrets.extend(s.token.clone());
                Ok(Some(RevertConfig::GitLab(s)))
            }
            Ok(None) => cx.err(
                r.span(),
                format!("environment \"{name}\": revert = \"gitlab\" needs project and token (an access token) in the [gitlab] section"),
            ),
            Err((span, m)) => cx.err(span, m),
        },
        other => cx.err(
            r.span(),
            format!("environment \"{name}\": revert = \"{other}\" is not known (use \"github\" or \"gitlab\")"),
        ),
    }
}
