//! Which notices an incident owes, read from its status alone: what has
//! happened (an action waits, a wait timed out, a step was undone, the
//! incident ended), for every webhook that wants it, less what status
//! already records as sent. No I/O: a restarted operator computes the same.

use crate::crd::{IncidentPhase, IncidentStatus, MAX_STATUS_NOTICES, NoticeEvent, NotifySpec};
use crate::risk::DecidedBy;

/// Something that happened to an incident, once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Happened {
    pub event: NoticeEvent,
    pub step: Option<u32>,
    /// Tells apart two of the same event at the same step (the root put
    /// back, versus one step undone).
    pub key: String,
}

/// A notice to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// Stable across restarts: the receiver can drop a repeat by it.
    pub id: String,
    pub webhook: NotifySpec,
    pub happened: Happened,
}

/// What has happened to the incident that a notice may be about.
pub fn happened(status: &IncidentStatus) -> Vec<Happened> {
    let mut all = Vec::new();
    let mut add = |event: NoticeEvent, step: Option<u32>, key: String| {
        all.push(Happened { event, step, key })
    };
    if let (IncidentPhase::AwaitingApproval, Some(pending)) =
        (status.phase, &status.pending_approval)
    {
        add(
            NoticeEvent::ApprovalRequested,
            Some(pending.step),
            format!("approval/{}", pending.step),
        );
    }
    for action in &status.actions {
        if action.decided_by == DecidedBy::Timeout.to_string() {
            add(
                NoticeEvent::ApprovalTimedOut,
                Some(action.step),
                format!("timeout/{}", action.step),
            );
        }
        if action.rolled_back.is_some() {
            add(
                NoticeEvent::RolledBack,
                Some(action.step),
                format!("rollback/step-{}", action.step),
            );
        }
    }
    if let Some(undone) = &status.undone {
        // Counted once the sandbox has answered (or failed to).
        let finished = undone.written + undone.removed > 0 || undone.message.contains("failed");
        if finished && status.phase.is_terminal() {
            add(
                NoticeEvent::RolledBack,
                None,
                format!("rollback/root-before-{}", undone.before_step),
            );
        }
    }
    match status.phase {
        IncidentPhase::Resolved => add(NoticeEvent::Resolved, None, "resolved".into()),
        IncidentPhase::Failed => add(NoticeEvent::Failed, None, "failed".into()),
        _ => {}
    }
    all
}

