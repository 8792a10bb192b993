//! Risk: levels, the deterministic classifier of actions, and the gate that
//! decides whether an action may run under a policy. Pure and self-contained:
//! it owns its policy types (the CRDs convert into them) and imports only the
//! action vocabulary.

mod classify;
mod commands;
mod context;
mod expand;
mod flags;
mod gate;
mod paths;
mod shell;
mod walk;

#[cfg(test)]
mod honest;
#[cfg(test)]
mod redteam;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tracking;

pub use classify::Classifier;
pub use context::Assessment;
pub use gate::{DecidedBy, Gate, GateDecision, GatePolicy, Permit, Ruling, Verdict, decide_risk};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The risk of one action. `Unknown` is what cannot be classified; it ranks
/// above `High` by declaration order, so `Ord` and `max` treat it as the
/// worst by construction.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum SecurityRisk {
    Low,
    Medium,
    High,
    Unknown,
}

/// A risk limit in a policy: there is no `Unknown` limit.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
    clap::ValueEnum,
)]
#[serde(rename_all = "UPPERCASE")]
#[value(rename_all = "UPPERCASE")]
pub enum RiskLevel {
    Low,
    #[default]
    Medium,
    High,
}

/// What an action above the policy's maximum risk does to the incident.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum OnRiskExceeded {
    /// Refuse the action and tell the agent; the episode goes on.
    #[default]
    Deny,
    /// Fail the incident with reason RiskLimitExceeded.
    Fail,
}

impl SecurityRisk {
    /// The limit this risk is judged against; Unknown counts as High.
    pub fn level(self) -> RiskLevel {
        match self {
            Self::Low => RiskLevel::Low,
            Self::Medium => RiskLevel::Medium,
            Self::High | Self::Unknown => RiskLevel::High,
        }
    }
}

impl std::fmt::Display for SecurityRisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Unknown => "UNKNOWN",
            Self::Low => "LOW",
            Self::Medium => "MEDIUM",
            Self::High => "HIGH",
        })
    }
}

impl std::fmt::Display for RiskLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Low => "LOW",
            Self::Medium => "MEDIUM",
            Self::High => "HIGH",
        })
    }
}
