//! The chart itself on the real control plane: `helm template` renders it
//! (the CRDs are already installed from `crds/`, which the chart's copy
//! must equal), kubectl applies what it rendered, and the operator runs
//! with the exact arguments of the rendered Deployment under a token of the
//! rendered ServiceAccount, so only the chart's Roles stand between it and
//! the API. There is no scheduler here: the Deployment's own Pods stay
//! Pending, and this process plays the one replica they would start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Client;
use kube::api::{Api, ListParams, PostParams};
use remediator::crd::{Incident, IncidentPhase, IncidentStatus, Policy};
use serde::Deserialize;
use serde_json::json;
use serde_yaml::Value;

use crate::control_plane::{ControlPlane, control_plane, path_str, repo};
use crate::kubelet::{FakeKubelet, remediator_bin};
use crate::operator::{get, kubeconfig_with_token, loopback, poll};

/// helm from `scripts/chart-tools`, or None (with a message) outside CI.
pub(crate) fn helm() -> Option<PathBuf> {
    let script = repo().join("scripts/chart-tools");
    let installed = Command::new(&script)
        .arg("installed")
        .status()
        .expect("scripts/chart-tools runs");
    if !installed.success() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the chart on the cluster: scripts/chart-tools install"
        );
        eprintln!(
            "skipped: helm is not installed (scripts/chart-tools install; ./scripts/test does it)"
        );
        return None;
    }
    let env = Command::new(&script).arg("env").output().unwrap();
    let env = String::from_utf8(env.stdout).unwrap();
    let helm = env
        .lines()
        .find_map(|line| line.strip_prefix("export HELM="))
        .unwrap_or_else(|| panic!("no HELM in `scripts/chart-tools env`:\n{env}"));
    Some(PathBuf::from(helm))
}

/// `helm template` of the chart for namespace `ns` alone (a Role there,
/// nothing cluster-wide), with `sets` on top; one Value per document.
pub(crate) fn render(helm: &Path, release: &str, ns: &str, sets: &[&str]) -> Vec<Value> {
    let home = tempfile::tempdir().unwrap();
    let mut command = Command::new(helm);
    command
        .args(["template", release])
        .arg(repo().join("charts/remediator"))
        .args(["--namespace", ns, "--set", &format!("watchNamespace={ns}")]);
    for set in sets {
        command.args(["--set", set]);
    }
    for (variable, dir) in [
        ("HELM_CACHE_HOME", "cache"),
        ("HELM_CONFIG_HOME", "config"),
        ("HELM_DATA_HOME", "data"),
    ] {
        command.env(variable, home.path().join(dir));
    }
    let out = command.stderr(Stdio::piped()).output().unwrap();
    assert!(
        out.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_yaml::Deserializer::from_slice(&out.stdout)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|doc| !doc.is_null())
        .collect()
}

pub(crate) fn find<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("the chart rendered no {kind}"))
}

/// The rendered chart applied and its operator running.
pub(crate) struct Installed {
    pub cp: &'static ControlPlane,
    pub client: Client,
    pub ns: String,
    pub docs: Vec<Value>,
    pub operator: tokio::process::Child,
    pub metrics: SocketAddr,
    /// What the rendered Deployment limits the operator's memory to.
    pub memory_limit: u64,
    _kubelet: FakeKubelet,
    dir: tempfile::TempDir,
}

