//! Deploy drivers: put a version on a colour and send traffic to a colour.
pub mod command;
