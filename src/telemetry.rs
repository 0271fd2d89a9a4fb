//! The bot's own Prometheus metrics (`/metrics`): runs by outcome, command acknowledgement
//! latency, rollbacks, outbox depth and platform connection state; and, beside the gauges, why a
//! platform is down (since when, the last error), which `/readyz` reports.

use crate::core::Platform;
use chrono::{DateTime, SecondsFormat, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub env: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EnvLabels {
    pub env: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PlatformLabels {
    pub platform: String,
}

/// Shared handles; cloning is cheap.
#[derive(Clone)]
pub struct Telemetry {
    registry: Arc<Registry>,
    pub runs: Family<OutcomeLabels, Counter>,
    pub rollbacks: Family<EnvLabels, Counter>,
    pub ack_seconds: Histogram,
    pub outbox_depth: Family<PlatformLabels, Gauge>,
    /// 1 while a platform's deliverer cannot reach its API (see [`Telemetry::delivery_failed`]).
    pub outbox_stalled: Family<PlatformLabels, Gauge>,
    /// Set it through [`Telemetry::set_connected`] to give `/readyz` the reason, or directly.
    pub connected: Family<PlatformLabels, Gauge>,
    pub active_runs: Gauge,
    outages: Arc<Mutex<BTreeMap<(Platform, Outage), Down>>>,
}

/// What is wrong with a platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Outage {
    /// Its connection (Socket Mode, gateway) is down.
    Disconnected,
    /// Its deliverer's last attempt failed with a transport error, a timeout or a 5xx.
    Stalled,
}

/// Since when something is wrong, and the latest reason.
#[derive(Clone, Debug, PartialEq)]
struct Down {
    since: DateTime<Utc>,
    reason: String,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    pub fn new() -> Telemetry {
        let runs = Family::<OutcomeLabels, Counter>::default();
        let rollbacks = Family::<EnvLabels, Counter>::default();
        let ack_seconds = Histogram::new([
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
        ]);
        let outbox_depth = Family::<PlatformLabels, Gauge>::default();
        let outbox_stalled = Family::<PlatformLabels, Gauge>::default();
        let connected = Family::<PlatformLabels, Gauge>::default();
        let active_runs = Gauge::default();
        let mut r = Registry::with_prefix("greenlight");
        r.register(
            "runs",
            "Runs ended, by environment and outcome",
            runs.clone(),
        );
        r.register(
            "rollbacks",
            "Rollbacks carried out (automatic and by hand)",
            rollbacks.clone(),
        );
        r.register(
            "command_ack_seconds",
            "Time from a command received to its acknowledgement (state written and flushed)",
            ack_seconds.clone(),
        );
        r.register(
            "outbox_depth",
            "Chat messages written but not yet delivered, by remote platform (the local channel is written in the same transaction, so it never queues)",
            outbox_depth.clone(),
        );
        r.register(
            "outbox_stalled",
            "1 while a platform's last delivery attempt failed with a transport error, a timeout or a 5xx and messages are waiting",
            outbox_stalled.clone(),
        );
        r.register(
            "platform_connected",
            "1 when a chat platform is connected",
            connected.clone(),
        );
        r.register("active_runs", "Runs in progress", active_runs.clone());
        Telemetry {
            registry: Arc::new(r),
            runs,
            rollbacks,
            ack_seconds,
            outbox_depth,
            outbox_stalled,
            connected,
            active_runs,
            outages: Arc::default(),
        }
    }

    fn labels(platform: Platform) -> PlatformLabels {
        PlatformLabels {
            platform: platform.to_string(),
        }
    }

    /// Records a problem; its `since` stays that of the first report until it is cleared.
    fn down(&self, platform: Platform, what: Outage, reason: &str) {
        let mut o = self.outages.lock().unwrap_or_else(|e| e.into_inner());
        o.entry((platform, what))
            .and_modify(|d| d.reason = reason.to_string())
            .or_insert_with(|| Down {
                since: Utc::now(),
                reason: reason.to_string(),
            });
    }

    fn up(&self, platform: Platform, what: Outage) {
        let mut o = self.outages.lock().unwrap_or_else(|e| e.into_inner());
        o.remove(&(platform, what));
    }

    /// A platform's connection came up (`Ok`) or went down (`Err` with the reason).
    pub fn set_connected(&self, platform: Platform, state: Result<(), &str>) {
        let gauge = self.connected.get_or_create(&Self::labels(platform));
        match state {
            Ok(()) => {
                self.up(platform, Outage::Disconnected);
                gauge.set(1);
            }
            Err(reason) => {
                self.down(platform, Outage::Disconnected, reason);
                gauge.set(0);
            }
        }
    }

    /// The connection gauge's value (0 when never set).
    pub fn connected_gauge(&self, platform: Platform) -> i64 {
        self.connected.get_or_create(&Self::labels(platform)).get()
    }

    /// A delivery attempt found the platform's API unreachable or failing (transport error,
    /// timeout, 5xx): messages wait until a delivery succeeds.
    pub fn delivery_failed(&self, platform: Platform, reason: &str) {
        self.down(platform, Outage::Stalled, reason);
        self.outbox_stalled
            .get_or_create(&Self::labels(platform))
            .set(1);
    }

    /// The platform's API answered (a delivery succeeded or was refused for good), or nothing
    /// waits: its outbox is draining.
    pub fn delivery_ok(&self, platform: Platform) {
        self.up(platform, Outage::Stalled);
        self.outbox_stalled
            .get_or_create(&Self::labels(platform))
            .set(0);
    }

    /// Messages waiting for `platform`.
    pub fn set_outbox_depth(&self, platform: Platform, n: usize) {
        self.outbox_depth
            .get_or_create(&Self::labels(platform))
            .set(n as i64);
    }

    /// Why the bot is not ready, one phrase per problem: every platform whose connection gauge
    /// is 0 (with the recorded reason when there is one) and every stalled deliverer with the
    /// number of messages `waiting(platform)` reports (a stall with nothing waiting is none).
    pub fn problems(&self, waiting: impl Fn(Platform) -> usize) -> Vec<String> {
        let outages = self
            .outages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let at = |d: &Down| d.since.to_rfc3339_opts(SecondsFormat::Secs, true);
        let mut out = Vec::new();
        for platform in Platform::ALL {
            let down = self
                .connected
                .get(&Self::labels(platform))
                .is_some_and(|g| g.get() == 0);
            if !down {
                continue;
            }
            out.push(match outages.get(&(platform, Outage::Disconnected)) {
                Some(d) => format!("{platform}: not connected since {}: {}", at(d), d.reason),
                None => format!("{platform}: not connected"),
            });
        }
        for ((platform, what), d) in &outages {
            if *what != Outage::Stalled {
                continue;
            }
            let n = waiting(*platform);
            if n == 0 {
                continue;
            }
            let s = if n == 1 { "" } else { "s" };
            out.push(format!(
                "{platform}: cannot deliver since {}: {}; {n} message{s} waiting",
                at(d),
                d.reason
            ));
        }
        out
    }

    pub fn encode(&self) -> String {
        let mut s = String::new();
        prometheus_client::encoding::text::encode(&mut s, &self.registry)
            .expect("encoding to a String");
        s
    }
}

/// Fault injection for the crash tests: `GREENLIGHT_FAULT=before:switch` (or `after:<action>`,
/// `persisted:<phase>`, `unflushed:<n>`, and points inside a step such as
/// `github:dispatched`) makes the bot SIGKILL itself at that point, exactly
/// as a crash would.
pub fn fault(point: &str) {
    static FAULT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let f = FAULT.get_or_init(|| std::env::var("GREENLIGHT_FAULT").ok());
    if f.as_deref() == Some(point) {
        tracing::warn!(point, "fault injection: killing myself");
        // SAFETY: kill(2) on our own pid.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}
