//! Socket Mode: slack-morphism's listener, its connection state, and the callbacks that hand
//! events to the app.

use super::client::build_connector_with;
use super::*;
use crate::chat::inbound::Inbox;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::telemetry::Telemetry;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use slack_morphism::events::{
    SlackCommandEvent, SlackCommandEventResponse, SlackInteractionEvent, SlackPushEventCallback,
};
use slack_morphism::hyper_tokio::SlackClientHyperConnector;
use slack_morphism::listener::{
    HttpStatusCode, SlackClientEventsListenerEnvironment, SlackClientEventsUserState,
};
use slack_morphism::{
    SlackApiToken, SlackApiTokenType, SlackApiTokenValue, SlackClientSocketModeConfig,
    SlackClientSocketModeListener, SlackSocketModeListenerCallbacks, UserCallbackResult,
};
use tracing::{debug, warn};

// ---------------------------------------------------------------------------------------------
// Socket Mode (IO)
// ---------------------------------------------------------------------------------------------

/// Where converted Socket Mode events go (the app's inbox); stored in the listener's user state
/// because slack-morphism's callbacks are `fn` pointers.
pub(super) struct InboundSink(Inbox);

/// The Socket Mode connection's state, reported as `greenlight_platform_connected{platform=
/// "slack"}` and by `/readyz`. slack-morphism has no callback for a closed socket (module docs),
/// so: its socket client opens an HTTP connection through [`ReconnectWatch`] only to call
/// `apps.connections.open`, which it does only when it has no socket: that is "disconnected";
/// the `hello` frame that starts every socket is "connected". Also kept in the listener's user
/// state, for the hello callback.
#[derive(Clone)]
pub(super) struct SocketWatch {
    telemetry: Telemetry,
    reconnect_every: Duration,
    /// A `hello` was seen once: later opens are reconnects.
    connected_once: Arc<AtomicBool>,
}

impl SocketWatch {
    fn opening(&self) {
        let reason = if self.connected_once.load(Ordering::SeqCst) {
            format!(
                "Socket Mode lost its connection; reconnecting through apps.connections.open (every {} s while it fails)",
                self.reconnect_every.as_secs()
            )
        } else {
            "Socket Mode is connecting through apps.connections.open".to_string()
        };
        if self.telemetry.connected_gauge(PLATFORM) != 0 {
            warn!("slack: Socket Mode disconnected; reconnecting");
        }
        self.telemetry.set_connected(PLATFORM, Err(&reason));
    }

    fn hello(&self) {
        self.connected_once.store(true, Ordering::SeqCst);
        if self.telemetry.connected_gauge(PLATFORM) != 1 {
            tracing::info!("slack: Socket Mode connected");
        }
        self.telemetry.set_connected(PLATFORM, Ok(()));
    }

    /// The connection attempt itself failed (TCP, TLS): a better reason than "reconnecting".
    fn open_failed(&self, error: &str) {
        self.telemetry.set_connected(
            PLATFORM,
            Err(&format!(
                "Socket Mode cannot reach apps.connections.open: {}",
                one_line(error)
            )),
        );
    }
}

/// The Socket Mode client's HTTP connector: reports each connection it opens to the
/// [`SocketWatch`] and keeps none for reuse (a pooled connection would hide the next reconnect).
#[derive(Clone)]
pub(super) struct ReconnectWatch<C> {
    inner: C,
    watch: SocketWatch,
}

impl<C> tower_service::Service<hyper::Uri> for ReconnectWatch<C>
where
    C: tower_service::Service<hyper::Uri>,
    C::Future: Send + 'static,
    C::Error: std::fmt::Display,
{
    type Response = Unpooled<C::Response>;
    type Error = C::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, C::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), C::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: hyper::Uri) -> Self::Future {
        self.watch.opening();
        let (connecting, watch) = (self.inner.call(uri), self.watch.clone());
        Box::pin(async move {
            connecting
                .await
                .map(Unpooled)
                .inspect_err(|e| watch.open_failed(&e.to_string()))
        })
    }
}

/// A connection the client pool never reuses (its `Connected` is poisoned from the start).
pub(super) struct Unpooled<T>(T);

impl<T: Connection> Connection for Unpooled<T> {
    fn connected(&self) -> Connected {
        let connected = self.0.connected();
        connected.poison();
        connected
    }
}

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for Unpooled<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for Unpooled<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
}

pub(super) type SocketConnector =
    SlackClientHyperConnector<ReconnectWatch<HttpsConnector<HttpConnector>>>;
pub(super) type SocketClient = slack_morphism::SlackClient<SocketConnector>;

/// Returned by the command callback so that the envelope is acked without a payload (see the
/// module docs); the error handler recognises it.
#[derive(Debug)]
pub(super) struct AckWithoutPayload;

impl std::fmt::Display for AckWithoutPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("slash command acknowledged without a payload")
    }
}

impl std::error::Error for AckWithoutPayload {}

/// Hands `inbound` to the app and waits until its effects are written: the envelope is acked
/// when the callback returns, so an acked command is never lost by a crash (Slack redelivers
/// an unacked one; its id makes the redelivery act once). Handling a command takes
/// milliseconds (the slow work runs after it), well within Slack's 3 s.
pub(super) async fn deliver(state: &SlackClientEventsUserState, inbound: Inbound) {
    let (inbox, watch) = {
        let state = state.read().await;
        (
            state.get_user_state::<InboundSink>().map(|s| s.0.clone()),
            state.get_user_state::<SocketWatch>().cloned(),
        )
    };
    // An envelope arrived on a socket: it is connected, hello or not.
    if let Some(watch) = watch {
        watch.hello();
    }
    match inbox {
        Some(inbox) => {
            if let Err(e) = inbox.handle(inbound).await {
                warn!(error = %e, "slack socket mode: an event was not handled");
            }
        }
        None => warn!("slack socket mode: no inbox for an inbound event"),
    }
}

