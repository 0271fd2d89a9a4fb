//! The bot's own Prometheus metrics (`/metrics`): runs by outcome, command acknowledgement
//! latency, rollbacks, outbox depth and platform connection state.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::Arc;

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
    pub outbox_depth: Gauge,
    pub connected: Family<PlatformLabels, Gauge>,
    pub active_runs: Gauge,
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
        let outbox_depth = Gauge::default();
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
            "Chat messages written but not yet delivered to a remote platform (the local channel is written in the same transaction, so it never queues)",
            outbox_depth.clone(),
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
            connected,
            active_runs,
        }
    }

    pub fn encode(&self) -> String {
        let mut s = String::new();
        prometheus_client::encoding::text::encode(&mut s, &self.registry)
            .expect("encoding to a String");
        s
    }
}
