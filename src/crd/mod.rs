//! The custom resources: `Incident` (one broken service to fix) and
//! `Policy` (how the agent works), group `remediator.dev/v1alpha1`.

pub mod conditions;
pub mod derived;
mod incident;
mod policy;
pub mod schema;

pub use incident::*;
pub use policy::*;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde_json::Value;

pub const GROUP: &str = "remediator.dev";
pub const VERSION: &str = "v1alpha1";

/// The value of a `remediator.dev/approve` (or `reject`) annotation that
/// answers `step` for exactly the action whose hash is `action_hash`.
pub fn answer_value(step: u32, action_hash: &str) -> String {
    format!("{step}:{}", &action_hash[..action_hash.len().min(16)])
}

/// The server-side apply field manager of everything the operator writes,
/// status included: one name, so the API server can tell its fields apart.
pub const FIELD_MANAGER: &str = "remediator-operator";

/// The Incident CRD as `crds/` holds it. Use this rather than
/// `Incident::crd()`, whose integer formats the API server does not know.
pub fn incident_crd() -> CustomResourceDefinition {
    with_kubernetes_formats(Incident::crd())
}

/// The Policy CRD as `crds/` holds it (see [`incident_crd`]).
pub fn policy_crd() -> CustomResourceDefinition {
    with_kubernetes_formats(Policy::crd())
}

/// schemars names Rust's integer types (`uint16`, `uint32`, `uint64`); the
/// API server knows `int32` and `int64` only and warns about the rest. The
/// `minimum: 0` schemars also emits keeps the unsigned meaning.
fn with_kubernetes_formats(crd: CustomResourceDefinition) -> CustomResourceDefinition {
    fn rewrite(node: &mut Value) {
        match node {
            Value::Object(map) => {
                if let Some(Value::String(format)) = map.get_mut("format") {
                    match format.as_str() {
                        "int8" | "int16" | "uint8" | "uint16" => *format = "int32".into(),
                        "uint32" | "uint64" | "int" | "uint" => *format = "int64".into(),
                        _ => {}
                    }
                }
                map.values_mut().for_each(rewrite);
            }
            Value::Array(items) => items.iter_mut().for_each(rewrite),
            _ => {}
        }
    }
    let mut value = serde_json::to_value(crd).expect("a CRD serializes");
    rewrite(&mut value);
    serde_json::from_value(value).expect("renaming formats keeps a valid CRD")
}

/// Both CRDs as YAML, Incident first, separated by `---`: the output of
/// `remediator crd` and the content of `crds/`.
pub fn crds_yaml() -> Result<Vec<(&'static str, String)>, serde_yaml::Error> {
    Ok(vec![
        ("incident", serde_yaml::to_string(&incident_crd())?),
        ("policy", serde_yaml::to_string(&policy_crd())?),
    ])
}

/// The text `remediator crd` prints.
pub fn crds_document() -> Result<String, serde_yaml::Error> {
    Ok(crds_yaml()?
        .into_iter()
        .map(|(_, yaml)| yaml)
        .collect::<Vec<_>>()
        .join("---\n"))
}

/// Writes `incident.yaml` and `policy.yaml` into `dir` (how `crds/` is made).
pub fn write_crds(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, yaml) in crds_yaml()? {
        std::fs::write(dir.join(format!("{name}.yaml")), yaml)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
