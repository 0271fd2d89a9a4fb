//! The `[environments.X.metrics]` section: one table whose `provider` key picks the provider
//! (`scrape` when absent); the keys of every provider are known here so that a misspelt one is
//! refused with its line. Each provider validates its own part.

use super::prometheus::PrometheusConfig;
use super::scrape::ScrapeConfig;
use serde::Deserialize;
use toml::Spanned;

/// Which provider judges an environment, validated.
#[derive(Debug, Clone)]
pub enum MetricsConfig {
    /// Scrape the colour's own `/metrics` (path relative to its URL); with `match_colour`, only
    /// series labelled `color="<colour>"` count (off for a rolling update: one Deployment).
    Scrape(ScrapeConfig),
    /// PromQL over a Prometheus server, templated with colour and environment.
    Prometheus(PrometheusConfig),
    /// No metrics provider: monitoring can only be inconclusive on metrics.
    None,
}

/// The section as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    provider: Option<Spanned<String>>,
    // scrape
    path: Option<String>,
    match_colour: Option<bool>,
    // prometheus
    url: Option<String>,
    error_rate_query: Option<String>,
    latency_query: Option<String>,
    requests_query: Option<String>,
    window: Option<String>,
    timeout: Option<String>,
}

impl MetricsSection {
    /// Validates the section of environment `name`; an error carries the span of `provider`.
    pub fn validate(self, name: &str) -> Result<MetricsConfig, (std::ops::Range<usize>, String)> {
        let provider = self
            .provider
            .as_ref()
            .map(|p| (p.span(), p.get_ref().clone()));
        match provider {
            None => Ok(MetricsConfig::Scrape(ScrapeConfig::new(self.path, self.match_colour))),
            Some((_, p)) if p == "scrape" => {
                Ok(MetricsConfig::Scrape(ScrapeConfig::new(self.path, self.match_colour)))
            }
            Some((_, p)) if p == "none" => Ok(MetricsConfig::None),
            Some((span, p)) if p == "prometheus" => {
                let Some(url) = self.url else {
                    return Err((span, format!("environment \"{name}\": metrics.url is required for provider \"prometheus\"")));
                };
                PrometheusConfig::with_defaults(
                    url,
                    self.error_rate_query,
                    self.latency_query,
                    self.requests_query,
                    self.window,
                    self.timeout,
                )
                .map(MetricsConfig::Prometheus)
                .map_err(|why| (span, format!("environment \"{name}\": {why}")))
            }
            Some((span, other)) => Err((span, format!("metrics.provider must be \"scrape\", \"prometheus\" or \"none\", not \"{other}\""))),
        }
    }
}
