//! GEPA (Agrawal et al., "GEPA: Reflective Prompt Evolution Can Outperform
//! Reinforcement Learning"): each iteration draws a parent from the Pareto
//! frontier of the pool (candidates best on at least one train scenario),
//! reflects on its traces on a minibatch (epoch-shuffled, seeded) and keeps
//! the child only when it scores higher there; after a kept child, it may
//! merge two frontier candidates that win on different scenarios (kept when
//! the merge does at least as well as both on a minibatch where they
//! differ). It ends when the budget (less the validation reserve) cannot
//! pay for another trial; the finalists are then chosen on validation.

use std::collections::BTreeSet;

use super::pool::Origin;
use super::{Child, OptimizeError, Outcome, Run, Step, merge, pareto};
use crate::rng::Rng;

pub async fn optimize(
    mut run: Run<'_>,
    seeds: Vec<(String, Origin)>,
) -> Result<Outcome, OptimizeError> {
    let mut rng = Rng::new(run.settings.seed);
    if run.start(seeds).await? {
        search(&mut run, &mut rng).await;
    }
    let mut others: Vec<usize> = pareto::frontier(&run.pool.score_matrix())
        .into_iter()
        .map(|(i, _)| i)
        .collect();
    others.sort_by(|a, b| {
        run.pool
            .get(*b)
            .mean()
            .total_cmp(&run.pool.get(*a).mean())
            .then(a.cmp(b))
    });
    Ok(run.finish(others).await)
}

async fn search(run: &mut Run<'_>, rng: &mut Rng) {
    let n = run.train.len();
    let size = run.settings.minibatch.min(n);
    let mut epoch: Vec<usize> = Vec::new();
    let mut merges_left = run.settings.max_merges;
    let mut tried = BTreeSet::new();
    let mut merge_due = false;
    while run.going() {
        if merge_due && merges_left > 0 {
            merge_due = false;
            if let Some(((a, b), merged)) = merge::pick_pair(&run.pool, &tried, rng) {
                tried.insert((a, b));
                merges_left -= 1;
                let batch: Vec<String> = merge::minibatch(&run.pool, a, b, size, rng)
                    .into_iter()
                    .map(|i| run.train[i].clone())
                    .collect();
                let bar = run
                    .pool
                    .get(a)
                    .sum_on(&batch)
                    .max(run.pool.get(b).sum_on(&batch));
                let child = Child {
                    hint: merged.hint(),
                    notes: vec![format!("merge of {a} and {b}: {}", merged.summary())],
                };
                if let Step::Spent = run
                    .trial(child, vec![a, b], Origin::Merge, &batch, bar, true)
                    .await
                {
                    break;
                }
                continue;
            }
        }
        let frontier = pareto::frontier(&run.pool.score_matrix());
        let Some(parent) = pareto::select(&frontier, rng) else {
            break;
        };
        if epoch.len() < size {
            let mut order: Vec<usize> = (0..n).collect();
            rng.shuffle(&mut order);
            epoch.extend(order);
        }
        let batch: Vec<String> = epoch.drain(..size).map(|i| run.train[i].clone()).collect();
        let Some(child) = run.propose(parent, &batch).await else {
            continue;
        };
        let bar = run.pool.get(parent).sum_on(&batch);
        match run
            .trial(child, vec![parent], Origin::Reflection, &batch, bar, false)
            .await
        {
            Step::Spent => break,
            Step::Accepted(_) => merge_due = true,
            Step::Rejected | Step::Nothing => {}
        }
    }
}
