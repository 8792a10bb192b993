//! Steps and wall time per scenario on the runbook brain: the baseline,
//! the hand-written and the shipped learned hint, side by side with the
//! shortest honest episode (oracle fix + 2). Every number
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

/// The hint of the shipped learned policy (examples/policy-learned.yaml).
fn learned_hint() -> ResolvedHint {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policy-learned.yaml");
    let text = std::fs::read_to_string(path).expect("examples/policy-learned.yaml");
    let policy: remediator::crd::Policy = serde_yaml::from_str(&text).expect("a Policy");
    ResolvedHint::inline(&policy.spec.hint.expect("the learned policy has a hint"))
}

/// Per split and hint: fixed, runs, and sums over fixed runs of steps,
/// seconds and steps over the shortest honest episode (oracle fix + 2).
#[derive(Default, Clone, Copy)]
struct Sums {
    fixed: usize,
    runs: usize,
    steps: f64,
    seconds: f64,
    ratio: f64,
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
    let hints = [
        ("baseline", ResolvedHint::baseline()),
        ("manual", ResolvedHint::manual()),
        ("learned", learned_hint()),
    ];
    println!(
        "runbook brain, mean of {rounds} runs per cell (steps are deterministic; time is wall clock incl. service start and verification; * = not resolved)"
    );
    print!("{:<34} {:>7}", "scenario", "honest");
    for (name, _) in &hints {
        print!(" {:>9} {:>8}", name, "ms");
    }
    println!();
    let mut sums = [[Sums::default(); 3]; 2];
    for scenario in &catalog.scenarios {
        let honest = oracle_fix(scenario, 1).map_or(0, |f| f.len()) + 2;
        let split = usize::from(scenario.split == Split::Validation);
        print!("{:<34} {:>7}", scenario.id, honest);
        for (index, (_, hint)) in hints.iter().enumerate() {
            let m = measure(&env, &scenario.id, hint, rounds).await;
            let mark = if m.resolved { " " } else { "*" };
            print!(" {:>8}{mark} {:>8.1}", m.steps, m.seconds * 1e3);
            let cell = &mut sums[split][index];
            cell.runs += 1;
            if m.resolved {
                cell.fixed += 1;
                cell.steps += f64::from(m.steps);
                cell.seconds += m.seconds;
                cell.ratio += f64::from(m.steps) / honest as f64;
            }
        }
        println!();
    }
    println!("\nover fixed runs: fixed/runs, mean steps, mean ms, mean steps / shortest honest");
    for (label, split) in [("train", 0), ("validation", 1)] {
        for (index, (name, _)) in hints.iter().enumerate() {
            let c = sums[split][index];
            let n = c.fixed.max(1) as f64;
            println!(
                "{label:<10} {name:<9} {:>2}/{:<2} {:>6.2} steps {:>7.1} ms {:>5.2}x",
                c.fixed,
                c.runs,
                c.steps / n,
                c.seconds / n * 1e3,
                c.ratio / n
            );
        }
    }
    // The shipped learned hint must fix everything; the others are measured.
    let learned_failures: usize = sums.iter().map(|s| s[2].runs - s[2].fixed).sum();
    if learned_failures > 0 {
        eprintln!("{learned_failures} scenarios were not resolved by the learned hint");
        std::process::exit(1);
    }
}
