//! The operator on the real control plane, as a separate process under the
//! RBAC the chart ships (a service account's token, nothing more), with a
//! harness playing the kubelet for its Pods: every example Incident
//! resolves with verified health and step metrics; a confirmation waits in
//! AwaitingApproval for `kubectl annotate ... approve=<step>`; a rejection
//! fails its incident; an operator killed mid-incident and started again
//! completes it with no step executed twice (the sidecar's journal proves
//! it); of two replicas only the leader acts, and killing it hands over;
//! deleting an Incident removes what it owns.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use remediator::crd::{Incident, IncidentPhase, Policy};
use serde_json::json;

use crate::control_plane::{ControlPlane, control_plane, path_str, repo};
use crate::kubelet::{FakeKubelet, remediator_bin};

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn rules(file: &str) -> Vec<PolicyRule> {
    let text = std::fs::read_to_string(repo().join("charts/remediator/files").join(file)).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

/// A kubeconfig for the operator's service account in `ns`, bound to the
/// chart's rules and nothing else.
async fn operator_kubeconfig(cp: &ControlPlane, client: &Client, ns: &str, dir: &Path) -> PathBuf {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let account: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "remediator-operator"}})).unwrap();
    accounts
        .create(&PostParams::default(), &account)
        .await
        .unwrap();
    let role_name = format!("remediator-operator-{ns}");
    let role: ClusterRole =
        serde_json::from_value(json!({"metadata": {"name": role_name}})).unwrap();
    let role = ClusterRole {
        rules: Some(rules("operator-rbac.yaml")),
        ..role
    };
    Api::<ClusterRole>::all(client.clone())
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let subject =
        json!([{"kind": "ServiceAccount", "name": "remediator-operator", "namespace": ns}]);
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": role_name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name},
        "subjects": subject,
    }))
    .unwrap();
    Api::<ClusterRoleBinding>::all(client.clone())
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    let lease_role = Role {
        metadata: serde_json::from_value(json!({"name": "remediator-leader-election"})).unwrap(),
        rules: Some(rules("leader-election-rbac.yaml")),
    };
    Api::<Role>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &lease_role)
        .await
        .unwrap();
    let lease_binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "remediator-leader-election"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "remediator-leader-election"},
        "subjects": subject,
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &lease_binding)
        .await
        .unwrap();
    let request: TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 3600}}))
            .unwrap();
    let issued = accounts
        .create_token_request("remediator-operator", &PostParams::default(), &request)
        .await
        .unwrap();
    let token = issued
        .status
        .and_then(|s| s.token)
        .expect("the API server issued a token");
    kubeconfig_with_token(cp, &token, &dir.join("operator-kubeconfig"))
}

/// The admin kubeconfig with its token replaced: another identity on the
/// same server.
pub(crate) fn kubeconfig_with_token(cp: &ControlPlane, token: &str, path: &Path) -> PathBuf {
    let admin = std::fs::read_to_string(&cp.kubeconfig).unwrap();
    let start = admin.find("    token: ").unwrap();
    let end = start + admin[start..].find('\n').unwrap();
    let kubeconfig = format!("{}    token: {token}{}", &admin[..start], &admin[end..]);
    std::fs::write(path, kubeconfig).unwrap();
    path.to_path_buf()
}

/// One `remediator operator` process on chosen addresses.
pub(crate) struct Operator {
    child: tokio::process::Child,
    pub(crate) metrics: SocketAddr,
}

pub(crate) fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

impl Operator {
    pub(crate) async fn start(
        cluster: &Cluster,
        api: SocketAddr,
        metrics: SocketAddr,
        agents_reach: &str,
        identity: Option<&str>,
    ) -> Self {
        Self::start_with_env(cluster, api, metrics, agents_reach, identity, &[]).await
    }

    /// [`Operator::start`] with more environment (an OTLP endpoint).
    pub(crate) async fn start_with_env(
        cluster: &Cluster,
        api: SocketAddr,
        metrics: SocketAddr,
        agents_reach: &str,
        identity: Option<&str>,
        env: &[(&str, &str)],
    ) -> Self {
        Self::launch(cluster, api, metrics, agents_reach, identity, env, &[]).await
    }

    /// [`Operator::start`] alone (no leader election) with more arguments.
    pub(crate) async fn start_with_args(
        cluster: &Cluster,
        api: SocketAddr,
        metrics: SocketAddr,
        agents_reach: &str,
        args: &[&str],
    ) -> Self {
        Self::launch(cluster, api, metrics, agents_reach, None, &[], args).await
    }

