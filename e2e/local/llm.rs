//! The LLM brain end to end: the real binary, real HTTP to a scripted
//! OpenAI-compatible server, a real broken service.

use std::time::Duration;

use serde_json::{Value, json};

use crate::cli::remediator;
use crate::scripted_llm::{Reply, ScriptedLlm, call};

const LLM_RUN: &[&str] = &[
    "run",
    "--scenario",
    "stale_lockfile",
    "--brain",
    "llm",
    "-o",
    "json",
];

fn tool_messages(request: &Value) -> Vec<String> {
    request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn run_with(server: &ScriptedLlm, extra: &[&str]) -> crate::cli::Ran {
    let dir = tempfile::tempdir().unwrap();
    let args: Vec<&str> = LLM_RUN.iter().chain(extra).copied().collect();
    remediator(
        dir.path(),
        &args,
        &[
            ("OPENAI_API_KEY", "test-key"),
            ("OPENAI_BASE_URL", &server.base_url),
        ],
    )
    .await
}

/// Runs with a Policy manifest whose spec is `spec` (flow-style YAML).
async fn run_with_policy(server: &ScriptedLlm, spec: &str) -> crate::cli::Ran {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    let manifest = format!(
        "apiVersion: remediator.dev/v1alpha1\nkind: Policy\nmetadata: {{name: test}}\nspec: {spec}\n"
    );
    std::fs::write(&policy, manifest).unwrap();
    run_with(server, &["--policy", policy.to_str().unwrap()]).await
}

#[tokio::test]
async fn tool_calls_fix_the_service_and_usage_is_recorded() {
    let server = ScriptedLlm::start(vec![
        call(
            "http_get",
            json!({"path": "/health", "security_risk": "LOW"}),
        ),
        call(
            "run_command",
            json!({"command": "rm -f service.lock", "security_risk": "MEDIUM"}),
        ),
        call("finish", json!({"summary": "removed the stale lock"})),
    ])
    .await;
    let ran = run_with(&server, &[]).await;
    let status = ran.status();
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    assert_eq!(status["phase"], "Resolved");
    assert_eq!(status["steps"], 2);
    assert_eq!(status["agent"]["brain"], "llm");
    assert_eq!(status["agent"]["model"], "gpt-4.1-mini");
    let tokens = &status["agent"]["tokens"];
    assert_eq!(tokens["prompt"], 300, "{tokens}");
    assert_eq!(tokens["completion"], 30, "{tokens}");
    assert_eq!(tokens["requests"], 3, "{tokens}");
    assert_eq!(tokens["nativeToolCalls"], 3, "{tokens}");
    assert!(tokens["modelMs"].is_u64(), "{tokens}");
    assert_eq!(status["agent"]["toolCallFormat"], "toolCalls");
    assert_eq!(status["actions"][1]["declaredRisk"], "MEDIUM");

    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    for request in &requests {
        assert_eq!(request["tool_choice"], "auto");
        assert_eq!(request["model"], "gpt-4.1-mini");
        let names: Vec<&str> = request["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["function"]["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"run_command") && names.contains(&"finish"),
            "{names:?}"
        );
    }
    let first = serde_json::to_string(&requests[0]).unwrap();
    assert!(
        !first.contains("stale_lockfile"),
        "the model must not see the scenario id"
    );
    let observations = tool_messages(&requests[1]);
    assert!(
        observations[0].contains("http_status: 500"),
        "{observations:?}"
    );
    assert!(
        observations[0].contains("stale lock file"),
        "{observations:?}"
    );
}

