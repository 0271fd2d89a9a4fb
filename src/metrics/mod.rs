//! Metrics providers: measure a colour's error rate and latency.
pub mod prometheus;
pub mod scrape;
