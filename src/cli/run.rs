//! `remediator run`: one incident locally, printed as the Incident the
//! operator would write.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use kube::api::ObjectMeta;

use crate::agent::confirm;
use crate::agent::hint::{self, ResolvedHint};
use crate::crd::{
    BrainKind, Incident, IncidentPhase, IncidentSpec, IncidentStatus, PolicyRef, PolicySpec,
};
use crate::local::{self, LocalIncident, Recorder};
use crate::manifest;
use crate::risk::RiskLevel;
use crate::scenario::{self, Launch};
use crate::trajectory;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// An Incident manifest (optionally with its Policy), as `kubectl apply` takes.
    #[arg(short = 'f', long = "filename", conflicts_with = "scenario")]
    pub file: Option<PathBuf>,
    /// Scenario id (see `remediator scenario list`).
    #[arg(long, required_unless_present = "file")]
    pub scenario: Option<String>,
    /// baseline, optimized, or a Policy manifest file.
    #[arg(long, default_value = "optimized")]
    pub policy: String,
    #[command(flatten)]
    pub overrides: PolicyOverrides,
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    #[command(flatten)]
    pub recording: Recording,
}

#[derive(Debug, Args, Default, Clone)]
pub struct PolicyOverrides {
    /// Brain to use instead of the policy's.
    #[arg(long, value_enum)]
    pub brain: Option<BrainArg>,
    /// Strategy hint (wins over the policy's).
    #[arg(long)]
    pub hint: Option<String>,
    /// A SKILL.md runbook to follow (wins over any hint).
    #[arg(long)]
    pub skill_file: Option<PathBuf>,
    #[arg(long, value_enum)]
    pub max_security_risk: Option<RiskLevel>,
    #[arg(long, value_enum)]
    pub require_confirmation_for_risk: Option<RiskLevel>,
    /// Confirm actions that need confirmation without asking.
    #[arg(long)]
    pub auto_confirm: bool,
    /// If the LLM brain fails, let the runbook brain finish (recorded).
    #[arg(long)]
    pub allow_fallback: bool,
    /// LLM model (for --brain llm).
    #[arg(long)]
    pub model: Option<String>,
}

#[derive(Debug, Args, Clone)]
pub struct Recording {
    /// Where runs/, gepa/ and other artifacts live.
    #[arg(long, default_value = "artifacts", env = "REMEDIATOR_ARTIFACTS")]
    pub artifacts_dir: PathBuf,
    /// Run id for artifacts/runs/<run_id>.jsonl (default: time-based).
    #[arg(long)]
    pub run_id: Option<String>,
}

