//! Risk: levels, the deterministic classifier of actions, and the gate that
//! decides whether an action may run under a Policy.

mod classify;
mod commands;
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

pub use classify::{Assessment, Classifier};
pub use gate::{Gate, GateDecision, GatePolicy, Verdict, decide_risk};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The risk of one action, lowest first. `Unknown` is what cannot be
/// classified; it ranks above `High` and the gate treats it as `High`.
// Declared in rising order: the derived `Ord` is the ranking, so the
// effective risk of two is `.max()`.
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

/// A risk limit in a Policy: there is no `Unknown` limit.
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
