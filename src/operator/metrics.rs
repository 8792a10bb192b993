//! The operator's metrics, one registry, prefix `remediator_`.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

use crate::crd::{ActionRecord, IncidentStatus};

pub struct Metrics {
    registry: Registry,
    pub incidents: IntCounterVec,
    pub incident_steps: HistogramVec,
    pub time_to_resolve: HistogramVec,
    pub actions: IntCounterVec,
    pub approvals_pending: IntGauge,
    pub llm_tokens: IntCounterVec,
    pub reconcile_duration: Histogram,
    pub reconcile_errors: IntCounter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry =
            Registry::new_custom(Some("remediator".into()), None).expect("a valid registry prefix");
        let incidents = IntCounterVec::new(
            Opts::new(
                "incidents_total",
                "Incidents finished, by scenario, policy and outcome",
            ),
            &["scenario", "policy", "outcome"],
        )
        .expect("valid metric");
        let incident_steps = HistogramVec::new(
            HistogramOpts::new("incident_steps", "Steps an incident took")
                .buckets(vec![1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 34.0, 55.0, 89.0]),
            &["policy"],
        )
        .expect("valid metric");
        let time_to_resolve = HistogramVec::new(
            HistogramOpts::new(
                "time_to_resolve_seconds",
                "From the incident's start to verified health",
            )
            .buckets(vec![1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0]),
            &["policy"],
        )
        .expect("valid metric");
        let actions = IntCounterVec::new(
            Opts::new(
                "actions_total",
                "Actions the gate decided, by risk and decision",
            ),
            &["risk", "decision"],
        )
        .expect("valid metric");
        let approvals_pending = IntGauge::new(
            "approvals_pending",
            "Actions waiting for an approve/reject annotation",
        )
        .expect("valid metric");
        let llm_tokens = IntCounterVec::new(
            Opts::new("llm_tokens_total", "LLM tokens used, prompt and completion"),
            &["direction"],
        )
        .expect("valid metric");
        let reconcile_duration = Histogram::with_opts(
            HistogramOpts::new("reconcile_duration_seconds", "Time one reconcile took").buckets(
                vec![0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0],
            ),
        )
        .expect("valid metric");
        let reconcile_errors = IntCounter::new("reconcile_errors_total", "Reconciles that failed")
            .expect("valid metric");
        for collector in [
            Box::new(incidents.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(incident_steps.clone()),
            Box::new(time_to_resolve.clone()),
            Box::new(actions.clone()),
            Box::new(approvals_pending.clone()),
            Box::new(llm_tokens.clone()),
            Box::new(reconcile_duration.clone()),
            Box::new(reconcile_errors.clone()),
        ] {
            registry
                .register(collector)
                .expect("each metric registered once");
        }
        Self {
            registry,
            incidents,
            incident_steps,
            time_to_resolve,
            actions,
            approvals_pending,
            llm_tokens,
            reconcile_duration,
            reconcile_errors,
        }
    }

    /// The text exposition format, for `/metrics`.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    pub fn record_actions(&self, records: &[ActionRecord]) {
        for record in records {
            self.actions
                .with_label_values(&[&record.risk.to_string(), &format!("{:?}", record.decision)])
                .inc();
        }
    }

    /// An incident reached a terminal phase.
    pub fn record_outcome(&self, scenario: &str, status: &IncidentStatus) {
        let policy = status
            .agent
            .as_ref()
            .and_then(|a| a.policy.clone())
            .unwrap_or_default();
        let outcome = status.reason.as_deref().unwrap_or("Unknown");
        self.incidents
            .with_label_values(&[scenario, &policy, outcome])
            .inc();
        self.incident_steps
            .with_label_values(&[&policy])
            .observe(f64::from(status.steps));
        if let Some(seconds) = status.time_to_resolve_seconds {
            self.time_to_resolve
                .with_label_values(&[&policy])
                .observe(seconds);
        }
        if let Some(tokens) = status.agent.as_ref().and_then(|a| a.tokens) {
            self.llm_tokens
                .with_label_values(&["prompt"])
                .inc_by(tokens.prompt);
            self.llm_tokens
                .with_label_values(&["completion"])
                .inc_by(tokens.completion);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_exposed_under_the_prefix() {
        let metrics = Metrics::new();
        let resolved = IncidentStatus {
            time_to_resolve_seconds: Some(12.0),
            ..IncidentStatus::default()
        };
        metrics.record_outcome("s", &resolved);
        metrics.actions.with_label_values(&["LOW", "Allowed"]).inc();
        metrics.llm_tokens.with_label_values(&["prompt"]).inc();
        metrics.reconcile_duration.observe(0.01);
        metrics.reconcile_errors.inc();
        let text = metrics.render();
        for name in [
            "remediator_incidents_total",
            "remediator_incident_steps",
            "remediator_time_to_resolve_seconds",
            "remediator_actions_total",
            "remediator_approvals_pending",
            "remediator_llm_tokens_total",
            "remediator_reconcile_duration_seconds",
            "remediator_reconcile_errors_total",
        ] {
            assert!(text.contains(name), "{name} missing:\n{text}");
        }
    }
}
