//! The gate every action passes at the point of execution. Pure: the same
//! action, declared risk and policy always give the same decision.

use super::classify::{Assessment, Classifier};
use super::{RiskLevel, SecurityRisk};
use crate::crd::{OnRiskExceeded, PolicySpec};
use crate::workspace::Action;

/// The limits a gate enforces (a Policy's risk settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatePolicy {
    pub max_risk: RiskLevel,
    pub require_confirmation_for: Option<RiskLevel>,
    pub auto_confirm: bool,
    pub on_risk_exceeded: OnRiskExceeded,
}

impl From<&PolicySpec> for GatePolicy {
    fn from(spec: &PolicySpec) -> Self {
        Self {
            max_risk: spec.max_risk,
            require_confirmation_for: spec.require_confirmation_for,
            auto_confirm: spec.auto_confirm,
            on_risk_exceeded: spec.on_risk_exceeded,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Allowed because the policy confirms such actions itself.
    AutoConfirmed,
    /// Needs a human (terminal or annotation) before it runs.
    Confirm,
    /// Above the policy's maximum; never runs.
    Deny(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateDecision {
    /// max(declared, classified): what the verdict is based on.
    pub risk: SecurityRisk,
    pub classified: Assessment,
    pub declared: Option<SecurityRisk>,
    pub verdict: Verdict,
}

#[derive(Debug, Clone)]
pub struct Gate {
    classifier: Classifier,
    policy: GatePolicy,
}

impl Gate {
    pub fn new(classifier: Classifier, policy: GatePolicy) -> Self {
        Self { classifier, policy }
    }

    pub fn policy(&self) -> &GatePolicy {
        &self.policy
    }

    /// The agent may raise an action's risk, never lower it.
    pub fn decide(&self, action: &Action, declared: Option<SecurityRisk>) -> GateDecision {
        let classified = self.classifier.classify(action);
        let risk = declared.map_or(classified.risk, |d| classified.risk.max(d));
        let verdict = decide_risk(risk, &self.policy);
        GateDecision {
            risk,
            classified,
            declared,
            verdict,
        }
    }
}

/// The verdict for an effective risk; Unknown counts as High.
pub fn decide_risk(risk: SecurityRisk, policy: &GatePolicy) -> Verdict {
    let level = match risk {
        SecurityRisk::Low => RiskLevel::Low,
        SecurityRisk::Medium => RiskLevel::Medium,
        SecurityRisk::High | SecurityRisk::Unknown => RiskLevel::High,
    };
    if level > policy.max_risk {
        return Verdict::Deny(format!(
            "risk {risk} exceeds the policy's maxRisk {}",
            policy.max_risk
        ));
    }
    match policy.require_confirmation_for {
        Some(threshold) if level >= threshold => {
            if policy.auto_confirm {
                Verdict::AutoConfirmed
            } else {
                Verdict::Confirm
            }
        }
        _ => Verdict::Allow,
    }
}
