//! Rollouts: a hint on some scenarios, each a real incident (or a recorded
//! one), scored. The rollout budget is exact: an evaluation that would need
//! more fresh rollouts than remain runs none and says so, so the budget is
//! never exceeded. A hint already run on a scenario in this optimization,
//! or recorded (`--from-trajectories`), is reused at no cost.

use std::collections::{BTreeMap, HashMap};

use futures::StreamExt;
use futures::future::BoxFuture;

use super::feedback::{self, Analysis};
use super::score;
use crate::agent::confirm::Refuse;
use crate::agent::hint::{HintSource, ResolvedHint};
use crate::crd::IncidentPhase;
use crate::local::{self, Environment, LocalIncident};
use crate::policy::ResolvedPolicy;
use crate::trajectory::TrajectoryLine;

/// Runs a hint on scenarios; the lines come back in the order asked.
pub trait Episodes: Send + Sync {
    fn run<'a>(
        &'a self,
        hint: &'a str,
        scenarios: &'a [String],
    ) -> BoxFuture<'a, Vec<TrajectoryLine>>;
}

/// Real incidents through `local::run`, several at once, each with its
/// own service, port and sandbox.
pub struct IncidentEpisodes {
    pub env: Environment,
    /// The policy every rollout follows; its hint is replaced by the
    /// candidate's.
    pub policy: ResolvedPolicy,
    pub concurrency: usize,
    pub label: String,
}

impl IncidentEpisodes {
    async fn one(&self, hint: &str, scenario: &str, i: usize) -> TrajectoryLine {
        let incident = LocalIncident {
            name: format!("{}-{}-{i}", self.label, scenario.replace('_', "-")),
            scenario: scenario.to_string(),
            policy: ResolvedPolicy {
                hint: ResolvedHint {
                    text: hint.to_string(),
                    source: HintSource::Inline,
                    version: Some(format!("{} candidate", self.label)),
                },
                ..self.policy.clone()
            },
            classifier_off: false,
            keep: false,
        };
        let outcome = local::run(&incident, &self.env, &Refuse).await;
        if let Some(error) = &outcome.record_error {
            eprintln!("warning: {error}");
        }
        outcome.trajectory.unwrap_or_else(|| TrajectoryLine {
            model: None,
            tokens: None,
            policy_generation: self.policy.generation,
            settings: Some(self.policy.spec.settings_fingerprint()),
            scenario_id: scenario.to_string(),
            tool_actions: Vec::new(),
            step_count: 0,
            latency_s: 0.0,
            service_up: false,
            trace_key: String::new(),
            trace_id: outcome.status.trace_id.clone(),
            strategy_hint: hint.to_string(),
            policy: self.policy.name.clone(),
            brain: String::new(),
            phase: IncidentPhase::Failed,
            reason: outcome.status.reason.clone(),
            message: outcome.status.message.clone(),
            incident: incident.name.clone(),
            symptom: String::new(),
            hint_source: None,
            steps: Vec::new(),
        })
    }
}

impl Episodes for IncidentEpisodes {
    fn run<'a>(
        &'a self,
        hint: &'a str,
        scenarios: &'a [String],
    ) -> BoxFuture<'a, Vec<TrajectoryLine>> {
        let episodes: Vec<BoxFuture<'a, TrajectoryLine>> = scenarios
            .iter()
            .enumerate()
            .map(|(i, scenario)| Box::pin(self.one(hint, scenario, i)) as BoxFuture<'a, _>)
            .collect();
        Box::pin(
            futures::stream::iter(episodes)
                .buffered(self.concurrency.max(1))
                .collect(),
        )
    }
}

/// One scored episode.
#[derive(Debug, Clone)]
pub struct Rollout {
    pub scenario: String,
    pub line: TrajectoryLine,
    pub score: f64,
    pub analysis: Analysis,
    /// Taken from a recording or an earlier evaluation, not run again.
    pub reused: bool,
}

