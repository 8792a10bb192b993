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
pub mod step_span;

use futures::future::BoxFuture;

use crate::crd::TokenUsage;
use crate::protocol::{Feedback, Proposal, Task, Turn};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrainError {
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Protocol(String),
}

impl BrainError {
    /// What kind of failure, in a word (a span's `error.type`).
    pub fn kind(&self) -> &'static str {
        match self {
            BrainError::Unavailable(_) => "unavailable",
            BrainError::Protocol(_) => "protocol",
        }
    }
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
