//! The sidecar's wire types: what the operator sends the executor beside
//! the service, and what it answers.

use serde::{Deserialize, Serialize};

use super::history::{Observation, Turn, WorkspaceError};
use crate::action::Action;
use crate::risk::SecurityRisk;

/// A step to execute, as the operator sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepRequest {
    pub incident: String,
    pub action: Action,
    pub risk: SecurityRisk,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared_risk: Option<SecurityRisk>,
}

/// A step that did not run (denied, refused), for the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoteRequest {
    pub incident: String,
    pub turn: Turn,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UndoRequest {
    pub incident: String,
    pub before_step: u32,
}

/// What a waiting write would change (no step: nothing runs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    pub incident: String,
    pub path: String,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewAnswer {
    /// A redacted unified diff.
    pub diff: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndoAnswer {
    pub before_step: u32,
    pub written: Vec<String>,
    pub removed: Vec<String>,
}

/// The sidecar's answer to a step: what it observed, or that the sandbox
/// refused to run uncontained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepAnswer {
    Observed(Observation),
    Refused(WorkspaceError),
}
