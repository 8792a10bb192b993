//! One optimization run, assembled from values (the command line and the
//! demo only gather them): [`reflector_for`] the brain, the seed pool with
//! what was recorded reused ([`seed_pool`]), the search itself, and the
//! result written to `artifacts/<optimizer>/last_run.json`. What a person
//! should read along the way goes to `say`, one line at a time.

use std::path::PathBuf;

use super::artifacts::{self, BestHint, LAST_RUN};
use super::evaluate::{IncidentEpisodes, Rollouts, normalized};
use super::pool::Origin;
use super::progress::Progress;
use super::reflect::deterministic::Deterministic;
use super::reflect::llm::LlmReflector;
use super::reflect::{Reflector, ReflectorKind};
use super::{Optimizer, Outcome, Run, Settings, general, gepa, iterative};
use crate::agent::llm::{ChatClient, LlmConfig};
use crate::crd::{BrainKind, TokenUsage};
use crate::local::Environment;
use crate::policy::ResolvedPolicy;
use crate::scenario::{self, Split};
use crate::trajectory::TrajectoryLine;

/// Recorded hints besides the seed that may join the first pool.
const MAX_RECORDED_SEEDS: usize = 4;

/// Completion tokens a reflection may use: room for a hint of
/// `MAX_HINT_CHARS` (about four characters a token).
const REFLECTION_MAX_TOKENS: u32 = 600;

/// What one run is asked to do.
pub struct Request {
    pub settings: Settings,
    pub brain: BrainKind,
    /// Who reflects; the LLM reflector needs the policy's LLM settings.
    pub reflector: ReflectorKind,
    /// The policy rollouts follow; its hint is the seed.
    pub policy: ResolvedPolicy,
    /// Episodes run at once.
    pub concurrency: usize,
    /// Recorded trajectories that may stand in for rollouts (train
    /// scenarios whose hint, brain and scenario match).
    pub recorded: Vec<TrajectoryLine>,
    /// Lines said right after the run's header (where the recordings
    /// came from).
    pub notes: Vec<String>,
    /// Where the catalog came from, for the result.
    pub catalog_origin: String,
    pub run_id: String,
    /// `last_run.json` goes under `<artifacts_dir>/<optimizer>/`.
    pub artifacts_dir: PathBuf,
}

/// What a run found, written and not yet in use.
pub struct Learned {
    pub result: BestHint,
    /// Every trajectory the run ran or reused: what a skill is distilled
    /// from when the result is published.
    pub episodes: Vec<TrajectoryLine>,
    /// Where the result was written.
    pub last_run: PathBuf,
    pub outcome: Outcome,
    /// Tokens the reflection spent (an LLM's; none for the runbook's).
    pub reflection: TokenUsage,
}