    async fn launch(
        cluster: &Cluster,
        api: SocketAddr,
        metrics: SocketAddr,
        agents_reach: &str,
        identity: Option<&str>,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Self {
        let mut command = tokio::process::Command::new(remediator_bin());
        command
            .args([
                "operator",
                "--namespace",
                &cluster.ns,
                "--action-api-url",
                agents_reach,
            ])
            .args([
                "--api-listen",
                &api.to_string(),
                "--metrics-listen",
                &metrics.to_string(),
            ])
            .env("KUBECONFIG", &cluster.kubeconfig)
            .env("POD_NAMESPACE", &cluster.ns)
            .env("RUST_LOG", "info,remediator=debug")
            .args(args)
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(cluster.log_file(&format!("operator-{api}")))
            .kill_on_drop(true);
        match identity {
            Some(name) => {
                command.env("POD_NAME", name);
            }
            None => {
                command.arg("--no-leader-election");
            }
        }
        let child = command.spawn().unwrap();
        let up = poll(Duration::from_secs(30), || async {
            get(metrics, "/healthz").await.is_some()
        })
        .await;
        assert!(up, "the operator never served /healthz");
        Self { child, metrics }
    }

    pub(crate) async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }
}

/// One operator behind its Service; returns it and the Service's URL.
async fn operator_behind_service(cluster: &Cluster) -> (Operator, String, SocketAddr, SocketAddr) {
    let (api, metrics) = (loopback(), loopback());
    let url = service(vec![api], vec![metrics]).await;
    let operator = Operator::start(cluster, api, metrics, &url, None).await;
    (operator, url, api, metrics)
}

pub(crate) async fn get(address: SocketAddr, path: &str) -> Option<(u16, String)> {
    let answer = remediator::verify::http_get(address, path, 1 << 20)
        .await
        .ok()?;
    Some((answer.status, answer.body))
}

pub(crate) async fn poll<F, Fut>(limit: Duration, mut done: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if done().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The operator's Service: forwards each connection to a replica that says
/// it leads.
pub(crate) async fn service(backends: Vec<SocketAddr>, metrics: Vec<SocketAddr>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let (backends, metrics) = (backends.clone(), metrics.clone());
            tokio::spawn(async move {
                for (backend, health) in backends.iter().zip(&metrics) {
                    if get(*health, "/readyz").await.is_some_and(|(s, _)| s == 200)
                        && let Ok(mut outbound) = tokio::net::TcpStream::connect(backend).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        return;
                    }
                }
            });
        }
    });
    url
}

pub(crate) struct Cluster {
    pub(crate) cp: &'static ControlPlane,
    pub(crate) client: Client,
    pub(crate) ns: String,
    pub(crate) kubelet: FakeKubelet,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

pub(crate) async fn cluster(name: &str) -> Option<Cluster> {
    let cp = control_plane()?;
    let client = cp.client().await;
    let ns = cp.namespace(&client, name).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = operator_kubeconfig(cp, &client, &ns, dir.path()).await;
    let kubelet = FakeKubelet::start(client.clone(), &ns, dir.path().to_path_buf());
    Some(Cluster {
        cp,
        client,
        ns,
        kubelet,
        kubeconfig,
        _dir: dir,
    })
}

impl Cluster {
    /// A log file in this test's directory; `diagnose` prints them all.
    fn log_file(&self, name: &str) -> std::fs::File {
        std::fs::File::create(self._dir.path().join(format!("{name}.log"))).unwrap()
    }

    /// Every process's log so far, by file name.
    pub(crate) fn logs(&self) -> Vec<(String, String)> {
        let mut logs: Vec<(String, String)> = std::fs::read_dir(self._dir.path())
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
            .map(|e| {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                (e.file_name().to_string_lossy().into_owned(), text)
            })
            .collect();
        logs.sort();
        logs
    }

