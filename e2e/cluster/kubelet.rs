//! Plays the kubelet for the operator's own Pods, and only those, in one
//! namespace: a scenario Pod becomes the target service and the sandbox
//! sidecar as local processes on an address of its own (127.0.0.N), which
//! is written as the Pod's IP with the Pod marked Running and Ready; an
//! agent Job's Pod becomes `remediator agent` with the Pod's arguments and
//! its mounted token, and is marked Succeeded or Failed when it exits. A
//! Pod that is deleted has its processes stopped.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use remediator::scenario::{Catalog, Launch, RunningService};
use serde_json::json;

pub fn remediator_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_remediator"))
}

enum Running {
    Scenario {
        service: Box<RunningService>,
        _sidecar: tokio::process::Child,
        state: tempfile::TempDir,
    },
    Agent {
        child: tokio::process::Child,
        _dir: tempfile::TempDir,
        reported: bool,
    },
}

#[derive(Default)]
struct State {
    pods: HashMap<String, Running>,
    /// Addresses handed out, per Pod name (127.0.0.N).
    addresses: HashMap<String, IpAddr>,
}

pub struct FakeKubelet {
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeKubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The next free 127.0.0.N; distinct across the whole test binary.
fn next_address() -> IpAddr {
    static NEXT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(2);
    IpAddr::from([
        127,
        0,
        0,
        NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst),
    ])
}

fn arg_after<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn secret_of(pod: &Pod, volume: &str) -> Option<String> {
    pod.spec
        .as_ref()?
        .volumes
        .as_ref()?
        .iter()
        .find(|v| v.name == volume)?
        .secret
        .as_ref()?
        .secret_name
        .clone()
}

async fn token(client: &Client, ns: &str, secret: &str) -> Option<String> {
    let secret = Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(secret)
        .await
        .ok()??;
    let bytes = secret.data?.remove("token")?;
    Some(String::from_utf8_lossy(&bytes.0).into_owned())
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

async fn mark(pods: &Api<Pod>, name: &str, status: serde_json::Value) {
    let _ = pods
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await;
}

fn running_status(ip: Option<IpAddr>, containers: &[&str]) -> serde_json::Value {
    let statuses: Vec<serde_json::Value> = containers
        .iter()
        .map(|name| {
            json!({"name": name, "ready": true, "restartCount": 0, "image": "fake", "imageID": "",
                   "started": true, "state": {"running": {"startedAt": now()}}})
        })
        .collect();
    let mut status = json!({
        "phase": "Running",
        "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": now()},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": now()},
        ],
        "containerStatuses": statuses,
        "startTime": now(),
    });
    if let Some(ip) = ip {
        status["podIP"] = json!(ip.to_string());
        status["podIPs"] = json!([{"ip": ip.to_string()}]);
    }
    status
}

