//! What the MCP tools and resources show of Incidents and Policies: plain
//! JSON built from the objects, without the operator's opaque session, with
//! every text that came from a service or an agent through the redactor.

use serde_json::{Value, json};

use crate::crd::{Incident, Policy};
use crate::redact::Redactor;

fn redactor() -> Redactor {
    Redactor::new(&[], &[])
}

fn id(incident: &Incident) -> (String, String) {
    (
        incident.metadata.namespace.clone().unwrap_or_default(),
        incident.metadata.name.clone().unwrap_or_default(),
    )
}

/// One line of `list_incidents`.
pub fn incident_row(incident: &Incident) -> Value {
    let (namespace, name) = id(incident);
    let status = incident.status.clone().unwrap_or_default();
    json!({
        "namespace": namespace,
        "name": name,
        "scenario": incident.spec.scenario,
        "policy": incident.spec.policy_ref.name,
        "phase": status.phase.name(),
        "steps": status.steps,
        "healthy": status.verified.as_ref().map(|v| v.healthy),
        "waitingStep": status.pending_approval.as_ref().map(|p| p.step),
        "reason": status.reason,
    })
}

/// `get_incident`: the status as users read it (no session, no raw
/// observations), redacted.
pub fn incident_detail(incident: &Incident) -> Value {
    let (namespace, name) = id(incident);
    let mut status = incident.status.clone().unwrap_or_default();
    status.session = None;
    let mut value = json!({
        "namespace": namespace,
        "name": name,
        "uid": incident.metadata.uid,
        "spec": incident.spec,
        "status": status,
    });
    redact_strings(&mut value, &redactor());
    value
}

/// `pending_approval`: the action waiting, and how to answer it; None when
/// nothing waits.
pub fn pending(incident: &Incident) -> Option<Value> {
    let (namespace, name) = id(incident);
    let status = incident.status.as_ref()?;
    let pending = status
        .pending_approval
        .as_ref()
        .filter(|_| !status.phase.is_terminal())?;
    let mut value = json!({
        "namespace": namespace,
        "name": name,
        "step": pending.step,
        "kind": pending.kind,
        "command": pending.command,
        "risk": pending.risk.to_string(),
        "reason": pending.reason,
        "content": pending.content,
        "actionHash": pending.action_hash,
        "requestedAt": pending.requested_at.0.to_string(),
        "deadline": pending.deadline.as_ref().map(|d| d.0.to_string()),
        "stepsSoFar": status.steps,
        "answer": {
            "approve": format!("kubectl annotate -n {namespace} incident {name} remediator.dev/approve={}", pending.step),
            "reject": format!("kubectl annotate -n {namespace} incident {name} remediator.dev/reject={}", pending.step),
        },
    });
    redact_strings(&mut value, &redactor());
    Some(value)
}

/// `trajectory`: every action the status keeps, with who decided, and the
/// notices sent.
pub fn trajectory(incident: &Incident) -> Value {
    let (namespace, name) = id(incident);
    let status = incident.status.clone().unwrap_or_default();
    let mut value = json!({
        "namespace": namespace,
        "name": name,
        "phase": status.phase.name(),
        "steps": status.steps,
        "actions": status.actions,
        "actionsOmitted": status.actions_omitted,
        "verified": status.verified,
        "notices": status.notices,
        "traceId": status.trace_id,
    });
    redact_strings(&mut value, &redactor());
    value
}

/// One line of `list_policies`: how the agent works and how it scored.
pub fn policy_row(policy: &Policy) -> Value {
    let spec = &policy.spec;
    json!({
        "namespace": policy.metadata.namespace,
        "name": policy.metadata.name,
        "brain": spec.brain.label(),
        "model": spec.llm.as_ref().map(|l| l.model.clone()),
        "hintVersion": spec.hint_version,
        "maxRisk": spec.max_risk.to_string(),
        "requireConfirmationFor": spec.require_confirmation_for.map(|r| r.to_string()),
        "maxSteps": spec.max_steps,
        "notify": spec.notify.iter().map(|n| n.name.clone()).collect::<Vec<_>>(),
        "status": policy.status,
    })
}

/// The scorecard: each Policy's outcomes, as `kubectl get policies` shows.
pub fn scorecard(policies: &[Policy]) -> Value {
    let rows: Vec<Value> = policies
        .iter()
        .map(|p| {
            let status = p.status.clone().unwrap_or_default();
            json!({
                "namespace": p.metadata.namespace,
                "policy": p.metadata.name,
                "brain": p.spec.brain.label(),
                "resolved": status.resolved,
                "failed": status.failed,
                "running": status.running,
                "fixRate": status.fix_rate,
                "meanSteps": status.mean_steps,
                "p95TimeToResolveSeconds": status.p95_time_to_resolve_seconds,
            })
        })
        .collect();
    json!({ "policies": rows })
}

fn redact_strings(value: &mut Value, redactor: &Redactor) {
    match value {
        Value::String(text) => *text = redactor.redact(text),
        Value::Array(items) => items.iter_mut().for_each(|v| redact_strings(v, redactor)),
        Value::Object(map) => map.values_mut().for_each(|v| redact_strings(v, redactor)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{IncidentPhase, IncidentStatus, PendingApproval};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn waiting() -> Incident {
        let mut incident = Incident::test("stale_lockfile")
            .named("shop", "checkout")
            .build();
        incident.status = Some(IncidentStatus {
            phase: IncidentPhase::AwaitingApproval,
            steps: 3,
            message: Some("probe said TOKEN=ghp_0123456789abcdefghijklmnopqrstuvwxyzAB".into()),
            session: Some(json!({"episode": "opaque"})),
            pending_approval: Some(PendingApproval {
                step: 3,
                kind: "exec".into(),
                command: "rm -f service.lock".into(),
                risk: crate::risk::SecurityRisk::Medium,
                reason: "a change inside the root".into(),
                requested_at: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
                deadline: None,
                action_hash: Some("ab".repeat(32)),
                content: None,
            }),
            ..IncidentStatus::default()
        });
        incident
    }

    #[test]
    fn a_pending_approval_says_what_and_how_to_answer() {
        let pending = pending(&waiting()).unwrap();
        assert_eq!(pending["step"], 3);
        assert_eq!(pending["risk"], "MEDIUM");
        assert_eq!(
            pending["answer"]["approve"],
            "kubectl annotate -n shop incident checkout remediator.dev/approve=3"
        );
        let mut done = waiting();
        done.status.as_mut().unwrap().phase = IncidentPhase::Resolved;
        assert!(super::pending(&done).is_none());
    }

    #[test]
    fn details_drop_the_session_and_redact_secrets() {
        let detail = incident_detail(&waiting()).to_string();
        assert!(!detail.contains("opaque"), "{detail}");
        assert!(
            !detail.contains("ghp_0123456789abcdefghijklmnopqrstuvwxyzAB"),
            "{detail}"
        );
        assert_eq!(incident_row(&waiting())["waitingStep"], 3);
    }
}
