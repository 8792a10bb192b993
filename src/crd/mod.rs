//! The custom resources: `Incident` (one broken service to fix) and
//! `Policy` (how the agent works), group `remediator.dev/v1alpha1`.

pub mod conditions;
mod incident;
mod policy;
pub mod schema;

pub use incident::*;
pub use policy::*;

use kube::CustomResourceExt;

pub const GROUP: &str = "remediator.dev";
pub const VERSION: &str = "v1alpha1";

/// Both CRDs as YAML, Incident first, separated by `---`: the output of
/// `remediator crd` and the content of `crds/`.
pub fn crds_yaml() -> Result<Vec<(&'static str, String)>, serde_yaml::Error> {
    Ok(vec![
        ("incident", serde_yaml::to_string(&Incident::crd())?),
        ("policy", serde_yaml::to_string(&Policy::crd())?),
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
