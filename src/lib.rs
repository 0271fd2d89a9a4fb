//! greenlight: a chat-ops deploy bot. The library holds everything; `main.rs` is the CLI.
pub mod config;
pub mod core;
pub mod demo_app;
pub mod deploy;
pub mod metrics;
pub mod verify;
