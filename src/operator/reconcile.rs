//! Reconcile as a pure function: the Incident, its Policy, what is observed
//! of its Pod, Job, Secrets, sandbox and service, and the time give the
//! objects to create, the status, the calls into the episode's engine, the
//! events and when to look again. No I/O here: the controller gathers the
//! observations and carries the plan out.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::annotations::{self, Directives};
use super::session::Session;
use crate::agent::episode::{Episode, Waiting};
use crate::crd::conditions::*;
use crate::crd::{
    AgentInfo, Incident, IncidentPhase, IncidentStatus, OnFailure, Policy, UndoReport, Verification,
};
use crate::policy::{self, Overrides, Paths};
use crate::protocol::Task;
use crate::sandbox::Containment;
use crate::scenario::Catalog;
use crate::status::{self, Facts, Failure, FaultObservation};

/// The scenario Pod as observed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodView {
    pub ip: Option<String>,
    /// Both containers run and report ready.
    pub ready: bool,
    /// Why it failed (a container terminated, the Pod failed), if it did.
    pub failed: Option<String>,
}

/// The agent Job as observed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobView {
    /// Why it gave up (its retries ran out, its deadline passed), if it did.
    pub failed: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Observed<'a> {
    pub incident: &'a Incident,
    pub policy: Option<&'a Policy>,
    pub catalog: &'a Catalog,
    pub pod: Option<&'a PodView>,
    pub job: Option<&'a JobView>,
    pub has_agent_secret: bool,
    pub has_sandbox_secret: bool,
    /// The running episode's session (from the status), if it started.
    pub session: Option<&'a Session>,
    /// The controller's probe of the service, when [`needs_probe`] asked.
    pub probe: Option<&'a (Verification, String)>,
    /// What the sidecar can contain, once it answers.
    pub containment: Option<&'a Containment>,
    /// `remediator.dev/decided-by` is stamped by an admission policy and
    /// names who set an approve or reject annotation.
    pub approver_from_admission: bool,
    pub now: Time,
    pub now_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    AgentSecret,
    SandboxSecret,
    ScenarioPod,
    AgentJob,
}

