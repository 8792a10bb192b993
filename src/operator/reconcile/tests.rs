//! Every phase transition and every bad input, as a table of observations
//! and the plan each gives. No I/O: builders make the objects.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::*;
use crate::action::Action;
use crate::agent::episode::Waiting;
use crate::crd::PolicySpec;
use crate::operator::fixtures::*;
use crate::protocol::EpisodeEnd;
use crate::risk::RiskLevel;
use crate::sandbox::Layer;

struct World {
    catalog: Catalog,
    policy: Option<Policy>,
    pod: Option<PodView>,
    job: Option<JobView>,
    secrets: bool,
    session: Option<Session>,
    probe: Option<(Verification, String)>,
    containment: Option<Containment>,
}

impl World {
    fn new() -> Self {
        Self {
            catalog: Catalog::builtin(),
            policy: Some(policy(PolicySpec::default(), 1)),
            pod: None,
            job: None,
            secrets: false,
            session: None,
            probe: None,
            containment: None,
        }
    }

    fn ready_pod(mut self) -> Self {
        self.pod = Some(PodView {
            ip: Some("10.0.0.7".into()),
            ready: true,
            failed: None,
        });
        self.secrets = true;
        self
    }

    fn probe(mut self, healthy: bool) -> Self {
        self.probe = Some((
            Verification {
                healthy,
                http_status: Some(if healthy { 200 } else { 500 }),
                checked_at: now(),
            },
            if healthy {
                "ok".into()
            } else {
                "HTTP 500 lock".into()
            },
        ));
        self
    }

    fn decide(&self, incident: &Incident) -> Plan {
        decide(&Observed {
            incident,
            policy: self.policy.as_ref(),
            catalog: &self.catalog,
            pod: self.pod.as_ref(),
            job: self.job.as_ref(),
            has_agent_secret: self.secrets,
            has_sandbox_secret: self.secrets,
            session: self.session.as_ref(),
            probe: self.probe.as_ref(),
            containment: self.containment.as_ref(),
            approver_from_admission: false,
            now: now(),
            now_ms: NOW_MS,
        })
    }
}

fn with_session(incident: Incident, session: &Session) -> Incident {
    let mut incident = incident;
    incident.status.get_or_insert_with(Default::default).session =
        serde_json::to_value(session).ok();
    incident
}

#[test]
fn an_unknown_scenario_fails_at_once() {
    let plan = World::new().decide(&Incident::test("no_such").build());
    let status = plan.status.unwrap();
    assert_eq!(status.phase, IncidentPhase::Failed);
    assert_eq!(status.reason.as_deref(), Some(REASON_UNKNOWN_SCENARIO));
    assert!(status.message.unwrap().contains("stale_lockfile"));
    assert!(plan.create.is_empty());
}

#[test]
fn a_missing_policy_waits_and_retries() {
    let world = World {
        policy: None,
        ..World::new()
    };
    let plan = world.decide(&Incident::test("stale_lockfile").build());
    let status = plan.status.unwrap();
    assert_eq!(status.phase, IncidentPhase::Pending);
    assert_eq!(status.reason.as_deref(), Some(REASON_POLICY_NOT_FOUND));
    let condition = status
        .conditions
        .iter()
        .find(|c| c.type_ == POLICY_READY)
        .unwrap();
    assert_eq!(
        (condition.status.as_str(), condition.reason.as_str()),
        ("False", REASON_POLICY_NOT_FOUND)
    );
    assert_eq!(plan.requeue, Some(Duration::from_secs(30)));
    assert!(
        plan.events
            .iter()
            .any(|e| e.warning && e.reason == REASON_POLICY_NOT_FOUND)
    );
    assert!(plan.create.is_empty());
}

#[test]
fn a_new_incident_provisions_its_secrets_and_pod() {
    let plan = World::new().decide(&Incident::test("stale_lockfile").build());
    assert_eq!(
        plan.create,
        vec![
            Create::AgentSecret,
            Create::SandboxSecret,
            Create::ScenarioPod
        ]
    );
    let status = plan.status.unwrap();
    assert_eq!(status.phase, IncidentPhase::Provisioning);
    assert_eq!(status.started_at, Some(now()));
    assert_eq!(status.observed_generation, Some(1));
}

