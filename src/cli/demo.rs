//! `remediator demo`: every scenario of a split, with the baseline and the
//! optimized policy on the runbook brain, then a side-by-side scorecard.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};

use super::run::{Recording, builtin_policy};
use crate::agent::confirm::Refuse;
use crate::crd::IncidentPhase;
use crate::local::{self, LocalIncident};
use crate::scenario::{self, Launch, Split};
use crate::trajectory;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Which scenarios to run.
    #[arg(long, value_enum, default_value_t = SplitArg::Train)]
    pub split: SplitArg,
    #[command(flatten)]
    pub recording: Recording,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SplitArg {
    Train,
    Validation,
    All,
}

struct Row {
    scenario: String,
    oracle: usize,
    /// (phase, steps, seconds) per policy.
    results: Vec<(IncidentPhase, u32, f64)>,
}

pub async fn demo(catalog_path: Option<PathBuf>, args: DemoArgs) -> anyhow::Result<ExitCode> {
    let catalog = scenario::load_catalog(catalog_path.as_deref())?;
    let mut launch = Launch::from_current_exe().context("locating the remediator binary")?;
    launch.catalog_path = catalog_path;
    let recorder = args.recording.recorder();
    let policies = ["baseline", "optimized"]
        .map(|name| builtin_policy(name, &recorder.artifacts_dir))
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()?;
    let scenarios: Vec<_> = catalog
        .scenarios
        .iter()
        .filter(|s| match args.split {
            SplitArg::All => true,
            SplitArg::Train => s.split == Split::Train,
            SplitArg::Validation => s.split == Split::Validation,
        })
        .collect();
    let total = scenarios.len() * policies.len();
    println!(
        "remediator demo: {} scenarios x {} policies on the runbook brain; every fix verified by the controller's own probe",
        scenarios.len(),
        policies.len()
    );
    for (name, _, hint) in &policies {
        println!(
            "  {name:<9} hint ({}): {}",
            hint.source.as_str(),
            one_line(&hint.text, 100)
        );
    }
    let mut rows = Vec::new();
    let mut done = 0;
    let mut all_resolved = true;
    for scenario in &scenarios {
        let mut row = Row {
            scenario: scenario.id.clone(),
            oracle: scenario.fix.len(),
            results: Vec::new(),
        };
        for (policy_name, spec, hint) in &policies {
            let incident = LocalIncident {
                name: format!("{}-{policy_name}", scenario.id.replace('_', "-")),
                scenario: scenario.id.clone(),
                policy_name: policy_name.clone(),
                policy: spec.clone(),
                hint: hint.clone(),
            };
            let outcome = local::run(&incident, &catalog, &launch, &Refuse, Some(&recorder)).await;
            if let Some(error) = &outcome.record_error {
                eprintln!("warning: {error}");
            }
            done += 1;
            let status = &outcome.status;
            all_resolved &= status.phase == IncidentPhase::Resolved;
            println!(
                "  [{done:>2}/{total}] {:<24} {:<9} {:<8} {:>2} steps {:>6.2}s{}",
                scenario.id,
                policy_name,
                format!("{:?}", status.phase),
                status.steps,
                outcome.trajectory.latency_s,
                match (&status.reason, status.phase) {
                    (Some(reason), IncidentPhase::Failed) =>
                        format!("  {reason}: {}", status.message.as_deref().unwrap_or("")),
                    _ => String::new(),
                }
            );
            row.results
                .push((status.phase, status.steps, outcome.trajectory.latency_s));
        }
        rows.push(row);
    }
    print!(
        "{}",
        scorecard(
            &rows,
            &policies.iter().map(|p| p.0.as_str()).collect::<Vec<_>>()
        )
    );
    println!(
        "trajectories: {}",
        trajectory::run_file(&recorder.artifacts_dir, &recorder.run_id).display()
    );
    Ok(if all_resolved {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn one_line(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > max {
        format!("{}…", flat.chars().take(max).collect::<String>())
    } else {
        flat
    }
}

fn scorecard(rows: &[Row], policies: &[&str]) -> String {
    let mut out =
        String::from("\nscorecard (steps; only verified-healthy incidents count as resolved)\n");
    out.push_str(&format!("{:<24}", "scenario"));
    for p in policies {
        out.push_str(&format!(" {p:>16}"));
    }
    out.push_str(&format!(" {:>7}\n", "oracle"));
    for row in rows {
        out.push_str(&format!("{:<24}", row.scenario));
        for (phase, steps, _) in &row.results {
            let cell = if *phase == IncidentPhase::Resolved {
                format!("{steps}")
            } else {
                format!("FAILED ({steps})")
            };
            out.push_str(&format!(" {cell:>16}"));
        }
        out.push_str(&format!(" {:>7}\n", row.oracle));
    }
    let n = rows.len().max(1) as f64;
    out.push_str(&format!("{:<24}", "fix rate"));
    for i in 0..policies.len() {
        let resolved = rows
            .iter()
            .filter(|r| r.results[i].0 == IncidentPhase::Resolved)
            .count();
        out.push_str(&format!(
            " {:>16}",
            format!(
                "{resolved}/{} ({:.0}%)",
                rows.len(),
                100.0 * resolved as f64 / n
            )
        ));
    }
    out.push('\n');
    out.push_str(&format!("{:<24}", "mean steps"));
    let mut means = Vec::new();
    for i in 0..policies.len() {
        let mean = rows.iter().map(|r| f64::from(r.results[i].1)).sum::<f64>() / n;
        means.push(mean);
        out.push_str(&format!(" {mean:>16.2}"));
    }
    let oracle = rows.iter().map(|r| r.oracle as f64).sum::<f64>() / n;
    out.push_str(&format!(" {oracle:>7.2}\n"));
    out.push_str(&format!("{:<24}", "mean seconds"));
    for i in 0..policies.len() {
        let mean = rows.iter().map(|r| r.results[i].2).sum::<f64>() / n;
        out.push_str(&format!(" {mean:>16.2}"));
    }
    out.push('\n');
    if let [base, .., best] = means.as_slice()
        && *best > 0.0
    {
        out.push_str(&format!(
            "steps ratio {}/{}: {:.2}x fewer\n",
            policies[policies.len() - 1],
            policies[0],
            base / best
        ));
    }
    out
}
