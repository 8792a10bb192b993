//! Runs the real `remediator` binary in a scratch directory.

use std::path::Path;

use serde_json::Value;

use crate::remediator_bin;

pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// The Incident printed with `-o json`.
    pub fn incident(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON Incident ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    pub fn status(&self) -> Value {
        self.incident()["status"].clone()
    }
}

/// Runs remediator with `args` in `dir` (no terminal on stdin), with the
/// LLM variables set only as given.
pub async fn remediator(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Ran {
    let mut command = tokio::process::Command::new(remediator_bin());
    command
        .args(args)
        .current_dir(dir)
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env("REMEDIATOR_ARTIFACTS", dir.join("artifacts"))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    for (k, v) in env {
        command.env(k, v);
    }
    // A guard against a hang, above what any test's own budgets allow: the
    // real-LLM optimize run may take 4 episodes of 120 s and a 60 s
    // reflection on a small model on two loaded cores.
    let output = tokio::time::timeout(std::time::Duration::from_secs(600), command.output())
        .await
        .expect("remediator finished within 600s")
        .expect("remediator ran");
    Ran {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
