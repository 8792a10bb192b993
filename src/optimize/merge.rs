//! GEPA's merge, on a hint's parts: the check order, the targeted rule and
//! the direct rule are its components. Two frontier candidates that win on
//! different scenarios and share an ancestor are merged part by part: where
//! one of them kept the ancestor's part, the other's change is taken; where
//! both changed it, the better one's (by train score).

use std::collections::BTreeSet;

use super::pareto;
use super::pool::Pool;
use super::strategy::Strategy;
use crate::rng::Rng;

/// The nearest common ancestor of `a` and `b` (a candidate counts as its
/// own ancestor here), if any.
pub fn common_ancestor(pool: &Pool, a: usize, b: usize) -> Option<usize> {
    let with_self = |id: usize| {
        let mut set: BTreeSet<usize> = pool.ancestors(id).into_iter().collect();
        set.insert(id);
        set
    };
    with_self(a).intersection(&with_self(b)).max().copied()
}

/// The merged strategy of `a` and `b` over their ancestor `c`.
pub fn merge(a: &Strategy, b: &Strategy, c: &Strategy, a_better: bool) -> Strategy {
    fn pick<T: PartialEq + Clone>(a: &T, b: &T, c: &T, a_better: bool) -> T {
        if a == c {
            b.clone()
        } else if b == c || a_better {
            a.clone()
        } else {
            b.clone()
        }
    }
    Strategy {
        checks: pick(&a.checks, &b.checks, &c.checks, a_better),
        targeted: pick(&a.targeted, &b.targeted, &c.targeted, a_better),
        direct: pick(&a.direct, &b.direct, &c.direct, a_better),
    }
}

/// A pair to merge: frontier candidates that each win a scenario the other
/// does not, neither descends from the other, they share an ancestor, the
/// pair was not tried, and the merge is new. With the merged strategy.
pub fn pick_pair(
    pool: &Pool,
    tried: &BTreeSet<(usize, usize)>,
    rng: &mut Rng,
) -> Option<((usize, usize), Strategy)> {
    let scores = pool.score_matrix();
    let fronts = pareto::winners(&scores);
    let front: Vec<usize> = pareto::frontier(&scores)
        .into_iter()
        .map(|(i, _)| i)
        .collect();
    let wins = |i: usize| -> BTreeSet<usize> {
        fronts
            .iter()
            .enumerate()
            .filter(|(_, f)| f.contains(&i))
            .map(|(s, _)| s)
            .collect()
    };
    let mut eligible = Vec::new();
    for (n, &a) in front.iter().enumerate() {
        for &b in &front[n + 1..] {
            let (wa, wb) = (wins(a), wins(b));
            if tried.contains(&(a, b)) || wa.is_subset(&wb) || wb.is_subset(&wa) {
                continue;
            }
            if pool.ancestors(a).contains(&b) || pool.ancestors(b).contains(&a) {
                continue;
            }
            let Some(c) = common_ancestor(pool, a, b) else {
                continue;
            };
            let [sa, sb, sc] = [a, b, c].map(|i| Strategy::of_hint(&pool.get(i).hint));
            let merged = merge(&sa, &sb, &sc, pool.get(a).mean() >= pool.get(b).mean());
            if merged != sa && merged != sb {
                eligible.push(((a, b), merged));
            }
        }
    }
    if eligible.is_empty() {
        return None;
    }
    let at = rng.below(eligible.len());
    Some(eligible.swap_remove(at))
}

/// The scenarios to try a merge on: where its parents differ most first,
/// then the others in a seeded order.
pub fn minibatch(pool: &Pool, a: usize, b: usize, size: usize, rng: &mut Rng) -> Vec<usize> {
    let (sa, sb) = (pool.get(a).scores(), pool.get(b).scores());
    let mut order: Vec<usize> = (0..sa.len()).collect();
    rng.shuffle(&mut order);
    order.sort_by(|x, y| (sa[*y] - sb[*y]).abs().total_cmp(&(sa[*x] - sb[*x]).abs()));
    order.truncate(size);
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::runbook::Check;

    fn s(checks: &[Check], targeted: bool, direct: bool) -> Strategy {
        Strategy {
            checks: checks.to_vec(),
            targeted,
            direct,
        }
    }

    #[test]
    fn each_part_comes_from_the_parent_that_changed_it() {
        let ancestor = s(&[Check::Health, Check::Locks, Check::Config], false, false);
        let reordered = s(&[Check::Health, Check::Config, Check::Locks], false, false);
        let targeted = s(&[Check::Health, Check::Locks, Check::Config], true, false);
        assert_eq!(
            merge(&reordered, &targeted, &ancestor, false),
            s(&[Check::Health, Check::Config, Check::Locks], true, false)
        );
        // Both changed the order: the better parent's order.
        let other = s(&[Check::Config, Check::Locks, Check::Health], false, true);
        assert_eq!(
            merge(&reordered, &other, &ancestor, true).checks,
            reordered.checks
        );
        assert_eq!(
            merge(&reordered, &other, &ancestor, false).checks,
            other.checks
        );
        assert!(merge(&reordered, &other, &ancestor, true).direct);
    }
}
