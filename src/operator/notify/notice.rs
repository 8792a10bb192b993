//! What a notice says, in one screen: the incident, its scenario and
//! Policy, the action waiting (kind, command or path, risk, the
//! classifier's reason, what a write would put), the steps so far and the
//! links. Every text taken from status passes the redactor first; no
//! observation is ever included.

use serde_json::{Value, json};

use super::due::Due;
use crate::crd::{Incident, IncidentStatus, NoticeEvent, NoticeFormat};
use crate::redact::Redactor;

/// The answers a person can give from a notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Links {
    pub approve: String,
    pub reject: String,
}

/// The actions a notice lists (the newest).
const RECENT_ACTIONS: usize = 5;

/// The body to POST for `due` about `incident`.
pub fn body(incident: &Incident, due: &Due, links: Option<&Links>, redactor: &Redactor) -> Value {
    let generic = generic(incident, due, links, redactor);
    match due.webhook.format {
        NoticeFormat::Generic => generic,
        NoticeFormat::Slack => slack(&generic),
    }
}

fn status_of(incident: &Incident) -> IncidentStatus {
    incident.status.clone().unwrap_or_default()
}

/// The documented generic JSON (docs/oncall.md).
fn generic(incident: &Incident, due: &Due, links: Option<&Links>, redactor: &Redactor) -> Value {
    let status = status_of(incident);
    let clean = |text: &str| redactor.redact(text);
    let name = incident.metadata.name.clone().unwrap_or_default();
    let namespace = incident.metadata.namespace.clone().unwrap_or_default();
    let recent: Vec<Value> = status
        .actions
        .iter()
        .rev()
        .take(RECENT_ACTIONS)
        .rev()
        .map(|a| {
            json!({
                "step": a.step,
                "kind": a.kind,
                "command": clean(&a.command),
                "risk": a.risk.to_string(),
                "decision": format!("{:?}", a.decision),
                "decidedBy": a.decided_by,
            })
        })
        .collect();
    let waiting = (due.happened.event == NoticeEvent::ApprovalRequested)
        .then_some(status.pending_approval.as_ref())
        .flatten()
        .map(|p| {
            json!({
                "step": p.step,
                "kind": p.kind,
                "command": clean(&p.command),
                "risk": p.risk.to_string(),
                "reason": clean(&p.reason),
                "content": p.content.as_deref().map(clean),
                "actionHash": p.action_hash,
                "deadline": p.deadline.as_ref().map(|t| t.0.to_string()),
                "kubectl": {
                    "approve": format!("kubectl annotate -n {namespace} incident {name} remediator.dev/approve={}", p.step),
                    "reject": format!("kubectl annotate -n {namespace} incident {name} remediator.dev/reject={}", p.step),
                },
            })
        });
    let step_action = due.happened.step.and_then(|step| {
        status
            .actions
            .iter()
            .find(|a| a.step == step)
            .map(|a| (a.kind.clone(), clean(&a.command)))
    });
    json!({
        "id": due.id,
        "event": due.happened.event.name(),
        "step": due.happened.step,
        "text": clean(&summary(incident, &status, due, step_action.as_ref())),
        "incident": {
            "namespace": namespace,
            "name": name,
            "uid": incident.metadata.uid,
            "scenario": incident.spec.scenario,
            "policy": incident.spec.policy_ref.name,
            "phase": status.phase.name(),
            "reason": status.reason,
            "message": status.message.as_deref().map(clean),
            "steps": status.steps,
            "traceId": status.trace_id,
        },
        "action": waiting,
        "recentActions": recent,
        "links": links.map(|l| json!({"approve": l.approve, "reject": l.reject})),
    })
}

