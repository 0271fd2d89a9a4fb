//! The parts of Argo CD's Application resource (as `GET /api/v1/applications/NAME` answers it)
//! that the driver reads. Every field is optional: a fresh application has no
//! `operationState` and no `history`, and Argo CD omits empty fields.

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct App {
    pub metadata: Metadata,
    pub spec: Spec,
    pub status: Status,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Metadata {
    pub name: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Spec {
    /// Kept as JSON: the driver edits one field and sends the rest back untouched.
    pub source: Value,
    pub sync_policy: Option<SyncPolicy>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SyncPolicy {
    /// Present (even as `{}`) when auto-sync is on.
    pub automated: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Status {
    pub sync: SyncStatus,
    pub health: Health,
    pub operation_state: Option<OperationState>,
    pub history: Vec<HistoryEntry>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SyncStatus {
    pub status: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Health {
    pub status: String,
    pub message: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct OperationState {
    /// Running, Succeeded, Failed, Error, Terminating.
    pub phase: String,
    pub message: String,
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
    pub sync_result: Option<SyncResult>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SyncResult {
    pub revision: String,
    /// The source the operation synced (with the image or parameter it set).
    pub source: Value,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HistoryEntry {
    pub id: i64,
    pub revision: String,
    pub source: Value,
}

impl App {
    pub fn auto_sync(&self) -> bool {
        self.spec
            .sync_policy
            .as_ref()
            .is_some_and(|p| p.automated.as_ref().is_some_and(|a| !a.is_null()))
    }

    /// The id of the newest deployment in the history (the one running now).
    pub fn current_id(&self) -> Option<i64> {
        self.status.history.iter().map(|h| h.id).max()
    }
}

impl OperationState {
    pub fn running(&self) -> bool {
        matches!(self.phase.as_str(), "Running" | "Terminating")
    }
    pub fn failed(&self) -> bool {
        matches!(self.phase.as_str(), "Failed" | "Error")
    }
}
