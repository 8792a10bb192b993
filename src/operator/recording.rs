//! The trajectory of a finished Incident, as the closed loop's optimizer
//! learns from it: the outcome and each step's action and gate decision
//! from the status, what came back from the sandbox's journal (what the
//! agent saw: redacted), the hint and task from the pinned session. It is
//! kept in the Policy's ring ([`crate::trajectory::in_cluster`]).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use super::session::Session;
use crate::crd::Incident;
use crate::crd::conditions::TRAJECTORY_RECORDED;
use crate::protocol::Turn;
use crate::trajectory::{Origin, TrajectoryLine, in_cluster, step_traces};

/// How long a recording that failed is tried again before the incident
/// keeps its `TrajectoryRecorded=False` condition for good.
pub const GIVE_UP_AFTER_MS: i64 = 10 * 60 * 1000;

fn millis(time: &Time) -> i64 {
    time.0.as_millisecond()
}

/// The line of a finished incident. `history` may be empty (the sandbox
/// is gone): the steps are then the status's records without what came
/// back.
pub fn line_of(incident: &Incident, session: &Session, history: &[Turn]) -> TrajectoryLine {
    let status = incident.status.clone().unwrap_or_default();
    let latency_s = match (&status.started_at, &status.verified) {
        (Some(started), Some(verified)) => {
            (millis(&verified.checked_at) - millis(started)).max(0) as f64 / 1000.0
        }
        _ => status.time_to_resolve_seconds.unwrap_or_default(),
    };
    let origin = Origin {
        scenario_id: incident.spec.scenario.clone(),
        incident: incident.name_any(),
        trace_key: format!(
            "{}:{}",
            incident.namespace().unwrap_or_default(),
            incident.name_any()
        ),
        strategy_hint: session.task.hint.clone(),
        policy: session.policy_name.clone(),
        symptom: session.task.symptom.clone(),
        hint_source: status.agent.as_ref().and_then(|a| a.hint_source.clone()),
        latency_s,
        policy_generation: session.policy_generation,
        settings: session.policy.settings_fingerprint(),
    };
    TrajectoryLine::finished(origin, &status, step_traces(&status.actions, history))
}

/// When the incident finished, in unix millis: the probe's last check,
/// else the last condition change before recording, else its start; None
/// when its status says none of these.
fn finished_ms(incident: &Incident) -> Option<i64> {
    let status = incident.status.as_ref()?;
    status
        .verified
        .as_ref()
        .map(|v| millis(&v.checked_at))
        .or_else(|| {
            status
                .conditions
                .iter()
                .filter(|c| c.type_ != TRAJECTORY_RECORDED)
                .map(|c| millis(&c.last_transition_time))
                .max()
        })
        .or_else(|| status.started_at.as_ref().map(millis))
}

/// The incident's key in its Policy's ring, by when it finished. The
/// status no longer changes once the incident has ended, so a retried
/// recording replaces its own line.
pub fn key_of(incident: &Incident) -> String {
    let finished = finished_ms(incident).unwrap_or(0);
    in_cluster::key_of(&incident.name_any(), finished.max(0) as u64)
}

/// A finished incident's trajectory is recorded once; a recording that
/// failed is tried again for [`GIVE_UP_AFTER_MS`]. One never tried is
/// recorded only if it finished within that time too: the first start of
/// an operator that records does not fill every Policy's ring with what
/// ended long before (from sandboxes long gone).
pub fn due(incident: &Incident, now: &Time) -> bool {
    let condition = incident
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == TRAJECTORY_RECORDED));
    match condition {
        None => finished_ms(incident).is_none_or(|at| millis(now) - at < GIVE_UP_AFTER_MS),
        Some(c) if c.status == "True" => false,
        Some(c) => millis(now) - millis(&c.last_transition_time) < GIVE_UP_AFTER_MS,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;

    use super::*;
    use crate::action::Action;
    use crate::crd::{
        AgentInfo, IncidentPhase, IncidentSpec, IncidentStatus, PolicyRef, Verification,
    };
    use crate::protocol::Feedback;
    use crate::protocol::Observation;

    fn at(ms: i64) -> Time {
        Time(Timestamp::from_millisecond(ms).unwrap())
    }

    #[test]
    fn a_line_joins_the_status_the_session_and_what_came_back() {
        let mut incident = Incident::new(
            "broken-port",
            IncidentSpec {
                scenario: "port_mismatch".into(),
                policy_ref: PolicyRef {
                    name: "learner".into(),
                },
            },
        );
        incident.metadata.namespace = Some("team".into());
        let record = crate::operator::fixtures::action_record;
        incident.status = Some(IncidentStatus {
            phase: IncidentPhase::Resolved,
            steps: 2,
            actions: vec![record(1, "cat service.conf"), record(2, "ls")],
            verified: Some(Verification {
                healthy: true,
                http_status: Some(200),
                checked_at: at(1_000_000 + 4_500),
            }),
            agent: Some(AgentInfo {
                brain: "runbook".into(),
                hint_source: Some("inline".into()),
                ..AgentInfo::default()
            }),
            started_at: Some(at(1_000_000)),
            ..IncidentStatus::default()
        });
        let session = Session {
            episode: crate::agent::episode::Episode::new(
                crate::policy::episode_config(&crate::crd::PolicySpec::default()),
                0,
            ),
            task: crate::protocol::Task {
                symptom: "port 8080 refuses".into(),
                expected_port: 8080,
                hint: "check the port".into(),
            },
            policy: crate::crd::PolicySpec::default(),
            policy_name: "learner".into(),
            policy_generation: Some(1),
            root: "/srv".into(),
            max_risk: None,
            containment: crate::sandbox::Containment {
                layers: Vec::new(),
                missing: Vec::new(),
            },
        };
        let history = vec![Turn {
            step: 1,
            action: Action::Exec("cat service.conf".into()),
            declared_risk: None,
            feedback: Feedback::Observed(Observation {
                exit_code: Some(0),
                http_status: None,
                stdout: "port=9090".into(),
                stderr: String::new(),
                timed_out: false,
                duration_ms: 3,
                rolled_back: None,
            }),
        }];
        let line = line_of(&incident, &session, &history);
        assert_eq!(
            (
                line.scenario_id.as_str(),
                line.incident.as_str(),
                line.trace_key.as_str()
            ),
            ("port_mismatch", "broken-port", "team:broken-port")
        );
        assert_eq!(
            (line.strategy_hint.as_str(), line.policy.as_str()),
            ("check the port", "learner")
        );
        assert_eq!(
            (line.brain.as_str(), line.phase.name()),
            ("runbook", "Resolved")
        );
        assert!(line.service_up);
        assert_eq!(line.latency_s, 4.5);
        assert_eq!(line.tool_actions, ["cat service.conf", "ls"]);
        assert!(
            line.steps[0].observation.contains("port=9090"),
            "{:?}",
            line.steps
        );
        assert_eq!(
            line.steps[1].observation, "",
            "no journal entry, no observation"
        );
        assert_eq!(
            key_of(&incident),
            "0000001004500-broken-port.json",
            "keyed by when the probe last looked"
        );
    }
}
