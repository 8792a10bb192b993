//! The history of an episode as every process records it: what the agent
//! was asked, what it proposed, what came of each step.

use serde::{Deserialize, Serialize};

use crate::action::Action;
use crate::risk::SecurityRisk;

/// What the agent is told about the incident: never the scenario id or
/// the known fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub symptom: String,
    /// The port health probes expect; inside the sandbox the service
    /// answers on 127.0.0.1 at this port.
    pub expected_port: u16,
    /// The strategy hint or skill text the brain follows.
    pub hint: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Proposal {
    Act {
        action: Action,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        declared_risk: Option<SecurityRisk>,
    },
    /// The brain claims it is finished; a claim, not a verdict.
    Done { summary: String },
}

/// How the note ends that the sandbox appends to output it cut at its
/// cap: a command's stream (`[... N more bytes truncated]`) or a file read
/// (`[... what follows the first N bytes truncated]`).
pub const TRUNCATED: &str = " truncated]";

/// What an action produced, as the agent will see it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// Process exit code; for other actions 0 on success, 1 on failure.
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
    pub duration_ms: u64,
    /// Set when the step made the service worse and was undone at once,
    /// with the evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back: Option<String>,
}

impl Observation {
    pub fn failed(message: impl Into<String>, duration_ms: u64) -> Self {
        Self {
            exit_code: Some(1),
            stderr: message.into(),
            duration_ms,
            ..Self::default()
        }
    }

    pub fn succeeded(stdout: impl Into<String>, duration_ms: u64) -> Self {
        Self {
            exit_code: Some(0),
            stdout: stdout.into(),
            duration_ms,
            ..Self::default()
        }
    }

    pub fn is_success(&self) -> bool {
        self.exit_code == Some(0)
    }

    /// Whether the sandbox cut its stdout at the cap.
    pub fn is_truncated(&self) -> bool {
        self.stdout.contains(TRUNCATED)
    }
}

/// The workspace could not run the action: nothing (or not known whether
/// anything) happened. Distinct from a command that ran and failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum WorkspaceError {
    /// The containment the sandbox promised could not be set up; refusing
    /// to run uncontained. Not retried.
    #[error("the sandbox refused to run it uncontained: {0}")]
    Sandbox(String),
    /// The executor could not be reached or did not answer. Retrying is
    /// safe: executors journal steps, so a step never runs twice.
    #[error("the workspace did not answer: {0}")]
    Unreachable(String),
}

impl WorkspaceError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, WorkspaceError::Unreachable(_))
    }

    /// What kind of failure, in a word (a span's `error.type`).
    pub fn kind(&self) -> &'static str {
        match self {
            WorkspaceError::Sandbox(_) => "sandbox_refused",
            WorkspaceError::Unreachable(_) => "unreachable",
        }
    }
}

/// What became of a proposed action, as the brain learns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Feedback {
    Observed(Observation),
    /// The gate refused it (risk above the policy's maximum).
    Denied {
        reason: String,
    },
    /// Confirmation was refused.
    Rejected {
        reason: String,
    },
    /// The workspace could not run it.
    Failed {
        reason: String,
    },
}

impl Feedback {
    /// What the action produced, if it ran.
    pub fn observation(&self) -> Option<&Observation> {
        match self {
            Feedback::Observed(observation) => Some(observation),
            _ => None,
        }
    }

    /// Whether the action did not run because the gate or a person said no.
    pub fn is_refusal(&self) -> bool {
        matches!(self, Feedback::Denied { .. } | Feedback::Rejected { .. })
    }
}

/// One step of the history every brain reconstructs itself from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Turn {
    pub step: u32,
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared_risk: Option<SecurityRisk>,
    pub feedback: Feedback,
}
