//! What a fan-out measured, computed from one record per finished
//! incident (its trajectory line plus the harness's clock), so every
//! number in a report can be checked against the trajectory JSONL.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::mix::Severity;
use super::stats::{self, Spread};
use crate::crd::IncidentPhase;
use crate::risk::SecurityRisk;
use crate::trajectory::TrajectoryLine;

/// One incident that ran to its end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentRecord {
    pub seq: u64,
    pub incident: String,
    pub scenario: String,
    pub severity: Severity,
    pub worker: usize,
    /// Seconds after the run started.
    pub arrival_s: f64,
    pub started_s: f64,
    /// Waiting in the queue: started - arrival.
    pub wait_s: f64,
    /// The incident's own time to resolve (`latency_s` of its trajectory).
    pub service_s: f64,
    /// From arrival to outcome: wait + service.
    pub latency_s: f64,
    pub phase: IncidentPhase,
    /// Resolved: verified healthy by the controller's own probe.
    pub fixed: bool,
    pub steps: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_risk: Option<SecurityRisk>,
    /// Actions denied by the gate or refused at confirmation.
    pub refused: u32,
    /// Actions that needed someone's confirmation.
    pub confirmations: u32,
    pub fallback_used: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub trace_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_url: Option<String>,
    /// Why its trajectory line could not be written, if it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_error: Option<String>,
}

/// What an incident's trajectory line says, the harness's facts aside.
#[derive(Debug, Clone, PartialEq)]
pub struct LineFacts {
    pub fixed: bool,
    pub steps: u32,
    pub max_risk: Option<SecurityRisk>,
    pub refused: u32,
    pub confirmations: u32,
    pub fallback_used: bool,
}

impl LineFacts {
    pub fn of(line: &TrajectoryLine) -> Self {
        let risk = |text: &str| serde_json::from_value(serde_json::Value::String(text.into())).ok();
        Self {
            fixed: line.phase == IncidentPhase::Resolved && line.service_up,
            steps: line.step_count,
            max_risk: line.steps.iter().filter_map(|s| risk(&s.risk)).max(),
            refused: line
                .steps
                .iter()
                .filter(|s| matches!(s.decision.as_str(), "Denied" | "Rejected"))
                .count() as u32,
            // The gate alone decides an action that needs no confirmation.
            confirmations: line.steps.iter().filter(|s| s.decided_by != "gate").count() as u32,
            // A brain label `llm+runbook` says the runbook took over.
            fallback_used: line.brain.contains('+'),
        }
    }
}

impl LineFacts {
    /// The same facts from an Incident's status, as the operator wrote it.
    pub fn of_status(status: &crate::crd::IncidentStatus) -> Self {
        use crate::crd::{Decision, IncidentPhase};
        Self {
            fixed: status.phase == IncidentPhase::Resolved
                && status.verified.as_ref().is_some_and(|v| v.healthy),
            steps: status.steps,
            max_risk: status.max_risk_seen,
            refused: status
                .actions
                .iter()
                .filter(|a| matches!(a.decision, Decision::Denied | Decision::Rejected))
                .count() as u32,
            confirmations: status
                .actions
                .iter()
                .filter(|a| a.decided_by != "gate")
                .count() as u32,
            fallback_used: status.agent.as_ref().is_some_and(|a| a.fallback_used),
        }
    }
}

/// How a run was made, for the report's header.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub run_id: String,
    pub mode: String,
    pub policy: String,
    pub concurrency: usize,
    pub seed: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_limit: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trajectory_file: Option<String>,
}

