//! Steps and wall time per scenario, baseline vs optimized hint on the
//! runbook brain, side by side with the oracle fix length. Every number
//! is a real episode on a real service, verified by the probe.
//! Run: `cargo build --release && cargo bench --bench agent_steps [-- ROUNDS]`.

use std::path::PathBuf;
use std::time::Instant;

use remediator::agent::confirm::Refuse;
use remediator::agent::hint::ResolvedHint;
use remediator::crd::{IncidentPhase, PolicySpec};
use remediator::local::{self, LocalIncident};
use remediator::scenario::{Catalog, ChildProgram, Launch};

struct Measured {
    steps: u32,
    seconds: f64,
    resolved: bool,
}

async fn measure(
    catalog: &Catalog,
    launch: &Launch,
    scenario: &str,
    hint: &ResolvedHint,
    rounds: usize,
) -> Measured {
    let policy = PolicySpec::default();
    let mut steps = 0;
    let mut resolved = true;
    let started = Instant::now();
    for _ in 0..rounds {
        let incident = LocalIncident {
            name: scenario.replace('_', "-"),
            scenario: scenario.to_string(),
            policy_name: hint.source.as_str().into(),
            policy: policy.clone(),
            hint: hint.clone(),
        };
        let outcome = local::run(&incident, catalog, launch, &Refuse, None).await;
        steps = outcome.status.steps;
        resolved &= outcome.status.phase == IncidentPhase::Resolved;
    }
    Measured {
        steps,
        seconds: started.elapsed().as_secs_f64() / rounds as f64,
        resolved,
    }
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5);
    let program = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/remediator");
    if !program.exists() {
        eprintln!(
            "{} is missing: run `cargo build --release` first",
            program.display()
        );
        std::process::exit(1);
    }
    let launch = Launch::with_program(ChildProgram {
        program,
        prefix_args: vec!["target-service".into()],
    });
    let catalog = Catalog::builtin();
    let (baseline, optimized) = (ResolvedHint::baseline(), ResolvedHint::manual());
    println!(
        "runbook brain, mean of {rounds} runs per cell (steps are deterministic; time is wall clock incl. service start and verification)"
    );
    println!(
        "{:<24} {:>6} {:>10} {:>6} {:>10} {:>7} {:>11} {:>12} {:>12}",
        "scenario",
        "base",
        "base ms",
        "opt",
        "opt ms",
        "oracle",
        "base/opt",
        "base/oracle",
        "opt/oracle"
    );
    let (mut sums, mut failures) = ([0f64; 5], 0);
    for scenario in &catalog.scenarios {
        let b = measure(&catalog, &launch, &scenario.id, &baseline, rounds).await;
        let o = measure(&catalog, &launch, &scenario.id, &optimized, rounds).await;
        failures += usize::from(!b.resolved) + usize::from(!o.resolved);
        let oracle = scenario.fix.len() as f64;
        println!(
            "{:<24} {:>6} {:>10.1} {:>6} {:>10.1} {:>7} {:>10.2}x {:>11.2}x {:>11.2}x",
            scenario.id,
            b.steps,
            b.seconds * 1e3,
            o.steps,
            o.seconds * 1e3,
            scenario.fix.len(),
            f64::from(b.steps) / f64::from(o.steps),
            f64::from(b.steps) / oracle,
            f64::from(o.steps) / oracle
        );
        for (sum, value) in sums.iter_mut().zip([
            f64::from(b.steps),
            b.seconds,
            f64::from(o.steps),
            o.seconds,
            oracle,
        ]) {
            *sum += value;
        }
    }
    let n = catalog.scenarios.len() as f64;
    let [bs, bt, os, ot, or] = sums.map(|s| s / n);
    println!(
        "{:<24} {:>6.2} {:>10.1} {:>6.2} {:>10.1} {:>7.2} {:>10.2}x {:>11.2}x {:>11.2}x",
        "mean",
        bs,
        bt * 1e3,
        os,
        ot * 1e3,
        or,
        bs / os,
        bs / or,
        os / or
    );
    if failures > 0 {
        eprintln!("{failures} runs were not resolved");
        std::process::exit(1);
    }
}
