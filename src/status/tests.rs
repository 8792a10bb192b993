use k8s_openapi::jiff::Timestamp;

use super::*;
use crate::action::Action;
use crate::agent::episode::{Approval, EpisodeConfig};
use crate::risk::SecurityRisk;

fn at(seconds: i64) -> Time {
    Time(Timestamp::from_second(1_800_000_000 + seconds).unwrap())
}

fn record(step: u32, decision: Decision) -> ActionRecord {
    ActionRecord {
        step,
        kind: "exec".into(),
        command: format!("cmd {step}"),
        declared_risk: None,
        risk: SecurityRisk::Medium,
        decision,
        decided_by: "gate".into(),
        reason: None,
        rolled_back: None,
        approver: None,
        exit_code: Some(0),
        duration_ms: 1,
    }
}

fn ended(end: EpisodeEnd) -> Episode {
    let mut episode = Episode::new(
        EpisodeConfig {
            max_steps: 20,
            timeout_ms: 1000,
            approval_timeout_ms: None,
            allow_fallback: false,
            max_execute_attempts: 3,
        },
        0,
    );
    episode.waiting = Waiting::Nothing { end };
    episode
}

fn verification(healthy: bool) -> (Verification, String) {
    (
        Verification {
            healthy,
            http_status: Some(if healthy { 200 } else { 500 }),
            checked_at: at(5),
        },
        if healthy {
            "3 consecutive ok"
        } else {
            "HTTP 500 lock"
        }
        .to_string(),
    )
}

fn facts<'a>(
    episode: Option<&'a Episode>,
    records: &'a [ActionRecord],
    verification: Option<&'a (Verification, String)>,
    now: Time,
) -> Facts<'a> {
    Facts {
        generation: Some(1),
        now,
        started_at: at(0),
        fault: None,
        episode,
        records,
        verification,
        failure: None,
        agent: AgentInfo::default(),
        containment: None,
        undone: None,
    }
}

#[test]
fn only_the_probe_resolves_and_time_to_resolve_is_measured() {
    let episode = ended(EpisodeEnd::Claimed {
        summary: "done".into(),
    });
    let healthy = verification(true);
    let status = build(
        &IncidentStatus::default(),
        &facts(Some(&episode), &[], Some(&healthy), at(3)),
    );
    assert_eq!(status.phase, IncidentPhase::Resolved);
    assert_eq!(status.time_to_resolve_seconds, Some(3.0));
    let sick = verification(false);
    let status = build(
        &IncidentStatus::default(),
        &facts(Some(&episode), &[], Some(&sick), at(3)),
    );
    assert_eq!(status.phase, IncidentPhase::Failed);
    assert_eq!(status.reason.as_deref(), Some(REASON_CLAIM_NOT_VERIFIED));
    assert!(status.message.unwrap().contains("claimed \"done\""));
}

#[test]
fn a_blocked_fix_is_named_as_the_reason() {
    let episode = ended(EpisodeEnd::Claimed {
        summary: "every check ran".into(),
    });
    let records = vec![
        record(1, Decision::Allowed),
        record(2, Decision::Denied).with_reason("denied by the risk gate: risk MEDIUM exceeds LOW"),
        record(3, Decision::Allowed),
    ];
    let sick = verification(false);
    let status = build(
        &IncidentStatus::default(),
        &facts(Some(&episode), &records, Some(&sick), at(3)),
    );
    assert_eq!(status.reason.as_deref(), Some(REASON_RISK_LIMIT_EXCEEDED));
    let message = status.message.unwrap();
    assert!(message.contains("step 2 `cmd 2`"), "{message}");
    assert!(message.contains("exceeds LOW"), "{message}");
}

