//! The Action API's wire types, shared by the operator and the agent
//! process. The agent proposes; the operator gates, executes and answers.

use serde::{Deserialize, Serialize};

use super::history::{Proposal, Task, Turn};
use crate::crd::{BrainKind, LlmSpec, TokenUsage};
use crate::risk::DecidedBy;

/// Largest request body the Action API accepts.
pub const MAX_BODY_BYTES: usize = 2 << 20;

/// Everything an agent needs to (re)start: the task, how to think, what
/// happened so far, and what to do next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentSession {
    pub task: Task,
    pub brain: BrainSettings,
    pub history: Vec<Turn>,
    pub next: Next,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrainSettings {
    pub kind: BrainKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<LlmSpec>,
    pub allow_fallback: bool,
}

/// What the agent does next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "next")]
pub enum Next {
    /// Propose step `step` with the brain in `role`.
    Propose { step: u32, role: BrainRole },
    /// Step `step` waits (for an approval, or its execution); ask again.
    Wait {
        step: u32,
        retry_after_ms: u64,
        reason: String,
    },
    /// The episode is over; the operator verifies.
    Done { end: EpisodeEnd },
}

/// What the agent offers for a step: a proposal, or why its brain failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Offer {
    Proposal(Proposal),
    BrainFailed(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Submission {
    pub offer: Offer,
    /// Tokens this proposal cost.
    #[serde(default)]
    pub usage: TokenUsage,
}

/// The answer to a step: its turn once decided, and what comes next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepReply {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn: Option<Turn>,
    pub next: Next,
}

/// Which brain a proposal is asked of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BrainRole {
    Primary,
    Fallback,
}

/// Why an episode stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum EpisodeEnd {
    /// The brain says it is done: a claim the caller verifies.
    Claimed {
        summary: String,
    },
    StepBudget,
    TimeBudget,
    /// A denied action under `onRiskExceeded: Fail`.
    RiskLimitExceeded {
        step: u32,
        action: String,
        reason: String,
    },
    /// A person (or nobody, without a terminal) refused an action.
    ConfirmationRefused {
        step: u32,
        action: String,
        by: DecidedBy,
    },
    ApprovalTimeout {
        step: u32,
        action: String,
    },
    /// The brain failed and no fallback was allowed (or it failed too).
    BrainFailed {
        reason: String,
    },
    /// The workspace could not run an action.
    WorkspaceFailed {
        step: u32,
        reason: String,
    },
}

/// Which incident: namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IncidentKey {
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for IncidentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}
