//! `remediator undo --incident NAME`: puts a kept incident's root back as
//! it was before a step (before any step by default) from its journal, and
//! says what was restored.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;

use crate::workspace::journal::{DEFAULT_MAX_SNAPSHOT_BYTES, Journal};

#[derive(Debug, Args)]
pub struct UndoArgs {
    /// The incident's name (as `run --keep` printed it) or its kept directory.
    #[arg(long)]
    pub incident: String,
    /// Restore the state before this step (default: before any step).
    #[arg(long, default_value_t = 0)]
    pub before_step: u32,
}

pub fn undo(args: UndoArgs) -> anyhow::Result<ExitCode> {
    let dir = locate(&args.incident)?;
    let root = dir.join("root");
    let journal = Journal::open(&dir.join("journal"), &root, DEFAULT_MAX_SNAPSHOT_BYTES)
        .with_context(|| format!("opening the journal of {}", dir.display()))?;
    // "Before step N" is the snapshot taken before the first mutating step
    // at or after N (read-only steps take none).
    let Some(step) = journal.steps().into_iter().find(|s| *s >= args.before_step) else {
        bail!(
            "{} has no snapshot at or after step {}; it has {:?}",
            dir.display(),
            args.before_step,
            journal.steps()
        );
    };
    let restored = journal
        .restore(step)
        .with_context(|| format!("restoring {}", root.display()))?;
    println!(
        "restored {} to its state before step {step}: {} written back, {} removed",
        root.display(),
        restored.written.len(),
        restored.removed.len()
    );
    for path in &restored.written {
        println!("  written  {path}");
    }
    for path in &restored.removed {
        println!("  removed  {path}");
    }
    println!("the service is not running (kept incidents are stopped)");
    Ok(ExitCode::SUCCESS)
}

/// A kept incident by name (the newest) or by its directory.
fn locate(incident: &str) -> anyhow::Result<PathBuf> {
    let as_path = PathBuf::from(incident);
    if as_path.join(crate::scratch::KEPT_FILE).exists() {
        return Ok(as_path);
    }
    let kept = crate::scratch::kept();
    match kept.iter().find(|(_, name)| name == incident) {
        Some((dir, _)) => Ok(dir.clone()),
        None if kept.is_empty() => bail!(
            "no kept incident named `{incident}`: run it with `remediator run --keep` to keep its root and journal"
        ),
        None => bail!(
            "no kept incident named `{incident}`; kept: {}",
            kept.iter()
                .map(|(_, n)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
