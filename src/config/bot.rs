//! `[bot]`, `[local]`, `[slack]` and `[discord]`.

use super::context::{ConfigError, Ctx};
use chrono_tz::Tz;
use serde::Deserialize;
use std::path::PathBuf;
use toml::Spanned;

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
    pub mode: SlackMode,
    pub api_url: String,
}

/// How Slack reaches the bot: Socket Mode (the default: no public URL needed) or signed HTTP
/// requests to `/slack/*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SlackMode {
    #[default]
    Socket,
    Http,
}

#[derive(Debug, Clone)]
pub struct DiscordConfig {
    pub api_url: String,
    pub guild_id: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBot {
    timezone: Option<Spanned<String>>,
    data_dir: Option<String>,
    listen: Option<String>,
    cache_mb: Option<u64>,
    public_url: Option<String>,
    local_retention: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLocal {
    pub(super) enabled: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSlack {
    mode: Option<Spanned<String>>,
    api_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDiscord {
    api_url: Option<String>,
    guild_id: Option<String>,
}

pub(super) fn bot(cx: &Ctx, raw: RawBot) -> Result<BotConfig, ConfigError> {
    let timezone = match &raw.timezone {
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
    Ok(BotConfig {
        timezone,
        data_dir: PathBuf::from(raw.data_dir.unwrap_or_else(|| "data".into())),
        listen: raw.listen.unwrap_or_else(|| "127.0.0.1:8080".into()),
        cache_bytes: raw.cache_mb.unwrap_or(8) * 1024 * 1024,
        public_url: raw.public_url,
        local_retention: raw.local_retention.unwrap_or(10_000),
    })
}

pub(super) fn slack(
    cx: &Ctx,
    raw: Option<RawSlack>,
    warnings: &mut Vec<String>,
) -> Result<Option<SlackConfig>, ConfigError> {
    let Some(s) = raw else {
        return Ok(None);
    };
    let mode = s
        .mode
        .map(|m| (m.span(), m.into_inner()))
        .unwrap_or((0..0, "socket".into()));
    let parsed = match mode.1.as_str() {
        "socket" => SlackMode::Socket,
        "http" => SlackMode::Http,
        _ => {
            return cx.err(
                mode.0,
                format!(
                    "[slack] mode must be \"socket\" or \"http\", not \"{}\"",
                    mode.1
                ),
            )
        }
    };
    if (cx.lookup)("SLACK_BOT_TOKEN").is_none() {
        warnings.push(
            "[slack] is configured but SLACK_BOT_TOKEN is not set: Slack stays inactive"
                .to_string(),
        );
    }
    Ok(Some(SlackConfig {
        mode: parsed,
        api_url: s.api_url.unwrap_or_else(|| "https://slack.com/api/".into()),
    }))
}

pub(super) fn discord(
    cx: &Ctx,
    raw: Option<RawDiscord>,
    warnings: &mut Vec<String>,
) -> Option<DiscordConfig> {
    let d = raw?;
    if (cx.lookup)("DISCORD_TOKEN").is_none() {
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
