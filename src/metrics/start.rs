//! The one place a metrics config becomes a provider.

use super::prometheus::Prometheus;
use super::schema::MetricsConfig;
use super::scrape::{ScrapeProvider, Scraper};
use super::BoxFuture;
use super::{MetricsProvider, Target, Window};
use crate::core::analysis::Sample;
use std::sync::Arc;

/// The provider of one environment; `scraper` is shared by every scraping environment (one
/// connection pool, not one per environment).
pub fn provider(cfg: &MetricsConfig, scraper: &Arc<Scraper>) -> Arc<dyn MetricsProvider> {
    match cfg {
        MetricsConfig::Scrape(c) => Arc::new(ScrapeProvider::new(c.clone(), scraper.clone())),
        // Validated when the config was loaded.
        MetricsConfig::Prometheus(pc) => match Prometheus::new(pc.clone()) {
            Ok(p) => Arc::new(p),
            Err(_) => Arc::new(NoData("prometheus: no client for this environment")),
        },
        MetricsConfig::None => Arc::new(NoData("no metrics provider is configured")),
    }
}

/// A provider that never has data, and says why.
struct NoData(&'static str);

impl MetricsProvider for NoData {
    fn sample<'a>(&'a self, _: &'a Target, _: Window) -> BoxFuture<'a, Sample> {
        Box::pin(async { Sample::Unavailable(self.0.into()) })
    }
}
