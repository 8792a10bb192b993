//! `remediator skill distill`: a SKILL.md runbook from the best verified
//! trajectories in a runs directory.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use crate::optimize::distill;
use crate::scenario;
use crate::trajectory;

#[derive(Debug, Subcommand)]
pub enum SkillCommand {
    /// Write a runbook from the best verified trajectories.
    Distill(DistillArgs),
}

#[derive(Debug, Args)]
pub struct DistillArgs {
    /// The recorded runs (*.jsonl) to distill from.
    #[arg(long = "from", default_value = "artifacts/runs")]
    pub from: PathBuf,
    /// Where the SKILL.md goes.
    #[arg(long, default_value = crate::agent::hint::DEFAULT_SKILL_FILE)]
    pub out: PathBuf,
    /// Only the episodes of this hint.
    #[arg(long)]
    pub hint: Option<String>,
}

pub fn skill(catalog_path: Option<PathBuf>, command: SkillCommand) -> anyhow::Result<ExitCode> {
    let SkillCommand::Distill(args) = command;
    let catalog = scenario::load_catalog(catalog_path.as_deref())?;
    let shortest = scenario::shortest_honest_by_id(&catalog);
    let (lines, malformed) = trajectory::read_runs(&args.from)
        .with_context(|| format!("cannot read recorded runs in {}", args.from.display()))?;
    if malformed > 0 {
        eprintln!(
            "warning: {malformed} malformed lines in {} were skipped",
            args.from.display()
        );
    }
    if lines.is_empty() {
        bail!(
            "no recorded runs in {} (no .jsonl lines): run `remediator demo` or `remediator optimize` first",
            args.from.display()
        );
    }
    let skill = distill::distill(
        &lines,
        &shortest,
        args.hint.as_deref(),
        &crate::optimize::artifacts::now(),
    )?;
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&args.out, &skill.text)
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "wrote {}: {} incidents from {} runs, mean score {:.3}; strategy {}",
        args.out.display(),
        skill.incidents,
        skill.source_runs.len(),
        skill.score,
        skill.strategy.summary()
    );
    Ok(ExitCode::SUCCESS)
}
