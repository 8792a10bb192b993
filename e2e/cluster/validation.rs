//! The API server itself refuses invalid Incidents and Policies, with a
//! message that names the field, both to kubectl and to our own client;
//! settings close to the refused ones are accepted.

use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use remediator::crd::{FIELD_MANAGER, Incident, MAX_STATUS_ACTIONS};
use serde_json::{Value, json};

use crate::control_plane::control_plane;

fn policy(spec: Value) -> Value {
    json!({"apiVersion": "remediator.dev/v1alpha1", "kind": "Policy",
           "metadata": {"name": "p"}, "spec": spec})
}

fn incident(spec: Value) -> Value {
    json!({"apiVersion": "remediator.dev/v1alpha1", "kind": "Incident",
           "metadata": {"name": "i"}, "spec": spec})
}

/// (what is wrong, manifest, what the server's message must contain)
fn refused() -> Vec<(&'static str, Value, &'static str)> {
    let ok = |scenario: &str| json!({"scenario": scenario, "policyRef": {"name": "p"}});
    vec![
        (
            "unknown brain",
            policy(json!({"brain": "gpt"})),
            r#"spec.brain: Unsupported value: "gpt""#,
        ),
        (
            "unknown risk",
            policy(json!({"maxRisk": "EXTREME"})),
            r#"spec.maxRisk: Unsupported value: "EXTREME""#,
        ),
        (
            "unknown confirmation risk",
            policy(json!({"requireConfirmationFor": "UNKNOWN"})),
            r#"spec.requireConfirmationFor: Unsupported value: "UNKNOWN""#,
        ),
        (
            "zero steps",
            policy(json!({"maxSteps": 0})),
            "spec.maxSteps: Invalid value: 0: spec.maxSteps in body should be greater than or equal to 1",
        ),
        (
            "negative steps",
            policy(json!({"maxSteps": -3})),
            "spec.maxSteps: Invalid value: -3",
        ),
        (
            "zero timeout",
            policy(json!({"timeoutSeconds": 0})),
            "spec.timeoutSeconds: Invalid value: 0",
        ),
        (
            "zero healthy answers",
            policy(json!({"verifyConsecutiveOk": 0})),
            "spec.verifyConsecutiveOk: Invalid value: 0",
        ),
        (
            "too few LLM tokens",
            policy(json!({"brain": "llm", "llm": {"maxTokens": 1}})),
            "spec.llm.maxTokens: Invalid value: 1",
        ),
        (
            "secret without key",
            policy(json!({"llm": {"apiKeySecretRef": {"name": "openai"}}})),
            "spec.llm.apiKeySecretRef.key: Required value",
        ),
        (
            "unknown policy field",
            policy(json!({"maxStep": 5})),
            r#"unknown field "spec.maxStep""#,
        ),
        (
            "confirmation above maxRisk",
            policy(json!({"maxRisk": "LOW", "requireConfirmationFor": "MEDIUM"})),
            "spec.requireConfirmationFor: Invalid value: requireConfirmationFor must not be above maxRisk",
        ),
        (
            "confirmation above the default maxRisk",
            policy(json!({"requireConfirmationFor": "HIGH"})),
            "spec.requireConfirmationFor: Invalid value: requireConfirmationFor must not be above maxRisk",
        ),
        (
            "autoConfirm with nothing to confirm",
            policy(json!({"autoConfirm": true})),
            "spec.autoConfirm: Invalid value: autoConfirm needs requireConfirmationFor",
        ),
        (
            "no policyRef",
            incident(json!({"scenario": "stale_lockfile"})),
            "spec.policyRef: Required value",
        ),
        (
            "no spec",
            json!({"apiVersion": "remediator.dev/v1alpha1", "kind": "Incident", "metadata": {"name": "i"}}),
            "spec: Required value",
        ),
        (
            "unknown incident field",
            incident(
                json!({"scenario": "stale_lockfile", "policyRef": {"name": "p"}, "priority": 1}),
            ),
            r#"unknown field "spec.priority""#,
        ),
        (
            "upper-case scenario",
            incident(ok("Stale-Lockfile")),
            r#"spec.scenario: Invalid value: "Stale-Lockfile": spec.scenario in body should match '^[a-z0-9_]+$'"#,
        ),
        (
            "path as scenario",
            incident(ok("../etc/passwd")),
            r#"spec.scenario: Invalid value: "../etc/passwd""#,
        ),
        (
            "empty scenario",
            incident(ok("")),
            "spec.scenario: Invalid value: \"\": spec.scenario in body should be at least 1 chars long",
        ),
        (
            "empty policy name",
            incident(json!({"scenario": "stale_lockfile", "policyRef": {"name": ""}})),
            "spec.policyRef.name: Invalid value: \"\"",
        ),
    ]
}

