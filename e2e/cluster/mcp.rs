//! `remediator mcp` with a real MCP client (PyPI mcp 2.3.0) on the real
//! control plane, over stdio and streamable HTTP: it lists incidents and
//! reads a pending approval; without --allow-approvals there is no
//! `approve`; with it, `approve` acts as the caller: refused for a user
//! whose RBAC cannot annotate Incidents (nothing changes), accepted for
//! one who can, and the incident resolves with the answer recorded.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, PostParams};
use remediator::crd::IncidentPhase;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::control_plane::repo;
use crate::kubelet::remediator_bin;
use crate::operator::{
    Cluster, Operator, assert_resolved, cluster, free_port, get, kubeconfig_with_token, loopback,
    poll, service,
};

/// The client's python, or None outside CI when it is not installed.
fn python() -> Option<PathBuf> {
    let out = std::process::Command::new(repo().join("scripts/mcp-client"))
        .arg("python")
        .output()
        .ok()?;
    if !out.status.success() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the MCP tests: scripts/mcp-client install (.ci/run does)"
        );
        return None;
    }
    Some(PathBuf::from(String::from_utf8(out.stdout).ok()?.trim()))
}

/// A service account in the test's namespace bound to `verbs` on
/// Incidents and Policies only: its token and a kubeconfig with it.
async fn identity(cluster: &Cluster, name: &str, verbs: &[&str], dir: &Path) -> (String, PathBuf) {
    let ns = &cluster.ns;
    let client = &cluster.client;
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let account: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    accounts
        .create(&PostParams::default(), &account)
        .await
        .unwrap();
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": name},
        "rules": [{"apiGroups": ["remediator.dev"], "resources": ["incidents", "policies"], "verbs": verbs}],
    }))
    .unwrap();
    Api::<Role>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    let request: TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 3600}}))
            .unwrap();
    let token = accounts
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .unwrap()
        .status
        .and_then(|s| s.token)
        .unwrap();
    let kubeconfig =
        kubeconfig_with_token(cluster.cp, &token, &dir.join(format!("{name}.kubeconfig")));
    (token, kubeconfig)
}

