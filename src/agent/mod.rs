//! The agent: a [`Brain`] proposes one action at a time from the task and
//! the recorded history; the [`episode`] step machine passes each through
//! the gate and says what it needs next (a proposal, an approval, an
//! execution); a driver does the I/O. The brain's "done" is only a claim:
//! the caller verifies the service itself.

pub mod confirm;
pub mod driver;
pub mod episode;
pub mod hint;
pub mod llm;
pub mod remote;
pub mod runbook;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::action::Action;
use crate::crd::TokenUsage;
use crate::risk::SecurityRisk;
use crate::workspace::Observation;

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

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrainError {
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Protocol(String),
}

/// Proposes the next action from the task and what happened so far. A
/// brain keeps nothing it cannot rebuild from `history`: a new brain given
/// a recorded history continues where the old one stopped.
pub trait Brain: Send {
    fn name(&self) -> &'static str;
    fn model(&self) -> Option<String> {
        None
    }
    /// Tokens used so far by this brain.
    fn usage(&self) -> TokenUsage {
        TokenUsage::default()
    }
    fn propose<'a>(
        &'a mut self,
        task: &'a Task,
        history: &'a [Turn],
    ) -> BoxFuture<'a, Result<Proposal, BrainError>>;
}

/// An observation as text for a model or a log.
pub fn feedback_text(feedback: &Feedback) -> String {
    match feedback {
        Feedback::Denied { reason } | Feedback::Rejected { reason } => {
            format!("NOT EXECUTED: {reason}")
        }
        Feedback::Failed { reason } => format!("NOT EXECUTED (workspace error): {reason}"),
        Feedback::Observed(o) => {
            let mut text = String::new();
            if let Some(status) = o.http_status {
                text.push_str(&format!("http_status: {status}\n"));
            }
            match o.exit_code {
                Some(code) => text.push_str(&format!("exit_code: {code}\n")),
                None => text.push_str("exit_code: none (killed)\n"),
            }
            if !o.stdout.is_empty() {
                text.push_str(&format!("stdout:\n{}\n", o.stdout));
            }
            if !o.stderr.is_empty() {
                text.push_str(&format!("stderr:\n{}\n", o.stderr));
            }
            if let Some(evidence) = &o.rolled_back {
                text.push_str(&format!("ROLLED BACK: {evidence}\n"));
            }
            text
        }
    }
}
