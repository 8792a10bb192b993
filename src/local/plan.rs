//! The incidents a local run plans: every Incident in manifests that
//! `kubectl apply` takes, each with the Policy it names (from the same file,
//! or a built-in one), or one scenario under a named policy.

use crate::manifest::Manifests;
use crate::policy::{self, Overrides, Paths, PolicyError};

use super::LocalIncident;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{0} has no Incident to run")]
    NoIncident(String),
    #[error(
        "Incident {incident} refers to Policy `{policy}`, which is not in {origin}; add it to the file or name baseline/optimized"
    )]
    UnknownPolicy {
        incident: String,
        policy: String,
        origin: String,
    },
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

/// Every Incident in `manifests` (read from `origin`) with its Policy.
pub fn from_manifests(
    manifests: Manifests,
    origin: &str,
    overrides: &Overrides,
    paths: &Paths,
) -> Result<Vec<LocalIncident>, PlanError> {
    if manifests.incidents.is_empty() {
        return Err(PlanError::NoIncident(origin.to_string()));
    }
    let mut planned = Vec::new();
    for incident in manifests.incidents {
        let name = incident
            .metadata
            .name
            .clone()
            .unwrap_or_else(|| name_for(&incident.spec.scenario));
        let wanted = &incident.spec.policy_ref.name;
        let named = manifests
            .policies
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(wanted));
        let policy = match named {
            Some(found) => policy::from_spec(wanted, &found.spec, overrides, paths)?,
            None if wanted == "baseline" || wanted == "optimized" => {
                policy::resolve(wanted, overrides, paths)?
            }
            None => {
                return Err(PlanError::UnknownPolicy {
                    incident: name,
                    policy: wanted.clone(),
                    origin: origin.to_string(),
                });
            }
        };
        planned.push(LocalIncident {
            name,
            scenario: incident.spec.scenario,
            policy,
            classifier_off: false,
            keep: false,
        });
    }
    Ok(planned)
}

/// One incident of `scenario` under `policy` (a built-in name or a file).
pub fn one(
    scenario: &str,
    policy: &str,
    overrides: &Overrides,
    paths: &Paths,
) -> Result<LocalIncident, PlanError> {
    Ok(LocalIncident {
        name: name_for(scenario),
        scenario: scenario.to_string(),
        policy: policy::resolve(policy, overrides, paths)?,
        classifier_off: false,
        keep: false,
    })
}

/// An incident's name from its scenario's: `stale_lockfile` becomes
/// `stale-lockfile`, a valid object name.
pub fn name_for(scenario: &str) -> String {
    scenario.replace('_', "-")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest;

    fn plan(yaml: &str) -> Result<Vec<LocalIncident>, PlanError> {
        let dir = tempfile::tempdir().unwrap();
        let manifests = manifest::parse(yaml, "f.yaml").unwrap();
        from_manifests(
            manifests,
            "f.yaml",
            &Overrides::default(),
            &Paths::under(dir.path()),
        )
    }

    const INCIDENT: &str = "apiVersion: remediator.dev/v1alpha1\nkind: Incident\n\
        metadata: {name: checkout}\nspec: {scenario: stale_lockfile, policyRef: {name: POLICY}}\n";

    #[test]
    fn each_incident_gets_the_policy_it_names() {
        let planned = plan(&INCIDENT.replace("POLICY", "baseline")).unwrap();
        assert_eq!(planned.len(), 1);
        assert_eq!(
            (planned[0].name.as_str(), planned[0].scenario.as_str()),
            ("checkout", "stale_lockfile")
        );
        assert_eq!(planned[0].policy.name, "baseline");
    }

    #[test]
    fn a_policy_not_in_the_file_nor_built_in_is_named_in_the_error() {
        let error = plan(&INCIDENT.replace("POLICY", "careful")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "Incident checkout refers to Policy `careful`, which is not in f.yaml; add it to the file or name baseline/optimized"
        );
    }

    #[test]
    fn names_come_from_scenarios_when_missing() {
        assert_eq!(name_for("stale_lockfile"), "stale-lockfile");
    }
}
