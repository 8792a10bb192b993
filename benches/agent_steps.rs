//! Steps and wall time per scenario, baseline vs optimized hint on the
//! runbook brain, side by side with the oracle fix length. Every number
//! is a real episode on a real service, verified by the probe.
//! Run: `cargo build --release && cargo bench --bench agent_steps [-- ROUNDS]`.

use std::time::Instant;

use remediator::agent::confirm::Refuse;
use remediator::agent::hint::ResolvedHint;
use remediator::crd::{IncidentPhase, PolicySpec};
use remediator::local::{self, Environment, LocalIncident};
use remediator::policy::ResolvedPolicy;
use remediator::scenario::{Catalog, Split, oracle_fix};

#[path = "support.rs"]
mod support;

struct Measured {
    steps: u32,
    seconds: f64,
    resolved: bool,
}

async fn measure(
    env: &Environment,
    scenario: &str,
    hint: &ResolvedHint,
    rounds: usize,
) -> Measured {
    let mut steps = 0;
    let mut resolved = true;
    let started = Instant::now();
    for _ in 0..rounds {
        let incident = LocalIncident {
            name: scenario.replace('_', "-"),
            scenario: scenario.to_string(),
            policy: ResolvedPolicy {
                name: hint.source.as_str().into(),
                spec: PolicySpec::default(),
                hint: hint.clone(),
                generation: None,
            },
            classifier_off: false,
            keep: false,
        };
        let outcome = local::run(&incident, env, &Refuse).await;
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
    let env = Environment::local(support::release_binary("remediator"), Catalog::builtin()).await;
    println!("sandbox: {}", env.sandbox.containment().summary());
    let catalog = env.catalog.clone();
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
    let mut failures = 0;
    let mut sums = [[0f64; 5]; 2];
    let mut counts = [0f64; 2];
    for scenario in &catalog.scenarios {
        let b = measure(&env, &scenario.id, &baseline, rounds).await;
        let o = measure(&env, &scenario.id, &optimized, rounds).await;
        failures += usize::from(!b.resolved) + usize::from(!o.resolved);
        let fix_len = oracle_fix(scenario, 1).map_or(0, |f| f.len());
        let oracle = fix_len as f64;
        println!(
            "{:<24} {:>6} {:>10.1} {:>6} {:>10.1} {:>7} {:>10.2}x {:>11.2}x {:>11.2}x",
            scenario.id,
            b.steps,
            b.seconds * 1e3,
            o.steps,
            o.seconds * 1e3,
            fix_len,
            f64::from(b.steps) / f64::from(o.steps),
            f64::from(b.steps) / oracle,
            f64::from(o.steps) / oracle
        );
        let split = usize::from(scenario.split == Split::Validation);
        counts[split] += 1.0;
        for (sum, value) in sums[split].iter_mut().zip([
            f64::from(b.steps),
            b.seconds,
            f64::from(o.steps),
            o.seconds,
            oracle,
        ]) {
            *sum += value;
        }
    }
    for (label, split) in [("mean train", 0), ("mean validation", 1)] {
        let n = counts[split].max(1.0);
        let [bs, bt, os, ot, or] = sums[split].map(|s| s / n);
        println!(
            "{:<24} {:>6.2} {:>10.1} {:>6.2} {:>10.1} {:>7.2} {:>10.2}x {:>11.2}x {:>11.2}x",
            label,
            bs,
            bt * 1e3,
            os,
            ot * 1e3,
            or,
            bs / os,
            bs / or,
            os / or
        );
    }
    if failures > 0 {
        eprintln!("{failures} runs were not resolved");
        std::process::exit(1);
    }
}