/// One line a person reads first.
fn summary(
    incident: &Incident,
    status: &IncidentStatus,
    due: &Due,
    step_action: Option<&(String, String)>,
) -> String {
    let name = format!(
        "{}/{}",
        incident.metadata.namespace.as_deref().unwrap_or_default(),
        incident.metadata.name.as_deref().unwrap_or_default()
    );
    let scenario = &incident.spec.scenario;
    let action = |step: Option<u32>| match (step, step_action) {
        (Some(step), Some((kind, command))) => format!("step {step} ({kind} `{command}`)"),
        (Some(step), None) => format!("step {step}"),
        (None, _) => "its root".into(),
    };
    match due.happened.event {
        NoticeEvent::ApprovalRequested => match &status.pending_approval {
            Some(p) => format!(
                "Incident {name} ({scenario}) waits for approval: step {} {} `{}` [{}]: {}",
                p.step, p.kind, p.command, p.risk, p.reason
            ),
            None => format!("Incident {name} ({scenario}) waits for approval"),
        },
        NoticeEvent::ApprovalTimedOut => format!(
            "Incident {name} ({scenario}): nobody answered {} in time",
            action(due.happened.step)
        ),
        NoticeEvent::RolledBack => format!(
            "Incident {name} ({scenario}): {} was put back as it was",
            action(due.happened.step)
        ),
        NoticeEvent::Resolved => format!(
            "Incident {name} ({scenario}) resolved in {} steps, verified healthy by the operator's probe",
            status.steps
        ),
        NoticeEvent::Failed => format!(
            "Incident {name} ({scenario}) failed after {} steps: {}: {}",
            status.steps,
            status.reason.as_deref().unwrap_or("Failed"),
            status.message.as_deref().unwrap_or("")
        ),
    }
}

/// Slack's incoming-webhook message: the summary as text (what
/// notifications show), blocks for the action and buttons for the links.
fn slack(generic: &Value) -> Value {
    let text = generic["text"].as_str().unwrap_or_default();
    let incident = &generic["incident"];
    let mut blocks = vec![
        json!({"type": "section", "text": {"type": "mrkdwn", "text": mrkdwn(text)}}),
        json!({"type": "context", "elements": [{"type": "mrkdwn", "text": mrkdwn(&format!(
            "{} · scenario {} · policy {} · {} · {} steps",
            incident["namespace"].as_str().unwrap_or_default(),
            incident["scenario"].as_str().unwrap_or_default(),
            incident["policy"].as_str().unwrap_or_default(),
            incident["phase"].as_str().unwrap_or_default(),
            incident["steps"],
        ))}]}),
    ];
    if let Some(action) = generic["action"].as_object() {
        let mut detail = format!(
            "*{}* `{}` · risk *{}*\n{}",
            action["kind"].as_str().unwrap_or_default(),
            action["command"].as_str().unwrap_or_default(),
            action["risk"].as_str().unwrap_or_default(),
            action["reason"].as_str().unwrap_or_default(),
        );
        if let Some(content) = action["content"].as_str() {
            detail.push_str(&format!(
                "\nWould write:\n```{}```",
                truncate(content, 1500)
            ));
        }
        if let Some(kubectl) = action["kubectl"]["approve"].as_str() {
            detail.push_str(&format!("\nOr: `{kubectl}`"));
        }
        blocks
            .push(json!({"type": "section", "text": {"type": "mrkdwn", "text": mrkdwn(&detail)}}));
    }
    if let Some(links) = generic["links"].as_object() {
        blocks.push(json!({"type": "actions", "elements": [
            {"type": "button", "style": "primary", "text": {"type": "plain_text", "text": "Approve…"},
             "url": links["approve"], "action_id": "approve"},
            {"type": "button", "style": "danger", "text": {"type": "plain_text", "text": "Reject…"},
             "url": links["reject"], "action_id": "reject"},
        ]}));
    }
    json!({"text": mrkdwn(text), "blocks": blocks})
}

