//! The LLM path against a real OpenAI-compatible server nobody here wrote:
//! llama.cpp's server (PyPI llama-cpp-python) with Qwen2.5-Coder-0.5B-
//! Instruct (scripts/llm-server), served with the chat template its GGUF
//! file carries, so the model writes its tool calls as `<tool_call>` JSON in
//! the reply's text, as users run it. This proves the real path end to end
//! (the calls read, gated, executed, usage and format recorded, the service
//! verified by the probe), not the model's judgment: how many incidents it
//! resolves is printed, and measured by `cargo bench --bench llm_agent`.
//!
//! `./scripts/test` installs the server and model (cached) and sets
//! REMEDIATOR_LLM_SERVER; a plain `cargo test` skips this tier, CI never does.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::cli::remediator;
use crate::llm_server::{self, LlmServer};

const MODEL: &str = "qwen-0.5b";
/// Each scenario with the conversation layout it is sent in, so both
/// layouts meet the real server.
const SCENARIOS: [(&str, &str); 2] = [
    ("stale_lockfile", "messages"),
    ("bad_env_config", "transcript"),
];

async fn start_server() -> Option<LlmServer> {
    let Some(script) = std::env::var_os("REMEDIATOR_LLM_SERVER") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the real LLM tier: run ./scripts/test, which sets REMEDIATOR_LLM_SERVER"
        );
        eprintln!("skipped: REMEDIATOR_LLM_SERVER is not set (./scripts/test sets it)");
        return None;
    };
    Some(llm_server::start(Path::new(&script), MODEL, Duration::from_secs(180)).await)
}

#[tokio::test]
async fn a_real_model_drives_the_whole_llm_path() {
    let Some(server) = start_server().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut report = Vec::new();
    let mut calls = 0;
    for (scenario, layout) in SCENARIOS {
        let policy = dir.path().join(format!("manual-{layout}.yaml"));
        let spec = serde_json::json!({
            "apiVersion": "remediator.dev/v1alpha1", "kind": "Policy", "metadata": {"name": "manual"},
            "spec": {"brain": "llm", "hint": remediator::agent::hint::MANUAL_HINT.trim(), "maxSteps": 4, "timeoutSeconds": 300,
                     "llm": {"model": MODEL, "requestTimeoutSeconds": 120, "maxRetries": 0, "maxTokens": 160,
                             "maxObservationChars": 800, "conversation": layout}}
        });
        std::fs::write(&policy, serde_yaml::to_string(&spec).unwrap()).unwrap();
        let args = [
            "run",
            "--scenario",
            scenario,
            "--policy",
            policy.to_str().unwrap(),
            "-o",
            "json",
        ];
        let env = [
            ("OPENAI_API_KEY", "local"),
            ("OPENAI_BASE_URL", server.base_url.as_str()),
        ];
        let ran = remediator(dir.path(), &args, &env).await;
        assert!(!ran.stderr.contains("panicked"), "{}", ran.stderr);
        let status: Value = ran.status();
        let phase = status["phase"].as_str().unwrap_or_default().to_string();
        assert!(phase == "Resolved" || phase == "Failed", "{status}");
        assert_eq!(ran.code == Some(0), phase == "Resolved");
        if phase == "Resolved" {
            assert_eq!(status["verified"]["healthy"], true);
        }
        let reason = status["reason"].as_str().unwrap_or_default();
        let message = status["message"].as_str().unwrap_or_default();
        // What a small model's behaviour can cause; anything else would be a
        // protocol failure between us and the server.
        assert!(
            reason != "LlmUnavailable"
                || ["invalid tool calls", "did not answer within"]
                    .iter()
                    .any(|m| message.contains(m)),
            "the server must speak the protocol: {message}"
        );
        let agent = &status["agent"];
        assert_eq!(agent["model"], MODEL);
        let tokens = &agent["tokens"];
        assert!(tokens["prompt"].as_u64().unwrap_or(0) > 0, "{status}");
        assert!(tokens["completion"].as_u64().unwrap_or(0) > 0, "{status}");
        assert!(tokens["requests"].as_u64().unwrap_or(0) > 0, "{status}");
        assert!(tokens["modelMs"].as_u64().unwrap_or(0) > 0, "{status}");
        let read = tokens["contentToolCalls"].as_u64().unwrap_or(0)
            + tokens["nativeToolCalls"].as_u64().unwrap_or(0);
        if read > 0 {
            assert!(agent["toolCallFormat"].is_string(), "{status}");
        }
        for action in status["actions"].as_array().into_iter().flatten() {
            assert!(
                action["risk"].is_string() && action["decision"].is_string(),
                "{action}"
            );
        }
        calls += read;
        report.push(format!(
            "{scenario:<22} {layout:<10} {phase:<8} steps={} format={} tokens={} {reason} {}",
            status["steps"],
            agent["toolCallFormat"],
            tokens,
            message.chars().take(90).collect::<String>()
        ));
    }
    println!("{}", report.join("\n"));
    assert!(
        calls > 0,
        "no tool call came back from the real server:\n{}",
        report.join("\n")
    );
}

