//! Risk levels of agent actions and the limits a Policy sets on them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The risk of one action. `Unknown` is what cannot be classified; the gate
/// treats it as `High`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum SecurityRisk {
    Unknown,
    Low,
    Medium,
    High,
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
