//! Chat adapters: each converts platform events to core inputs and core messages to platform calls.
pub mod deliver;
pub mod discord;
pub mod error;
pub mod local;
pub mod slack;