/// Near the refused ones, and fine: the rules are no broader than meant.
fn accepted() -> Vec<(&'static str, Value)> {
    vec![
        ("llm brain on defaults", policy(json!({"brain": "llm"}))),
        (
            "confirmation at maxRisk",
            policy(json!({"maxRisk": "HIGH", "requireConfirmationFor": "HIGH"})),
        ),
        (
            "confirmation below maxRisk, confirmed by policy",
            policy(
                json!({"maxRisk": "HIGH", "requireConfirmationFor": "LOW", "autoConfirm": true}),
            ),
        ),
        ("every default", policy(json!({}))),
        (
            "digits and underscores",
            incident(json!({"scenario": "stale_worker_lock2", "policyRef": {"name": "p"}})),
        ),
    ]
}

/// Creates `manifest` as `kubectl create --validate=strict` does: a POST
/// with `fieldValidation=Strict`. Returns the server's refusal, if any.
async fn create_strictly(
    client: &Client,
    ns: &str,
    manifest: &Value,
) -> Result<(), kube::core::Status> {
    let plural = match manifest["kind"].as_str() {
        Some("Policy") => "policies",
        _ => "incidents",
    };
    let path = format!("/apis/remediator.dev/v1alpha1/namespaces/{ns}/{plural}");
    let mut request = kube::core::Request::new(path)
        .create(
            &PostParams::default(),
            serde_json::to_vec(manifest).unwrap(),
        )
        .unwrap();
    let uri = request.uri().to_string();
    let separator = if uri.contains('?') { "&" } else { "?" };
    *request.uri_mut() = format!("{uri}{separator}fieldValidation=Strict")
        .parse()
        .unwrap();
    match client.request::<Value>(request).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) => Err(*status),
        Err(other) => panic!("not an answer from the API server: {other}"),
    }
}

#[tokio::test]
async fn the_api_server_refuses_invalid_manifests_naming_the_field() {
    let Some(cp) = control_plane() else { return };
    let client = cp.client().await;
    let ns = cp.namespace(&client, "validation").await;
    let kubectl = cp.kubectl();
    let cases = refused();
    assert!(cases.len() >= 10);
    let mut wrong = Vec::new();
    for (what, manifest, expected) in cases {
        let ran = kubectl
            .run(
                &["apply", "--validate=strict", "-n", &ns, "-f", "-"],
                &manifest.to_string(),
            )
            .await;
        if ran.code == Some(0) || !ran.stderr.contains(expected) {
            wrong.push(format!("{what} (kubectl): expected {expected:?}\n{ran}"));
        }
        match create_strictly(&client, &ns, &manifest).await {
            Err(status)
                if [400, 422].contains(&status.code) && status.message.contains(expected) => {}
            answer => wrong.push(format!(
                "{what} (API): expected {expected:?}, got {answer:?}"
            )),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));

    for (what, manifest) in accepted() {
        if let Err(status) = create_strictly(&client, &ns, &manifest).await {
            panic!("{what} was refused: {status:?}");
        }
        let kind = manifest["kind"].as_str().unwrap().to_lowercase();
        let name = manifest["metadata"]["name"].as_str().unwrap();
        let deleted = kubectl.run(&["delete", "-n", &ns, &kind, name], "").await;
        assert_eq!(deleted.code, Some(0), "{deleted}");
    }
}

fn action(step: usize) -> Value {
    json!({"step": step, "kind": "exec", "command": "cat service.log", "risk": "LOW",
           "decision": "Allowed", "decidedBy": "gate", "durationMs": 12})
}

#[tokio::test]
async fn the_status_holds_at_most_the_bounded_number_of_actions() {
    let Some(cp) = control_plane() else { return };
    let client = cp.client().await;
    let ns = cp.namespace(&client, "status-bound").await;
    let incidents = Api::<Incident>::namespaced(client, &ns);
    let created: Incident = serde_json::from_value(incident(
        json!({"scenario": "stale_lockfile", "policyRef": {"name": "p"}}),
    ))
    .unwrap();
    incidents
        .create(&Default::default(), &created)
        .await
        .unwrap();
    let status = |count: usize| {
        Patch::Apply(json!({
            "apiVersion": "remediator.dev/v1alpha1", "kind": "Incident", "metadata": {"name": "i"},
            "status": {"phase": "Remediating", "steps": count,
                       "actions": (1..=count).map(action).collect::<Vec<_>>()}
        }))
    };
    let operator = PatchParams::apply(FIELD_MANAGER);

    let too_many = incidents
        .patch_status("i", &operator, &status(MAX_STATUS_ACTIONS + 1))
        .await
        .expect_err("one action over the bound is refused");
    let kube::Error::Api(response) = too_many else {
        panic!("not an API error: {too_many}")
    };
    assert_eq!(response.code, 422, "{response:?}");
    let expected = format!(
        "status.actions: Too many: {}: must have at most {MAX_STATUS_ACTIONS} items",
        MAX_STATUS_ACTIONS + 1
    );
    assert!(response.message.contains(&expected), "{}", response.message);

    let at_bound = incidents
        .patch_status("i", &operator, &status(MAX_STATUS_ACTIONS))
        .await
        .unwrap();
    assert_eq!(at_bound.status.unwrap().actions.len(), MAX_STATUS_ACTIONS);
}
