//! The Pareto frontier over scenarios: a candidate belongs to it when it
//! is best (ties included) on at least one scenario and is not dominated
//! (every scenario it is best on has another frontier candidate just as
//! good). Parents are drawn from it in proportion to how many scenarios
//! each is best on, so a candidate that is the only one to solve a hard
//! scenario stays in play even with a poor mean.

use std::collections::BTreeSet;

use crate::rng::Rng;

const EPSILON: f64 = 1e-9;

/// For each scenario (column), the candidates (rows) with its best score.
pub fn winners(scores: &[Vec<f64>]) -> Vec<BTreeSet<usize>> {
    let columns = scores.iter().map(Vec::len).min().unwrap_or(0);
    (0..columns)
        .map(|s| {
            let best = scores
                .iter()
                .map(|row| row[s])
                .fold(f64::NEG_INFINITY, f64::max);
            scores
                .iter()
                .enumerate()
                .filter(|(_, row)| row[s] >= best - EPSILON)
                .map(|(i, _)| i)
                .collect()
        })
        .collect()
}

/// The frontier: (candidate, number of scenarios it is best on), by index.
pub fn frontier(scores: &[Vec<f64>]) -> Vec<(usize, usize)> {
    let fronts = winners(scores);
    let on_front: BTreeSet<usize> = fronts.iter().flatten().copied().collect();
    let mean = |i: usize| scores[i].iter().sum::<f64>();
    // Weakest first: they are the ones a stronger candidate can cover.
    let mut order: Vec<usize> = on_front.iter().copied().collect();
    order.sort_by(|a, b| mean(*a).total_cmp(&mean(*b)).then(a.cmp(b)));
    let mut dominated = BTreeSet::new();
    loop {
        let next = order.iter().copied().find(|&y| {
            !dominated.contains(&y)
                && fronts
                    .iter()
                    .filter(|front| front.contains(&y))
                    .all(|front| front.iter().any(|&o| o != y && !dominated.contains(&o)))
        });
        match next {
            Some(y) => {
                dominated.insert(y);
            }
            None => break,
        }
    }
    on_front
        .into_iter()
        .filter(|i| !dominated.contains(i))
        .map(|i| {
            let wins = fronts.iter().filter(|front| front.contains(&i)).count();
            (i, wins)
        })
        .collect()
}

/// A parent from the frontier, drawn in proportion to its wins.
pub fn select(frontier: &[(usize, usize)], rng: &mut Rng) -> Option<usize> {
    let total: usize = frontier.iter().map(|(_, wins)| wins).sum();
    if total == 0 {
        return frontier.first().map(|(i, _)| *i);
    }
    let mut ticket = rng.below(total);
    for (i, wins) in frontier {
        if ticket < *wins {
            return Some(*i);
        }
        ticket -= wins;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_candidate_best_on_one_scenario_stays_even_with_a_poor_mean() {
        let scores = vec![
            vec![0.9, 0.9, 0.0], // best mean, loses scenario 2
            vec![0.1, 0.1, 0.8], // only one to solve scenario 2
            vec![0.5, 0.5, 0.5], // never best: not on the frontier
        ];
        assert_eq!(frontier(&scores), vec![(0, 2), (1, 1)]);
    }

    #[test]
    fn a_candidate_whose_every_win_is_shared_is_dominated() {
        let scores = vec![
            vec![1.0, 0.5], // ties 2 on scenario 0 only
            vec![1.0, 0.9], // best on both
        ];
        assert_eq!(frontier(&scores), vec![(1, 2)]);
        // Two equal candidates: one of them stands for both.
        let twins = vec![vec![0.7, 0.7], vec![0.7, 0.7]];
        assert_eq!(frontier(&twins).len(), 1);
    }

    #[test]
    fn selection_follows_the_wins_and_the_seed() {
        let front = vec![(0, 3), (4, 1)];
        let draw = |seed| {
            let mut rng = Rng::new(seed);
            (0..400)
                .map(|_| select(&front, &mut rng).unwrap())
                .collect::<Vec<_>>()
        };
        let picks = draw(11);
        assert_eq!(picks, draw(11));
        let zeros = picks.iter().filter(|&&p| p == 0).count();
        assert!(
            (250..350).contains(&zeros),
            "{zeros} of 400 for 3 of 4 wins"
        );
        assert!(picks.iter().all(|p| *p == 0 || *p == 4));
        assert_eq!(select(&[], &mut Rng::new(1)), None);
    }
}