#[test]
fn the_phase_follows_the_episode() {
    let mut episode = ended(EpisodeEnd::StepBudget);
    episode.waiting = Waiting::Proposal;
    let phase = |e: &Episode, v: Option<&(Verification, String)>| {
        build(&IncidentStatus::default(), &facts(Some(e), &[], v, at(1))).phase
    };
    assert_eq!(phase(&episode, None), IncidentPhase::Remediating);
    episode.waiting = Waiting::Approval(Approval {
        step: 1,
        action: Action::Exec("rm -f x".into()),
        declared_risk: None,
        risk: SecurityRisk::Medium,
        reason: "changes files".into(),
        requested_at_ms: 1_000,
        deadline_ms: 2_000,
        preview: None,
    });
    assert_eq!(phase(&episode, None), IncidentPhase::AwaitingApproval);
    let status = build(
        &IncidentStatus::default(),
        &facts(Some(&episode), &[], None, at(1)),
    );
    let pending = status.pending_approval.unwrap();
    assert_eq!((pending.step, pending.command.as_str()), (1, "rm -f x"));
    assert_eq!(pending.reason, "changes files");
    episode.waiting = Waiting::Nothing {
        end: EpisodeEnd::StepBudget,
    };
    assert_eq!(phase(&episode, None), IncidentPhase::Verifying);
    let sick = verification(false);
    let status = build(
        &IncidentStatus::default(),
        &facts(Some(&episode), &[], Some(&sick), at(1)),
    );
    assert_eq!(status.reason.as_deref(), Some(REASON_BUDGET_EXHAUSTED));
}

#[test]
fn every_end_has_its_reason() {
    let cases = [
        (
            EpisodeEnd::RiskLimitExceeded {
                step: 2,
                action: "rm -rf /".into(),
                reason: "denied".into(),
            },
            REASON_RISK_LIMIT_EXCEEDED,
        ),
        (
            EpisodeEnd::ConfirmationRefused {
                step: 1,
                action: "x".into(),
                by: crate::risk::DecidedBy::NoTerminal,
            },
            REASON_CONFIRMATION_REFUSED,
        ),
        (
            EpisodeEnd::ApprovalTimeout {
                step: 1,
                action: "x".into(),
            },
            REASON_APPROVAL_TIMEOUT,
        ),
        (
            EpisodeEnd::BrainFailed {
                reason: "401".into(),
            },
            REASON_LLM_UNAVAILABLE,
        ),
        (
            EpisodeEnd::WorkspaceFailed {
                step: 1,
                reason: "gone".into(),
            },
            REASON_SANDBOX_UNAVAILABLE,
        ),
    ];
    for (end, expected) in cases {
        // A gate failure or a refusal fails the incident even if healthy.
        let (phase, reason, _) = outcome(&end, true, &[], "ok");
        assert_eq!(
            (phase, reason),
            (IncidentPhase::Failed, expected),
            "{end:?}"
        );
    }
}

#[test]
fn conditions_move_their_transition_time_only_on_a_change() {
    let mut conditions = Vec::new();
    set_condition(
        &mut conditions,
        VERIFIED_HEALTHY,
        false,
        "ProbeFailed",
        "500".into(),
        &at(1),
        None,
    );
    set_condition(
        &mut conditions,
        VERIFIED_HEALTHY,
        false,
        "ProbeFailed",
        "still 500".into(),
        &at(2),
        None,
    );
    assert_eq!(conditions.len(), 1);
    assert_eq!(conditions[0].last_transition_time, at(1));
    assert_eq!(conditions[0].message, "still 500");
    set_condition(
        &mut conditions,
        VERIFIED_HEALTHY,
        true,
        REASON_RESOLVED,
        "ok".into(),
        &at(3),
        Some(2),
    );
    assert_eq!(conditions[0].last_transition_time, at(3));
    assert_eq!(conditions[0].observed_generation, Some(2));
}

#[test]
fn a_rebuilt_status_keeps_its_conditions_times() {
    let episode = ended(EpisodeEnd::StepBudget);
    let sick = verification(false);
    let first = build(
        &IncidentStatus::default(),
        &facts(Some(&episode), &[], Some(&sick), at(1)),
    );
    let again = build(&first, &facts(Some(&episode), &[], Some(&sick), at(9)));
    assert_eq!(first.conditions, again.conditions);
}

#[test]
fn long_action_lists_are_bounded_with_a_summary() {
    let records: Vec<ActionRecord> = (1..=120)
        .map(|step| {
            record(
                step,
                if step % 10 == 0 {
                    Decision::Denied
                } else {
                    Decision::Allowed
                },
            )
        })
        .collect();
    let (kept, omitted) = bound_actions(&records, 50);
    assert_eq!(kept.len(), 50);
    assert_eq!(kept[0].step, 71);
    let omitted = omitted.unwrap();
    assert_eq!(
        (omitted.count, omitted.first_step, omitted.last_step),
        (70, 1, 70)
    );
    assert_eq!(omitted.denied, 7);
    assert_eq!(bound_actions(&records[..3], 50).1, None);
}
