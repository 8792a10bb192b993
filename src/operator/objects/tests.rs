use super::*;
use crate::crd::{IncidentSpec, LlmSpec, PolicyRef, SecretKeyRef};

fn incident() -> Incident {
    let mut incident = Incident::new(
        "checkout-500",
        IncidentSpec {
            scenario: "stale_lockfile".into(),
            policy_ref: PolicyRef { name: "llm".into() },
        },
    );
    incident.metadata.namespace = Some("shop".into());
    incident.metadata.uid = Some("4b1c-uid".into());
    incident
}

fn assert_owned(meta: &ObjectMeta) {
    let owner = &meta.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
        ("Incident", "checkout-500", "4b1c-uid")
    );
    assert_eq!(
        (owner.controller, owner.block_owner_deletion),
        (Some(true), Some(true))
    );
    assert_eq!(meta.namespace.as_deref(), Some("shop"));
    let labels = meta.labels.as_ref().unwrap();
    assert_eq!(labels[INCIDENT_LABEL], "checkout-500");
    assert_eq!(labels["app.kubernetes.io/name"], "remediator");
}

fn assert_locked_down(container: &Container) {
    let sc = container.security_context.as_ref().unwrap();
    assert_eq!(
        sc.allow_privilege_escalation,
        Some(false),
        "{}",
        container.name
    );
    assert_eq!(
        sc.read_only_root_filesystem,
        Some(true),
        "{}",
        container.name
    );
    assert_eq!(sc.run_as_non_root, Some(true), "{}", container.name);
    assert_eq!(
        sc.capabilities.as_ref().unwrap().drop,
        Some(vec!["ALL".to_string()])
    );
    assert!(sc.capabilities.as_ref().unwrap().add.is_none());
    assert!(sc.privileged.is_none());
}

#[test]
fn the_scenario_pod_holds_the_service_and_the_sandbox_and_no_token() {
    let pod = scenario_pod(&incident(), &PolicySpec::default(), &Settings::default());
    assert_owned(&pod.metadata);
    assert_eq!(pod.metadata.name.as_deref(), Some("checkout-500-scenario"));
    let spec = pod.spec.unwrap();
    assert_eq!(spec.automount_service_account_token, Some(false));
    assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
    let security = spec.security_context.unwrap();
    assert_eq!(
        (security.run_as_non_root, security.run_as_user),
        (Some(true), Some(65532))
    );
    assert_eq!(security.seccomp_profile.unwrap().type_, "RuntimeDefault");
    let names: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["service", "sandbox"]);
    for container in &spec.containers {
        assert_locked_down(container);
    }
    let sandbox = &spec.containers[1];
    let args = sandbox.args.as_ref().unwrap().join(" ");
    assert!(
        args.starts_with("sandbox serve --incident-uid 4b1c-uid"),
        "{args}"
    );
    assert!(
        args.contains("--root /srv/incident")
            && args.contains("--state-dir /var/lib/remediator/sandbox"),
        "{args}"
    );
    // The state (journal, secret handles) is the sidecar's alone.
    let service_mounts: Vec<&str> = spec.containers[0]
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(service_mounts, ["root"]);
    let volumes = spec.volumes.unwrap();
    let token = volumes.iter().find(|v| v.name == "sandbox-token").unwrap();
    assert_eq!(
        token.secret.as_ref().unwrap().secret_name.as_deref(),
        Some("checkout-500-sandbox-token")
    );
}

#[test]
fn the_agent_job_has_no_api_rights_and_only_its_secrets() {
    let policy = PolicySpec {
        llm: Some(LlmSpec {
            api_key_secret_ref: Some(SecretKeyRef {
                name: "openai".into(),
                key: "api-key".into(),
            }),
            ..LlmSpec::default()
        }),
        timeout_seconds: 600,
        ..PolicySpec::default()
    };
    let job = agent_job(&incident(), &policy, &Settings::default());
    assert_owned(&job.metadata);
    let spec = job.spec.unwrap();
    assert_eq!(spec.active_deadline_seconds, Some(720));
    let pod = spec.template.spec.unwrap();
    assert_eq!(
        pod.service_account_name, None,
        "the namespace's default account"
    );
    assert_eq!(pod.automount_service_account_token, Some(false));
    let container = &pod.containers[0];
    assert_locked_down(container);
    assert_eq!(
        container.args.as_ref().unwrap().join(" "),
        "agent --operator http://remediator.remediator-system.svc:8080 --incident shop/checkout-500 --token-file /var/run/remediator/agent/token"
    );
    let mounts: Vec<(&str, &str)> = container
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .map(|m| (m.name.as_str(), m.mount_path.as_str()))
        .collect();
    // The LLM key lands where the brain reads <dir>/<secret>/<key>.
    assert_eq!(
        mounts,
        [
            ("agent-token", "/var/run/remediator/agent"),
            ("llm-key", "/var/run/remediator/secrets/openai")
        ]
    );
    let llm = pod
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == "llm-key")
        .unwrap();
    let items = llm.secret.unwrap().items.unwrap();
    assert_eq!(
        (items[0].key.as_str(), items[0].path.as_str()),
        ("api-key", "api-key")
    );
}

