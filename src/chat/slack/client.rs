//! The Slack Web API client: slack-morphism's hyper connector with greenlight's TLS policy,
//! timeouts and error mapping.

use super::*;
use crate::chat::inbound::Visibility;
use std::time::Duration;

use hyper_rustls::HttpsConnector;
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::connect::HttpConnector;
use serde::Serialize;
use slack_morphism::api::{
    SlackApiChatPostEphemeralRequest, SlackApiChatPostMessageRequest, SlackApiChatUpdateRequest,
    SlackApiPostWebhookMessageRequest, SlackApiPostWebhookMessageResponse,
};
use slack_morphism::errors::SlackClientError;
use slack_morphism::hyper_tokio::{SlackClientHyperConnector, SlackClientHyperHttpsConnector};
use slack_morphism::{
    ClientResult, SlackApiToken, SlackApiTokenType, SlackApiTokenValue, SlackChannelId,
    SlackClientApiCallContext, SlackClientHttpConnector, SlackMessageResponseType, SlackTs,
    SlackUserId,
};
use tracing::debug;

/// Maps slack-morphism's error onto what the caller does next: wait, retry, or give up.
pub(super) fn map_error(method: &str, err: SlackClientError) -> DeliveryError {
    match err {
        SlackClientError::RateLimitError(e) => {
            DeliveryError::rate_limited(PLATFORM, e.retry_after.unwrap_or(DEFAULT_RETRY_AFTER))
        }
        SlackClientError::ApiError(e) => match e.code.as_str() {
            "ratelimited" | "rate_limited" => {
                DeliveryError::rate_limited(PLATFORM, DEFAULT_RETRY_AFTER)
            }
            "internal_error" | "fatal_error" | "service_unavailable" | "request_timeout" => {
                DeliveryError::transient(PLATFORM, format!("{method}: {}", e.code))
            }
            code => DeliveryError::permanent(PLATFORM, format!("{method}: {code}")),
        },
        SlackClientError::HttpError(e) => {
            let status = e.status_code;
            if status.is_server_error() || status.as_u16() == 408 {
                DeliveryError::transient(PLATFORM, format!("{method}: HTTP {status}"))
            } else {
                DeliveryError::permanent(PLATFORM, format!("{method}: HTTP {status}"))
            }
        }
        // A response that does not decode will not decode on retry either, and the call may
        // have taken effect (a retry would post twice).
        SlackClientError::ProtocolError(e) => DeliveryError::permanent(
            PLATFORM,
            format!(
                "{method}: unexpected response: {}",
                one_line(&e.json_error.to_string())
            ),
        ),
        // Connection refused/reset, TLS and DNS failures: the cause's chain of messages (its
        // own Display is a Debug dump).
        SlackClientError::HttpProtocolError(e) => DeliveryError::transient(
            PLATFORM,
            format!(
                "{method}: {}",
                e.cause
                    .as_deref()
                    .map(|c| error_chain(c))
                    .unwrap_or_else(|| "HTTP error".into())
            ),
        ),
        // End of stream, anything else.
        other => DeliveryError::transient(
            PLATFORM,
            format!("{method}: {}", one_line(&other.to_string())),
        ),
    }
}

/// The API base without its trailing slash, and whether plain http may be used (loopback host).
pub(super) fn api_base(api_url: &str) -> Result<(String, bool), String> {
    let url = reqwest::Url::parse(api_url)
        .map_err(|e| format!("slack api_url {api_url:?} is not a URL: {e}"))?;
    let host = url.host_str().unwrap_or_default();
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false);
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(format!(
                "slack api_url {api_url:?}: plain http:// is only allowed for a loopback host"
            ))
        }
        other => {
            return Err(format!(
                "slack api_url {api_url:?}: unsupported scheme {other}"
            ))
        }
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "slack api_url {api_url:?}: must not have a query or fragment"
        ));
    }
    Ok((url.as_str().trim_end_matches('/').to_string(), loopback))
}

// ---------------------------------------------------------------------------------------------
// Client (IO)
// ---------------------------------------------------------------------------------------------

pub(super) type Connector = SlackClientHyperHttpsConnector;
pub(super) type MorphismClient = slack_morphism::SlackClient<Connector>;

/// slack-morphism's hyper connector with greenlight's TLS policy: https-only, except that plain
/// http is allowed when the configured API host is loopback (tests' fakes). Roots: the system's
/// (as slack-morphism's default), falling back to the bundled webpki roots when there are none.
pub(super) fn build_connector(settings: &SlackSettings) -> Result<Connector, String> {
    build_connector_with(settings, |https| https)
}

/// [`build_connector`] with the HTTPS connector wrapped by `wrap`.
pub(super) fn build_connector_with<H>(
    settings: &SlackSettings,
    wrap: impl FnOnce(HttpsConnector<HttpConnector>) -> H,
) -> Result<SlackClientHyperConnector<H>, String>
where
    H: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    let (base, loopback) = api_base(&settings.api_url)?;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(settings.request_timeout));
    let roots = match HttpsConnectorBuilder::new().with_native_roots() {
        Ok(builder) => builder,
        Err(e) => {
            debug!(error = %e, "no system CA roots, using the bundled webpki roots");
            HttpsConnectorBuilder::new().with_webpki_roots()
        }
    };
    let schemes = if loopback {
        roots.https_or_http()
    } else {
        roots.https_only()
    };
    let https = schemes.enable_http1().enable_http2().wrap_connector(http);
    Ok(SlackClientHyperConnector::with_connector(wrap(https)).with_slack_api_url(&base))
}

