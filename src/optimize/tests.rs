//! The engines on a fake world (no services): the budget is never
//! exceeded, a fixed seed gives the same result, the frontier keeps a
//! specialist, merges happen, and the final choice is made on validation.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

use futures::future::BoxFuture;

use super::evaluate::tests::{Fake, names, shortest};
use super::evaluate::{Rollout, Rollouts};
use super::pool::{Origin, Pool};
use super::progress::Recorded;
use super::reflect::{ReflectError, Reflection, Reflector};
use super::strategy::Strategy;
use super::*;
use crate::rng::Rng;

/// Learns from its minibatch: puts the first unresolved (else the
/// worst-scoring) scenario's name at the front of the hint.
struct Promote;

impl Reflector for Promote {
    fn name(&self) -> &'static str {
        "promote"
    }

    fn reflect<'a>(
        &'a self,
        parent: &'a str,
        rollouts: &'a [Rollout],
    ) -> BoxFuture<'a, Result<Option<Reflection>, ReflectError>> {
        let worst = rollouts
            .iter()
            .min_by(|a, b| a.score.total_cmp(&b.score))
            .map(|r| r.scenario.clone());
        let child = worst.map(|w| {
            let rest: Vec<&str> = parent.split_whitespace().filter(|x| *x != w).collect();
            format!("{w} {}", rest.join(" "))
        });
        Box::pin(async move {
            Ok(child
                .filter(|c| normalized(c) != normalized(parent))
                .map(|hint| Reflection {
                    hint,
                    notes: vec![],
                }))
        })
    }
}

const TRAIN: [&str; 6] = ["t1", "t2", "t3", "t4", "t5", "t6"];
const VALIDATION: [&str; 3] = ["v1", "v2", "t3"];

fn settings(optimizer: Optimizer, budget: usize, seed: u64) -> Settings {
    Settings {
        optimizer,
        budget,
        minibatch: 2,
        seed,
        max_merges: 3,
        patience: PATIENCE,
        dedupe_by_strategy: false,
    }
}

async fn optimize_fake(
    optimizer: Optimizer,
    budget: usize,
    seed: u64,
) -> (Outcome, usize, Vec<String>) {
    let fake = Fake::new();
    let all: Vec<&str> = TRAIN.iter().chain(&VALIDATION).copied().collect();
    let rollouts = Rollouts::new(&fake, shortest(&all), budget);
    let mut progress = Recorded::default();
    let run = Run::new(
        settings(optimizer, budget, seed),
        rollouts,
        &Promote,
        &mut progress,
        BTreeSet::new(),
        names(&TRAIN),
        names(&["v1", "v2"]),
    )
    .unwrap();
    let seeds = vec![("t1 x".to_string(), Origin::Seed)];
    let outcome = match optimizer {
        Optimizer::Gepa => gepa::optimize(run, seeds).await.unwrap(),
        Optimizer::Iterative => iterative::optimize(run, seeds).await.unwrap(),
    };
    (outcome, fake.runs.load(Ordering::SeqCst), progress.notes)
}

#[tokio::test]
async fn the_budget_is_never_exceeded() {
    for optimizer in [Optimizer::Gepa, Optimizer::Iterative] {
        for budget in [1, 2, 5, 6, 7, 9, 13, 20, 31, 64] {
            for seed in [0, 1, 2] {
                let (outcome, ran, _) = optimize_fake(optimizer, budget, seed).await;
                assert!(
                    ran <= budget && outcome.rollouts_used == ran,
                    "{optimizer:?} budget {budget} seed {seed}: ran {ran}, counted {}",
                    outcome.rollouts_used
                );
            }
        }
    }
}

#[tokio::test]
async fn a_budget_below_one_train_pass_warns_and_learns_nothing() {
    let (outcome, ran, notes) = optimize_fake(Optimizer::Gepa, 4, 0).await;
    assert_eq!(ran, 4);
    assert!(
        notes
            .iter()
            .any(|n| n.contains("cannot cover one pass over the train set")),
        "{notes:?}"
    );
    assert_eq!(outcome.pool.candidates.len(), 1);
    assert_eq!(outcome.train.len(), 4);
    assert_eq!(outcome.best, 0);
    assert!(outcome.validated.is_empty());
}

