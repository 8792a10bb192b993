//! `artifacts/<optimizer>/best_hint.json` (the published learned hint) and
//! `artifacts/<optimizer>/last_run.json` (every run's result, published or
//! not): the hint, its train and validation scores, the per-scenario
//! breakdown, the rollouts used, the seed, the score formula and the
//! history of accepted candidates with their parents.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::pool::Origin;
use super::strategy::Strategy;
use super::{Optimizer, Outcome, score};
use crate::agent::hint::LEARNED_HINT_FILE;

pub const BEST_HINT: &str = "best_hint.json";
pub const LAST_RUN: &str = "last_run.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioResult {
    pub split: String,
    pub score: f64,
    pub steps: u32,
    pub shortest: usize,
    pub resolved: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub id: usize,
    pub parents: Vec<usize>,
    pub origin: Origin,
    pub train_score: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_score: Option<f64>,
    /// Rollouts used when it was accepted.
    pub rollouts_used: usize,
    pub strategy: String,
    pub hint: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BestHint {
    pub hint: String,
    /// Mean score on the train split.
    pub score: f64,
    /// Mean score on the validation split (None when the budget left no
    /// room to validate).
    pub validation_score: Option<f64>,
    pub optimizer: Optimizer,
    pub brain: String,
    pub timestamp: String,
    pub seed: u64,
    pub budget: usize,
    pub rollouts_used: usize,
    /// Recorded rollouts taken instead of fresh ones.
    #[serde(default)]
    pub rollouts_reused: usize,
    pub score_formula: String,
    pub scenario_breakdown: BTreeMap<String, ScenarioResult>,
    /// The same for the seed (the hint in use when the run started).
    #[serde(default)]
    pub seed_breakdown: BTreeMap<String, ScenarioResult>,
    /// The candidate chosen, and the seed (the hint in use at the start).
    pub candidate: usize,
    pub seed_hint: String,
    #[serde(default)]
    pub seed_validation_score: Option<f64>,
    pub history: Vec<HistoryEntry>,
    /// (rollouts used, best train score so far).
    #[serde(default)]
    pub curve: Vec<(usize, f64)>,
    /// The recorded run (artifacts/runs/<run_id>.jsonl) of its rollouts.
    #[serde(default)]
    pub run_id: String,
    #[serde(default)]
    pub catalog: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("cannot read {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path} is not a learned-hint artifact: {error}")]
    Malformed {
        path: PathBuf,
        error: serde_json::Error,
    },
    #[error("cannot write {path}: {error}")]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
}

pub fn dir(artifacts: &Path, optimizer: Optimizer) -> PathBuf {
    artifacts.join(optimizer.as_str())
}

/// The learned hint's file for `optimizer` (`gepa/best_hint.json` is the
/// path hint resolution has always read).
pub fn best_hint_path(artifacts: &Path, optimizer: Optimizer) -> PathBuf {
    match optimizer {
        Optimizer::Gepa => artifacts.join(LEARNED_HINT_FILE),
        Optimizer::Iterative => dir(artifacts, optimizer).join(BEST_HINT),
    }
}

impl BestHint {
    pub fn from_outcome(
        outcome: &Outcome,
        brain: &str,
        seed: u64,
        run_id: &str,
        catalog: &str,
        timestamp: String,
    ) -> Self {
        let best = outcome.pool.get(outcome.best);
        let breakdown = |id: usize| {
            let mut out = BTreeMap::new();
            let train = outcome.pool.get(id).train.as_slice();
            let validation = outcome.validation_of(id).unwrap_or_default();
            for (split, rollouts) in [("train", train), ("validation", validation)] {
                for r in rollouts {
                    out.insert(
                        r.scenario.clone(),
                        ScenarioResult {
                            split: split.into(),
                            score: r.score,
                            steps: r.line.step_count,
                            shortest: r.analysis.shortest,
                            resolved: r.line.service_up,
                        },
                    );
                }
            }
            out
        };
        let ids: Vec<usize> = match outcome.optimizer {
            Optimizer::Gepa => (0..outcome.pool.candidates.len()).collect(),
            // The lineage of the candidate it ended with.
            Optimizer::Iterative => {
                let mut lineage = outcome.pool.ancestors(outcome.best);
                lineage.push(outcome.best);
                lineage
            }
        };
        let history = ids
            .into_iter()
            .map(|id| {
                let c = outcome.pool.get(id);
                HistoryEntry {
                    id,
                    parents: c.parents.clone(),
                    origin: c.origin,
                    train_score: c.mean(),
                    validation_score: outcome.validation_score(id),
                    rollouts_used: c.joined_at,
                    strategy: Strategy::of_hint(&c.hint).summary(),
                    hint: c.hint.clone(),
                    notes: c.notes.clone(),
                }
            })
            .collect();
        Self {
            hint: best.hint.clone(),
            score: best.mean(),
            validation_score: outcome.validation_score(outcome.best),
            optimizer: outcome.optimizer,
            brain: brain.to_string(),
            timestamp,
            seed,
            budget: outcome.budget,
            rollouts_used: outcome.rollouts_used,
            rollouts_reused: outcome.rollouts_reused,
            score_formula: score::FORMULA.to_string(),
            scenario_breakdown: breakdown(outcome.best),
            seed_breakdown: breakdown(0),
            candidate: outcome.best,
            seed_hint: outcome.pool.get(0).hint.clone(),
            seed_validation_score: outcome.validation_score(0),
            history,
            curve: outcome.curve.clone(),
            run_id: run_id.to_string(),
            catalog: catalog.to_string(),
        }
    }

    pub fn read(path: &Path) -> Result<Self, ArtifactError> {
        let text = target_service::input::read_bounded(path, 64 << 20).map_err(|error| {
            ArtifactError::Read {
                path: path.to_path_buf(),
                error,
            }
        })?;
        serde_json::from_str(&text).map_err(|error| ArtifactError::Malformed {
            path: path.to_path_buf(),
            error,
        })
    }

    /// Writes it whole, through a temporary file renamed into place.
    pub fn write(&self, path: &Path) -> Result<(), ArtifactError> {
        let failed = |error| ArtifactError::Write {
            path: path.to_path_buf(),
            error,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(failed)?;
        }
        let text =
            serde_json::to_string_pretty(self).map_err(|e| failed(std::io::Error::other(e)))?;
        let temporary = path.with_extension("json.tmp");
        std::fs::write(&temporary, text + "\n").map_err(failed)?;
        std::fs::rename(&temporary, path).map_err(failed)
    }
}

/// Seconds since the epoch as an RFC 3339 UTC time.
pub fn now() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_malformed_artifact_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = BestHint::read(&dir.path().join("none.json")).unwrap_err();
        assert!(missing.to_string().contains("cannot read"), "{missing}");
        let path = dir.path().join("bad.json");
        std::fs::write(&path, r#"{"hint":"x"}"#).unwrap();
        let bad = BestHint::read(&path).unwrap_err();
        assert!(
            bad.to_string().contains("not a learned-hint artifact"),
            "{bad}"
        );
    }
}