impl FakeKubelet {
    /// Plays Pods in `namespace`; each process logs to `<logs>/<pod>.log`.
    pub fn start(client: Client, namespace: &str, logs: PathBuf) -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let ns = namespace.to_string();
        let shared = state.clone();
        let task = tokio::spawn(async move {
            let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
            loop {
                if let Ok(list) = pods
                    .list(&ListParams::default().labels("app.kubernetes.io/name=remediator"))
                    .await
                {
                    let names: Vec<String> = list.items.iter().map(|p| p.name_any()).collect();
                    for pod in list.items {
                        play(&client, &pods, &ns, &shared, &logs, pod).await;
                    }
                    // Deleted Pods: their processes stop (dropping them kills them).
                    let gone: Vec<String> = shared
                        .lock()
                        .unwrap()
                        .pods
                        .keys()
                        .filter(|n| !names.contains(n))
                        .cloned()
                        .collect();
                    for name in gone {
                        shared.lock().unwrap().pods.remove(&name);
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Self { state, task }
    }

    /// The root directory of a scenario Pod's service.
    pub fn service_root(&self, pod: &str) -> Option<PathBuf> {
        let state = self.state.lock().unwrap();
        match state.pods.get(pod) {
            Some(Running::Scenario { service, .. }) => Some(service.root.clone()),
            _ => None,
        }
    }

    /// The sidecar's journal of a scenario Pod: every step it recorded.
    pub fn journal(&self, pod: &str) -> Vec<remediator::protocol::Turn> {
        let state = self.state.lock().unwrap();
        let Some(Running::Scenario { state: dir, .. }) = state.pods.get(pod) else {
            return Vec::new();
        };
        let turns = dir.path().join("state/turns");
        let mut files: Vec<PathBuf> = std::fs::read_dir(turns)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .filter_map(|p| serde_json::from_slice(&std::fs::read(p).ok()?).ok())
            .collect()
    }
}

async fn play(
    client: &Client,
    pods: &Api<Pod>,
    ns: &str,
    shared: &Arc<Mutex<State>>,
    logs: &std::path::Path,
    pod: Pod,
) {
    let log = |suffix: &str| {
        std::fs::File::create(logs.join(format!("{}-{suffix}.log", pod.name_any())))
            .map(std::process::Stdio::from)
            .unwrap_or_else(|_| std::process::Stdio::null())
    };
    let name = pod.name_any();
    let role = pod
        .labels()
        .get("remediator.dev/role")
        .cloned()
        .unwrap_or_default();
    let known = shared.lock().unwrap().pods.contains_key(&name);
    if known {
        if role == "agent" {
            report_agent_exit(pods, shared, &name).await;
        }
        return;
    }
    if pod.metadata.deletion_timestamp.is_some() {
        return;
    }
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.clone())
        .unwrap_or_default();
    match role.as_str() {
        "scenario" => {
            let Some(token) = (match secret_of(&pod, "sandbox-token") {
                Some(secret) => token(client, ns, &secret).await,
                None => None,
            }) else {
                return;
            };
            let service_args = containers[0].args.clone().unwrap_or_default();
            let sandbox_args = containers[1].args.clone().unwrap_or_default();
            let scenario = arg_after(&service_args, "--scenario")
                .unwrap_or_default()
                .to_string();
            let uid = arg_after(&sandbox_args, "--incident-uid")
                .unwrap_or_default()
                .to_string();
            let ip = next_address();
            let mut launch = Launch::through_remediator(remediator_bin());
            launch.port = Some(8080);
            launch.bind = ip;
            let Ok(service) = launch.start(&Catalog::builtin(), &scenario).await else {
                mark(
                    pods,
                    &name,
                    json!({"phase": "Failed", "message": "the target service did not start"}),
                )
                .await;
                return;
            };
            let state = tempfile::tempdir().unwrap();
            let token_file = state.path().join("token");
            std::fs::write(&token_file, token).unwrap();
            let listen = SocketAddr::new(ip, 7070);
            let mut command = tokio::process::Command::new(remediator_bin());
            command
                .args([
                    "sandbox",
                    "serve",
                    "--incident-uid",
                    &uid,
                    "--listen",
                    &listen.to_string(),
                ])
                .arg("--token-file")
                .arg(&token_file)
                .arg("--root")
                .arg(&service.root)
                .args(["--service", &SocketAddr::new(ip, 8080).to_string()])
                .arg("--state-dir")
                .arg(state.path().join("state"))
                .stdout(std::process::Stdio::null())
                .stderr(log("sandbox"))
                .envs(plain_env(&containers[1]))
                .kill_on_drop(true);
            if let Some(max) = arg_after(&sandbox_args, "--max-snapshot-bytes") {
                command.args(["--max-snapshot-bytes", max]);
            }
            let sidecar = command.spawn().unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while std::net::TcpStream::connect(listen).is_err()
                && std::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            {
                let mut state_guard = shared.lock().unwrap();
                state_guard.addresses.insert(name.clone(), ip);
                state_guard.pods.insert(
                    name.clone(),
                    Running::Scenario {
                        service: Box::new(service),
                        _sidecar: sidecar,
                        state,
                    },
                );
            }
            mark(
                pods,
                &name,
                running_status(Some(ip), &["service", "sandbox"]),
            )
            .await;
        }
        "agent" => {
            let Some(token) = (match secret_of(&pod, "agent-token") {
                Some(secret) => token(client, ns, &secret).await,
                None => None,
            }) else {
                return;
            };
            let mut args = containers[0].args.clone().unwrap_or_default();
            let dir = tempfile::tempdir().unwrap();
            let token_file = dir.path().join("token");
            std::fs::write(&token_file, token).unwrap();
            if let Some(i) = args.iter().position(|a| a == "--token-file") {
                args[i + 1] = token_file.display().to_string();
            }
            let child = tokio::process::Command::new(remediator_bin())
                .args(&args)
                .env_remove("OPENAI_API_KEY")
                .envs(plain_env(&containers[0]))
                .env("REMEDIATOR_SECRETS_DIR", dir.path())
                .stdout(log("stdout"))
                .stderr(log("stderr"))
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            shared.lock().unwrap().pods.insert(
                name.clone(),
                Running::Agent {
                    child,
                    _dir: dir,
                    reported: false,
                },
            );
            mark(pods, &name, running_status(None, &["agent"])).await;
        }
        _ => {}
    }
}

/// Marks an agent Pod Succeeded or Failed once its process exits.
async fn report_agent_exit(pods: &Api<Pod>, shared: &Arc<Mutex<State>>, name: &str) {
    let exited = {
        let mut state = shared.lock().unwrap();
        match state.pods.get_mut(name) {
            Some(Running::Agent {
                child, reported, ..
            }) if !*reported => match child.try_wait() {
                Ok(Some(status)) => {
                    *reported = true;
                    Some(status.code().unwrap_or(137))
                }
                _ => None,
            },
            _ => None,
        }
    };
    if let Some(code) = exited {
        let phase = if code == 0 { "Succeeded" } else { "Failed" };
        mark(
            pods,
            name,
            json!({
                "phase": phase,
                "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": now()}],
                "containerStatuses": [{"name": "agent", "ready": false, "restartCount": 0, "image": "fake", "imageID": "",
                    "state": {"terminated": {"exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" },
                        "startedAt": now(), "finishedAt": now()}}}],
            }),
        )
        .await;
    }
}

/// A container's literal `env` values, as a kubelet sets them (the
/// `valueFrom` ones this kubelet resolves itself, like the token).
fn plain_env(container: &Container) -> Vec<(String, String)> {
    container
        .env
        .iter()
        .flatten()
        .filter_map(|var| Some((var.name.clone(), var.value.clone()?)))
        .collect()
}
