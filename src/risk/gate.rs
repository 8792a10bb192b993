//! The gate every action passes at the point of execution. Pure: the same
//! step, action, declared risk and policy always give the same decision.
//! A [`Permit`] is the only thing a workspace executes: the gate issues
//! one, and the executor beside the service rebuilds it from a request
//! that carries its token ([`Permit::relayed`]).

use serde::{Deserialize, Serialize};

use super::classify::Classifier;
use super::context::Assessment;
use super::{OnRiskExceeded, RiskLevel, SecurityRisk};
use crate::action::Action;

/// The limits a gate enforces (a policy's risk settings).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GatePolicy {
    pub max_risk: RiskLevel,
    pub require_confirmation_for: Option<RiskLevel>,
    pub auto_confirm: bool,
    pub on_risk_exceeded: OnRiskExceeded,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Allowed because the policy confirms such actions itself.
    AutoConfirmed,
    /// Needs a person (terminal or annotation) before it runs.
    Confirm,
    /// Above the policy's maximum; never runs.
    Deny(String),
}

/// Who let an action run, or refused it: the audit trail's "decided by".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DecidedBy {
    /// The gate alone (allowed or denied by the policy's limits).
    Gate,
    /// The policy's `autoConfirm`.
    Policy,
    /// A person at the terminal.
    Terminal,
    /// Confirmation was needed and no one could be asked.
    NoTerminal,
    /// A person, through an approve/reject annotation.
    Annotation,
    /// A person, through a signed approve/reject link from a notice.
    Link,
    /// Nobody answered in time.
    Timeout,
}

impl DecidedBy {
    /// Whether a decision recorded as `label` (as [`Display`] writes it)
    /// was a person's (or the lack of one: a timeout): an episode so
    /// steered cannot be replayed by a rollout.
    pub fn steered_by_person(label: &str) -> bool {
        [Self::Terminal, Self::Annotation, Self::Link, Self::Timeout]
            .iter()
            .any(|by| by.to_string() == label)
    }
}

impl std::fmt::Display for DecidedBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Gate => "gate",
            Self::Policy => "policy",
            Self::Terminal => "terminal",
            Self::NoTerminal => "no-terminal",
            Self::Annotation => "annotation",
            Self::Link => "link",
            Self::Timeout => "timeout",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateDecision {
    pub step: u32,
    /// max(declared, classified): what the verdict is based on.
    pub risk: SecurityRisk,
    pub classified: Assessment,
    pub declared: Option<SecurityRisk>,
    pub verdict: Verdict,
}

/// Leave to execute one action at one step. Its fields are private, so
/// only [`Gate::permit`] issues one, and [`Permit::relayed`] rebuilds the
/// gate's permit where it crosses the wire, for a caller that presents the
/// executor's own token (a secret only the operator holds); there is no
/// other way to make one:
///
/// ```compile_fail
/// use remediator::action::Action;
/// use remediator::risk::{DecidedBy, Permit, SecurityRisk};
/// let forged = Permit {
///     step: 1,
///     action: Action::Exec("rm -rf /".into()),
///     risk: SecurityRisk::Low,
///     decided_by: DecidedBy::Gate,
/// };
/// ```
#[derive(Debug, PartialEq, Eq)]
pub struct Permit {
    step: u32,
    action: Action,
    risk: SecurityRisk,
    decided_by: DecidedBy,
}

impl Permit {
    pub fn step(&self) -> u32 {
        self.step
    }
    pub fn action(&self) -> &Action {
        &self.action
    }
    pub fn risk(&self) -> SecurityRisk {
        self.risk
    }
    pub fn decided_by(&self) -> DecidedBy {
        self.decided_by
    }

