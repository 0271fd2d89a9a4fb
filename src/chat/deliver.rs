//! Delivers the outbox to a remote platform: in order, at least once, retrying 429 (honouring
//! Retry-After), 5xx and timeouts; a delivered message's platform id is remembered so that
//! edits, thread replies and reactions find it. While the last attempt failed with a transport
//! error, a timeout or a 5xx, the platform is reported as stalled (`/readyz`, the
//! `greenlight_outbox_stalled` gauge) until a delivery goes through.

use crate::chat::discord::DiscordClient;
use crate::chat::error::{DeliveryError, ErrorKind};
use crate::chat::inbound::Visibility;
use crate::chat::slack::SlackClient;
use crate::core::Platform;
use crate::store::{OutboxEntry, Store};
use crate::telemetry::Telemetry;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Where a delivered message landed: (channel, message id), for edits, threads and reactions.
pub type Landed = Option<(String, String)>;

/// The retry loop shared by every platform; runs until the process ends.
pub async fn run<F, Fut>(
    platform: Platform,
    store: Store,
    notify: Arc<Notify>,
    telemetry: Telemetry,
    deliver: F,
) where
    F: Fn(OutboxEntry) -> Fut,
    Fut: Future<Output = Result<Landed, DeliveryError>>,
{
    let mut backoff = Duration::from_millis(500);
    // Counting the outbox is a scan: at most once a second, not once per message.
    let mut counted: Option<std::time::Instant> = None;
    loop {
        if counted.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            telemetry.set_outbox_depth(platform, store.outbox_len(platform));
            counted = Some(std::time::Instant::now());
        }
        let next = match store.outbox_first(platform) {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(%platform, error = %e, "cannot read the outbox");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let Some((k, entry)) = next else {
            telemetry.set_outbox_depth(platform, 0);
            telemetry.delivery_ok(platform);
            // Woken when something is queued; a periodic look costs nothing.
            let _ = tokio::time::timeout(Duration::from_secs(5), notify.notified()).await;
            continue;
        };
        let key = entry.key.clone();
        let result = deliver(entry.clone()).await;
        match &result {
            Err(e) if e.is_transient() => telemetry.delivery_failed(platform, &e.detail),
            // The API answered (even a 429 or a refusal): the outbox is draining.
            _ => telemetry.delivery_ok(platform),
        }
        match result {
            Ok(landed) => {
                backoff = Duration::from_millis(500);
                let (channel, id) = match &landed {
                    Some((c, i)) => (c.as_str(), Some(i.as_str())),
                    None => (entry.channel.as_str(), None),
                };
                if let Err(e) = store.delivered(&k, platform, key.as_deref(), channel, id) {
                    tracing::error!(%platform, error = %e, "cannot record a delivery");
                }
            }
            Err(DeliveryError {
                kind: ErrorKind::RateLimited { retry_after },
                ..
            }) => {
                tracing::warn!(
                    %platform,
                    retry_after_ms = retry_after.as_millis() as u64,
                    "rate limited: waiting"
                );
                tokio::time::sleep(retry_after).await;
            }
            Err(DeliveryError {
                kind: ErrorKind::Transient,
                detail: e,
                ..
            }) => {
                tracing::warn!(%platform, error = %e, backoff_ms = backoff.as_millis() as u64, "delivery failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(DeliveryError {
                kind: ErrorKind::Permanent,
                detail: e,
                ..
            }) => {
                tracing::error!(%platform, error = %e, channel = %entry.channel, "the platform refused a message; dropped");
                let _ = store.delivered(&k, platform, None, &entry.channel, None);
            }
        }
    }
}

/// Slack's deliverer.
pub async fn slack(
    store: Store,
    client: Arc<SlackClient>,
    notify: Arc<Notify>,
    telemetry: Telemetry,
) {
    let s = store.clone();
    run(Platform::Slack, store, notify, telemetry, move |e| {
        let (store, client) = (s.clone(), client.clone());
        async move { deliver_slack(&store, &client, &e).await }
    })
    .await
}

/// One message; returns where a new message landed. With a `respond_url` it answers there
/// (`ephemeral_to` set: only the sender sees it); without one, `ephemeral_to` names the Slack user
/// who alone sees it (chat.postEphemeral, in the thread of `thread_key` when that was posted).
async fn deliver_slack(
    store: &Store,
    client: &SlackClient,
    e: &OutboxEntry,
) -> Result<Landed, DeliveryError> {
    if let Some(url) = &e.respond_url {
        client
            .respond(url, &e.text, Visibility::private(e.ephemeral_to.is_some()))
            .await?;
        return Ok(None);
    }
    let known = |key: &str| store.platform_ref(Platform::Slack, key).ok().flatten();
    if let Some(user) = e.ephemeral_to.as_deref().filter(|u| !u.is_empty()) {
        let thread_ts = e.thread_key.as_deref().and_then(known).map(|(_, ts)| ts);
        client
            .post_ephemeral(&e.channel, thread_ts.as_deref(), user, &e.text)
            .await?;
        return Ok(None);
    }
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
    Ok(Some((e.channel.clone(), ts)))
}

