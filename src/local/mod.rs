//! One incident on this machine, start to end, in named stages:
//! [`provision`] (start the scenario's broken service, check the fault is
//! there, set up the gate and the sandboxed workspace), [`remediate`] (the
//! agent's episode through the gate), [`conclude`] (the controller's own
//! probe decides, the status the operator would write, undo on failure)
//! and [`record`] (the trajectory line).

mod conclude;
pub mod plan;
mod provision;
mod record;

use std::sync::Arc;

use tracing::Instrument;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::agent::confirm::Confirmer;
use crate::agent::driver;
use crate::agent::episode::Episode;
use crate::agent::llm::LlmEnvironment;
use crate::crd::conditions::{REASON_LLM_UNAVAILABLE, REASON_UNKNOWN_SCENARIO};
use crate::crd::{AgentInfo, BrainKind, IncidentStatus};
use crate::policy::{self, ResolvedPolicy};
use crate::sandbox::Sandbox;
use crate::scenario::{Catalog, Launch};
use crate::status::{self, Facts, Failure};
use crate::trajectory::{self, TrajectoryLine};
use provision::Provisioned;

/// An incident to run locally, with its policy resolved.
#[derive(Debug, Clone)]
pub struct LocalIncident {
    pub name: String,
    pub scenario: String,
    pub policy: ResolvedPolicy,
    /// Rate every action LOW (a containment test: the kernel alone holds).
    /// Honoured only in builds with the `classifier-off` feature.
    pub classifier_off: bool,
    /// Keep the scratch directory (root and journal) afterwards.
    pub keep: bool,
}

/// Where runs are recorded.
#[derive(Debug, Clone)]
pub struct Recorder {
    pub artifacts_dir: std::path::PathBuf,
    pub run_id: String,
}

/// What every local incident shares.
#[derive(Clone)]
pub struct Environment {
    pub catalog: Catalog,
    pub launch: Launch,
    pub sandbox: Arc<Sandbox>,
    pub llm: LlmEnvironment,
    pub recorder: Option<Recorder>,
    /// Values the operator holds (its LLM key and the like), redacted from
    /// every observation even if an agent found a way to print one.
    pub operator_secrets: Vec<String>,
}

impl Environment {
    /// Services and the sandbox helper run from one `remediator` binary,
    /// with the deterministic brains only (no LLM endpoint), nothing
    /// recorded and no operator secrets: what tests and benchmarks run.
    pub async fn local(program: std::path::PathBuf, catalog: Catalog) -> Self {
        let helper = crate::sandbox::HelperProgram {
            program: program.clone(),
            prefix_args: Vec::new(),
        };
        Self {
            catalog,
            launch: Launch::through_remediator(program),
            sandbox: Arc::new(Sandbox::new(helper).await),
            llm: LlmEnvironment::default(),
            recorder: None,
            operator_secrets: Vec::new(),
        }
    }
}

pub struct Outcome {
    pub status: IncidentStatus,
    /// Where the incident's root and journal were kept (`keep`).
    pub kept: Option<std::path::PathBuf>,
    /// None when nothing ran (an unknown scenario).
    pub trajectory: Option<TrajectoryLine>,
    /// Why recording the trajectory failed, if it did.
    pub record_error: Option<String>,
}

/// Runs `incident` start to end; with traces exported, it is one trace
/// (its id in the status and the trajectory line), a root whatever runs
/// it (a fan-out, an optimizer's evaluation).
pub async fn run(
    incident: &LocalIncident,
    env: &Environment,
    confirmer: &dyn Confirmer,
) -> Outcome {
    let span = tracing::info_span!(
        parent: None,
        "incident",
        otel.name = %format!("incident {}", incident.name),
        incident = %incident.name,
        scenario = %incident.scenario,
        policy = %incident.policy.name,
        phase = tracing::field::Empty,
        steps = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        otel.status_message = tracing::field::Empty,
    );
    let outcome = stages(incident, env, confirmer)
        .instrument(span.clone())
        .await;
    let status = &outcome.status;
    span.record("phase", tracing::field::display(status.phase));
    span.record("steps", crate::telemetry::count(status.steps));
    if status.phase == crate::crd::IncidentPhase::Failed {
        span.record("otel.status_code", "ERROR");
        if let Some(reason) = &status.reason {
            span.record("otel.status_message", reason.as_str());
        }
    }
    outcome
}

