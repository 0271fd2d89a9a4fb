//! The configuration file: schema, parsing with line numbers, and validation into `Config`.
//! Pure apart from `load`, which reads the file; secrets are `${NAME}` references read from the
//! environment, never stored in the file.

use crate::core::freeze::FreezeRule;
use crate::core::{EnvName, UserId};
use crate::verify::SmokeStep;
use chrono_tz::Tz;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// A configuration problem, with the line it is on when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

#[derive(Debug, Clone)]
pub struct Config {
    pub bot: BotConfig,
    pub local: LocalConfig,
    pub slack: Option<SlackConfig>,
    pub discord: Option<DiscordConfig>,
    pub users: BTreeMap<UserId, User>,
    pub freezes: Vec<FreezeRule>,
    pub environments: BTreeMap<EnvName, EnvConfig>,
    /// Non-fatal remarks (inactive platform sections and the like).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct BotConfig {
    pub timezone: Tz,
    pub data_dir: PathBuf,
    pub listen: String,
    /// sled's page cache, capped (sled's default is 1 GiB).
    pub cache_bytes: u64,
    /// How the bot's own pages are reached from chat links.
    pub public_url: Option<String>,
    /// How many local-channel messages are kept.
    pub local_retention: usize,
}

#[derive(Debug, Clone, Default)]
pub struct LocalConfig {
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct SlackConfig {
    pub mode: String,
    pub api_url: String,
}

#[derive(Debug, Clone)]
pub struct DiscordConfig {
    pub api_url: String,
    pub guild_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct User {
    pub slack: Option<String>,
    pub discord: Option<String>,
    pub groups: BTreeSet<String>,
}

#[derive(Debug, Clone)]
pub struct ChecklistItemConfig {
    pub text: String,
    pub group: String,
    pub approvals: u32,
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

#[derive(Debug, Clone)]
pub struct MonitorConfig {
    pub duration: Duration,
    pub interval: Duration,
    /// Error-rate threshold as a fraction (0.01 = 1%).
    pub error_rate: f64,
    /// Latency trigger: p99 more than this many times the baseline (3.0 = 200% above).
    pub latency_factor: f64,
    /// Fewer requests than this in a window: inconclusive.
    pub min_requests: u64,
    /// How long the old colour is kept warm after a stable run.
    pub keep_warm: Duration,
    /// A p99 under this is never called a spike (tiny baselines are noisy).
    pub latency_floor: Duration,
}

#[derive(Debug, Clone)]
pub enum MetricsConfig {
    /// Scrape the colour's own `/metrics` (path relative to its URL); with `match_colour`, only
    /// series labelled `color="<colour>"` count (off for a rolling update: one Deployment).
    Scrape { path: String, match_colour: bool },
    /// PromQL over a Prometheus server, templated with colour and environment.
    Prometheus(crate::metrics::prometheus::PrometheusConfig),
    /// No metrics provider: monitoring can only be inconclusive on metrics.
    None,
}

/// How traffic is sent to a colour.
#[derive(Debug, Clone)]
pub enum TrafficConfig {
    /// The local driver's own router.
    LocalRouter,
    /// argv templates: `switch` (and `rollback` to switch back, else `switch` again).
    Command {
        switch: Vec<Vec<String>>,
        rollback: Option<Vec<Vec<String>>>,
        /// argv templates whose output's last line names the live colour (`blue`, `green` or
        /// `none`); without it the step cannot be asked.
        query: Option<Vec<Vec<String>>>,
        /// The live colour stated by a person (`live = "blue" | "green" | "none"`), used when
        /// greenlight has no record of its own and cannot ask.
        live: Option<Option<crate::core::Colour>>,
    },
    /// HAProxy's runtime API over its admin socket (`unix:/path` or `tcp:host:port`).
    Haproxy {
        socket: String,
        backend: String,
        timeout: Duration,
    },
}

#[derive(Debug, Clone)]
pub enum DeployConfig {
    /// The bundled demo app per colour, with a built-in router on `port`.
    Local { port: u16 },
    /// argv templates (never a shell).
    Command(CommandDriverConfig),
}

#[derive(Debug, Clone)]
pub struct CommandDriverConfig {
    /// One or more argv templates run in order.
    pub deploy_idle: Vec<Vec<String>>,
    pub teardown: Option<Vec<Vec<String>>>,
    pub timeout: Duration,
    /// Extra environment for the commands; values may be `${NAME}` references (secrets).
    pub env: BTreeMap<String, String>,
    /// Base URL of each colour, for health checks, smoke tests and metrics.
    pub blue_url: String,
    pub green_url: String,
}

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
    /// Secret values to mask in anything posted.
    pub secrets: Vec<String>,
}

impl EnvConfig {
    /// The live colour a person stated in the config, for a traffic step that cannot be asked.
    pub fn stated_live(&self) -> Option<Option<crate::core::Colour>> {
        match &self.traffic {
            TrafficConfig::Command { live, .. } => *live,
            _ => None,
        }
    }
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

