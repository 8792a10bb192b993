//! The objects an Incident owns, built as plain values: two token Secrets,
//! the scenario Pod (the broken service and the sandbox sidecar beside it,
//! sharing the service root) and the agent Job. Owner references make the
//! garbage collector remove them with the Incident; nothing here gets a
//! service-account token or a capability it does not need.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, KeyToPath, Pod,
    PodSecurityContext, PodSpec, PodTemplateSpec, SeccompProfile, Secret, SecretVolumeSource,
    SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;

use crate::crd::{Incident, PolicySpec};

/// Where the pieces run and how they reach each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The operator/agent/sandbox image (one binary).
    pub operator_image: String,
    /// The target service image.
    pub target_image: String,
    /// The Action API as agents reach it.
    pub action_api_url: String,
    /// The service account agent Jobs run as; `None` is the namespace's
    /// `default`, which always exists. Either way no token is mounted, so
    /// the agent has no rights in the cluster.
    pub agent_service_account: Option<String>,
    pub service_port: u16,
    pub sandbox_port: u16,
    /// The user (and group) the scenario Pod and agent run as.
    pub run_as_user: i64,
    /// `RuntimeDefault`, or `Localhost:<profile>` for a profile that lets
    /// the sandbox create its namespaces.
    pub seccomp_profile: String,
    /// false: the Pods get `hostUsers: false`, a user namespace of their
    /// own, so root inside is not root on the node.
    pub host_users: bool,
    /// The sandbox container gets `procMount: Unmasked` (only with
    /// `host_users` false): with the runtime's masked /proc the kernel
    /// refuses the sandbox a /proc of its own, and containment is weak.
    pub unmasked_proc: bool,
    /// The OpenTelemetry variables (endpoint and friends) the agent and
    /// the sidecar export with, as the operator was given them; empty:
    /// they export nothing.
    pub telemetry: Vec<(String, String)>,
    /// An admission policy (the chart's `approvals.recordUser`) stamps
    /// `remediator.dev/decided-by` with the user who set an approve or
    /// reject annotation and refuses any other change to it, so status may
    /// name that user.
    pub approver_from_admission: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            operator_image: "remediator:dev".into(),
            target_image: "remediator-target-service:dev".into(),
            action_api_url: "http://remediator.remediator-system.svc:8080".into(),
            agent_service_account: None,
            service_port: 8080,
            sandbox_port: 7070,
            run_as_user: 65532,
            seccomp_profile: "RuntimeDefault".into(),
            host_users: true,
            unmasked_proc: false,
            telemetry: Vec::new(),
            approver_from_admission: false,
        }
    }
}

/// Where the service root lives in the scenario Pod.
pub const ROOT: &str = "/srv/incident";
const SANDBOX_STATE: &str = "/var/lib/remediator/sandbox";
const SANDBOX_TOKEN_DIR: &str = "/var/run/remediator/sandbox";
const AGENT_TOKEN_DIR: &str = "/var/run/remediator/agent";
/// Where Secrets the Policy names are mounted for the agent:
/// `<dir>/<secret>/<key>`, as the LLM brain reads them.
pub const AGENT_SECRETS_DIR: &str = "/var/run/remediator/secrets";
pub const TOKEN_KEY: &str = "token";
pub const INCIDENT_LABEL: &str = "remediator.dev/incident";
pub const ROLE_LABEL: &str = "remediator.dev/role";

pub fn pod_name(incident: &str) -> String {
    format!("{incident}-scenario")
}
pub fn job_name(incident: &str) -> String {
    format!("{incident}-agent")
}
pub fn agent_secret_name(incident: &str) -> String {
    format!("{incident}-agent-token")
}
pub fn sandbox_secret_name(incident: &str) -> String {
    format!("{incident}-sandbox-token")
}

fn name_of(incident: &Incident) -> String {
    incident.metadata.name.clone().unwrap_or_default()
}

