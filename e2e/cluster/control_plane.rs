//! One control plane for the whole test binary, started on first use through
//! `scripts/control-plane start --while-stdin-open` and stopped when this
//! process ends, however it ends: the script's watchdog reads a pipe whose
//! only writer lives in `CONTROL_PLANE`, and the kernel closes it at exit.

use std::io::{PipeWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::kubectl::Kubectl;

pub struct ControlPlane {
    pub kubeconfig: PathBuf,
    pub kubectl: PathBuf,
    /// What `kubectl apply -f crds/` printed when the control plane started.
    pub crd_install: crate::kubectl::Ran,
    _keeps_it_running: PipeWriter,
}

/// A failed start is kept too, so the other tests fail at once with its
/// message instead of starting again.
static CONTROL_PLANE: OnceLock<Result<Option<ControlPlane>, String>> = OnceLock::new();

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The running control plane with the CRDs installed, or None (with a
/// message) when it is not installed outside CI.
pub fn control_plane() -> Option<&'static ControlPlane> {
    let started = CONTROL_PLANE.get_or_init(|| {
        std::panic::catch_unwind(start).map_err(|panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        })
    });
    match started {
        Ok(control_plane) => control_plane.as_ref(),
        Err(message) => panic!("{message}"),
    }
}

fn script() -> PathBuf {
    repo().join("scripts/control-plane")
}

fn start() -> Option<ControlPlane> {
    let installed = Command::new(script())
        .arg("installed")
        .status()
        .expect("scripts/control-plane runs");
    if !installed.success() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the cluster tier: run ./scripts/test, which runs scripts/control-plane install"
        );
        say(
            "skipped: the Kubernetes control plane is not installed (scripts/control-plane install; ./scripts/test does it)",
        );
        return None;
    }
    let dir = std::env::temp_dir().join(format!("remediator-cluster-test-{}", std::process::id()));
    let (reader, writer) = std::io::pipe().expect("a pipe");
    let started = Command::new(script())
        .arg("start")
        .arg(&dir)
        .arg("--while-stdin-open")
        .stdin(reader)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("scripts/control-plane start runs");
    let stderr = String::from_utf8_lossy(&started.stderr);
    assert!(
        started.status.success(),
        "the control plane did not start:\n{stderr}"
    );
    say(stderr.trim_end());
    let env = Command::new(script())
        .arg("env")
        .arg(&dir)
        .output()
        .unwrap();
    let env = String::from_utf8(env.stdout).unwrap();
    let exported = |name: &str| {
        env.lines()
            .find_map(|line| line.strip_prefix(&format!("export {name}=")))
            .map(PathBuf::from)
            .unwrap_or_else(|| panic!("no {name} in `scripts/control-plane env`:\n{env}"))
    };
    let kubectl = Kubectl::new(exported("KUBECTL"), exported("KUBECONFIG"));
    let crd_install = kubectl.run_blocking(&["apply", "-f", path_str(&repo().join("crds"))]);
    assert_eq!(crd_install.code, Some(0), "{crd_install}");
    let established = kubectl.run_blocking(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/incidents.remediator.dev",
        "crd/policies.remediator.dev",
    ]);
    assert_eq!(established.code, Some(0), "{established}");
    Some(ControlPlane {
        kubeconfig: kubectl.kubeconfig.clone(),
        kubectl: kubectl.program.clone(),
        crd_install,
        _keeps_it_running: writer,
    })
}

/// Straight to stderr: the test harness captures `eprintln!`, and a skip or
/// the control plane's start time should be seen once per run.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "cluster tier: {line}");
}

pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

impl ControlPlane {
    /// A client of our own, as the operator builds it from a kubeconfig.
    /// Each test makes its own: a client belongs to one tokio runtime.
    pub async fn client(&self) -> Client {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig).expect("the kubeconfig reads");
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("the kubeconfig is usable");
        Client::try_from(config).expect("a client")
    }

    pub fn kubectl(&self) -> Kubectl {
        Kubectl::new(self.kubectl.clone(), self.kubeconfig.clone())
    }

    /// A fresh namespace for one test.
    pub async fn namespace(&self, client: &Client, name: &str) -> String {
        let namespace: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name}
        }))
        .unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap_or_else(|e| panic!("namespace {name}: {e}"));
        name.to_string()
    }
}
