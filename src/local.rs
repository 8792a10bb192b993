//! One incident on this machine, start to end: start the scenario's broken
//! service, run the agent through the gate, verify health independently,
//! and produce the status the operator would write.

use std::path::PathBuf;
use std::time::Instant;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::agent::confirm::Confirmer;
use crate::agent::hint::ResolvedHint;
use crate::agent::llm::{LlmBrain, LlmConfig};
use crate::agent::runbook::RunbookBrain;
use crate::agent::{self, Brain, Budget, EpisodeEnd, Task};
use crate::crd::conditions::*;
use crate::crd::{
    AgentInfo, BrainKind, IncidentPhase, IncidentStatus, MAX_STATUS_ACTIONS, PolicySpec,
};
use crate::risk::{Classifier, Gate, GatePolicy};
use crate::scenario::{Catalog, Launch};
use crate::trajectory::{self, TrajectoryLine};
use crate::verify;
use crate::workspace::Local;

/// An incident to run locally, with its policy resolved.
#[derive(Debug, Clone)]
pub struct LocalIncident {
    pub name: String,
    pub scenario: String,
    pub policy_name: String,
    pub policy: PolicySpec,
    pub hint: ResolvedHint,
}

/// Where runs are recorded.
#[derive(Debug, Clone)]
pub struct Recorder {
    pub artifacts_dir: PathBuf,
    pub run_id: String,
}

pub struct Outcome {
    pub status: IncidentStatus,
    pub trajectory: TrajectoryLine,
    /// Why recording the trajectory failed, if it did.
    pub record_error: Option<String>,
}