#[tokio::test]
async fn a_model_declaring_low_cannot_lower_the_risk_of_a_destructive_command() {
    let outside = tempfile::tempdir().unwrap();
    let protected = outside.path().join("protected.txt");
    std::fs::write(&protected, "keep me").unwrap();
    let command = format!("rm -rf {}", outside.path().display());
    let server = ScriptedLlm::start(vec![
        call(
            "run_command",
            json!({"command": command, "security_risk": "LOW"}),
        ),
        call("finish", json!({"summary": "done"})),
    ])
    .await;
    let ran = run_with(&server, &["--max-security-risk", "MEDIUM"]).await;
    let action = &ran.status()["actions"][0];
    assert_eq!(action["declaredRisk"], "LOW");
    assert_eq!(action["risk"], "HIGH");
    assert_eq!(action["decision"], "Denied");
    assert!(protected.exists(), "the gate let a HIGH action run");
    let told = tool_messages(&server.requests()[1]);
    assert!(
        told[0].starts_with("NOT EXECUTED: denied by the risk gate"),
        "{told:?}"
    );
    assert_eq!(ran.status()["phase"], "Failed");
}

#[tokio::test]
async fn risk_exceeded_with_fail_policy_fails_the_incident_at_once() {
    let server = ScriptedLlm::start(vec![call(
        "run_command",
        json!({"command": "rm -rf run", "security_risk": "HIGH"}),
    )])
    .await;
    let ran = run_with_policy(
        &server,
        "{brain: llm, maxRisk: MEDIUM, onRiskExceeded: Fail}",
    )
    .await;
    let status = ran.status();
    assert_eq!(ran.code, Some(1));
    assert_eq!(status["phase"], "Failed");
    assert_eq!(status["reason"], "RiskLimitExceeded");
    assert_eq!(
        server.requests().len(),
        1,
        "no further model call after the violation"
    );
}

#[tokio::test]
async fn invalid_tool_arguments_are_answered_as_an_error_observation() {
    let server = ScriptedLlm::start(vec![
        Reply::ToolCall {
            name: "run_command",
            arguments: "{not json".into(),
        },
        call(
            "run_command",
            json!({"command": "rm -f service.lock", "security_risk": "MEDIUM"}),
        ),
        call("finish", json!({"summary": "ok"})),
    ])
    .await;
    let ran = run_with(&server, &[]).await;
    assert_eq!(ran.status()["phase"], "Resolved", "{}", ran.stdout);
    let told = tool_messages(&server.requests()[1]);
    assert!(
        told[0].starts_with("ERROR: arguments of run_command are not valid JSON"),
        "{told:?}"
    );
}

#[tokio::test]
async fn unauthorized_fails_at_once_with_a_clear_reason() {
    let server = ScriptedLlm::start(vec![Reply::Status(401, json!({"error": {"message": "Incorrect API key", "type": "invalid_request_error", "code": "invalid_api_key"}}))]).await;
    let ran = run_with(&server, &[]).await;
    let status = ran.status();
    assert_eq!(ran.code, Some(1));
    assert_eq!(status["reason"], "LlmUnavailable");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.contains("401") && message.contains("OPENAI_API_KEY"),
        "{message}"
    );
    assert_eq!(server.requests().len(), 1, "401 is not retried");
}

#[tokio::test]
async fn server_errors_are_retried() {
    let server = ScriptedLlm::start(vec![
        Reply::Status(
            500,
            json!({"error": {"message": "overloaded", "type": "server_error"}}),
        ),
        Reply::Status(
            429,
            json!({"error": {"message": "slow down", "type": "rate_limit"}}),
        ),
        call(
            "run_command",
            json!({"command": "rm -f service.lock", "security_risk": "MEDIUM"}),
        ),
        call("finish", json!({"summary": "ok"})),
    ])
    .await;
    let ran = run_with(&server, &[]).await;
    assert_eq!(ran.status()["phase"], "Resolved", "{}", ran.stdout);
    assert_eq!(server.requests().len(), 4);
}