/// What happened to the arrivals that did not run to their end.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Unfinished {
    /// Dropped on arrival because the queue was full.
    pub dropped: Vec<(u64, String, Severity)>,
    /// Waiting when the run was stopped.
    pub cancelled: Vec<(u64, String, Severity)>,
    /// Running when the run was stopped and aborted.
    pub aborted: Vec<(u64, String, Severity)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioRow {
    pub scenario: String,
    pub generated: usize,
    pub completed: usize,
    pub fixed: usize,
    pub fix_rate: Option<f64>,
    pub mean_steps: Option<f64>,
    pub service_s: Spread,
    pub max_risk: Option<SecurityRisk>,
    pub refused: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    #[serde(flatten)]
    pub info: RunInfo,
    /// Arrivals so far (dropped ones included).
    pub generated: usize,
    pub completed: usize,
    pub fixed: usize,
    pub failed: usize,
    pub dropped: usize,
    pub cancelled: usize,
    pub aborted: usize,
    pub fallback_used: usize,
    /// Incidents in which at least one action needed confirmation.
    pub confirmations_required: usize,
    pub refused_actions: u32,
    /// Incidents whose trajectory line could not be written.
    pub record_errors: usize,
    /// fixed / completed.
    pub fix_rate: Option<f64>,
    pub mean_steps: Option<f64>,
    /// From arrival to outcome (queue wait included).
    pub latency_s: Spread,
    /// The incident's own time to resolve.
    pub service_s: Spread,
    pub wait_s: Spread,
    pub wall_s: f64,
    /// Completed incidents per second of wall time.
    pub throughput_per_s: Option<f64>,
    /// Arrivals per scenario (the mix as drawn).
    pub mix: BTreeMap<String, usize>,
    pub severities: BTreeMap<Severity, usize>,
    pub per_scenario: Vec<ScenarioRow>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}

impl Report {
    /// `generated`: every arrival so far (scenario, severity).
    pub fn build(
        info: RunInfo,
        generated: &[(String, Severity)],
        records: &[IncidentRecord],
        unfinished: &Unfinished,
        wall_s: f64,
        stopped: Option<String>,
    ) -> Self {
        let mut mix = BTreeMap::new();
        let mut severities = BTreeMap::new();
        for (scenario, severity) in generated {
            *mix.entry(scenario.clone()).or_insert(0) += 1;
            *severities.entry(*severity).or_insert(0) += 1;
        }
        let fixed = records.iter().filter(|r| r.fixed).count();
        let steps: Vec<f64> = records.iter().map(|r| f64::from(r.steps)).collect();
        let pick = |f: fn(&IncidentRecord) -> f64| records.iter().map(f).collect::<Vec<_>>();
        let per_scenario = mix
            .iter()
            .map(|(scenario, generated)| {
                let mine: Vec<&IncidentRecord> =
                    records.iter().filter(|r| &r.scenario == scenario).collect();
                let fixed = mine.iter().filter(|r| r.fixed).count();
                let steps: Vec<f64> = mine.iter().map(|r| f64::from(r.steps)).collect();
                let service: Vec<f64> = mine.iter().map(|r| r.service_s).collect();
                ScenarioRow {
                    scenario: scenario.clone(),
                    generated: *generated,
                    completed: mine.len(),
                    fixed,
                    fix_rate: ratio(fixed, mine.len()),
                    mean_steps: stats::mean(&steps),
                    service_s: Spread::of(&service),
                    max_risk: mine.iter().filter_map(|r| r.max_risk).max(),
                    refused: mine.iter().map(|r| r.refused).sum(),
                }
            })
            .collect();
        Self {
            info,
            generated: generated.len(),
            completed: records.len(),
            fixed,
            failed: records.len() - fixed,
            dropped: unfinished.dropped.len(),
            cancelled: unfinished.cancelled.len(),
            aborted: unfinished.aborted.len(),
            fallback_used: records.iter().filter(|r| r.fallback_used).count(),
            confirmations_required: records.iter().filter(|r| r.confirmations > 0).count(),
            refused_actions: records.iter().map(|r| r.refused).sum(),
            record_errors: records.iter().filter(|r| r.record_error.is_some()).count(),
            fix_rate: ratio(fixed, records.len()),
            mean_steps: stats::mean(&steps),
            latency_s: Spread::of(&pick(|r| r.latency_s)),
            service_s: Spread::of(&pick(|r| r.service_s)),
            wait_s: Spread::of(&pick(|r| r.wait_s)),
            wall_s,
            throughput_per_s: (wall_s > 0.0 && !records.is_empty())
                .then(|| records.len() as f64 / wall_s),
            mix,
            severities,
            per_scenario,
            stopped,
        }
    }