/// Renders the chart for a new namespace `name`, applies it, and starts
/// the operator as the rendered Deployment would, under its ServiceAccount.
pub(crate) async fn install(name: &str, sets: &[&str]) -> Option<Installed> {
    let helm = helm()?;
    let cp = control_plane()?;
    let client = cp.client().await;
    let ns = cp.namespace(&client, name).await;
    let docs = render(&helm, "rel", &ns, sets);
    // The Prometheus Operator's kinds need its CRDs, which this control
    // plane has not got; the Prometheus test reads them instead.
    let applied: Vec<String> = docs
        .iter()
        .filter(|d| {
            !d["apiVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with("monitoring.coreos.com/"))
        })
        .map(|d| serde_yaml::to_string(d).unwrap())
        .collect();
    let ran = cp
        .kubectl()
        .run(&["apply", "-n", &ns, "-f", "-"], &applied.join("---\n"))
        .await;
    assert_eq!(
        ran.code,
        Some(0),
        "kubectl apply of the rendered chart: {ran}"
    );
    let pod = &find(&docs, "Deployment")["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let account = pod["serviceAccountName"].as_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token = token_of(&client, &ns, account).await;
    let kubeconfig = kubeconfig_with_token(cp, &token, &dir.path().join("kubeconfig"));
    let kubelet = FakeKubelet::start(client.clone(), &ns, dir.path().to_path_buf());
    let (api, metrics) = (loopback(), loopback());
    let args = replica_args(container, api, metrics);
    let log = container["env"]
        .as_sequence()
        .and_then(|env| env.iter().find(|e| e["name"] == "RUST_LOG"))
        .and_then(|e| e["value"].as_str())
        .unwrap_or("info");
    let operator = tokio::process::Command::new(remediator_bin())
        .args(&args)
        .env("KUBECONFIG", &kubeconfig)
        .env("POD_NAME", format!("{account}-0"))
        .env("POD_NAMESPACE", &ns)
        .env("RUST_LOG", log)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("operator.log")).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let installed = Installed {
        cp,
        client,
        ns,
        memory_limit: quantity(&container["resources"]["limits"]["memory"]),
        docs,
        operator,
        metrics,
        _kubelet: kubelet,
        dir,
    };
    // Leader election is on, as in the chart: ready means it leads.
    let leads = poll(Duration::from_secs(60), || async {
        get(metrics, "/readyz").await.is_some_and(|(s, _)| s == 200)
    })
    .await;
    assert!(
        leads,
        "the operator never became the leader:\n{}",
        installed.log()
    );
    Some(installed)
}

/// A token of the chart's ServiceAccount, as the kubelet would mount it.
pub(crate) async fn token_of(client: &Client, ns: &str, account: &str) -> String {
    let request: TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 3600}}))
            .unwrap();
    Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .create_token_request(account, &PostParams::default(), &request)
        .await
        .unwrap_or_else(|e| panic!("a token for the chart's ServiceAccount {account}: {e}"))
        .status
        .and_then(|s| s.token)
        .expect("the API server issued a token")
}

/// The Deployment's arguments with the three addresses that only make
/// sense inside a Pod put on loopback; each must be there.
fn replica_args(container: &Value, api: SocketAddr, metrics: SocketAddr) -> Vec<String> {
    let mut args: Vec<String> = container["args"]
        .as_sequence()
        .expect("the operator container has args")
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    for (flag, value) in [
        ("--api-listen=", api.to_string()),
        ("--metrics-listen=", metrics.to_string()),
        ("--action-api-url=", format!("http://{api}")),
    ] {
        let arg = args
            .iter_mut()
            .find(|a| a.starts_with(flag))
            .unwrap_or_else(|| panic!("the Deployment passes no {flag}"));
        *arg = format!("{flag}{value}");
    }
    args
}

/// Bytes in a memory quantity such as `256Mi`.
fn quantity(value: &Value) -> u64 {
    let text = value.as_str().expect("a memory limit");
    let units = [("Ki", 1u64 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30)];
    let (number, unit) = units
        .iter()
        .find_map(|(suffix, unit)| text.strip_suffix(suffix).map(|n| (n, *unit)))
        .unwrap_or((text, 1));
    number.parse::<u64>().expect("a whole number") * unit
}

