//! Clients of the remote HTTP APIs greenlight drives (GitHub, GitLab, Argo CD): one shared
//! sender (`rest.rs`: retries with backoff, rate limits honoured, refusals in one line, secrets
//! never in a message) and, per service, its data types and one small file per endpoint.
//!
//! This module imports only `core`: deploy steps, checklist evidence and revert requests use
//! the same clients.
pub mod github;
pub mod gitlab;
pub mod path;
pub mod rest;

pub use rest::{Api, ApiError, ErrorKind, Retry};

/// The one HTTP client of the deploy, traffic and revert steps' remote APIs: one connection
/// pool and one TLS setup for the whole process, not one per environment (a client loads its
/// TLS roots when built, which a hundred environments paid a hundred times at start). Proxies
/// come from the environment (`HTTPS_PROXY`, `NO_PROXY`), as a corporate network needs.
pub fn client() -> reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(10))
                .build()
                .expect("the TLS backend starts")
        })
        .clone()
}