#[test]
fn token_secrets_are_owned_and_hold_the_token() {
    let secret = token_secret(
        &incident(),
        agent_secret_name("checkout-500"),
        "agent",
        "t0k3n",
    );
    assert_owned(&secret.metadata);
    assert_eq!(secret.data.unwrap()[TOKEN_KEY].0, b"t0k3n");
    assert_eq!(secret.metadata.labels.unwrap()[ROLE_LABEL], "agent");
}

#[test]
fn a_localhost_seccomp_profile_is_named() {
    let settings = Settings {
        seccomp_profile: "Localhost:remediator-sandbox.json".into(),
        ..Settings::default()
    };
    let pod = scenario_pod(&incident(), &PolicySpec::default(), &settings);
    let seccomp = pod
        .spec
        .unwrap()
        .security_context
        .unwrap()
        .seccomp_profile
        .unwrap();
    assert_eq!(
        (seccomp.type_.as_str(), seccomp.localhost_profile.as_deref()),
        ("Localhost", Some("remediator-sandbox.json"))
    );
}

#[test]
fn host_users_false_gives_scenario_pods_and_agents_a_user_namespace() {
    let isolated = Settings {
        host_users: false,
        ..Settings::default()
    };
    let policy = PolicySpec::default();
    let pod = scenario_pod(&incident(), &policy, &isolated).spec.unwrap();
    let job = agent_job(&incident(), &policy, &isolated);
    let agent = job.spec.unwrap().template.spec.unwrap();
    assert_eq!(
        (pod.host_users, agent.host_users),
        (Some(false), Some(false))
    );
    // The default leaves the field unset: not every runtime supports it.
    let shared = scenario_pod(&incident(), &policy, &Settings::default());
    assert_eq!(shared.spec.unwrap().host_users, None);
}

#[test]
fn an_unmasked_proc_goes_to_the_sandbox_container_only() {
    let unmasked = Settings {
        host_users: false,
        unmasked_proc: true,
        ..Settings::default()
    };
    let policy = PolicySpec::default();
    let proc_mounts = |settings: &Settings| -> Vec<(String, Option<String>)> {
        scenario_pod(&incident(), &policy, settings)
            .spec
            .unwrap()
            .containers
            .into_iter()
            .map(|c| (c.name, c.security_context.unwrap().proc_mount))
            .collect()
    };
    assert_eq!(
        proc_mounts(&unmasked),
        [
            ("service".to_string(), None),
            ("sandbox".to_string(), Some("Unmasked".to_string()))
        ]
    );
    assert!(
        proc_mounts(&Settings::default())
            .iter()
            .all(|(_, m)| m.is_none())
    );
    // Everything else the sandbox container had stays as it was.
    let sandbox = |settings: &Settings| {
        let mut context = scenario_pod(&incident(), &policy, settings)
            .spec
            .unwrap()
            .containers[1]
            .security_context
            .clone()
            .unwrap();
        context.proc_mount = None;
        context
    };
    assert_eq!(sandbox(&unmasked), sandbox(&Settings::default()));
}

#[test]
fn traces_reach_the_agent_and_the_sidecar_only_when_the_operator_exports() {
    let policy = PolicySpec::default();
    let env_of = |container: &Container| -> Vec<(String, String)> {
        container
            .env
            .iter()
            .flatten()
            .map(|v| (v.name.clone(), v.value.clone().unwrap_or_default()))
            .collect()
    };
    let quiet = Settings::default();
    let agent = agent_job(&incident(), &policy, &quiet);
    let agent_pod = agent.spec.unwrap().template.spec.unwrap();
    assert_eq!(
        env_of(&agent_pod.containers[0]),
        [(
            "REMEDIATOR_SECRETS_DIR".to_string(),
            AGENT_SECRETS_DIR.to_string()
        )]
    );
    let pod = scenario_pod(&incident(), &policy, &quiet).spec.unwrap();
    assert!(pod.containers.iter().all(|c| c.env.is_none()));

    let endpoint = (
        "OTEL_EXPORTER_OTLP_ENDPOINT".to_string(),
        "http://collector.observability.svc:4318".to_string(),
    );
    let traced = Settings {
        telemetry: vec![endpoint.clone()],
        ..Settings::default()
    };
    let agent = agent_job(&incident(), &policy, &traced);
    let env = env_of(&agent.spec.unwrap().template.spec.unwrap().containers[0]);
    let root = crate::telemetry::IncidentTrace::of_uid("4b1c-uid").root();
    assert!(env.contains(&endpoint), "{env:?}");
    assert!(
        env.contains(&("TRACEPARENT".to_string(), root.header())),
        "the agent joins the incident's trace: {env:?}"
    );
    let pod = scenario_pod(&incident(), &policy, &traced).spec.unwrap();
    let by_name = |name: &str| pod.containers.iter().find(|c| c.name == name).unwrap();
    assert_eq!(env_of(by_name("sandbox")), [endpoint]);
    assert!(
        by_name("service").env.is_none(),
        "the scenario's service exports nothing"
    );
}
