//! Fan-out, scorecard and serve end to end: real incidents on real
//! services, every reported number checked against the trajectory JSONL,
//! the CLI's errors and signals, the web API, and the dashboard in a real
//! headless browser.

mod browser;
mod cli;
#[path = "../common/jaeger.rs"]
mod jaeger;
mod numbers;
mod web;

#[path = "../common/procs.rs"]
mod procs;
pub use procs::{alive, descendants, eventually, private_tmp, scratch_dirs};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use remediator::agent::llm::LlmEnvironment;
use remediator::local::{Environment, Recorder};
use remediator::sandbox::{HelperProgram, Sandbox};
use remediator::scenario::{Catalog, Launch};
use remediator::trajectory::TrajectoryLine;

pub fn remediator_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_remediator"))
}

/// The sandbox, probed once per test binary.
pub async fn sandbox() -> Arc<Sandbox> {
    static SANDBOX: tokio::sync::OnceCell<Arc<Sandbox>> = tokio::sync::OnceCell::const_new();
    SANDBOX
        .get_or_init(|| async {
            Arc::new(
                Sandbox::new(HelperProgram {
                    program: remediator_bin(),
                    prefix_args: Vec::new(),
                })
                .await,
            )
        })
        .await
        .clone()
}

/// Incidents' shared parts, recording under `artifacts` as `run_id`.
pub async fn environment(artifacts: &Path, run_id: &str) -> Arc<Environment> {
    Arc::new(Environment {
        catalog: Catalog::builtin(),
        launch: Launch::through_remediator(remediator_bin()),
        sandbox: sandbox().await,
        llm: LlmEnvironment::default(),
        recorder: Some(Recorder {
            artifacts_dir: artifacts.to_path_buf(),
            run_id: run_id.to_string(),
        }),
        operator_secrets: Vec::new(),
    })
}

/// Every line of a run's JSONL, parsed.
pub fn trajectory(artifacts: &Path, run_id: &str) -> Vec<TrajectoryLine> {
    let path = remediator::trajectory::run_file(artifacts, run_id);
    match std::fs::read_to_string(&path) {
        Ok(text) => text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{path:?}: {e}: {l}")))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("{path:?}: {e}"),
    }
}

/// The nearest-rank percentile, written here again so the tests do not
/// check the library against itself.
pub fn nearest_rank(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let k = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[k - 1])
}

pub fn close(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * a.abs().max(1.0),
        (None, None) => true,
        _ => false,
    }
}

/// One HTTP/1.1 request to `addr`; returns the status and the body.
pub async fn http(addr: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut response))
        .await
        .expect("an answer within 30s")
        .unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}
