//! The step machine without I/O: a scripted brain, scripted answers and a
//! scripted executor, and a clock that moves only when the test says so.

use std::collections::VecDeque;

use super::*;
use crate::crd::Decision;
use crate::protocol::{BrainRole, EpisodeEnd};
use crate::risk::{Classifier, GatePolicy, RiskLevel};

const ROOT: &str = "/srv/incident/root";

fn gate(policy: GatePolicy) -> Gate {
    Gate::new(Classifier::new(ROOT, 8080), policy)
}

fn config() -> EpisodeConfig {
    EpisodeConfig {
        max_steps: 20,
        timeout_ms: 60_000,
        approval_timeout_ms: None,
        allow_fallback: false,
        max_execute_attempts: 3,
    }
}

fn act(command: &str) -> Result<Proposal, String> {
    Ok(Proposal::Act {
        action: Action::Exec(command.into()),
        declared_risk: None,
    })
}

fn done() -> Result<Proposal, String> {
    Ok(Proposal::Done {
        summary: "fixed".into(),
    })
}

fn ok() -> Result<Observation, WorkspaceError> {
    Ok(Observation::succeeded("ok", 3))
}

/// What the fakes answer, in order.
#[derive(Default)]
struct Script {
    proposals: VecDeque<Result<Proposal, String>>,
    /// `None`: nobody answers (the clock runs to the deadline).
    answers: VecDeque<Option<bool>>,
    executions: VecDeque<Result<Observation, WorkspaceError>>,
}

/// Everything that happened, as the fakes saw it.
#[derive(Debug, Default)]
struct Run {
    records: Vec<ActionRecord>,
    turns: Vec<Turn>,
    /// (step, action) of every execution asked for.
    executed: Vec<(u32, Action)>,
    asked_roles: Vec<BrainRole>,
    end: Option<EpisodeEnd>,
}

/// Drives `episode` until it ends or `stop_after` executions were asked
/// for (to interrupt it mid-way); each event moves the clock 100 ms.
fn drive(
    episode: &mut Episode,
    gate: &Gate,
    script: &mut Script,
    clock: &mut u64,
    stop_after: Option<usize>,
) -> Run {
    let mut run = Run::default();
    let mut request = episode.current(gate, *clock);
    loop {
        *clock += 100;
        let event = match &request {
            Request::Done(end) => {
                run.end = Some(end.clone());
                return run;
            }
            Request::NeedProposal { role, deadline_ms } => {
                run.asked_roles.push(*role);
                match script.proposals.pop_front() {
                    Some(Ok(proposal)) => Event::Proposed {
                        proposal,
                        usage: TokenUsage {
                            prompt: 10,
                            completion: 1,
                            ..TokenUsage::default()
                        },
                    },
                    Some(Err(error)) => Event::BrainFailed {
                        error,
                        usage: TokenUsage::default(),
                    },
                    None => {
                        *clock = *deadline_ms;
                        Event::Tick
                    }
                }
            }
            Request::NeedApproval(approval) => match script.answers.pop_front().flatten() {
                Some(approved) => Event::Answered {
                    approved,
                    by: DecidedBy::Terminal,
                },
                None => {
                    *clock = approval.deadline_ms;
                    Event::Tick
                }
            },
            Request::Execute(permit) => {
                if stop_after.is_some_and(|n| run.executed.len() == n) {
                    return run;
                }
                run.executed.push((permit.step(), permit.action().clone()));
                Event::Executed(script.executions.pop_front().unwrap_or_else(ok))
            }
        };
        let advance = episode.next(gate, event, *clock);
        run.records.extend(advance.record);
        run.turns.extend(advance.turn);
        request = advance.request;
    }
}

fn script(proposals: Vec<Result<Proposal, String>>) -> Script {
    Script {
        proposals: proposals.into(),
        ..Script::default()
    }
}

fn start(config: EpisodeConfig) -> (Episode, u64) {
    (Episode::new(config, 1_000), 1_000)
}

