//! GEPA against the iterative optimizer at equal rollout budgets, next to
//! the baseline and the hand-written hint, on train and on validation
//! (scenarios the optimizers never trained on): fix rate, mean steps,
//! steps over the shortest honest episode, and mean score. Then how many
//! rollouts GEPA needed to reach the iterative optimizer's final train
//! score. Every rollout is a real incident on the runbook brain, verified
//! by the probe.
//! Run: `cargo build --release && cargo bench --bench optimizer [-- BUDGET...]`.

use std::collections::{BTreeMap, BTreeSet};

use remediator::agent::hint::{BASELINE_HINT, MANUAL_HINT, ResolvedHint};
use remediator::crd::PolicySpec;
use remediator::local::Environment;
use remediator::optimize::evaluate::{IncidentEpisodes, Rollout, Rollouts};
use remediator::optimize::pool::Origin;
use remediator::optimize::progress::Recorded;
use remediator::optimize::reflect::deterministic::Deterministic;
use remediator::optimize::{
    Optimizer, Outcome, PATIENCE, Run, Settings, general, gepa, iterative, score,
};
use remediator::policy::ResolvedPolicy;
use remediator::scenario::{Catalog, Split};

#[path = "support.rs"]
mod support;

const SEEDS: [u64; 3] = [0, 1, 2];

/// Fix rate, mean steps, steps over shortest, mean score.
fn measure(rollouts: &[Rollout]) -> String {
    let n = rollouts.len().max(1) as f64;
    let fixed = rollouts.iter().filter(|r| r.line.service_up).count();
    let steps: f64 = rollouts
        .iter()
        .map(|r| f64::from(r.line.step_count))
        .sum::<f64>()
        / n;
    let shortest: f64 = rollouts
        .iter()
        .map(|r| r.analysis.shortest as f64)
        .sum::<f64>()
        / n;
    let mean = score::mean(rollouts.iter().map(|r| r.score));
    format!(
        "{:>5} {:>6.2} {:>6.2}x {:>6.3}",
        format!("{fixed}/{}", rollouts.len()),
        steps,
        steps / shortest,
        mean
    )
}

struct Bench {
    episodes: IncidentEpisodes,
    shortest: BTreeMap<String, usize>,
    train: Vec<String>,
    validation: Vec<String>,
    forbidden: BTreeSet<String>,
}

impl Bench {
    /// A hint on a split, outside any budget.
    async fn evaluate(&self, hint: &str, scenarios: &[String]) -> Vec<Rollout> {
        let mut rollouts = Rollouts::new(&self.episodes, self.shortest.clone(), scenarios.len());
        rollouts
            .evaluate(hint, scenarios)
            .await
            .expect("a budget of one pass")
    }

    async fn optimize(&self, optimizer: Optimizer, budget: usize, seed: u64) -> Outcome {
        let mut progress = Recorded::default();
        let settings = Settings {
            optimizer,
            budget,
            minibatch: 3,
            seed,
            max_merges: 3,
            patience: PATIENCE,
            dedupe_by_strategy: true,
        };
        let run = Run::new(
            settings,
            Rollouts::new(&self.episodes, self.shortest.clone(), budget),
            &Deterministic,
            &mut progress,
            self.forbidden.clone(),
            self.train.clone(),
            self.validation.clone(),
        )
        .expect("valid settings");
        let seeds = vec![(MANUAL_HINT.trim().to_string(), Origin::Seed)];
        match optimizer {
            Optimizer::Gepa => gepa::optimize(run, seeds).await,
            Optimizer::Iterative => iterative::optimize(run, seeds).await,
        }
        .expect("the optimization runs")
    }
}

/// Rollouts used when the curve first reached `target`.
fn reached(curve: &[(usize, f64)], target: f64) -> Option<usize> {
    curve
        .iter()
        .find(|(_, s)| *s >= target - 1e-9)
        .map(|(used, _)| *used)
}