#[tokio::test]
async fn a_slow_model_times_out_with_a_reason() {
    let server = ScriptedLlm::start(vec![Reply::Slow(
        Duration::from_secs(5),
        Box::new(call("finish", json!({"summary": "late"}))),
    )])
    .await;
    let ran = run_with_policy(
        &server,
        "{brain: llm, llm: {requestTimeoutSeconds: 1, maxRetries: 0}}",
    )
    .await;
    let message = ran.status()["message"].as_str().unwrap().to_string();
    assert_eq!(ran.status()["reason"], "LlmUnavailable");
    assert!(message.contains("did not answer within 1s"), "{message}");
}

#[tokio::test]
async fn a_huge_tool_output_reaches_the_model_truncated() {
    let server = ScriptedLlm::start(vec![
        call(
            "run_command",
            json!({"command": "head -c 5000000 /dev/zero | tr '\\0' x", "security_risk": "LOW"}),
        ),
        call("finish", json!({"summary": "looked"})),
    ])
    .await;
    run_with(&server, &[]).await;
    let told = tool_messages(&server.requests()[1]);
    assert!(told[0].len() < 20_000, "{} bytes", told[0].len());
    assert!(told[0].contains("more bytes truncated"));
}

#[tokio::test]
async fn an_unreachable_endpoint_fails_strictly_and_falls_back_when_allowed() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", closed.local_addr().unwrap());
    drop(closed);
    let dir = tempfile::tempdir().unwrap();
    let env = [("OPENAI_API_KEY", "k"), ("OPENAI_BASE_URL", url.as_str())];
    let strict = remediator(dir.path(), LLM_RUN, &env).await;
    assert_eq!(strict.code, Some(1));
    assert_eq!(strict.status()["reason"], "LlmUnavailable");
    assert!(
        strict.status()["message"]
            .as_str()
            .unwrap()
            .contains("cannot reach the LLM endpoint")
    );

    let args: Vec<&str> = LLM_RUN
        .iter()
        .copied()
        .chain(["--allow-fallback"])
        .collect();
    let fallback = remediator(dir.path(), &args, &env).await;
    let status = fallback.status();
    assert_eq!(fallback.code, Some(0), "{}", fallback.stdout);
    assert_eq!(status["phase"], "Resolved");
    assert_eq!(status["agent"]["fallbackUsed"], true);
    assert_eq!(status["agent"]["brain"], "llm+runbook");
    assert!(
        status["agent"]["fallbackReason"]
            .as_str()
            .unwrap()
            .contains("cannot reach")
    );
}

#[tokio::test]
async fn a_missing_api_key_fails_strictly_and_falls_back_when_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let strict = remediator(dir.path(), LLM_RUN, &[]).await;
    assert_eq!(strict.code, Some(1));
    assert_eq!(strict.status()["reason"], "LlmUnavailable");
    assert!(
        strict.status()["message"]
            .as_str()
            .unwrap()
            .contains("missing API key")
    );
    assert_eq!(strict.status()["steps"], 0);

    let args: Vec<&str> = LLM_RUN
        .iter()
        .copied()
        .chain(["--allow-fallback"])
        .collect();
    let fallback = remediator(dir.path(), &args, &[]).await;
    assert_eq!(fallback.status()["phase"], "Resolved");
    assert_eq!(fallback.status()["agent"]["fallbackUsed"], true);
}

#[tokio::test]
async fn fallback_never_turns_a_gate_violation_into_success() {
    let server = ScriptedLlm::start(vec![call(
        "run_command",
        json!({"command": "rm -rf data", "security_risk": "LOW"}),
    )])
    .await;
    let ran = run_with_policy(
        &server,
        "{brain: llm, allowFallback: true, onRiskExceeded: Fail}",
    )
    .await;
    assert_eq!(ran.status()["reason"], "RiskLimitExceeded");
    assert_eq!(ran.status()["agent"]["fallbackUsed"], false);
}

