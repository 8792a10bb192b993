//! Traces across the cluster's processes, read back from a real Jaeger: an
//! Incident the operator resolves is one trace, named by its UID, whose
//! tree runs from the operator's root through the agent Job's steps, the
//! Action API and the gate, to the sandbox sidecar's run, and ends in the
//! controller's probe; the service's key appears in none of it.

use std::collections::HashSet;

use remediator::crd::{Decision, IncidentPhase};
use serde_json::json;

use crate::jaeger::{self, Jaeger};
use crate::operator::{Operator, assert_resolved, cluster, loopback, service};

/// The value of the key bad_env_config's service needs; the runbook
/// restores it from the example file, so it passes through the sandbox.
const SERVICE_KEY: &str = "local-dev-key";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_incident_is_one_trace_across_operator_agent_and_sidecar() {
    let Some(cluster) = cluster("traces").await else {
        return;
    };
    let Some(jaeger) = Jaeger::start().await else {
        return;
    };
    let (api, metrics) = (loopback(), loopback());
    let url = service(vec![api], vec![metrics]).await;
    let _operator = Operator::start_with_env(
        &cluster,
        api,
        metrics,
        &url,
        None,
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", jaeger.otlp.as_str())],
    )
    .await;
    cluster.policy("traced", "{}").await;
    cluster
        .incident("traced-env", "bad_env_config", "traced")
        .await;
    let incident = cluster.phase("traced-env", IncidentPhase::Resolved).await;
    assert_resolved(&incident);
    let status = incident.status.as_ref().unwrap();
    let uid = incident.metadata.uid.clone().unwrap();
    let trace_id = status
        .trace_id
        .clone()
        .unwrap_or_else(|| panic!("no traceId in status: {status:#?}"));
    assert_eq!(
        trace_id,
        uid.replace('-', ""),
        "the trace is named by the UID"
    );

    // Complete once the root arrived (the operator sends it last) and
    // every executed action's sidecar run did.
    let executed = |action: &remediator::crd::ActionRecord| {
        matches!(action.decision, Decision::Allowed | Decision::Confirmed)
    };
    let runs = status.actions.iter().filter(|a| executed(a)).count();
    assert!(runs > 0, "{status:#?}");
    let trace = jaeger
        .trace(&trace_id, |t| {
            let spans = jaeger::spans(t);
            spans.iter().any(|s| s.parent.is_none())
                && spans.iter().filter(|s| s.name == "sandbox.run").count() >= runs
        })
        .await;
    let spans = jaeger::spans(&trace);
    let names: Vec<(&str, &str)> = spans
        .iter()
        .map(|s| (s.service.as_str(), s.name.as_str()))
        .collect();
    let by_id = |id: &str| spans.iter().find(|s| s.id == id);
    let ancestors = |span: &jaeger::Span| {
        let mut up = Vec::new();
        let mut at = span.parent.clone();
        while let Some(id) = at {
            let parent =
                by_id(&id).unwrap_or_else(|| panic!("{id} is not in the trace: {names:?}"));
            up.push(parent.clone());
            at = parent.parent.clone();
        }
        up
    };

    let roots: Vec<_> = spans.iter().filter(|s| s.parent.is_none()).collect();
    assert_eq!(roots.len(), 1, "one root: {names:?}");
    let root = roots[0];
    assert_eq!(root.name, "incident traced-env");
    assert_eq!(root.service, "remediator-operator");
    assert_eq!(root.tag("phase"), Some(&json!("Resolved")));
    assert_eq!(root.tag("scenario"), Some(&json!("bad_env_config")));
    // Every span hangs from the root: no orphan, whichever process sent it.
    for span in &spans {
        if span.parent.is_some() {
            assert_eq!(
                ancestors(span).last().map(|r| r.id.as_str()),
                Some(root.id.as_str()),
                "{span:?}"
            );
        }
    }
    let services: HashSet<&str> = spans.iter().map(|s| s.service.as_str()).collect();
    for wanted in [
        "remediator-operator",
        "remediator-agent",
        "remediator-sandbox",
    ] {
        assert!(services.contains(wanted), "no {wanted} spans: {names:?}");
    }

    // Each recorded action: the operator's gate span with its verdict,
    // under the agent's step, and the sidecar's run under the gate.
    for action in &status.actions {
        let step = action.step;
        let recorded = serde_json::to_value(action).unwrap();
        let gate = spans
            .iter()
            .find(|s| s.name == format!("gate {step}") && s.tag("action.kind").is_some())
            .unwrap_or_else(|| panic!("no gate span for step {step}: {names:?}"));
        assert_eq!(gate.service, "remediator-operator");
        assert_eq!(gate.tag("action.kind"), Some(&recorded["kind"]), "{gate:?}");
        assert_eq!(gate.tag("action.command"), Some(&recorded["command"]));
        assert_eq!(gate.tag("risk"), Some(&recorded["risk"]));
        assert_eq!(gate.tag("decided_by"), Some(&recorded["decidedBy"]));
        assert!(gate.tag("decision").is_some(), "{gate:?}");
        let up = ancestors(gate);
        assert!(
            up.iter()
                .any(|s| s.service == "remediator-agent" && s.name == format!("step {step}")),
            "the gate of step {step} is not under the agent's step: {up:#?}"
        );
        if !executed(action) {
            continue;
        }
        let run = spans
            .iter()
            .find(|s| {
                s.name == "sandbox.run"
                    && s.tag("step") == Some(&json!(step))
                    && s.service == "remediator-sandbox"
            })
            .unwrap_or_else(|| panic!("no sidecar run for step {step}: {names:?}"));
        assert!(run.tag("containment").is_some(), "{run:?}");
        assert_eq!(run.tag("exit_code"), recorded.get("exitCode"), "{run:?}");
        assert!(
            ancestors(run).iter().any(|s| s.id == gate.id),
            "step {step}'s sidecar run is not under its gate"
        );
    }
    // The controller's own probe, inside a reconcile of this incident.
    let verdict = spans
        .iter()
        .find(|s| s.name == "verify" && s.tag("healthy") == Some(&json!(true)))
        .unwrap_or_else(|| panic!("no healthy probe: {names:?}"));
    assert_eq!(verdict.service, "remediator-operator");
    assert!(ancestors(verdict).iter().any(|s| s.name == "reconcile"));

    // The operator's JSON log lines inside the incident's spans name its
    // trace, so a log search leads to the trace.
    let logs = cluster.logs();
    let decided: Vec<serde_json::Value> = logs
        .iter()
        .filter(|(name, _)| name.starts_with("operator-"))
        .flat_map(|(_, text)| text.lines())
        .filter_map(|line| serde_json::from_str(line).ok())
        .filter(|line: &serde_json::Value| line["fields"]["message"] == "step decided")
        .collect();
    assert!(!decided.is_empty(), "no step decided in the operator's log");
    for line in &decided {
        assert_eq!(line["trace_id"], json!(trace_id), "{line}");
        let span_id = line["span_id"].as_str().unwrap_or_default();
        assert!(
            spans
                .iter()
                .any(|s| s.id == span_id && s.name.starts_with("gate ")),
            "the log line's span is its step's gate: {line}"
        );
    }

    // The key went through the sandbox (the fix copied it into place)...
    let root = cluster
        .kubelet
        .service_root("traced-env-scenario")
        .expect("the scenario Pod runs");
    let env = std::fs::read_to_string(root.join("service.env")).unwrap();
    assert!(env.contains(SERVICE_KEY), "the fix wrote the key: {env}");
    // ...and into none of the spans.
    let whole = trace.to_string();
    assert!(
        !whole.contains(SERVICE_KEY),
        "the trace holds the service's key"
    );
}