/// The Slack Web API as greenlight uses it: post, update, respond, ephemeral.
#[derive(Clone)]
pub struct SlackClient {
    client: MorphismClient,
    token: SlackApiToken,
    timeout: Duration,
    api_url: String,
    /// Plain http allowed (loopback api_url): response URLs are held to the same rule.
    allow_http: bool,
}

impl std::fmt::Debug for SlackClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackClient")
            .field("api_url", &self.api_url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Body posted to a `response_url`: slack-morphism's webhook request plus `response_type`.
#[derive(Serialize)]
pub(super) struct ResponseUrlMessage<'a> {
    #[serde(flatten)]
    message: &'a SlackApiPostWebhookMessageRequest,
    response_type: SlackMessageResponseType,
}

impl SlackClient {
    /// Plain `http://` api_url is accepted only for a loopback host (127.0.0.0/8, ::1,
    /// localhost); otherwise the connector is https-only. Err with a one-line reason otherwise.
    pub fn new(settings: &SlackSettings) -> Result<SlackClient, String> {
        if settings.bot_token.trim().is_empty() {
            return Err("the Slack bot token is empty".into());
        }
        if settings.request_timeout.is_zero() {
            return Err("slack request_timeout must be more than 0".into());
        }
        let connector = build_connector(settings)?;
        let (_, allow_http) = api_base(&settings.api_url)?;
        Ok(SlackClient {
            client: MorphismClient::new(connector),
            token: SlackApiToken::new(SlackApiTokenValue(settings.bot_token.clone()))
                .with_token_type(SlackApiTokenType::Bot),
            timeout: settings.request_timeout,
            api_url: settings.api_url.clone(),
            allow_http,
        })
    }

    /// chat.postMessage (a thread reply when `thread_ts` is Some). With `buttons`, the message
    /// carries the Approve / Veto actions block. Returns the message ts.
    pub async fn post_message(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        text: &str,
        buttons: bool,
    ) -> Result<String, DeliveryError> {
        let req = SlackApiChatPostMessageRequest::new(
            SlackChannelId(channel.to_string()),
            message_content(text, buttons),
        )
        .opt_thread_ts(thread_ts.map(|ts| SlackTs(ts.to_string())))
        .with_unfurl_links(false)
        .with_unfurl_media(false);
        let session = self.client.open_session(&self.token);
        let res = self
            .call("chat.postMessage", session.chat_post_message(&req))
            .await?;
        Ok(res.ts.0)
    }

    /// chat.update of an existing message (same buttons rule: without them, they are removed).
    pub async fn update_message(
        &self,
        channel: &str,
        ts: &str,
        text: &str,
        buttons: bool,
    ) -> Result<(), DeliveryError> {
        let req = SlackApiChatUpdateRequest::new(
            SlackChannelId(channel.to_string()),
            message_content(text, buttons),
            SlackTs(ts.to_string()),
        );
        let session = self.client.open_session(&self.token);
        self.call("chat.update", session.chat_update(&req)).await?;
        Ok(())
    }

    /// POST to a `response_url` (slash command or interaction), `"response_type":"ephemeral"`
    /// or `"in_channel"`, never replacing the original message. The bot token is not sent.
    pub async fn respond(
        &self,
        response_url: &str,
        text: &str,
        visibility: Visibility,
    ) -> Result<(), DeliveryError> {
        let url = reqwest::Url::parse(response_url)
            .map_err(|e| DeliveryError::permanent(PLATFORM, format!("bad response_url: {e}")))?;
        if url.scheme() != "https" && !(self.allow_http && url.scheme() == "http") {
            return Err(DeliveryError::permanent(
                PLATFORM,
                format!("response_url must be https, got {}://", url.scheme()),
            ));
        }
        let message = SlackApiPostWebhookMessageRequest::new(message_content(text, false))
            .with_replace_original(false);
        let body = ResponseUrlMessage {
            message: &message,
            response_type: if visibility.is_ephemeral() {
                SlackMessageResponseType::Ephemeral
            } else {
                SlackMessageResponseType::InChannel
            },
        };
        // What `respond_to_event` / `post_webhook_message` do (api/webhook.rs:25-43).
        let span = tracing::debug_span!("Slack response_url");
        let context = SlackClientApiCallContext {
            rate_control_params: None,
            token: None,
            tracing_span: &span,
            is_sensitive_url: true,
        };
        let connector = &self.client.http_api.connector;
        self.call(
            "response_url",
            connector.http_post_uri::<_, SlackApiPostWebhookMessageResponse>(url, &body, context),
        )
        .await?;
        Ok(())
    }

    /// chat.postEphemeral to one user in a channel, in the thread of `thread_ts` when given (a
    /// refused click without response_url).
    pub async fn post_ephemeral(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        user: &str,
        text: &str,
    ) -> Result<(), DeliveryError> {
        let req = SlackApiChatPostEphemeralRequest::new(
            SlackChannelId(channel.to_string()),
            SlackUserId(user.to_string()),
            message_content(text, false),
        )
        .opt_thread_ts(thread_ts.map(|ts| SlackTs(ts.to_string())));
        let session = self.client.open_session(&self.token);
        self.call("chat.postEphemeral", session.chat_post_ephemeral(&req))
            .await?;
        Ok(())
    }

    async fn call<T>(
        &self,
        method: &str,
        fut: impl Future<Output = ClientResult<T>>,
    ) -> Result<T, DeliveryError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                let err = map_error(method, e);
                debug!(method, error = %err, "slack call failed");
                Err(err)
            }
            Err(_) => Err(DeliveryError::transient(
                PLATFORM,
                format!("{method}: no answer within {:?}", self.timeout),
            )),
        }
    }
}
