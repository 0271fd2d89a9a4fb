//! Discord's REST API through serenity's `Http`: the base URL check, timeouts, error mapping,
//! and the calls greenlight makes (post, edit, thread, register).

use super::*;
use std::future::Future;
use std::net::IpAddr;
use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serenity::builder::{CreateMessage, CreateThread, EditMessage};
use serenity::http::{Http, HttpBuilder, HttpError, LightMethod, Request, Route};
use serenity::model::channel::{GuildChannel, Message};
use serenity::model::id::{ChannelId, GuildId, MessageId};
use tracing::info;

/// One line of an error, at most 300 characters (errors echo request paths and bodies).
pub(super) fn one_line(s: &str) -> String {
    clip(&text::one_line(s), 300)
}

/// Maps a serenity error (from its high-level calls or `Http::fire`).
pub(super) fn map_serenity_error(e: serenity::Error) -> DeliveryError {
    match e {
        serenity::Error::Http(HttpError::UnsuccessfulRequest(resp)) => {
            let status = resp.status_code.as_u16();
            let detail = one_line(&format!(
                "{} {}: {} (code {})",
                resp.method, status, resp.error.message, resp.error.code
            ));
            classify_status(status, detail, None)
        }
        serenity::Error::Http(HttpError::Request(e)) => {
            DeliveryError::transient(PLATFORM, one_line(&e.without_url().to_string()))
        }
        serenity::Error::Io(e) => DeliveryError::transient(PLATFORM, one_line(&e.to_string())),
        other => DeliveryError::permanent(PLATFORM, one_line(&other.to_string())),
    }
}

pub(super) fn classify_status(
    status: u16,
    detail: String,
    retry_after: Option<Duration>,
) -> DeliveryError {
    match status {
        429 => DeliveryError::rate_limited(PLATFORM, retry_after.unwrap_or(DEFAULT_RETRY_AFTER)),
        500..=599 => DeliveryError::transient(PLATFORM, detail),
        _ => DeliveryError::permanent(PLATFORM, detail),
    }
}

/// A 429's wait: the body's `retry_after` (seconds, fractional), else `Retry-After` (seconds).
pub(super) fn retry_after(headers: &reqwest::header::HeaderMap, body: &[u8]) -> Option<Duration> {
    let from_body = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("retry_after").and_then(|r| r.as_f64()));
    let from_header = headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|h| h.to_str().ok())
        .and_then(|s| s.trim().parse::<f64>().ok());
    from_body
        .or(from_header)
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(3600.0)))
}

pub(super) fn parse_id(what: &str, s: &str) -> Result<NonZeroU64, DeliveryError> {
    s.trim()
        .parse::<NonZeroU64>()
        .map_err(|_| DeliveryError::permanent(PLATFORM, format!("invalid {what} id {s:?}")))
}

// ---------------------------------------------------------------------------------------------
// REST client
// ---------------------------------------------------------------------------------------------

/// Checks `api_url` (https anywhere, http on loopback only) and returns it without a trailing
/// slash.
pub(super) fn checked_base(api_url: &str) -> Result<String, String> {
    let base = api_url.trim().trim_end_matches('/').to_string();
    let url =
        reqwest::Url::parse(&base).map_err(|e| format!("invalid Discord api_url {base:?}: {e}"))?;
    match url.scheme() {
        "https" => Ok(base),
        "http" if is_loopback(&url) => Ok(base),
        "http" => Err(format!(
            "Discord api_url {base:?} uses plain http on a non-loopback host; use https"
        )),
        other => Err(format!(
            "Discord api_url {base:?}: unsupported scheme {other}"
        )),
    }
}

pub(super) fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

pub(super) fn checked_gateway(gateway_url: &str) -> Result<String, String> {
    let g = gateway_url.trim().to_string();
    let url =
        reqwest::Url::parse(&g).map_err(|e| format!("invalid Discord gateway_url {g:?}: {e}"))?;
    if url.query().is_some() {
        return Err(format!(
            "Discord gateway_url {g:?} must have no query (serenity appends ?v=10)"
        ));
    }
    match url.scheme() {
        "wss" => Ok(g),
        "ws" if is_loopback(&url) => Ok(g),
        "ws" => Err(format!(
            "Discord gateway_url {g:?} uses plain ws on a non-loopback host; use wss"
        )),
        other => Err(format!(
            "Discord gateway_url {g:?}: unsupported scheme {other}"
        )),
    }
}

