//! What several commands set up the same way: the sandbox, the catalog
//! and launcher, artifact paths, and the sweep of stale scratch roots.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use crate::agent::llm::LlmEnvironment;
use crate::local::{Environment, Recorder};
use crate::policy::Paths;
use crate::sandbox::{HelperProgram, Sandbox};
use crate::scenario::{self, Launch};
use crate::trajectory;

/// Where artifacts go and how this run is named.
#[derive(Debug, Args, Clone)]
pub struct Recording {
    // No `--out` alias: `--out` names a file wherever it appears (`skill
    // distill --out SKILL.md`); a directory is always `--artifacts-dir`.
    /// Where runs/, gepa/ and other artifacts live.
    #[arg(long, default_value = "artifacts", env = "REMEDIATOR_ARTIFACTS")]
    pub artifacts_dir: PathBuf,
    /// The distilled runbook the optimized policy follows when it exists.
    #[arg(
        long = "default-skill-file",
        default_value = crate::agent::hint::DEFAULT_SKILL_FILE,
        env = "REMEDIATOR_SKILL_FILE"
    )]
    pub default_skill_file: PathBuf,
    /// Run id for artifacts/runs/<run_id>.jsonl (default: time-based); a
    /// plain name, not a path.
    #[arg(long, value_parser = parse_run_id)]
    pub run_id: Option<String>,
}

fn parse_run_id(text: &str) -> Result<String, String> {
    trajectory::check_run_id(text).map(|()| text.to_string())
}

impl Recording {
    /// The artifact paths, made absolute against the working directory.
    pub fn paths(&self) -> anyhow::Result<Paths> {
        let cwd = std::env::current_dir().context("reading the working directory")?;
        Ok(Paths {
            artifacts_dir: cwd.join(&self.artifacts_dir),
            skill_file: cwd.join(&self.default_skill_file),
        })
    }

    pub fn recorder(&self, paths: &Paths) -> Recorder {
        Recorder {
            artifacts_dir: paths.artifacts_dir.clone(),
            run_id: self.run_id.clone().unwrap_or_else(trajectory::new_run_id),
        }
    }
}

/// Removes scratch roots a killed remediator left behind, and says so.
pub fn sweep_orphans() {
    let swept = crate::scratch::sweep_orphans();
    if !swept.is_empty() {
        eprintln!(
            "removed {} scratch director{} left by a remediator that was killed: {}",
            swept.len(),
            if swept.len() == 1 { "y" } else { "ies" },
            swept
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

/// The sandbox, probed once; what it lacks is said in one line.
pub async fn sandbox() -> Sandbox {
    let helper = HelperProgram {
        program: "/proc/self/exe".into(),
        prefix_args: Vec::new(),
    };
    let sandbox = Sandbox::new(helper).await;
    let containment = sandbox.containment();
    if !containment.is_full() {
        eprintln!(
            "warning: weak containment: {}; actions above LOW are refused unless the policy sets acceptWeakContainment",
            containment.summary()
        );
    }
    sandbox
}

/// A user's catalog text, handed to the service supervisor.
pub fn catalog_text(path: Option<&Path>) -> anyhow::Result<Option<String>> {
    path.map(|path| {
        target_service::input::read_bounded(path, target_service::input::MAX_INPUT_BYTES)
            .with_context(|| format!("cannot read scenario catalog {}", path.display()))
    })
    .transpose()
}

/// Everything local incidents share.
pub async fn environment(
    catalog_path: Option<&Path>,
    recorder: Option<Recorder>,
) -> anyhow::Result<Environment> {
    let catalog = scenario::load_catalog(catalog_path)?;
    let mut launch = Launch::from_current_exe();
    launch.catalog_text = catalog_text(catalog_path)?;
    Ok(Environment {
        catalog,
        launch,
        sandbox: Arc::new(sandbox().await),
        llm: LlmEnvironment::from_process(),
        recorder,
        operator_secrets: operator_secrets(),
    })
}

/// Values in this process's environment whose names mark them secret:
/// never shown to a brain, even if an agent found a way to print one.
fn operator_secrets() -> Vec<String> {
    const PARTS: [&str; 5] = ["KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL"];
    std::env::vars()
        .filter(|(name, value)| {
            let name = name.to_ascii_uppercase();
            PARTS.iter().any(|p| name.contains(p)) && value.len() >= 8
        })
        .map(|(_, value)| value)
        .collect()
}
