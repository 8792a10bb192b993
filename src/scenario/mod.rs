//! The scenario catalog (`training_data/scenarios.yaml`) and starting a
//! scenario's broken service on this machine, each in its own scratch root
//! and on its own leased port.

mod launch;
mod ports;

pub use launch::{Launch, LaunchError, RunningService};
pub use ports::PortLease;
pub use target_service::supervisor::ChildProgram;
pub use target_service::{Catalog, CatalogError, Scenario, Split};

use std::collections::BTreeMap;
use std::path::Path;

use crate::action::Action;

/// The catalog at `path`, or the one built in; either way every oracle fix
/// is checked to be in the agent's action vocabulary.
pub fn load_catalog(path: Option<&Path>) -> Result<Catalog, CatalogError> {
    let catalog = match path {
        Some(path) => Catalog::load(path)?,
        None => Catalog::builtin(),
    };
    let origin = path.map_or("(built-in)".to_string(), |p| p.display().to_string());
    for scenario in &catalog.scenarios {
        oracle_fix(scenario, 1).map_err(|message| CatalogError::Invalid {
            origin: origin.clone(),
            message,
        })?;
    }
    Ok(catalog)
}

/// The scenario's minimal known fix for a service expected on `port`.
pub fn oracle_fix(scenario: &Scenario, port: u16) -> Result<Vec<Action>, String> {
    scenario
        .fix
        .iter()
        .map(|step| {
            let action: Action = serde_yaml::with::singleton_map::deserialize(step.clone())
                .map_err(|e| format!("scenario `{}`: fix step {step:?}: {e}", scenario.id))?;
            let render = |text: &str| target_service::catalog::render(text, port);
            Ok(match action {
                Action::Exec(command) => Action::Exec(render(&command)?),
                Action::WriteFile { path, content } => Action::WriteFile {
                    path,
                    content: render(&content)?,
                },
                other => other,
            })
        })
        .collect()
}

/// The shortest honest episode of a scenario: its oracle fix plus a look
/// before and a check after (2 when the fix cannot be rendered).
pub fn shortest_honest(scenario: &Scenario) -> usize {
    oracle_fix(scenario, 1).map_or(0, |fix| fix.len()) + 2
}

/// [`shortest_honest`] of every scenario in the catalog, by id.
pub fn shortest_honest_by_id(catalog: &Catalog) -> BTreeMap<String, usize> {
    catalog
        .scenarios
        .iter()
        .map(|s| (s.id.clone(), shortest_honest(s)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_fix_is_in_the_action_vocabulary() {
        let catalog = load_catalog(None).unwrap();
        let fix = oracle_fix(catalog.get("port_mismatch").unwrap(), 9000).unwrap();
        assert_eq!(
            fix,
            vec![
                Action::Exec("sed -i 's/^port = .*/port = 9000/' service.conf".into()),
                Action::RestartService
            ]
        );
    }

    #[test]
    fn a_fix_outside_the_vocabulary_is_refused_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(
            &path,
            "base: []\nscenarios:\n  - id: a\n    split: train\n    symptom: s\n    fix: [{format_disk: yes}]\n",
        )
        .unwrap();
        let err = load_catalog(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("format_disk"), "{err}");
    }
}
