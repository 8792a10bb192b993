//! The scenario catalog: which faults exist, how each is set up, what the
//! service checks, what an agent is told, and the minimal known fix.
//!
//! Scenarios are data (`training_data/scenarios.yaml`); a scenario of an
//! existing kind needs no Rust change. Strings may use `{port}` (the port
//! health probes expect) and `{port+N}`.

use std::collections::HashSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The catalog shipped with the project, compiled in so the service binary
/// works on its own; `--catalog FILE` replaces it at run time.
pub const BUILTIN_CATALOG: &str = include_str!("../../training_data/scenarios.yaml");

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("cannot read scenario catalog {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("scenario catalog {origin} is malformed: {message}")]
    Malformed { origin: String, message: String },
    #[error("scenario catalog {origin}: {message}")]
    Invalid { origin: String, message: String },
    #[error("unknown scenario `{id}`; known scenarios: {known}")]
    UnknownScenario { id: String, known: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Files every service root starts with, before the scenario's fault.
    pub base: Vec<SetupStep>,
    pub scenarios: Vec<Scenario>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub id: String,
    pub split: Split,
    /// What an agent is told: the symptom, never the cause.
    pub symptom: String,
    /// Steps that put the fault in place on top of the base layout.
    #[serde(default)]
    pub setup: Vec<SetupStep>,
    /// Conditions the running service checks, in order; the first that
    /// fails decides the answer.
    #[serde(default)]
    pub checks: Vec<HealthCheck>,
    /// The minimal known remediation (the oracle), written in the agent's
    /// action vocabulary. The service never runs it, so it stays opaque
    /// here; remediator parses and validates it.
    pub fix: Vec<serde_yaml::Value>,
    #[serde(default)]
    pub verify: Verify,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    Train,
    Validation,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SetupStep {
    /// Create or replace a file (parent directories are created).
    WriteFile {
        path: String,
        content: String,
    },
    /// Append one line to a file.
    AppendLine {
        path: String,
        line: String,
    },
    RemoveFile(String),
    /// Set `key = value` in service.conf, replacing an existing line.
    SetConfig {
        key: String,
        value: String,
    },
    /// Set `NAME=value` in service.env.
    SetEnv {
        name: String,
        value: String,
    },
    /// Remove a variable from service.env.
    UnsetEnv(String),
    /// Create a directory with an octal mode such as "0755".
    Mkdir {
        path: String,
        mode: String,
    },
    Chmod {
        path: String,
        mode: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    pub require: Condition,
    /// `startup`: a failing check stops the service from starting (it
    /// crash-loops until fixed and restarted); `request`: checked on every
    /// request, the service answers 500.
    #[serde(default)]
    pub at: CheckTime,
    pub reason: String,
    /// Where the reason shows: in the HTTP body (and the log), or only in
    /// the log, the body saying just "internal error".
    #[serde(default)]
    pub visible_in: Visibility,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    FileAbsent(String),
    FilePresent(String),
    /// The variable is set and non-empty in the service's environment.
    EnvSet(String),
    /// service.conf, as read at start, has `key = value`.
    ConfigEquals {
        key: String,
        value: String,
    },
    /// The directory exists, has its owner write bit and accepts a file.
    DirWritable(String),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckTime {
    Startup,
    #[default]
    Request,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    #[default]
    Body,
    Log,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verify {
    #[serde(default = "Verify::default_path")]
    pub path: String,
}

impl Verify {
    fn default_path() -> String {
        "/health".to_string()
    }
}

impl Default for Verify {
    fn default() -> Self {
        Self {
            path: Self::default_path(),
        }
    }
}

impl Catalog {
    /// The ids of the scenarios in `split` (all of them for None), in
    /// catalog order.
    pub fn ids_in(&self, split: Option<Split>) -> Vec<String> {
        self.scenarios
            .iter()
            .filter(|s| split.is_none_or(|split| s.split == split))
            .map(|s| s.id.clone())
            .collect()
    }

    pub fn builtin() -> Self {
        Self::parse(BUILTIN_CATALOG, "(built-in)").expect("the built-in catalog is tested")
    }

    pub fn load(path: &Path) -> Result<Self, CatalogError> {
        let text =
            crate::input::read_bounded(path, crate::input::MAX_INPUT_BYTES).map_err(|error| {
                CatalogError::Read {
                    path: path.display().to_string(),
                    error,
                }
            })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and validates a catalog; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, CatalogError> {
        crate::input::check_yaml_nesting(text).map_err(|message| CatalogError::Malformed {
            origin: origin.to_string(),
            message,
        })?;
        // Enum values are written as one-key maps (`- exec: ls`), not tags.
        let catalog: Catalog = serde_yaml::with::singleton_map_recursive::deserialize(
            serde_yaml::Deserializer::from_str(text),
        )
        .map_err(|e| CatalogError::Malformed {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        catalog
            .validate()
            .map_err(|message| CatalogError::Invalid {
                origin: origin.to_string(),
                message,
            })?;
        Ok(catalog)
    }

    fn validate(&self) -> Result<(), String> {
        if self.scenarios.is_empty() {
            return Err("it declares no scenarios".into());
        }
        let mut seen = HashSet::new();
        for scenario in &self.scenarios {
            let id = &scenario.id;
            if id.is_empty()
                || !id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                return Err(format!(
                    "scenario id `{id}` must be lowercase letters, digits and `_`"
                ));
            }
            if !seen.insert(id.as_str()) {
                return Err(format!("scenario id `{id}` appears twice"));
            }
            if scenario.symptom.trim().is_empty() {
                return Err(format!("scenario `{id}`: symptom is empty"));
            }
            if scenario.fix.is_empty() {
                return Err(format!("scenario `{id}`: fix is empty"));
            }
            if !scenario.verify.path.starts_with('/') {
                return Err(format!("scenario `{id}`: verify.path must start with `/`"));
            }
            let steps = self.base.iter().chain(&scenario.setup);
            for step in steps {
                if let SetupStep::Mkdir { mode, .. } | SetupStep::Chmod { mode, .. } = step {
                    parse_mode(mode).map_err(|e| format!("scenario `{id}`: {e}"))?;
                }
            }
            for text in scenario.templated_strings() {
                render(text, 1).map_err(|e| format!("scenario `{id}`: {e}"))?;
            }
        }
        Ok(())
    }

    pub fn get(&self, id: &str) -> Result<&Scenario, CatalogError> {
        self.scenarios
            .iter()
            .find(|s| s.id == id)
            .ok_or_else(|| CatalogError::UnknownScenario {
                id: id.to_string(),
                known: self.ids().join(", "),
            })
    }

    pub fn ids(&self) -> Vec<&str> {
        self.scenarios.iter().map(|s| s.id.as_str()).collect()
    }
}

impl Scenario {
    fn templated_strings(&self) -> Vec<&str> {
        let mut out = vec![self.symptom.as_str()];
        for step in &self.setup {
            match step {
                SetupStep::WriteFile { content, .. } => out.push(content),
                SetupStep::AppendLine { line, .. } => out.push(line),
                SetupStep::SetConfig { value, .. } | SetupStep::SetEnv { value, .. } => {
                    out.push(value)
                }
                _ => {}
            }
        }
        for step in &self.fix {
            collect_strings(step, &mut out);
        }
        out
    }

    /// The symptom an agent is given, with the expected port filled in.
    pub fn symptom_for(&self, port: u16) -> String {
        render(&self.symptom, port).unwrap_or_else(|_| self.symptom.clone())
    }
}

fn collect_strings<'a>(value: &'a serde_yaml::Value, out: &mut Vec<&'a str>) {
    match value {
        serde_yaml::Value::String(text) => out.push(text),
        serde_yaml::Value::Sequence(items) => items.iter().for_each(|v| collect_strings(v, out)),
        serde_yaml::Value::Mapping(map) => map.values().for_each(|v| collect_strings(v, out)),
        serde_yaml::Value::Tagged(tagged) => collect_strings(&tagged.value, out),
        _ => {}
    }
}

/// Replaces `{port}` and `{port+N}` with the expected port (plus N).
pub fn render(template: &str, port: u16) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{port") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed placeholder in `{template}`"))?;
        let inner = &after[..end];
        let offset: u16 = match inner.strip_prefix("port") {
            Some("") => 0,
            Some(tail) => tail
                .strip_prefix('+')
                .and_then(|n| n.trim().parse().ok())
                .ok_or_else(|| format!("bad placeholder `{{{inner}}}` in `{template}`"))?,
            None => unreachable!("found `{{port` above"),
        };
        let value = port
            .checked_add(offset)
            .ok_or_else(|| format!("`{{{inner}}}` overflows port {port}"))?;
        out.push_str(&value.to_string());
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

pub fn parse_mode(mode: &str) -> Result<u32, String> {
    u32::from_str_radix(mode.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("`{mode}` is not an octal file mode such as \"0755\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalog_is_valid_and_has_the_seed_scenarios() {
        let catalog = Catalog::builtin();
        for id in [
            "stale_lockfile",
            "bad_env_config",
            "readiness_probe_fail",
            "port_mismatch",
        ] {
            assert!(catalog.get(id).is_ok(), "{id} missing");
        }
        assert!(catalog.scenarios.len() >= 8);
        assert!(
            catalog
                .scenarios
                .iter()
                .any(|s| s.checks.iter().any(|c| c.visible_in == Visibility::Log))
        );
    }

    #[test]
    fn render_fills_ports_and_rejects_bad_placeholders() {
        assert_eq!(
            render("p={port} q={port+1}", 8000).unwrap(),
            "p=8000 q=8001"
        );
        assert_eq!(render("no placeholders", 1).unwrap(), "no placeholders");
        assert!(render("{port-1}", 1).is_err());
        assert!(render("{port", 1).is_err());
        assert!(render("{port+1}", u16::MAX).is_err());
    }

    #[test]
    fn unknown_scenario_names_the_known_ones() {
        let err = Catalog::builtin().get("nope").unwrap_err().to_string();
        assert!(err.contains("unknown scenario `nope`"), "{err}");
        assert!(err.contains("stale_lockfile"), "{err}");
    }

    #[test]
    fn malformed_yaml_is_a_clear_error() {
        let err = Catalog::parse("scenarios: [ {id: x", "bad.yaml").unwrap_err();
        assert!(matches!(err, CatalogError::Malformed { .. }));
        assert!(err.to_string().contains("bad.yaml is malformed"), "{err}");
    }

    #[test]
    fn unknown_fields_and_duplicates_are_rejected() {
        let one = "  - id: a\n    split: train\n    symptom: s\n    fix: [restart_service]\n";
        let dup = format!("base: []\nscenarios:\n{one}{one}");
        let err = Catalog::parse(&dup, "x").unwrap_err().to_string();
        assert!(err.contains("appears twice"), "{err}");
        let typo =
            "base: []\nscenarios:\n  - id: a\n    split: train\n    symptom: s\n    fixx: []\n";
        let err = Catalog::parse(typo, "x").unwrap_err().to_string();
        assert!(err.contains("fixx"), "{err}");
    }

    #[test]
    fn bad_modes_and_placeholders_are_rejected_at_load() {
        let bad_mode = "base: []\nscenarios:\n  - id: a\n    split: train\n    symptom: s\n    setup: [{chmod: {path: d, mode: '0999'}}]\n    fix: [restart_service]\n";
        let err = Catalog::parse(bad_mode, "x").unwrap_err().to_string();
        assert!(err.contains("octal"), "{err}");
        let bad_tpl = "base: []\nscenarios:\n  - id: a\n    split: train\n    symptom: 'port {port-2}'\n    fix: [restart_service]\n";
        assert!(Catalog::parse(bad_tpl, "x").is_err());
    }
}
