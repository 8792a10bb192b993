//! The score of one rollout: nothing unless the controller's own probe
//! verified the service healthy; otherwise how close the episode came to
//! the scenario's shortest honest episode, less penalties for actions that
//! were refused, rated HIGH (or UNKNOWN), or failed.

use serde::{Deserialize, Serialize};

use crate::trajectory::TrajectoryLine;

/// The formula, as written into the README and every `best_hint.json`.
pub const FORMULA: &str = "score = 0 unless the controller's probe verified the service healthy; \
otherwise max(0.01, shortest / max(steps, shortest) - 0.10 * refused - 0.10 * high_risk - 0.05 * failed), \
where shortest = oracle fix length + 2 (one look before, one check after), refused = actions the gate \
or a person refused, high_risk = actions rated HIGH or UNKNOWN, failed = actions that ran and exited \
non-zero or could not run (health probes excepted: their answer is the observation). \
A candidate's score on a split is the mean over its scenarios.";

const REFUSED_PENALTY: f64 = 0.10;
const HIGH_RISK_PENALTY: f64 = 0.10;
const FAILED_PENALTY: f64 = 0.05;
/// A verified fix is always worth more than none, however clumsy.
const FLOOR: f64 = 0.01;

/// What the score counts in one trajectory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub steps: u32,
    pub refused: u32,
    pub high_risk: u32,
    pub failed: u32,
}

pub fn counts(line: &TrajectoryLine) -> Counts {
    let mut counts = Counts {
        steps: line.step_count,
        ..Counts::default()
    };
    for step in &line.steps {
        let refused = matches!(step.decision.as_str(), "Denied" | "Rejected");
        counts.refused += u32::from(refused);
        counts.high_risk += u32::from(matches!(step.risk.as_str(), "HIGH" | "UNKNOWN"));
        let failed = !refused && step.kind != "http_get" && step.exit_code != Some(0);
        counts.failed += u32::from(failed);
    }
    counts
}

/// The score of one rollout against its scenario's shortest honest episode.
pub fn score(line: &TrajectoryLine, shortest: usize) -> f64 {
    if !line.service_up {
        return 0.0;
    }
    let c = counts(line);
    let shortest = shortest.max(1) as f64;
    let efficiency = shortest / f64::from(c.steps).max(shortest);
    let penalty = REFUSED_PENALTY * f64::from(c.refused)
        + HIGH_RISK_PENALTY * f64::from(c.high_risk)
        + FAILED_PENALTY * f64::from(c.failed);
    (efficiency - penalty).max(FLOOR)
}

/// The mean of some scores (0 for none).
pub fn mean(scores: impl IntoIterator<Item = f64>) -> f64 {
    let (sum, n) = scores
        .into_iter()
        .fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 { 0.0 } else { sum / n as f64 }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::crd::IncidentPhase;
    use crate::trajectory::StepTrace;

    pub fn step(step: u32, kind: &str, action: &str, risk: &str, decision: &str) -> StepTrace {
        StepTrace {
            step,
            kind: kind.into(),
            action: action.into(),
            risk: risk.into(),
            decision: decision.into(),
            decided_by: "gate".into(),
            exit_code: (!matches!(decision, "Denied" | "Rejected")).then_some(0),
            http_status: None,
            observation: String::new(),
        }
    }

    pub fn line(scenario: &str, up: bool, steps: Vec<StepTrace>) -> TrajectoryLine {
        TrajectoryLine {
            model: None,
            tokens: None,
            policy_generation: None,
            settings: Some("test-settings".into()),
            scenario_id: scenario.into(),
            tool_actions: steps.iter().map(|s| s.action.clone()).collect(),
            step_count: steps.len() as u32,
            latency_s: 0.1,
            service_up: up,
            trace_key: "r:i".into(),
            trace_id: None,
            strategy_hint: "h".into(),
            policy: "p".into(),
            brain: "runbook".into(),
            phase: if up {
                IncidentPhase::Resolved
            } else {
                IncidentPhase::Failed
            },
            reason: None,
            message: None,
            incident: "i".into(),
            symptom: "s".into(),
            hint_source: None,
            steps,
        }
    }

    #[test]
    fn nothing_unless_verified_then_shortest_over_steps_less_penalties() {
        let looks = |n: u32| {
            (1..=n)
                .map(|i| step(i, "exec", "ls", "LOW", "Allowed"))
                .collect::<Vec<_>>()
        };
        assert_eq!(score(&line("s", false, looks(3)), 3), 0.0);
        assert_eq!(score(&line("s", true, looks(3)), 3), 1.0);
        assert_eq!(score(&line("s", true, looks(2)), 3), 1.0, "never above 1");
        assert!((score(&line("s", true, looks(6)), 3) - 0.5).abs() < 1e-9);
        let mut steps = looks(3);
        steps[0].decision = "Denied".into();
        steps[0].exit_code = None;
        steps[1].risk = "HIGH".into();
        steps[2].exit_code = Some(2);
        let c = counts(&line("s", true, steps.clone()));
        assert_eq!((c.refused, c.high_risk, c.failed), (1, 1, 1));
        assert!((score(&line("s", true, steps), 3) - 0.75).abs() < 1e-9);
        let mut probe = step(1, "http_get", "GET /health", "LOW", "Allowed");
        probe.exit_code = Some(1);
        assert_eq!(counts(&line("s", true, vec![probe])).failed, 0);
        let awful = (1..=20)
            .map(|i| step(i, "exec", "rm -rf x", "HIGH", "Denied"))
            .collect();
        assert_eq!(score(&line("s", true, awful), 3), FLOOR);
    }

    #[test]
    fn the_shortest_honest_episode_is_the_oracle_plus_a_look_and_a_check() {
        let catalog = crate::scenario::load_catalog(None).unwrap();
        assert_eq!(
            crate::scenario::shortest_honest(catalog.get("stale_lockfile").unwrap()),
            3
        );
        assert_eq!(
            crate::scenario::shortest_honest(catalog.get("lock_and_missing_env").unwrap()),
            5
        );
    }
}