    pub fn env_names(&self) -> String {
        self.environments
            .keys()
            .map(|e| e.0.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

// ---- raw schema -------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    bot: RawBot,
    #[serde(default)]
    local: RawLocal,
    slack: Option<RawSlack>,
    discord: Option<RawDiscord>,
    #[serde(default)]
    users: BTreeMap<String, RawUser>,
    #[serde(default)]
    freeze: Vec<RawFreeze>,
    #[serde(default)]
    environments: BTreeMap<Spanned<String>, RawEnv>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawBot {
    timezone: Option<Spanned<String>>,
    data_dir: Option<String>,
    listen: Option<String>,
    cache_mb: Option<u64>,
    public_url: Option<String>,
    local_retention: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLocal {
    enabled: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlack {
    mode: Option<Spanned<String>>,
    api_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDiscord {
    api_url: Option<String>,
    guild_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    slack: Option<String>,
    discord: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFreeze {
    name: String,
    cron: Spanned<String>,
    duration: Spanned<String>,
    #[serde(default)]
    environments: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnv {
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
    metrics: RawMetrics,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawItem {
    text: String,
    group: Option<Spanned<String>>,
    approvals: Option<u32>,
}

#[allow(clippy::large_enum_variant)] // parsed once at start
#[derive(Deserialize)]
#[serde(deny_unknown_fields, tag = "driver", rename_all = "lowercase")]
enum RawDeploy {
    Local {
        #[serde(default)]
        port: u16,
    },
    Command {
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
    },
}

/// argv templates run in order.
type ArgvSteps = Vec<Vec<String>>;

/// A command traffic step written in the deploy section.
struct CommandSwitch {
    switch: ArgvSteps,
    rollback: Option<ArgvSteps>,
    query: Option<ArgvSteps>,
    live: Option<Option<crate::core::Colour>>,
}

/// `live = "blue" | "green" | "none"`: the live colour a person states.
fn parse_stated_live(s: &str) -> Result<Option<crate::core::Colour>, String> {
    match s.trim() {
        "blue" => Ok(Some(crate::core::Colour::Blue)),
        "green" => Ok(Some(crate::core::Colour::Green)),
        "none" => Ok(None),
        other => Err(format!(
            "\"{}\" is not a colour: use \"blue\", \"green\" or \"none\"",
            crate::core::message::clip(other, 40)
        )),
    }
}

/// One argv (`["kubectl", "apply", ...]`) or several run in order (`[[...], [...]]`).
#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum Steps {
    One(Vec<String>),
    Many(Vec<Vec<String>>),
}

impl Steps {
    fn into_vec(self) -> Vec<Vec<String>> {
        match self {
            Steps::One(v) => vec![v],
            Steps::Many(v) => v,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, tag = "driver", rename_all = "lowercase")]
enum RawTraffic {
    Command {
        switch: Steps,
        rollback: Option<Steps>,
        live_query: Option<Steps>,
        live: Option<String>,
    },
    Haproxy {
        socket: String,
        backend: String,
        timeout: Option<String>,
    },
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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    provider: Option<Spanned<String>>,
    path: Option<String>,
    match_colour: Option<bool>,
    url: Option<String>,
    error_rate_query: Option<String>,
    latency_query: Option<String>,
    requests_query: Option<String>,
    window: Option<String>,
    timeout: Option<String>,
}

// ---- parsing ----------------------------------------------------------------------------

/// Reads and parses a config file. Environment references are resolved with the process env.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        line: None,
        message: format!("cannot read {}: {e}", path.display()),
    })?;
    parse(&text, &|name| std::env::var(name).ok())
}

struct Ctx<'a> {
    text: &'a str,
}

impl Ctx<'_> {
    fn line_of(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .bytes()
            .filter(|b| *b == b'\n')
            .count()
            + 1
    }
    fn err<T>(
        &self,
        span: std::ops::Range<usize>,
        message: impl Into<String>,
    ) -> Result<T, ConfigError> {
        Err(ConfigError {
            line: Some(self.line_of(span.start)),
            message: message.into(),
        })
    }
    fn duration(&self, s: &Spanned<String>, what: &str) -> Result<Duration, ConfigError> {
        match humantime::parse_duration(s.get_ref()) {
            Ok(d) if !d.is_zero() => Ok(d),
            Ok(_) => self.err(s.span(), format!("{what} must be longer than zero")),
            Err(e) => self.err(
                s.span(),
                format!(
                    "{what}: \"{}\" is not a duration ({e}); write e.g. \"30s\", \"5m\", \"4h\"",
                    s.get_ref()
                ),
            ),
        }
    }
    fn opt_duration(
        &self,
        s: &Option<Spanned<String>>,
        what: &str,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        match s {
            Some(s) => self.duration(s, what),
            None => Ok(default),
        }
    }
}

/// Parses config text; `lookup` resolves `${NAME}` references.
pub fn parse(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let cx = Ctx { text };
    let raw: Raw = toml::from_str(text).map_err(|e| ConfigError {
        line: e.span().map(|s| cx.line_of(s.start)),
        message: e.message().replace('\n', " ").trim().to_string(),
    })?;
    let mut warnings = Vec::new();

    let timezone = match &raw.bot.timezone {
        Some(tz) => match tz.get_ref().parse::<Tz>() {
            Ok(t) => t,
            Err(_) => {
                return cx.err(
                    tz.span(),
                    format!(
                        "unknown timezone \"{}\": use an IANA name such as \"UTC\" or \"Europe/Berlin\"",
                        tz.get_ref()
                    ),
                )
            }
        },
        None => Tz::UTC,
    };
    let bot = BotConfig {
        timezone,
        data_dir: PathBuf::from(raw.bot.data_dir.unwrap_or_else(|| "data".into())),
        listen: raw.bot.listen.unwrap_or_else(|| "127.0.0.1:8080".into()),
        cache_bytes: raw.bot.cache_mb.unwrap_or(8) * 1024 * 1024,
        public_url: raw.bot.public_url,
        local_retention: raw.bot.local_retention.unwrap_or(10_000),
    };

    let slack = match raw.slack {
        Some(s) => {
            let mode = s
                .mode
                .map(|m| (m.span(), m.into_inner()))
                .unwrap_or((0..0, "socket".into()));
            if mode.1 != "socket" && mode.1 != "http" {
                return cx.err(
                    mode.0,
                    format!(
                        "[slack] mode must be \"socket\" or \"http\", not \"{}\"",
                        mode.1
                    ),
                );
            }
            if lookup("SLACK_BOT_TOKEN").is_none() {
                warnings.push(
                    "[slack] is configured but SLACK_BOT_TOKEN is not set: Slack stays inactive"
                        .to_string(),
                );
            }
            Some(SlackConfig {
                mode: mode.1,
                api_url: s.api_url.unwrap_or_else(|| "https://slack.com/api/".into()),
            })
        }
        None => None,
    };
    let discord = match raw.discord {
        Some(d) => {
            if lookup("DISCORD_TOKEN").is_none() {
                warnings.push(
                    "[discord] is configured but DISCORD_TOKEN is not set: Discord stays inactive"
                        .to_string(),
                );
            }
            Some(DiscordConfig {
                api_url: d.api_url.unwrap_or_else(|| "https://discord.com".into()),
                guild_id: d.guild_id,
            })
        }
        None => None,
    };

    let mut users = BTreeMap::new();
    for (name, u) in raw.users {
        if !crate::core::command::is_name(&name) {
            return Err(ConfigError {
                line: find_line(text, &format!("[users.{name}]")),
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
    let groups: BTreeSet<&str> = users
        .values()
        .flat_map(|u| u.groups.iter().map(|g| g.as_str()))
        .collect();
    let env_keys: BTreeSet<String> = raw
        .environments
        .keys()
        .map(|k| k.get_ref().clone())
        .collect();

    let mut freezes = Vec::new();
    for f in &raw.freeze {
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

    let mut environments = BTreeMap::new();
    for (key, e) in raw.environments {
        let name = key.get_ref().clone();
        if !crate::core::command::is_name(&name) {
            return cx.err(
                key.span(),
                format!("environment name \"{name}\" must use letters, digits, - and _"),
            );
        }
        let deployers = e
            .deployers
            .as_ref()
            .map(|d| d.get_ref().clone())
            .unwrap_or_else(|| "deployers".into());
        if !groups.contains(deployers.as_str()) {
            let line = e
                .deployers
                .as_ref()
                .map(|d| cx.line_of(d.span().start))
                .or_else(|| Some(cx.line_of(key.span().start)));
            return Err(ConfigError {
                line,
                message: format!(
                    "environment \"{name}\": deployers group \"{deployers}\" has nobody in it"
                ),
            });
        }
        let mut checklist = Vec::new();
        for item in e.checklist {
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
                    .or_else(|| find_line(text, &item.text));
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
                    line: find_line(text, &item.text),
                    message: format!(
                        "checklist item \"{}\": approvals must be at least 1",
                        item.text
                    ),
                });
            }
            checklist.push(ChecklistItemConfig {
                text: item.text,
                group,
                approvals,
            });
        }
        let Some(deploy_raw) = e.deploy else {
            return cx.err(
                key.span(),
                format!("environment \"{name}\" has no [environments.{name}.deploy] section: set driver = \"local\" or \"command\""),
            );
        };
        let deploy_span = deploy_raw.span();
        let mut secrets = Vec::new();
        let mut command_switch: Option<CommandSwitch> = None;
        let deploy = match deploy_raw.into_inner() {
            RawDeploy::Local { port } => DeployConfig::Local { port },
            RawDeploy::Command {
                deploy_idle,
                switch,
                rollback,
                live_query,
                live,
                teardown,
                timeout,
                env,
                blue_url,
                green_url,
            } => {
                let deploy_idle = deploy_idle.into_vec();
                let teardown = teardown.map(Steps::into_vec);
                let switch = switch.map(Steps::into_vec);
                let rollback = rollback.map(Steps::into_vec);
                let live_query = live_query.map(Steps::into_vec);
                let all = [
                    ("deploy_idle", Some(&deploy_idle)),
                    ("switch", switch.as_ref()),
                    ("rollback", rollback.as_ref()),
                    ("live_query", live_query.as_ref()),
                    ("teardown", teardown.as_ref()),
                ];
                for (what, steps) in all {
                    if let Some(steps) = steps {
                        if steps.is_empty()
                            || steps
                                .iter()
                                .any(|argv| argv.is_empty() || argv[0].trim().is_empty())
                        {
                            return cx.err(deploy_span, format!("environment \"{name}\": deploy.{what} must name a program in every step"));
                        }
                    }
                }
                if switch.is_none() && (live_query.is_some() || live.is_some()) {
                    return cx.err(deploy_span, format!("environment \"{name}\": deploy.live_query and deploy.live go with deploy.switch; with a [environments.{name}.traffic] section, set them there"));
                }
                if let Some(sw) = switch {
                    let live = match live.as_deref().map(parse_stated_live).transpose() {
                        Ok(l) => l,
                        Err(m) => {
                            return cx.err(
                                deploy_span,
                                format!("environment \"{name}\": deploy.live: {m}"),
                            )
                        }
                    };
                    command_switch = Some(CommandSwitch {
                        switch: sw,
                        rollback,
                        query: live_query,
                        live,
                    });
                }
                let timeout = match timeout {
                    Some(t) => match humantime::parse_duration(&t) {
                        Ok(d) if !d.is_zero() => d,
                        _ => {
                            return cx.err(
                                deploy_span,
                                format!(
                                "environment \"{name}\": deploy.timeout \"{t}\" is not a duration"
                            ),
                            )
                        }
                    },
                    None => Duration::from_secs(600),
                };
                let mut resolved = BTreeMap::new();
                for (k, v) in env {
                    let value =
                        crate::deploy::command::expand_env_refs(&v, lookup).or_else(|m| {
                            cx.err(
                                deploy_span.clone(),
                                format!("environment \"{name}\": deploy.env.{k}: {m}"),
                            )
                        })?;
                    if v.contains("${") {
                        secrets.push(value.clone());
                    }
                    resolved.insert(k, value);
                }
                DeployConfig::Command(CommandDriverConfig {
                    deploy_idle,
                    teardown,
                    timeout,
                    env: resolved,
                    blue_url: blue_url.trim_end_matches('/').to_string(),
                    green_url: green_url.trim_end_matches('/').to_string(),
                })
            }
        };
        let traffic = match (&deploy, e.traffic, command_switch) {
            (DeployConfig::Local { .. }, None, _) => TrafficConfig::LocalRouter,
            (DeployConfig::Local { .. }, Some(t), _) => {
                return cx.err(t.span(), format!("environment \"{name}\": the local driver has its own router; remove [environments.{name}.traffic]"))
            }
            (DeployConfig::Command(_), Some(t), sw) => {
                let span = t.span();
                if sw.is_some() {
                    return cx.err(span, format!("environment \"{name}\": set the switch either in deploy.switch or in [environments.{name}.traffic], not both"));
                }
                match t.into_inner() {
                    RawTraffic::Command { switch, rollback, live_query, live } => {
                        let switch = switch.into_vec();
                        if switch.is_empty() || switch.iter().any(|a| a.is_empty()) {
                            return cx.err(span, format!("environment \"{name}\": traffic.switch must name a program in every step"));
                        }
                        let query = live_query.map(Steps::into_vec);
                        if query.as_ref().is_some_and(|q| q.is_empty() || q.iter().any(|a| a.is_empty() || a[0].trim().is_empty())) {
                            return cx.err(span, format!("environment \"{name}\": traffic.live_query must name a program in every step"));
                        }
                        let live = match live.as_deref().map(parse_stated_live).transpose() {
                            Ok(l) => l,
                            Err(m) => return cx.err(span, format!("environment \"{name}\": traffic.live: {m}")),
                        };
                        TrafficConfig::Command { switch, rollback: rollback.map(Steps::into_vec), query, live }
                    }
                    RawTraffic::Haproxy { socket, backend, timeout } => {
                        let timeout = match timeout {
                            Some(t) => match humantime::parse_duration(&t) {
                                Ok(d) if !d.is_zero() => d,
                                _ => return cx.err(span, format!("environment \"{name}\": traffic.timeout \"{t}\" is not a duration")),
                            },
                            None => Duration::from_secs(10),
                        };
                        if socket.trim().is_empty() || backend.trim().is_empty() {
                            return cx.err(span, format!("environment \"{name}\": traffic.socket and traffic.backend are required for haproxy"));
                        }
                        TrafficConfig::Haproxy { socket, backend, timeout }
                    }
                }
            }
            (DeployConfig::Command(_), None, Some(c)) => TrafficConfig::Command { switch: c.switch, rollback: c.rollback, query: c.query, live: c.live },
            (DeployConfig::Command(_), None, None) => {
                return cx.err(
                    deploy_span,
                    format!("environment \"{name}\" has no way to switch traffic: add deploy.switch or an [environments.{name}.traffic] section (driver = \"haproxy\" or \"command\")"),
                )
            }
        };
        // Every placeholder in a command template must be one the driver fills in.
        {
            let vars: BTreeMap<String, String> =
                ["env", "colour", "color", "other", "from", "version"]
                    .iter()
                    .map(|k| (k.to_string(), "x".to_string()))
                    .collect();
            let mut templates: Vec<(&str, &Vec<String>)> = Vec::new();
            if let DeployConfig::Command(c) = &deploy {
                templates.extend(c.deploy_idle.iter().map(|a| ("deploy.deploy_idle", a)));
                if let Some(t) = &c.teardown {
                    templates.extend(t.iter().map(|a| ("deploy.teardown", a)));
                }
            }
            if let TrafficConfig::Command {
                switch,
                rollback,
                query,
                ..
            } = &traffic
            {
                templates.extend(switch.iter().map(|a| ("switch", a)));
                if let Some(q) = query {
                    templates.extend(q.iter().map(|a| ("live_query", a)));
                }
                if let Some(r) = rollback {
                    templates.extend(r.iter().map(|a| ("rollback", a)));
                }
            }
            for (what, argv) in templates {
                if let Err(m) = crate::deploy::command::render_argv(argv, &vars) {
                    return cx.err(
                        deploy_span.clone(),
                        format!("environment \"{name}\": {what}: {m} (known: {{version}}, {{colour}}, {{other}}, {{from}}, {{env}})"),
                    );
                }
            }
        }
        let mut smoke_vars = BTreeMap::new();
        for (k, v) in e.smoke_vars {
            let span = v.span();
            let value =
                crate::deploy::command::expand_env_refs(v.get_ref(), lookup).or_else(|m| {
                    cx.err(span, format!("environment \"{name}\": smoke_vars.{k}: {m}"))
                })?;
            if v.get_ref().contains("${") {
                secrets.push(value.clone());
            }
            smoke_vars.insert(k, value);
        }
        let health = HealthConfig {
            path: e.health.path.unwrap_or_else(|| "/healthz".into()),
            timeout: cx.opt_duration(
                &e.health.timeout,
                "health.timeout",
                Duration::from_secs(30),
            )?,
            interval: cx.opt_duration(
                &e.health.interval,
                "health.interval",
                Duration::from_millis(250),
            )?,
        };
        let m = &e.monitor;
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
        let monitor = MonitorConfig {
            duration: cx.opt_duration(&m.duration, "monitor.duration", Duration::from_secs(30))?,
            interval: cx.opt_duration(&m.interval, "monitor.interval", Duration::from_secs(5))?,
            error_rate,
            latency_factor,
            min_requests: m.min_requests.unwrap_or(20),
            keep_warm: cx.opt_duration(
                &m.keep_warm,
                "monitor.keep_warm",
                Duration::from_secs(600),
            )?,
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
        let metrics = match e.metrics.provider.as_ref().map(|p| (p.span(), p.get_ref().as_str())) {
            None | Some((_, "scrape")) => MetricsConfig::Scrape {
                match_colour: e.metrics.match_colour.unwrap_or(true),
                path: e.metrics.path.unwrap_or_else(|| "/metrics".into()),
            },
            Some((_, "none")) => MetricsConfig::None,
            Some((span, "prometheus")) => {
                let m = e.metrics;
                let Some(url) = m.url else {
                    return cx.err(span, format!("environment \"{name}\": metrics.url is required for provider \"prometheus\""));
                };
                // The provider's own defaults, from its serde defaults.
                let d: crate::metrics::prometheus::PrometheusConfig =
                    serde_json::from_value(serde_json::json!({ "url": url })).expect("defaults");
                let pc = crate::metrics::prometheus::PrometheusConfig {
                    error_rate_query: m.error_rate_query.unwrap_or(d.error_rate_query.clone()),
                    latency_query: m.latency_query.unwrap_or(d.latency_query.clone()),
                    requests_query: m.requests_query.unwrap_or(d.requests_query.clone()),
                    window: m.window.unwrap_or(d.window.clone()),
                    timeout: m.timeout.unwrap_or(d.timeout.clone()),
                    url: d.url,
                };
                if let Err(why) = crate::metrics::prometheus::Prometheus::new(pc.clone()) {
                    return cx.err(span, format!("environment \"{name}\": {why}"));
                }
                MetricsConfig::Prometheus(pc)
            }
            Some((span, other)) => {
                return cx.err(span, format!("metrics.provider must be \"scrape\", \"prometheus\" or \"none\", not \"{other}\""))
            }
        };
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
        environments.insert(
            EnvName::new(name.clone()),
            EnvConfig {
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
                secrets,
            },
        );
    }
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
        warnings,
    })
}

fn find_line(text: &str, needle: &str) -> Option<usize> {
    text.lines().position(|l| l.contains(needle)).map(|i| i + 1)
}

// ---- the core's rules ----------------------------------------------------------------------

impl Config {
    /// What the core reads of the file (the engine and the policy never see `Config`).
    pub fn rules(&self) -> crate::core::rules::Rules {
        use crate::core::rules::{ChecklistItem, EnvRules, Monitor, Rules};
        let env = |e: &EnvConfig| EnvRules {
            name: e.name.clone(),
            display_name: e.display_name.clone(),
            deployers: e.deployers.clone(),
            checklist: e
                .checklist
                .iter()
                .map(|i| ChecklistItem {
                    text: i.text.clone(),
                    group: i.group.clone(),
                    approvals: i.approvals,
                })
                .collect(),
            checklist_expiry: e.checklist_expiry,
            services: e.services.clone(),
            version_pattern: e.version_pattern.clone(),
            monitor: Monitor {
                duration: e.monitor.duration,
                interval: e.monitor.interval,
                error_rate: e.monitor.error_rate,
                latency_factor: e.monitor.latency_factor,
                min_requests: e.monitor.min_requests,
                keep_warm: e.monitor.keep_warm,
                latency_floor: e.monitor.latency_floor,
            },
            stated_live: e.stated_live(),
            health_path: e.health.path.clone(),
            smoke: e.smoke.iter().map(|s| s.name.clone()).collect(),
            critical_path: e.smoke.iter().any(|s| s.critical),
        };
        Rules {
            timezone: self.bot.timezone,
            freezes: self.freezes.clone(),
            people: self
                .users
                .iter()
                .map(|(id, u)| (id.clone(), u.groups.clone()))
                .collect(),
            envs: self
                .environments
                .iter()
                .map(|(k, e)| (k.clone(), env(e)))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: &str = include_str!("../config/greenlight.toml");

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn the_default_config_parses() {
        let c = parse(DEFAULT, &no_env).unwrap();
        assert_eq!(c.environments.len(), 2);
        let prod = c.env(&EnvName::new("prod")).unwrap();
        assert_eq!(prod.display_name, "Production");
        assert_eq!(prod.checklist.len(), 5);
        assert_eq!(
            c.env(&EnvName::new("staging")).unwrap().display_name,
            "Staging"
        );
        assert!(c.in_group(&UserId::new("alice"), "break-glass"));
        assert!(!c.in_group(&UserId::new("bob"), "break-glass"));
        assert!(c.in_group(&UserId::new("carol"), "reviewers"));
        assert!(!c.in_group(&UserId::new("carol"), "deployers"));
        assert_eq!(c.freezes.len(), 1);
    }

    fn err_of(text: &str) -> ConfigError {
        parse(text, &no_env).expect_err("should fail")
    }

    #[test]
    fn errors_point_at_the_line() {
        let base = "[users.a]\ngroups = [\"deployers\", \"reviewers\"]\n[environments.x.deploy]\ndriver = \"local\"\n";
        let cases: Vec<(String, usize, &str)> = vec![
            (format!("{base}[bot]\ntimezone = \"Mars/Base\"\n"), 6, "unknown timezone"),
            (format!("{base}[bot]\nbogus = 1\n"), 6, "unknown field"),
            (format!("{base}[[freeze]]\nname = \"f\"\ncron = \"0 17 * *\"\nduration = \"1h\"\n"), 7, "freeze \"f\""),
            (format!("{base}[[freeze]]\nname = \"f\"\ncron = \"0 17 * * 5\"\nduration = \"1 fortnight\"\n"), 8, "freeze \"f\""),
            (format!("{base}[environments.x]\nchecklist_expiry = \"soon\"\n"), 6, "not a duration"),
            (format!("{base}[environments.x]\ndeployers = \"ops\"\n"), 6, "nobody in it"),
            (format!("{base}[[environments.x.checklist]]\ntext = \"t\"\ngroup = \"qa\"\n"), 7, "nobody in it"),
            (format!("{base}[environments.x.monitor]\nerror_rate = 5.0\n"), 6, "fraction"),
            (format!("{base}[environments.y]\ndisplay_name = \"Y\"\n"), 5, "has no [environments.y.deploy]"),
            (format!("{base}[bot\n"), 5, ""),
        ];
        for (text, line, msg) in cases {
            let e = err_of(&text);
            assert_eq!(e.line, Some(line), "{text}\n-> {e}");
            assert!(e.message.contains(msg), "{e}");
            assert!(!e.to_string().contains('\n'), "{e}");
        }
    }

    #[test]
    fn secrets_come_from_the_environment() {
        let text = "[users.a]\ngroups = [\"deployers\"]\n[environments.x.deploy]\ndriver = \"local\"\n[environments.x.smoke_vars]\npassword = \"${DEMO_PASSWORD}\"\n";
        let e = parse(text, &no_env).unwrap_err();
        assert_eq!(e.line, Some(6));
        assert!(e.message.contains("DEMO_PASSWORD"), "{e}");
        let c = parse(text, &|n| {
            (n == "DEMO_PASSWORD").then(|| "s3cret".to_string())
        })
        .unwrap();
        let x = c.env(&EnvName::new("x")).unwrap();
        assert_eq!(x.smoke_vars["password"], "s3cret");
        assert_eq!(x.secrets, vec!["s3cret".to_string()]);
    }

    #[test]
    fn inactive_platforms_warn() {
        let text = "[slack]\nmode = \"socket\"\n[users.a]\ngroups = [\"deployers\"]\n[environments.x.deploy]\ndriver = \"local\"\n";
        let c = parse(text, &no_env).unwrap();
        assert!(c.warnings[0].contains("SLACK_BOT_TOKEN"));
    }

    // ---- the core's rules, built from the file -----------------------------------------------

    /// The core's tests use rules written in Rust; they must be what the file says.
    #[test]
    fn the_demo_rules_of_the_core_tests_are_the_default_config() {
        let c = parse(DEFAULT, &no_env).unwrap();
        assert_eq!(
            format!("{:?}", c.rules()),
            format!("{:?}", crate::core::rules::build::demo())
        );
    }

    #[test]
    fn rules_of_a_command_environment_take_the_defaults_and_the_stated_live_colour() {
        let cfg = |live: &str| {
            format!(
                r#"
[users.alice]
groups = ["deployers"]
[environments.qa]
[environments.qa.deploy]
driver = "command"
deploy_idle = ["deploy", "{{version}}", "{{colour}}"]
switch = ["switch", "{{colour}}"]
{live}
blue_url = "http://127.0.0.1:9001"
green_url = "http://127.0.0.1:9002"
"#
            )
        };
        let qa = EnvName::new("qa");
        let rules = parse(&cfg(""), &no_env).unwrap().rules();
        assert_eq!(rules.envs[&qa], crate::core::rules::build::env("qa"));
        let rules = parse(&cfg(r#"live = "green""#), &no_env).unwrap().rules();
        assert_eq!(
            rules.envs[&qa].stated_live,
            Some(Some(crate::core::Colour::Green))
        );
        // A bad statement is a config error.
        let err = parse(&cfg(r#"live = "purple""#), &no_env).unwrap_err();
        assert!(format!("{err}").contains("is not a colour"), "{err}");
    }
}