/// Prose is a claim to be done, which the probe checks. Before any step it
/// cannot be true, so it is asked again twice; a model that insists has its
/// claim refuted.
#[tokio::test]
async fn a_plain_text_reply_is_only_a_claim() {
    let claim = "All fixed, the service is healthy now.";
    let server = ScriptedLlm::start(vec![
        Reply::Text(claim),
        Reply::Text(claim),
        Reply::Text(claim),
    ])
    .await;
    let ran = run_with(&server, &[]).await;
    let status = ran.status();
    assert_eq!(ran.code, Some(1));
    assert_eq!(status["phase"], "Failed");
    assert_eq!(status["reason"], "ClaimNotVerified");
    assert!(
        status["message"].as_str().unwrap().contains("All fixed"),
        "{status}"
    );
    assert_eq!(status["verified"]["healthy"], false);
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    let asked_again = requests[2]["messages"].as_array().unwrap().iter().any(|m| {
        m["role"] == "user"
            && m["content"]
                .as_str()
                .is_some_and(|c| c.contains("no step has been taken yet"))
    });
    assert!(asked_again, "{:?}", requests[2]);
}

/// A model that answers the incident with the step it means is asked for
/// the call, and the episode goes on from there.
#[tokio::test]
async fn prose_before_the_first_step_is_asked_again_for_a_call() {
    let server = ScriptedLlm::start(vec![
        Reply::Text("GET /health"),
        Reply::Text("{\"name\": \"run_command\", \"arguments\": {\"command\": \"rm -f service.lock\", \"security_risk\": \"MEDIUM\"}}"),
        Reply::Text("The stale lock is gone; the service is healthy."),
    ])
    .await;
    let ran = run_with(&server, &[]).await;
    let status = ran.status();
    assert_eq!(status["phase"], "Resolved", "{status}");
    assert_eq!(status["steps"], 1, "{status}");
}

#[tokio::test]
async fn calls_written_as_text_are_read_recorded_as_such_and_replayed_in_that_form() {
    // How local servers without a tool-call parser answer: Qwen's tags, a
    // bare object with the arguments as a string, llama-cpp-python's
    // `functions.NAME:`, and an object the model wrote on past.
    let server = ScriptedLlm::start(vec![
        Reply::Text(
            "Checking first.\n<tool_call>\n{\"name\": \"http_get\", \"arguments\": {\"path\": \"/health\", \"security_risk\": \"LOW\"}}\n</tool_call>",
        ),
        Reply::Text(
            r#"{"name": "run_command", "arguments": "{\"command\": \"rm -f service.lock\", \"security_risk\": \"MEDIUM\"}"}"#,
        ),
        Reply::Text(
            r#"{"name":"http_get","arguments":{"path":"/health","security_risk":"LOW"},"response": {"http_status": 200, "bo"#,
        ),
        Reply::Text("functions.finish:\n{\"summary\": \"removed the stale lock\"}"),
    ])
    .await;
    let ran = run_with(&server, &[]).await;
    let status = ran.status();
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    assert_eq!(status["phase"], "Resolved", "{status}");
    assert_eq!(status["steps"], 3);
    assert_eq!(status["agent"]["toolCallFormat"], "content");
    let tokens = &status["agent"]["tokens"];
    assert_eq!(tokens["contentToolCalls"], 4, "{tokens}");
    assert_eq!(tokens["requests"], 4, "{tokens}");
    assert!(tokens.get("nativeToolCalls").is_none(), "{tokens}");
    assert_eq!(status["actions"][1]["command"], "rm -f service.lock");
    assert_eq!(status["actions"][1]["declaredRisk"], "MEDIUM");
    // The model sees its own form: no `tool_calls` in what is sent back.
    let requests = server.requests();
    let replayed = &requests[3]["messages"];
    let assistant: Vec<&Value> = replayed
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "assistant")
        .collect();
    assert_eq!(assistant.len(), 3);
    for message in &assistant {
        assert!(message.get("tool_calls").is_none(), "{message}");
        assert!(
            message["content"]
                .as_str()
                .unwrap()
                .starts_with("<tool_call>\n{"),
            "{message}"
        );
    }
    // Each request's messages begin with the previous one's but for the
    // closing note of where things stand, so a server that keeps its cache
    // reuses the prefix.
    for pair in requests.windows(2) {
        let (mut before, after) = (
            pair[0]["messages"].as_array().unwrap().clone(),
            pair[1]["messages"].as_array().unwrap(),
        );
        let last = before.last().unwrap();
        if last["role"] == "user"
            && last["content"]
                .as_str()
                .unwrap()
                .starts_with("Where things stand")
        {
            before.pop();
        }
        assert_eq!(after[..before.len()], before[..], "the prefix changed");
    }
}

