//! `remediator demo`: every scenario of a split, with the baseline and the
//! optimized policy on the runbook brain, side by side; then GEPA and the
//! iterative optimizer learn hints from real rollouts, and the scorecard
//! puts baseline, manual, GEPA and iterative on the validation scenarios
//! none of them trained on.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, ValueEnum};

use super::common::{self, Recording};
use super::optimize::{self, OptimizeArgs, OptimizerArg};
use crate::agent::confirm::Refuse;
use crate::crd::IncidentPhase;
use crate::eval::scorecard;
use crate::local::{self, LocalIncident};
use crate::policy::{self, Overrides};
use crate::scenario::Split;
use crate::trajectory;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Which scenarios to run.
    #[arg(long, value_enum, default_value_t = SplitArg::Train)]
    pub split: SplitArg,
    /// Rollouts each optimizer may use to learn a hint (0: skip learning
    /// and the scorecard of learned hints).
    #[arg(long, default_value_t = 100)]
    pub learn_budget: usize,
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
            crate::optimize::learn::one_line(&policy.hint.text, 100)
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
            let outcome = local::run(&incident, &env, &Refuse).await;
            if let Some(error) = &outcome.record_error {
                eprintln!("warning: {error}");
            }
            done += 1;
            let status = &outcome.status;
            // Running out of steps is a measurement; any other failure
            // (a claim the probe refuted, an error) fails the demo.
            all_resolved &= status.phase == IncidentPhase::Resolved
                || status.reason.as_deref()
                    == Some(crate::crd::conditions::REASON_BUDGET_EXHAUSTED);
            let latency_s = outcome.trajectory.as_ref().map_or(0.0, |t| t.latency_s);
            println!(
                "  [{done:>2}/{total}] {:<24} {:<9} {:<8} {:>2} steps {:>6.2}s{}",
                scenario.id,
                policy_name,
                status.phase.name(),
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
    if args.learn_budget > 0 {
        let learned_all_fixed = learn_and_compare(
            catalog_path,
            &paths.artifacts_dir.join("demo").join(&recorder.run_id),
            args.learn_budget,
        )
        .await?;
        all_resolved &= learned_all_fixed;
    }
    Ok(if all_resolved {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Both optimizers learn from the manual hint with the same budget, into a
/// directory of this demo run's own (so the user's published hints stay as
/// they are), then every approach runs on the validation scenarios. True
/// when the learned hints and the skill fixed every incident.
async fn learn_and_compare(
    catalog_path: Option<PathBuf>,
    dir: &std::path::Path,
    budget: usize,
) -> anyhow::Result<bool> {
    let recording = Recording {
        artifacts_dir: dir.to_path_buf(),
        default_skill_file: dir.join("SKILL.md"),
        run_id: None,
    };
    let mut learned = Vec::new();
    for optimizer in [OptimizerArg::Gepa, OptimizerArg::Iterative] {
        println!();
        let args = OptimizeArgs {
            optimizer,
            brain: crate::crd::BrainKind::Runbook,
            reflection: None,
            budget,
            minibatch: 3,
            seed: 0,
            from_trajectories: None,
            concurrency: None,
            publish: false,
            policy: "optimized".into(),
            to_policy: None,
            namespace: None,
            model: None,
            max_merges: 3,
            patience: crate::optimize::PATIENCE,
            recording: recording.clone(),
        };
        learned.push(optimize::learn(catalog_path.clone(), &args).await?);
    }
    // Published only after both ran, so each started from the manual hint.
    println!();
    for result in &learned {
        let published = result.publish()?;
        println!("{}: {}", result.result.optimizer.as_str(), published.reason);
    }
    let paths = recording.paths()?;
    let recorder = recording.recorder(&paths);
    let base = policy::resolve("baseline", &Overrides::default(), &paths)?;
    let env = common::environment(catalog_path.as_deref(), Some(recorder.clone())).await?;
    let scenarios = scorecard::scenarios(&env.catalog, Some(Split::Validation));
    let request = scorecard::Request {
        run_id: recorder.run_id.clone(),
        split: "validation".into(),
        scenarios,
        repeats: 1,
        concurrency: 2,
        base,
        approaches: scorecard::approaches(&paths),
        trajectory_file: Some(trajectory::run_file(
            &recorder.artifacts_dir,
            &recorder.run_id,
        )),
    };
    println!("\nthe validation scenarios, which no optimizer trained on:");
    let card = scorecard::run(request, Arc::new(env)).await;
    print!("{}", card.to_summary_table());
    println!(
        "learned hints and skill: {dir}\nper scenario: remediator scorecard --split validation --artifacts-dir {dir} --default-skill-file {dir}/SKILL.md",
        dir = dir.display()
    );
    // The baseline and the hand-written hint are measured, not required:
    // on several faults at once they may run out of steps.
    Ok(card.learned_all_fixed())
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