/// Slack's mrkdwn escapes: `&`, `<` and `>` only.
fn mrkdwn(text: &str) -> String {
    truncate(text, 2900)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn truncate(text: &str, chars: usize) -> String {
    crate::action::truncate_chars(text, chars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{
        IncidentPhase, IncidentSpec, NotifySpec, PendingApproval, PolicyRef, SecretKeyRef,
    };
    use crate::operator::notify::due::due;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn incident(format: NoticeFormat) -> (Incident, Due) {
        let mut incident = Incident::new(
            "checkout",
            IncidentSpec {
                scenario: "stale_lockfile".into(),
                policy_ref: PolicyRef {
                    name: "careful".into(),
                },
            },
        );
        incident.metadata.namespace = Some("prod".into());
        incident.metadata.uid = Some("u-1".into());
        incident.status = Some(IncidentStatus {
            phase: IncidentPhase::AwaitingApproval,
            steps: 2,
            pending_approval: Some(PendingApproval {
                step: 2,
                kind: "write_file".into(),
                command: "service.conf".into(),
                risk: crate::risk::SecurityRisk::Medium,
                reason: "a write inside the root".into(),
                requested_at: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
                deadline: None,
                action_hash: Some("ab".repeat(32)),
                content: Some("API_KEY=sk-live-0123456789abcdef0123\nport=8080\n".into()),
            }),
            ..IncidentStatus::default()
        });
        let webhook = NotifySpec {
            name: "oncall".into(),
            url_secret_ref: SecretKeyRef {
                name: "hooks".into(),
                key: "url".into(),
            },
            format,
            events: vec![],
        };
        let owed = due("u-1", incident.status.as_ref().unwrap(), &[webhook], |_| {
            false
        });
        (incident, owed.into_iter().next().unwrap())
    }

    fn links() -> Links {
        Links {
            approve: "https://ops.example/approvals/prod/checkout/a.b".into(),
            reject: "https://ops.example/approvals/prod/checkout/c.d".into(),
        }
    }

    #[test]
    fn the_generic_notice_has_the_action_links_and_no_secret() {
        let (incident, due) = incident(NoticeFormat::Generic);
        let body = body(&incident, &due, Some(&links()), &Redactor::new(&[], &[]));
        assert_eq!(body["event"], "ApprovalRequested");
        assert_eq!(body["id"], due.id.as_str());
        assert_eq!(body["action"]["step"], 2);
        assert_eq!(body["action"]["risk"], "MEDIUM");
        assert_eq!(body["links"]["approve"], links().approve.as_str());
        assert_eq!(
            body["action"]["kubectl"]["approve"],
            "kubectl annotate -n prod incident checkout remediator.dev/approve=2"
        );
        let text = body.to_string();
        assert!(!text.contains("sk-live-0123456789abcdef0123"), "{text}");
        assert!(text.contains("port=8080"), "{text}");
    }

    #[test]
    fn the_slack_notice_has_buttons_and_escapes_markup() {
        let (mut incident, due) = incident(NoticeFormat::Slack);
        incident
            .status
            .as_mut()
            .unwrap()
            .pending_approval
            .as_mut()
            .unwrap()
            .reason = "<!channel> & more".into();
        let body = body(&incident, &due, Some(&links()), &Redactor::new(&[], &[]));
        let blocks = body["blocks"].as_array().unwrap();
        let buttons = &blocks.last().unwrap()["elements"];
        assert_eq!(buttons[0]["url"], links().approve.as_str());
        assert_eq!(buttons[1]["url"], links().reject.as_str());
        let text = body.to_string();
        assert!(!text.contains("<!channel>"), "{text}");
        assert!(text.contains("&lt;!channel&gt; &amp; more"), "{text}");
        // Without links, no buttons, and the kubectl command instead.
        let body = super::body(&incident, &due, None, &Redactor::new(&[], &[]));
        assert!(
            body["blocks"]
                .as_array()
                .unwrap()
                .iter()
                .all(|b| b["type"] != "actions")
        );
        assert!(body.to_string().contains("remediator.dev/approve=2"));
    }
}