    /// The report as a person reads it.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let i = &self.info;
        out.push_str(&format!(
            "fan-out {} ({}): policy {}, concurrency {}, seed {}{}\n",
            i.run_id,
            i.mode,
            i.policy,
            i.concurrency,
            i.seed,
            i.queue_limit
                .map(|l| format!(", queue limit {l}"))
                .unwrap_or_default()
        ));
        if let Some(stopped) = &self.stopped {
            out.push_str(&format!("stopped early: {stopped}\n"));
        }
        out.push_str(&format!(
            "generated {}  completed {}  fixed {}  failed {}  dropped {}  cancelled {}  aborted {}\n",
            self.generated,
            self.completed,
            self.fixed,
            self.failed,
            self.dropped,
            self.cancelled,
            self.aborted
        ));
        out.push_str(&format!(
            "fix rate {}  mean steps {}  fallback used {}  confirmations required {}  refused actions {}\n",
            pct(self.fix_rate),
            num(self.mean_steps, 2),
            self.fallback_used,
            self.confirmations_required,
            self.refused_actions
        ));
        out.push_str(&format!(
            "latency from arrival p50 {} p95 {}  service time p50 {} p95 {}  queue wait p95 {}\n",
            ms(self.latency_s.p50),
            ms(self.latency_s.p95),
            ms(self.service_s.p50),
            ms(self.service_s.p95),
            ms(self.wait_s.p95)
        ));
        out.push_str(&format!(
            "throughput {} incidents/s over {:.2}s wall\n",
            num(self.throughput_per_s, 1),
            self.wall_s
        ));
        let sev: Vec<String> = self
            .severities
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect();
        out.push_str(&format!("severities: {}\n", sev.join(", ")));
        let width = self
            .per_scenario
            .iter()
            .map(|r| r.scenario.len())
            .max()
            .unwrap_or(8)
            .max(8);
        out.push_str(&format!(
            "{:<width$} {:>5} {:>5} {:>5} {:>7} {:>6} {:>9} {:>9} {:>8} {:>7}\n",
            "scenario", "mix", "done", "fixed", "fix", "steps", "p50", "p95", "risk", "refused"
        ));
        for r in &self.per_scenario {
            out.push_str(&format!(
                "{:<width$} {:>5} {:>5} {:>5} {:>7} {:>6} {:>9} {:>9} {:>8} {:>7}\n",
                r.scenario,
                r.generated,
                r.completed,
                r.fixed,
                pct(r.fix_rate),
                num(r.mean_steps, 2),
                ms(r.service_s.p50),
                ms(r.service_s.p95),
                r.max_risk.map_or("-".to_string(), |r| r.to_string()),
                r.refused
            ));
        }
        if let Some(file) = &i.trajectory_file {
            out.push_str(&format!("trajectories: {file}\n"));
        }
        out
    }
}

pub fn ratio(part: usize, whole: usize) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

pub fn pct(value: Option<f64>) -> String {
    value.map_or("-".into(), |v| format!("{:.1}%", v * 100.0))
}

pub fn num(value: Option<f64>, digits: usize) -> String {
    value.map_or("-".into(), |v| format!("{v:.digits$}"))
}

