//! The status subresource as the operator will use it: server-side apply
//! under one field manager, generation moved only by spec changes, and no
//! other writer silently taking the operator's status fields.

use kube::api::{Api, Patch, PatchParams};
use remediator::crd::{FIELD_MANAGER, Incident, IncidentPhase};
use serde_json::{Value, json};

use crate::control_plane::control_plane;

fn status_patch(phase: &str, steps: u32) -> Patch<Value> {
    Patch::Apply(json!({
        "apiVersion": "remediator.dev/v1alpha1", "kind": "Incident", "metadata": {"name": "inc"},
        "status": {"phase": phase, "steps": steps}
    }))
}

fn spec_patch(scenario: &str) -> Patch<Value> {
    Patch::Apply(json!({
        "apiVersion": "remediator.dev/v1alpha1", "kind": "Incident", "metadata": {"name": "inc"},
        "spec": {"scenario": scenario, "policyRef": {"name": "optimized"}}
    }))
}

#[tokio::test]
async fn status_is_the_operators_and_does_not_move_the_generation() {
    let Some(cp) = control_plane() else { return };
    let client = cp.client().await;
    let ns = cp.namespace(&client, "status").await;
    let incidents = Api::<Incident>::namespaced(client, &ns);
    let user = PatchParams::apply("kubectl-user");
    let operator = PatchParams::apply(FIELD_MANAGER);

    let created = incidents
        .patch("inc", &user, &spec_patch("stale_lockfile"))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));

    let written = incidents
        .patch_status("inc", &operator, &status_patch("Remediating", 2))
        .await
        .unwrap();
    assert_eq!(
        written.metadata.generation,
        Some(1),
        "a status write bumped the generation"
    );
    let status = written.status.unwrap();
    assert_eq!(
        (status.phase, status.steps),
        (IncidentPhase::Remediating, 2)
    );
    let managers: Vec<_> = written
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            (
                m.manager.unwrap_or_default(),
                m.subresource.unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        managers.contains(&(FIELD_MANAGER.to_string(), "status".to_string())),
        "{managers:?}"
    );

    // Status sent to the main resource is dropped, and does not count as a change.
    let ignored = incidents
        .patch(
            "inc",
            &PatchParams::apply("kubectl-user").force(),
            &Patch::Apply(json!({
                "apiVersion": "remediator.dev/v1alpha1", "kind": "Incident", "metadata": {"name": "inc"},
                "spec": {"scenario": "stale_lockfile", "policyRef": {"name": "optimized"}},
                "status": {"phase": "Failed"}
            })),
        )
        .await
        .unwrap();
    assert_eq!(ignored.metadata.generation, Some(1));
    assert_eq!(ignored.status.unwrap().phase, IncidentPhase::Remediating);

    let changed = incidents
        .patch("inc", &user, &spec_patch("port_mismatch"))
        .await
        .unwrap();
    assert_eq!(
        changed.metadata.generation,
        Some(2),
        "a spec change keeps the generation"
    );

    let conflict = incidents
        .patch_status(
            "inc",
            &PatchParams::apply("someone-else"),
            &status_patch("Failed", 2),
        )
        .await
        .expect_err("another manager cannot take the operator's status fields unforced");
    let kube::Error::Api(response) = conflict else {
        panic!("not an API error: {conflict}")
    };
    assert_eq!(
        (response.code, response.reason.as_str()),
        (409, "Conflict"),
        "{response:?}"
    );
    assert!(
        response
            .message
            .contains(&format!("conflict with \"{FIELD_MANAGER}\""))
            && response.message.contains(".status.phase"),
        "{}",
        response.message
    );
    let unchanged = incidents.get_status("inc").await.unwrap().status.unwrap();
    assert_eq!(unchanged.phase, IncidentPhase::Remediating);

    // The same write with force goes through: the refusal was about ownership.
    let forced = incidents
        .patch_status(
            "inc",
            &PatchParams::apply("someone-else").force(),
            &status_patch("Failed", 2),
        )
        .await
        .unwrap();
    assert_eq!(forced.status.unwrap().phase, IncidentPhase::Failed);
    assert_eq!(forced.metadata.generation, Some(2));
}
