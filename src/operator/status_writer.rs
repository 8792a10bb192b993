//! The one writer of Incident status. Everything that changes an incident
//! (the reconcile's plan, steps the engine decided, an undo, a recording)
//! arrives here as a [`Change`]; [`next`] turns it, purely, into the new
//! status, the Events it announces and what the metrics count, and
//! [`StatusWriter::write`] carries that out: one server-side apply under
//! the operator's field manager, then the metrics and the Events.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use super::annotations;
use super::bounded::{ApiError, call};
use super::metrics::Metrics;
use super::reconcile::EventSpec;
use super::session::Session;
use crate::agent::episode::Waiting;
use crate::crd::conditions::{
    NOTICES_DELIVERED, REASON_APPROVAL_REQUESTED, REASON_NOTICE_FAILED, REASON_NOTICES_DELIVERED,
    TRAJECTORY_RECORDED,
};
use crate::crd::{
    ActionRecord, FIELD_MANAGER, Incident, IncidentStatus, NoticeRecord, OmittedActions,
};
use crate::protocol::UndoAnswer;
use crate::status::{self, Facts};

/// How long publishing one Event may take.
const EVENT_TIMEOUT: Duration = Duration::from_secs(5);

/// What happened to an incident.
#[derive(Debug, Clone, PartialEq)]
pub enum Change<'a> {
    /// The reconcile's plan: the status it decided (None: unchanged), the
    /// session it pinned when the episode starts, and its Events.
    Planned {
        status: Option<Box<IncidentStatus>>,
        pinned: Option<&'a Session>,
        events: Vec<EventSpec>,
    },
    /// The engine decided steps: the session as it stands now and the
    /// records of the steps just finished.
    Steps {
        session: &'a Session,
        records: &'a [ActionRecord],
    },
    /// The root was put back as it was before `before_step`, or could not be.
    Undone {
        before_step: u32,
        answer: Result<UndoAnswer, String>,
    },
    /// A notice was delivered to a webhook, or given up on.
    Noticed { record: NoticeRecord },
    /// The finished incident's trajectory was recorded, or not.
    Recorded {
        ok: bool,
        reason: &'static str,
        message: String,
    },
}

/// What a change comes to.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    /// The status to write; None: nothing to write.
    pub status: Option<IncidentStatus>,
    pub events: Vec<EventSpec>,
    /// Actions to count, under the policy that ran them.
    pub actions: Vec<ActionRecord>,
    pub policy: Option<String>,
    /// The incident has just ended: count its outcome.
    pub ended: bool,
}

/// The status, Events and counts that follow `incident` after `change`.
pub fn next(incident: &Incident, change: Change<'_>, now: Time) -> Update {
    let previous = incident.status.clone().unwrap_or_default();
    let mut update = Update {
        status: None,
        events: Vec::new(),
        actions: Vec::new(),
        policy: None,
        ended: false,
    };
    match change {
        Change::Planned {
            status,
            pinned,
            events,
        } => {
            update.events = events;
            update.status = status.map(|status| {
                let mut status = *status;
                if let Some(session) = pinned {
                    status.session = serde_json::to_value(session).ok();
                }
                status
            });
        }
        Change::Steps { session, records } => {
            update.status = Some(after_steps(incident, &previous, session, records, now));
            update
                .events
                .extend(approval_requested(incident, &previous, session));
            update.actions = records.to_vec();
            update.policy = Some(session.policy_name.clone());
        }
        Change::Undone {
            before_step,
            answer,
        } => {
            let mut status = previous.clone();
            let report = status.undone.get_or_insert_with(Default::default);
            report.before_step = before_step;
            match answer {
                Ok(answer) => {
                    report.written = answer.written.len() as u32;
                    report.removed = answer.removed.len() as u32;
                }
                Err(e) => report.message = format!("the undo failed: {e}"),
            }
            update.status = Some(status);
        }
        Change::Noticed { record } => {
            let mut status = previous.clone();
            status.notices.retain(|n| n.id != record.id);
            status.notices.push(record);
            let failed: Vec<String> = status
                .notices
                .iter()
                .filter(|n| !n.delivered)
                .map(|n| {
                    format!(
                        "{} to {}: {}",
                        n.event.name(),
                        n.webhook,
                        n.error.as_deref().unwrap_or("not delivered")
                    )
                })
                .collect();
            let (ok, reason, message) = match failed.last() {
                None => (
                    true,
                    REASON_NOTICES_DELIVERED,
                    format!("{} notices delivered", status.notices.len()),
                ),
                Some(last) => (
                    false,
                    REASON_NOTICE_FAILED,
                    format!("{} not delivered; the last: {last}", failed.len()),
                ),
            };
            status::set_condition(
                &mut status.conditions,
                NOTICES_DELIVERED,
                ok,
                reason,
                message,
                &now,
                incident.metadata.generation,
            );
            update.status = Some(status);
        }
        Change::Recorded {
            ok,
            reason,
            message,
        } => {
            let mut status = previous.clone();
            status::set_condition(
                &mut status.conditions,
                TRAJECTORY_RECORDED,
                ok,
                reason,
                message,
                &now,
                incident.metadata.generation,
            );
            update.status = Some(status);
        }
    }
    update.ended = update
        .status
        .as_ref()
        .is_some_and(|s| s.phase.is_terminal() && !previous.phase.is_terminal());
    update
}

