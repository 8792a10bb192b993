//! Every kind of change reaches status through [`next`], the one place
//! that turns what happened into status, Events and counts.

use super::*;
use crate::crd::conditions::{EVENT_PROVISIONING, REASON_RECORDING_FAILED, TRAJECTORY_RECORDED};
use crate::crd::{IncidentPhase, PolicySpec};
use crate::operator::fixtures::*;

fn remediating(session: &Session, actions: Vec<ActionRecord>) -> Incident {
    let mut incident = Incident::test("stale_lockfile")
        .with_phase(IncidentPhase::Remediating)
        .with_session(session)
        .build();
    incident.status.as_mut().unwrap().actions = actions;
    incident
}

#[test]
fn a_steps_outcome_is_appended_with_the_session_and_counted() {
    let mut session = session(PolicySpec::default());
    session.episode.steps = 2;
    let incident = remediating(&session, vec![action_record(1, "cat service.conf")]);
    let records = [action_record(2, "ls -la")];
    let change = Change::Steps {
        session: &session,
        records: &records,
    };

    let update = next(&incident, change, now());

    let status = update.status.expect("a step is written");
    let steps: Vec<u32> = status.actions.iter().map(|a| a.step).collect();
    assert_eq!(steps, [1, 2], "the new record follows the earlier one");
    assert_eq!(status.phase, IncidentPhase::Remediating);
    let stored: Session = serde_json::from_value(status.session.unwrap()).unwrap();
    assert_eq!(stored, session, "the session is stored as it stands");
    assert_eq!(update.actions, records, "the new step is counted once");
    assert_eq!(update.policy.as_deref(), Some("optimized"));
    assert!(update.events.is_empty());
    assert!(!update.ended);
}

#[test]
fn an_approval_request_reaches_status_and_is_announced_once() {
    let waiting = waiting_approval(session(PolicySpec::default()), 3, NOW_MS + 10_000);
    let incident = remediating(&session(PolicySpec::default()), Vec::new());
    let change = Change::Steps {
        session: &waiting,
        records: &[],
    };

    let update = next(&incident, change.clone(), now());

    let status = update.status.unwrap();
    assert_eq!(status.phase, IncidentPhase::AwaitingApproval);
    let pending = status.pending_approval.clone().expect("pending approval");
    assert_eq!(pending.step, 3);
    assert_eq!(update.events.len(), 1);
    let event = &update.events[0];
    assert_eq!(event.reason, REASON_APPROVAL_REQUESTED);
    assert!(
        event
            .message
            .contains("kubectl annotate --overwrite incident inc remediator.dev/approve=3:"),
        "{}",
        event.message
    );

    // The same wait seen again is not announced again.
    let mut already = incident.clone();
    already.status = Some(status);
    let again = next(&already, change, now());
    assert!(again.events.is_empty(), "{:?}", again.events);
}

#[test]
fn an_undo_reaches_status_with_what_it_restored_or_why_not() {
    let incident = Incident::test("stale_lockfile")
        .with_phase(IncidentPhase::Failed)
        .build();
    let restored = UndoAnswer {
        before_step: 1,
        written: vec!["service.conf".into(), "service.lock".into()],
        removed: vec!["junk".into()],
    };

    let update = next(
        &incident,
        Change::Undone {
            before_step: 1,
            answer: Ok(restored),
        },
        now(),
    );
    let undone = update.status.unwrap().undone.unwrap();
    assert_eq!(
        (undone.before_step, undone.written, undone.removed),
        (1, 2, 1)
    );

    let update = next(
        &incident,
        Change::Undone {
            before_step: 1,
            answer: Err("the sandbox is gone".into()),
        },
        now(),
    );
    let undone = update.status.unwrap().undone.unwrap();
    assert_eq!(undone.message, "the undo failed: the sandbox is gone");
    assert!(!update.ended, "an undo does not end an incident twice");
}

#[test]
fn a_plan_pins_its_session_and_an_ending_is_counted_once() {
    let session = session(PolicySpec::default());
    let incident = Incident::test("stale_lockfile").build();
    let mut provisioning = IncidentStatus {
        phase: IncidentPhase::Provisioning,
        ..IncidentStatus::default()
    };
    provisioning.message = Some("starting".into());
    let event = EventSpec {
        warning: false,
        reason: EVENT_PROVISIONING,
        message: "starting scenario stale_lockfile".into(),
    };
    let update = next(
        &incident,
        Change::Planned {
            status: Some(Box::new(provisioning)),
            pinned: Some(&session),
            events: vec![event.clone()],
        },
        now(),
    );
    let status = update.status.unwrap();
    assert_eq!(status.session, serde_json::to_value(&session).ok());
    assert_eq!(update.events, [event]);
    assert!(!update.ended);

    let remediating = remediating(&session, Vec::new());
    let resolved = IncidentStatus {
        phase: IncidentPhase::Resolved,
        ..IncidentStatus::default()
    };
    let planned = |incident: &Incident| {
        next(
            incident,
            Change::Planned {
                status: Some(Box::new(resolved.clone())),
                pinned: None,
                events: Vec::new(),
            },
            now(),
        )
    };
    assert!(
        planned(&remediating).ended,
        "Remediating -> Resolved ends it"
    );
    let already = Incident::test("stale_lockfile")
        .with_phase(IncidentPhase::Resolved)
        .build();
    assert!(
        !planned(&already).ended,
        "an ended incident is counted once"
    );

    let nothing = next(
        &incident,
        Change::Planned {
            status: None,
            pinned: None,
            events: Vec::new(),
        },
        now(),
    );
    assert_eq!(nothing.status, None, "no status: nothing is written");
}

#[test]
fn a_recording_sets_its_condition() {
    let incident = Incident::test("stale_lockfile")
        .with_phase(IncidentPhase::Resolved)
        .build();
    let update = next(
        &incident,
        Change::Recorded {
            ok: false,
            reason: REASON_RECORDING_FAILED,
            message: "configmaps is forbidden".into(),
        },
        now(),
    );
    let status = update.status.unwrap();
    let condition = status
        .conditions
        .iter()
        .find(|c| c.type_ == TRAJECTORY_RECORDED)
        .unwrap();
    assert_eq!(
        (
            condition.status.as_str(),
            condition.reason.as_str(),
            condition.message.as_str()
        ),
        ("False", REASON_RECORDING_FAILED, "configmaps is forbidden")
    );
    assert_eq!(status.phase, IncidentPhase::Resolved);
}
