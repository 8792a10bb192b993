//! `skill distill`: a deterministic runbook (SKILL.md) from the best
//! verified trajectories. For each incident the best verified episode is
//! kept; the strategy that produced most of them gives the order of the
//! checks (the order that found faults fastest) and its rules; the fixes
//! those episodes applied are described by kind (never by a file or value
//! of one scenario), each followed by a re-verification. The front matter
//! names the source runs and the score; both brains follow the body (the
//! runbook reads it like a hint, the LLM brain reads it as its strategy).

use std::collections::BTreeMap;

use super::evaluate::normalized;
use super::feedback::{self, Analysis};
use super::score;
use super::strategy::{DIRECT_RULE, Strategy, TARGETED_RULE, clause, name};
use crate::agent::runbook::Check;
use crate::trajectory::TrajectoryLine;

pub const SKILL_NAME: &str = "sre_incident_runbook";

#[derive(Debug, Clone, PartialEq)]
pub struct Skill {
    pub text: String,
    pub strategy: Strategy,
    /// The hint whose episodes it was distilled from.
    pub hint: String,
    pub source_runs: Vec<String>,
    pub score: f64,
    pub incidents: usize,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DistillError {
    #[error(
        "no verified trajectory of a scenario in this catalog among {0} recorded lines: run `remediator demo` or `remediator optimize` first"
    )]
    NoVerified(usize),
}

struct Best<'a> {
    line: &'a TrajectoryLine,
    analysis: Analysis,
}

/// The run id of a trajectory (`<run_id>:<incident>`).
fn run_of(line: &TrajectoryLine) -> String {
    line.trace_key
        .split(':')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The fix a check applies, in words for a person and for the runbook.
fn fix_words(check: Check) -> &'static str {
    match check {
        Check::Locks => "remove only the lock or pid file the error blames as stale",
        Check::Ready => "create only the marker file the error says is missing",
        Check::Env => {
            "add only the variable the error names, with its value from the environment example file, then restart"
        }
        Check::Config => {
            "repair only the config line or setting the error names (documented default from the example), then restart"
        }
        Check::Permissions => {
            "give the owner write access back to the one directory the error names"
        }
        Check::Health | Check::Log => "nothing to change",
    }
}