    /// What a failing assertion needs to be understood: the Pods and Jobs
    /// with their phases, and the tail of every operator log.
    pub(crate) async fn diagnose(&self) -> String {
        let mut out = String::new();
        for what in [
            &["get", "pods,jobs,incidents", "-o", "wide"][..],
            &["get", "events"][..],
        ] {
            let args: Vec<&str> = what.iter().copied().chain(["-n", &self.ns]).collect();
            let ran = self.cp.kubectl().run(&args, "").await;
            out.push_str(&ran.stdout);
            out.push_str(&ran.stderr);
        }
        if let Ok(entries) = std::fs::read_dir(self._dir.path()) {
            for entry in entries
                .flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
            {
                let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                out.push_str(&format!(
                    "\n--- {} (last {} lines)\n",
                    entry.path().display(),
                    tail.len()
                ));
                for line in tail.into_iter().rev() {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        out
    }

    /// `kubectl annotate --overwrite` of Incident `name`, which must work.
    pub(crate) async fn annotate(&self, name: &str, annotation: &str) {
        let ran = self
            .cp
            .kubectl()
            .run(
                &[
                    "annotate",
                    "--overwrite",
                    "-n",
                    &self.ns,
                    "incident",
                    name,
                    annotation,
                ],
                "",
            )
            .await;
        assert_eq!(ran.code, Some(0), "{ran}");
    }

    /// The supervised Policy `careful` (MEDIUM waits for a person, for up
    /// to ten minutes).
    pub(crate) async fn careful_policy(&self) {
        self.policy(
            "careful",
            "{requireConfirmationFor: MEDIUM, approvalTimeoutSeconds: 600}",
        )
        .await;
    }

    /// `name`'s status as it is now (default before the operator wrote one).
    pub(crate) async fn status(&self, name: &str) -> remediator::crd::IncidentStatus {
        self.incidents()
            .get(name)
            .await
            .unwrap()
            .status
            .unwrap_or_default()
    }

    pub(crate) fn incidents(&self) -> Api<Incident> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    async fn apply(&self, yaml: &str) {
        let ran = self
            .cp
            .kubectl()
            .run(&["apply", "-n", &self.ns, "-f", "-"], yaml)
            .await;
        assert_eq!(ran.code, Some(0), "{ran}");
    }

    pub(crate) async fn incident(&self, name: &str, scenario: &str, policy: &str) {
        self.apply(&format!(
            "apiVersion: remediator.dev/v1alpha1\nkind: Incident\nmetadata: {{name: {name}}}\nspec: {{scenario: {scenario}, policyRef: {{name: {policy}}}}}\n"
        ))
        .await;
    }

    pub(crate) async fn policy(&self, name: &str, spec: &str) {
        self.apply(&format!(
            "apiVersion: remediator.dev/v1alpha1\nkind: Policy\nmetadata: {{name: {name}}}\nspec: {spec}\n"
        ))
        .await;
    }

    /// Waits until `name` reaches a phase that `wanted` accepts.
    async fn until(
        &self,
        name: &str,
        limit: Duration,
        wanted: impl Fn(&Incident) -> bool,
    ) -> Incident {
        let api = self.incidents();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let incident = api.get(name).await.unwrap();
            if wanted(&incident) {
                return incident;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "{name} did not get there: {:#?}\n{}",
                    incident.status,
                    self.diagnose().await
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub(crate) async fn phase(&self, name: &str, phase: IncidentPhase) -> Incident {
        self.until(name, Duration::from_secs(180), |i| {
            i.status.as_ref().is_some_and(|s| s.phase == phase)
        })
        .await
    }

    /// Approves every action `name` waits on, as a person would with
    /// `kubectl annotate`, until it ends.
    async fn approve_each_step(&self, name: &str) {
        let mut approved = Vec::new();
        loop {
            let incident = self
                .until(name, Duration::from_secs(180), |i| {
                    i.status.as_ref().is_some_and(|s| {
                        s.phase.is_terminal()
                            || s.pending_approval
                                .as_ref()
                                .is_some_and(|p| !approved.contains(&p.step))
                    })
                })
                .await;
            let status = incident.status.unwrap();
            let Some(pending) = status
                .pending_approval
                .filter(|_| !status.phase.is_terminal())
            else {
                return;
            };
            self.annotate(name, &format!("remediator.dev/approve={}", pending.step))
                .await;
            approved.push(pending.step);
        }
    }

    /// Each step the sidecar ran or noted, exactly once, as in status.
    pub(crate) fn assert_no_step_twice(&self, incident: &Incident) {
        let name = incident.metadata.name.clone().unwrap();
        let journal = self.kubelet.journal(&format!("{name}-scenario"));
        let steps: Vec<u32> = journal.iter().map(|t| t.step).collect();
        let expected: Vec<u32> = (1..=journal.len() as u32).collect();
        assert_eq!(
            steps, expected,
            "{name}: the journal skips or repeats steps"
        );
        let status = incident.status.as_ref().unwrap();
        assert_eq!(
            journal.len() as u32,
            status.steps,
            "{name}: journal vs status"
        );
        let recorded: Vec<u32> = status.actions.iter().map(|a| a.step).collect();
        assert_eq!(recorded, expected, "{name}: status actions");
    }
}

pub(crate) fn assert_resolved(incident: &Incident) {
    let status = incident.status.as_ref().unwrap();
    assert_eq!(status.phase, IncidentPhase::Resolved, "{status:#?}");
    assert_eq!(status.verified.as_ref().map(|v| v.healthy), Some(true));
    assert!(
        status.steps > 0 && !status.actions.is_empty(),
        "{status:#?}"
    );
    assert!(status.time_to_resolve_seconds.is_some());
    assert!(status.sandbox.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_example_incident_resolves_under_the_documented_rbac() {
    let Some(cluster) = cluster("operator-examples").await else {
        return;
    };
    let (operator, _, _, _) = operator_behind_service(&cluster).await;
    let examples = repo().join("examples");
    let ran = cluster
        .cp
        .kubectl()
        .run(&["apply", "-n", &cluster.ns, "-f", path_str(&examples)], "")
        .await;
    assert_eq!(ran.code, Some(0), "{ran}");
    let names: Vec<String> = cluster
        .incidents()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|i| i.metadata.name)
        .collect();
    assert!(names.len() >= 13, "an Incident per scenario: {names:?}");
    // The one under the supervised Policy waits for a person, as a user
    // would see it: AwaitingApproval, then `kubectl annotate`.
    cluster.approve_each_step("stale-pidfile").await;
    for name in &names {
        let incident = cluster.phase(name, IncidentPhase::Resolved).await;
        assert_resolved(&incident);
        cluster.assert_no_step_twice(&incident);
    }
    let optimized = cluster
        .incidents()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|i| i.spec.policy_ref.name == "optimized")
        .count();
    let policies: Api<Policy> = Api::namespaced(cluster.client.clone(), &cluster.ns);
    let scorecard = poll(Duration::from_secs(60), || async {
        let policy = policies.get("optimized").await.unwrap();
        policy
            .status
            .is_some_and(|s| s.resolved as usize == optimized && s.fix_rate == Some(1.0))
    })
    .await;
    assert!(
        scorecard,
        "{:#?}",
        policies.get("optimized").await.unwrap().status
    );
    let listing = cluster
        .cp
        .kubectl()
        .run(&["get", "-n", &cluster.ns, "incidents,policies"], "")
        .await;
    assert!(listing.stdout.contains("Resolved"), "{listing}");
    eprintln!("{}", listing.stdout);
    let (status, metrics) = get(operator.metrics, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    assert!(
        metrics.contains("remediator_incidents_total{outcome=\"Resolved\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("remediator_actions_total{decision=\"Allowed\""),
        "{metrics}"
    );
    check_metrics_with_promtool(&metrics).await;
}

/// `promtool check metrics` on a real scrape, where promtool is installed
/// (CI installs it).
pub(crate) async fn check_metrics_with_promtool(scrape: &str) {
    let Ok(mut child) = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have promtool (apt prometheus)"
        );
        eprintln!("skipped promtool: not installed");
        return;
    };
    use tokio::io::AsyncWriteExt;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.as_bytes())
        .await
        .unwrap();
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_confirmation_waits_for_an_annotation_and_a_rejection_fails() {
    let Some(cluster) = cluster("operator-approvals").await else {
        return;
    };
    let (operator, _, _, _) = operator_behind_service(&cluster).await;
    cluster.careful_policy().await;
    cluster
        .incident("approved", "stale_lockfile", "careful")
        .await;
    cluster
        .incident("rejected", "stale_lockfile", "careful")
        .await;
    for (name, verb) in [("approved", "approve"), ("rejected", "reject")] {
        let waiting = cluster.phase(name, IncidentPhase::AwaitingApproval).await;
        let pending = waiting.status.unwrap().pending_approval.unwrap();
        assert_eq!(pending.command, "rm -f -- 'service.lock'");
        cluster
            .annotate(name, &format!("remediator.dev/{verb}={}", pending.step))
            .await;
    }
    let approved = cluster.phase("approved", IncidentPhase::Resolved).await;
    assert_resolved(&approved);
    let rm = approved
        .status
        .as_ref()
        .unwrap()
        .actions
        .iter()
        .find(|a| a.command == "rm -f -- 'service.lock'")
        .unwrap();
    assert_eq!(
        (rm.decided_by.as_str(), format!("{:?}", rm.decision)),
        ("annotation", "Confirmed".into())
    );
    let rejected = cluster.phase("rejected", IncidentPhase::Failed).await;
    let status = rejected.status.unwrap();
    assert_eq!(status.reason.as_deref(), Some("ConfirmationRefused"));
    assert_eq!(status.verified.map(|v| v.healthy), Some(false));
    drop(operator);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_operator_killed_mid_incident_resumes_it_and_repeats_no_step() {
    let Some(cluster) = cluster("operator-restart").await else {
        return;
    };
    let (mut operator, url, api, metrics) = operator_behind_service(&cluster).await;
    cluster.careful_policy().await;
    cluster
        .incident("paused", "stale_lockfile", "careful")
        .await;
    let waiting = cluster
        .phase("paused", IncidentPhase::AwaitingApproval)
        .await;
    let step = waiting.status.unwrap().pending_approval.unwrap().step;
    operator.kill().await;
    // The same Pod restarted behind the same Service.
    let restarted = Operator::start(&cluster, api, metrics, &url, None).await;
    cluster
        .annotate("paused", &format!("remediator.dev/approve={step}"))
        .await;
    let resolved = cluster.phase("paused", IncidentPhase::Resolved).await;
    assert_resolved(&resolved);
    cluster.assert_no_step_twice(&resolved);
    drop(restarted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_two_replicas_only_the_leader_acts_and_killing_it_hands_over() {
    let Some(cluster) = cluster("operator-leader").await else {
        return;
    };
    let apis = [loopback(), loopback()];
    let healths = [loopback(), loopback()];
    let url = service(apis.to_vec(), healths.to_vec()).await;
    let mut replicas = vec![
        Operator::start(&cluster, apis[0], healths[0], &url, Some("replica-0")).await,
        Operator::start(&cluster, apis[1], healths[1], &url, Some("replica-1")).await,
    ];
    let leaders = || async {
        let mut leading = Vec::new();
        for (i, health) in healths.iter().enumerate() {
            if get(*health, "/readyz").await.is_some_and(|(s, _)| s == 200) {
                leading.push(i);
            }
        }
        leading
    };
    assert!(
        poll(Duration::from_secs(60), || async {
            leaders().await.len() == 1
        })
        .await,
        "no single leader"
    );
    let leader = leaders().await[0];
    // A follower refuses agents.
    let follower_api = apis[1 - leader];
    let (status, _) = get(follower_api, "/v1/incidents/x/y/session")
        .await
        .unwrap();
    assert_eq!(status, 503);
    cluster
        .incident("before", "readiness_probe_fail", "optimized-leader")
        .await;
    cluster.policy("optimized-leader", "{}").await;
    assert_resolved(&cluster.phase("before", IncidentPhase::Resolved).await);
    replicas[leader].kill().await;
    let handed_over = poll(Duration::from_secs(60), || async {
        leaders().await == vec![1 - leader]
    })
    .await;
    assert!(
        handed_over,
        "the other replica never took over: {:?}",
        leaders().await
    );
    cluster
        .incident("after", "stale_lockfile", "optimized-leader")
        .await;
    assert_resolved(&cluster.phase("after", IncidentPhase::Resolved).await);
    drop(replicas);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleting_an_incident_removes_its_pod_job_and_secrets() {
    let Some(cluster) = cluster("operator-delete").await else {
        return;
    };
    let (operator, _, _, _) = operator_behind_service(&cluster).await;
    cluster.policy("plain", "{}").await;
    cluster.incident("doomed", "stale_lockfile", "plain").await;
    cluster.phase("doomed", IncidentPhase::Resolved).await;
    cluster
        .incidents()
        .delete("doomed", &DeleteParams::background())
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &cluster.ns);
    let jobs: Api<Job> = Api::namespaced(cluster.client.clone(), &cluster.ns);
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), &cluster.ns);
    let labels = ListParams::default().labels("remediator.dev/incident=doomed");
    let gone = poll(Duration::from_secs(120), || async {
        pods.list(&labels).await.unwrap().items.is_empty()
            && jobs.list(&labels).await.unwrap().items.is_empty()
            && secrets.list(&labels).await.unwrap().items.is_empty()
    })
    .await;
    assert!(gone, "the Incident's objects outlived it");
    drop(operator);
}
