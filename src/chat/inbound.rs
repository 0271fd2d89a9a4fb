//! The one shape every chat adapter (local, Slack in both modes, Discord) hands to the app, and
//! the way back: the app answers once the event is handled and its effects are written, so an
//! adapter that acknowledges after `Inbox::handle` returns acknowledges only persisted work.

use crate::core::command::Command;
pub use crate::core::message::Visibility;
use crate::core::Platform;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::oneshot;

/// Something a person did on a chat platform (ids raw, as the platform sends them).
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound {
    pub platform: Platform,
    /// The platform's id of this event, written in the same batch as its effects so that a
    /// redelivery acts once. `None` for the local channel, whose API calls are not redelivered.
    pub dedup: Option<String>,
    /// Who: the platform's user id (the local channel: the key under `[users]`).
    pub user: String,
    /// Where: the platform's channel id (the local channel: its name).
    pub channel: String,
    pub kind: Kind,
    /// Slack's `response_url` for the answer to a command or click, when Slack sent one.
    pub response_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// Text in the chat grammar: a local post (kept in the channel, acted on when it is a
    /// command), a Slack slash command (`/deploy v1.2.0 prod`), a Discord message that mentions
    /// the bot. `thread` is the local channel's thread id.
    Message {
        text: String,
        thread: Option<String>,
    },
    /// A command built from the platform's typed options (Discord's slash commands).
    Command(Command),
    /// A reaction added or removed on the message `message` (Slack's ts, Discord's or the local
    /// channel's message id).
    Reaction {
        message: String,
        emoji: String,
        added: bool,
    },
    /// A click on a checklist item's button.
    Click { message: String, button: Button },
}

/// The buttons a checklist item carries (Slack), by their action ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Button {
    Approve,
    Veto,
}

impl Button {
    pub const ALL: [Button; 2] = [Button::Approve, Button::Veto];

    /// The `action_id` the button is sent with.
    pub fn action_id(self) -> &'static str {
        match self {
            Button::Approve => "greenlight_approve",
            Button::Veto => "greenlight_veto",
        }
    }

    /// The button an `action_id` names; `None` for anything else (ignored).
    pub fn from_action_id(id: &str) -> Option<Button> {
        Button::ALL.into_iter().find(|b| b.action_id() == id)
    }
}

/// The answer to a command, for an adapter that answers itself (Discord).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub text: String,
    pub visibility: Visibility,
}

impl Answer {
    pub fn ephemeral(text: impl Into<String>) -> Answer {
        Answer {
            text: text.into(),
            visibility: Visibility::Ephemeral,
        }
    }
}

/// What the app says once an event is handled and written.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Handled {
    /// The id of the message a local post created.
    pub message_id: Option<String>,
    /// Whether a local reaction changed the message's reactions.
    pub changed: bool,
    /// The answer to a command, when there is one.
    pub answer: Option<Answer>,
}

/// An error answered to the sender of an inbound event (the local API's status and one line).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    fn shutting_down() -> Self {
        ApiError::new(503, "greenlight is shutting down")
    }
}

/// Where the app's answer to one event goes.
pub type Reply = oneshot::Sender<Result<Handled, ApiError>>;

/// Queues an event with its reply channel; false when the app is gone.
type Queue = dyn Fn(Inbound, Reply) -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync;

/// The app's door for chat events, as the adapters see it (they never see the app).
#[derive(Clone)]
pub struct Inbox(Arc<Queue>);

impl Inbox {
    /// `send` queues an event with its reply channel; false when the app is gone.
    pub fn new<F, Fut>(send: F) -> Inbox
    where
        F: Fn(Inbound, Reply) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        Inbox(Arc::new(move |inbound, reply| {
            Box::pin(send(inbound, reply))
        }))
    }

    /// Hands `inbound` to the app and waits until it is handled and its effects are written.
    pub async fn handle(&self, inbound: Inbound) -> Result<Handled, ApiError> {
        let (tx, rx) = oneshot::channel();
        if !(self.0)(inbound, tx).await {
            return Err(ApiError::shutting_down());
        }
        rx.await.unwrap_or_else(|_| Err(ApiError::shutting_down()))
    }
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Inbox")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buttons_by_action_id() {
        assert_eq!(
            Button::from_action_id("greenlight_approve"),
            Some(Button::Approve)
        );
        assert_eq!(
            Button::from_action_id("greenlight_veto"),
            Some(Button::Veto)
        );
        assert_eq!(Button::from_action_id("something_else"), None);
    }

    #[tokio::test]
    async fn an_inbox_whose_app_is_gone_says_so() {
        let inbox = Inbox::new(|_, _| async { false });
        let inbound = Inbound {
            platform: Platform::Slack,
            dedup: None,
            user: "U1".into(),
            channel: "C1".into(),
            kind: Kind::Message {
                text: "/deploy help".into(),
                thread: None,
            },
            response_url: None,
        };
        assert_eq!(inbox.handle(inbound.clone()).await.unwrap_err().status, 503);
        // Queued, but dropped without an answer.
        let inbox = Inbox::new(|_, reply| async move {
            drop(reply);
            true
        });
        assert_eq!(inbox.handle(inbound).await.unwrap_err().status, 503);
    }
}
