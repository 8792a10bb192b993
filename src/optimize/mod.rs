//! Self-optimization: learn a better strategy hint from the agent's own
//! trajectories. Two optimizers share one rollout budget, one scorer and
//! one reflector:
//!
//! - [`gepa`]: a pool of candidates with per-scenario scores; parents drawn
//!   from the Pareto frontier; reflective mutation on a minibatch of the
//!   parent's traces, kept only when it improves on that minibatch; merge
//!   of two candidates that win on different scenarios; final choice on
//!   the validation split it never trained on.
//! - [`iterative`]: one candidate, refined from its worst scenarios round
//!   after round; what GEPA is measured against.
//!
//! [`publish`] puts a result in use only when it beats the current hint on
//! validation; [`distill`] writes the SKILL.md runbook from verified runs.

pub mod artifacts;
pub mod distill;
pub mod evaluate;
pub mod feedback;
pub mod general;
pub mod gepa;
pub mod iterative;
pub mod learn;
pub mod merge;
pub mod pareto;
pub mod pool;
pub mod progress;
pub mod publish;
pub mod reflect;
pub mod score;
pub mod strategy;
pub mod to_cluster;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use evaluate::{OutOfBudget, Rollout, Rollouts, normalized};
use pool::{Origin, Pool};
use progress::{Progress, Snapshot};
use reflect::{ReflectError, Reflector};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Optimizer {
    Gepa,
    Iterative,
}

