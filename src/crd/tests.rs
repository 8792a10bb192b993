use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::*;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn committed_crds_are_current() {
    for (name, yaml) in crds_yaml().unwrap() {
        let path = repo().join("crds").join(format!("{name}.yaml"));
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == yaml,
            "{} is stale: run `cargo run -- crd --out-dir crds`",
            path.display()
        );
    }
}

/// Helm installs the CRDs from the chart's own `crds/`, which must be
/// the generated ones too.
#[test]
fn the_charts_crds_are_the_generated_ones() {
    for (name, yaml) in crds_yaml().unwrap() {
        let path = repo()
            .join("charts/remediator/crds")
            .join(format!("{name}.yaml"));
        let copy = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            copy == yaml,
            "{} differs from crds/{name}.yaml: run `cargo run -- crd --out-dir charts/remediator/crds`",
            path.display()
        );
    }
}

#[test]
fn crd_document_is_incident_then_policy() {
    let doc = crds_document().unwrap();
    let parts: Vec<&str> = doc.split("---\n").collect();
    assert_eq!(parts.len(), 2);
    assert!(parts[0].contains("name: incidents.remediator.dev"));
    assert!(parts[1].contains("name: policies.remediator.dev"));
}

fn strict_schema(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Value {
    schema::strict(crd)
}

/// Validates every document of a manifest file; returns the kinds seen.
fn validate_manifest(path: &Path) -> Result<Vec<String>, String> {
    let incident = strict_schema(&incident_crd());
    let policy = strict_schema(&policy_crd());
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let mut kinds = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value = Value::deserialize(doc).map_err(|e| e.to_string())?;
        if value["apiVersion"] != "remediator.dev/v1alpha1" {
            return Err(format!("apiVersion is {}", value["apiVersion"]));
        }
        let schema = match value["kind"].as_str() {
            Some("Incident") => &incident,
            Some("Policy") => &policy,
            other => return Err(format!("unexpected kind {other:?}")),
        };
        let validator = jsonschema::draft4::new(schema).map_err(|e| e.to_string())?;
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        if !errors.is_empty() {
            return Err(errors.join("; "));
        }
        kinds.push(value["kind"].as_str().unwrap_or_default().to_string());
    }
    Ok(kinds)
}

#[test]
fn examples_validate_against_the_generated_schemas() {
    let mut kinds = Vec::new();
    for entry in std::fs::read_dir(repo().join("examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let seen = validate_manifest(&path)
                .unwrap_or_else(|e| panic!("{} does not match the CRD: {e}", path.display()));
            kinds.extend(seen);
        }
    }
    let count = |kind: &str| kinds.iter().filter(|k| *k == kind).count();
    assert!(count("Incident") >= 4, "{kinds:?}");
    assert!(count("Policy") >= 2, "{kinds:?}");
}

#[test]
fn the_strict_schema_rejects_unknown_fields_and_bad_enums() {
    let dir = tempfile::tempdir().unwrap();
    let bad = [
        "apiVersion: remediator.dev/v1alpha1\nkind: Policy\nmetadata: {name: p}\nspec: {maxRisk: EXTREME}\n",
        "apiVersion: remediator.dev/v1alpha1\nkind: Policy\nmetadata: {name: p}\nspec: {maxSteps: 0}\n",
        "apiVersion: remediator.dev/v1alpha1\nkind: Incident\nmetadata: {name: i}\nspec: {scenario: x, policyRef: {name: p}, typo: 1}\n",
        "apiVersion: remediator.dev/v1alpha1\nkind: Incident\nmetadata: {name: i}\nspec: {scenario: x}\n",
        "apiVersion: remediator.dev/v1alpha1\nkind: Incident\nmetadata: {name: i}\nspec: {scenario: Stale-Lockfile, policyRef: {name: p}}\n",
    ];
    for text in bad {
        let path = dir.path().join("bad.yaml");
        std::fs::write(&path, text).unwrap();
        assert!(validate_manifest(&path).is_err(), "accepted: {text}");
    }
}

#[test]
fn the_optimized_example_follows_the_manual_hint() {
    let manifests = crate::manifest::load(&repo().join("examples/policy-optimized.yaml")).unwrap();
    assert_eq!(
        manifests.policies[0].spec.hint.as_deref(),
        Some(crate::agent::hint::MANUAL_HINT.trim())
    );
}

#[test]
fn integer_formats_are_ones_the_api_server_knows() {
    fn formats(node: &Value, out: &mut Vec<String>) {
        match node {
            Value::Object(map) => {
                if let Some(Value::String(format)) = map.get("format") {
                    out.push(format.clone());
                }
                map.values().for_each(|v| formats(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| formats(v, out)),
            _ => {}
        }
    }
    for crd in [incident_crd(), policy_crd()] {
        let mut seen = Vec::new();
        formats(&serde_json::to_value(&crd).unwrap(), &mut seen);
        assert!(seen.iter().any(|f| f == "int64"), "{seen:?}");
        let unknown: Vec<_> = seen
            .iter()
            .filter(|f| !["int32", "int64", "double", "date-time"].contains(&f.as_str()))
            .collect();
        assert!(
            unknown.is_empty(),
            "{}: {unknown:?}",
            crd.metadata.name.unwrap()
        );
    }
}

#[test]
fn status_actions_are_bounded_by_the_constant_the_operator_uses() {
    let crd = serde_json::to_value(incident_crd()).unwrap();
    let actions = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
        ["properties"]["actions"];
    assert_eq!(actions["maxItems"], MAX_STATUS_ACTIONS);
}

#[test]
fn the_settings_fingerprint_ignores_the_hint_and_follows_everything_else() {
    let base = PolicySpec::default();
    let fingerprint = base.settings_fingerprint();
    let hinted = PolicySpec {
        hint: Some("check the port".into()),
        hint_version: Some("gepa-1".into()),
        skill: Some("skills/x/SKILL.md".into()),
        follow_optimizer: true,
        ..base.clone()
    };
    assert_eq!(hinted.settings_fingerprint(), fingerprint);
    let fewer_steps = PolicySpec {
        max_steps: base.max_steps + 1,
        ..base.clone()
    };
    assert_ne!(fewer_steps.settings_fingerprint(), fingerprint);
    let model = |name: &str| PolicySpec {
        brain: BrainKind::Llm,
        llm: Some(LlmSpec {
            model: name.into(),
            ..LlmSpec::default()
        }),
        ..base.clone()
    };
    assert_ne!(
        model("qwen-1.5b").settings_fingerprint(),
        model("qwen-0.5b").settings_fingerprint()
    );
    assert_eq!(fingerprint.len(), 16);
}
