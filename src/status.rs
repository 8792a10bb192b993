//! The Incident status as a pure function of what is known: the episode,
//! its records, the fault seen before, the probe after, the containment.
//! The phase follows from the facts; conditions are merged by type, and
//! their `lastTransitionTime` moves only when their status really changes.
//! The local runner and the operator build status the same way.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::action::truncate_chars;
use crate::agent::episode::{Episode, Waiting};
use crate::crd::conditions::*;
use crate::crd::{
    ActionRecord, AgentInfo, Decision, IncidentPhase, IncidentStatus, MAX_STATUS_ACTIONS,
    OmittedActions, PendingApproval, UndoReport, Verification,
};
use crate::protocol::EpisodeEnd;
use crate::sandbox::Containment;

/// The fault as the probe saw it before the agent started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultObservation {
    pub present: bool,
    pub detail: String,
}

/// The incident stopped before (or outside) the episode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: &'static str,
    pub message: String,
}

/// Everything a status is built from.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub generation: Option<i64>,
    pub now: Time,
    pub started_at: Time,
    pub fault: Option<&'a FaultObservation>,
    pub episode: Option<&'a Episode>,
    /// Every step's record, oldest first (status keeps the newest).
    pub records: &'a [ActionRecord],
    /// The controller's probe after the episode, with its detail.
    pub verification: Option<&'a (Verification, String)>,
    pub failure: Option<&'a Failure>,
    pub agent: AgentInfo,
    pub containment: Option<&'a Containment>,
    /// What was restored after the episode, if anything.
    pub undone: Option<&'a UndoReport>,
}

/// Most characters of a waiting write's content shown in status.
const MAX_PENDING_CONTENT: usize = 2000;

pub fn build(previous: &IncidentStatus, facts: &Facts<'_>) -> IncidentStatus {
    let mut conditions = previous.conditions.clone();
    let mut set = |type_: &str, ok: bool, reason: &str, message: String| {
        set_condition(
            &mut conditions,
            type_,
            ok,
            reason,
            message,
            &facts.now,
            facts.generation,
        )
    };
    if let Some(fault) = facts.fault {
        let reason = if fault.present {
            REASON_FAULT_OBSERVED
        } else {
            REASON_HEALTHY_BEFORE_AGENT
        };
        set(FAULT_PRESENT, fault.present, reason, fault.detail.clone());
    }
    if let Some(containment) = facts.containment {
        let reason = if containment.is_full() {
            REASON_FULL_CONTAINMENT
        } else {
            REASON_WEAK_CONTAINMENT
        };
        set(
            CONTAINED,
            containment.is_full(),
            reason,
            containment.summary(),
        );
    }
    let pending = facts.episode.and_then(|e| match &e.waiting {
        Waiting::Approval(approval) => Some(approval),
        _ => None,
    });
    match pending {
        Some(approval) => set(AWAITING_APPROVAL, true, REASON_APPROVAL_REQUESTED, {
            let value = crate::crd::answer_value(approval.step, &approval.action.digest());
            format!(
                "step {}: {} [{}] waits for remediator.dev/approve={value} or reject={value}",
                approval.step,
                approval.action.summary(),
                approval.risk,
            )
        }),
        None if has_condition(previous, AWAITING_APPROVAL) => set(
            AWAITING_APPROVAL,
            false,
            "Answered",
            "no action is waiting for approval".into(),
        ),
        None => {}
    }
    if let Some((verification, detail)) = facts.verification {
        let reason = if verification.healthy {
            REASON_RESOLVED
        } else {
            "ProbeFailed"
        };
        set(
            VERIFIED_HEALTHY,
            verification.healthy,
            reason,
            detail.clone(),
        );
    }

    let (phase, reason, message) = phase_of(facts);
    let (actions, actions_omitted) = bound_actions(facts.records, MAX_STATUS_ACTIONS);
    let mut agent = facts.agent.clone();
    if let Some(episode) = facts.episode {
        let tokens = episode.tokens();
        if tokens.prompt + tokens.completion > 0 {
            agent.tokens = Some(tokens);
        }
        agent.tool_call_format = tokens.tool_call_format().map(str::to_string);
        if let Some(why) = &episode.fallback_reason {
            agent.fallback_used = true;
            agent.fallback_reason = Some(why.clone());
        }
    }
    let resolved = phase == IncidentPhase::Resolved;
    IncidentStatus {
        phase,
        reason: reason.map(str::to_string),
        message,
        conditions,
        observed_generation: facts.generation,
        steps: facts
            .episode
            .map_or(facts.records.len() as u32, |e| e.steps),
        actions,
        actions_omitted,
        max_risk_seen: facts
            .episode
            .and_then(|e| e.max_risk_seen)
            .or_else(|| facts.records.iter().map(|r| r.risk).max()),
        pending_approval: pending.map(|approval| PendingApproval {
            step: approval.step,
            kind: approval.action.kind().to_string(),
            command: approval.action.summary(),
            risk: approval.risk,
            reason: approval.reason.clone(),
            requested_at: time_from_ms(approval.requested_at_ms),
            deadline: Some(time_from_ms(approval.deadline_ms)),
            action_hash: Some(approval.action.digest()),
            content: match &approval.action {
                crate::action::Action::WriteFile { content, .. } => {
                    Some(truncate_chars(content, MAX_PENDING_CONTENT))
                }
                _ => None,
            },
            diff: approval.preview.clone(),
        }),
        verified: facts.verification.map(|(v, _)| v.clone()),
        agent: Some(agent),
        undone: facts.undone.cloned(),
        // The operator's episode state is carried over; its writer sets it.
        session: previous.session.clone(),
        // Set once by whoever knows the trace (the operator, a local run).
        trace_id: previous.trace_id.clone(),
        // Delivered by the operator's notifier, which records each.
        notices: previous.notices.clone(),
        sandbox: facts.containment.map(Containment::summary),
        started_at: Some(facts.started_at.clone()),
        resolved_at: resolved.then(|| facts.now.clone()),
        time_to_resolve_seconds: resolved.then(|| seconds_between(&facts.started_at, &facts.now)),
    }
}