/// Discord's deliverer. A run's thread is a Discord thread created on the checklist message
/// the first time something is posted under it; its id is remembered.
pub async fn discord(
    store: Store,
    client: Arc<DiscordClient>,
    notify: Arc<Notify>,
    telemetry: Telemetry,
) {
    let s = store.clone();
    run(Platform::Discord, store, notify, telemetry, move |e| {
        let (store, client) = (s.clone(), client.clone());
        async move { deliver_discord(&store, &client, &e).await }
    })
    .await
}

async fn deliver_discord(
    store: &Store,
    client: &DiscordClient,
    e: &OutboxEntry,
) -> Result<Landed, DeliveryError> {
    let known = |key: &str| store.platform_ref(Platform::Discord, key).ok().flatten();
    if e.edit {
        if let Some((channel, id)) = e.key.as_deref().and_then(known) {
            client.edit_message(&channel, &id, &e.text).await?;
            return Ok(None);
        }
    }
    let channel = match e.thread_key.as_deref() {
        Some(parent_key) => match store
            .thread_of(Platform::Discord, parent_key)
            .map_err(|x| DeliveryError::transient(Platform::Discord, x.to_string()))?
        {
            Some(thread) => thread,
            None => match known(parent_key) {
                Some((parent_channel, parent_id)) => {
                    let name = parent_key
                        .split('/')
                        .next()
                        .unwrap_or("greenlight")
                        .replace('-', " ");
                    let thread = client
                        .create_thread(&parent_channel, &parent_id, &format!("{name} checklist"))
                        .await?;
                    store
                        .set_thread(Platform::Discord, parent_key, &thread)
                        .map_err(|x| DeliveryError::transient(Platform::Discord, x.to_string()))?;
                    thread
                }
                // The parent never made it (dropped): post in the channel.
                None => e.channel.clone(),
            },
        },
        None => e.channel.clone(),
    };
    let id = client.post_message(&channel, &e.text).await?;
    Ok(Some((channel, id)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    fn entry(text: &str) -> OutboxEntry {
        OutboxEntry::new(Platform::Slack, "C1", text)
    }

    /// Each attempt first records what `/readyz` would say at that moment (so the record shows
    /// the effect of the attempt before it), then fails or succeeds as scripted.
    #[tokio::test]
    async fn only_transport_errors_and_5xx_stall_a_platform_until_a_delivery_goes_through() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        let mut ws = store.begin();
        ws.push_outbox(&entry("one")).unwrap();
        ws.push_outbox(&entry("two")).unwrap();
        ws.commit().unwrap();
        let telemetry = Telemetry::new();
        let script = [
            Err(DeliveryError::transient(
                Platform::Slack,
                "chat.postMessage: HTTP 503 Service Unavailable",
            )),
            Err(DeliveryError::rate_limited(
                Platform::Slack,
                Duration::from_millis(1),
            )),
            Err(DeliveryError::transient(
                Platform::Slack,
                "chat.postMessage: no answer within 10s",
            )),
            Err(DeliveryError::permanent(
                Platform::Slack,
                "chat.postMessage: channel_not_found",
            )),
            Ok(None),
        ];
        let attempts = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::<Vec<String>>::new()));
        let (s, t, a, w) = (
            store.clone(),
            telemetry.clone(),
            attempts.clone(),
            seen.clone(),
        );
        let task = tokio::spawn(run(
            Platform::Slack,
            store.clone(),
            Arc::new(Notify::new()),
            telemetry.clone(),
            move |_| {
                let problems = t.problems(|p| s.outbox_len(p));
                w.lock().unwrap().push(problems);
                let n = a.fetch_add(1, Ordering::SeqCst);
                let result = script.get(n).cloned().unwrap_or(Ok(None));
                async move { result }
            },
        ));
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while store.outbox_len(Platform::Slack) > 0 {
            assert!(std::time::Instant::now() < deadline, "{:?}", seen);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 5, "{seen:?}");
        assert!(seen[0].is_empty(), "{seen:?}");
        // After a 503: one line with since when, why, and how many wait.
        assert_eq!(seen[1].len(), 1, "{seen:?}");
        assert!(
            seen[1][0].starts_with("slack: cannot deliver since ")
                && seen[1][0].ends_with(
                    ": chat.postMessage: HTTP 503 Service Unavailable; 2 messages waiting"
                ),
            "{seen:?}"
        );
        // A 429 is an answer: the outbox drains, slowly.
        assert!(seen[2].is_empty(), "{seen:?}");
        assert!(seen[3][0].contains("no answer within 10s"), "{seen:?}");
        // A refusal is an answer too (that message is dropped).
        assert!(seen[4].is_empty(), "{seen:?}");
        assert!(telemetry.problems(|p| store.outbox_len(p)).is_empty());
        assert!(telemetry
            .encode()
            .contains("greenlight_outbox_stalled{platform=\"slack\"} 0"));
        task.abort();
    }

    #[test]
    fn a_stall_with_nothing_waiting_is_not_a_problem() {
        let telemetry = Telemetry::new();
        telemetry.delivery_failed(Platform::Discord, "create message: HTTP 502 Bad Gateway");
        assert!(telemetry.problems(|_| 0).is_empty());
        assert_eq!(
            telemetry.problems(|_| 1).len(),
            1,
            "{:?}",
            telemetry.problems(|_| 1)
        );
        assert!(telemetry.problems(|_| 1)[0].ends_with("; 1 message waiting"));
    }
}