impl Optimizer {
    pub fn as_str(self) -> &'static str {
        match self {
            Optimizer::Gepa => "gepa",
            Optimizer::Iterative => "iterative",
        }
    }

    /// Candidates validated at the end: the seed (the hint in use) and the
    /// best others by train score.
    pub fn finalists(self) -> usize {
        match self {
            Optimizer::Gepa => 3,
            Optimizer::Iterative => 2,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub optimizer: Optimizer,
    /// Every rollout counts: train, minibatch and validation alike.
    pub budget: usize,
    pub minibatch: usize,
    pub seed: u64,
    /// GEPA merges at most this many times.
    pub max_merges: usize,
    /// Consecutive proposals that bring no new hint (nothing learned, a
    /// duplicate, a reflector error) before the search stops.
    pub patience: usize,
    /// Dedupe hints by what the runbook makes of them (two hints with the
    /// same strategy behave the same) rather than by their words.
    pub dedupe_by_strategy: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum OptimizeError {
    #[error("the budget must be at least one rollout")]
    NoBudget,
    #[error("the minibatch must hold at least one scenario")]
    NoMinibatch,
    #[error("the catalog has no {0} scenario to optimize on")]
    NoScenarios(&'static str),
    #[error("the seed hint is empty")]
    EmptySeed,
}

/// What an optimization found: the pool, the chosen candidate, the
/// validation of the finalists and the accounting.
#[derive(Debug)]
pub struct Outcome {
    pub optimizer: Optimizer,
    pub pool: Pool,
    pub train: Vec<String>,
    pub validation: Vec<String>,
    pub best: usize,
    /// Validation rollouts of each finalist, by candidate id.
    pub validated: Vec<(usize, Vec<Rollout>)>,
    pub budget: usize,
    pub rollouts_used: usize,
    pub rollouts_reused: usize,
    /// Children evaluated on a minibatch, and how many were kept.
    pub proposals: usize,
    pub accepted: usize,
    pub merges: usize,
    /// (rollouts used, best train score so far), at the start and at every
    /// accepted candidate.
    pub curve: Vec<(usize, f64)>,
    pub notes: Vec<String>,
}

impl Outcome {
    pub fn validation_of(&self, id: usize) -> Option<&[Rollout]> {
        self.validated
            .iter()
            .find(|(c, _)| *c == id)
            .map(|(_, r)| r.as_slice())
    }

    pub fn validation_score(&self, id: usize) -> Option<f64> {
        self.validation_of(id)
            .map(|r| score::mean(r.iter().map(|r| r.score)))
    }
}

/// The default patience: proposals in a row without a new hint.
pub const PATIENCE: usize = 24;
/// Consecutive reflector failures (an endpoint down) before giving up.
const MAX_REFLECT_ERRORS: usize = 3;

/// One optimization's working state, shared by both optimizers.
pub struct Run<'a> {
    pub settings: Settings,
    pub rollouts: Rollouts<'a>,
    pub reflector: &'a dyn Reflector,
    pub progress: &'a mut dyn Progress,
    pub forbidden: BTreeSet<String>,
    pub train: Vec<String>,
    pub validation: Vec<String>,
    pub pool: Pool,
    /// Rollouts kept for the finalists' validation.
    reserve: usize,
    seen: BTreeSet<String>,
    stalls: usize,
    reflect_errors: usize,
    proposals: usize,
    accepted: usize,
    merges: usize,
    curve: Vec<(usize, f64)>,
    notes: Vec<String>,
    best_validation: Option<f64>,
}

/// A child proposed from a parent's rollouts.
pub struct Child {
    pub hint: String,
    pub notes: Vec<String>,
}

/// What became of a proposal.
pub enum Step {
    /// No new hint (nothing learned, a duplicate, not general): free.
    Nothing,
    /// Evaluated on its minibatch, not kept.
    Rejected,
    Accepted(usize),
    /// The budget cannot pay for it: the optimization ends.
    Spent,
}

impl<'a> Run<'a> {
    pub fn new(
        settings: Settings,
        rollouts: Rollouts<'a>,
        reflector: &'a dyn Reflector,
        progress: &'a mut dyn Progress,
        forbidden: BTreeSet<String>,
        train: Vec<String>,
        validation: Vec<String>,
    ) -> Result<Self, OptimizeError> {
        if settings.budget == 0 {
            return Err(OptimizeError::NoBudget);
        }
        if settings.minibatch == 0 {
            return Err(OptimizeError::NoMinibatch);
        }
        if train.is_empty() {
            return Err(OptimizeError::NoScenarios("train"));
        }
        Ok(Self {
            settings,
            rollouts,
            reflector,
            progress,
            forbidden,
            train,
            validation,
            pool: Pool::default(),
            reserve: 0,
            seen: BTreeSet::new(),
            stalls: 0,
            reflect_errors: 0,
            proposals: 0,
            accepted: 0,
            merges: 0,
            curve: Vec::new(),
            notes: Vec::new(),
            best_validation: None,
        })
    }

    pub fn note(&mut self, text: String) {
        self.progress.note(&text);
        self.notes.push(text);
    }

    fn key(&self, hint: &str) -> String {
        if self.settings.dedupe_by_strategy {
            strategy::Strategy::of_hint(hint).hint()
        } else {
            normalized(hint)
        }
    }

    pub fn show(&mut self) {
        let snapshot = Snapshot {
            used: self.rollouts.used(),
            budget: self.rollouts.budget(),
            best_train: self.pool.best_by_mean().map_or(0.0, |c| c.mean()),
            best_validation: self.best_validation,
            candidates: self.pool.candidates.len(),
        };
        self.progress.update(&snapshot);
    }

    /// Rollouts the training may still use. The finalists' validation is
    /// kept aside: the seed, and as many others as the frontier holds now
    /// plus the child on trial (never more than the optimizer validates).
    pub fn train_left(&self) -> usize {
        let others = pareto::frontier(&self.pool.score_matrix())
            .into_iter()
            .filter(|(id, _)| *id != 0)
            .count();
        let finalists = 1 + (others + 1).min(self.settings.optimizer.finalists() - 1);
        let reserve = (finalists * self.validation.len()).min(self.reserve);
        self.rollouts.remaining().saturating_sub(reserve)
    }

    /// Keeps the validation reserve, scores the seeds on the train set.
    /// Returns false when nothing can be learned within the budget.
    pub async fn start(&mut self, seeds: Vec<(String, Origin)>) -> Result<bool, OptimizeError> {
        let seed = seeds.first().map(|(h, _)| h.trim()).unwrap_or_default();
        if seed.is_empty() {
            return Err(OptimizeError::EmptySeed);
        }
        let budget = self.rollouts.budget();
        let (n_train, n_val) = (self.train.len(), self.validation.len());
        let fresh_seed_cost = self.rollouts.cost(seed, &self.train);
        if budget < fresh_seed_cost {
            self.note(format!(
                "warning: the budget ({budget} rollouts) cannot cover one pass over the train set ({n_train} scenarios): the seed is scored on the first {budget} only and nothing is learned; give at least {} (a train pass plus validation)",
                n_train + n_val * self.settings.optimizer.finalists()
            ));
            let mut fresh = 0;
            let mut kept = Vec::new();
            for scenario in &self.train {
                let cost = self.rollouts.cost(seed, std::slice::from_ref(scenario));
                if fresh + cost > budget {
                    break;
                }
                fresh += cost;
                kept.push(scenario.clone());
            }
            self.train = kept;
        }
        let seed_cost = self.rollouts.cost(seed, &self.train);
        let affordable = (budget.saturating_sub(seed_cost))
            .checked_div(n_val)
            .unwrap_or(0);
        let finalists = self.settings.optimizer.finalists().min(affordable);
        self.reserve = finalists * n_val;
        if n_val > 0 && finalists == 0 {
            self.note(format!(
                "warning: the budget leaves no room to validate on the {n_val} validation scenarios; the result has no validation score and cannot be published"
            ));
        }
        for (hint, origin) in seeds {
            if self.seen.contains(&self.key(&hint)) {
                continue;
            }
            let key = self.key(&hint);
            match self.rollouts.evaluate(&hint, &self.train).await {
                Ok(train) => {
                    self.seen.insert(key);
                    let used = self.rollouts.used();
                    self.pool
                        .add(hint, Vec::new(), origin, Vec::new(), train, used);
                }
                Err(e) => {
                    self.note(format!("a recorded hint was left out of the pool: {e}"));
                }
            }
            self.show();
        }
        let best = self.pool.best_by_mean().map_or(0.0, |c| c.mean());
        self.curve.push((self.rollouts.used(), best));
        Ok(self.train_left() >= 1)
    }

    /// Asks the reflector for a child of `parent` from its rollouts on
    /// `minibatch`; None when there is nothing new (counted as a stall).
    pub async fn propose(&mut self, parent: usize, minibatch: &[String]) -> Option<Child> {
        let candidate = self.pool.get(parent);
        let traces = candidate.on(minibatch);
        let hint = candidate.hint.clone();
        let reflected = self.reflector.reflect(&hint, &traces).await;
        match reflected {
            Ok(Some(reflection)) => {
                self.reflect_errors = 0;
                if let Err(why) = general::check(&reflection.hint, &self.forbidden) {
                    self.note(format!("a proposal was refused: {why}"));
                    self.stalls += 1;
                    return None;
                }
                let key = self.key(&reflection.hint);
                if !self.seen.insert(key) {
                    self.stalls += 1;
                    return None;
                }
                Some(Child {
                    hint: reflection.hint,
                    notes: reflection.notes,
                })
            }
            Ok(None) => {
                self.reflect_errors = 0;
                self.stalls += 1;
                None
            }
            Err(e) => {
                if matches!(e, ReflectError::Unavailable(_)) {
                    self.reflect_errors += 1;
                }
                self.note(format!("reflection on candidate {parent}: {e}"));
                self.stalls += 1;
                None
            }
        }
    }

    /// Whether to go on proposing.
    pub fn going(&mut self) -> bool {
        if self.reflect_errors >= MAX_REFLECT_ERRORS {
            self.note(format!(
                "stopping: the reflector failed {MAX_REFLECT_ERRORS} times in a row"
            ));
            return false;
        }
        if self.stalls >= self.settings.patience.max(1) {
            self.note(format!(
                "stopping: {} proposals in a row brought no new hint",
                self.settings.patience.max(1)
            ));
            return false;
        }
        self.train_left() > 0
    }

    /// Evaluates `child` on `minibatch`; kept when its sum there beats
    /// `bar` (or reaches it, when `or_equal`), then scored on the whole
    /// train set and added to the pool.
    pub async fn trial(
        &mut self,
        child: Child,
        parents: Vec<usize>,
        origin: Origin,
        minibatch: &[String],
        bar: f64,
        or_equal: bool,
    ) -> Step {
        let cost = self.rollouts.cost(&child.hint, minibatch);
        if cost > self.train_left() {
            return Step::Spent;
        }
        let Ok(trial) = self.rollouts.evaluate(&child.hint, minibatch).await else {
            return Step::Spent;
        };
        self.stalls = 0;
        self.proposals += 1;
        let sum: f64 = trial.iter().map(|r| r.score).sum();
        let better = sum > bar + 1e-9 || (or_equal && sum >= bar - 1e-9);
        self.show();
        if !better {
            return Step::Rejected;
        }
        let cost = self.rollouts.cost(&child.hint, &self.train);
        if cost > self.train_left() {
            self.note(format!(
                "a child better on its minibatch ({sum:.2} > {bar:.2}) was not kept: its train evaluation needs {cost} rollouts, {} left for training",
                self.train_left()
            ));
            return Step::Spent;
        }
        let train = match self.rollouts.evaluate(&child.hint, &self.train).await {
            Ok(train) => train,
            Err(OutOfBudget { .. }) => return Step::Spent,
        };
        let used = self.rollouts.used();
        let id = self
            .pool
            .add(child.hint, parents, origin, child.notes, train, used);
        self.accepted += 1;
        if origin == Origin::Merge {
            self.merges += 1;
        }
        let best = self.pool.best_by_mean().map_or(0.0, |c| c.mean());
        self.curve.push((used, best));
        let c = self.pool.get(id);
        let text = format!(
            "candidate {id} ({}, parents {:?}) train {:.3} after {used} rollouts: {}",
            match origin {
                Origin::Merge => "merge",
                _ => "reflection",
            },
            c.parents,
            c.mean(),
            strategy::Strategy::of_hint(&c.hint).summary()
        );
        self.note(text);
        self.show();
        Step::Accepted(id)
    }

    /// Validates the finalists (the seed, then the best others by train
    /// score) and chooses: the best validation score; ties go to the better
    /// train score, then to the earlier candidate (the seed first).
    pub async fn finish(mut self, others: Vec<usize>) -> Outcome {
        let mut finalists = vec![0];
        finalists.extend(others.into_iter().filter(|c| *c != 0));
        finalists.truncate(self.settings.optimizer.finalists());
        self.reserve = 0;
        let mut validated = Vec::new();
        if !self.validation.is_empty() {
            for id in finalists {
                let hint = self.pool.get(id).hint.clone();
                match self.rollouts.evaluate(&hint, &self.validation).await {
                    Ok(rollouts) => {
                        let v = score::mean(rollouts.iter().map(|r| r.score));
                        self.best_validation = Some(self.best_validation.map_or(v, |b| b.max(v)));
                        validated.push((id, rollouts));
                        self.show();
                    }
                    Err(e) => {
                        self.note(format!("candidate {id} not validated: {e}"));
                        break;
                    }
                }
            }
        }
        let mean_of = |rollouts: &[Rollout]| score::mean(rollouts.iter().map(|r| r.score));
        let best = validated
            .iter()
            .map(|(id, r)| (*id, mean_of(r), self.pool.get(*id).mean()))
            .fold(None, |best: Option<(usize, f64, f64)>, c| match best {
                Some(b) if (b.1, b.2) >= (c.1, c.2) => Some(b),
                _ => Some(c),
            })
            .map(|(id, _, _)| id)
            .or_else(|| self.pool.best_by_mean().map(|c| c.id))
            .unwrap_or(0);
        Outcome {
            optimizer: self.settings.optimizer,
            train: self.train,
            validation: self.validation,
            best,
            validated,
            budget: self.rollouts.budget(),
            rollouts_used: self.rollouts.used(),
            rollouts_reused: self.rollouts.reused(),
            proposals: self.proposals,
            accepted: self.accepted,
            merges: self.merges,
            curve: self.curve,
            notes: self.notes,
            pool: self.pool,
        }
    }
}

#[cfg(test)]
mod tests;