/// Every socket starts with a `hello` (the event type is not exported by slack-morphism, hence
/// the type parameter).
pub(super) async fn on_hello<E>(
    _hello: E,
    _client: Arc<SocketClient>,
    state: SlackClientEventsUserState,
) {
    let watch = state.read().await.get_user_state::<SocketWatch>().cloned();
    if let Some(watch) = watch {
        watch.hello();
    }
}

pub(super) async fn on_command(
    event: SlackCommandEvent,
    _client: Arc<SocketClient>,
    state: SlackClientEventsUserState,
) -> UserCallbackResult<SlackCommandEventResponse> {
    let inbound = command_to_inbound(&event);
    debug!(kind = "command", command = %event.command.0, "slack socket mode inbound");
    deliver(&state, inbound).await;
    Err(Box::new(AckWithoutPayload))
}

pub(super) async fn on_push(
    event: SlackPushEventCallback,
    _client: Arc<SocketClient>,
    state: SlackClientEventsUserState,
) -> UserCallbackResult<()> {
    if let Some(inbound) = push_to_inbound(&event) {
        debug!(kind = "reaction", event_id = %event.event_id.0, "slack socket mode inbound");
        deliver(&state, inbound).await;
    }
    Ok(())
}

pub(super) async fn on_interaction(
    event: SlackInteractionEvent,
    _client: Arc<SocketClient>,
    state: SlackClientEventsUserState,
) -> UserCallbackResult<()> {
    match interaction_to_inbound(&event) {
        Ok(None) => {}
        Ok(Some(inbound)) => {
            debug!(kind = "action", "slack socket mode inbound");
            deliver(&state, inbound).await;
        }
        Err(reason) => debug!(%reason, "slack socket mode: interaction ignored"),
    }
    Ok(())
}

pub(super) fn on_listener_error(
    err: Box<dyn std::error::Error + Send + Sync>,
    _client: Arc<SocketClient>,
    _state: SlackClientEventsUserState,
) -> HttpStatusCode {
    if err.downcast_ref::<AckWithoutPayload>().is_some() {
        return HttpStatusCode::OK;
    }
    warn!(error = %one_line(&err.to_string()), "slack socket mode error");
    HttpStatusCode::INTERNAL_SERVER_ERROR
}

/// A running Socket Mode connection (slack-morphism's `SlackClientSocketModeListener`, one
/// socket). slack-morphism reconnects by itself after a `disconnect` frame, a closed socket or
/// missed pongs, through `apps.connections.open`; `greenlight_platform_connected{platform=
/// "slack"}` follows (see [`SocketWatch`]).
pub struct SocketMode {
    listener: SlackClientSocketModeListener<SocketConnector>,
}

impl SocketMode {
    /// Connects with [`DEFAULT_RECONNECT_TIMEOUT`]. Slash commands, `reaction_added` /
    /// `reaction_removed` and `block_actions` are converted and handed to `inbox`; an envelope
    /// is acked once the app has handled it and written its effects. The connection state goes
    /// to `telemetry` (not connected until the first `hello`).
    pub async fn start(
        settings: &SlackSettings,
        inbox: Inbox,
        telemetry: &Telemetry,
    ) -> Result<SocketMode, String> {
        Self::start_with_reconnect(settings, inbox, telemetry, DEFAULT_RECONNECT_TIMEOUT).await
    }

    /// As [`SocketMode::start`], with the pause between reconnect attempts (whole seconds, at
    /// least 1: slack-morphism counts in seconds).
    pub async fn start_with_reconnect(
        settings: &SlackSettings,
        inbox: Inbox,
        telemetry: &Telemetry,
        reconnect_timeout: Duration,
    ) -> Result<SocketMode, String> {
        let app_token = settings
            .app_token
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or("Socket Mode needs an app-level token (SLACK_APP_TOKEN, xapp-...)")?;
        let reconnect_every = Duration::from_secs(reconnect_timeout.as_secs().max(1));
        let watch = SocketWatch {
            telemetry: telemetry.clone(),
            reconnect_every,
            connected_once: Arc::default(),
        };
        telemetry.set_connected(
            PLATFORM,
            Err("Socket Mode has not connected yet (no hello)"),
        );
        let connector = build_connector_with(settings, |inner| ReconnectWatch {
            inner,
            watch: watch.clone(),
        })?;
        let client = Arc::new(SocketClient::new(connector));
        let environment = Arc::new(
            SlackClientEventsListenerEnvironment::new(client)
                .with_error_handler(on_listener_error)
                .with_user_state(InboundSink(inbox))
                .with_user_state(watch),
        );
        let callbacks = SlackSocketModeListenerCallbacks::new()
            .with_hello_events(on_hello)
            .with_command_events(on_command)
            .with_push_events(on_push)
            .with_interaction_events(on_interaction);
        let config = SlackClientSocketModeConfig::new()
            .with_max_connections_count(1)
            .with_reconnect_timeout_in_seconds(reconnect_every.as_secs());
        let listener = SlackClientSocketModeListener::new(&config, environment, callbacks);
        let token = SlackApiToken::new(SlackApiTokenValue(app_token.to_string()))
            .with_token_type(SlackApiTokenType::App);
        listener
            .listen_for(&token)
            .await
            .map_err(|e| format!("slack socket mode: {}", one_line(&e.to_string())))?;
        listener.start().await;
        Ok(SocketMode { listener })
    }

    /// Closes the socket; no reconnect follows.
    pub async fn shutdown(self) {
        self.listener.shutdown().await;
    }
}
