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