/// The status after the engine decided steps: the new records appended,
/// the session stored, everything else derived by the status builder.
fn after_steps(
    incident: &Incident,
    previous: &IncidentStatus,
    session: &Session,
    records: &[ActionRecord],
    now: Time,
) -> IncidentStatus {
    let mut all: Vec<ActionRecord> = previous.actions.clone();
    all.extend_from_slice(records);
    let facts = Facts {
        generation: incident.metadata.generation,
        now,
        started_at: previous
            .started_at
            .clone()
            .unwrap_or_else(|| status::time_from_ms(session.episode.started_at_ms)),
        fault: None,
        episode: Some(&session.episode),
        records: &all,
        verification: None,
        failure: None,
        agent: previous.agent.clone().unwrap_or_default(),
        containment: Some(&session.containment),
        undone: previous.undone.as_ref(),
    };
    let mut status = status::build(previous, &facts);
    status.actions_omitted = merge_omitted(
        previous.actions_omitted.as_ref(),
        status.actions_omitted.take(),
    );
    status.session = serde_json::to_value(session).ok();
    status
}

/// An Event when a step has just started waiting for a person.
fn approval_requested(
    incident: &Incident,
    previous: &IncidentStatus,
    session: &Session,
) -> Option<EventSpec> {
    let Waiting::Approval(approval) = &session.episode.waiting else {
        return None;
    };
    let already = previous
        .pending_approval
        .as_ref()
        .is_some_and(|p| p.step == approval.step);
    (!already).then(|| EventSpec {
        warning: false,
        reason: REASON_APPROVAL_REQUESTED,
        message: {
            let value = annotations::answer_value(approval.step, &approval.action.digest());
            format!(
                "step {} `{}` [{}] waits: kubectl annotate --overwrite incident {} {}={value} (or {}={value})",
                approval.step,
                approval.action.summary(),
                approval.risk,
                incident.metadata.name.as_deref().unwrap_or_default(),
                annotations::APPROVE,
                annotations::REJECT,
            )
        },
    })
}

/// The older summary of dropped actions combined with the newer one.
pub fn merge_omitted(
    older: Option<&OmittedActions>,
    newer: Option<OmittedActions>,
) -> Option<OmittedActions> {
    match (older, newer) {
        (None, newer) => newer,
        (Some(older), None) => Some(older.clone()),
        (Some(older), Some(newer)) => Some(OmittedActions {
            count: older.count + newer.count,
            first_step: older.first_step.min(newer.first_step),
            last_step: older.last_step.max(newer.last_step),
            denied: older.denied + newer.denied,
            rejected: older.rejected + newer.rejected,
            max_risk: older.max_risk.max(newer.max_risk),
        }),
    }
}