    /// The permit the operator's gate issued, as it reaches the executor
    /// beside the service over the wire: honoured only when the caller
    /// presents that executor's own token (compared in constant time), so
    /// a request that skipped the check has nothing to execute with.
    pub fn relayed(
        presented_token: &str,
        executor_token: &str,
        step: u32,
        action: Action,
        risk: SecurityRisk,
    ) -> Option<Permit> {
        crate::tokens::equal(presented_token, executor_token).then_some(Permit {
            step,
            action,
            risk,
            decided_by: DecidedBy::Gate,
        })
    }
}

/// What [`Gate::permit`] gives back when it issues no permit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ruling {
    /// Confirmation is needed and none was given.
    NeedsApproval(GateDecision),
    Denied(GateDecision),
}

#[derive(Debug, Clone)]
pub struct Gate {
    /// None: the classifier is switched off and every action counts as
    /// LOW (a containment test: the kernel sandbox alone must hold).
    classifier: Option<Classifier>,
    policy: GatePolicy,
    /// Set when the kernel sandbox is weaker than full containment and the
    /// policy did not accept that: nothing above LOW may run.
    weak_containment: Option<String>,
}

impl Gate {
    pub fn new(classifier: Classifier, policy: GatePolicy) -> Self {
        Self {
            classifier: Some(classifier),
            policy,
            weak_containment: None,
        }
    }

    /// A gate whose classifier is switched off: every action counts as
    /// LOW unless the agent declares more. Only for proving that the
    /// kernel sandbox holds on its own, so only in builds with the
    /// `classifier-off` feature (the test suite's), never in a release.
    #[cfg(feature = "classifier-off")]
    pub fn without_classifier(policy: GatePolicy) -> Self {
        Self {
            classifier: None,
            policy,
            weak_containment: None,
        }
    }

    /// Caps every action at LOW because containment is incomplete
    /// (`missing` says what the kernel could not give).
    pub fn with_weak_containment(mut self, missing: impl Into<String>) -> Self {
        self.weak_containment = Some(missing.into());
        self
    }

    pub fn policy(&self) -> &GatePolicy {
        &self.policy
    }

    /// The agent may raise an action's risk, never lower it.
    pub fn decide(
        &self,
        step: u32,
        action: &Action,
        declared: Option<SecurityRisk>,
    ) -> GateDecision {
        let classified = match &self.classifier {
            Some(classifier) => classifier.classify(action),
            None => Assessment {
                risk: SecurityRisk::Low,
                why: "classifier switched off".into(),
            },
        };
        let risk = declared.map_or(classified.risk, |d| classified.risk.max(d));
        let verdict = match &self.weak_containment {
            Some(missing) if risk > SecurityRisk::Low => Verdict::Deny(format!(
                "risk {risk} needs full containment and the sandbox lacks {missing} (the policy does not accept weaker containment)"
            )),
            _ => decide_risk(risk, &self.policy),
        };
        GateDecision {
            step,
            risk,
            classified,
            declared,
            verdict,
        }
    }

    /// A permit for `action` at `step`, decided afresh. `approved_by` is who
    /// confirmed it, when the caller asked someone; it turns a Confirm
    /// verdict into a permit and never overrides a Deny.
    pub fn permit(
        &self,
        step: u32,
        action: &Action,
        declared: Option<SecurityRisk>,
        approved_by: Option<DecidedBy>,
    ) -> Result<Permit, Ruling> {
        let decision = self.decide(step, action, declared);
        let decided_by = match (&decision.verdict, approved_by) {
            (Verdict::Allow, _) => DecidedBy::Gate,
            (Verdict::AutoConfirmed, _) => DecidedBy::Policy,
            (Verdict::Confirm, Some(who)) => who,
            (Verdict::Confirm, None) => return Err(Ruling::NeedsApproval(decision)),
            (Verdict::Deny(_), _) => return Err(Ruling::Denied(decision)),
        };
        Ok(Permit {
            step,
            action: action.clone(),
            risk: decision.risk,
            decided_by,
        })
    }
}

/// The verdict for an effective risk; Unknown counts as High.
pub fn decide_risk(risk: SecurityRisk, policy: &GatePolicy) -> Verdict {
    let level = risk.level();
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