pub async fn run(
    incident: &LocalIncident,
    catalog: &Catalog,
    launch: &Launch,
    confirmer: &dyn Confirmer,
    recorder: Option<&Recorder>,
) -> Outcome {
    let started = Instant::now();
    let mut status = IncidentStatus {
        phase: IncidentPhase::Provisioning,
        started_at: Some(now()),
        agent: Some(AgentInfo {
            brain: brain_label(incident.policy.brain).into(),
            policy: Some(incident.policy_name.clone()),
            hint_source: Some(incident.hint.source.as_str().into()),
            hint_version: incident.hint.version.clone(),
            ..AgentInfo::default()
        }),
        ..IncidentStatus::default()
    };
    let mut tool_actions = Vec::new();
    remediate(
        incident,
        catalog,
        launch,
        confirmer,
        &mut status,
        &mut tool_actions,
    )
    .await;

    let latency_s = (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
    if status.phase == IncidentPhase::Resolved {
        status.resolved_at = Some(now());
        status.time_to_resolve_seconds = Some(latency_s);
    }
    let trajectory = TrajectoryLine {
        scenario_id: incident.scenario.clone(),
        tool_actions,
        step_count: status.steps,
        latency_s,
        service_up: status.verified.as_ref().is_some_and(|v| v.healthy),
        trace_key: format!(
            "{}:{}",
            recorder.map_or("local", |r| r.run_id.as_str()),
            incident.name
        ),
        strategy_hint: incident.hint.text.clone(),
        policy: incident.policy_name.clone(),
        brain: status
            .agent
            .as_ref()
            .map(|a| a.brain.clone())
            .unwrap_or_default(),
        phase: format!("{:?}", status.phase),
        reason: status.reason.clone(),
    };
    let record_error = recorder.and_then(|r| {
        trajectory::append(&r.artifacts_dir, &r.run_id, &trajectory)
            .err()
            .map(|e| {
                format!(
                    "cannot record the trajectory in {}: {e}",
                    r.artifacts_dir.display()
                )
            })
    });
    Outcome {
        status,
        trajectory,
        record_error,
    }
}

async fn remediate(
    incident: &LocalIncident,
    catalog: &Catalog,
    launch: &Launch,
    confirmer: &dyn Confirmer,
    status: &mut IncidentStatus,
    tool_actions: &mut Vec<String>,
) {
    let scenario = match catalog.get(&incident.scenario) {
        Ok(scenario) => scenario.clone(),
        Err(e) => return fail(status, REASON_UNKNOWN_SCENARIO, e.to_string()),
    };
    let service = {
        let (launch, catalog, id) = (launch.clone(), catalog.clone(), scenario.id.clone());
        tokio::task::spawn_blocking(move || launch.start(&catalog, &id)).await
    };
    let service = match service {
        Ok(Ok(service)) => service,
        Ok(Err(e)) => return fail(status, REASON_PROVISIONING_FAILED, e.to_string()),
        Err(e) => return fail(status, REASON_PROVISIONING_FAILED, e.to_string()),
    };
    let consecutive = incident.policy.verify_consecutive_ok;
    let (before, detail) = verify::probe(service.port, &scenario.verify.path, 1).await;
    status.conditions.push(condition(
        FAULT_PRESENT,
        !before.healthy,
        if before.healthy {
            "ServiceHealthyBeforeAgent"
        } else {
            "FaultObserved"
        },
        detail,
    ));

    status.phase = IncidentPhase::Remediating;
    let task = Task {
        symptom: scenario.symptom_for(service.port),
        expected_port: service.port,
        hint: incident.hint.text.clone(),
    };
    let gate = Gate::new(
        Classifier::new(&service.root, service.port),
        GatePolicy::from(&incident.policy),
    );
    let workspace = Local::new(&service.root, service.port);
    let budget = Budget {
        max_steps: incident.policy.max_steps,
        timeout: std::time::Duration::from_secs(incident.policy.timeout_seconds.into()),
    };
    let (brain, fallback, setup_fallback) = match brains(&incident.policy, &task) {
        Ok(pair) => pair,
        Err(reason) => {
            if let Some(agent) = status.agent.as_mut() {
                agent.model = incident.policy.llm.as_ref().map(|l| l.model.clone());
            }
            return fail(status, REASON_LLM_UNAVAILABLE, reason);
        }
    };
    let episode =
        agent::run_episode(&task, brain, fallback, &gate, &workspace, confirmer, budget).await;

    *tool_actions = episode.records.iter().map(|r| r.command.clone()).collect();
    status.steps = episode.steps();
    status.max_risk_seen = episode.max_risk_seen;
    let mut records = episode.records.clone();
    if records.len() > MAX_STATUS_ACTIONS {
        let omitted = records.len() - MAX_STATUS_ACTIONS;
        records.drain(..omitted);
        status.actions_omitted = Some(u32::try_from(omitted).unwrap_or(u32::MAX));
    }
    status.actions = records;
    if let Some(agent) = status.agent.as_mut() {
        // A fallback chosen before the episode (no key) ran the runbook
        // brain alone; one during the episode is already in its name.
        agent.brain = if setup_fallback.is_some() {
            "llm+runbook".into()
        } else {
            episode.brain.clone()
        };
        let fallback_reason = setup_fallback.or(episode.fallback.clone());
        agent.model = episode.model.clone();
        if episode.tokens.prompt + episode.tokens.completion > 0 {
            agent.tokens = Some(episode.tokens);
        }
        agent.fallback_used = fallback_reason.is_some();
        agent.fallback_reason = fallback_reason;
    }

    status.phase = IncidentPhase::Verifying;
    let (verified, detail) = verify::probe(service.port, &scenario.verify.path, consecutive).await;
    let healthy = verified.healthy;
    status.conditions.push(condition(
        VERIFIED_HEALTHY,
        healthy,
        if healthy {
            REASON_RESOLVED
        } else {
            REASON_VERIFICATION_FAILED
        },
        detail.clone(),
    ));
    status.verified = Some(verified);
    drop(service);

    match episode.end {
        EpisodeEnd::RiskLimitExceeded(reason) => fail(status, REASON_RISK_LIMIT_EXCEEDED, reason),
        EpisodeEnd::BrainFailed(reason) => fail(status, REASON_LLM_UNAVAILABLE, reason),
        _ if healthy => {
            status.phase = IncidentPhase::Resolved;
            status.reason = Some(REASON_RESOLVED.into());
            status.message = Some(detail);
        }
        EpisodeEnd::StepBudget | EpisodeEnd::TimeBudget => fail(
            status,
            REASON_BUDGET_EXHAUSTED,
            format!("the agent's budget ran out and the service is not healthy: {detail}"),
        ),
        EpisodeEnd::Claimed(claim) => fail(
            status,
            REASON_VERIFICATION_FAILED,
            format!("the agent claimed \"{claim}\" but {detail}"),
        ),
    }
}

type Brains = (Box<dyn Brain>, Option<Box<dyn Brain>>, Option<String>);

/// The policy's brain and its fallback. An LLM brain that cannot even be
/// built (no key) is an error in strict mode; with fallback allowed the
/// runbook starts at once and the reason is the third element.
fn brains(policy: &PolicySpec, task: &Task) -> Result<Brains, String> {
    match policy.brain {
        BrainKind::Runbook => Ok((Box::new(RunbookBrain::new(task)), None, None)),
        BrainKind::Llm => {
            let spec = policy.llm.clone().unwrap_or_default();
            let built = LlmConfig::from_env(&spec).and_then(LlmBrain::new);
            match (built, policy.allow_fallback) {
                (Ok(llm), true) => {
                    Ok((Box::new(llm), Some(Box::new(RunbookBrain::new(task))), None))
                }
                (Ok(llm), false) => Ok((Box::new(llm), None, None)),
                (Err(e), true) => {
                    Ok((Box::new(RunbookBrain::new(task)), None, Some(e.to_string())))
                }
                (Err(e), false) => Err(e.to_string()),
            }
        }
    }
}

fn brain_label(kind: BrainKind) -> &'static str {
    match kind {
        BrainKind::Runbook => "runbook",
        BrainKind::Llm => "llm",
    }
}

fn fail(status: &mut IncidentStatus, reason: &str, message: String) {
    status.phase = IncidentPhase::Failed;
    status.reason = Some(reason.to_string());
    status.message = Some(message);
}

fn now() -> Time {
    Time(Timestamp::now())
}

fn condition(type_: &str, ok: bool, reason: &str, message: String) -> Condition {
    Condition {
        type_: type_.to_string(),
        status: if ok { "True" } else { "False" }.to_string(),
        reason: reason.to_string(),
        message,
        last_transition_time: now(),
        observed_generation: None,
    }
}