#[test]
fn allowed_actions_run_and_a_claim_ends_the_episode() {
    let (mut episode, mut clock) = start(config());
    let gate = gate(GatePolicy::default());
    let run = drive(
        &mut episode,
        &gate,
        &mut script(vec![act("ls"), done()]),
        &mut clock,
        None,
    );
    assert_eq!(
        run.end,
        Some(EpisodeEnd::Claimed {
            summary: "fixed".into()
        })
    );
    assert_eq!(run.executed, vec![(1, Action::Exec("ls".into()))]);
    assert_eq!(run.records[0].decision, Decision::Allowed);
    assert_eq!(run.records[0].decided_by, "gate");
    assert_eq!(run.records[0].exit_code, Some(0));
    assert_eq!(
        episode.tokens(),
        TokenUsage {
            prompt: 20,
            completion: 2,
            ..TokenUsage::default()
        }
    );
}

#[test]
fn a_denied_action_never_runs_and_the_agent_is_told() {
    let (mut episode, mut clock) = start(config());
    let low = GatePolicy {
        max_risk: RiskLevel::Low,
        ..GatePolicy::default()
    };
    let proposals = vec![act("rm -f service.lock"), act("ls"), done()];
    let run = drive(
        &mut episode,
        &gate(low),
        &mut script(proposals),
        &mut clock,
        None,
    );
    assert_eq!(run.executed, vec![(2, Action::Exec("ls".into()))]);
    assert_eq!(run.records[0].decision, Decision::Denied);
    assert!(
        run.records[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("maxRisk LOW")
    );
    assert!(matches!(run.turns[0].feedback, Feedback::Denied { .. }));
    assert!(matches!(run.end, Some(EpisodeEnd::Claimed { .. })));
}

#[test]
fn a_denied_action_under_a_fail_policy_ends_the_episode() {
    let (mut episode, mut clock) = start(config());
    let fail = GatePolicy {
        max_risk: RiskLevel::Low,
        on_risk_exceeded: OnRiskExceeded::Fail,
        ..GatePolicy::default()
    };
    let proposals = vec![act("rm -f service.lock"), act("ls")];
    let run = drive(
        &mut episode,
        &gate(fail),
        &mut script(proposals),
        &mut clock,
        None,
    );
    assert!(run.executed.is_empty());
    let Some(EpisodeEnd::RiskLimitExceeded { step, action, .. }) = run.end else {
        panic!("{:?}", run.end)
    };
    assert_eq!((step, action.as_str()), (1, "rm -f service.lock"));
}

fn confirming() -> Gate {
    gate(GatePolicy {
        require_confirmation_for: Some(RiskLevel::Medium),
        ..GatePolicy::default()
    })
}

#[test]
fn a_confirmed_action_runs_after_the_approval() {
    let (mut episode, mut clock) = start(config());
    let mut script = script(vec![act("rm -f service.lock"), done()]);
    script.answers.push_back(Some(true));
    let run = drive(&mut episode, &confirming(), &mut script, &mut clock, None);
    assert_eq!(run.executed.len(), 1);
    assert_eq!(run.records[0].decision, Decision::Confirmed);
    assert_eq!(run.records[0].decided_by, "terminal");
}

#[test]
fn a_rejection_fails_the_episode_without_running_the_action() {
    let (mut episode, mut clock) = start(config());
    let mut script = script(vec![act("rm -f service.lock"), done()]);
    script.answers.push_back(Some(false));
    let run = drive(&mut episode, &confirming(), &mut script, &mut clock, None);
    assert!(run.executed.is_empty());
    assert_eq!(run.records[0].decision, Decision::Rejected);
    assert!(matches!(
        run.end,
        Some(EpisodeEnd::ConfirmationRefused {
            step: 1,
            by: DecidedBy::Terminal,
            ..
        })
    ));
}

#[test]
fn an_unanswered_approval_times_out() {
    let (mut episode, mut clock) = start(EpisodeConfig {
        approval_timeout_ms: Some(5_000),
        ..config()
    });
    let mut script = script(vec![act("rm -f service.lock")]);
    script.answers.push_back(None);
    let run = drive(&mut episode, &confirming(), &mut script, &mut clock, None);
    assert!(run.executed.is_empty());
    assert_eq!(run.records[0].decided_by, "timeout");
    assert!(matches!(
        run.end,
        Some(EpisodeEnd::ApprovalTimeout { step: 1, .. })
    ));
    // The deadline was the approval's, not the episode's.
    assert!(clock < 1_000 + 60_000, "{clock}");
}

#[test]
fn the_approval_wait_never_outlasts_the_episode() {
    let (mut episode, _) = start(EpisodeConfig {
        timeout_ms: 3_000,
        approval_timeout_ms: Some(600_000),
        ..config()
    });
    let request = episode.next(
        &confirming(),
        Event::Proposed {
            proposal: act("rm -f service.lock").unwrap(),
            usage: TokenUsage::default(),
        },
        2_000,
    );
    let Request::NeedApproval(approval) = request.request else {
        panic!("{:?}", request.request)
    };
    assert_eq!(approval.deadline_ms, 4_000);
}

#[test]
fn the_step_budget_ends_the_episode() {
    let (mut episode, mut clock) = start(EpisodeConfig {
        max_steps: 2,
        ..config()
    });
    let run = drive(
        &mut episode,
        &gate(GatePolicy::default()),
        &mut script(vec![act("ls"), act("ls"), act("ls")]),
        &mut clock,
        None,
    );
    assert_eq!(run.executed.len(), 2);
    assert_eq!(run.end, Some(EpisodeEnd::StepBudget));
}

#[test]
fn the_time_budget_ends_the_episode() {
    let (mut episode, mut clock) = start(EpisodeConfig {
        timeout_ms: 450,
        ..config()
    });
    let proposals = (0..100).map(|_| act("ls")).collect();
    let run = drive(
        &mut episode,
        &gate(GatePolicy::default()),
        &mut script(proposals),
        &mut clock,
        None,
    );
    assert_eq!(run.end, Some(EpisodeEnd::TimeBudget));
    assert!(run.executed.len() < 5, "{}", run.executed.len());
}

#[test]
fn a_brain_failure_ends_a_strict_episode() {
    let (mut episode, mut clock) = start(config());
    let run = drive(
        &mut episode,
        &gate(GatePolicy::default()),
        &mut script(vec![Err("401".into())]),
        &mut clock,
        None,
    );
    assert_eq!(
        run.end,
        Some(EpisodeEnd::BrainFailed {
            reason: "401".into()
        })
    );
}

#[test]
fn a_brain_failure_hands_over_to_the_fallback_once() {
    let (mut episode, mut clock) = start(EpisodeConfig {
        allow_fallback: true,
        ..config()
    });
    let proposals = vec![Err("429 forever".into()), act("ls"), done()];
    let run = drive(
        &mut episode,
        &gate(GatePolicy::default()),
        &mut script(proposals),
        &mut clock,
        None,
    );
    assert_eq!(
        run.asked_roles,
        vec![BrainRole::Primary, BrainRole::Fallback, BrainRole::Fallback]
    );
    assert_eq!(episode.fallback_reason.as_deref(), Some("429 forever"));
    assert!(matches!(run.end, Some(EpisodeEnd::Claimed { .. })));
    let (mut episode, mut clock) = start(EpisodeConfig {
        allow_fallback: true,
        ..config()
    });
    let twice = vec![Err("a".into()), Err("b".into())];
    let run = drive(
        &mut episode,
        &gate(GatePolicy::default()),
        &mut script(twice),
        &mut clock,
        None,
    );
    assert_eq!(
        run.end,
        Some(EpisodeEnd::BrainFailed { reason: "b".into() })
    );
}

#[test]
fn an_unreachable_executor_is_retried_then_fails_the_episode() {
    let (mut episode, mut clock) = start(config());
    let mut script = script(vec![act("ls"), done()]);
    let gone = || Err(WorkspaceError::Unreachable("connection refused".into()));
    script.executions = vec![gone(), ok()].into();
    let run = drive(
        &mut episode,
        &gate(GatePolicy::default()),
        &mut script,
        &mut clock,
        None,
    );
    assert_eq!(
        run.executed,
        vec![
            (1, Action::Exec("ls".into())),
            (1, Action::Exec("ls".into()))
        ]
    );
    assert_eq!(run.records.len(), 1);
    assert!(matches!(run.end, Some(EpisodeEnd::Claimed { .. })));

    let (mut episode, mut clock) = start(config());
    let mut script = self::script(vec![act("ls"), done()]);
    script.executions = vec![gone(), gone(), gone()].into();
    let run = drive(
        &mut episode,
        &gate(GatePolicy::default()),
        &mut script,
        &mut clock,
        None,
    );
    assert_eq!(run.executed.len(), 3);
    assert!(matches!(
        run.end,
        Some(EpisodeEnd::WorkspaceFailed { step: 1, .. })
    ));
    let sandbox = Err(WorkspaceError::Sandbox("no landlock".into()));
    let (mut episode, mut clock) = start(config());
    let mut script = self::script(vec![act("ls")]);
    script.executions = vec![sandbox].into();
    let run = drive(
        &mut episode,
        &gate(GatePolicy::default()),
        &mut script,
        &mut clock,
        None,
    );
    assert_eq!(run.executed.len(), 1, "a sandbox failure is not retried");
}

#[test]
fn a_resumed_episode_continues_and_repeats_no_step() {
    let gate = gate(GatePolicy::default());
    let (mut episode, mut clock) = start(config());
    let mut script = script(vec![
        act("ls"),
        act("cat service.log"),
        act("ps aux"),
        done(),
    ]);
    let first = drive(&mut episode, &gate, &mut script, &mut clock, Some(1));
    assert_eq!(first.executed, vec![(1, Action::Exec("ls".into()))]);
    // Persisted while step 2 waits for its execution, then restored.
    let saved = serde_json::to_string(&episode).unwrap();
    let mut resumed: Episode = serde_json::from_str(&saved).unwrap();
    assert_eq!(resumed, episode);
    let rest = drive(&mut resumed, &gate, &mut script, &mut clock, None);
    assert_eq!(
        rest.executed,
        vec![
            (2, Action::Exec("cat service.log".into())),
            (3, Action::Exec("ps aux".into()))
        ],
        "the pending step is asked for again under its number; nothing before it"
    );
    let steps: Vec<u32> = first
        .records
        .iter()
        .chain(&rest.records)
        .map(|r| r.step)
        .collect();
    assert_eq!(steps, vec![1, 2, 3]);
    assert!(matches!(rest.end, Some(EpisodeEnd::Claimed { .. })));
}

#[test]
fn a_resumed_approval_still_waits_and_an_answer_after_restart_counts() {
    let gate = confirming();
    let (mut episode, mut clock) = start(config());
    let request = episode.next(
        &gate,
        Event::Proposed {
            proposal: act("rm -f service.lock").unwrap(),
            usage: TokenUsage::default(),
        },
        clock,
    );
    assert!(matches!(request.request, Request::NeedApproval(_)));
    let mut resumed: Episode =
        serde_json::from_str(&serde_json::to_string(&episode).unwrap()).unwrap();
    assert!(matches!(
        resumed.current(&gate, clock),
        Request::NeedApproval(_)
    ));
    clock += 10;
    let approved = resumed.next(
        &gate,
        Event::Answered {
            approved: true,
            by: DecidedBy::Annotation,
        },
        clock,
    );
    let Request::Execute(permit) = approved.request else {
        panic!("{:?}", approved.request)
    };
    assert_eq!(
        (permit.step(), permit.decided_by()),
        (1, DecidedBy::Annotation)
    );
}

#[test]
fn stray_events_change_nothing() {
    let gate = gate(GatePolicy::default());
    let (mut episode, clock) = start(config());
    let before = episode.clone();
    let advance = episode.next(&gate, Event::Executed(ok()), clock);
    assert!(matches!(advance.request, Request::NeedProposal { .. }));
    assert!(advance.record.is_none());
    assert_eq!(episode, before);
}
