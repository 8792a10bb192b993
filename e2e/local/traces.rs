//! Traces, read back from a real Jaeger: one local incident is one trace
//! whose tree says what happened (each step, its sandbox run, each model
//! call with its tokens, the probe), whose id is in the status and the
//! trajectory, and which holds no secret. Without an endpoint nothing is
//! exported and status has no trace id; an unreachable collector costs a
//! warning, never the incident.

use serde_json::{Value, json};

use crate::cli::{Ran, remediator};
use crate::jaeger::{self, Jaeger};
use crate::scripted_llm::{Reply, ScriptedLlm, call};

/// The value of the key bad_env_config's service needs, which the agent
/// only ever sees as a handle.
const SERVICE_KEY: &str = "local-dev-key";

fn last_tool_message(request: &Value) -> String {
    let messages = request["messages"].as_array().unwrap();
    let last = messages.iter().rev().find(|m| m["role"] == "tool");
    last.and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// The model restores the missing key from the example (as the handle it
/// saw), restarts, then tries to read the value, and finishes.
async fn key_restoring_model() -> ScriptedLlm {
    ScriptedLlm::start(vec![
        call(
            "run_command",
            json!({"command": "cat service.env.example", "security_risk": "LOW"}),
        ),
        Reply::Dynamic(Box::new(|request: &Value| {
            let content: String = last_tool_message(request)
                .lines()
                .filter(|l| l.contains('=') && !l.starts_with('#'))
                .map(|l| format!("{l}\n"))
                .collect();
            call(
                "write_file",
                json!({"path": "service.env", "content": content, "security_risk": "MEDIUM"}),
            )
        })),
        call("restart_service", json!({"security_risk": "MEDIUM"})),
        call(
            "run_command",
            json!({"command": "cat service.env; env", "security_risk": "LOW"}),
        ),
        call("finish", json!({"summary": "key restored"})),
    ])
    .await
}

async fn run(dir: &std::path::Path, server: &ScriptedLlm, otel: &[(&str, &str)]) -> Ran {
    let policy = dir.join("policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: remediator.dev/v1alpha1\nkind: Policy\nmetadata: {name: traced}\nspec: {brain: llm}\n",
    )
    .unwrap();
    let args = [
        "run",
        "--scenario",
        "bad_env_config",
        "--policy",
        policy.to_str().unwrap(),
        "-o",
        "json",
    ];
    let mut env = vec![
        ("OPENAI_API_KEY", "k"),
        ("OPENAI_BASE_URL", server.base_url.as_str()),
    ];
    env.extend_from_slice(otel);
    remediator(dir, &args, &env).await
}

async fn run_exporting(dir: &std::path::Path, server: &ScriptedLlm, jaeger: &Jaeger) -> Ran {
    run(
        dir,
        server,
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", jaeger.otlp.as_str())],
    )
    .await
}

#[tokio::test]
async fn a_local_incident_is_one_trace_that_tells_what_happened_and_keeps_no_secret() {
    let Some(jaeger) = Jaeger::start().await else {
        return;
    };
    let server = key_restoring_model().await;
    let dir = tempfile::tempdir().unwrap();
    let ran = run_exporting(dir.path(), &server, &jaeger).await;
    let status = ran.status();
    assert_eq!(status["phase"], "Resolved", "{status}\n{}", ran.stderr);
    let trace_id = status["traceId"]
        .as_str()
        .unwrap_or_else(|| panic!("{status}"));
    assert!(
        trace_id.len() == 32 && trace_id.chars().all(|c| c.is_ascii_hexdigit()),
        "{trace_id}"
    );

    let is_root = |s: &jaeger::Span| s.parent.is_none();
    let trace = jaeger
        .trace(trace_id, |t| jaeger::spans(t).iter().any(is_root))
        .await;
    let spans = jaeger::spans(&trace);
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    let roots: Vec<_> = spans.iter().filter(|s| is_root(s)).collect();
    assert_eq!(roots.len(), 1, "one root: {names:?}");
    let root = roots[0];
    assert!(root.name.starts_with("incident "), "{names:?}");
    assert_eq!(root.tag("scenario"), Some(&json!("bad_env_config")));
    assert_eq!(root.tag("phase"), Some(&json!("Resolved")));
    assert_eq!(root.service, "remediator");
    let by_id = |id: &str| spans.iter().find(|s| s.id == id);
    let ancestors = |span: &jaeger::Span| {
        let mut names = Vec::new();
        let mut at = span.parent.clone();
        while let Some(id) = at {
            let parent = by_id(&id).unwrap_or_else(|| panic!("{id} is not in the trace"));
            names.push(parent.name.clone());
            at = parent.parent.clone();
        }
        names
    };

    // Every recorded action is a step span with the gate's verdict, and
    // every executed one has its sandbox run beneath it.
    let actions = status["actions"].as_array().unwrap();
    for action in actions {
        let step = action["step"].as_u64().unwrap();
        let span = spans
            .iter()
            .find(|s| s.name == format!("step {step}"))
            .unwrap_or_else(|| panic!("no span for step {step}: {names:?}"));
        assert_eq!(span.tag("action.kind"), Some(&action["kind"]), "{span:?}");
        assert_eq!(span.tag("action.command"), Some(&action["command"]));
        assert_eq!(span.tag("risk"), Some(&action["risk"]));
        assert_eq!(span.tag("decided_by"), Some(&action["decidedBy"]));
        assert_eq!(
            ancestors(span).last().map(String::as_str),
            Some(root.name.as_str())
        );
        let run = spans
            .iter()
            .find(|s| s.name == "sandbox.run" && s.parent.as_deref() == Some(&span.id))
            .unwrap_or_else(|| panic!("no sandbox run under step {step}: {spans:#?}"));
        assert_eq!(run.tag("exit_code"), action.get("exitCode"), "{run:?}");
        assert!(run.tag("containment").is_some(), "{run:?}");
    }
    // Each model call is a client span with its model and tokens (the
    // scripted server's usage: 100 in, 10 out), under a step's proposal.
    let chats: Vec<_> = spans
        .iter()
        .filter(|s| s.name.starts_with("chat "))
        .collect();
    assert_eq!(chats.len(), server.requests().len(), "{names:?}");
    for chat in &chats {
        assert_eq!(chat.tag("gen_ai.operation.name"), Some(&json!("chat")));
        assert_eq!(chat.tag("gen_ai.usage.input_tokens"), Some(&json!(100)));
        assert_eq!(chat.tag("gen_ai.usage.output_tokens"), Some(&json!(10)));
        assert_eq!(chat.tag("span.kind"), Some(&json!("client")));
        let up = ancestors(chat);
        assert_eq!(up.first().map(String::as_str), Some("propose"), "{up:?}");
        assert!(up[1].starts_with("step "), "{up:?}");
    }
    assert!(
        chats
            .iter()
            .any(|c| c.tag("gen_ai.tool.name") == Some(&json!("write_file")))
    );
    // The controller's own probe, which decided Resolved.
    let verdict = spans
        .iter()
        .find(|s| s.name == "verify" && s.parent.as_deref() == Some(&root.id))
        .unwrap_or_else(|| panic!("no verification under the root: {names:?}"));
    assert_eq!(verdict.tag("healthy"), Some(&json!(true)));

    let whole = trace.to_string();
    assert!(!whole.contains(SERVICE_KEY), "the trace holds the key");
    assert!(
        !whole.contains("OPENAI") && !whole.contains("\"k\""),
        "{whole}"
    );

    let runs = dir.path().join("artifacts/runs");
    let trajectory = std::fs::read_dir(runs).unwrap().flatten().next().unwrap();
    let line: Value = serde_json::from_str(
        std::fs::read_to_string(trajectory.path())
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(line["trace_id"], trace_id, "the trajectory links its trace");
}

/// A failure's words stay in the status: the model endpoint's error (here
/// quoting a planted token) and the broken service's answer to the probe
/// reach the trace as their kind only.
#[tokio::test]
async fn a_failed_incident_leaves_its_error_text_out_of_the_trace() {
    const PLANTED: &str = "sk-planted-in-an-error-body";
    let Some(jaeger) = Jaeger::start().await else {
        return;
    };
    let server = ScriptedLlm::start(vec![
        call(
            "run_command",
            json!({"command": "cat service.env.example", "security_risk": "LOW"}),
        ),
        Reply::Status(
            400,
            json!({"error": {"message": format!("quota exceeded for {PLANTED}"), "type": "invalid_request_error"}}),
        ),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let ran = run_exporting(dir.path(), &server, &jaeger).await;
    let status = ran.status();
    assert_eq!(status["phase"], "Failed", "{status}\n{}", ran.stderr);
    assert!(
        status["message"].as_str().unwrap().contains(PLANTED),
        "the status keeps the words: {status}"
    );
    let trace_id = status["traceId"].as_str().unwrap();
    let trace = jaeger
        .trace(trace_id, |t| {
            jaeger::spans(t).iter().any(|s| s.parent.is_none())
        })
        .await;
    let spans = jaeger::spans(&trace);
    let failed_call = spans
        .iter()
        .find(|s| s.name.starts_with("chat ") && s.tag("error.type").is_some())
        .unwrap_or_else(|| panic!("no failed model call: {spans:#?}"));
    assert_eq!(failed_call.tag("error.type"), Some(&json!("unavailable")));
    let root = spans.iter().find(|s| s.parent.is_none()).unwrap();
    assert_eq!(root.tag("phase"), Some(&json!("Failed")));
    let whole = trace.to_string();
    assert!(
        !whole.contains(PLANTED),
        "the trace quotes the error: {whole}"
    );
    assert!(!whole.contains(SERVICE_KEY), "the trace holds the key");
}

#[tokio::test]
async fn without_an_endpoint_nothing_is_traced() {
    let server = key_restoring_model().await;
    let dir = tempfile::tempdir().unwrap();
    let ran = run(dir.path(), &server, &[]).await;
    let status = ran.status();
    assert_eq!(status["phase"], "Resolved", "{status}");
    assert!(status.get("traceId").is_none(), "{status}");
}

#[tokio::test]
async fn an_unreachable_collector_costs_a_warning_not_the_incident() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let server = key_restoring_model().await;
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("http://{closed}");
    let ran = run(
        dir.path(),
        &server,
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())],
    )
    .await;
    let status = ran.status();
    assert_eq!(status["phase"], "Resolved", "{status}\n{}", ran.stderr);
    assert_eq!(ran.code, Some(0));
    assert!(!ran.stderr.contains("panicked"), "{}", ran.stderr);
    assert!(
        ran.stderr
            .contains(&format!("could not be exported to {endpoint}")),
        "the lost traces are named: {}",
        ran.stderr
    );
}