/// What the episode's engine is asked to do.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineCall {
    /// The episode begins with this session.
    Start(Box<Session>),
    Answer {
        step: u32,
        approved: bool,
        approver: crate::crd::Approver,
    },
    /// Deadlines may have passed.
    Tick,
    Tighten(crate::risk::RiskLevel),
    Undo(u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSpec {
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub create: Vec<Create>,
    /// The status to write; None: nothing changes.
    pub status: Option<IncidentStatus>,
    pub engine: Vec<EngineCall>,
    pub events: Vec<EventSpec>,
    /// Record the finished incident's trajectory in its Policy's ring.
    pub record: bool,
    pub requeue: Option<Duration>,
}

/// How long a scenario Pod may take to come up.
pub const PROVISIONING_TIMEOUT: Duration = Duration::from_secs(300);
/// How often a waiting incident is looked at without any event.
const WAIT: Duration = Duration::from_secs(5);
/// How soon a recording that failed is tried again.
const RECORD_RETRY: Duration = Duration::from_secs(30);
/// Where the classifier judges paths: the root in the scenario Pod.
const ROOT: &str = super::objects::ROOT;

fn phase(incident: &Incident) -> IncidentPhase {
    incident
        .status
        .as_ref()
        .map(|s| s.phase)
        .unwrap_or_default()
}

/// How many consecutive answers the controller must probe for, before it
/// reconciles (a probe is I/O, so it happens outside).
pub fn needs_probe(
    incident: &Incident,
    session: Option<&Session>,
    pod: Option<&PodView>,
) -> Option<u32> {
    let pod = pod.filter(|p| p.ready && p.ip.is_some())?;
    let _ = pod;
    match phase(incident) {
        IncidentPhase::Provisioning => Some(1),
        IncidentPhase::Verifying => Some(session.map_or(3, |s| s.policy.verify_consecutive_ok)),
        _ => None,
    }
}

pub fn decide(o: &Observed<'_>) -> Plan {
    let directives = annotations::read(o.incident.metadata.annotations.as_ref());
    let mut plan = match phase(o.incident) {
        IncidentPhase::Pending => pending(o),
        IncidentPhase::Provisioning => provisioning(o),
        IncidentPhase::Remediating | IncidentPhase::AwaitingApproval => remediating(o, &directives),
        IncidentPhase::Verifying => verifying(o),
        IncidentPhase::Resolved | IncidentPhase::Failed => terminal(o, &directives),
    };
    for problem in &directives.problems {
        plan.events
            .push(warning(EVENT_ANNOTATION_IGNORED, problem.clone()));
    }
    // Writing an unchanged status is skipped.
    if plan.status.as_ref() == o.incident.status.as_ref() {
        plan.status = None;
    }
    plan
}

fn warning(reason: &'static str, message: String) -> EventSpec {
    EventSpec {
        warning: true,
        reason,
        message,
    }
}

fn normal(reason: &'static str, message: String) -> EventSpec {
    EventSpec {
        warning: false,
        reason,
        message,
    }
}

fn previous(o: &Observed<'_>) -> IncidentStatus {
    o.incident.status.clone().unwrap_or_default()
}

/// The status with `failure`, keeping everything already known.
fn failed(o: &Observed<'_>, reason: &'static str, message: String) -> Plan {
    let previous = previous(o);
    let failure = Failure {
        reason,
        message: message.clone(),
    };
    let facts = Facts {
        generation: o.incident.metadata.generation,
        now: o.now.clone(),
        started_at: previous.started_at.clone().unwrap_or_else(|| o.now.clone()),
        fault: None,
        episode: o.session.map(|s| &s.episode),
        records: &previous.actions,
        verification: None,
        failure: Some(&failure),
        agent: previous.agent.clone().unwrap_or_default(),
        containment: o.session.map(|s| &s.containment),
        undone: previous.undone.as_ref(),
    };
    let mut status = status::build(&previous, &facts);
    status.actions_omitted = previous.actions_omitted.clone();
    Plan {
        status: Some(status),
        events: vec![warning(reason, message)],
        ..Plan::default()
    }
}

fn pending(o: &Observed<'_>) -> Plan {
    if o.catalog.get(&o.incident.spec.scenario).is_err() {
        return failed(
            o,
            REASON_UNKNOWN_SCENARIO,
            format!(
                "unknown scenario `{}`; known: {}",
                o.incident.spec.scenario,
                o.catalog.ids().join(", ")
            ),
        );
    }
    let mut status = previous(o);
    status.observed_generation = o.incident.metadata.generation;
    let Some(policy) = o.policy else {
        status.phase = IncidentPhase::Pending;
        let message = format!(
            "Policy `{}` does not exist in this namespace; waiting for it",
            o.incident.spec.policy_ref.name
        );
        status::set_condition(
            &mut status.conditions,
            POLICY_READY,
            false,
            REASON_POLICY_NOT_FOUND,
            message.clone(),
            &o.now,
            o.incident.metadata.generation,
        );
        status.reason = Some(REASON_POLICY_NOT_FOUND.into());
        status.message = Some(message.clone());
        return Plan {
            status: Some(status),
            events: vec![warning(REASON_POLICY_NOT_FOUND, message)],
            requeue: Some(Duration::from_secs(30)),
            ..Plan::default()
        };
    };
    status::set_condition(
        &mut status.conditions,
        POLICY_READY,
        true,
        "PolicyFound",
        format!(
            "following Policy {} generation {}",
            o.incident.spec.policy_ref.name,
            policy.metadata.generation.unwrap_or_default()
        ),
        &o.now,
        o.incident.metadata.generation,
    );
    status.phase = IncidentPhase::Provisioning;
    status.reason = None;
    status.message = Some("starting the scenario Pod".into());
    status.started_at = Some(o.now.clone());
    Plan {
        create: missing_objects(o),
        status: Some(status),
        events: vec![normal(
            EVENT_PROVISIONING,
            format!("starting scenario {}", o.incident.spec.scenario),
        )],
        requeue: Some(WAIT),
        ..Plan::default()
    }
}

fn missing_objects(o: &Observed<'_>) -> Vec<Create> {
    let mut create = Vec::new();
    if !o.has_agent_secret {
        create.push(Create::AgentSecret);
    }
    if !o.has_sandbox_secret {
        create.push(Create::SandboxSecret);
    }
    if o.pod.is_none() {
        create.push(Create::ScenarioPod);
    }
    create
}

fn provisioning(o: &Observed<'_>) -> Plan {
    let Some(policy) = o.policy else {
        return failed(
            o,
            REASON_POLICY_NOT_FOUND,
            format!(
                "Policy `{}` was deleted before the incident started",
                o.incident.spec.policy_ref.name
            ),
        );
    };
    if let Some(why) = o.pod.and_then(|p| p.failed.clone()) {
        return failed(
            o,
            REASON_PROVISIONING_FAILED,
            format!("the scenario Pod failed: {why}"),
        );
    }
    let started_ms = previous(o)
        .started_at
        .map_or(o.now_ms, |t| t.0.as_millisecond().max(0) as u64);
    let ready = o.pod.is_some_and(|p| p.ready && p.ip.is_some());
    let (Some(probe), Some(containment), true) = (o.probe, o.containment, ready) else {
        if o.now_ms.saturating_sub(started_ms) > PROVISIONING_TIMEOUT.as_millis() as u64 {
            return failed(
                o,
                REASON_PROVISIONING_FAILED,
                format!("the scenario Pod was not ready within {PROVISIONING_TIMEOUT:?}"),
            );
        }
        return Plan {
            create: missing_objects(o),
            requeue: Some(WAIT),
            ..Plan::default()
        };
    };
    let scenario = match o.catalog.get(&o.incident.spec.scenario) {
        Ok(scenario) => scenario,
        Err(e) => return failed(o, REASON_UNKNOWN_SCENARIO, e.to_string()),
    };
    let name = o.incident.spec.policy_ref.name.clone();
    let nowhere = Paths {
        artifacts_dir: "/nonexistent/artifacts".into(),
        skill_file: "/nonexistent/SKILL.md".into(),
    };
    let resolved = match policy::from_spec(&name, &policy.spec, &Overrides::default(), &nowhere) {
        Ok(resolved) => resolved,
        Err(e) => return failed(o, REASON_INVALID_POLICY, e.to_string()),
    };
    let port = super::objects::Settings::default().service_port;
    let session = Session {
        episode: Episode::new(policy::episode_config(&policy.spec), o.now_ms),
        task: Task {
            symptom: scenario.symptom_for(port),
            expected_port: port,
            hint: resolved.hint.text.clone(),
        },
        policy: policy.spec.clone(),
        policy_name: name.clone(),
        policy_generation: policy.metadata.generation,
        root: ROOT.into(),
        max_risk: None,
        containment: containment.clone(),
    };
    let (_, detail) = probe;
    let fault = FaultObservation {
        present: !probe.0.healthy,
        detail: detail.clone(),
    };
    let previous = previous(o);
    let agent = AgentInfo {
        brain: policy.spec.brain.label().into(),
        policy: Some(name),
        policy_generation: policy.metadata.generation,
        hint_source: Some(resolved.hint.source.as_str().into()),
        hint_version: resolved.hint.version.clone(),
        model: policy.spec.llm.as_ref().map(|l| l.model.clone()),
        ..AgentInfo::default()
    };
    let facts = Facts {
        generation: o.incident.metadata.generation,
        now: o.now.clone(),
        started_at: previous.started_at.clone().unwrap_or_else(|| o.now.clone()),
        fault: Some(&fault),
        episode: Some(&session.episode),
        records: &[],
        verification: None,
        failure: None,
        agent,
        containment: Some(containment),
        undone: None,
    };
    let status = status::build(&previous, &facts);
    let mut events = vec![normal(
        EVENT_REMEDIATING,
        format!(
            "the agent starts ({} brain, {} hint); containment: {}",
            facts.agent.brain,
            resolved.hint.source.as_str(),
            containment.summary()
        ),
    )];
    if !containment.is_full() {
        events.push(warning(
            REASON_WEAK_CONTAINMENT,
            format!(
                "the sandbox lacks {}; {}",
                containment.missing_names(),
                if policy.spec.accept_weak_containment {
                    "the Policy accepts weaker containment"
                } else {
                    "actions above LOW will be refused"
                }
            ),
        ));
    }
    if !fault.present {
        events.push(warning(
            REASON_HEALTHY_BEFORE_AGENT,
            format!("the service answered healthy before the agent started: {detail}"),
        ));
    }
    Plan {
        create: vec![Create::AgentJob],
        status: Some(status),
        engine: vec![EngineCall::Start(Box::new(session))],
        events,
        requeue: Some(WAIT),
        ..Plan::default()
    }
}

fn remediating(o: &Observed<'_>, directives: &Directives) -> Plan {
    let Some(session) = o.session else {
        return failed(
            o,
            REASON_PROVISIONING_FAILED,
            "the incident's episode state is missing from its status".into(),
        );
    };
    if let Some(why) = o.pod.and_then(|p| p.failed.clone()) {
        return failed(
            o,
            REASON_SANDBOX_UNAVAILABLE,
            format!("the scenario Pod failed mid-incident: {why}"),
        );
    }
    if o.pod.is_none() {
        return failed(
            o,
            REASON_SANDBOX_UNAVAILABLE,
            "the scenario Pod is gone mid-incident".into(),
        );
    }
    let mut plan = Plan::default();
    if session.episode.end().is_some() {
        let mut status = previous(o);
        status.phase = IncidentPhase::Verifying;
        plan.status = Some(status);
        plan.requeue = Some(Duration::from_millis(1));
        return plan;
    }
    if let Some(why) = o.job.and_then(|j| j.failed.clone()) {
        return failed(
            o,
            REASON_AGENT_FAILED,
            format!("the agent Job gave up: {why}"),
        );
    }
    if o.job.is_none() {
        plan.create.push(Create::AgentJob);
    }
    if let Waiting::Approval(approval) = &session.episode.waiting {
        let (answer, events) = person_answer(o, approval, directives);
        plan.events.extend(events);
        if let Some((approved, approver)) = answer {
            plan.engine.push(EngineCall::Answer {
                step: approval.step,
                approved,
                approver,
            });
            plan.events.push(normal(
                if approved {
                    EVENT_APPROVED
                } else {
                    EVENT_REJECTED
                },
                format!(
                    "step {} `{}` {}",
                    approval.step,
                    approval.action.summary(),
                    if approved { "approved" } else { "rejected" }
                ),
            ));
        }
    }
    if let Some(wanted) = directives.max_risk {
        let current = session
            .max_risk
            .unwrap_or(session.policy.max_risk)
            .min(session.policy.max_risk);
        if wanted < current {
            plan.engine.push(EngineCall::Tighten(wanted));
            plan.events.push(normal(
                EVENT_RISK_TIGHTENED,
                format!(
                    "maxRisk for this incident is now {wanted} (the Policy says {})",
                    session.policy.max_risk
                ),
            ));
        } else if wanted > current {
            plan.events.push(warning(
                EVENT_ANNOTATION_IGNORED,
                format!(
                    "{}={wanted} would loosen maxRisk {current}; annotations may only tighten a Policy",
                    annotations::MAX_RISK
                ),
            ));
        }
    }
    // The clock: the nearest deadline, then a tick when it has passed.
    let deadline = match &session.episode.waiting {
        Waiting::Approval(approval) => approval.deadline_ms,
        _ => session.episode.started_at_ms + session.episode.config.timeout_ms,
    };
    if o.now_ms >= deadline {
        plan.engine.push(EngineCall::Tick);
        plan.requeue = Some(Duration::from_millis(1));
    } else {
        let left = Duration::from_millis(deadline - o.now_ms);
        plan.requeue = Some(left.min(Duration::from_secs(30)));
    }
    plan
}

/// How far the operator's clock and the API server's may disagree when an
/// answer's time is compared with when its step began to wait.
const CLOCK_SKEW_S: i64 = 5;

/// What the approve and reject annotations say to the step that waits:
/// whether it is approved (a rejection wins), by whom, and warnings for
/// answers that do not count. An answer counts only for the action the
/// person saw: `<step>:<hash>` names it; a bare `<step>` counts only if
/// it was written after the step began to wait (otherwise `approve=7` set
/// while step 5 ran, or when the Incident was created, would approve an
/// action nobody had seen).
fn person_answer(
    o: &Observed<'_>,
    approval: &crate::agent::episode::Approval,
    directives: &Directives,
) -> (Option<(bool, crate::crd::Approver)>, Vec<EventSpec>) {
    let waited_since = (approval.requested_at_ms / 1000) as i64 - CLOCK_SKEW_S;
    let hash = approval.action.digest();
    let exact = annotations::answer_value(approval.step, &hash);
    let mut events = Vec::new();
    let mut given = |name: &str, answer: Option<&annotations::StepAnswer>| {
        let answer = answer.filter(|a| a.step == approval.step)?;
        let set = annotations::set_by(&o.incident.metadata, name, o.approver_from_admission);
        let counts = match &answer.hash {
            Some(prefix) if hash.starts_with(prefix.as_str()) => true,
            Some(prefix) => {
                events.push(warning(
                    EVENT_ANNOTATION_IGNORED,
                    format!(
                        "{name}={}:{prefix} names another action than the one waiting at step {}: answer it with {name}={exact}",
                        answer.step, approval.step
                    ),
                ));
                false
            }
            None if set.at.is_none_or(|at| at.as_second() >= waited_since) => true,
            None => {
                events.push(warning(
                    EVENT_ANNOTATION_IGNORED,
                    format!(
                        "{name}={} was written before step {} began to wait, so it does not answer it: answer it with {name}={exact}",
                        answer.step, approval.step
                    ),
                ));
                false
            }
        };
        counts.then_some(set.approver)
    };
    let rejected = given(annotations::REJECT, directives.reject.as_ref());
    let approved = given(annotations::APPROVE, directives.approve.as_ref());
    let answer = match (rejected, approved) {
        (Some(who), _) => Some((false, who)),
        (None, Some(who)) => Some((true, who)),
        (None, None) => None,
    };
    (answer, events)
}

fn verifying(o: &Observed<'_>) -> Plan {
    let Some(session) = o.session else {
        return failed(
            o,
            REASON_PROVISIONING_FAILED,
            "the incident's episode state is missing from its status".into(),
        );
    };
    let Some(probe) = o.probe else {
        if o.pod.is_none_or(|p| p.failed.is_some()) {
            return failed(
                o,
                REASON_SANDBOX_UNAVAILABLE,
                "the scenario Pod is gone; nothing to verify".into(),
            );
        }
        return Plan {
            requeue: Some(WAIT),
            ..Plan::default()
        };
    };
    let previous = previous(o);
    let undo_planned = UndoReport {
        before_step: 0,
        written: 0,
        removed: 0,
        message: "onFailure: Undo puts the root back as the incident found it".into(),
    };
    let mut facts = Facts {
        generation: o.incident.metadata.generation,
        now: o.now.clone(),
        started_at: previous.started_at.clone().unwrap_or_else(|| o.now.clone()),
        fault: None,
        episode: Some(&session.episode),
        records: &previous.actions,
        verification: Some(probe),
        failure: None,
        agent: previous.agent.clone().unwrap_or_default(),
        containment: Some(&session.containment),
        undone: None,
    };
    let mut status = status::build(&previous, &facts);
    let mut plan = Plan::default();
    if status.phase == IncidentPhase::Failed && session.policy.on_failure == OnFailure::Undo {
        plan.engine.push(EngineCall::Undo(0));
        facts.undone = Some(&undo_planned);
        status = status::build(&previous, &facts);
    }
    status.actions_omitted = previous.actions_omitted.clone();
    plan.events.push(match status.phase {
        IncidentPhase::Resolved => normal(
            REASON_RESOLVED,
            format!("verified healthy after {} steps", status.steps),
        ),
        _ => warning(
            EVENT_FAILED,
            format!(
                "{}: {}",
                status.reason.as_deref().unwrap_or("Failed"),
                status.message.as_deref().unwrap_or("")
            ),
        ),
    });
    plan.status = Some(status);
    plan
}

fn terminal(o: &Observed<'_>, directives: &Directives) -> Plan {
    let mut plan = undo_requested(o, directives);
    // Only an incident whose episode started has steps to learn from.
    if o.session.is_some() && super::recording::due(o.incident, &o.now) {
        plan.record = true;
        plan.requeue = Some(RECORD_RETRY);
    }
    plan
}

fn undo_requested(o: &Observed<'_>, directives: &Directives) -> Plan {
    let previous = previous(o);
    match directives.undo {
        Some(step)
            if previous
                .undone
                .as_ref()
                .is_none_or(|u| u.before_step != step || u.message.starts_with("onFailure")) =>
        {
            let mut status = previous.clone();
            status.undone = Some(UndoReport {
                before_step: step,
                written: 0,
                removed: 0,
                message: format!(
                    "{}={step}: the root is put back as it was before step {step}",
                    annotations::UNDO
                ),
            });
            Plan {
                status: Some(status),
                engine: vec![EngineCall::Undo(step)],
                events: vec![normal(
                    EVENT_UNDO_REQUESTED,
                    format!("restoring the root as it was before step {step}"),
                )],
                ..Plan::default()
            }
        }
        _ => Plan::default(),
    }
}

#[cfg(test)]
mod tests;
