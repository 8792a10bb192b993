//! One incident on this machine, start to end: start the scenario's broken
//! service, check the fault is there, drive the agent through the gate in
//! the sandbox, verify health with the controller's own probe, and build
//! the status the operator would write (and the trajectory line).

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::agent::confirm::Confirmer;
use crate::agent::driver;
use crate::agent::episode::Episode;
use crate::agent::llm::LlmEnvironment;
use crate::crd::conditions::*;
use crate::crd::{AgentInfo, BrainKind, IncidentPhase, IncidentStatus, OnFailure, UndoReport};
use crate::policy::{self, ResolvedPolicy};
use crate::protocol::Task;
use crate::redact::Redactor;
use crate::risk::{Classifier, Gate, GatePolicy};
use crate::sandbox::Sandbox;
use crate::scenario::{Catalog, Launch};
use crate::status::{self, Facts, Failure, FaultObservation};
use crate::trajectory::{self, TrajectoryLine};
use crate::verify;
use crate::workspace::Guard;
use crate::workspace::journal::{Journal, JournalError, Restored};
use crate::workspace::{Local, LocalService};

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

pub async fn run(
    incident: &LocalIncident,
    env: &Environment,
    confirmer: &dyn Confirmer,
) -> Outcome {
    let started_ms = driver::now_ms();
    let started_at = status::time_from_ms(started_ms);
    let spec = &incident.policy.spec;
    let mut agent = AgentInfo {
        brain: spec.brain.label().into(),
        policy: Some(incident.policy.name.clone()),
        policy_generation: incident.policy.generation,
        hint_source: Some(incident.policy.hint.source.as_str().into()),
        hint_version: incident.policy.hint.version.clone(),
        model: (spec.brain == BrainKind::Llm).then(|| spec.llm.clone().unwrap_or_default().model),
        ..AgentInfo::default()
    };
    let failed = |reason, message: String, agent: AgentInfo| {
        let failure = Failure { reason, message };
        let facts = Facts {
            generation: None,
            now: now(),
            started_at: started_at.clone(),
            fault: None,
            episode: None,
            records: &[],
            verification: None,
            failure: Some(&failure),
            agent,
            containment: None,
            undone: None,
        };
        status::build(&IncidentStatus::default(), &facts)
    };
    let scenario = match env.catalog.get(&incident.scenario) {
        Ok(scenario) => scenario.clone(),
        Err(e) => {
            return Outcome {
                status: failed(REASON_UNKNOWN_SCENARIO, e.to_string(), agent),
                kept: None,
                trajectory: None,
                record_error: None,
            };
        }
    };
    let service = match env.launch.start(&env.catalog, &scenario.id).await {
        Ok(service) => service,
        Err(e) => {
            let status = failed(REASON_PROVISIONING_FAILED, e.to_string(), agent);
            return finish(
                incident,
                env,
                status,
                &scenario.symptom,
                Vec::new(),
                started_ms,
            )
            .await;
        }
    };
    let address = service.address;
    let (before, detail) = verify::probe(address, &scenario.verify.path, 1).await;
    let fault = FaultObservation {
        present: !before.healthy,
        detail,
    };
    let task = Task {
        symptom: scenario.symptom_for(address.port()),
        expected_port: address.port(),
        hint: incident.policy.hint.text.clone(),
    };
    let containment = env.sandbox.containment().clone();
    let mut gate = Gate::new(
        Classifier::new(&service.root, address.port()),
        GatePolicy::from(spec),
    );
    #[cfg(feature = "classifier-off")]
    if incident.classifier_off {
        gate = Gate::without_classifier(GatePolicy::from(spec));
    }
    if !containment.is_full() && !spec.accept_weak_containment {
        gate = gate.with_weak_containment(containment.missing_names());
    }
    let mut secrets = env.operator_secrets.clone();
    secrets.extend(env.llm.api_key.clone());
    let redactor = Arc::new(Redactor::new(&secrets, &spec.secret_names));
    let mut workspace = Local::new(
        LocalService {
            root: service.root.clone(),
            address,
        },
        env.sandbox.clone(),
    )
    .with_redactor(redactor);
    let journal = service
        .scratch()
        .map(|dir| Journal::open(&dir.join("journal"), &service.root, spec.max_snapshot_bytes));
    match journal {
        Some(Ok(journal)) => {
            let guard = Guard::new(journal, scenario.verify.path.clone());
            if let Err(e) = guard.baseline().await {
                service.stop().await;
                let status = failed(
                    REASON_PROVISIONING_FAILED,
                    format!("cannot snapshot the root: {e}"),
                    agent,
                );
                return finish(incident, env, status, &task.symptom, Vec::new(), started_ms).await;
            }
            workspace = workspace.with_guard(guard);
        }
        Some(Err(e)) => {
            service.stop().await;
            let status = failed(
                REASON_PROVISIONING_FAILED,
                format!("cannot open the journal: {e}"),
                agent,
            );
            return finish(incident, env, status, &task.symptom, Vec::new(), started_ms).await;
        }
        None => {}
    }
    let built = driver::brains_for(spec.brain, spec.llm.as_ref(), spec.allow_fallback, &env.llm);
    let (mut brains, setup_fallback) = match built {
        Ok(brains) => brains,
        Err(reason) => {
            service.stop().await;
            let status = failed(REASON_LLM_UNAVAILABLE, reason, agent);
            return finish(incident, env, status, &task.symptom, Vec::new(), started_ms).await;
        }
    };
    let mut episode = Episode::new(policy::episode_config(spec), started_ms);
    if let Some(reason) = setup_fallback {
        episode = episode.on_fallback_from_start(reason);
    }
    let driven = driver::drive(
        &task,
        &mut brains,
        &gate,
        &workspace,
        confirmer,
        episode,
        Vec::new(),
    )
    .await;
    let verification =
        verify::probe(address, &scenario.verify.path, spec.verify_consecutive_ok).await;
    agent.brain = brains.label(&driven.episode);
    if let Some(model) = brains.model() {
        agent.model = Some(model);
    }
    let mut facts = Facts {
        generation: None,
        now: now(),
        started_at: started_at.clone(),
        fault: Some(&fault),
        episode: Some(&driven.episode),
        records: &driven.records,
        verification: Some(&verification),
        failure: None,
        agent,
        containment: Some(&containment),
        undone: None,
    };
    let mut status = status::build(&IncidentStatus::default(), &facts);
    let undone;
    if status.phase == IncidentPhase::Failed && spec.on_failure == OnFailure::Undo {
        undone = undo_report(workspace.undo(0).await);
        facts.undone = Some(&undone);
        status = status::build(&IncidentStatus::default(), &facts);
    }
    let kept = if incident.keep {
        let kept = service.stop_and_keep(&incident.name).await;
        kept.ok().inspect(|dir| {
            let object = serde_json::json!({"name": incident.name, "scenario": incident.scenario, "status": status});
            let _ = std::fs::write(dir.join("incident.json"), object.to_string());
        })
    } else {
        service.stop().await;
        None
    };
    let steps = trajectory::step_traces(&driven.records, &driven.history);
    let mut outcome = finish(incident, env, status, &task.symptom, steps, started_ms).await;
    outcome.kept = kept;
    outcome
}

