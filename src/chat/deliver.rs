//! Delivers the outbox to a remote platform: in order, at least once, retrying 429 (honouring
//! Retry-After), 5xx and timeouts; a delivered message's platform id is remembered so that
//! edits, thread replies and reactions find it.

use crate::chat::slack::{SlackClient, SlackError};
use crate::store::{OutboxEntry, Store};
use crate::telemetry::Telemetry;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Runs until the process ends.
pub async fn slack(
    store: Store,
    client: Arc<SlackClient>,
    notify: Arc<Notify>,
    telemetry: Telemetry,
) {
    let mut backoff = Duration::from_millis(500);
    loop {
        telemetry.outbox_depth.set(store.outbox_len("slack") as i64);
        let next = match store.outbox_first("slack") {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the outbox");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let Some((k, entry)) = next else {
            // Woken when something is queued; a periodic look-around costs nothing.
            let _ = tokio::time::timeout(Duration::from_secs(5), notify.notified()).await;
            continue;
        };
        match deliver_slack(&store, &client, &entry).await {
            Ok(id) => {
                backoff = Duration::from_millis(500);
                if let Err(e) = store.delivered(
                    &k,
                    "slack",
                    entry.key.as_deref(),
                    &entry.channel,
                    id.as_deref(),
                ) {
                    tracing::error!(error = %e, "cannot record a delivery");
                }
            }
            Err(SlackError::RateLimited { retry_after }) => {
                tracing::warn!(
                    retry_after_ms = retry_after.as_millis() as u64,
                    "slack rate limit: waiting"
                );
                tokio::time::sleep(retry_after).await;
            }
            Err(SlackError::Transient(e)) => {
                tracing::warn!(error = %e, backoff_ms = backoff.as_millis() as u64, "slack delivery failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(SlackError::Permanent(e)) => {
                tracing::error!(error = %e, channel = %entry.channel, "slack refused a message; dropped");
                let _ = store.delivered(&k, "slack", None, &entry.channel, None);
            }
        }
    }
}

/// One message; returns the new message's ts when it posted one.
async fn deliver_slack(
    store: &Store,
    client: &SlackClient,
    e: &OutboxEntry,
) -> Result<Option<String>, SlackError> {
    if let Some(url) = &e.respond_url {
        client
            .respond(url, &e.text, e.ephemeral_to.is_some())
            .await?;
        return Ok(None);
    }
    let known = |key: &str| store.platform_ref("slack", key).ok().flatten();
    if e.edit {
        if let Some((channel, ts)) = e.key.as_deref().and_then(known) {
            client
                .update_message(&channel, &ts, &e.text, e.buttons)
                .await?;
            return Ok(None);
        }
    }
    let thread_ts = e.thread_key.as_deref().and_then(known).map(|(_, ts)| ts);
    let ts = client
        .post_message(&e.channel, thread_ts.as_deref(), &e.text, e.buttons)
        .await?;
    Ok(Some(ts))
}
