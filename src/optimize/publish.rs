//! Publishing closes the loop: a result is put in use only when its
//! validation score beats the score of the hint in use, measured in the
//! same run on the same validation scenarios (a tie keeps the hint in use).
//! Then `artifacts/<optimizer>/best_hint.json` is written and the SKILL.md
//! runbook is distilled again from the new hint's own verified episodes,
//! so the skill (first in hint resolution) says what was validated.
//!
//! A library call, so a cluster CronJob can run the same step.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::artifacts::{ArtifactError, BestHint, ScenarioResult, best_hint_path};
use super::distill::{self, DistillError};
use super::evaluate::normalized;
use super::score;
use crate::trajectory::TrajectoryLine;

#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    pub published: bool,
    /// Why, in one sentence.
    pub reason: String,
    /// Before (the hint in use) and after (the new one), per scenario.
    pub table: String,
    pub written: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    #[error("cannot distill the skill: {0}")]
    Distill(#[from] DistillError),
    #[error("cannot write {path}: {error}")]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// Publishes `result` when it is better on validation than the hint in use
/// (`result.seed_*`). `episodes`: the run's trajectories (those of the new
/// hint become the skill's source).
pub fn publish(
    result: &BestHint,
    episodes: &[TrajectoryLine],
    artifacts_dir: &Path,
    skill_file: &Path,
) -> Result<Published, PublishError> {
    let table = table(&result.seed_breakdown, &result.scenario_breakdown);
    let keep = |reason: String| Published {
        published: false,
        reason,
        table: table.clone(),
        written: Vec::new(),
    };
    let (Some(new), Some(current)) = (result.validation_score, result.seed_validation_score) else {
        return Ok(keep(
            "not published: the run has no validation score for both hints (the budget left no room to validate)".into(),
        ));
    };
    if normalized(&result.hint) == normalized(&result.seed_hint) {
        return Ok(keep(format!(
            "not published: the hint in use is still the best (validation {current:.3})"
        )));
    }
    if new <= current + 1e-9 {
        return Ok(keep(format!(
            "not published: validation {new:.3} does not beat the hint in use ({current:.3}); ties keep it"
        )));
    }
    let shortest: BTreeMap<String, usize> = result
        .scenario_breakdown
        .iter()
        .map(|(s, r)| (s.clone(), r.shortest))
        .collect();
    let skill = distill::distill(episodes, &shortest, Some(&result.hint), &result.timestamp)?;
    let path = best_hint_path(artifacts_dir, result.optimizer);
    result.write(&path)?;
    let failed = |error| PublishError::Write {
        path: skill_file.to_path_buf(),
        error,
    };
    if let Some(dir) = skill_file.parent() {
        std::fs::create_dir_all(dir).map_err(failed)?;
    }
    std::fs::write(skill_file, &skill.text).map_err(failed)?;
    Ok(Published {
        published: true,
        reason: format!("published: validation {new:.3} beats the hint in use ({current:.3})"),
        table,
        written: vec![path, skill_file.to_path_buf()],
    })
}

/// Steps and score per scenario, before and after, with the means and fix
/// rates per split.
pub fn table(
    before: &BTreeMap<String, ScenarioResult>,
    after: &BTreeMap<String, ScenarioResult>,
) -> String {
    let cell = |r: Option<&ScenarioResult>| match r {
        Some(r) if r.resolved => format!("{:>3} {:>5.2}", r.steps, r.score),
        Some(r) => format!("{:>3} {:>5}", r.steps, "FAIL"),
        None => format!("{:>9}", "-"),
    };
    let mut out = format!(
        "{:<26} {:<10} {:>9}   {:>9}   {:>8}\n",
        "scenario", "split", "before", "after", "shortest"
    );
    let mut scenarios: Vec<(&String, &ScenarioResult)> = after.iter().collect();
    scenarios.sort_by(|a, b| b.1.split.cmp(&a.1.split).then(a.0.cmp(b.0)));
    for (scenario, a) in &scenarios {
        out.push_str(&format!(
            "{:<26} {:<10} {}   {}   {:>8}\n",
            scenario,
            a.split,
            cell(before.get(*scenario)),
            cell(Some(a)),
            a.shortest
        ));
    }
    for split in ["train", "validation"] {
        let of = |m: &BTreeMap<String, ScenarioResult>| -> Vec<ScenarioResult> {
            m.values().filter(|r| r.split == split).cloned().collect()
        };
        let (b, a) = (of(before), of(after));
        if a.is_empty() {
            continue;
        }
        let summary = |rs: &[ScenarioResult]| {
            let steps = score::mean(rs.iter().map(|r| f64::from(r.steps)));
            let shortest = score::mean(rs.iter().map(|r| r.shortest as f64));
            format!(
                "score {:.3}, fixed {}/{}, steps {:.2} ({:.2}x shortest)",
                score::mean(rs.iter().map(|r| r.score)),
                rs.iter().filter(|r| r.resolved).count(),
                rs.len(),
                steps,
                if shortest > 0.0 {
                    steps / shortest
                } else {
                    0.0
                }
            )
        };
        out.push_str(&format!(
            "{split:<10} before: {}\n{split:<10} after:  {}\n",
            if b.is_empty() {
                "-".to_string()
            } else {
                summary(&b)
            },
            summary(&a)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optimize::Optimizer;
    use crate::optimize::score::tests::{line, step};
    use crate::optimize::strategy::Strategy;

    fn result(new: Option<f64>, current: Option<f64>) -> BestHint {
        let learned = Strategy {
            checks: Strategy::of_hint(crate::agent::hint::MANUAL_HINT).checks[1..].to_vec(),
            targeted: true,
            direct: true,
        };
        let row = |score| ScenarioResult {
            split: "validation".into(),
            score,
            steps: 3,
            shortest: 3,
            resolved: true,
        };
        BestHint {
            hint: learned.hint(),
            score: 0.9,
            validation_score: new,
            optimizer: Optimizer::Gepa,
            brain: "runbook".into(),
            timestamp: "t".into(),
            seed: 0,
            budget: 10,
            rollouts_used: 10,
            rollouts_reused: 0,
            score_formula: crate::optimize::score::FORMULA.into(),
            scenario_breakdown: [("a".to_string(), row(new.unwrap_or(0.0)))].into(),
            seed_breakdown: [("a".to_string(), row(current.unwrap_or(0.0)))].into(),
            candidate: 1,
            seed_hint: crate::agent::hint::MANUAL_HINT.into(),
            seed_validation_score: current,
            history: Vec::new(),
            curve: Vec::new(),
            run_id: "r".into(),
            catalog: "(built-in)".into(),
        }
    }

    fn episodes(hint: &str) -> Vec<TrajectoryLine> {
        let mut l = line(
            "a",
            true,
            vec![
                step(1, "exec", "tail -n 30 service.log", "LOW", "Allowed"),
                step(2, "exec", "rm -f x.lock", "MEDIUM", "Allowed"),
                step(3, "http_get", "GET /health", "LOW", "Allowed"),
            ],
        );
        l.strategy_hint = hint.into();
        vec![l]
    }

    #[test]
    fn only_a_better_validation_score_is_published() {
        for (new, current, published) in [
            (Some(0.5), Some(0.8), false),
            (Some(0.8), Some(0.8), false),
            (None, Some(0.8), false),
            (Some(0.9), None, false),
            (Some(0.9), Some(0.8), true),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let (artifacts, skill) = (dir.path().join("artifacts"), dir.path().join("s/SKILL.md"));
            let r = result(new, current);
            let got = publish(&r, &episodes(&r.hint), &artifacts, &skill).unwrap();
            assert_eq!(
                got.published, published,
                "{new:?} vs {current:?}: {}",
                got.reason
            );
            let best = artifacts.join("gepa/best_hint.json");
            assert_eq!(best.exists(), published);
            assert_eq!(skill.exists(), published);
            if published {
                assert_eq!(BestHint::read(&best).unwrap(), r);
                let text = std::fs::read_to_string(&skill).unwrap();
                assert_eq!(
                    Strategy::of_hint(&text),
                    Strategy::of_hint(&r.hint).complete()
                );
                assert!(
                    got.table.contains("validation before: score"),
                    "{}",
                    got.table
                );
            }
        }
    }

    #[test]
    fn the_seed_itself_is_never_republished() {
        let mut r = result(Some(0.9), Some(0.8));
        r.hint = r.seed_hint.clone();
        let dir = tempfile::tempdir().unwrap();
        let got = publish(&r, &episodes(&r.hint), dir.path(), &dir.path().join("S.md")).unwrap();
        assert!(!got.published && got.reason.contains("still the best"));
    }
}