#[test]
fn provisioning_waits_for_the_pod_then_times_out() {
    let incident = Incident::test("stale_lockfile")
        .with_phase(IncidentPhase::Provisioning)
        .build();
    let world = World {
        pod: Some(PodView::default()),
        secrets: true,
        ..World::new()
    };
    let plan = world.decide(&incident);
    assert_eq!((plan.status, plan.create.len()), (None, 0));
    assert_eq!(plan.requeue, Some(WAIT));
    let late = Incident::test("stale_lockfile")
        .with_phase(IncidentPhase::Provisioning)
        .started_ms_ago(PROVISIONING_TIMEOUT.as_millis() as u64 + 1)
        .build();
    let status = world.decide(&late).status.unwrap();
    assert_eq!(status.reason.as_deref(), Some(REASON_PROVISIONING_FAILED));
}

#[test]
fn a_failed_scenario_pod_fails_the_incident() {
    let incident = Incident::test("stale_lockfile")
        .with_phase(IncidentPhase::Provisioning)
        .build();
    let world = World {
        pod: Some(PodView {
            failed: Some("container service exited 1 (Error)".into()),
            ..PodView::default()
        }),
        ..World::new()
    };
    let status = world.decide(&incident).status.unwrap();
    assert_eq!(status.reason.as_deref(), Some(REASON_PROVISIONING_FAILED));
    assert!(status.message.unwrap().contains("exited 1"));
}

#[test]
fn a_ready_pod_with_the_fault_present_starts_the_agent_pinning_the_policy() {
    let incident = Incident::test("stale_lockfile")
        .with_phase(IncidentPhase::Provisioning)
        .build();
    let pinned = PolicySpec {
        max_risk: RiskLevel::High,
        hint: Some("read the log".into()),
        ..PolicySpec::default()
    };
    let world = World {
        policy: Some(policy(pinned.clone(), 4)),
        containment: Some(full_containment()),
        ..World::new()
    }
    .ready_pod()
    .probe(false);
    let plan = world.decide(&incident);
    assert_eq!(plan.create, vec![Create::AgentJob]);
    let [EngineCall::Start(session)] = plan.engine.as_slice() else {
        panic!("{:?}", plan.engine)
    };
    assert_eq!(session.policy, pinned);
    assert_eq!(session.policy_generation, Some(4));
    assert_eq!(session.task.hint, "read the log");
    assert_eq!(session.root, ROOT);
    let status = plan.status.unwrap();
    assert_eq!(status.phase, IncidentPhase::Remediating);
    let fault = status
        .conditions
        .iter()
        .find(|c| c.type_ == FAULT_PRESENT)
        .unwrap();
    assert_eq!(fault.status, "True");
    assert_eq!(status.agent.unwrap().policy_generation, Some(4));
    assert!(!plan.events.iter().any(|e| e.warning));
}

#[test]
fn weak_containment_and_a_healthy_service_are_said_out_loud() {
    let incident = Incident::test("stale_lockfile")
        .with_phase(IncidentPhase::Provisioning)
        .build();
    let weak = Containment {
        layers: vec![Layer::LandlockFs],
        missing: vec![crate::sandbox::MissingLayer {
            layer: Layer::Netns,
            reason: "seccomp".into(),
        }],
    };
    let world = World {
        containment: Some(weak),
        ..World::new()
    }
    .ready_pod()
    .probe(true);
    let plan = world.decide(&incident);
    let reasons: Vec<&str> = plan
        .events
        .iter()
        .filter(|e| e.warning)
        .map(|e| e.reason)
        .collect();
    assert!(reasons.contains(&REASON_WEAK_CONTAINMENT), "{reasons:?}");
    assert!(
        reasons.contains(&REASON_HEALTHY_BEFORE_AGENT),
        "{reasons:?}"
    );
}

fn remediating(session: &Session, annotations: &[(&str, &str)]) -> (Incident, World) {
    let mut builder = Incident::test("stale_lockfile").with_phase(IncidentPhase::AwaitingApproval);
    for (k, v) in annotations {
        builder = builder.annotate(k, v);
    }
    let world = World {
        session: Some(session.clone()),
        job: Some(JobView::default()),
        ..World::new()
    }
    .ready_pod();
    (with_session(builder.build(), session), world)
}