impl Rollout {
    pub fn feedback(&self) -> String {
        feedback::text(&self.analysis)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{needed} fresh rollouts needed, {remaining} left in the budget")]
pub struct OutOfBudget {
    pub needed: usize,
    pub remaining: usize,
}

/// The whitespace-normalized hint: two hints that differ only in spacing
/// are the same hint.
pub fn normalized(hint: &str) -> String {
    hint.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Outcomes that say nothing about the hint (the machinery failed, or a
/// run was cut short), locally or in a cluster.
const INFRASTRUCTURE: [&str; 6] = [
    "ProvisioningFailed",
    "LlmUnavailable",
    "UnknownScenario",
    "SandboxUnavailable",
    "AgentFailed",
    "Interrupted",
];

/// What [`Rollouts::with_recorded`] took.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reused {
    /// Lines that now stand in for a rollout.
    pub taken: usize,
    /// Lines recorded under other Policy settings (or before lines said
    /// which), left out.
    pub other_settings: usize,
}

pub struct Rollouts<'a> {
    episodes: &'a dyn Episodes,
    shortest: BTreeMap<String, usize>,
    budget: usize,
    used: usize,
    reused: usize,
    /// (normalized hint, scenario) -> line, from this run and recordings.
    known: HashMap<(String, String), (TrajectoryLine, bool)>,
}

impl<'a> Rollouts<'a> {
    /// `shortest`: each scenario's shortest honest episode.
    pub fn new(
        episodes: &'a dyn Episodes,
        shortest: BTreeMap<String, usize>,
        budget: usize,
    ) -> Self {
        Self {
            episodes,
            shortest,
            budget,
            used: 0,
            reused: 0,
            known: HashMap::new(),
        }
    }

    /// Recorded lines become known rollouts of their hint (the first line
    /// per hint and scenario; infrastructure failures, scenarios not in
    /// this catalog and lines recorded under other `settings`, a
    /// [`crate::crd::PolicySpec::settings_fingerprint`], are left out).
    pub fn with_recorded(&mut self, lines: &[TrajectoryLine], settings: &str) -> Reused {
        let mut reused = Reused::default();
        for line in lines {
            if line.settings.as_deref() != Some(settings) {
                reused.other_settings += 1;
                continue;
            }
            let usable = self.shortest.contains_key(&line.scenario_id)
                && !line
                    .reason
                    .as_deref()
                    .is_some_and(|r| INFRASTRUCTURE.contains(&r));
            let key = (normalized(&line.strategy_hint), line.scenario_id.clone());
            if usable && !self.known.contains_key(&key) {
                self.known.insert(key, (line.clone(), true));
                reused.taken += 1;
            }
        }
        reused
    }

    /// Hints recorded on every one of `scenarios`, in a stable order.
    pub fn recorded_hints_covering(&self, scenarios: &[String]) -> Vec<String> {
        let mut hints: Vec<String> = self
            .known
            .iter()
            .filter(|(_, (_, recorded))| *recorded)
            .map(|((hint, _), (line, _))| (hint.clone(), line.strategy_hint.clone()))
            .filter(|(hint, _)| {
                scenarios
                    .iter()
                    .all(|s| self.known.contains_key(&(hint.clone(), s.clone())))
            })
            .map(|(_, original)| original)
            .collect();
        hints.sort();
        hints.dedup_by(|a, b| normalized(a) == normalized(b));
        hints
    }

    pub fn budget(&self) -> usize {
        self.budget
    }
    pub fn used(&self) -> usize {
        self.used
    }
    pub fn reused(&self) -> usize {
        self.reused
    }
    pub fn remaining(&self) -> usize {
        self.budget - self.used
    }

    /// Fresh rollouts an evaluation of `hint` on `scenarios` would cost.
    pub fn cost(&self, hint: &str, scenarios: &[String]) -> usize {
        let hint = normalized(hint);
        scenarios
            .iter()
            .filter(|s| !self.known.contains_key(&(hint.clone(), (*s).clone())))
            .count()
    }

    /// `hint` on `scenarios`, in order; all or nothing.
    pub async fn evaluate(
        &mut self,
        hint: &str,
        scenarios: &[String],
    ) -> Result<Vec<Rollout>, OutOfBudget> {
        let key = normalized(hint);
        let fresh: Vec<String> = scenarios
            .iter()
            .filter(|s| !self.known.contains_key(&(key.clone(), (*s).clone())))
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if fresh.len() > self.remaining() {
            return Err(OutOfBudget {
                needed: fresh.len(),
                remaining: self.remaining(),
            });
        }
        if !fresh.is_empty() {
            let lines = self.episodes.run(hint, &fresh).await;
            self.used += fresh.len();
            for (scenario, line) in fresh.iter().zip(lines) {
                self.known
                    .insert((key.clone(), scenario.clone()), (line, false));
            }
        }
        let mut out = Vec::with_capacity(scenarios.len());
        for scenario in scenarios {
            let (line, recorded) = self.known[&(key.clone(), scenario.clone())].clone();
            let reused = !fresh.contains(scenario);
            if reused && recorded {
                self.reused += 1;
            }
            let shortest = self.shortest.get(scenario).copied().unwrap_or(1);
            out.push(Rollout {
                scenario: scenario.clone(),
                score: score::score(&line, shortest),
                analysis: feedback::analyze(&line, shortest),
                line,
                reused,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use crate::optimize::score::tests::{line, step};

    /// A fake world: a hint's steps on a scenario are the position of the
    /// scenario's name among the hint's words (plus the look and the
    /// check); a scenario the hint never names is not resolved.
    pub struct Fake {
        pub runs: AtomicUsize,
    }

    impl Fake {
        pub fn new() -> Self {
            Self {
                runs: AtomicUsize::new(0),
            }
        }
    }

    pub fn fake_line(hint: &str, scenario: &str) -> TrajectoryLine {
        let at = hint.split_whitespace().position(|w| w == scenario);
        let n = at.map_or(6, |i| i as u32 + 3);
        let steps = (1..=n)
            .map(|i| step(i, "exec", "ls", "LOW", "Allowed"))
            .collect();
        let mut l = line(scenario, at.is_some(), steps);
        l.strategy_hint = hint.into();
        l
    }

    impl Episodes for Fake {
        fn run<'a>(
            &'a self,
            hint: &'a str,
            scenarios: &'a [String],
        ) -> BoxFuture<'a, Vec<TrajectoryLine>> {
            self.runs.fetch_add(scenarios.len(), Ordering::SeqCst);
            Box::pin(async move { scenarios.iter().map(|s| fake_line(hint, s)).collect() })
        }
    }

    pub fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    pub fn shortest(list: &[&str]) -> BTreeMap<String, usize> {
        list.iter().map(|s| (s.to_string(), 3)).collect()
    }

    #[tokio::test]
    async fn evaluations_are_all_or_nothing_and_known_rollouts_are_free() {
        let fake = Fake::new();
        let mut rollouts = Rollouts::new(&fake, shortest(&["a", "b", "c"]), 4);
        let first = rollouts
            .evaluate("a b", &names(&["a", "b", "c"]))
            .await
            .unwrap();
        assert_eq!(
            first.iter().map(|r| r.score).collect::<Vec<_>>(),
            vec![1.0, 0.75, 0.0]
        );
        assert_eq!(rollouts.used(), 3);
        // Already known: no cost.
        rollouts.evaluate("a  b", &names(&["b"])).await.unwrap();
        assert_eq!(rollouts.used(), 3);
        let err = rollouts
            .evaluate("c", &names(&["a", "b"]))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            OutOfBudget {
                needed: 2,
                remaining: 1
            }
        );
        assert_eq!((rollouts.used(), fake.runs.load(Ordering::SeqCst)), (3, 3));
        rollouts.evaluate("c", &names(&["c"])).await.unwrap();
        assert_eq!(rollouts.remaining(), 0);
    }

    /// Review: the operator's recordings end with reasons a local run never
    /// has. `SandboxUnavailable` (the scenario Pod died or was evicted
    /// mid-incident) and `AgentFailed` (the agent Job gave up) say nothing
    /// about the hint, yet they are reused as the hint's rollout (the newest
    /// line wins), so the seed scores 0 there with no fresh rollout spent.
    #[tokio::test]
    async fn in_cluster_machinery_failures_are_not_reused_as_the_hints_rollout() {
        let fake = Fake::new();
        let mut rollouts = Rollouts::new(&fake, shortest(&["a"]), 5);
        for reason in ["SandboxUnavailable", "AgentFailed"] {
            let mut infra = fake_line("a", "a");
            infra.service_up = false;
            infra.phase = IncidentPhase::Failed;
            infra.reason = Some(reason.into());
            assert_eq!(
                rollouts.with_recorded(&[infra], "test-settings").taken,
                0,
                "a {reason} recording was taken as the hint's rollout"
            );
        }
    }

    #[tokio::test]
    async fn recorded_rollouts_are_reused_without_spending() {
        let fake = Fake::new();
        let mut rollouts = Rollouts::new(&fake, shortest(&["a", "b"]), 1);
        let mut infra = fake_line("b a", "a");
        infra.reason = Some("LlmUnavailable".into());
        let recorded = vec![
            fake_line("a b", "a"),
            fake_line("a b", "b"),
            infra,
            fake_line("x", "gone"),
        ];
        assert_eq!(
            rollouts.with_recorded(&recorded, "test-settings"),
            Reused {
                taken: 2,
                other_settings: 0
            }
        );
        assert_eq!(
            rollouts.recorded_hints_covering(&names(&["a", "b"])),
            vec!["a b"]
        );
        let got = rollouts.evaluate("a b", &names(&["a", "b"])).await.unwrap();
        assert!(got.iter().all(|r| r.reused));
        assert_eq!((rollouts.used(), rollouts.reused()), (0, 2));
        assert_eq!(fake.runs.load(Ordering::SeqCst), 0);
    }

    /// Review: a line recorded under an older `maxSteps` (or another
    /// model) was reused for the same hint, as if the settings had not
    /// changed.
    #[tokio::test]
    async fn lines_recorded_under_other_settings_are_not_reused() {
        let fake = Fake::new();
        let mut rollouts = Rollouts::new(&fake, shortest(&["a"]), 1);
        let mut other = fake_line("a", "a");
        other.settings = Some("other-settings".into());
        let mut older = fake_line("a", "a");
        older.settings = None;
        let reused = rollouts.with_recorded(&[other, older], "test-settings");
        assert_eq!(
            reused,
            Reused {
                taken: 0,
                other_settings: 2
            }
        );
        rollouts.evaluate("a", &names(&["a"])).await.unwrap();
        assert_eq!((rollouts.used(), fake.runs.load(Ordering::SeqCst)), (1, 1));
    }
}
