//! greenlight: a chat-ops deploy bot. The library holds everything; `main.rs` is the CLI.
pub mod app;
pub mod chat;
pub mod config;
pub mod core;
pub mod demo_app;
pub mod demo_traffic;
pub mod deploy;
pub mod evidence;
pub mod http;
pub mod metrics;
pub mod remote;
pub mod store;
pub mod telemetry;
pub mod verify;