/// The notice id of `happened` for one webhook of one incident.
pub fn notice_id(uid: &str, webhook: &str, happened: &Happened) -> String {
    let text = format!("{uid}/{webhook}/{}", happened.key);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    digest.as_ref()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The notices owed: each event for each webhook that wants it, unless
/// status records it or `taken` says this process is on it already. At
/// most [`MAX_STATUS_NOTICES`] about steps; the end is always announced.
pub fn due(
    uid: &str,
    status: &IncidentStatus,
    webhooks: &[NotifySpec],
    taken: impl Fn(&str) -> bool,
) -> Vec<Due> {
    let ends = |event: NoticeEvent| matches!(event, NoticeEvent::Resolved | NoticeEvent::Failed);
    let step_notices = status.notices.iter().filter(|n| !ends(n.event)).count();
    let mut room = MAX_STATUS_NOTICES.saturating_sub(step_notices);
    let mut owed = Vec::new();
    for happened in happened(status) {
        for webhook in webhooks.iter().filter(|w| w.wants(happened.event)) {
            let id = notice_id(uid, &webhook.name, &happened);
            if status.notices.iter().any(|n| n.id == id) || taken(&id) {
                continue;
            }
            if !ends(happened.event) {
                if room == 0 {
                    continue;
                }
                room -= 1;
            }
            owed.push(Due {
                id,
                webhook: webhook.clone(),
                happened: happened.clone(),
            });
        }
    }
    owed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{NoticeFormat, NoticeRecord, PendingApproval, SecretKeyRef};
    use crate::operator::fixtures::action_record;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn webhook(name: &str, events: &[NoticeEvent]) -> NotifySpec {
        NotifySpec {
            name: name.into(),
            url_secret_ref: SecretKeyRef {
                name: "hooks".into(),
                key: name.into(),
            },
            format: NoticeFormat::Generic,
            events: events.to_vec(),
        }
    }

    fn waiting(step: u32) -> IncidentStatus {
        IncidentStatus {
            phase: IncidentPhase::AwaitingApproval,
            pending_approval: Some(PendingApproval {
                step,
                kind: "exec".into(),
                command: "rm -f service.lock".into(),
                risk: crate::risk::SecurityRisk::Medium,
                reason: "MEDIUM needs confirmation".into(),
                requested_at: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
                deadline: None,
                action_hash: None,
                content: None,
                diff: None,
            }),
            ..IncidentStatus::default()
        }
    }

    #[test]
    fn each_event_is_owed_once_per_webhook_that_wants_it() {
        let hooks = [
            webhook("all", &[]),
            webhook("ends", &[NoticeEvent::Resolved, NoticeEvent::Failed]),
        ];
        let owed = due("u", &waiting(2), &hooks, |_| false);
        assert_eq!(owed.len(), 1);
        assert_eq!(
            (owed[0].webhook.name.as_str(), owed[0].happened.step),
            ("all", Some(2))
        );
        let mut resolved = waiting(2);
        resolved.phase = IncidentPhase::Resolved;
        resolved.pending_approval = None;
        let owed = due("u", &resolved, &hooks, |_| false);
        assert_eq!(owed.len(), 2);
        // Recorded in status: owed no more, after any restart.
        resolved.notices = owed
            .iter()
            .map(|d| NoticeRecord {
                id: d.id.clone(),
                webhook: d.webhook.name.clone(),
                event: d.happened.event,
                step: d.happened.step,
                delivered: false,
                attempts: 4,
                at: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
                error: Some("refused".into()),
            })
            .collect();
        assert!(due("u", &resolved, &hooks, |_| false).is_empty());
        // Taken by this process already.
        resolved.notices.clear();
        assert!(due("u", &resolved, &hooks, |_| true).is_empty());
    }

    #[test]
    fn past_the_cap_steps_go_unannounced_but_the_end_never_does() {
        let hooks = [webhook("all", &[])];
        let mut status = waiting(200);
        status.notices = (1..=MAX_STATUS_NOTICES as u32)
            .map(|step| NoticeRecord {
                id: format!("n{step}"),
                webhook: "all".into(),
                event: NoticeEvent::ApprovalRequested,
                step: Some(step),
                delivered: true,
                attempts: 1,
                at: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
                error: None,
            })
            .collect();
        assert!(due("u", &status, &hooks, |_| false).is_empty());
        status.phase = IncidentPhase::Failed;
        let owed = due("u", &status, &hooks, |_| false);
        assert_eq!(owed.len(), 1);
        assert_eq!(owed[0].happened.event, NoticeEvent::Failed);
    }

    #[test]
    fn timeouts_rollbacks_and_the_root_put_back_are_events() {
        let mut status = IncidentStatus {
            phase: IncidentPhase::Failed,
            ..IncidentStatus::default()
        };
        let mut timed_out = action_record(1, "rm x");
        timed_out.decided_by = "timeout".into();
        let mut undone = action_record(2, "echo > service.conf");
        undone.rolled_back = Some("the probe got worse".into());
        status.actions = vec![timed_out, undone];
        status.undone = Some(crate::crd::UndoReport {
            before_step: 0,
            written: 1,
            removed: 0,
            message: "onFailure: Undo".into(),
        });
        let keys: Vec<String> = happened(&status).into_iter().map(|h| h.key).collect();
        assert_eq!(
            keys,
            [
                "timeout/1",
                "rollback/step-2",
                "rollback/root-before-0",
                "failed"
            ]
        );
        // Planned but not yet done: not announced.
        status.undone.as_mut().unwrap().written = 0;
        assert_eq!(happened(&status).len(), 3);
    }

    #[test]
    fn ids_differ_by_incident_webhook_and_event() {
        let h = &happened(&waiting(1))[0];
        let id = notice_id("u", "a", h);
        assert_eq!(id, notice_id("u", "a", h));
        assert_ne!(id, notice_id("v", "a", h));
        assert_ne!(id, notice_id("u", "b", h));
        assert_ne!(id, notice_id("u", "a", &happened(&waiting(2))[0]));
    }
}
