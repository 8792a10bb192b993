//! Trajectory records: one JSON line per incident in
//! `artifacts/runs/<run_id>.jsonl`, what the optimizer learns from.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrajectoryLine {
    pub scenario_id: String,
    /// Every proposed action, as run (or refused).
    pub tool_actions: Vec<String>,
    pub step_count: u32,
    pub latency_s: f64,
    /// The controller's probe found the service healthy.
    pub service_up: bool,
    /// `<run_id>:<incident>`.
    pub trace_key: String,
    pub strategy_hint: String,
    pub policy: String,
    pub brain: String,
    pub phase: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A run id that sorts by time: `run-<unix millis>-<pid>`.
pub fn new_run_id() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    format!("run-{millis}-{}", std::process::id())
}

pub fn run_file(artifacts_dir: &Path, run_id: &str) -> PathBuf {
    artifacts_dir.join("runs").join(format!("{run_id}.jsonl"))
}

/// Appends one line; each line is written with a single call, so
/// concurrent incidents of one run do not interleave.
pub fn append(
    artifacts_dir: &Path,
    run_id: &str,
    line: &TrajectoryLine,
) -> std::io::Result<PathBuf> {
    let path = run_file(artifacts_dir, run_id);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut text = serde_json::to_string(line).map_err(std::io::Error::other)?;
    text.push('\n');
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?
        .write_all(text.as_bytes())?;
    Ok(path)
}