#[test]
fn approve_and_reject_answer_only_the_step_that_waits() {
    let waiting = waiting_approval(session(PolicySpec::default()), 3, NOW_MS + 5_000);
    let (incident, world) = remediating(&waiting, &[(annotations::APPROVE, "3")]);
    assert_eq!(
        world.decide(&incident).engine,
        vec![EngineCall::Answer {
            step: 3,
            approved: true,
            approver: crate::crd::Approver {
                via: "annotation".into(),
                ..Default::default()
            }
        }]
    );
    let (incident, world) = remediating(
        &waiting,
        &[(annotations::APPROVE, "3"), (annotations::REJECT, "3")],
    );
    assert_eq!(
        world.decide(&incident).engine,
        vec![EngineCall::Answer {
            step: 3,
            approved: false,
            approver: crate::crd::Approver {
                via: "annotation".into(),
                ..Default::default()
            }
        }],
        "a rejection wins over an approval"
    );
    let (incident, world) = remediating(&waiting, &[(annotations::APPROVE, "2")]);
    assert!(
        world.decide(&incident).engine.is_empty(),
        "a stale approval changes nothing"
    );
}

#[test]
fn an_unanswered_approval_ticks_at_its_deadline() {
    let late = waiting_approval(session(PolicySpec::default()), 1, NOW_MS - 1);
    let (incident, world) = remediating(&late, &[]);
    let plan = world.decide(&incident);
    assert_eq!(plan.engine, vec![EngineCall::Tick]);
    let early = waiting_approval(session(PolicySpec::default()), 1, NOW_MS + 4_000);
    let (incident, world) = remediating(&early, &[]);
    let plan = world.decide(&incident);
    assert!(plan.engine.is_empty());
    assert_eq!(plan.requeue, Some(Duration::from_millis(4_000)));
}

#[test]
fn annotations_tighten_the_policy_and_never_loosen_it() {
    let medium = session(PolicySpec::default());
    let (incident, world) = remediating(&medium, &[(annotations::MAX_RISK, "LOW")]);
    let plan = world.decide(&incident);
    assert_eq!(plan.engine, vec![EngineCall::Tighten(RiskLevel::Low)]);
    let (incident, world) = remediating(&medium, &[(annotations::MAX_RISK, "HIGH")]);
    let plan = world.decide(&incident);
    assert!(plan.engine.is_empty());
    let warning = plan.events.iter().find(|e| e.warning).unwrap();
    assert!(
        warning.message.contains("may only tighten"),
        "{}",
        warning.message
    );
    let (incident, world) = remediating(&medium, &[(annotations::MAX_RISK, "EXTREME")]);
    assert!(
        world
            .decide(&incident)
            .events
            .iter()
            .any(|e| e.reason == "AnnotationIgnored")
    );
}

#[test]
fn a_policy_edited_mid_incident_does_not_change_it() {
    let pinned = session(PolicySpec {
        max_risk: RiskLevel::High,
        ..PolicySpec::default()
    });
    let (incident, mut world) = remediating(&pinned, &[]);
    world.policy = Some(policy(
        PolicySpec {
            max_risk: RiskLevel::Low,
            ..PolicySpec::default()
        },
        9,
    ));
    let plan = world.decide(&incident);
    assert!(plan.engine.is_empty() && plan.create.is_empty());
    // The gate the engine rebuilds is the pinned one.
    let decision = pinned
        .gate()
        .decide(1, &Action::Exec("rm -rf data".into()), None);
    assert_eq!(decision.verdict, crate::risk::Verdict::Allow);
}

#[test]
fn an_ended_episode_moves_to_verifying() {
    let mut ended = session(PolicySpec::default());
    ended.episode.waiting = Waiting::Nothing {
        end: EpisodeEnd::Claimed {
            summary: "done".into(),
        },
    };
    let (incident, world) = remediating(&ended, &[]);
    let plan = world.decide(&incident);
    assert_eq!(plan.status.unwrap().phase, IncidentPhase::Verifying);
}