#[tokio::main]
async fn main() {
    let budgets: Vec<usize> = {
        let given: Vec<usize> = std::env::args()
            .skip(1)
            .filter_map(|a| a.parse().ok())
            .collect();
        if given.is_empty() {
            vec![20, 30, 40, 60, 100]
        } else {
            given
        }
    };
    let catalog = Catalog::builtin();
    let env = Environment::local(support::release_binary("remediator"), catalog.clone()).await;
    println!("sandbox: {}", env.sandbox.containment().summary());
    let bench = Bench {
        episodes: IncidentEpisodes {
            env,
            policy: ResolvedPolicy {
                name: "bench".into(),
                spec: PolicySpec::default(),
                hint: ResolvedHint::manual(),
                generation: None,
            },
            concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()),
            label: "bench".into(),
        },
        shortest: remediator::scenario::shortest_honest_by_id(&catalog),
        train: catalog.ids_in(Some(Split::Train)),
        validation: catalog.ids_in(Some(Split::Validation)),
        forbidden: general::forbidden(&catalog),
    };
    println!(
        "runbook brain; {} train and {} validation scenarios; optimizers start from the manual hint; minibatch 3; seeds {SEEDS:?}",
        bench.train.len(),
        bench.validation.len()
    );
    println!("score: {}", score::FORMULA);
    println!(
        "\n{:<24} {:>6} {:>5} | {:>5} {:>6} {:>7} {:>6} | {:>5} {:>6} {:>7} {:>6}",
        "hint",
        "budget",
        "used",
        "fixed",
        "steps",
        "x-short",
        "score",
        "fixed",
        "steps",
        "x-short",
        "score"
    );
    println!("{:<38} | {:^27} | {:^27}", "", "train", "validation");
    for (label, hint) in [("baseline", BASELINE_HINT), ("manual", MANUAL_HINT.trim())] {
        let train = bench.evaluate(hint, &bench.train).await;
        let validation = bench.evaluate(hint, &bench.validation).await;
        println!(
            "{label:<24} {:>6} {:>5} | {} | {}",
            "-",
            "-",
            measure(&train),
            measure(&validation)
        );
    }
    let mut reach_lines = Vec::new();
    let mut best_hints = BTreeMap::new();
    for &budget in &budgets {
        let mut finals: BTreeMap<u64, (usize, f64)> = BTreeMap::new();
        let mut curves: BTreeMap<u64, Vec<(usize, f64)>> = BTreeMap::new();
        for optimizer in [Optimizer::Gepa, Optimizer::Iterative] {
            for seed in SEEDS {
                let outcome = bench.optimize(optimizer, budget, seed).await;
                let best = outcome.pool.get(outcome.best);
                let validation = match outcome.validation_of(outcome.best) {
                    Some(v) => v.to_vec(),
                    None => bench.evaluate(&best.hint, &bench.validation).await,
                };
                println!(
                    "{:<24} {budget:>6} {:>5} | {} | {}",
                    format!("{} seed {seed}", outcome.optimizer.as_str()),
                    outcome.rollouts_used,
                    measure(&best.train),
                    measure(&validation)
                );
                best_hints.insert(
                    (optimizer.as_str(), budget, seed),
                    remediator::optimize::strategy::Strategy::of_hint(&best.hint).summary(),
                );
                match optimizer {
                    Optimizer::Iterative => {
                        let last = outcome.curve.last().copied().unwrap_or((0, 0.0));
                        finals.insert(seed, last);
                    }
                    Optimizer::Gepa => {
                        curves.insert(seed, outcome.curve.clone());
                    }
                }
            }
        }
        for seed in SEEDS {
            let (iter_used, iter_score) = finals[&seed];
            let gepa = reached(&curves[&seed], iter_score);
            reach_lines.push(format!(
                "budget {budget:>3} seed {seed}: iterative's final train score {iter_score:.3} (reached at {iter_used} rollouts); GEPA reached it at {}",
                match gepa {
                    Some(used) => format!(
                        "{used} rollouts ({:.2} of the budget, {:.2} of iterative's)",
                        used as f64 / budget as f64,
                        used as f64 / iter_used.max(1) as f64
                    ),
                    None => "- (never, within this budget)".into(),
                }
            ));
        }
    }
    println!("\nGEPA against iterative's final train score:");
    for line in reach_lines {
        println!("  {line}");
    }
    println!("\nchosen strategies:");
    for ((optimizer, budget, seed), summary) in best_hints {
        println!("  {optimizer:<9} budget {budget:>3} seed {seed}: {summary}");
    }
}