/// The owner reference the garbage collector follows.
pub fn owner(incident: &Incident) -> OwnerReference {
    OwnerReference {
        api_version: Incident::api_version(&()).to_string(),
        kind: Incident::kind(&()).to_string(),
        name: name_of(incident),
        uid: incident.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn meta(incident: &Incident, name: String, role: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: incident.metadata.namespace.clone(),
        labels: Some(BTreeMap::from([
            (
                "app.kubernetes.io/name".to_string(),
                "remediator".to_string(),
            ),
            ("app.kubernetes.io/component".to_string(), role.to_string()),
            (INCIDENT_LABEL.to_string(), name_of(incident)),
            (ROLE_LABEL.to_string(), role.to_string()),
        ])),
        owner_references: Some(vec![owner(incident)]),
        ..ObjectMeta::default()
    }
}

pub fn token_secret(incident: &Incident, name: String, role: &str, token: &str) -> Secret {
    Secret {
        metadata: meta(incident, name, role),
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            TOKEN_KEY.to_string(),
            ByteString(token.as_bytes().to_vec()),
        )])),
        ..Secret::default()
    }
}

fn restricted() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: None,
        }),
        ..SecurityContext::default()
    }
}

fn pod_security(settings: &Settings) -> PodSecurityContext {
    let seccomp = match settings.seccomp_profile.strip_prefix("Localhost:") {
        Some(profile) => SeccompProfile {
            type_: "Localhost".into(),
            localhost_profile: Some(profile.into()),
        },
        None => SeccompProfile {
            type_: settings.seccomp_profile.clone(),
            localhost_profile: None,
        },
    };
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(settings.run_as_user),
        run_as_group: Some(settings.run_as_user),
        fs_group: Some(settings.run_as_user),
        seccomp_profile: Some(seccomp),
        ..PodSecurityContext::default()
    }
}

/// Unset unless asked for: `hostUsers: false` needs a runtime that supports it.
fn host_users(settings: &Settings) -> Option<bool> {
    (!settings.host_users).then_some(false)
}

fn secret_volume(name: &str, secret: String, items: Option<Vec<KeyToPath>>) -> Volume {
    Volume {
        name: name.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret),
            items,
            default_mode: Some(0o440),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    }
}

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: Some(read_only),
        ..VolumeMount::default()
    }
}

/// The broken service and the sandbox sidecar beside it.
pub fn scenario_pod(incident: &Incident, policy: &PolicySpec, settings: &Settings) -> Pod {
    let name = name_of(incident);
    let scenario = incident.spec.scenario.clone();
    let service = Container {
        name: "service".into(),
        image: Some(settings.target_image.clone()),
        args: Some(vec![
            "--scenario".into(),
            scenario,
            "--root".into(),
            ROOT.into(),
            "--port".into(),
            settings.service_port.to_string(),
            "--bind".into(),
            "0.0.0.0".into(),
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("service".into()),
            container_port: settings.service_port.into(),
            ..ContainerPort::default()
        }]),
        volume_mounts: Some(vec![mount("root", ROOT, false)]),
        security_context: Some(restricted()),
        ..Container::default()
    };
    let mut sandbox_args = vec![
        "sandbox".to_string(),
        "serve".into(),
        "--incident-uid".into(),
        incident.metadata.uid.clone().unwrap_or_default(),
        "--token-file".into(),
        format!("{SANDBOX_TOKEN_DIR}/{TOKEN_KEY}"),
        "--listen".into(),
        format!("0.0.0.0:{}", settings.sandbox_port),
        "--root".into(),
        ROOT.into(),
        "--service".into(),
        format!("127.0.0.1:{}", settings.service_port),
        "--state-dir".into(),
        SANDBOX_STATE.into(),
        "--max-snapshot-bytes".into(),
        policy.max_snapshot_bytes.to_string(),
    ];
    if !policy.secret_names.is_empty() {
        sandbox_args.push("--secret-names".into());
        sandbox_args.push(policy.secret_names.join(","));
    }
    let sandbox = Container {
        name: "sandbox".into(),
        image: Some(settings.operator_image.clone()),
        args: Some(sandbox_args),
        ports: Some(vec![ContainerPort {
            name: Some("sandbox".into()),
            container_port: settings.sandbox_port.into(),
            ..ContainerPort::default()
        }]),
        volume_mounts: Some(vec![
            mount("root", ROOT, false),
            mount("sandbox-state", SANDBOX_STATE, false),
            mount("sandbox-token", SANDBOX_TOKEN_DIR, true),
            // Scratch for the sandbox's probe and commands' TMPDIR; the
            // image's own filesystem stays read-only.
            mount("sandbox-tmp", "/tmp", false),
        ]),
        security_context: Some(SecurityContext {
            proc_mount: settings.unmasked_proc.then(|| "Unmasked".into()),
            ..restricted()
        }),
        env: non_empty(telemetry_env(settings)),
        ..Container::default()
    };
    Pod {
        metadata: meta(incident, pod_name(&name), "scenario"),
        spec: Some(PodSpec {
            containers: vec![service, sandbox],
            volumes: Some(vec![
                empty_dir("root"),
                empty_dir("sandbox-state"),
                empty_dir("sandbox-tmp"),
                secret_volume("sandbox-token", sandbox_secret_name(&name), None),
            ]),
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            restart_policy: Some("Never".into()),
            security_context: Some(pod_security(settings)),
            host_users: host_users(settings),
            ..PodSpec::default()
        }),
        status: None,
    }
}

