//! Chat adapters: each converts platform events into the one inbound shape (`Inbound`, handed
//! to the app through an `Inbox`) and core messages into platform calls. Adapters never import
//! the app.
pub mod deliver;
pub mod discord;
pub mod error;
pub mod inbound;
pub mod local;
pub mod slack;

pub use error::{DeliveryError, ErrorKind};
pub use inbound::{Answer, ApiError, Button, Handled, Inbound, Inbox, Kind, Reply, Visibility};
