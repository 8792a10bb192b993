//! The last stages on the service: the controller's own probe decides,
//! the status is built from everything known, a failed incident is undone
//! when its Policy says so, and the service stops (its root kept when
//! asked).

use super::provision::Provisioned;
use super::{LocalIncident, now};
use crate::agent::driver::Driven;
use crate::crd::{AgentInfo, IncidentPhase, IncidentStatus, OnFailure, PolicySpec, UndoReport};
use crate::scenario::RunningService;
use crate::status::{self, Facts};
use crate::verify;
use crate::workspace::journal::{JournalError, Restored};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

pub(super) async fn verify_and_conclude(
    provisioned: &Provisioned,
    driven: &Driven,
    verify_path: &str,
    spec: &PolicySpec,
    started_at: Time,
    agent: AgentInfo,
) -> IncidentStatus {
    let address = provisioned.service.address;
    let verification = verify::probe(address, verify_path, spec.verify_consecutive_ok).await;
    let mut facts = Facts {
        generation: None,
        now: now(),
        started_at,
        fault: Some(&provisioned.fault),
        episode: Some(&driven.episode),
        records: &driven.records,
        verification: Some(&verification),
        failure: None,
        agent,
        containment: Some(&provisioned.containment),
        undone: None,
    };
    let status = status::build(&IncidentStatus::default(), &facts);
    if status.phase != IncidentPhase::Failed || spec.on_failure != OnFailure::Undo {
        return status;
    }
    let undone = undo_report(provisioned.workspace.undo(0).await);
    facts.undone = Some(&undone);
    status::build(&IncidentStatus::default(), &facts)
}

/// Stops the service; with `keep`, keeps its scratch directory with the
/// final status beside it, and says where.
pub(super) async fn stop(
    incident: &LocalIncident,
    service: RunningService,
    status: &IncidentStatus,
) -> Option<std::path::PathBuf> {
    if !incident.keep {
        service.stop().await;
        return None;
    }
    let kept = service.stop_and_keep(&incident.name).await;
    kept.ok().inspect(|dir| {
        let object = serde_json::json!({"name": incident.name, "scenario": incident.scenario, "status": status});
        let _ = std::fs::write(dir.join("incident.json"), object.to_string());
    })
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
