//! The record of a finished incident: its trajectory line, appended to the
//! run's JSONL when the environment records.

use super::{Environment, LocalIncident, Outcome};
use crate::agent::driver;
use crate::crd::IncidentStatus;
use crate::trajectory::{self, TrajectoryLine};

/// Records the trajectory line of a finished incident.
pub(super) async fn finish(
    incident: &LocalIncident,
    env: &Environment,
    mut status: IncidentStatus,
    symptom: &str,
    steps: Vec<trajectory::StepTrace>,
    started_ms: u64,
) -> Outcome {
    // Called inside the incident's span (see `super::run`).
    status.trace_id = crate::telemetry::trace_id_of(&tracing::Span::current());
    let latency_s = (driver::now_ms().saturating_sub(started_ms)) as f64 / 1000.0;
    let origin = trajectory::Origin {
        scenario_id: incident.scenario.clone(),
        incident: incident.name.clone(),
        trace_key: format!(
            "{}:{}",
            env.recorder.as_ref().map_or("local", |r| r.run_id.as_str()),
            incident.name
        ),
        strategy_hint: incident.policy.hint.text.clone(),
        policy: incident.policy.name.clone(),
        symptom: symptom.to_string(),
        hint_source: Some(incident.policy.hint.source.as_str().to_string()),
        latency_s,
        policy_generation: incident.policy.generation,
        settings: incident.policy.spec.settings_fingerprint(),
    };
    let line = TrajectoryLine::finished(origin, &status, steps);
    let record_error = match &env.recorder {
        Some(r) => trajectory::append(&r.artifacts_dir, &r.run_id, &line)
            .await
            .err()
            .map(|e| {
                format!(
                    "cannot record the trajectory in {}: {e}",
                    r.artifacts_dir.display()
                )
            }),
        None => None,
    };
    Outcome {
        status,
        kept: None,
        trajectory: Some(line),
        record_error,
    }
}