/// A step taken again with nothing changed since is sent back twice, the
/// model then sampled instead of greedy; a model that insists has it run.
#[tokio::test]
async fn a_repeated_step_is_sent_back_and_taken_only_if_the_model_insists() {
    let health = || {
        call(
            "http_get",
            json!({"path": "/health", "security_risk": "LOW"}),
        )
    };
    let server = ScriptedLlm::start(vec![
        health(),
        health(),
        health(),
        health(),
        call(
            "run_command",
            json!({"command": "rm -f service.lock", "security_risk": "MEDIUM"}),
        ),
        health(),
        call("finish", json!({"summary": "removed the stale lock"})),
    ])
    .await;
    let ran = run_with(&server, &[]).await;
    let status = ran.status();
    assert_eq!(status["phase"], "Resolved", "{status}");
    let kinds: Vec<&str> = status["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["command"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "GET /health",
            "GET /health",
            "rm -f service.lock",
            "GET /health"
        ]
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 7);
    let last_message = |request: &Value| {
        request["messages"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone()
    };
    // Requests 2 and 3 carry the first and the second answer.
    for sent_back in &requests[2..4] {
        let answer = last_message(sent_back);
        let text = answer["content"].as_str().unwrap();
        assert!(
            text.starts_with("Step 1 already did exactly this and nothing has changed since"),
            "{answer}"
        );
        // What the log said is in the answer, with its fix as a call.
        assert!(
            text.contains(r#""command":"rm -f -- 'service.lock'""#),
            "{text}"
        );
        assert_eq!(answer["role"], "tool", "{answer}");
        assert_eq!(sent_back["temperature"].as_f64(), Some(0.7), "{sent_back}");
    }
    for greedy in [0, 1, 4] {
        assert_eq!(requests[greedy]["temperature"].as_f64(), Some(0.0));
    }
}

#[tokio::test]
async fn a_text_reply_that_tries_a_call_and_fails_is_corrected_then_refused_with_its_words() {
    let server = ScriptedLlm::start(vec![
        Reply::Text(""),
        Reply::Text("{\"command\": \"ls\"}"),
        Reply::Text("```json\n[1, 2]\n```"),
    ])
    .await;
    let ran = run_with(&server, &[]).await;
    let status = ran.status();
    assert_eq!(status["phase"], "Failed", "{status}");
    assert_eq!(status["reason"], "LlmUnavailable");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.contains("3 invalid tool calls")
            && message.contains("not a tool call object")
            && message.contains("[1, 2]"),
        "{message}"
    );
    // Each correction went back as a user message saying what was wrong.
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    let last = requests[2]["messages"].as_array().unwrap();
    let corrections: Vec<&str> = last
        .iter()
        .filter(|m| m["role"] == "user")
        .filter_map(|m| m["content"].as_str())
        .filter(|c| c.starts_with("ERROR:"))
        .collect();
    assert_eq!(corrections.len(), 2, "{last:?}");
    // An empty reply is not a claim to be done: it is asked again.
    assert!(corrections[0].contains("was empty"), "{corrections:?}");
    assert!(corrections[1].contains("names no tool"), "{corrections:?}");
    // Nothing ran.
    assert_eq!(status["steps"], 0);
}
