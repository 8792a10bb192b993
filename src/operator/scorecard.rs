//! A Policy's status as a scorecard of the incidents that follow it:
//! resolved, failed, fix rate, mean steps, p95 time to resolve.

use crate::crd::{Incident, IncidentPhase, PolicyStatus};

pub fn policy_status(generation: Option<i64>, incidents: &[Incident]) -> PolicyStatus {
    let phase = |i: &Incident| i.status.as_ref().map(|s| s.phase).unwrap_or_default();
    let resolved: Vec<&Incident> = incidents
        .iter()
        .filter(|i| phase(i) == IncidentPhase::Resolved)
        .collect();
    let failed = incidents
        .iter()
        .filter(|i| phase(i) == IncidentPhase::Failed)
        .count() as u32;
    let running = incidents.len() as u32 - resolved.len() as u32 - failed;
    let finished = resolved.len() as u32 + failed;
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    let steps: Vec<f64> = resolved
        .iter()
        .filter_map(|i| i.status.as_ref().map(|s| f64::from(s.steps)))
        .collect();
    let mut times: Vec<f64> = resolved
        .iter()
        .filter_map(|i| i.status.as_ref()?.time_to_resolve_seconds)
        .collect();
    times.sort_by(f64::total_cmp);
    let p95 =
        (!times.is_empty()).then(|| times[((times.len() as f64 - 1.0) * 0.95).round() as usize]);
    PolicyStatus {
        observed_generation: generation,
        resolved: resolved.len() as u32,
        failed,
        fix_rate: (finished > 0).then(|| round(resolved.len() as f64 / f64::from(finished))),
        mean_steps: (!steps.is_empty())
            .then(|| round(steps.iter().sum::<f64>() / steps.len() as f64)),
        p95_time_to_resolve_seconds: p95.map(round),
        running,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{IncidentSpec, IncidentStatus, PolicyRef};

    fn incident(phase: IncidentPhase, steps: u32, seconds: Option<f64>) -> Incident {
        let mut incident = Incident::new(
            "i",
            IncidentSpec {
                scenario: "s".into(),
                policy_ref: PolicyRef { name: "p".into() },
            },
        );
        incident.status = Some(IncidentStatus {
            phase,
            steps,
            time_to_resolve_seconds: seconds,
            ..IncidentStatus::default()
        });
        incident
    }

    #[test]
    fn the_scorecard_counts_resolved_failed_and_running() {
        let incidents = vec![
            incident(IncidentPhase::Resolved, 4, Some(1.0)),
            incident(IncidentPhase::Resolved, 6, Some(3.0)),
            incident(IncidentPhase::Failed, 9, None),
            incident(IncidentPhase::Remediating, 2, None),
        ];
        let status = policy_status(Some(2), &incidents);
        assert_eq!((status.resolved, status.failed, status.running), (2, 1, 1));
        assert_eq!(status.fix_rate, Some(0.667));
        assert_eq!(status.mean_steps, Some(5.0));
        assert_eq!(status.p95_time_to_resolve_seconds, Some(3.0));
        let empty = policy_status(None, &[]);
        assert_eq!((empty.fix_rate, empty.mean_steps), (None, None));
    }
}
