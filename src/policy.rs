//! Which Policy an incident follows and which strategy hint it gets: a
//! built-in policy by name (`baseline`, `optimized`) or a Policy manifest,
//! with command-line overrides, and the hint resolved from the Policy, a
//! skill file or the learned artifacts. Every path is given explicitly.

use std::path::{Path, PathBuf};

use crate::agent::episode::EpisodeConfig;
use crate::agent::hint::{self, HintError, HintSource, ResolvedHint};
use crate::crd::{BrainKind, PolicySpec};
use crate::manifest::{self, ManifestError};
use crate::risk::RiskLevel;

/// Where artifacts and the skill file live; absolute, resolved once at the
/// edge of the program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// `runs/`, `gepa/`, `iterative/`.
    pub artifacts_dir: PathBuf,
    /// The distilled SKILL.md (used when it exists).
    pub skill_file: PathBuf,
}

impl Paths {
    /// `artifacts/` and `skills/sre_incident_runbook/SKILL.md` under `base`.
    pub fn under(base: &Path) -> Self {
        Self {
            artifacts_dir: base.join("artifacts"),
            skill_file: base.join(hint::DEFAULT_SKILL_FILE),
        }
    }
}

/// Settings the command line may put over a Policy's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub brain: Option<BrainKind>,
    pub hint: Option<String>,
    pub skill_file: Option<PathBuf>,
    pub max_risk: Option<RiskLevel>,
    pub require_confirmation_for: Option<RiskLevel>,
    pub auto_confirm: bool,
    pub allow_fallback: bool,
    pub accept_weak_containment: bool,
    pub model: Option<String>,
}

/// A Policy ready to run: its name, its spec with overrides applied, and
/// the hint it resolved to.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedPolicy {
    pub name: String,
    pub spec: PolicySpec,
    pub hint: ResolvedHint,
    /// The Policy's `metadata.generation`, when it came from a cluster.
    pub generation: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error(transparent)]
    Hint(#[from] HintError),
    #[error("--policy `{name}` is neither baseline, optimized nor a readable Policy file: {error}")]
    Manifest { name: String, error: ManifestError },
    #[error("{0} has no Policy in it")]
    NoPolicy(String),
}

/// `baseline`, `optimized` or a Policy file, with overrides.
pub fn resolve(
    name: &str,
    overrides: &Overrides,
    paths: &Paths,
) -> Result<ResolvedPolicy, PolicyError> {
    match name {
        "baseline" => finish(
            "baseline",
            PolicySpec::default(),
            ResolvedHint::baseline(),
            overrides,
        ),
        "optimized" => {
            let hint = hint::resolve(
                &paths.skill_file,
                &paths.artifacts_dir,
                ResolvedHint::manual(),
            )?;
            finish("optimized", PolicySpec::default(), hint, overrides)
        }
        path => {
            let manifests =
                manifest::load(Path::new(path)).map_err(|error| PolicyError::Manifest {
                    name: path.to_string(),
                    error,
                })?;
            let policy = manifests
                .policies
                .into_iter()
                .next()
                .ok_or_else(|| PolicyError::NoPolicy(path.to_string()))?;
            let name = policy
                .metadata
                .name
                .clone()
                .unwrap_or_else(|| "policy".into());
            from_spec(&name, &policy.spec, overrides, paths)
        }
    }
}

/// A Policy object's spec, with its hint resolved: its skill, else its
/// hint, else the skill file, the learned hint, then the baseline.
pub fn from_spec(
    name: &str,
    spec: &PolicySpec,
    overrides: &Overrides,
    paths: &Paths,
) -> Result<ResolvedPolicy, PolicyError> {
    let hint = match (&spec.skill, &spec.hint) {
        (Some(skill), _) => ResolvedHint {
            text: skill.trim().to_string(),
            source: HintSource::Skill,
            version: Some(format!("policy {name}")),
        },
        (None, Some(text)) => ResolvedHint {
            version: spec.hint_version.clone(),
            ..ResolvedHint::inline(text)
        },
        (None, None) => hint::resolve(
            &paths.skill_file,
            &paths.artifacts_dir,
            ResolvedHint::baseline(),
        )?,
    };
    finish(name, spec.clone(), hint, overrides)
}

fn finish(
    name: &str,
    mut spec: PolicySpec,
    mut hint: ResolvedHint,
    o: &Overrides,
) -> Result<ResolvedPolicy, PolicyError> {
    if let Some(brain) = o.brain {
        spec.brain = brain;
    }
    if let Some(model) = &o.model {
        let mut llm = spec.llm.clone().unwrap_or_default();
        llm.model = model.clone();
        spec.llm = Some(llm);
    }
    if let Some(risk) = o.max_risk {
        spec.max_risk = risk;
    }
    if let Some(risk) = o.require_confirmation_for {
        spec.require_confirmation_for = Some(risk);
    }
    spec.auto_confirm |= o.auto_confirm;
    spec.allow_fallback |= o.allow_fallback;
    spec.accept_weak_containment |= o.accept_weak_containment;
    if let Some(text) = &o.hint {
        hint = ResolvedHint::inline(text);
    }
    if let Some(path) = &o.skill_file {
        hint = hint::read_skill(path)?;
    }
    Ok(ResolvedPolicy {
        name: name.to_string(),
        spec,
        hint,
        generation: None,
    })
}

/// The episode limits a Policy sets.
pub fn episode_config(spec: &PolicySpec) -> EpisodeConfig {
    EpisodeConfig {
        max_steps: spec.max_steps,
        timeout_ms: u64::from(spec.timeout_seconds) * 1000,
        approval_timeout_ms: spec.approval_timeout_seconds.map(|s| u64::from(s) * 1000),
        allow_fallback: spec.allow_fallback,
        max_execute_attempts: 3,
    }
}