/// Distills a skill from `lines` (only those of `only_hint`, if given).
/// `shortest` is each scenario's shortest honest episode; lines of other
/// scenarios are left out.
pub fn distill(
    lines: &[TrajectoryLine],
    shortest: &BTreeMap<String, usize>,
    only_hint: Option<&str>,
    version: &str,
) -> Result<Skill, DistillError> {
    let wanted = only_hint.map(normalized);
    let mut best: BTreeMap<&str, Best> = BTreeMap::new();
    for line in lines {
        let Some(&short) = shortest.get(&line.scenario_id) else {
            continue;
        };
        if !line.service_up
            || wanted
                .as_ref()
                .is_some_and(|w| *w != normalized(&line.strategy_hint))
        {
            continue;
        }
        let analysis = feedback::analyze(line, short);
        let better = best.get(line.scenario_id.as_str()).is_none_or(|b| {
            (analysis.score, std::cmp::Reverse(line.step_count))
                > (b.analysis.score, std::cmp::Reverse(b.line.step_count))
        });
        if better {
            best.insert(&line.scenario_id, Best { line, analysis });
        }
    }
    if best.is_empty() {
        return Err(DistillError::NoVerified(lines.len()));
    }
    // The strategy behind most of the best episodes.
    let mut by_hint: BTreeMap<String, (usize, f64, &str)> = BTreeMap::new();
    for b in best.values() {
        let entry = by_hint.entry(normalized(&b.line.strategy_hint)).or_insert((
            0,
            0.0,
            b.line.strategy_hint.as_str(),
        ));
        entry.0 += 1;
        entry.1 += b.analysis.score;
    }
    let (_, (_, _, hint)) = by_hint
        .iter()
        .max_by(|(ka, a), (kb, b)| {
            (a.0, a.1)
                .partial_cmp(&(b.0, b.1))
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(kb.cmp(ka))
        })
        .expect("best is not empty");
    let hint = hint.to_string();
    let strategy = Strategy::of_hint(&hint).complete();
    let mut source_runs: Vec<String> = best.values().map(|b| run_of(b.line)).collect();
    source_runs.sort();
    source_runs.dedup();
    let mean = score::mean(best.values().map(|b| b.analysis.score));
    // Fixes seen, by the check that found them.
    let mut fixes: Vec<(Check, usize, u32)> = Vec::new();
    for b in best.values() {
        let (Some(check), Some((at, _))) = (b.analysis.finder, &b.analysis.first_fix) else {
            continue;
        };
        let length = b.line.step_count.saturating_sub(*at) + 1;
        match fixes.iter_mut().find(|(c, _, _)| *c == check) {
            Some((_, n, shortest)) => {
                *n += 1;
                *shortest = (*shortest).min(length);
            }
            None => fixes.push((check, 1, length)),
        }
    }
    fixes.sort_by_key(|(c, _, _)| strategy.checks.iter().position(|x| x == c));
    let mut text = format!(
        "---\nname: {SKILL_NAME}\ndescription: Resolve a broken service from its own words ({}).\nversion: {version}\nsource_runs: [{}]\nscore: {mean:.3}\nincidents: {}\n---\n# SRE incident runbook\n\nDistilled from the best verified episode of each of {} incidents (mean score {mean:.3}).\n\n## Steps\n\n",
        strategy.summary(),
        source_runs.join(", "),
        best.len(),
        best.len(),
    );
    for (i, check) in strategy.checks.iter().enumerate() {
        text.push_str(&format!("{}) {}.\n", i + 1, clause(*check)));
    }
    if strategy.targeted {
        text.push_str(&format!("\n{TARGETED_RULE}\n"));
    }
    if strategy.direct {
        text.push_str(&format!("{DIRECT_RULE}\n"));
    }
    text.push_str("After each fix, check that the service answers 200 again and stop as soon as it does.\n\n## Minimal fixes that worked\n\n");
    for (check, n, length) in &fixes {
        text.push_str(&format!(
            "- {}: {} ({n} incidents, done and re-verified in {length} steps at best)\n",
            name(*check),
            fix_words(*check)
        ));
    }
    Ok(Skill {
        text,
        strategy,
        hint,
        source_runs,
        score: mean,
        incidents: best.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optimize::score::tests::{line, step};

    fn verified(
        scenario: &str,
        hint: &str,
        run: &str,
        steps: Vec<crate::trajectory::StepTrace>,
    ) -> TrajectoryLine {
        let mut l = line(scenario, true, steps);
        l.strategy_hint = hint.into();
        l.trace_key = format!("{run}:{scenario}");
        l
    }

    #[test]
    fn the_skill_follows_the_strategy_of_the_best_episodes_and_parses_back() {
        let learned = Strategy {
            checks: vec![
                Check::Log,
                Check::Config,
                Check::Locks,
                Check::Env,
                Check::Ready,
                Check::Permissions,
            ],
            targeted: true,
            direct: true,
        }
        .hint();
        let manual = crate::agent::hint::MANUAL_HINT;
        let fix = |looks: u32| {
            let mut steps: Vec<_> = (1..=looks)
                .map(|i| step(i, "exec", "tail -n 30 service.log", "LOW", "Allowed"))
                .collect();
            steps.push(step(
                looks + 1,
                "exec",
                "rm -f run/a.lock",
                "MEDIUM",
                "Allowed",
            ));
            steps.push(step(looks + 2, "http_get", "GET /health", "LOW", "Allowed"));
            steps
        };
        let lines = vec![
            verified("a", manual, "run-1", fix(3)),
            verified("a", &learned, "run-2", fix(1)),
            verified("b", &learned, "run-2", fix(1)),
            line("c", false, Vec::new()),
        ];
        let shortest: BTreeMap<String, usize> = [("a", 3), ("b", 3), ("c", 3)]
            .map(|(s, n)| (s.to_string(), n))
            .into();
        let skill = distill(&lines, &shortest, None, "t1").unwrap();
        assert_eq!(skill.hint, learned);
        assert_eq!(skill.incidents, 2);
        assert_eq!(skill.source_runs, vec!["run-2"]);
        assert!(
            skill.text.starts_with("---\nname: sre_incident_runbook\n"),
            "{}",
            skill.text
        );
        assert!(skill.text.contains("score: 1.000"));
        assert!(
            skill.text.contains("- locks: remove only the lock"),
            "{}",
            skill.text
        );
        // The runbook reads the skill as the same strategy.
        assert_eq!(
            Strategy::of_hint(&skill.text),
            skill.strategy,
            "{}",
            skill.text
        );
        let catalog = crate::scenario::load_catalog(None).unwrap();
        crate::optimize::general::check(
            &skill.text,
            &crate::optimize::general::forbidden(&catalog),
        )
        .unwrap();

        let only_manual = distill(&lines, &shortest, Some(manual), "t1").unwrap();
        assert_eq!(only_manual.source_runs, vec!["run-1"]);
        assert_eq!(
            Strategy::of_hint(&only_manual.text),
            Strategy::of_hint(manual)
        );
    }

    #[test]
    fn no_verified_episode_is_a_clear_error() {
        let lines = vec![line("a", false, Vec::new())];
        let shortest: BTreeMap<String, usize> = [("a".to_string(), 3)].into();
        let err = distill(&lines, &shortest, None, "t").unwrap_err();
        assert_eq!(err, DistillError::NoVerified(1));
        assert!(distill(&[], &shortest, None, "t").is_err());
    }
}