fn has_condition(status: &IncidentStatus, type_: &str) -> bool {
    status.conditions.iter().any(|c| c.type_ == type_)
}

/// The phase, reason and message the facts add up to.
fn phase_of(facts: &Facts<'_>) -> (IncidentPhase, Option<&'static str>, Option<String>) {
    if let Some(failure) = facts.failure {
        return (
            IncidentPhase::Failed,
            Some(failure.reason),
            Some(failure.message.clone()),
        );
    }
    let Some(episode) = facts.episode else {
        return (IncidentPhase::Provisioning, None, None);
    };
    let end = match &episode.waiting {
        Waiting::Approval(_) => return (IncidentPhase::AwaitingApproval, None, None),
        Waiting::Proposal | Waiting::Execution(_) => {
            return (IncidentPhase::Remediating, None, None);
        }
        Waiting::Nothing { end } => end,
    };
    let Some((verification, detail)) = facts.verification else {
        return (IncidentPhase::Verifying, None, None);
    };
    let (phase, reason, message) = outcome(end, verification.healthy, facts.records, detail);
    (phase, Some(reason), Some(message))
}

/// How an ended episode and the probe decide the incident. Only the probe
/// can resolve it; a gate failure or a refusal fails it whatever the probe
/// says, and an unhealthy end names the action that was blocked, if any.
pub fn outcome(
    end: &EpisodeEnd,
    healthy: bool,
    records: &[ActionRecord],
    probe_detail: &str,
) -> (IncidentPhase, &'static str, String) {
    use IncidentPhase::{Failed, Resolved};
    match end {
        EpisodeEnd::RiskLimitExceeded {
            step,
            action,
            reason,
        } => (
            Failed,
            REASON_RISK_LIMIT_EXCEEDED,
            format!(
                "step {step} `{action}` was {reason}, and the policy fails the incident on that (onRiskExceeded: Fail)"
            ),
        ),
        EpisodeEnd::ConfirmationRefused { step, action, by } => (
            Failed,
            REASON_CONFIRMATION_REFUSED,
            format!("step {step} `{action}` needed confirmation and was refused ({by})"),
        ),
        EpisodeEnd::ApprovalTimeout { step, action } => (
            Failed,
            REASON_APPROVAL_TIMEOUT,
            format!("step {step} `{action}` waited for approval and nobody answered in time"),
        ),
        EpisodeEnd::BrainFailed { reason } => (Failed, REASON_LLM_UNAVAILABLE, reason.clone()),
        EpisodeEnd::WorkspaceFailed { step, reason } => (
            Failed,
            REASON_SANDBOX_UNAVAILABLE,
            format!("step {step} could not run: {reason}"),
        ),
        _ if healthy => (Resolved, REASON_RESOLVED, probe_detail.to_string()),
        end => {
            let blocked = records
                .iter()
                .rev()
                .find(|r| matches!(r.decision, Decision::Denied | Decision::Rejected));
            if let Some(blocked) = blocked {
                let why = blocked.reason.as_deref().unwrap_or("refused");
                let reason = if blocked.decision == Decision::Denied {
                    REASON_RISK_LIMIT_EXCEEDED
                } else {
                    REASON_CONFIRMATION_REFUSED
                };
                return (
                    Failed,
                    reason,
                    format!(
                        "step {} `{}` was not allowed to run ({why}); the service is still unhealthy: {probe_detail}",
                        blocked.step, blocked.command
                    ),
                );
            }
            match end {
                EpisodeEnd::Claimed { summary } => (
                    Failed,
                    REASON_CLAIM_NOT_VERIFIED,
                    format!("the agent claimed \"{summary}\" but {probe_detail}"),
                ),
                _ => (
                    Failed,
                    REASON_BUDGET_EXHAUSTED,
                    format!(
                        "the agent's budget ran out and the service is not healthy: {probe_detail}"
                    ),
                ),
            }
        }
    }
}