#[test]
fn a_failed_agent_job_or_a_vanished_pod_fails_the_incident() {
    let running = session(PolicySpec::default());
    let (incident, mut world) = remediating(&running, &[]);
    world.job = Some(JobView {
        failed: Some("BackoffLimitExceeded".into()),
    });
    assert_eq!(
        world.decide(&incident).status.unwrap().reason.as_deref(),
        Some(REASON_AGENT_FAILED)
    );
    let (incident, mut world) = remediating(&running, &[]);
    world.pod = None;
    assert_eq!(
        world.decide(&incident).status.unwrap().reason.as_deref(),
        Some(REASON_SANDBOX_UNAVAILABLE)
    );
}

fn verifying(spec: PolicySpec, healthy: bool) -> Plan {
    let mut ended = session(spec);
    ended.episode.waiting = Waiting::Nothing {
        end: EpisodeEnd::Claimed {
            summary: "done".into(),
        },
    };
    let incident = with_session(
        Incident::test("stale_lockfile")
            .with_phase(IncidentPhase::Verifying)
            .build(),
        &ended,
    );
    let world = World {
        session: Some(ended),
        ..World::new()
    }
    .ready_pod()
    .probe(healthy);
    world.decide(&incident)
}

#[test]
fn only_the_probe_resolves_and_a_failure_is_undone_unless_kept() {
    let plan = verifying(PolicySpec::default(), true);
    let status = plan.status.unwrap();
    assert_eq!(status.phase, IncidentPhase::Resolved);
    assert!(plan.engine.is_empty());
    let plan = verifying(PolicySpec::default(), false);
    let status = plan.status.unwrap();
    assert_eq!(status.reason.as_deref(), Some(REASON_CLAIM_NOT_VERIFIED));
    assert_eq!(plan.engine, vec![EngineCall::Undo(0)]);
    assert_eq!(status.undone.unwrap().before_step, 0);
    let kept = verifying(
        PolicySpec {
            on_failure: OnFailure::Keep,
            ..PolicySpec::default()
        },
        false,
    );
    assert!(kept.engine.is_empty());
    assert!(kept.status.unwrap().undone.is_none());
}

#[test]
fn an_undo_annotation_on_a_finished_incident_runs_once() {
    let done = Incident::test("stale_lockfile")
        .with_phase(IncidentPhase::Failed)
        .annotate(annotations::UNDO, "2")
        .build();
    let world = World::new();
    let plan = world.decide(&done);
    assert_eq!(plan.engine, vec![EngineCall::Undo(2)]);
    let mut again = done.clone();
    again.status = plan.status;
    assert!(world.decide(&again).engine.is_empty(), "undone already");
}

#[test]
fn nothing_changed_means_no_status_write() {
    let incident = Incident::test("stale_lockfile")
        .with_phase(IncidentPhase::Resolved)
        .build();
    let plan = World::new().decide(&incident);
    assert_eq!(plan, Plan::default());
}

fn recorded_condition(
    ok: bool,
    ms_ago: u64,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
        type_: TRAJECTORY_RECORDED.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: if ok {
            REASON_RECORDED
        } else {
            REASON_RECORDING_FAILED
        }
        .into(),
        message: String::new(),
        last_transition_time: Time(Timestamp::from_millisecond((NOW_MS - ms_ago) as i64).unwrap()),
        observed_generation: Some(1),
    }
}