#[tokio::test]
async fn a_fixed_seed_gives_the_same_result() {
    for optimizer in [Optimizer::Gepa, Optimizer::Iterative] {
        let (a, _, _) = optimize_fake(optimizer, 60, 7).await;
        let (b, _, _) = optimize_fake(optimizer, 60, 7).await;
        let hints = |o: &Outcome| {
            o.pool
                .candidates
                .iter()
                .map(|c| (c.hint.clone(), c.parents.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(hints(&a), hints(&b));
        assert_eq!(
            (a.best, a.rollouts_used, a.curve.clone()),
            (b.best, b.rollouts_used, b.curve.clone())
        );
    }
}

#[tokio::test]
async fn gepa_learns_and_chooses_on_validation() {
    let (outcome, _, _) = optimize_fake(Optimizer::Gepa, 80, 3).await;
    assert!(outcome.accepted > 0);
    let best = outcome.pool.get(outcome.best);
    assert!(best.mean() > outcome.pool.get(0).mean(), "{:?}", best.hint);
    // The seed and up to two others were validated; the choice is the best
    // validation score among them.
    let validated: Vec<usize> = outcome.validated.iter().map(|(id, _)| *id).collect();
    assert_eq!(validated[0], 0);
    assert!(validated.len() <= 3 && validated.contains(&outcome.best));
    let best_val = outcome.validation_score(outcome.best).unwrap();
    assert!(
        validated
            .iter()
            .all(|id| outcome.validation_score(*id).unwrap() <= best_val)
    );
    // Every accepted child has parents in the pool, before it.
    for c in &outcome.pool.candidates[1..] {
        assert!(!c.parents.is_empty() && c.parents.iter().all(|p| *p < c.id));
    }
}

fn rollout(scenario: &str, score: f64) -> Rollout {
    let line = super::evaluate::tests::fake_line(scenario, scenario);
    Rollout {
        scenario: scenario.into(),
        analysis: super::feedback::analyze(&line, 3),
        line,
        score,
        reused: false,
    }
}

fn pool_of(rows: &[(&str, Vec<usize>, [f64; 3])]) -> Pool {
    let mut pool = Pool::default();
    for (hint, parents, scores) in rows {
        let train = ["a", "b", "c"]
            .iter()
            .zip(scores)
            .map(|(s, x)| rollout(s, *x))
            .collect();
        pool.add(
            hint.to_string(),
            parents.clone(),
            Origin::Reflection,
            vec![],
            train,
            0,
        );
    }
    pool
}

#[test]
fn two_specialists_of_one_ancestor_are_merged_part_by_part() {
    let manual = crate::agent::hint::MANUAL_HINT;
    let base = Strategy::of_hint(manual);
    let mut targeted = base.clone();
    targeted.targeted = true;
    let mut direct = base.clone();
    direct.direct = true;
    let pool = pool_of(&[
        (manual, vec![], [0.5, 0.5, 0.5]),
        (&targeted.hint(), vec![0], [0.9, 0.6, 0.1]),
        (&direct.hint(), vec![0], [0.1, 0.6, 0.9]),
    ]);
    let mut rng = Rng::new(1);
    let ((a, b), merged) = merge::pick_pair(&pool, &BTreeSet::new(), &mut rng).unwrap();
    assert_eq!((a, b), (1, 2));
    assert!(merged.targeted && merged.direct);
    assert_eq!(merged.checks, base.checks);
    // Tried already: nothing left to merge.
    assert!(merge::pick_pair(&pool, &BTreeSet::from([(1, 2)]), &mut rng).is_none());
    // The minibatch starts where they differ most.
    let batch = merge::minibatch(&pool, 1, 2, 2, &mut rng);
    assert_eq!(BTreeSet::from_iter(batch), BTreeSet::from([0, 2]));
}

#[test]
fn no_merge_between_a_candidate_and_its_descendant() {
    let manual = crate::agent::hint::MANUAL_HINT;
    let mut targeted = Strategy::of_hint(manual);
    targeted.targeted = true;
    let mut both = targeted.clone();
    both.direct = true;
    let pool = pool_of(&[
        (manual, vec![], [0.5, 0.5, 0.5]),
        (&targeted.hint(), vec![0], [0.9, 0.1, 0.1]),
        (&both.hint(), vec![1], [0.1, 0.9, 0.9]),
    ]);
    assert!(merge::pick_pair(&pool, &BTreeSet::new(), &mut Rng::new(1)).is_none());
}

#[test]
fn bad_settings_are_clear_errors() {
    let fake = Fake::new();
    let mut progress = Recorded::default();
    let make = |budget, minibatch, train: &[&str], progress: &mut Recorded| {
        let rollouts = Rollouts::new(&fake, shortest(&TRAIN), budget);
        let mut s = settings(Optimizer::Gepa, budget, 0);
        s.minibatch = minibatch;
        Run::new(
            s,
            rollouts,
            &Promote,
            progress,
            BTreeSet::new(),
            names(train),
            vec![],
        )
        .err()
        .map(|e| e.to_string())
    };
    assert_eq!(
        make(0, 2, &TRAIN, &mut progress).as_deref(),
        Some("the budget must be at least one rollout")
    );
    assert!(
        make(5, 0, &TRAIN, &mut progress)
            .unwrap()
            .contains("minibatch")
    );
    assert!(
        make(5, 2, &[], &mut progress)
            .unwrap()
            .contains("no train scenario")
    );
}
