//! A real llama.cpp server (`scripts/llm-server serve PORT --model M`) for
//! the real-LLM test tier and the `llm_agent` benchmark: started on a free
//! port, ready once `/v1/models` answers, killed when dropped. Included by
//! path, as `procs.rs` is.
#![allow(dead_code)]

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

pub struct LlmServer {
    _child: tokio::process::Child,
    pub base_url: String,
}

/// Starts `script serve PORT --model MODEL` and waits up to `ready_within`
/// for it to answer (it loads the model before it listens).
pub async fn start(script: &Path, model: &str, ready_within: Duration) -> LlmServer {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = tokio::process::Command::new(script)
        .args(["serve", &port.to_string(), "--model", model])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{} starts: {e}", script.display()));
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + ready_within;
    while !remediator::verify::http_get(address, "/v1/models", 4096)
        .await
        .is_ok_and(|answer| answer.status == 200)
    {
        assert!(
            Instant::now() < deadline,
            "{model} did not become ready on port {port} within {ready_within:?} \
             (scripts/llm-server install --model {model})"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    LlmServer {
        _child: child,
        base_url: format!("http://{address}/v1"),
    }
}