impl Installed {
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("operator.log")).unwrap_or_default()
    }

    pub fn rss_bytes(&self) -> u64 {
        let pid = self.operator.id().expect("the operator runs");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status");
        kib * 1024
    }

    pub async fn kubectl(&self, args: &[&str], stdin: &str) -> String {
        let args: Vec<&str> = args.iter().copied().chain(["-n", &self.ns]).collect();
        let ran = self.cp.kubectl().run(&args, stdin).await;
        assert_eq!(ran.code, Some(0), "{ran}");
        ran.stdout
    }

    pub fn incidents(&self) -> Api<Incident> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Waits for `name` to reach `phase`.
    pub async fn until_phase(&self, name: &str, phase: IncidentPhase) -> Incident {
        self.until(name, Duration::from_secs(180), &format!("{phase:?}"), |s| {
            s.phase == phase
        })
        .await
    }

    /// Waits for `name` to end.
    pub async fn ended(&self, name: &str, limit: Duration) -> Incident {
        self.until(name, limit, "an end", |s| s.phase.is_terminal())
            .await
    }

    /// Waits for `name`'s trajectory to be in its Policy's ring.
    pub async fn recorded(&self, name: &str) -> Incident {
        self.until(
            name,
            Duration::from_secs(60),
            "a recorded trajectory",
            |s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "TrajectoryRecorded" && c.status == "True")
            },
        )
        .await
    }

    /// Polls `name` until its status satisfies `wanted`; panics with the
    /// operator's log at the deadline.
    async fn until(
        &self,
        name: &str,
        limit: Duration,
        what: &str,
        wanted: impl Fn(&IncidentStatus) -> bool,
    ) -> Incident {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let incident = self.incidents().get_opt(name).await.unwrap();
            let status = incident.as_ref().and_then(|i| i.status.as_ref());
            if status.is_some_and(&wanted) {
                return incident.unwrap();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} never got to {what}: {status:#?}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_rendered_chart_runs_the_operator_under_its_own_rbac() {
    let Some(chart) = install("chart-install", &[]).await else {
        return;
    };
    let idle = chart.rss_bytes();
    let examples = repo().join("examples");
    for file in ["policy-optimized.yaml", "incident-port-mismatch.yaml"] {
        chart
            .kubectl(&["apply", "-f", path_str(&examples.join(file))], "")
            .await;
    }
    let incident = chart.ended("port-mismatch", Duration::from_secs(180)).await;
    let status = incident.status.unwrap();
    assert_eq!(status.phase, IncidentPhase::Resolved, "{status:#?}");
    assert_eq!(status.verified.map(|v| v.healthy), Some(true));
    let policies: Api<Policy> = Api::namespaced(chart.client.clone(), &chart.ns);
    let scored = poll(Duration::from_secs(60), || async {
        policies
            .get("optimized")
            .await
            .unwrap()
            .status
            .is_some_and(|s| s.resolved == 1 && s.fix_rate == Some(1.0))
    })
    .await;
    assert!(scored, "the Policy's scorecard never counted it");
    // Nothing left running: the scenario Pod and the agent are gone or done.
    let busy = chart
        .incidents()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .any(|i| i.status.as_ref().is_none_or(|s| !s.phase.is_terminal()));
    assert!(!busy);
    let after = chart.rss_bytes();
    let listing = chart.kubectl(&["get", "incidents,policies"], "").await;
    eprintln!(
        "operator RSS: {:.1} MiB idle after start, {:.1} MiB idle after one incident (limit {} MiB)\n$ kubectl get incidents,policies\n{listing}",
        idle as f64 / f64::from(1 << 20),
        after as f64 / f64::from(1 << 20),
        chart.memory_limit >> 20
    );
    assert!(listing.contains("port-mismatch") && listing.contains("Resolved"));
    for rss in [idle, after] {
        assert!(
            rss < chart.memory_limit,
            "RSS {rss} is over the chart's memory limit"
        );
    }
}

/// `approvals.recordUser`: the chart's admission policies stamp who set an
/// approve annotation, refuse a forged stamp, and the operator (with the
/// rendered --approver-from-admission) records that user in status.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_charts_admission_policies_record_who_approved() {
    let Some(chart) = install("chart-approvals", &["approvals.recordUser=true"]).await else {
        return;
    };
    let whoami = chart
        .kubectl(
            &[
                "auth",
                "whoami",
                "-o",
                "jsonpath={.status.userInfo.username}",
            ],
            "",
        )
        .await;
    let user = whoami.trim().to_string();
    assert!(!user.is_empty(), "kubectl auth whoami: {whoami:?}");
    chart
        .kubectl(
            &["apply", "-f", "-"],
            "apiVersion: remediator.dev/v1alpha1\nkind: Policy\nmetadata: {name: careful}\nspec: {requireConfirmationFor: MEDIUM, approvalTimeoutSeconds: 600}\n---\napiVersion: remediator.dev/v1alpha1\nkind: Incident\nmetadata: {name: stamped}\nspec: {scenario: stale_lockfile, policyRef: {name: careful}}\n",
        )
        .await;
    let waiting = chart
        .until_phase("stamped", IncidentPhase::AwaitingApproval)
        .await;
    let step = waiting.status.unwrap().pending_approval.unwrap().step;
    // A forged stamp alone is refused, once the API server has loaded the
    // policies (it takes a few seconds after they are created).
    let forge = [
        "annotate",
        "--overwrite",
        "incident",
        "stamped",
        "remediator.dev/approved-by=mallory",
    ];
    let refused = poll(Duration::from_secs(60), || async {
        let ran = chart
            .cp
            .kubectl()
            .run(&[&forge[..], &["-n", &chart.ns]].concat(), "")
            .await;
        ran.code != Some(0) && ran.stderr.contains("set by the API server")
    })
    .await;
    assert!(refused, "a forged remediator.dev/approved-by was accepted");
    // An approval that also claims to be someone else is stamped as its user.
    let ran = chart
        .cp
        .kubectl()
        .run(
            &[
                "annotate",
                "-n",
                &chart.ns,
                "incident",
                "stamped",
                &format!("remediator.dev/approve={step}"),
                "remediator.dev/approved-by=mallory",
            ],
            "",
        )
        .await;
    assert_eq!(ran.code, Some(0), "{ran}");
    let incident = chart.until_phase("stamped", IncidentPhase::Resolved).await;
    let annotations = incident.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(annotations.get("remediator.dev/approved-by"), Some(&user));
    let action = incident
        .status
        .unwrap()
        .actions
        .into_iter()
        .find(|a| a.step == step)
        .unwrap();
    let who = action.approver.expect("who approved is recorded");
    assert_eq!(
        (
            who.via.as_str(),
            who.user.as_deref(),
            who.field_manager.as_deref()
        ),
        ("annotation", Some(user.as_str()), Some("kubectl-annotate"))
    );
}
