//! The CRDs' own OpenAPI schemas, applied to manifests before anything
//! runs, so a local run refuses what the API server would (ranges, enums,
//! lengths, unknown fields as with `kubectl --validate=strict`). CEL rules
//! are the server's alone.

use std::sync::LazyLock;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

/// The CRD's openAPIV3Schema made strict: unknown fields are errors, not
/// silently pruned; `nullable` becomes a JSON Schema null type.
pub fn strict(crd: &CustomResourceDefinition) -> Value {
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .map(|s| serde_json::to_value(s).unwrap_or_default())
        .unwrap_or_default();
    let mut schema = schema;
    fn tighten(node: &mut Value) {
        match node {
            Value::Object(map) => {
                if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                    map.insert("additionalProperties".into(), Value::Bool(false));
                }
                if map.remove("nullable") == Some(Value::Bool(true))
                    && let Some(Value::String(t)) = map.get("type").cloned()
                {
                    map.insert("type".into(), serde_json::json!([t, "null"]));
                }
                map.values_mut().for_each(tighten);
            }
            Value::Array(items) => items.iter_mut().for_each(tighten),
            _ => {}
        }
    }
    tighten(&mut schema);
    // The API server itself handles apiVersion, kind and metadata.
    schema["properties"]["metadata"] = serde_json::json!({"type": "object"});
    schema["properties"]["apiVersion"] = serde_json::json!({"type": "string"});
    schema["properties"]["kind"] = serde_json::json!({"type": "string"});
    schema
}

static VALIDATORS: LazyLock<Option<(jsonschema::Validator, jsonschema::Validator)>> =
    LazyLock::new(|| {
        let incident = jsonschema::draft4::new(&strict(&super::incident_crd())).ok()?;
        let policy = jsonschema::draft4::new(&strict(&super::policy_crd())).ok()?;
        Some((incident, policy))
    });

/// Every way `document` breaks its kind's schema, each naming the field.
pub fn violations(kind: &str, document: &Value) -> Vec<String> {
    let Some((incident, policy)) = VALIDATORS.as_ref() else {
        return vec!["the CRD schemas do not compile (a bug)".into()];
    };
    let validator = match kind {
        "Incident" => incident,
        "Policy" => policy,
        other => return vec![format!("kind must be Incident or Policy, not `{other}`")],
    };
    validator
        .iter_errors(document)
        .map(|e| {
            let at = e.instance_path().to_string();
            let at = if at.is_empty() { "/".to_string() } else { at };
            format!("{at}: {e}")
        })
        .collect()
}