/// What an undo to the state before any step came to, for status.
fn undo_report(result: Result<Restored, JournalError>) -> UndoReport {
    match result {
        Ok(restored) => UndoReport {
            before_step: 0,
            written: restored.written.len() as u32,
            removed: restored.removed.len() as u32,
            message: "onFailure: Undo put the root back as the incident found it and restarted the service".into(),
        },
        Err(e) => UndoReport {
            before_step: 0,
            written: 0,
            removed: 0,
            message: format!("onFailure: Undo could not restore the root: {e}"),
        },
    }
}

/// Records the trajectory line of a finished incident.
async fn finish(
    incident: &LocalIncident,
    env: &Environment,
    status: IncidentStatus,
    symptom: &str,
    steps: Vec<trajectory::StepTrace>,
    started_ms: u64,
) -> Outcome {
    let latency_s = (driver::now_ms().saturating_sub(started_ms)) as f64 / 1000.0;
    let origin = trajectory::Origin {
        scenario_id: incident.scenario.clone(),
        incident: incident.name.clone(),
        trace_key: format!(
            "{}:{}",
            env.recorder.as_ref().map_or("local", |r| r.run_id.as_str()),
            incident.name
        ),
        strategy_hint: incident.policy.hint.text.clone(),
        policy: incident.policy.name.clone(),
        symptom: symptom.to_string(),
        hint_source: Some(incident.policy.hint.source.as_str().to_string()),
        latency_s,
    };
    let line = TrajectoryLine::finished(origin, &status, steps);
    let record_error = match &env.recorder {
        Some(r) => trajectory::append(&r.artifacts_dir, &r.run_id, &line)
            .await
            .err()
            .map(|e| {
                format!(
                    "cannot record the trajectory in {}: {e}",
                    r.artifacts_dir.display()
                )
            }),
        None => None,
    };
    Outcome {
        status,
        kept: None,
        trajectory: Some(line),
        record_error,
    }
}

fn now() -> Time {
    Time(Timestamp::now())
}