#[derive(Debug, thiserror::Error)]
pub enum LearnError {
    #[error("the LLM reflection needs the LLM brain's configuration: {0}")]
    Reflection(crate::agent::BrainError),
    #[error(transparent)]
    Optimize(#[from] super::OptimizeError),
    #[error(transparent)]
    Write(#[from] artifacts::ArtifactError),
}

pub async fn learn(
    env: Environment,
    request: Request,
    progress: &mut dyn Progress,
    say: &mut dyn FnMut(String),
) -> Result<Learned, LearnError> {
    let catalog = env.catalog.clone();
    let train = catalog.ids_in(Some(Split::Train));
    let validation = catalog.ids_in(Some(Split::Validation));
    let forbidden = general::forbidden(&catalog);
    let reflector = reflector_for(&request, &env, &forbidden)?;
    let settings = request.settings.clone();
    let optimizer = settings.optimizer;
    let seed_hint = request.policy.hint.text.clone();
    say(format!(
        "remediator optimize: {} on the {} brain with {} reflection, budget {} rollouts, minibatch {}, seed {}, {} at once",
        optimizer.as_str(),
        request.brain.label(),
        request.reflector.label(),
        settings.budget,
        settings.minibatch,
        settings.seed,
        request.concurrency
    ));
    say(format!(
        "  train {} scenarios, validation {}; seed hint ({}): {}",
        train.len(),
        validation.len(),
        request.policy.hint.source.as_str(),
        one_line(&seed_hint, 90)
    ));
    for note in &request.notes {
        say(note.clone());
    }
    let episodes = IncidentEpisodes {
        env,
        policy: request.policy.clone(),
        concurrency: request.concurrency,
        label: format!("opt-{}", optimizer.as_str()),
    };
    let shortest = scenario::shortest_honest_by_id(&catalog);
    let mut rollouts = Rollouts::new(&episodes, shortest, settings.budget);
    let seeds = seed_pool(&mut rollouts, &request, &train, &forbidden, say);
    let run = Run::new(
        settings.clone(),
        rollouts,
        reflector.as_ref(),
        progress,
        forbidden,
        train,
        validation,
    )?;
    let outcome = match optimizer {
        Optimizer::Gepa => gepa::optimize(run, seeds).await?,
        Optimizer::Iterative => iterative::optimize(run, seeds).await?,
    };
    let result = BestHint::from_outcome(
        &outcome,
        request.brain.label(),
        settings.seed,
        &request.run_id,
        &request.catalog_origin,
        artifacts::now(),
    );
    let last_run = artifacts::dir(&request.artifacts_dir, optimizer).join(LAST_RUN);
    result.write(&last_run)?;
    Ok(Learned {
        result,
        episodes: episodes_of(&outcome),
        last_run,
        outcome,
        reflection: reflector.usage(),
    })
}

/// Who proposes new hints: the deterministic reflection, or the LLM
/// brain's model reading the traces.
fn reflector_for(
    request: &Request,
    env: &Environment,
    forbidden: &std::collections::BTreeSet<String>,
) -> Result<Box<dyn Reflector>, LearnError> {
    Ok(match request.reflector {
        ReflectorKind::Deterministic => Box::new(Deterministic),
        ReflectorKind::Llm => {
            let spec = request.policy.spec.llm.clone().unwrap_or_default();
            let mut config = LlmConfig::resolve(&spec, &env.llm).map_err(LearnError::Reflection)?;
            // A hint may be up to MAX_HINT_CHARS; a step's budget is far less.
            config.max_tokens = config.max_tokens.max(REFLECTION_MAX_TOKENS);
            let client = ChatClient::new(config).map_err(LearnError::Reflection)?;
            Box::new(LlmReflector::new(
                client,
                request.brain,
                forbidden.clone(),
                request.settings.seed,
            ))
        }
    })
}

/// The first pool: the seed hint, and hints the recordings tried on every
/// train scenario; recorded trajectories stand in for their rollouts.
fn seed_pool(
    rollouts: &mut Rollouts<'_>,
    request: &Request,
    train: &[String],
    forbidden: &std::collections::BTreeSet<String>,
    say: &mut dyn FnMut(String),
) -> Vec<(String, Origin)> {
    let seed_hint = &request.policy.hint.text;
    let mut seeds = vec![(seed_hint.clone(), Origin::Seed)];
    if request.recorded.is_empty() {
        return seeds;
    }
    let settings = request.policy.spec.settings_fingerprint();
    let reused = rollouts.with_recorded(&request.recorded, &settings);
    let extra: Vec<String> = rollouts
        .recorded_hints_covering(train)
        .into_iter()
        .filter(|h| normalized(h) != normalized(seed_hint))
        .filter(|h| general::check(h, forbidden).is_ok())
        .take(MAX_RECORDED_SEEDS)
        .collect();
    say(format!(
        "  recorded: {} rollouts reusable, {} more hints recorded on every train scenario join the pool",
        reused.taken,
        extra.len()
    ));
    if reused.other_settings > 0 {
        say(format!(
            "  recorded: {} lines left out, recorded under other Policy settings (brain, model, steps, limits) or by an older version",
            reused.other_settings
        ));
    }
    seeds.extend(extra.into_iter().map(|h| (h, Origin::Recorded)));
    seeds
}

/// Every trajectory the optimization ran or reused.
fn episodes_of(outcome: &Outcome) -> Vec<TrajectoryLine> {
    outcome
        .pool
        .candidates
        .iter()
        .flat_map(|c| c.train.iter())
        .chain(outcome.validated.iter().flat_map(|(_, r)| r.iter()))
        .map(|r| r.line.clone())
        .collect()
}

/// `text` on one line, cut at `max` characters.
pub fn one_line(text: &str, max: usize) -> String {
    let flat = normalized(text);
    if flat.chars().count() > max {
        format!("{}…", flat.chars().take(max).collect::<String>())
    } else {
        flat
    }
}