#[test]
fn a_finished_episode_is_recorded_once_and_a_failed_recording_is_retried_for_a_while() {
    let ran = session(PolicySpec::default());
    let world = World {
        session: Some(ran.clone()),
        ..World::new()
    };
    let finished = |conditions: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>| {
        let mut incident = with_session(
            Incident::test("stale_lockfile")
                .with_phase(IncidentPhase::Resolved)
                .build(),
            &ran,
        );
        incident.status.as_mut().unwrap().conditions = conditions;
        incident
    };
    let plan = world.decide(&finished(vec![]));
    assert!(plan.record && plan.status.is_none() && plan.engine.is_empty());
    assert_eq!(plan.requeue, Some(RECORD_RETRY));
    assert!(
        !world
            .decide(&finished(vec![recorded_condition(true, 0)]))
            .record
    );
    assert!(
        world
            .decide(&finished(vec![recorded_condition(false, 60_000)]))
            .record
    );
    let given_up = world.decide(&finished(vec![recorded_condition(
        false,
        super::super::recording::GIVE_UP_AFTER_MS as u64 + 1,
    )]));
    assert_eq!(given_up, Plan::default());
    // Review: the first start of an operator that records took every
    // Incident that had ever finished. One that finished long before is
    // left alone; one that just finished is recorded.
    let ended = |ms_ago: u64| {
        let mut incident = finished(vec![]);
        incident.status.as_mut().unwrap().verified = Some(Verification {
            healthy: true,
            http_status: Some(200),
            checked_at: Time(Timestamp::from_millisecond((NOW_MS - ms_ago) as i64).unwrap()),
        });
        incident
    };
    let long_ago = super::super::recording::GIVE_UP_AFTER_MS as u64 + 1;
    assert_eq!(world.decide(&ended(long_ago)), Plan::default());
    assert!(world.decide(&ended(60_000)).record);
    // An incident that failed before its episode started has nothing to learn from.
    let never_started = Incident::test("stale_lockfile")
        .with_phase(IncidentPhase::Failed)
        .build();
    assert!(!World::new().decide(&never_started).record);
}

#[test]
fn an_answer_set_before_the_step_waited_answers_nothing() {
    // Step 3 began to wait at NOW_MS - 500; the approval's manager wrote
    // a minute before that (set ahead, or when the Incident was created).
    let waiting = waiting_approval(session(PolicySpec::default()), 3, NOW_MS + 5_000);
    let (mut incident, world) = remediating(&waiting, &[(annotations::APPROVE, "3")]);
    let written = |seconds_before: i64| {
        let at = k8s_openapi::jiff::Timestamp::from_millisecond(NOW_MS as i64 - 500)
            .unwrap()
            .checked_sub(k8s_openapi::jiff::SignedDuration::from_secs(seconds_before))
            .unwrap();
        serde_json::from_value(serde_json::json!([{
            "manager": "kubectl-annotate", "operation": "Update", "time": at.to_string(),
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:annotations": {"f:remediator.dev/approve": {}}}},
        }]))
        .unwrap()
    };
    incident.metadata.managed_fields = Some(written(60));
    let plan = world.decide(&incident);
    assert!(plan.engine.is_empty(), "{:?}", plan.engine);
    assert!(
        plan.events
            .iter()
            .any(|e| e.warning && e.message.contains("before step 3 began to wait")),
        "{:?}",
        plan.events
    );
    incident.metadata.managed_fields = Some(written(-2));
    let plan = world.decide(&incident);
    assert!(
        matches!(plan.engine.as_slice(), [EngineCall::Answer { step: 3, approved: true, approver }]
            if approver.field_manager.as_deref() == Some("kubectl-annotate")),
        "{:?}",
        plan.engine
    );
}

#[test]
fn an_answer_naming_the_actions_hash_holds_for_that_action_alone() {
    let waiting = waiting_approval(session(PolicySpec::default()), 3, NOW_MS + 5_000);
    let Waiting::Approval(approval) = &waiting.episode.waiting else {
        unreachable!()
    };
    let exact = annotations::answer_value(3, &approval.action.digest());
    // Written long before the wait: the hash says which action it meant.
    let old: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry> =
        serde_json::from_value(serde_json::json!([{
            "manager": "remediator-mcp", "operation": "Update", "time": "2001-01-01T00:00:00Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:annotations": {"f:remediator.dev/approve": {}}}},
        }]))
        .unwrap();
    let (mut incident, world) = remediating(&waiting, &[(annotations::APPROVE, &exact)]);
    incident.metadata.managed_fields = Some(old.clone());
    assert!(matches!(
        world.decide(&incident).engine.as_slice(),
        [EngineCall::Answer {
            step: 3,
            approved: true,
            ..
        }]
    ));
    let (mut incident, world) = remediating(&waiting, &[(annotations::APPROVE, "3:00000000")]);
    incident.metadata.managed_fields = Some(old);
    let plan = world.decide(&incident);
    assert!(plan.engine.is_empty(), "{:?}", plan.engine);
    assert!(
        plan.events
            .iter()
            .any(|e| e.warning && e.message.contains("names another action")),
        "{:?}",
        plan.events
    );
}
