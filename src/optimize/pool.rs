//! The candidates an optimization has accepted, each with its rollouts on
//! every train scenario (in the train order), its parents and why it
//! exists.

use serde::{Deserialize, Serialize};

use super::evaluate::Rollout;
use super::score;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// The hint the optimized policy used when the optimization started.
    Seed,
    /// A hint found in recorded runs (`--from-trajectories`).
    Recorded,
    Reflection,
    Merge,
}

#[derive(Debug, Clone)]
pub struct Candidate {
    pub id: usize,
    pub hint: String,
    pub parents: Vec<usize>,
    pub origin: Origin,
    pub notes: Vec<String>,
    /// One rollout per train scenario, in the train order.
    pub train: Vec<Rollout>,
    /// Rollouts used when it joined the pool.
    pub joined_at: usize,
}

impl Candidate {
    pub fn scores(&self) -> Vec<f64> {
        self.train.iter().map(|r| r.score).collect()
    }

    pub fn mean(&self) -> f64 {
        score::mean(self.scores())
    }

    /// Its rollouts on some train scenarios.
    pub fn on(&self, scenarios: &[String]) -> Vec<Rollout> {
        scenarios
            .iter()
            .filter_map(|s| self.train.iter().find(|r| &r.scenario == s).cloned())
            .collect()
    }

    /// The sum of its scores on some train scenarios.
    pub fn sum_on(&self, scenarios: &[String]) -> f64 {
        self.on(scenarios).iter().map(|r| r.score).sum()
    }
}

#[derive(Debug, Default)]
pub struct Pool {
    pub candidates: Vec<Candidate>,
}

impl Pool {
    pub fn add(
        &mut self,
        hint: String,
        parents: Vec<usize>,
        origin: Origin,
        notes: Vec<String>,
        train: Vec<Rollout>,
        joined_at: usize,
    ) -> usize {
        let id = self.candidates.len();
        self.candidates.push(Candidate {
            id,
            hint,
            parents,
            origin,
            notes,
            train,
            joined_at,
        });
        id
    }

    pub fn get(&self, id: usize) -> &Candidate {
        &self.candidates[id]
    }

    pub fn score_matrix(&self) -> Vec<Vec<f64>> {
        self.candidates.iter().map(Candidate::scores).collect()
    }

    /// The best mean (ties: the earlier candidate).
    pub fn best_by_mean(&self) -> Option<&Candidate> {
        self.candidates
            .iter()
            .fold(None, |best: Option<&Candidate>, c| match best {
                Some(b) if b.mean() >= c.mean() => Some(b),
                _ => Some(c),
            })
    }

    /// Every ancestor of `id` (parents, their parents, ...).
    pub fn ancestors(&self, id: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut stack = self.candidates[id].parents.clone();
        while let Some(p) = stack.pop() {
            if !out.contains(&p) {
                out.push(p);
                stack.extend(self.candidates[p].parents.iter().copied());
            }
        }
        out.sort_unstable();
        out
    }
}
