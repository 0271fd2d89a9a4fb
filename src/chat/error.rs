//! One error for every chat platform's API calls, sorted by what the caller does next: wait,
//! retry later, or give up. The outbox deliverer (`chat::deliver`) acts on the kind alone.

use crate::core::Platform;
use std::time::Duration;

/// What to do about a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// HTTP 429: wait `retry_after` (the platform's `Retry-After`) before the next call.
    RateLimited { retry_after: Duration },
    /// 5xx, timeouts, connection errors: retrying later may work.
    Transient,
    /// Refusals (`"ok":false`, other 4xx) and undecodable answers: retrying will not help.
    Permanent,
}

/// A failed call to a chat platform: its kind and, in one line, what went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryError {
    pub platform: Platform,
    pub kind: ErrorKind,
    /// The cause in one line (empty for a rate limit: the wait says it all).
    pub detail: String,
}

impl DeliveryError {
    pub fn rate_limited(platform: Platform, retry_after: Duration) -> Self {
        DeliveryError {
            platform,
            kind: ErrorKind::RateLimited { retry_after },
            detail: String::new(),
        }
    }

    pub fn transient(platform: Platform, detail: impl Into<String>) -> Self {
        DeliveryError {
            platform,
            kind: ErrorKind::Transient,
            detail: detail.into(),
        }
    }

    pub fn permanent(platform: Platform, detail: impl Into<String>) -> Self {
        DeliveryError {
            platform,
            kind: ErrorKind::Permanent,
            detail: detail.into(),
        }
    }

    pub fn is_transient(&self) -> bool {
        self.kind == ErrorKind::Transient
    }

    pub fn is_permanent(&self) -> bool {
        self.kind == ErrorKind::Permanent
    }
}

impl std::fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.platform {
            Platform::Slack => "Slack",
            Platform::Discord => "Discord",
            Platform::Local => "the local channel",
        };
        match self.kind {
            ErrorKind::RateLimited { retry_after } => {
                write!(f, "rate limited by {name}, retry after {retry_after:?}")
            }
            ErrorKind::Transient => write!(f, "transient {name} error: {}", self.detail),
            ErrorKind::Permanent => write!(f, "{name} refused: {}", self.detail),
        }
    }
}

impl std::error::Error for DeliveryError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_platform_and_the_kind() {
        let d = Duration::from_millis(1500);
        assert_eq!(
            DeliveryError::rate_limited(Platform::Slack, d).to_string(),
            "rate limited by Slack, retry after 1.5s"
        );
        assert_eq!(
            DeliveryError::transient(Platform::Discord, "POST /x: 502").to_string(),
            "transient Discord error: POST /x: 502"
        );
        assert_eq!(
            DeliveryError::permanent(Platform::Slack, "chat.postMessage: channel_not_found")
                .to_string(),
            "Slack refused: chat.postMessage: channel_not_found"
        );
    }
}
