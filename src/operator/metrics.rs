//! The operator's metrics, one registry, prefix `remediator_`.

use prometheus::{
    CounterVec, Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter,
    IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::crd::{ActionRecord, Incident, IncidentStatus};

pub struct Metrics {
    registry: Registry,
    pub incidents: IntCounterVec,
    pub incident_steps: HistogramVec,
    pub time_to_resolve: HistogramVec,
    pub actions: IntCounterVec,
    /// Set from the Incidents the leader sees ([`Metrics::observe_pending`]),
    /// so a restarted or new leader reports what is really waiting.
    pub approvals_pending: IntGaugeVec,
    pub approval_wait: GaugeVec,
    pub llm_tokens: IntCounterVec,
    /// Model requests and the time spent waiting for them, by policy.
    pub llm_requests: IntCounterVec,
    pub llm_model_seconds: CounterVec,
    /// Tool calls by how the model wrote them: `native` (`tool_calls`) or
    /// `content` (JSON in the reply's text).
    pub llm_tool_calls: IntCounterVec,
    pub reconcile_duration: Histogram,
    pub reconcile_errors: IntCounter,
    /// Notices sent to webhooks, by event and outcome (delivered, failed).
    pub notices: IntCounterVec,
    /// Approve/reject links followed, by outcome: accepted, or why refused.
    pub approval_links: IntCounterVec,
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
                "Actions the gate decided, by policy, risk and decision",
            ),
            &["policy", "risk", "decision"],
        )
        .expect("valid metric");
        let approvals_pending = IntGaugeVec::new(
            Opts::new(
                "approvals_pending",
                "Actions waiting for an approve/reject annotation, by policy",
            ),
            &["policy"],
        )
        .expect("valid metric");
        let approval_wait = GaugeVec::new(
            Opts::new(
                "approval_oldest_wait_seconds",
                "How long the oldest pending approval has waited, by policy",
            ),
            &["policy"],
        )
        .expect("valid metric");
        let llm_tokens = IntCounterVec::new(
            Opts::new("llm_tokens_total", "LLM tokens used, prompt and completion"),
            &["direction"],
        )
        .expect("valid metric");
        // Both directions exist from the start, at 0, so a dashboard shows
        // "no tokens yet" rather than "no data".
        for direction in ["prompt", "completion"] {
            llm_tokens.with_label_values(&[direction]);
        }
        let llm_requests = IntCounterVec::new(
            Opts::new(
                "llm_requests_total",
                "Requests made to the model, by policy",
            ),
            &["policy"],
        )
        .expect("valid metric");
        let llm_model_seconds = CounterVec::new(
            Opts::new(
                "llm_model_seconds_total",
                "Time spent waiting for the model, by policy",
            ),
            &["policy"],
        )
        .expect("valid metric");
        let llm_tool_calls = IntCounterVec::new(
            Opts::new(
                "llm_tool_calls_total",
                "Tool calls the model made, by format: native tool_calls or JSON in content",
            ),
            &["format"],
        )
        .expect("valid metric");
        for format in ["native", "content"] {
            llm_tool_calls.with_label_values(&[format]);
        }
        let reconcile_duration = Histogram::with_opts(
            HistogramOpts::new("reconcile_duration_seconds", "Time one reconcile took").buckets(
                vec![0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0],
            ),
        )
        .expect("valid metric");
        let reconcile_errors = IntCounter::new("reconcile_errors_total", "Reconciles that failed")
            .expect("valid metric");
        let notices = IntCounterVec::new(
            Opts::new(
                "notices_total",
                "Notices sent to the Policies' webhooks, by event and outcome",
            ),
            &["event", "outcome"],
        )
        .expect("valid metric");
        let approval_links = IntCounterVec::new(
            Opts::new(
                "approval_links_total",
                "Approve/reject links answered, by outcome (accepted, or why refused)",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        for collector in [
            Box::new(incidents.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(notices.clone()),
            Box::new(approval_links.clone()),
            Box::new(incident_steps.clone()),
            Box::new(time_to_resolve.clone()),
            Box::new(actions.clone()),
            Box::new(approvals_pending.clone()),
            Box::new(approval_wait.clone()),
            Box::new(llm_tokens.clone()),
            Box::new(llm_requests.clone()),
            Box::new(llm_model_seconds.clone()),
            Box::new(llm_tool_calls.clone()),
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
            approval_wait,
            llm_tokens,
            llm_requests,
            llm_model_seconds,
            llm_tool_calls,
            reconcile_duration,
            reconcile_errors,
            notices,
            approval_links,
        }
    }

    /// The text exposition format, for `/metrics`.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// Actions the gate decided for an incident under `policy`.
    pub fn record_actions(&self, policy: &str, records: &[ActionRecord]) {
        for record in records {
            self.actions
                .with_label_values(&[
                    policy,
                    &record.risk.to_string(),
                    &format!("{:?}", record.decision),
                ])
                .inc();
        }
    }

    /// Sets the approval gauges from the Incidents as they are now: every
    /// one that waits for an approve/reject annotation counts, under the
    /// Policy it runs with; policies with nothing waiting drop out.
    pub fn observe_pending<'a>(
        &self,
        incidents: impl IntoIterator<Item = &'a Incident>,
        now: k8s_openapi::jiff::Timestamp,
    ) {
        self.approvals_pending.reset();
        self.approval_wait.reset();
        for incident in incidents {
            let Some(status) = incident.status.as_ref() else {
                continue;
            };
            let Some(pending) = status.pending_approval.as_ref() else {
                continue;
            };
            if status.phase.is_terminal() {
                continue;
            }
            let policy = status
                .agent
                .as_ref()
                .and_then(|a| a.policy.clone())
                .unwrap_or_else(|| incident.spec.policy_ref.name.clone());
            self.approvals_pending.with_label_values(&[&policy]).inc();
            let waited = (now - pending.requested_at.0)
                .total(k8s_openapi::jiff::Unit::Second)
                .unwrap_or(0.0)
                .max(0.0);
            let oldest = self.approval_wait.with_label_values(&[&policy]);
            if waited > oldest.get() {
                oldest.set(waited);
            }
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
            self.llm_requests
                .with_label_values(&[&policy])
                .inc_by(tokens.requests);
            self.llm_model_seconds
                .with_label_values(&[&policy])
                .inc_by(tokens.model_ms as f64 / 1000.0);
            self.llm_tool_calls
                .with_label_values(&["native"])
                .inc_by(tokens.native_tool_calls);
            self.llm_tool_calls
                .with_label_values(&["content"])
                .inc_by(tokens.content_tool_calls);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{IncidentPhase, IncidentSpec, PendingApproval, PolicyRef};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    #[test]
    fn every_metric_is_exposed_under_the_prefix() {
        let metrics = Metrics::new();
        let resolved = IncidentStatus {
            time_to_resolve_seconds: Some(12.0),
            agent: Some(crate::crd::AgentInfo {
                tokens: Some(crate::crd::TokenUsage {
                    prompt: 100,
                    completion: 20,
                    requests: 3,
                    model_ms: 4500,
                    content_tool_calls: 1,
                    native_tool_calls: 2,
                }),
                ..crate::crd::AgentInfo::default()
            }),
            ..IncidentStatus::default()
        };
        metrics.record_outcome("s", &resolved);
        metrics
            .actions
            .with_label_values(&["p", "LOW", "Allowed"])
            .inc();
        metrics.approvals_pending.with_label_values(&["p"]).set(0);
        metrics.approval_wait.with_label_values(&["p"]).set(0.0);
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
            "remediator_approval_oldest_wait_seconds",
            "remediator_llm_tokens_total",
            "remediator_llm_requests_total",
            "remediator_llm_model_seconds_total",
            "remediator_llm_tool_calls_total",
            "remediator_reconcile_duration_seconds",
            "remediator_reconcile_errors_total",
        ] {
            assert!(text.contains(name), "{name} missing:\n{text}");
        }
        for line in [
            "remediator_llm_tokens_total{direction=\"prompt\"} 101",
            "remediator_llm_requests_total{policy=\"\"} 3",
            "remediator_llm_model_seconds_total{policy=\"\"} 4.5",
            "remediator_llm_tool_calls_total{format=\"content\"} 1",
            "remediator_llm_tool_calls_total{format=\"native\"} 2",
        ] {
            assert!(text.contains(line), "{line} missing:\n{text}");
        }
    }

    fn waiting(policy: &str, phase: IncidentPhase, waited_s: i64) -> Incident {
        let now = k8s_openapi::jiff::Timestamp::from_second(1_000_000).unwrap();
        let mut incident = Incident::new(
            "i",
            IncidentSpec {
                scenario: "s".into(),
                policy_ref: PolicyRef {
                    name: policy.into(),
                },
            },
        );
        incident.status = Some(IncidentStatus {
            phase,
            pending_approval: Some(PendingApproval {
                step: 2,
                kind: "exec".into(),
                command: "rm -f service.lock".into(),
                risk: crate::risk::SecurityRisk::Medium,
                reason: "MEDIUM needs confirmation".into(),
                requested_at: Time(now - k8s_openapi::jiff::SignedDuration::from_secs(waited_s)),
                deadline: None,
                action_hash: None,
                content: None,
                diff: None,
            }),
            ..IncidentStatus::default()
        });
        incident
    }

    #[test]
    fn pending_approvals_come_from_the_incidents_as_they_are_now() {
        let metrics = Metrics::new();
        let now = k8s_openapi::jiff::Timestamp::from_second(1_000_000).unwrap();
        let incidents = [
            waiting("careful", IncidentPhase::AwaitingApproval, 30),
            waiting("careful", IncidentPhase::AwaitingApproval, 90),
            waiting("other", IncidentPhase::AwaitingApproval, 5),
            // Finished incidents wait for nothing, whatever status still says.
            waiting("done", IncidentPhase::Failed, 500),
        ];
        metrics.observe_pending(&incidents, now);
        let text = metrics.render();
        assert!(
            text.contains("remediator_approvals_pending{policy=\"careful\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("remediator_approval_oldest_wait_seconds{policy=\"careful\"} 90"),
            "{text}"
        );
        assert!(
            text.contains("remediator_approvals_pending{policy=\"other\"} 1"),
            "{text}"
        );
        assert!(!text.contains("policy=\"done\""), "{text}");
        // Approved since: the policy drops out instead of staying at a stale count.
        metrics.observe_pending(&incidents[2..3], now);
        let text = metrics.render();
        assert!(!text.contains("policy=\"careful\""), "{text}");
    }
}
