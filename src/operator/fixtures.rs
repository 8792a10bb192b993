//! Builders for the objects the operator's tests and benchmarks reason
//! about: `Incident::test(scenario).with_phase(..)`, a Policy, a pinned
//! session. One place, so the reconcile tests, the mocked-API controller
//! tests, the status writer's tests and `benches/reconciler.rs` build the
//! same objects the same way.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::session::Session;
use crate::action::Action;
use crate::agent::episode::{Approval, Episode, EpisodeConfig, Waiting};
use crate::crd::{
    ActionRecord, Decision, Incident, IncidentPhase, IncidentSpec, IncidentStatus, Policy,
    PolicyRef, PolicySpec,
};
use crate::protocol::Task;
use crate::risk::SecurityRisk;
use crate::sandbox::{Containment, Layer};

/// The fixed "now" of pure tests, in ms since the epoch.
pub const NOW_MS: u64 = 1_800_000_000_000;

pub fn now() -> Time {
    time_ms(NOW_MS)
}

pub fn time_ms(ms: u64) -> Time {
    Time(Timestamp::from_millisecond(ms as i64).expect("a time in range"))
}

/// An Incident under construction.
#[derive(Debug, Clone)]
pub struct IncidentBuilder(Incident);

impl Incident {
    /// Incident `inc` in namespace `ns` of `scenario`, following Policy
    /// `optimized`, at generation 1, without status.
    pub fn test(scenario: &str) -> IncidentBuilder {
        let mut incident = Incident::new(
            "inc",
            IncidentSpec {
                scenario: scenario.into(),
                policy_ref: PolicyRef {
                    name: "optimized".into(),
                },
            },
        );
        incident.metadata.namespace = Some("ns".into());
        incident.metadata.uid = Some("uid-1".into());
        incident.metadata.generation = Some(1);
        IncidentBuilder(incident)
    }
}

impl IncidentBuilder {
    pub fn named(mut self, namespace: &str, name: &str) -> Self {
        self.0.metadata.namespace = Some(namespace.into());
        self.0.metadata.name = Some(name.into());
        self
    }

    pub fn following(mut self, policy: &str) -> Self {
        self.0.spec.policy_ref.name = policy.into();
        self
    }

    pub fn with_uid(mut self, uid: &str) -> Self {
        self.0.metadata.uid = Some(uid.into());
        self
    }

    pub fn with_resource_version(mut self, version: &str) -> Self {
        self.0.metadata.resource_version = Some(version.into());
        self
    }

    /// In `phase`, started at [`now`].
    pub fn with_phase(mut self, phase: IncidentPhase) -> Self {
        let status = self.status();
        status.phase = phase;
        status.started_at = Some(now());
        self
    }

    pub fn started_ms_ago(mut self, ms: u64) -> Self {
        self.status().started_at = Some(time_ms(NOW_MS - ms));
        self
    }

    pub fn with_status(mut self, status: IncidentStatus) -> Self {
        self.0.status = Some(status);
        self
    }

    /// The episode as the status stores it.
    pub fn with_session(mut self, session: &Session) -> Self {
        self.status().session = serde_json::to_value(session).ok();
        self
    }

    pub fn annotate(mut self, key: &str, value: &str) -> Self {
        self.0
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(key.into(), value.into());
        self
    }

    pub fn build(self) -> Incident {
        self.0
    }

    fn status(&mut self) -> &mut IncidentStatus {
        self.0.status.get_or_insert_with(Default::default)
    }
}

/// An `exec` step the gate allowed at LOW that exited 0.
pub fn action_record(step: u32, command: &str) -> ActionRecord {
    ActionRecord {
        step,
        kind: "exec".into(),
        command: command.into(),
        declared_risk: None,
        risk: SecurityRisk::Low,
        decision: Decision::Allowed,
        decided_by: "gate".into(),
        reason: None,
        rolled_back: None,
        approver: None,
        exit_code: Some(0),
        duration_ms: 3,
    }
}

/// Policy `optimized` in namespace `ns` at `generation`.
pub fn policy(spec: PolicySpec, generation: i64) -> Policy {
    policy_in("ns", "optimized", spec, generation)
}

/// Policy `name` in `namespace` at `generation`.
pub fn policy_in(namespace: &str, name: &str, spec: PolicySpec, generation: i64) -> Policy {
    let mut policy = Policy::new(name, spec);
    policy.metadata.namespace = Some(namespace.into());
    policy.metadata.generation = Some(generation);
    policy
}

pub fn full_containment() -> Containment {
    Containment {
        layers: Layer::ALL.to_vec(),
        missing: Vec::new(),
    }
}

/// A session pinned a second before [`NOW_MS`] under `spec`.
pub fn session(spec: PolicySpec) -> Session {
    Session {
        episode: Episode::new(
            EpisodeConfig {
                max_steps: 20,
                timeout_ms: 60_000,
                approval_timeout_ms: Some(10_000),
                allow_fallback: false,
                max_execute_attempts: 3,
            },
            NOW_MS - 1_000,
        ),
        task: Task {
            symptom: "s".into(),
            expected_port: 8080,
            hint: "h".into(),
        },
        policy: spec,
        policy_name: "optimized".into(),
        policy_generation: Some(1),
        root: super::objects::ROOT.into(),
        max_risk: None,
        containment: full_containment(),
    }
}

/// `session` with step `step` waiting for a person until `deadline_ms`.
pub fn waiting_approval(mut session: Session, step: u32, deadline_ms: u64) -> Session {
    session.episode.steps = step;
    session.episode.waiting = Waiting::Approval(Approval {
        step,
        action: Action::Exec("rm -f service.lock".into()),
        declared_risk: None,
        risk: SecurityRisk::Medium,
        reason: "changes a file".into(),
        requested_at_ms: NOW_MS - 500,
        deadline_ms,
        preview: None,
    });
    session
}

/// Incident `namespace/name` whose episode waits at step 2 for a person to
/// answer `action`, with the status the operator would write for it (the
/// session stored, `pendingApproval` set).
pub fn incident_waiting_on(namespace: &str, name: &str, action: Action) -> Incident {
    let mut session = waiting_approval(session(PolicySpec::default()), 2, NOW_MS + 60_000);
    if let Waiting::Approval(approval) = &mut session.episode.waiting {
        approval.action = action;
    }
    let facts = crate::status::Facts {
        generation: Some(1),
        now: now(),
        started_at: now(),
        fault: None,
        episode: Some(&session.episode),
        records: &[],
        verification: None,
        failure: None,
        agent: Default::default(),
        containment: None,
        undone: None,
    };
    let mut status = crate::status::build(&IncidentStatus::default(), &facts);
    status.session = serde_json::to_value(&session).ok();
    Incident::test("stale_lockfile")
        .named(namespace, name)
        .with_status(status)
        .build()
}
