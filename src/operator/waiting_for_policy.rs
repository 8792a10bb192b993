//! Which Incidents a Policy's arrival moves: those in its namespace that
//! name it and have not started. `kubectl apply -f examples/` sends the
//! Incidents before the Policies they name (the files sort that way); without
//! this, each waited for its periodic requeue instead of starting at once.

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use crate::crd::{Incident, IncidentPhase, Policy};

pub fn incidents_waiting_for<'a>(
    policy: &Policy,
    incidents: impl IntoIterator<Item = &'a Incident>,
) -> Vec<ObjectRef<Incident>> {
    let namespace = policy.namespace();
    let name = policy.name_any();
    incidents
        .into_iter()
        .filter(|incident| incident.namespace() == namespace)
        .filter(|incident| incident.spec.policy_ref.name == name)
        .filter(|incident| {
            incident
                .status
                .as_ref()
                .is_none_or(|status| status.phase == IncidentPhase::Pending)
        })
        .map(ObjectRef::from_obj)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::PolicySpec;
    use crate::operator::fixtures::policy_in;

    fn names(refs: Vec<ObjectRef<Incident>>) -> Vec<String> {
        refs.into_iter().map(|r| r.name).collect()
    }

    #[test]
    fn only_unstarted_incidents_of_that_policy_in_its_namespace_move() {
        let policy = policy_in("ns", "optimized", PolicySpec::default(), 1);
        let incidents = [
            Incident::test("stale_lockfile").named("ns", "new").build(),
            Incident::test("stale_lockfile")
                .named("ns", "waiting")
                .with_phase(IncidentPhase::Pending)
                .build(),
            Incident::test("stale_lockfile")
                .named("ns", "running")
                .with_phase(IncidentPhase::Remediating)
                .build(),
            Incident::test("stale_lockfile")
                .named("ns", "done")
                .with_phase(IncidentPhase::Resolved)
                .build(),
            Incident::test("stale_lockfile")
                .named("other", "elsewhere")
                .build(),
            Incident::test("stale_lockfile")
                .named("ns", "another-policy")
                .following("baseline")
                .build(),
        ];
        assert_eq!(
            names(incidents_waiting_for(&policy, &incidents)),
            ["new", "waiting"]
        );
    }
}
