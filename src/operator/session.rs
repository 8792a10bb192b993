//! One incident's session on the operator's side: the episode and
//! everything pinned when it started (the Policy as it was, the task, the
//! root the classifier judges against, what the sandbox could contain), so
//! an edited Policy never changes a running incident and a restarted
//! operator rebuilds the same gate.

use serde::{Deserialize, Serialize};

use crate::agent::episode::{Episode, Waiting};
use crate::crd::PolicySpec;
use crate::protocol::{BrainSettings, Next, Task};
use crate::risk::{Classifier, Gate, GatePolicy, RiskLevel};
use crate::sandbox::Containment;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub episode: Episode,
    pub task: Task,
    /// The Policy's spec as it was when the incident started.
    pub policy: PolicySpec,
    pub policy_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_generation: Option<i64>,
    /// The service root as the sandbox sees it (what paths are judged by).
    pub root: String,
    /// A tightening from the `remediator.dev/max-risk` annotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_risk: Option<RiskLevel>,
    /// What the sandbox beside the service could contain.
    pub containment: Containment,
}

impl Session {
    /// The gate for this incident: the pinned Policy, tightened by an
    /// annotation, capped at LOW under weak containment the Policy does not
    /// accept.
    pub fn gate(&self) -> Gate {
        let mut policy = GatePolicy::from(&self.policy);
        if let Some(tighter) = self.max_risk {
            policy.max_risk = policy.max_risk.min(tighter);
        }
        let gate = Gate::new(Classifier::new(&self.root, self.task.expected_port), policy);
        if self.containment.is_full() || self.policy.accept_weak_containment {
            gate
        } else {
            gate.with_weak_containment(self.containment.missing_names())
        }
    }

    pub fn brain_settings(&self) -> BrainSettings {
        BrainSettings {
            kind: self.policy.brain,
            llm: self.policy.llm.clone(),
            allow_fallback: self.policy.allow_fallback,
        }
    }

    /// What the agent should do now, given where the episode stands.
    pub fn next(&self) -> Next {
        let next_step = self.episode.steps + 1;
        match &self.episode.waiting {
            Waiting::Proposal => Next::Propose {
                step: next_step,
                role: if self.episode.fallback_reason.is_some() {
                    crate::protocol::BrainRole::Fallback
                } else {
                    crate::protocol::BrainRole::Primary
                },
            },
            Waiting::Approval(approval) => Next::Wait {
                step: approval.step,
                retry_after_ms: 1000,
                reason: format!(
                    "step {} waits for remediator.dev/approve={} or reject={}",
                    approval.step, approval.step, approval.step
                ),
            },
            Waiting::Execution(execution) => Next::Wait {
                step: execution.step,
                retry_after_ms: 250,
                reason: format!("step {} is executing", execution.step),
            },
            Waiting::Nothing { end } => Next::Done { end: end.clone() },
        }
    }
}

/// The approval an Incident's episode waits on, with the action exactly as
/// it would run (status's `pendingApproval` shows it bounded): what a
/// person is shown before answering through a link or MCP.
pub fn waiting_approval(
    incident: &crate::crd::Incident,
) -> Option<crate::agent::episode::Approval> {
    let session = incident.status.as_ref()?.session.clone()?;
    let session: Session = serde_json::from_value(session).ok()?;
    match session.episode.waiting {
        crate::agent::episode::Waiting::Approval(approval) => Some(approval),
        _ => None,
    }
}