async fn stages(incident: &LocalIncident, env: &Environment, confirmer: &dyn Confirmer) -> Outcome {
    let started_ms = driver::now_ms();
    let started_at = status::time_from_ms(started_ms);
    let mut agent = agent_info(incident);
    let scenario = match env.catalog.get(&incident.scenario) {
        Ok(scenario) => scenario.clone(),
        Err(e) => {
            let failure = Failure {
                reason: REASON_UNKNOWN_SCENARIO,
                message: e.to_string(),
            };
            return Outcome {
                status: failed(&failure, started_at, agent),
                kept: None,
                trajectory: None,
                record_error: None,
            };
        }
    };
    let provisioned = match provision::provision(incident, env, &scenario).await {
        Ok(provisioned) => provisioned,
        Err(not) => {
            let status = failed(&not.failure, started_at, agent);
            return record::finish(incident, env, status, &not.symptom, Vec::new(), started_ms)
                .await;
        }
    };
    let remediated = remediate(
        incident,
        env,
        &provisioned,
        confirmer,
        started_ms,
        &mut agent,
    );
    let driven = match remediated.await {
        Ok(driven) => driven,
        Err(failure) => {
            provisioned.workspace.close().await;
            provisioned.service.stop().await;
            let status = failed(&failure, started_at, agent);
            let symptom = &provisioned.task.symptom;
            return record::finish(incident, env, status, symptom, Vec::new(), started_ms).await;
        }
    };
    let status = conclude::verify_and_conclude(
        &provisioned,
        &driven,
        &scenario.verify.path,
        &incident.policy.spec,
        started_at,
        agent,
    )
    .await;
    provisioned.workspace.close().await;
    let kept = conclude::stop(incident, provisioned.service, &status).await;
    let steps = trajectory::step_traces(&driven.records, &driven.history);
    let symptom = &provisioned.task.symptom;
    let mut outcome = record::finish(incident, env, status, symptom, steps, started_ms).await;
    outcome.kept = kept;
    outcome
}

/// Who works on the incident, as status says it before anything ran.
fn agent_info(incident: &LocalIncident) -> AgentInfo {
    let spec = &incident.policy.spec;
    AgentInfo {
        brain: spec.brain.label().into(),
        policy: Some(incident.policy.name.clone()),
        policy_generation: incident.policy.generation,
        hint_source: Some(incident.policy.hint.source.as_str().into()),
        hint_version: incident.policy.hint.version.clone(),
        model: (spec.brain == BrainKind::Llm).then(|| spec.llm.clone().unwrap_or_default().model),
        ..AgentInfo::default()
    }
}

/// The status of an incident that failed before its agent could finish.
fn failed(failure: &Failure, started_at: Time, agent: AgentInfo) -> IncidentStatus {
    let facts = Facts {
        generation: None,
        now: now(),
        started_at,
        fault: None,
        episode: None,
        records: &[],
        verification: None,
        failure: Some(failure),
        agent,
        containment: None,
        undone: None,
    };
    status::build(&IncidentStatus::default(), &facts)
}

/// The agent's episode: brains from the policy, driven through the gate
/// in the sandbox until the brain claims it is done or a budget ends;
/// `agent` learns which brains ran (a fallback) and the model.
#[tracing::instrument(name = "remediate", skip_all)]
async fn remediate(
    incident: &LocalIncident,
    env: &Environment,
    provisioned: &Provisioned,
    confirmer: &dyn Confirmer,
    started_ms: u64,
    agent: &mut AgentInfo,
) -> Result<driver::Driven, Failure> {
    let spec = &incident.policy.spec;
    let built = driver::brains_for(spec.brain, spec.llm.as_ref(), spec.allow_fallback, &env.llm);
    let (mut brains, setup_fallback) = built.map_err(|reason| Failure {
        reason: REASON_LLM_UNAVAILABLE,
        message: reason,
    })?;
    let mut episode = Episode::new(policy::episode_config(spec), started_ms);
    if let Some(reason) = setup_fallback {
        episode = episode.on_fallback_from_start(reason);
    }
    let driven = driver::drive(
        &provisioned.task,
        &mut brains,
        &provisioned.gate,
        &provisioned.workspace,
        confirmer,
        episode,
        Vec::new(),
    )
    .await;
    agent.brain = brains.label(&driven.episode);
    if let Some(model) = brains.model() {
        agent.model = Some(model);
    }
    Ok(driven)
}

fn now() -> Time {
    Time(Timestamp::now())
}
