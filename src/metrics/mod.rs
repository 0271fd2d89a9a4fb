//! Metrics providers: measure a colour's request count, error rate and p99 over a window.
//!
//! Every provider is a file or folder of the same shape: its config (validated from the
//! `[metrics]` section in `schema.rs`), its client, its tests, and an impl of
//! [`MetricsProvider`]. The app only calls the trait; `start.rs` is the one place that turns
//! a config into a provider. Adding one (Datadog, New Relic) is a new file here, its keys and
//! an arm in `schema.rs`, and an arm in `start.rs`.
//!
//! This file imports nothing above `core`, so a provider can implement the trait without an
//! import cycle.
pub mod prometheus;
pub mod schema;
pub mod scrape;
pub mod start;

use crate::core::analysis::Sample;
use crate::core::{Colour, EnvName, RunId};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// A future a provider returns (the trait is object-safe, so it cannot use `async fn`). The
/// same one-line alias as `deploy::BoxFuture`: a provider owes nothing to the deploy steps.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The colour a sample is about.
#[derive(Debug, Clone)]
pub struct Target {
    pub env: EnvName,
    pub colour: Colour,
    /// The colour's base URL, if it runs (a provider that reads the app itself needs it).
    pub url: Option<String>,
}

/// The window a sample covers.
#[derive(Debug, Clone, Copy)]
pub enum Window {
    /// A window of this length from now; nothing is kept (the baseline of the old colour).
    Fresh(Duration),
    /// From the run's last sample or `mark` (or, without one, a fresh window of `or`) to now;
    /// the end is kept for the run's next sample.
    Since { run: RunId, or: Duration },
}

/// Measures colours. No data (an error, no requests) is `Sample::Unavailable` with the reason,
/// never a pass.
pub trait MetricsProvider: Send + Sync {
    fn sample<'a>(&'a self, target: &'a Target, window: Window) -> BoxFuture<'a, Sample>;
    /// Traffic just moved to `target`: the run's monitoring window starts here (a provider
    /// whose queries cover their own window has nothing to do).
    fn mark<'a>(&'a self, _target: &'a Target, _run: RunId) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
    /// The run is over: forget what was kept for it.
    fn forget(&self, _run: RunId) {}
}

/// The first `max` characters of `s`: a bad value quoted in a one-line reason.
fn head(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
