//! `remediator demo`: every scenario of a split, with the baseline and the
//! optimized policy on the runbook brain, then a side-by-side scorecard.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use super::common::{self, Recording};
use crate::agent::confirm::Refuse;
use crate::crd::IncidentPhase;
use crate::incident::{self, LocalIncident};
use crate::policy::{self, Overrides};
use crate::scenario::Split;
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
    let paths = args.recording.paths()?;
    let recorder = args.recording.recorder(&paths);
    let env = common::environment(catalog_path.as_deref(), Some(recorder.clone())).await?;
    let policies = ["baseline", "optimized"]
        .map(|name| policy::resolve(name, &Overrides::default(), &paths))
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    let catalog = &env.catalog;
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
    for policy in &policies {
        println!(
            "  {:<9} hint ({}): {}",
            policy.name,
            policy.hint.source.as_str(),
            one_line(&policy.hint.text, 100)
        );
    }
    println!("  sandbox:  {}", env.sandbox.containment().summary());
    let mut rows = Vec::new();
    let mut done = 0;
    let mut all_resolved = true;
    for scenario in &scenarios {
        let mut row = Row {
            scenario: scenario.id.clone(),
            oracle: scenario.fix.len(),
            results: Vec::new(),
        };
        for policy in &policies {
            let incident = LocalIncident {
                name: format!("{}-{}", scenario.id.replace('_', "-"), policy.name),
                scenario: scenario.id.clone(),
                policy: policy.clone(),
                classifier_off: false,
                keep: false,
            };
            let policy_name = &policy.name;
            let outcome = incident::run(&incident, &env, &Refuse).await;
            if let Some(error) = &outcome.record_error {
                eprintln!("warning: {error}");
            }
            done += 1;
            let status = &outcome.status;
            all_resolved &= status.phase == IncidentPhase::Resolved;
            let latency_s = outcome.trajectory.as_ref().map_or(0.0, |t| t.latency_s);
            println!(
                "  [{done:>2}/{total}] {:<24} {:<9} {:<8} {:>2} steps {:>6.2}s{}",
                scenario.id,
                policy_name,
                incident::phase_name(status.phase),
                status.steps,
                latency_s,
                match (&status.reason, status.phase) {
                    (Some(reason), IncidentPhase::Failed) =>
                        format!("  {reason}: {}", status.message.as_deref().unwrap_or("")),
                    _ => String::new(),
                }
            );
            row.results.push((status.phase, status.steps, latency_s));
        }
        rows.push(row);
    }
    print!(
        "{}",
        scorecard(
            &rows,
            &policies.iter().map(|p| p.name.as_str()).collect::<Vec<_>>()
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