pub fn ms(seconds: Option<f64>) -> String {
    seconds.map_or("-".into(), |s| format!("{:.1}ms", s * 1000.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trajectory::StepTrace;

    fn step(risk: &str, decision: &str, decided_by: &str) -> StepTrace {
        StepTrace {
            step: 1,
            kind: "exec".into(),
            action: "ls".into(),
            risk: risk.into(),
            decision: decision.into(),
            decided_by: decided_by.into(),
            exit_code: None,
            http_status: None,
            observation: String::new(),
        }
    }

    #[test]
    fn status_facts_match_what_the_operator_wrote() {
        let action = |step: u32, decision: &str, by: &str| {
            serde_json::json!({"step": step, "kind": "exec", "command": "x", "risk": "MEDIUM",
                "decision": decision, "decidedBy": by, "durationMs": 1})
        };
        let status: crate::crd::IncidentStatus = serde_json::from_value(serde_json::json!({
            "phase": "Resolved", "steps": 3, "maxRiskSeen": "MEDIUM",
            "verified": {"healthy": true, "httpStatus": 200, "checkedAt": "2026-11-26T00:00:00Z"},
            "actions": [action(1, "Allowed", "gate"), action(2, "Rejected", "annotation"),
                action(3, "Confirmed", "annotation")],
        }))
        .unwrap();
        let facts = LineFacts::of_status(&status);
        assert!(facts.fixed);
        assert_eq!((facts.steps, facts.refused, facts.confirmations), (3, 1, 2));
        assert_eq!(facts.max_risk, Some(SecurityRisk::Medium));
        let unverified = crate::crd::IncidentStatus {
            verified: None,
            ..status
        };
        assert!(
            !LineFacts::of_status(&unverified).fixed,
            "Resolved without a probe is not a fix"
        );
    }

    pub(crate) fn record(
        seq: u64,
        scenario: &str,
        fixed: bool,
        steps: u32,
        wait: f64,
        service: f64,
    ) -> IncidentRecord {
        IncidentRecord {
            seq,
            incident: format!("i{seq}"),
            scenario: scenario.into(),
            severity: Severity::Sev2,
            worker: 0,
            arrival_s: 0.0,
            started_s: wait,
            wait_s: wait,
            service_s: service,
            latency_s: wait + service,
            phase: if fixed {
                IncidentPhase::Resolved
            } else {
                IncidentPhase::Failed
            },
            fixed,
            steps,
            max_risk: Some(SecurityRisk::Low),
            refused: u32::from(!fixed),
            confirmations: 0,
            fallback_used: false,
            reason: None,
            trace_key: format!("r:i{seq}"),
            trace_url: None,
            record_error: None,
        }
    }

    #[test]
    fn facts_come_from_the_steps_of_the_line() {
        let line = TrajectoryLine {
            model: None,
            tokens: None,
            policy_generation: None,
            settings: None,
            scenario_id: "s".into(),
            tool_actions: vec![],
            step_count: 3,
            latency_s: 0.1,
            service_up: true,
            trace_key: "r:i".into(),
            trace_id: None,
            strategy_hint: "h".into(),
            policy: "p".into(),
            brain: "llm+runbook".into(),
            phase: IncidentPhase::Resolved,
            reason: None,
            message: None,
            incident: "i".into(),
            symptom: String::new(),
            hint_source: None,
            steps: vec![
                step("LOW", "Allowed", "gate"),
                step("HIGH", "Denied", "gate"),
                step("MEDIUM", "Rejected", "no-terminal"),
            ],
        };
        assert_eq!(
            LineFacts::of(&line),
            LineFacts {
                fixed: true,
                steps: 3,
                max_risk: Some(SecurityRisk::High),
                refused: 2,
                confirmations: 1,
                fallback_used: true,
            }
        );
    }

    #[test]
    fn a_report_counts_and_spreads_what_ran() {
        let records = [
            record(0, "a", true, 2, 0.0, 0.010),
            record(1, "a", false, 6, 0.5, 0.030),
            record(2, "b", true, 4, 1.0, 0.020),
        ];
        let generated: Vec<(String, Severity)> = ["a", "a", "b", "b"]
            .iter()
            .map(|s| (s.to_string(), Severity::Sev2))
            .collect();
        let unfinished = Unfinished {
            dropped: vec![(3, "b".into(), Severity::Sev2)],
            ..Unfinished::default()
        };
        let r = Report::build(
            RunInfo::default(),
            &generated,
            &records,
            &unfinished,
            2.0,
            None,
        );
        assert_eq!(
            (r.generated, r.completed, r.fixed, r.failed, r.dropped),
            (4, 3, 2, 1, 1)
        );
        assert_eq!(r.mean_steps, Some(4.0));
        assert_eq!(r.refused_actions, 1);
        assert_eq!(r.latency_s.p95, Some(1.02));
        assert_eq!(r.service_s.p50, Some(0.020));
        assert_eq!(r.throughput_per_s, Some(1.5));
        assert_eq!(r.per_scenario[0].fix_rate, Some(0.5));
        assert_eq!(r.per_scenario[1].generated, 2);
        assert_eq!(r.per_scenario[1].completed, 1);
        let text = r.to_text();
        assert!(
            text.contains("generated 4  completed 3  fixed 2  failed 1  dropped 1"),
            "{text}"
        );
    }
}
