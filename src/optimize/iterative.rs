//! The iterative optimizer GEPA is compared with: one candidate, refined
//! round after round from its failures. Each round reflects on its worst
//! train scenarios (lowest scores first; ties in a seeded order; when they
//! teach nothing new, the window moves on to the next worst); a child
//! better on that minibatch is scored on the whole train set and replaces
//! the candidate only when its train score is higher. Same budget, same
//! reflector, same validation of the finalists (the seed and the last
//! candidate).

use super::pool::Origin;
use super::{OptimizeError, Outcome, Run, Step};
use crate::rng::Rng;

pub async fn optimize(
    mut run: Run<'_>,
    seeds: Vec<(String, Origin)>,
) -> Result<Outcome, OptimizeError> {
    let mut rng = Rng::new(run.settings.seed);
    let mut current = 0;
    if run.start(seeds).await? {
        // Recorded seeds may start ahead of the hint in use.
        current = run.pool.best_by_mean().map_or(0, |c| c.id);
        let n = run.train.len();
        let size = run.settings.minibatch.min(n);
        // Worst first; when they teach nothing new, the next worst.
        let mut offset = 0;
        while run.going() {
            let scores = run.pool.get(current).scores();
            let mut order: Vec<usize> = (0..scores.len()).collect();
            rng.shuffle(&mut order);
            order.sort_by(|a, b| scores[*a].total_cmp(&scores[*b]));
            let batch: Vec<String> = (0..size)
                .map(|k| run.train[order[(offset + k) % n]].clone())
                .collect();
            let Some(child) = run.propose(current, &batch).await else {
                offset = (offset + 1) % n;
                continue;
            };
            offset = 0;
            let bar = run.pool.get(current).sum_on(&batch);
            match run
                .trial(child, vec![current], Origin::Reflection, &batch, bar, false)
                .await
            {
                Step::Spent => break,
                Step::Accepted(id) => {
                    if run.pool.get(id).mean() > run.pool.get(current).mean() + 1e-9 {
                        current = id;
                    } else {
                        run.note(format!(
                            "candidate {id} was better on its minibatch but not on the train set: {current} stays"
                        ));
                    }
                }
                Step::Rejected | Step::Nothing => {}
            }
        }
    }
    Ok(run.finish(vec![current]).await)
}