/// serenity's `Http` for `settings`, plus the reqwest client it uses.
pub(super) fn build_http(settings: &DiscordSettings) -> Result<(Http, reqwest::Client), String> {
    let base = checked_base(&settings.api_url)?;
    if settings.token.trim().is_empty() {
        return Err("the Discord token is empty".into());
    }
    // serenity's own client is `Client::builder().use_rustls_tls()` (http/client.rs:5260-5263);
    // the same plus a connect timeout.
    let reqwest_client = reqwest::Client::builder()
        .use_rustls_tls()
        .connect_timeout(settings.request_timeout)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let mut builder = HttpBuilder::new(&settings.token).client(reqwest_client.clone());
    if base != DISCORD_API_URL {
        builder = builder.proxy(base).ratelimiter_disabled(true);
    }
    Ok((builder.build(), reqwest_client))
}

/// Discord's REST API through serenity's `Http`.
#[derive(Clone)]
pub struct DiscordClient {
    pub(super) http: Arc<Http>,
    pub(super) reqwest: reqwest::Client,
    pub(super) guild_id: GuildId,
    pub(super) timeout: Duration,
}

impl std::fmt::Debug for DiscordClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordClient")
            .field("proxy", &self.http.proxy)
            .field("ratelimiter", &self.http.ratelimiter.is_some())
            .field("guild_id", &self.guild_id)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl DiscordClient {
    /// Refuses plain http on a non-loopback host, an empty token and a zero guild id.
    pub fn new(settings: &DiscordSettings) -> Result<DiscordClient, String> {
        let guild_id = NonZeroU64::new(settings.guild_id)
            .map(GuildId::from)
            .ok_or_else(|| "the Discord guild_id is not set".to_string())?;
        let (http, reqwest) = build_http(settings)?;
        Ok(DiscordClient {
            http: Arc::new(http),
            reqwest,
            guild_id,
            timeout: settings.request_timeout,
        })
    }

    /// serenity's `Http` this client uses.
    pub fn http(&self) -> &Arc<Http> {
        &self.http
    }

    /// Posts `text` in `channel`; returns the message id.
    pub async fn post_message(&self, channel: &str, text: &str) -> Result<String, DeliveryError> {
        let channel_id = ChannelId::from(parse_id("channel", channel)?);
        let body = CreateMessage::new()
            .content(message_content(text))
            .allowed_mentions(allowed_mentions());
        let req = Request::new(Route::ChannelMessages { channel_id }, LightMethod::Post)
            .body(Some(to_body(&body)?));
        let message: Message = self.call(req).await?;
        Ok(message.id.to_string())
    }

    /// Posts `text` in `channel` as a reply to the message `message_id` (the answer to a
    /// command in a message that mentions the bot); returns the new message's id.
    pub async fn reply(
        &self,
        channel: &str,
        message_id: &str,
        text: &str,
    ) -> Result<String, DeliveryError> {
        let channel_id = ChannelId::from(parse_id("channel", channel)?);
        let message_id = MessageId::from(parse_id("message", message_id)?);
        let body = CreateMessage::new()
            .content(message_content(text))
            .reference_message((channel_id, message_id))
            .allowed_mentions(allowed_mentions());
        let req = Request::new(Route::ChannelMessages { channel_id }, LightMethod::Post)
            .body(Some(to_body(&body)?));
        let message: Message = self.call(req).await?;
        Ok(message.id.to_string())
    }

    /// Replaces the text of one of the bot's messages.
    pub async fn edit_message(
        &self,
        channel: &str,
        message_id: &str,
        text: &str,
    ) -> Result<(), DeliveryError> {
        let channel_id = ChannelId::from(parse_id("channel", channel)?);
        let message_id = MessageId::from(parse_id("message", message_id)?);
        let body = EditMessage::new()
            .content(message_content(text))
            .allowed_mentions(allowed_mentions());
        let req = Request::new(
            Route::ChannelMessage {
                channel_id,
                message_id,
            },
            LightMethod::Patch,
        )
        .body(Some(to_body(&body)?));
        let _: Message = self.call(req).await?;
        Ok(())
    }

    /// A public thread on a message (the request `ChannelId::create_thread_from_message` makes);
    /// returns the thread channel id.
    pub async fn create_thread(
        &self,
        channel: &str,
        message_id: &str,
        name: &str,
    ) -> Result<String, DeliveryError> {
        let channel_id = ChannelId::from(parse_id("channel", channel)?);
        let message_id = MessageId::from(parse_id("message", message_id)?);
        let mut name = clip(name.trim(), THREAD_NAME_LIMIT);
        while name.chars().count() < 2 {
            name.push('…');
        }
        let body = CreateThread::new(name);
        let req = Request::new(
            Route::ChannelMessageThreads {
                channel_id,
                message_id,
            },
            LightMethod::Post,
        )
        .body(Some(to_body(&body)?));
        let thread: GuildChannel = self.call(req).await?;
        Ok(thread.id.to_string())
    }

    /// Registers the commands in the guild (`GuildId::set_commands`, a bulk overwrite). Asks
    /// `GET /oauth2/applications/@me` for the application id when it is not known yet.
    pub async fn register_commands(
        &self,
        environments: &[(String, String)],
    ) -> Result<(), DeliveryError> {
        if self.http.application_id().is_none() {
            let app = self
                .timed(self.http.get_current_application_info())
                .await?
                .map_err(map_serenity_error)?;
            self.http.set_application_id(app.id);
        }
        let commands = command_definitions(environments);
        let created = self
            .timed(self.guild_id.set_commands(&*self.http, commands))
            .await?
            .map_err(map_serenity_error)?;
        info!(
            guild = %self.guild_id,
            commands = created.len(),
            "registered the Discord commands"
        );
        Ok(())
    }

    pub(super) async fn timed<T>(&self, fut: impl Future<Output = T>) -> Result<T, DeliveryError> {
        tokio::time::timeout(self.timeout, fut).await.map_err(|_| {
            DeliveryError::transient(PLATFORM, format!("timed out after {:?}", self.timeout))
        })
    }

    /// Runs serenity's `Request`: through `Http::fire` (rate limiter, 429s waited out) when the
    /// rate limiter is on; otherwise built by serenity (`Request::build`, with token and proxy) and
    /// executed on the same reqwest client here, so that a 429 keeps its `retry_after`.
    pub(super) async fn call<T: DeserializeOwned>(
        &self,
        req: Request<'_>,
    ) -> Result<T, DeliveryError> {
        if self.http.ratelimiter.is_some() {
            return self
                .timed(self.http.fire::<T>(req))
                .await?
                .map_err(map_serenity_error);
        }
        let method = req.method_ref().reqwest_method();
        let built = req
            .build(&self.reqwest, self.http.token(), self.http.proxy.as_deref())
            .map_err(map_serenity_error)?
            .build()
            .map_err(|e| {
                DeliveryError::permanent(PLATFORM, one_line(&e.without_url().to_string()))
            })?;
        let path = built.url().path().to_string();
        let reqwest = self.reqwest.clone();
        self.timed(async move {
            let response = reqwest.execute(built).await.map_err(|e| {
                DeliveryError::transient(PLATFORM, one_line(&e.without_url().to_string()))
            })?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response.bytes().await.map_err(|e| {
                DeliveryError::transient(PLATFORM, one_line(&e.without_url().to_string()))
            })?;
            if !(200..300).contains(&status) {
                let message = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(String::from))
                    .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
                let detail = one_line(&format!("{method} {path}: {status} {message}"));
                return Err(classify_status(
                    status,
                    detail,
                    retry_after(&headers, &body),
                ));
            }
            serde_json::from_slice::<T>(&body).map_err(|e| {
                DeliveryError::permanent(
                    PLATFORM,
                    one_line(&format!(
                        "{method} {path}: cannot decode Discord's answer: {e}"
                    )),
                )
            })
        })
        .await?
    }
}

pub(super) fn to_body(body: &impl serde::Serialize) -> Result<Vec<u8>, DeliveryError> {
    serde_json::to_vec(body)
        .map_err(|e| DeliveryError::permanent(PLATFORM, format!("cannot encode: {e}")))
}
