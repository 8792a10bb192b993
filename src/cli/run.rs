//! `remediator run`: one incident (or every Incident in a manifest)
//! locally, printed as the Incident the operator would write.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgGroup, Args, ValueEnum};
use kube::api::ObjectMeta;

use super::common::{self, Recording};
use crate::agent::confirm;
use crate::crd::{BrainKind, Incident, IncidentPhase, IncidentSpec, IncidentStatus, PolicyRef};
use crate::local::{self, LocalIncident, plan};
use crate::policy::Overrides;
use crate::risk::RiskLevel;
use crate::{manifest, trajectory};

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("what").required(true).args(["file", "scenario"])))]
pub struct RunArgs {
    /// An Incident manifest (optionally with its Policy), as `kubectl apply -f` takes.
    #[arg(short = 'f', long = "filename")]
    pub file: Option<PathBuf>,
    /// Scenario id (see `remediator scenario list`).
    #[arg(long)]
    pub scenario: Option<String>,
    /// baseline, optimized, or a Policy manifest file.
    #[arg(long, default_value = "optimized")]
    pub policy: String,
    #[command(flatten)]
    pub overrides: OverrideArgs,
    /// Keep the incident's root and journal afterwards (for a person, and
    /// for `remediator undo --incident NAME`).
    #[arg(long)]
    pub keep: bool,
    /// Containment tests only: switch the risk classifier off (every action
    /// counts as LOW), so only the kernel sandbox stands in the way.
    #[cfg(feature = "classifier-off")]
    #[arg(long, hide = true)]
    pub classifier_off: bool,
    /// Output format of the printed Incident.
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    #[command(flatten)]
    pub recording: Recording,
}

/// How the agent thinks, where a command lets it differ from the Policy:
/// shared by `run`, `fanout` and `scorecard`.
#[derive(Debug, Args, Default, Clone)]
pub struct PolicyArgs {
    /// Brain to use instead of the policy's.
    #[arg(long, value_enum)]
    pub brain: Option<BrainKind>,
    /// If the LLM brain fails, let the runbook brain finish (recorded).
    #[arg(long)]
    pub allow_fallback: bool,
    /// LLM model (for --brain llm).
    #[arg(long)]
    pub model: Option<String>,
}

impl PolicyArgs {
    pub fn to_overrides(&self) -> Overrides {
        Overrides {
            brain: self.brain,
            allow_fallback: self.allow_fallback,
            model: self.model.clone(),
            ..Overrides::default()
        }
    }
}

#[derive(Debug, Args, Default, Clone)]
pub struct OverrideArgs {
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Strategy hint (wins over the policy's).
    #[arg(long)]
    pub hint: Option<String>,
    /// A SKILL.md runbook to follow (wins over any hint).
    #[arg(long)]
    pub skill_file: Option<PathBuf>,
    /// Highest risk an action may have; above it actions are denied.
    #[arg(long, value_enum)]
    pub max_security_risk: Option<RiskLevel>,
    /// Actions at or above this risk need a person's confirmation (a prompt
    /// on a terminal; refused without one unless --auto-confirm).
    #[arg(long, value_enum)]
    pub require_confirmation_for_risk: Option<RiskLevel>,
    /// Confirm actions that need confirmation without asking.
    #[arg(long)]
    pub auto_confirm: bool,
    /// Run actions above LOW even where the kernel sandbox lacks a layer.
    #[arg(long)]
    pub accept_weak_containment: bool,
}

impl OverrideArgs {
    pub fn to_overrides(&self) -> Overrides {
        Overrides {
            hint: self.hint.clone(),
            skill_file: self.skill_file.clone(),
            max_risk: self.max_security_risk,
            require_confirmation_for: self.require_confirmation_for_risk,
            auto_confirm: self.auto_confirm,
            accept_weak_containment: self.accept_weak_containment,
            ..self.policy.to_overrides()
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
    Yaml,
}

pub async fn run(catalog_path: Option<PathBuf>, args: RunArgs) -> anyhow::Result<ExitCode> {
    let paths = args.recording.paths()?;
    let overrides = args.overrides.to_overrides();
    let incidents = match &args.file {
        Some(file) => {
            let manifests = manifest::load(file)?;
            plan::from_manifests(manifests, &file.display().to_string(), &overrides, &paths)?
        }
        None => {
            let scenario = args.scenario.clone().unwrap_or_default();
            vec![plan::one(&scenario, &args.policy, &overrides, &paths)?]
        }
    };
    let incidents = incidents
        .into_iter()
        .map(|incident| LocalIncident {
            #[cfg(feature = "classifier-off")]
            classifier_off: args.classifier_off,
            keep: args.keep,
            ..incident
        })
        .collect::<Vec<_>>();
    let recorder = args.recording.recorder(&paths);
    let env = common::environment(catalog_path.as_deref(), Some(recorder.clone())).await?;
    let confirmer = confirm::for_this_process();
    let mut all_resolved = true;
    let mut recorded = false;
    for incident in incidents {
        let outcome = local::run(&incident, &env, confirmer.as_ref()).await;
        if let Some(error) = &outcome.record_error {
            eprintln!("warning: {error}");
        }
        if let Some(dir) = &outcome.kept {
            eprintln!(
                "kept {}: {} (undo with `remediator undo --incident {}`)",
                incident.name,
                dir.display(),
                incident.name
            );
        }
        recorded |= outcome.trajectory.is_some() && outcome.record_error.is_none();
        all_resolved &= outcome.status.phase == IncidentPhase::Resolved;
        let object = incident_object(
            &incident.name,
            &incident.scenario,
            &incident.policy.name,
            outcome.status,
        );
        print!("{}", render(&object, args.output)?);
    }
    if recorded {
        eprintln!(
            "trajectory: {}",
            trajectory::run_file(&recorder.artifacts_dir, &recorder.run_id).display()
        );
    }
    Ok(if all_resolved {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
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
    let reason = match (&status.reason, status.phase) {
        (Some(reason), IncidentPhase::Failed) => format!(" ({reason})"),
        _ => String::new(),
    };
    out.push_str(&format!("  phase:    {}{reason}\n", status.phase.name()));
    if let Some(message) = &status.message {
        out.push_str(&format!("  message:  {message}\n"));
    }
    let risk = status
        .max_risk_seen
        .map(|r| r.to_string())
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
    if let Some(sandbox) = &status.sandbox {
        out.push_str(&format!("  sandbox:  {sandbox}\n"));
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
    if let Some(omitted) = &status.actions_omitted {
        out.push_str(&format!(
            "  ({} earlier actions, steps {}-{}, not shown: {} denied, {} rejected)\n",
            omitted.count, omitted.first_step, omitted.last_step, omitted.denied, omitted.rejected
        ));
    }
    if !status.actions.is_empty() {
        out.push_str(&format!(
            "  {:>4}  {:<15} {:<7} {:<9} {:<11} {:>4} {:>6}  {}\n",
            "STEP", "KIND", "RISK", "DECISION", "DECIDED BY", "EXIT", "MS", "COMMAND"
        ));
        for a in &status.actions {
            out.push_str(&format!(
                "  {:>4}  {:<15} {:<7} {:<9} {:<11} {:>4} {:>6}  {}\n",
                a.step,
                a.kind,
                a.risk.to_string(),
                format!("{:?}", a.decision),
                a.decided_by,
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
