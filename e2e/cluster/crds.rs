//! The generated CRDs install cleanly, become Established, and take the
//! examples a user applies first.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::api::Api;
use remediator::crd::Incident;
use serde_json::Value;

use crate::control_plane::{control_plane, path_str, repo};

fn condition(crd: &CustomResourceDefinition, kind: &str) -> Option<String> {
    crd.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| c.status.clone())
}

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

#[tokio::test]
async fn the_crds_install_without_warnings_and_become_established() {
    let Some(cp) = control_plane() else { return };
    let install = &cp.crd_install;
    assert!(
        install.stdout.contains(
            "customresourcedefinition.apiextensions.k8s.io/incidents.remediator.dev created"
        ),
        "{install}"
    );
    assert!(
        install.stdout.contains(
            "customresourcedefinition.apiextensions.k8s.io/policies.remediator.dev created"
        ),
        "{install}"
    );
    assert!(
        !install.stderr.contains("Warning"),
        "the API server warned:\n{install}"
    );

    let crds = Api::<CustomResourceDefinition>::all(cp.client().await);
    for name in ["incidents.remediator.dev", "policies.remediator.dev"] {
        let crd = crds.get(name).await.unwrap();
        assert_eq!(
            condition(&crd, "Established").as_deref(),
            Some("True"),
            "{name}"
        );
        assert_eq!(
            condition(&crd, "NamesAccepted").as_deref(),
            Some("True"),
            "{name}"
        );
        let mut seen = Vec::new();
        formats(&serde_json::to_value(&crd.spec).unwrap(), &mut seen);
        assert!(
            seen.iter().all(|f| !f.starts_with("uint")),
            "{name} stored formats {seen:?}"
        );
    }
}

/// The warning check above can fail: the schema straight from kube-derive,
/// as `crds/` held it before, makes the same server warn.
#[tokio::test]
async fn the_server_warns_about_the_formats_schemars_emits() {
    let Some(cp) = control_plane() else { return };
    let mut crd = Incident::crd();
    crd.metadata.name = Some("incidents.unconverted.remediator.dev".into());
    crd.spec.group = "unconverted.remediator.dev".into();
    let ran = cp
        .kubectl()
        .run(
            &["apply", "--dry-run=server", "-f", "-"],
            &serde_yaml::to_string(&crd).unwrap(),
        )
        .await;
    assert_eq!(ran.code, Some(0), "{ran}");
    assert!(
        ran.stderr.contains("Warning") && ran.stderr.contains("unrecognized format \"uint32\""),
        "{ran}"
    );
}

#[tokio::test]
async fn the_examples_apply_into_a_namespace_under_strict_validation() {
    let Some(cp) = control_plane() else { return };
    let client = cp.client().await;
    let ns = cp.namespace(&client, "examples").await;
    let examples = repo().join("examples");
    let ran = cp
        .kubectl()
        .run(
            &[
                "apply",
                "--validate=strict",
                "-n",
                &ns,
                "-f",
                path_str(&examples),
            ],
            "",
        )
        .await;
    assert_eq!(ran.code, Some(0), "{ran}");
    assert!(!ran.stderr.contains("Warning"), "{ran}");
    let created = |kind: &str| {
        ran.stdout
            .lines()
            .filter(|l| {
                l.starts_with(&format!("{kind}.remediator.dev/")) && l.ends_with(" created")
            })
            .count()
    };
    let files = std::fs::read_dir(&examples).unwrap().count();
    assert_eq!(created("incident") + created("policy"), files, "{ran}");
    assert!(created("incident") >= 4 && created("policy") >= 3, "{ran}");

    let listed = cp
        .kubectl()
        .run(&["get", "incidents,policies", "-n", &ns, "-o", "name"], "")
        .await;
    assert_eq!(listed.stdout.lines().count(), files, "{listed}");
}
