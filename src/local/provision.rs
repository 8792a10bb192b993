//! The first stage: the scenario's broken service started in its own
//! scratch root, the fault checked to be there, and what the agent acts
//! through set up: the task it is told, the gate, and the workspace in the
//! kernel sandbox with its redactor and its guard (a baseline snapshot).

use std::sync::Arc;

use super::{Environment, LocalIncident};
use crate::crd::conditions::REASON_PROVISIONING_FAILED;
use crate::protocol::Task;
use crate::redact::Redactor;
use crate::risk::{Classifier, Gate, GatePolicy};
use crate::sandbox::Containment;
use crate::scenario::{RunningService, Scenario};
use crate::status::{Failure, FaultObservation};
use crate::verify;
use crate::workspace::journal::Journal;
use crate::workspace::{Guard, Local, LocalService};

/// Why provisioning failed, and the symptom as far as it was rendered
/// (with the service's port once it had one), for the record.
pub(super) struct NotProvisioned {
    pub failure: Failure,
    pub symptom: String,
}

/// A running incident, ready for its agent.
pub(super) struct Provisioned {
    pub service: RunningService,
    pub task: Task,
    /// Whether the fault was there before the agent started.
    pub fault: FaultObservation,
    pub gate: Gate,
    pub workspace: Local,
    pub containment: Containment,
}

#[tracing::instrument(name = "provision", skip_all, fields(scenario = %scenario.id))]
pub(super) async fn provision(
    incident: &LocalIncident,
    env: &Environment,
    scenario: &Scenario,
) -> Result<Provisioned, NotProvisioned> {
    let spec = &incident.policy.spec;
    let service = env
        .launch
        .start(&env.catalog, &scenario.id)
        .await
        .map_err(|e| NotProvisioned {
            failure: provisioning_failed(e.to_string()),
            symptom: scenario.symptom.clone(),
        })?;
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
    let workspace = Local::new(
        LocalService {
            root: service.root.clone(),
            address,
        },
        env.sandbox.clone(),
    )
    .with_redactor(redactor);
    let workspace = match guarded(workspace, &service, scenario, spec.max_snapshot_bytes).await {
        Ok(workspace) => workspace,
        Err(failure) => {
            service.stop().await;
            return Err(NotProvisioned {
                failure,
                symptom: task.symptom,
            });
        }
    };
    Ok(Provisioned {
        service,
        task,
        fault,
        gate,
        workspace,
        containment,
    })
}

/// The workspace with its guard: a journal in the scratch directory and a
/// baseline snapshot of the root, so every step can be undone.
async fn guarded(
    workspace: Local,
    service: &RunningService,
    scenario: &Scenario,
    max_snapshot_bytes: u64,
) -> Result<Local, Failure> {
    let Some(dir) = service.scratch() else {
        return Ok(workspace);
    };
    let journal = Journal::open(&dir.join("journal"), &service.root, max_snapshot_bytes)
        .map_err(|e| provisioning_failed(format!("cannot open the journal: {e}")))?;
    let guard = Guard::new(journal, scenario.verify.path.clone());
    guard
        .baseline()
        .await
        .map_err(|e| provisioning_failed(format!("cannot snapshot the root: {e}")))?;
    Ok(workspace.with_guard(guard))
}

fn provisioning_failed(message: String) -> Failure {
    Failure {
        reason: REASON_PROVISIONING_FAILED,
        message,
    }
}