#[tokio::test]
async fn a_small_optimize_run_learns_with_the_real_llm_for_rollouts_and_reflection() {
    let Some(server) = start_server().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Two train scenarios and one to validate on, so the run stays small.
    let (base, scenarios) = target_service::catalog::BUILTIN_CATALOG
        .split_once("\nscenarios:\n")
        .unwrap();
    let kept: Vec<&str> = scenarios
        .split("\n  - id: ")
        .filter(|entry| {
            [
                "stale_lockfile\n",
                "readiness_probe_fail\n",
                "stale_worker_lock\n",
            ]
            .iter()
            .any(|id| entry.trim_start_matches("  - id: ").starts_with(id))
        })
        .map(|entry| entry.trim_start_matches("  - id: "))
        .collect();
    assert_eq!(kept.len(), 3);
    let text = format!("{base}\nscenarios:\n  - id: {}\n", kept.join("\n  - id: "));
    let catalog_path = dir.path().join("catalog.yaml");
    std::fs::write(&catalog_path, text).unwrap();
    assert_eq!(
        remediator::scenario::load_catalog(Some(&catalog_path))
            .unwrap()
            .scenarios
            .len(),
        3
    );
    let policy = dir.path().join("policy.yaml");
    let spec = serde_json::json!({
        "apiVersion": "remediator.dev/v1alpha1", "kind": "Policy", "metadata": {"name": "tiny"},
        "spec": {"brain": "llm", "maxSteps": 3, "timeoutSeconds": 120,
                 "llm": {"model": MODEL, "requestTimeoutSeconds": 120, "maxRetries": 0, "maxTokens": 160, "maxObservationChars": 400}}
    });
    std::fs::write(&policy, serde_yaml::to_string(&spec).unwrap()).unwrap();
    let args = [
        "--catalog",
        catalog_path.to_str().unwrap(),
        "optimize",
        "--brain",
        "llm",
        "--policy",
        policy.to_str().unwrap(),
        "--budget",
        "5",
        "--minibatch",
        "1",
        "--patience",
        "2",
        "--concurrency",
        "1",
        "--seed",
        "1",
    ];
    let env = [
        ("OPENAI_API_KEY", "local"),
        ("OPENAI_BASE_URL", server.base_url.as_str()),
    ];
    let ran = remediator(dir.path(), &args, &env).await;
    println!("{}\n{}", ran.stdout, ran.stderr);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    assert!(!ran.stderr.contains("panicked"), "{}", ran.stderr);
    let result: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("artifacts/gepa/last_run.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(result["brain"], "llm");
    assert!(result["rollouts_used"].as_u64().unwrap() <= 5, "{result:#}");
    assert_eq!(result["history"][0]["origin"], "seed");
    // The seed's train rollouts ran on the real model (each one verified by
    // the probe, whatever the model did).
    let breakdown = result["seed_breakdown"].as_object().unwrap();
    assert_eq!(breakdown.len(), 3, "{result:#}");
    // The reflection went to the real model over the wire and came back
    // with a reply (usable or not: a tiny model's judgment is not tested).
    assert!(
        ran.stdout.contains("reflection tokens:"),
        "no reflection reached the model:\n{}\n{}",
        ran.stdout,
        ran.stderr
    );
}