/// Runs the client with `calls` and returns its answers, one per call.
async fn client(python: &Path, mode: &[String], env: &[(&str, &str)], calls: Value) -> Vec<Value> {
    let script = repo().join("e2e/cluster/mcp_client.py");
    let mut child = tokio::process::Command::new(python)
        .arg(&script)
        .args(mode)
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(calls.to_string().as_bytes()).await.unwrap();
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the MCP client finished within 60 s")
        .unwrap();
    assert!(
        out.status.success(),
        "the MCP client failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "the client's answer is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// The client's arguments to start `remediator mcp` over stdio (as whoever
/// the KUBECONFIG it is given names).
fn stdio_mode(ns: &str, approvals: bool) -> Vec<String> {
    let bin = remediator_bin().to_string_lossy().into_owned();
    let mut mode: Vec<String> = ["stdio", "--", &bin, "mcp", "--namespace", ns]
        .map(String::from)
        .to_vec();
    if approvals {
        mode.push("--allow-approvals".into());
    }
    mode
}

/// The tool answered with an error whose text holds `needle`.
fn assert_tool_error(answer: &Value, needle: &str) {
    assert_eq!(answer["is_error"], true, "{answer}");
    assert!(
        answer["text"].as_str().unwrap_or_default().contains(needle),
        "{answer}"
    );
}

fn text_json(answer: &Value) -> Value {
    serde_json::from_str(answer["text"].as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {answer}"))
}

/// A `remediator mcp --http` process; killed when dropped.
struct HttpServer {
    _child: tokio::process::Child,
    url: String,
}

async fn http_server(kubeconfig: &Path, ns: &str, approvals: bool) -> HttpServer {
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut command = tokio::process::Command::new(remediator_bin());
    command
        .args(["mcp", "--namespace", ns, "--http", &address.to_string()])
        .env("KUBECONFIG", kubeconfig)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    if approvals {
        command.arg("--allow-approvals");
    }
    let child = command.spawn().unwrap();
    assert!(
        poll(Duration::from_secs(20), || async {
            get(address, "/healthz").await.is_some()
        })
        .await,
        "remediator mcp --http never answered"
    );
    HttpServer {
        _child: child,
        url: format!("http://{address}/mcp"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_assistant_reads_over_mcp_and_approves_only_as_a_user_rbac_allows() {
    let Some(python) = python() else {
        return;
    };
    let Some(cluster) = cluster("mcp").await else {
        return;
    };
    let (api, metrics) = (loopback(), loopback());
    let url = service(vec![api], vec![metrics]).await;
    let _operator = Operator::start(&cluster, api, metrics, &url, None).await;
    cluster.careful_policy().await;
    cluster
        .incident("waiting", "stale_lockfile", "careful")
        .await;
    let waiting = cluster
        .phase("waiting", IncidentPhase::AwaitingApproval)
        .await;
    let pending = waiting.status.unwrap().pending_approval.unwrap();
    let (step, waiting_hash) = (pending.step, pending.action_hash.unwrap());

    let dir = tempfile::tempdir().unwrap();
    let ns = cluster.ns.clone();
    let (_, reader) = identity(
        &cluster,
        "mcp-reader",
        &["get", "list", "watch"],
        dir.path(),
    )
    .await;
    let (viewer_token, viewer) = identity(&cluster, "viewer", &["get", "list"], dir.path()).await;
    let (approver_token, _) =
        identity(&cluster, "approver", &["get", "list", "patch"], dir.path()).await;
    let viewer = viewer.to_string_lossy().into_owned();
    let decide = |verb: &str| json!({"tool": verb, "args": {"name": "waiting", "step": step, "action_hash": waiting_hash}});

    // stdio, read-only, as a viewer: reads, and no approve to call.
    let answers = client(
        &python,
        &stdio_mode(&ns, false),
        &[("KUBECONFIG", viewer.as_str())],
        json!([
            {"list_tools": true},
            {"tool": "list_incidents", "args": {}},
            {"tool": "pending_approval", "args": {"name": "waiting"}},
            {"list_resources": true},
            {"read_resource": format!("remediator://incidents/{ns}/waiting")},
            decide("approve"),
        ]),
    )
    .await;
    let tools = answers[0]["tools"].as_array().unwrap();
    assert!(
        tools.contains(&json!("pending_approval")) && !tools.contains(&json!("approve")),
        "{tools:?}"
    );
    let listed = text_json(&answers[1]);
    assert_eq!(listed["incidents"][0]["name"], "waiting", "{listed}");
    assert_eq!(listed["incidents"][0]["waitingStep"], step);
    let pending = text_json(&answers[2]);
    assert_eq!(
        (
            pending["step"].clone(),
            pending["command"].clone(),
            pending["risk"].clone()
        ),
        (
            json!(step),
            json!("rm -f -- 'service.lock'"),
            json!("MEDIUM")
        ),
        "{pending}"
    );
    assert!(pending["reason"].as_str().is_some_and(|r| !r.is_empty()));
    let resources = answers[3]["resources"].as_array().unwrap();
    assert!(resources.contains(&json!(format!("remediator://incidents/{ns}/waiting"))));
    assert!(
        answers[4]["text"]
            .as_str()
            .unwrap()
            .contains("AwaitingApproval")
    );
    assert!(
        answers[5].get("protocol_error").is_some() || answers[5]["is_error"] == true,
        "a read-only server must not approve: {}",
        answers[5]
    );

    // stdio with approvals, as the viewer: RBAC refuses the patch.
    let answers = client(
        &python,
        &stdio_mode(&ns, true),
        &[("KUBECONFIG", viewer.as_str())],
        json!([decide("approve")]),
    )
    .await;
    assert_tool_error(&answers[0], "forbidden");

    // HTTP with approvals; the server itself may only read.
    let server = http_server(&reader, &ns, true).await;
    let http = ["http".to_string(), server.url.clone()];
    // Without a token nothing is read or answered: the server reads as its
    // callers (no --anonymous-reads).
    let answers = client(
        &python,
        &http,
        &[],
        json!([decide("approve"), {"tool": "list_incidents", "args": {}}]),
    )
    .await;
    for answer in &answers {
        assert_tool_error(answer, "Bearer");
    }
    let answers = client(
        &python,
        &http,
        &[("MCP_BEARER", viewer_token.as_str())],
        json!([decide("approve"), {"tool": "list_incidents", "args": {}}]),
    )
    .await;
    assert_tool_error(&answers[0], "forbidden");
    assert_eq!(answers[1]["is_error"], false, "{}", answers[1]);
    // Nothing changed: still waiting at the same step, no answer on it.
    let still = cluster.incidents().get("waiting").await.unwrap();
    assert_eq!(
        still.status.as_ref().unwrap().phase,
        IncidentPhase::AwaitingApproval
    );
    let annotations = still.metadata.annotations.clone().unwrap_or_default();
    assert!(
        !annotations.contains_key("remediator.dev/approve"),
        "{annotations:?}"
    );

    let answers = client(
        &python,
        &http,
        &[("MCP_BEARER", approver_token.as_str())],
        json!([
            {"tool": "approve", "args": {"name": "waiting", "step": step, "action_hash": "0".repeat(64)}},
            decide("approve"),
        ]),
    )
    .await;
    assert_eq!(answers[0]["is_error"], true, "a stale hash: {}", answers[0]);
    assert_eq!(answers[1]["is_error"], false, "{}", answers[1]);
    assert_eq!(text_json(&answers[1])["answered"], "approved");

    let resolved = cluster.phase("waiting", IncidentPhase::Resolved).await;
    assert_resolved(&resolved);
    let action = resolved
        .status
        .as_ref()
        .unwrap()
        .actions
        .iter()
        .find(|a| a.step == step)
        .cloned()
        .unwrap();
    assert_eq!(action.decided_by, "annotation");
    let who = action.approver.expect("who decided is recorded");
    assert_eq!(
        who.field_manager.as_deref(),
        Some(remediator::mcp::FIELD_MANAGER)
    );
}