/// The newest `max` records, and a summary of the older ones dropped.
pub fn bound_actions(
    records: &[ActionRecord],
    max: usize,
) -> (Vec<ActionRecord>, Option<OmittedActions>) {
    let dropped = records.len().saturating_sub(max);
    if dropped == 0 {
        return (records.to_vec(), None);
    }
    let (old, kept) = records.split_at(dropped);
    let count = |d: Decision| old.iter().filter(|r| r.decision == d).count() as u32;
    let summary = OmittedActions {
        count: dropped as u32,
        first_step: old.first().map_or(0, |r| r.step),
        last_step: old.last().map_or(0, |r| r.step),
        denied: count(Decision::Denied),
        rejected: count(Decision::Rejected),
        max_risk: old.iter().map(|r| r.risk).max(),
    };
    (kept.to_vec(), Some(summary))
}

/// Sets a condition by type. Its `lastTransitionTime` changes only when
/// its status does; reason and message are updated either way.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
    now: &Time,
    generation: Option<i64>,
) {
    let status = if ok { "True" } else { "False" }.to_string();
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) => {
            if existing.status != status {
                existing.status = status;
                existing.last_transition_time = now.clone();
            }
            existing.reason = reason.to_string();
            existing.message = message;
            existing.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: type_.to_string(),
            status,
            reason: reason.to_string(),
            message,
            last_transition_time: now.clone(),
            observed_generation: generation,
        }),
    }
}

pub fn time_from_ms(ms: u64) -> Time {
    let millis = i64::try_from(ms).unwrap_or(i64::MAX);
    Time(
        k8s_openapi::jiff::Timestamp::from_millisecond(millis)
            .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
    )
}

fn seconds_between(from: &Time, to: &Time) -> f64 {
    let millis = to.0.as_millisecond() - from.0.as_millisecond();
    millis.max(0) as f64 / 1000.0
}

#[cfg(test)]
mod tests;
