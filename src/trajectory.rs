//! Trajectory records: one JSON line per incident in
//! `artifacts/runs/<run_id>.jsonl`, what the optimizer learns from: the
//! outcome, and each step's action, gate decision and bounded observation.

pub mod in_cluster;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::agent::feedback_text;
use crate::crd::{ActionRecord, IncidentStatus};
use crate::crd::{IncidentPhase, TokenUsage};
use crate::protocol::Turn;

/// Characters of each observation kept (head and tail).
pub const MAX_OBSERVATION_CHARS: usize = 1200;

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
    /// The incident's OpenTelemetry trace, when traces were exported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    pub strategy_hint: String,
    pub policy: String,
    pub brain: String,
    pub phase: IncidentPhase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The outcome in words (why it failed, or what the probe saw).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default)]
    pub incident: String,
    /// What the agent was told.
    #[serde(default)]
    pub symptom: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint_source: Option<String>,
    #[serde(default)]
    pub steps: Vec<StepTrace>,
    /// The LLM the brain asked, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The model's tokens, requests and time for this incident.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<TokenUsage>,
    /// The Policy's `metadata.generation` the incident ran under (in a
    /// cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_generation: Option<i64>,
    /// [`crate::crd::PolicySpec::settings_fingerprint`] of the Policy it ran
    /// under; a line without one (older) is never reused for a rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<String>,
}

/// What a line says besides the incident's status: which incident, what
/// it was told, how long it took.
pub struct Origin {
    pub scenario_id: String,
    pub incident: String,
    pub trace_key: String,
    pub strategy_hint: String,
    pub policy: String,
    pub symptom: String,
    pub hint_source: Option<String>,
    pub latency_s: f64,
    pub policy_generation: Option<i64>,
    /// [`crate::crd::PolicySpec::settings_fingerprint`] of the Policy followed.
    pub settings: String,
}

impl TrajectoryLine {
    /// The line of a finished incident: its outcome from `status`, its
    /// steps joined with what came back.
    pub fn finished(origin: Origin, status: &IncidentStatus, steps: Vec<StepTrace>) -> Self {
        Self {
            scenario_id: origin.scenario_id,
            tool_actions: status.actions.iter().map(|a| a.command.clone()).collect(),
            step_count: status.steps,
            latency_s: origin.latency_s,
            service_up: status.verified.as_ref().is_some_and(|v| v.healthy),
            trace_key: origin.trace_key,
            trace_id: status.trace_id.clone(),
            strategy_hint: origin.strategy_hint,
            policy: origin.policy,
            brain: status
                .agent
                .as_ref()
                .map(|a| a.brain.clone())
                .unwrap_or_default(),
            phase: status.phase,
            reason: status.reason.clone(),
            message: status.message.clone(),
            incident: origin.incident,
            symptom: origin.symptom,
            hint_source: origin.hint_source,
            steps,
            model: status.agent.as_ref().and_then(|a| a.model.clone()),
            tokens: status.agent.as_ref().and_then(|a| a.tokens),
            policy_generation: origin.policy_generation,
            settings: Some(origin.settings),
        }
    }
}

/// One step as the optimizer reflects on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepTrace {
    pub step: u32,
    pub kind: String,
    pub action: String,
    pub risk: String,
    pub decision: String,
    pub decided_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// What came back (or why it did not run), head and tail kept.
    pub observation: String,
}

/// Each record joined with the turn of the same step.
pub fn step_traces(records: &[ActionRecord], history: &[Turn]) -> Vec<StepTrace> {
    records
        .iter()
        .map(|record| {
            let turn = history.iter().find(|t| t.step == record.step);
            let http_status =
                turn.and_then(|t| t.feedback.observation().and_then(|o| o.http_status));
            StepTrace {
                step: record.step,
                kind: record.kind.clone(),
                action: record.command.clone(),
                risk: record.risk.to_string(),
                decision: format!("{:?}", record.decision),
                decided_by: record.decided_by.clone(),
                exit_code: record.exit_code,
                http_status,
                observation: turn
                    .map(|t| head_and_tail(&feedback_text(&t.feedback), MAX_OBSERVATION_CHARS))
                    .unwrap_or_default(),
            }
        })
        .collect()
}

/// At most `max` characters: the head and the tail, with the cut marked.
pub fn head_and_tail(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.to_string();
    }
    let half = max / 2;
    let head: String = text.chars().take(half).collect();
    let tail: String = text.chars().skip(count - half).collect();
    format!(
        "{head}\n[... {} characters cut ...]\n{tail}",
        count - 2 * half
    )
}

/// A run id that sorts by time: `run-<unix millis>-<pid>`.
pub fn new_run_id() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    format!("run-{millis}-{}", std::process::id())
}

/// A run id is a file name: letters, digits, `-`, `_` and `.`, not a path.
pub fn check_run_id(run_id: &str) -> Result<(), String> {
    let plain = !run_id.is_empty()
        && run_id.len() <= 128
        && !run_id.starts_with('.')
        && run_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if plain {
        Ok(())
    } else {
        Err(format!(
            "run id `{run_id}` must be a plain name (letters, digits, `-`, `_`, `.`; not a path)"
        ))
    }
}

pub fn run_file(artifacts_dir: &Path, run_id: &str) -> PathBuf {
    artifacts_dir.join("runs").join(format!("{run_id}.jsonl"))
}

/// Appends one line with a single write, so concurrent incidents of one
/// run never interleave.
pub async fn append(
    artifacts_dir: &Path,
    run_id: &str,
    line: &TrajectoryLine,
) -> std::io::Result<PathBuf> {
    check_run_id(run_id).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let path = run_file(artifacts_dir, run_id);
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let mut text = serde_json::to_string(line).map_err(std::io::Error::other)?;
    text.push('\n');
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .await?;
    file.write_all(text.as_bytes()).await?;
    // tokio's File hands the write to a background thread; without a
    // flush the line may land after this returns (a reader right after a
    // run missed the last one).
    file.flush().await?;
    Ok(path)
}

/// Every line of every run file in `runs_dir` (malformed lines skipped and
/// counted).
pub fn read_runs(runs_dir: &Path) -> std::io::Result<(Vec<TrajectoryLine>, usize)> {
    let mut lines = Vec::new();
    let mut malformed = 0;
    let mut files: Vec<PathBuf> = std::fs::read_dir(runs_dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    for file in files {
        let text = target_service::input::read_bounded(&file, 256 << 20)?;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str(line) {
                Ok(parsed) => lines.push(parsed),
                Err(_) => malformed += 1,
            }
        }
    }
    Ok((lines, malformed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_names_not_paths() {
        assert!(check_run_id("run-1-2").is_ok());
        for bad in ["", "../x", "a/b", ".hidden", "a b"] {
            assert!(check_run_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn observations_keep_head_and_tail() {
        let text = format!("{}{}", "a".repeat(3000), "z".repeat(3000));
        let cut = head_and_tail(&text, 1000);
        assert!(cut.starts_with(&"a".repeat(500)) && cut.ends_with(&"z".repeat(500)));
        assert!(cut.contains("[... 5000 characters cut ...]"));
    }

    #[test]
    fn old_lines_without_steps_still_read() {
        let old = r#"{"scenario_id":"s","tool_actions":["ls"],"step_count":1,"latency_s":0.1,"service_up":true,"trace_key":"r:i","strategy_hint":"h","policy":"p","brain":"runbook","phase":"Resolved"}"#;
        let line: TrajectoryLine = serde_json::from_str(old).unwrap();
        assert!(line.steps.is_empty());
    }
}