fn env_var(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    }
}

fn non_empty(env: Vec<EnvVar>) -> Option<Vec<EnvVar>> {
    (!env.is_empty()).then_some(env)
}

/// Where the sidecar and the agent export their spans: where the
/// operator does.
fn telemetry_env(settings: &Settings) -> Vec<EnvVar> {
    settings
        .telemetry
        .iter()
        .map(|(name, value)| env_var(name, value))
        .collect()
}

/// The agent's secrets directory and, when traces are exported, where to
/// and the incident's trace to join (W3C `traceparent`, from its UID).
fn agent_env(incident: &Incident, settings: &Settings) -> Vec<EnvVar> {
    let mut env = vec![env_var("REMEDIATOR_SECRETS_DIR", AGENT_SECRETS_DIR)];
    if !settings.telemetry.is_empty() {
        let uid = incident.metadata.uid.as_deref().unwrap_or_default();
        let parent = crate::telemetry::IncidentTrace::of_uid(uid).root().header();
        env.push(env_var(crate::telemetry::TRACEPARENT_ENV, &parent));
        env.extend(telemetry_env(settings));
    }
    env
}

/// The agent: the brain only, proposing through the Action API.
pub fn agent_job(incident: &Incident, policy: &PolicySpec, settings: &Settings) -> Job {
    let name = name_of(incident);
    let namespace = incident.metadata.namespace.clone().unwrap_or_default();
    let mut volumes = vec![secret_volume("agent-token", agent_secret_name(&name), None)];
    let mut mounts = vec![mount("agent-token", AGENT_TOKEN_DIR, true)];
    if let Some(key) = policy
        .llm
        .as_ref()
        .and_then(|l| l.api_key_secret_ref.as_ref())
    {
        volumes.push(secret_volume(
            "llm-key",
            key.name.clone(),
            Some(vec![KeyToPath {
                key: key.key.clone(),
                path: key.key.clone(),
                ..KeyToPath::default()
            }]),
        ));
        mounts.push(mount(
            "llm-key",
            &format!("{AGENT_SECRETS_DIR}/{}", key.name),
            true,
        ));
    }
    let container = Container {
        name: "agent".into(),
        image: Some(settings.operator_image.clone()),
        args: Some(vec![
            "agent".into(),
            "--operator".into(),
            settings.action_api_url.clone(),
            "--incident".into(),
            format!("{namespace}/{name}"),
            "--token-file".into(),
            format!("{AGENT_TOKEN_DIR}/{TOKEN_KEY}"),
        ]),
        env: Some(agent_env(incident, settings)),
        volume_mounts: Some(mounts),
        security_context: Some(restricted()),
        ..Container::default()
    };
    Job {
        metadata: meta(incident, job_name(&name), "agent"),
        spec: Some(JobSpec {
            backoff_limit: Some(3),
            active_deadline_seconds: Some(i64::from(policy.timeout_seconds) + 120),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: meta(incident, String::new(), "agent").labels,
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    volumes: Some(volumes),
                    service_account_name: settings.agent_service_account.clone(),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    restart_policy: Some("OnFailure".into()),
                    security_context: Some(pod_security(settings)),
                    host_users: host_users(settings),
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests;
