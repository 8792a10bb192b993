//! `remediator scorecard`: the same scenarios under every approach
//! (baseline, the manual hint, the learned hints, the skill), side by side,
//! optionally drawn as a plot.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, ValueEnum};

use super::common::{self, Recording};
use super::run::PolicyArgs;
use crate::eval::params::parse_split;
use crate::eval::{plot, scorecard};
use crate::policy;
use crate::trajectory;

#[derive(Debug, Args)]
pub struct ScorecardArgs {
    /// train, validation or all.
    #[arg(long, default_value = "train")]
    pub split: String,
    /// Runs of each scenario per approach.
    #[arg(long, default_value_t = 1)]
    pub repeats: usize,
    /// Incidents run at once.
    #[arg(long, default_value_t = 2)]
    pub concurrency: usize,
    #[command(flatten)]
    pub brain: PolicyArgs,
    #[arg(short, long, value_enum, default_value_t = ScorecardFormat::Table)]
    pub output: ScorecardFormat,
    /// Draw steps and fix rate per approach per scenario to FILE.svg or FILE.png.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    #[command(flatten)]
    pub recording: Recording,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScorecardFormat {
    Table,
    Json,
    Markdown,
}

pub async fn scorecard(
    catalog_path: Option<PathBuf>,
    args: ScorecardArgs,
) -> anyhow::Result<ExitCode> {
    if args.repeats == 0 {
        anyhow::bail!("--repeats must be at least 1");
    }
    if args.concurrency == 0 || args.concurrency > crate::eval::params::MAX_CONCURRENCY {
        anyhow::bail!(
            "--concurrency must be between 1 and {}",
            crate::eval::params::MAX_CONCURRENCY
        );
    }
    if let Some(plot) = &args.plot {
        let ext = plot.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !matches!(ext.to_ascii_lowercase().as_str(), "svg" | "png") {
            return Err(plot::PlotError::Extension(plot.display().to_string()).into());
        }
    }
    let split = parse_split(&args.split)?;
    let paths = args.recording.paths()?;
    let recorder = args.recording.recorder(&paths);
    let overrides = args.brain.to_overrides();
    let base = policy::resolve("baseline", &overrides, &paths)?;
    let catalog = crate::scenario::load_catalog(catalog_path.as_deref())?;
    let scenarios = scorecard::scenarios(&catalog, split);
    if scenarios.is_empty() {
        anyhow::bail!("the catalog has no {} scenarios", args.split);
    }
    let file = trajectory::run_file(&recorder.artifacts_dir, &recorder.run_id);
    let request = scorecard::Request {
        run_id: recorder.run_id.clone(),
        split: args.split.clone(),
        scenarios,
        repeats: args.repeats,
        concurrency: args.concurrency,
        base,
        approaches: scorecard::approaches(&paths),
        trajectory_file: Some(file),
    };
    let env = Arc::new(common::environment(catalog_path.as_deref(), Some(recorder)).await?);
    let card = scorecard::run(request, env).await;
    match args.output {
        ScorecardFormat::Table => print!("{}", card.to_table()),
        ScorecardFormat::Markdown => print!("{}", card.to_markdown()),
        ScorecardFormat::Json => println!("{}", serde_json::to_string_pretty(&card)?),
    }
    if let Some(path) = &args.plot {
        plot::write(&card, path).with_context(|| format!("drawing {}", path.display()))?;
        eprintln!("plot: {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
