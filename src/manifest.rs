//! Reads the manifests `kubectl apply` takes: an Incident, optionally with
//! its Policy, in one multi-document YAML file.

use std::path::Path;

use target_service::input::{MAX_INPUT_BYTES, read_bounded};

use crate::crd::{Incident, Policy};

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("{origin}: document {index} is not valid YAML: {message}")]
    Yaml {
        origin: String,
        index: usize,
        message: String,
    },
    #[error("{origin}: document {index} ({kind}): {message}")]
    Invalid {
        origin: String,
        index: usize,
        kind: String,
        message: String,
    },
    #[error("{origin}: {message}")]
    Content { origin: String, message: String },
}

#[derive(Debug, Default)]
pub struct Manifests {
    pub incidents: Vec<Incident>,
    pub policies: Vec<Policy>,
}

pub fn load(path: &Path) -> Result<Manifests, ManifestError> {
    let text = read_bounded(path, MAX_INPUT_BYTES).map_err(|error| ManifestError::Read {
        path: path.display().to_string(),
        error,
    })?;
    parse(&text, &path.display().to_string())
}

pub fn parse(text: &str, origin: &str) -> Result<Manifests, ManifestError> {
    use serde::Deserialize;
    target_service::input::check_yaml_nesting(text).map_err(|message| ManifestError::Content {
        origin: origin.to_string(),
        message,
    })?;
    let mut out = Manifests::default();
    for (i, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let index = i + 1;
        let value = serde_yaml::Value::deserialize(document).map_err(|e| ManifestError::Yaml {
            origin: origin.to_string(),
            index,
            message: e.to_string(),
        })?;
        if value.is_null() {
            continue;
        }
        let kind = value
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or("")
            .to_string();
        let api_version = value
            .get("apiVersion")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let invalid = |message: String| ManifestError::Invalid {
            origin: origin.to_string(),
            index,
            kind: if kind.is_empty() {
                "no kind".into()
            } else {
                kind.clone()
            },
            message,
        };
        if api_version != "remediator.dev/v1alpha1" {
            return Err(invalid(format!(
                "apiVersion must be remediator.dev/v1alpha1, not `{api_version}`"
            )));
        }
        let json = serde_json::to_value(&value).map_err(|e| invalid(e.to_string()))?;
        let problems = crate::crd::schema::violations(&kind, &json);
        if !problems.is_empty() {
            return Err(invalid(problems.join("; ")));
        }
        match kind.as_str() {
            "Incident" => out
                .incidents
                .push(serde_yaml::from_value(value).map_err(|e| invalid(e.to_string()))?),
            "Policy" => {
                let policy: Policy =
                    serde_yaml::from_value(value).map_err(|e| invalid(e.to_string()))?;
                let contradictions = policy.spec.contradictions();
                if !contradictions.is_empty() {
                    return Err(invalid(contradictions.join("; ")));
                }
                out.policies.push(policy);
            }
            other => {
                return Err(invalid(format!(
                    "kind must be Incident or Policy, not `{other}`"
                )));
            }
        }
    }
    if out.incidents.is_empty() && out.policies.is_empty() {
        return Err(ManifestError::Content {
            origin: origin.to_string(),
            message: "no Incident or Policy in it".into(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INCIDENT: &str = "apiVersion: remediator.dev/v1alpha1\nkind: Incident\nmetadata: {name: a}\nspec: {scenario: stale_lockfile, policyRef: {name: p}}\n";

    #[test]
    fn incident_and_policy_in_one_file() {
        let text = format!(
            "{INCIDENT}---\napiVersion: remediator.dev/v1alpha1\nkind: Policy\nmetadata: {{name: p}}\nspec: {{maxSteps: 5}}\n"
        );
        let m = parse(&text, "f.yaml").unwrap();
        assert_eq!(m.incidents[0].spec.scenario, "stale_lockfile");
        assert_eq!(m.policies[0].spec.max_steps, 5);
        assert_eq!(m.policies[0].spec.timeout_seconds, 300, "defaults apply");
    }

    #[test]
    fn the_crd_bounds_hold_locally_too() {
        for (spec, field) in [
            ("{verifyConsecutiveOk: 4294967295}", "verifyConsecutiveOk"),
            ("{maxSteps: 0}", "maxSteps"),
            ("{timeoutSeconds: -1}", "timeoutSeconds"),
            ("{maxRisk: EXTREME}", "maxRisk"),
            ("{typo: 1}", "typo"),
            (
                "{maxRisk: LOW, requireConfirmationFor: MEDIUM}",
                "requireConfirmationFor",
            ),
            ("{autoConfirm: true}", "autoConfirm"),
        ] {
            let policy = format!(
                "apiVersion: remediator.dev/v1alpha1\nkind: Policy\nmetadata: {{name: p}}\nspec: {spec}\n"
            );
            let err = parse(&policy, "f.yaml").unwrap_err().to_string();
            assert!(err.contains(field), "{spec}: {err}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
        let text = format!(
            "apiVersion: remediator.dev/v1alpha1\nkind: Policy\nmetadata: {{name: p}}\nspec: {{hint: {deep}}}\n"
        );
        assert!(parse(&text, "f.yaml").is_err());
    }

    #[test]
    fn bad_documents_name_the_problem() {
        let err = parse(
            "kind: Incident\napiVersion: remediator.dev/v1alpha1\nspec: [",
            "f.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("f.yaml: document 1 is not valid YAML"),
            "{err}"
        );
        let err = parse(
            &INCIDENT.replace("scenario: stale_lockfile, ", ""),
            "f.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("document 1 (Incident)") && err.contains("scenario"),
            "{err}"
        );
        let err = parse("apiVersion: v1\nkind: Pod\n", "f.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("apiVersion must be remediator.dev/v1alpha1"),
            "{err}"
        );
        let err = parse("", "f.yaml").unwrap_err().to_string();
        assert!(err.contains("no Incident or Policy"), "{err}");
        let policy = "apiVersion: remediator.dev/v1alpha1\nkind: Policy\nmetadata: {name: p}\nspec: {maxRisk: EXTREME}\n";
        let err = parse(policy, "f.yaml").unwrap_err().to_string();
        assert!(err.contains("EXTREME"), "{err}");
    }
}