/// Carries updates out: the status write, then metrics and Events.
pub struct StatusWriter {
    client: Client,
    metrics: Arc<Metrics>,
    recorder: Recorder,
}

impl StatusWriter {
    pub fn new(client: Client, metrics: Arc<Metrics>) -> Self {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: FIELD_MANAGER.into(),
                instance: std::env::var("POD_NAME").ok(),
            },
        );
        Self {
            client,
            metrics,
            recorder,
        }
    }

    /// Applies `change` to `incident`, which the caller read afresh under
    /// the incident's lock (so nothing newer is overwritten). Only the
    /// status apply can fail it; Events are published after it, briefly
    /// and best-effort.
    pub async fn write(&self, incident: &Incident, change: Change<'_>) -> Result<(), ApiError> {
        let mut update = next(incident, change, Time(k8s_openapi::jiff::Timestamp::now()));
        if let Some(status) = update.status.as_mut()
            && crate::telemetry::enabled()
        {
            status.trace_id = Some(incident_trace(incident).trace_id_hex());
        }
        if let Some(status) = &update.status {
            call(self.apply(incident, status))
                .await
                .map_err(ApiError::naming_a_stale_crd)?;
            if update.ended {
                self.metrics.record_outcome(&incident.spec.scenario, status);
                end_trace(incident, status);
            }
        }
        if let Some(policy) = &update.policy {
            self.metrics.record_actions(policy, &update.actions);
        }
        for event in &update.events {
            let event = Event {
                type_: if event.warning {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: event.reason.into(),
                note: Some(event.message.chars().take(1000).collect()),
                action: "Reconcile".into(),
                secondary: None,
            };
            // An Event that cannot be published is not worth failing over,
            // nor waiting long for.
            let regarding = incident.object_ref(&());
            let publish = self.recorder.publish(&event, &regarding);
            let _ = tokio::time::timeout(EVENT_TIMEOUT, publish).await;
        }
        Ok(())
    }

    /// Server-side apply of the whole status, forced: the operator owns it.
    async fn apply(&self, incident: &Incident, status: &IncidentStatus) -> kube::Result<()> {
        let namespace = incident.metadata.namespace.as_deref().unwrap_or_default();
        let name = incident.metadata.name.as_deref().unwrap_or_default();
        let api: Api<Incident> = Api::namespaced(self.client.clone(), namespace);
        let patch = json!({
            "apiVersion": Incident::api_version(&()),
            "kind": Incident::kind(&()),
            "metadata": {"name": name},
            "status": status,
        });
        api.patch_status(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map(|_| ())
    }
}

fn incident_trace(incident: &Incident) -> crate::telemetry::IncidentTrace {
    crate::telemetry::IncidentTrace::of_uid(incident.metadata.uid.as_deref().unwrap_or_default())
}

/// Sends the root span every span of the incident named as parent: from
/// its creation to now, with its outcome.
fn end_trace(incident: &Incident, status: &IncidentStatus) {
    let end = std::time::SystemTime::now();
    let start = incident
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| std::time::SystemTime::from(t.0))
        .unwrap_or(end);
    let root = crate::telemetry::RootSpan {
        name: format!("incident {}", incident.name_any()),
        start,
        end,
        attributes: vec![
            ("incident", incident.name_any()),
            ("namespace", incident.namespace().unwrap_or_default()),
            ("scenario", incident.spec.scenario.clone()),
            ("policy", incident.spec.policy_ref.name.clone()),
            ("phase", status.phase.to_string()),
            ("steps", status.steps.to_string()),
            ("reason", status.reason.clone().unwrap_or_default()),
        ],
        // The machine-readable reason, not the message: that quotes the
        // probe's answer or the model endpoint's error.
        failure: (status.phase == crate::crd::IncidentPhase::Failed)
            .then(|| status.reason.clone().unwrap_or_default()),
    };
    crate::telemetry::emit_root(&incident_trace(incident), root);
}

#[cfg(test)]
mod tests;