impl Recording {
    pub fn recorder(&self) -> Recorder {
        Recorder {
            artifacts_dir: self.artifacts_dir.clone(),
            run_id: self.run_id.clone().unwrap_or_else(trajectory::new_run_id),
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BrainArg {
    Runbook,
    Llm,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
    Yaml,
}

pub async fn run(catalog_path: Option<PathBuf>, args: RunArgs) -> anyhow::Result<ExitCode> {
    let catalog = scenario::load_catalog(catalog_path.as_deref())?;
    let mut launch = Launch::from_current_exe().context("locating the remediator binary")?;
    launch.catalog_path = catalog_path;
    let incidents = match &args.file {
        Some(file) => from_manifest(file, &args)?,
        None => {
            let scenario = args.scenario.clone().unwrap_or_default();
            let (name, spec, hint) =
                resolve_policy(&args.policy, &args.overrides, &args.recording.artifacts_dir)?;
            vec![(name_for(&scenario), scenario, name, spec, hint)]
        }
    };
    let recorder = args.recording.recorder();
    let confirmer = confirm::for_this_process();
    let mut all_resolved = true;
    for (name, scenario, policy_name, policy, hint) in incidents {
        let incident = LocalIncident {
            name: name.clone(),
            scenario: scenario.clone(),
            policy_name: policy_name.clone(),
            policy: policy.clone(),
            hint,
        };
        let outcome = local::run(
            &incident,
            &catalog,
            &launch,
            confirmer.as_ref(),
            Some(&recorder),
        )
        .await;
        if let Some(error) = &outcome.record_error {
            eprintln!("warning: {error}");
        }
        all_resolved &= outcome.status.phase == IncidentPhase::Resolved;
        let object = incident_object(&name, &scenario, &policy_name, outcome.status);
        print!("{}", render(&object, args.output)?);
    }
    eprintln!(
        "trajectory: {}",
        trajectory::run_file(&recorder.artifacts_dir, &recorder.run_id).display()
    );
    Ok(if all_resolved {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

type Planned = (String, String, String, PolicySpec, ResolvedHint);

fn from_manifest(file: &Path, args: &RunArgs) -> anyhow::Result<Vec<Planned>> {
    let manifests = manifest::load(file)?;
    if manifests.incidents.is_empty() {
        bail!("{} has no Incident to run", file.display());
    }
    let mut planned = Vec::new();
    for incident in manifests.incidents {
        let name = incident
            .metadata
            .name
            .clone()
            .unwrap_or_else(|| name_for(&incident.spec.scenario));
        let wanted = &incident.spec.policy_ref.name;
        let (policy_name, spec, hint) = match manifests
            .policies
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(wanted))
        {
            Some(policy) => policy_from_spec(
                wanted,
                &policy.spec,
                &args.overrides,
                &args.recording.artifacts_dir,
            )?,
            None if wanted == "baseline" || wanted == "optimized" => {
                resolve_policy(wanted, &args.overrides, &args.recording.artifacts_dir)?
            }
            None => bail!(
                "Incident {name} refers to Policy `{wanted}`, which is not in {}; add it to the file or name baseline/optimized",
                file.display()
            ),
        };
        planned.push((name, incident.spec.scenario, policy_name, spec, hint));
    }
    Ok(planned)
}

/// `baseline`, `optimized` or a Policy file, with command-line overrides.
pub fn resolve_policy(
    policy: &str,
    overrides: &PolicyOverrides,
    artifacts_dir: &Path,
) -> anyhow::Result<(String, PolicySpec, ResolvedHint)> {
    match policy {
        "baseline" => finish(
            "baseline",
            PolicySpec::default(),
            ResolvedHint::baseline(),
            overrides,
        ),
        "optimized" => {
            let hint = hint::resolve(
                Path::new(hint::DEFAULT_SKILL_FILE),
                artifacts_dir,
                ResolvedHint::manual(),
            )?;
            finish("optimized", PolicySpec::default(), hint, overrides)
        }
        path => {
            let manifests = manifest::load(Path::new(path)).with_context(|| {
                "--policy is neither baseline, optimized nor a readable Policy file".to_string()
            })?;
            let Some(policy) = manifests.policies.into_iter().next() else {
                bail!("{path} has no Policy in it");
            };
            let name = policy
                .metadata
                .name
                .clone()
                .unwrap_or_else(|| "policy".into());
            policy_from_spec(&name, &policy.spec, overrides, artifacts_dir)
        }
    }
}

fn policy_from_spec(
    name: &str,
    spec: &PolicySpec,
    overrides: &PolicyOverrides,
    artifacts_dir: &Path,
) -> anyhow::Result<(String, PolicySpec, ResolvedHint)> {
    let hint = match (&spec.skill, &spec.hint) {
        (Some(skill), _) => ResolvedHint {
            text: skill.trim().to_string(),
            source: hint::HintSource::Skill,
            version: Some(format!("policy {name}")),
        },
        (None, Some(text)) => ResolvedHint::inline(text),
        (None, None) => hint::resolve(
            Path::new(hint::DEFAULT_SKILL_FILE),
            artifacts_dir,
            ResolvedHint::baseline(),
        )?,
    };
    finish(name, spec.clone(), hint, overrides)
}

fn finish(
    name: &str,
    mut spec: PolicySpec,
    mut hint: ResolvedHint,
    o: &PolicyOverrides,
) -> anyhow::Result<(String, PolicySpec, ResolvedHint)> {
    if let Some(brain) = o.brain {
        spec.brain = match brain {
            BrainArg::Runbook => BrainKind::Runbook,
            BrainArg::Llm => BrainKind::Llm,
        };
    }
    if let Some(model) = &o.model {
        let mut llm = spec.llm.clone().unwrap_or_default();
        llm.model = model.clone();
        spec.llm = Some(llm);
    }
    if let Some(risk) = o.max_security_risk {
        spec.max_risk = risk;
    }
    if let Some(risk) = o.require_confirmation_for_risk {
        spec.require_confirmation_for = Some(risk);
    }
    spec.auto_confirm |= o.auto_confirm;
    spec.allow_fallback |= o.allow_fallback;
    if let Some(text) = &o.hint {
        hint = ResolvedHint::inline(text);
    }
    if let Some(path) = &o.skill_file {
        hint = hint::read_skill(path)?;
    }
    Ok((name.to_string(), spec, hint))
}

fn name_for(scenario: &str) -> String {
    scenario.replace('_', "-")
}

pub fn incident_object(
    name: &str,
    scenario: &str,
    policy: &str,
    status: IncidentStatus,
) -> Incident {
    Incident {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..ObjectMeta::default()
        },
        spec: IncidentSpec {
            scenario: scenario.to_string(),
            policy_ref: PolicyRef {
                name: policy.to_string(),
            },
        },
        status: Some(status),
    }
}

pub fn render(incident: &Incident, format: OutputFormat) -> anyhow::Result<String> {
    Ok(match format {
        OutputFormat::Json => serde_json::to_string_pretty(incident)? + "\n",
        OutputFormat::Yaml => serde_yaml::to_string(incident)? + "---\n",
        OutputFormat::Table => table(incident),
    })
}

fn table(incident: &Incident) -> String {
    let status = incident.status.clone().unwrap_or_default();
    let mut out = format!(
        "incident {} (scenario {}, policy {})\n",
        incident.metadata.name.as_deref().unwrap_or("?"),
        incident.spec.scenario,
        incident.spec.policy_ref.name
    );
    out.push_str(&format!(
        "  phase:    {:?}{}\n",
        status.phase,
        status
            .reason
            .as_ref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    ));
    if let Some(message) = &status.message {
        out.push_str(&format!("  message:  {message}\n"));
    }
    let risk = status
        .max_risk_seen
        .map(|r| format!("{r:?}").to_uppercase())
        .unwrap_or_else(|| "-".into());
    out.push_str(&format!(
        "  steps:    {}   max risk seen: {risk}",
        status.steps
    ));
    if let Some(t) = status.time_to_resolve_seconds {
        out.push_str(&format!("   time to resolve: {t:.2}s"));
    }
    out.push('\n');
    if let Some(v) = &status.verified {
        out.push_str(&format!(
            "  verified: healthy={} http={}\n",
            v.healthy,
            v.http_status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "no answer".into())
        ));
    }
    if let Some(agent) = &status.agent {
        out.push_str(&format!(
            "  agent:    brain={} hint={}{}{}{}\n",
            agent.brain,
            agent.hint_source.as_deref().unwrap_or("-"),
            agent
                .model
                .as_ref()
                .map(|m| format!(" model={m}"))
                .unwrap_or_default(),
            agent
                .tokens
                .map(|t| format!(" tokens={}+{}", t.prompt, t.completion))
                .unwrap_or_default(),
            if agent.fallback_used {
                format!(
                    " fallback: {}",
                    agent.fallback_reason.as_deref().unwrap_or("yes")
                )
            } else {
                String::new()
            }
        ));
    }
    if !status.actions.is_empty() {
        out.push_str(&format!(
            "  {:>4}  {:<15} {:<7} {:<9} {:>4} {:>6}  {}\n",
            "STEP", "KIND", "RISK", "DECISION", "EXIT", "MS", "COMMAND"
        ));
        for a in &status.actions {
            out.push_str(&format!(
                "  {:>4}  {:<15} {:<7} {:<9} {:>4} {:>6}  {}\n",
                a.step,
                a.kind,
                a.risk.to_string(),
                format!("{:?}", a.decision),
                a.exit_code
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "-".into()),
                a.duration_ms,
                a.command.replace('\n', " ")
            ));
        }
    }
    out
}

/// Policies by name, for callers that build their own (demo, benchmarks).
pub fn builtin_policy(
    name: &str,
    artifacts_dir: &Path,
) -> anyhow::Result<(String, PolicySpec, ResolvedHint)> {
    resolve_policy(name, &PolicyOverrides::default(), artifacts_dir)
}
