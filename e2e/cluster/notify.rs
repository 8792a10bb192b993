//! Notices and signed links on the real control plane, judged by what a
//! real HTTP receiver got and what the incident did: a waiting action is
//! announced to a Slack-format and a generic webhook (with the planted key
//! nowhere in them); its approve link opens a page that changes nothing,
//! and the page's POST runs the step even after the operator was killed
//! between the notice and the click; the resolved notice arrives once per
//! webhook, also after a restart; a reject link fails another incident;
//! replayed, expired, tampered, other-incident and foreign-key links are
//! refused and counted; a webhook that is down never holds an incident up.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use remediator::crd::{Incident, IncidentPhase};
use remediator::operator::notify::links::{Claims, LinkKey};
use serde_json::{Value, json};

use crate::operator::{
    Cluster, Operator, assert_resolved, cluster, free_port, get, loopback, poll, service,
};

/// The key the scenario's fix restores (bad_env_config): the agent only
/// ever sees it as a handle, so no notice may carry it.
const PLANTED: &str = "local-dev-key";

/// One POST the receiver got: its path, notice id header and body.
#[derive(Debug, Clone)]
struct Posted {
    hook: String,
    id: Option<String>,
    body: Value,
}

/// A webhook receiver: every POST, by path.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<Posted>>>);

impl Received {
    fn all(&self) -> Vec<Posted> {
        self.0.lock().unwrap().clone()
    }

    /// Notices to `hook` about `incident`'s `event` (at `step`, if given).
    fn notices(&self, hook: &str, incident: &str, event: &str, step: Option<u32>) -> Vec<Value> {
        self.all()
            .into_iter()
            .filter(
                |Posted {
                     hook: path, body, ..
                 }| {
                    let generic = body.get("event").is_some();
                    path == hook
                        && if generic {
                            body["event"] == event
                                && body["incident"]["name"] == incident
                                && step.is_none_or(|s| body["step"] == s)
                        } else {
                            // Slack: the summary says what happened.
                            let text = body["text"].as_str().unwrap_or_default();
                            text.contains(&format!("/{incident} ("))
                                && match event {
                                    "ApprovalRequested" => {
                                        text.contains("waits for approval")
                                            && step.is_none_or(|s| {
                                                text.contains(&format!("step {s} "))
                                            })
                                    }
                                    "Resolved" => text.contains(" resolved in "),
                                    "Failed" => text.contains(" failed after "),
                                    _ => false,
                                }
                        }
                },
            )
            .map(|posted| posted.body)
            .collect()
    }
}

async fn receive(
    State(received): State<Received>,
    Path(hook): Path<String>,
    headers: HeaderMap,
    body: String,
) -> &'static str {
    let id = headers
        .get("x-remediator-notice-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = serde_json::from_str(&body).unwrap_or(Value::String(body));
    received.0.lock().unwrap().push(Posted { hook, id, body });
    "ok"
}

async fn receiver() -> (Received, SocketAddr) {
    let received = Received::default();
    let app = axum::Router::new()
        .route("/{hook}", axum::routing::post(receive))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (received, address)
}

async fn secret(cluster: &Cluster, name: &str, data: Value) {
    let secret: Secret =
        serde_json::from_value(json!({"metadata": {"name": name}, "stringData": data})).unwrap();
    Api::<Secret>::namespaced(cluster.client.clone(), &cluster.ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
}

/// A request to a link: its status and body.
async fn follow(method: reqwest::Method, url: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .request(method, url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn page(url: &str) -> (u16, String) {
    follow(reqwest::Method::GET, url).await
}

async fn click(url: &str) -> (u16, String) {
    follow(reqwest::Method::POST, url).await
}

/// The operator's counter of links by outcome.
async fn links_counted(metrics: SocketAddr, outcome: &str) -> u64 {
    let (_, text) = get(metrics, "/metrics").await.unwrap_or_default();
    let wanted = format!("remediator_approval_links_total{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&wanted))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

async fn reconciles(metrics: SocketAddr) -> u64 {
    let (_, text) = get(metrics, "/metrics").await.unwrap_or_default();
    text.lines()
        .find_map(|line| line.strip_prefix("remediator_reconcile_duration_seconds_count "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

struct Links {
    base: String,
    listen: SocketAddr,
    key_file: std::path::PathBuf,
}

async fn start_operator(
    cluster: &Cluster,
    api: SocketAddr,
    metrics: SocketAddr,
    url: &str,
    links: &Links,
) -> Operator {
    Operator::start_with_args(
        cluster,
        api,
        metrics,
        url,
        &[
            "--links-base-url",
            &links.base,
            "--links-listen",
            &links.listen.to_string(),
            "--links-key-file",
            links.key_file.to_str().unwrap(),
            // The test's receiver listens on this machine's loopback.
            "--webhook-allow-loopback",
        ],
    )
    .await
}

async fn waiting_at(cluster: &Cluster, name: &str, after: u32) -> (Incident, u32) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        let incident = cluster.incidents().get(name).await.unwrap();
        let status = incident.status.clone().unwrap_or_default();
        assert!(
            !status.phase.is_terminal(),
            "{name} ended while a step was expected to wait: {status:#?}"
        );
        if let Some(p) = status.pending_approval.as_ref().filter(|p| p.step > after)
            && status.phase == IncidentPhase::AwaitingApproval
        {
            return (incident, p.step);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} never waited past step {after}: {status:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_waiting_action_is_announced_and_answered_through_its_signed_link() {
    let Some(cluster) = cluster("notify").await else {
        return;
    };
    let (received, hooks) = receiver().await;
    let key = [7u8; 32];
    let key_dir = tempfile::tempdir().unwrap();
    let key_file = key_dir.path().join("links-key");
    std::fs::write(&key_file, key).unwrap();
    let dead = SocketAddr::from(([127, 0, 0, 1], free_port()));
    secret(
        &cluster,
        "hooks",
        json!({
            "slack": format!("http://{hooks}/slack"),
            "generic": format!("http://{hooks}/generic"),
            "down": format!("http://{dead}/down"),
        }),
    )
    .await;
    cluster
        .policy(
            "careful",
            "{requireConfirmationFor: MEDIUM, approvalTimeoutSeconds: 600, notify: [\
              {name: slack, urlSecretRef: {name: hooks, key: slack}, format: slack},\
              {name: generic, urlSecretRef: {name: hooks, key: generic}},\
              {name: down, urlSecretRef: {name: hooks, key: down}, events: [Resolved]}]}",
        )
        .await;
    let links = Links {
        listen: loopback(),
        base: String::new(),
        key_file,
    };
    let links = Links {
        base: format!("http://{}", links.listen),
        ..links
    };
    let (api, metrics) = (loopback(), loopback());
    let url = service(vec![api], vec![metrics]).await;
    let mut operator = start_operator(&cluster, api, metrics, &url, &links).await;
    cluster
        .incident("linked", "bad_env_config", "careful")
        .await;
    cluster
        .incident("refused", "stale_lockfile", "careful")
        .await;

    // The first wait is announced to both webhooks, with links.
    let (incident, first) = waiting_at(&cluster, "linked", 0).await;
    let notified = poll(Duration::from_secs(60), || async {
        !received
            .notices("generic", "linked", "ApprovalRequested", Some(first))
            .is_empty()
            && !received
                .notices("slack", "linked", "ApprovalRequested", Some(first))
                .is_empty()
    })
    .await;
    assert!(
        notified,
        "no approval notice for step {first}: {:#?}",
        received.all()
    );
    let generic = received
        .notices("generic", "linked", "ApprovalRequested", Some(first))
        .remove(0);
    let pending = incident
        .status
        .as_ref()
        .unwrap()
        .pending_approval
        .clone()
        .unwrap();
    assert_eq!(generic["incident"]["name"], "linked");
    assert_eq!(generic["incident"]["scenario"], "bad_env_config");
    assert_eq!(generic["action"]["command"], pending.command.as_str());
    assert_eq!(generic["action"]["risk"], pending.risk.to_string());
    assert_eq!(generic["action"]["reason"], pending.reason.as_str());
    assert_eq!(
        generic["action"]["actionHash"],
        pending.action_hash.clone().unwrap().as_str()
    );
    assert!(
        generic["recentActions"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    );
    let slack = received
        .notices("slack", "linked", "ApprovalRequested", Some(first))
        .remove(0);
    let buttons: Vec<&Value> = slack["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "actions")
        .flat_map(|b| b["elements"].as_array().unwrap())
        .collect();
    assert_eq!(buttons.len(), 2, "{slack}");
    assert!(buttons[0]["url"].as_str().unwrap().starts_with(&links.base));
    let approve = generic["links"]["approve"].as_str().unwrap().to_string();
    let reject = generic["links"]["reject"].as_str().unwrap().to_string();

    // The page shows the action and changes nothing.
    let (code, body) = page(&approve).await;
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains(&format!("Approve step {first}")) && body.contains("<form method=\"post\">"),
        "{body}"
    );
    let still = cluster.incidents().get("linked").await.unwrap();
    assert_eq!(still.status.unwrap().phase, IncidentPhase::AwaitingApproval);

    // Altered, other-incident, foreign-key and expired links are refused.
    let (prefix, tag) = approve.rsplit_once('.').unwrap();
    let flipped = format!(
        "{prefix}.{}{}",
        if tag.starts_with('A') { 'B' } else { 'A' },
        &tag[1..]
    );
    assert_eq!(click(&flipped).await.0, 403, "a tampered signature");
    let other = approve.replace("/linked/", "/refused/");
    assert_eq!(click(&other).await.0, 403, "another incident's path");
    let uid = incident.metadata.uid.clone().unwrap();
    let claims = |expires: i64| Claims {
        namespace: cluster.ns.clone(),
        name: "linked".into(),
        uid: uid.clone(),
        step: first,
        action_hash: pending.action_hash.clone().unwrap(),
        approve: true,
        expires,
        channel: "generic".into(),
        id: "forged".into(),
    };
    let signed = |key: &LinkKey, claims: &Claims| {
        format!(
            "{}{}",
            links.base,
            remediator::operator::notify::links::path(claims, &key.sign(claims))
        )
    };
    let foreign = LinkKey::new(&[9u8; 32]).unwrap();
    assert_eq!(
        click(&signed(&foreign, &claims(i64::MAX))).await.0,
        403,
        "another key"
    );
    let ours = LinkKey::new(&key).unwrap();
    assert_eq!(click(&signed(&ours, &claims(1))).await.0, 410, "expired");
    let still = cluster.incidents().get("linked").await.unwrap();
    assert_eq!(
        still.status.unwrap().phase,
        IncidentPhase::AwaitingApproval,
        "refused links changed nothing"
    );
    assert_counted(
        metrics,
        &[
            ("bad_signature", 2),
            ("other_incident", 1),
            ("expired", 1),
            ("accepted", 0),
        ],
    )
    .await;

    // Killed between the notice and the click: the link still holds.
    operator.kill().await;
    let mut operator = start_operator(&cluster, api, metrics, &url, &links).await;
    let (code, body) = click(&approve).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("approved"), "{body}");
    let (code, body) = click(&approve).await;
    assert_eq!(code, 409, "a replay: {body}");
    assert!(body.contains("used already"), "{body}");
    assert_eq!(
        click(&reject).await.0,
        409,
        "the other answer, after one was given"
    );
    assert_counted(metrics, &[("accepted", 1), ("used", 1), ("not_waiting", 1)]).await;

    // The rest of the steps, each through its own link.
    let mut last = first;
    loop {
        let status = cluster.status("linked").await;
        if status.phase.is_terminal() {
            break;
        }
        let next = poll(Duration::from_secs(120), || async {
            let status = cluster.status("linked").await;
            status.phase.is_terminal() || status.pending_approval.is_some_and(|p| p.step > last)
        })
        .await;
        if !next {
            let status = cluster.incidents().get("linked").await.unwrap().status;
            panic!(
                "linked neither ended nor waited again: {status:#?}\n{}",
                cluster.diagnose().await
            );
        }
        let status = cluster.status("linked").await;
        let Some(pending) = status
            .pending_approval
            .filter(|_| !status.phase.is_terminal())
        else {
            continue;
        };
        let step = pending.step;
        assert!(
            poll(Duration::from_secs(60), || async {
                !received
                    .notices("generic", "linked", "ApprovalRequested", Some(step))
                    .is_empty()
            })
            .await,
            "no notice for step {step}"
        );
        let notice = received
            .notices("generic", "linked", "ApprovalRequested", Some(step))
            .remove(0);
        let (code, body) = click(notice["links"]["approve"].as_str().unwrap()).await;
        assert_eq!(code, 200, "{body}");
        last = step;
    }
    let resolved = cluster.phase("linked", IncidentPhase::Resolved).await;
    assert_resolved(&resolved);
    let status = resolved.status.clone().unwrap();
    let answered = status.actions.iter().find(|a| a.step == first).unwrap();
    assert_eq!(answered.decided_by, "link");
    let who = answered.approver.clone().unwrap();
    assert_eq!(
        (who.via.as_str(), who.channel.as_deref()),
        ("link", Some("generic"))
    );
    assert!(who.link_id.is_some());

    // The resolved notice reaches each webhook that wants it once; the
    // dead one is recorded as failed, and the incident resolved anyway.
    let recorded = poll(Duration::from_secs(60), || async {
        let status = cluster.status("linked").await;
        ["slack", "generic", "down"].iter().all(|hook| {
            status
                .notices
                .iter()
                .any(|n| n.webhook == *hook && n.event == remediator::crd::NoticeEvent::Resolved)
        })
    })
    .await;
    assert!(
        recorded,
        "{:#?}",
        cluster.incidents().get("linked").await.unwrap().status
    );
    let status = cluster
        .incidents()
        .get("linked")
        .await
        .unwrap()
        .status
        .unwrap();
    let down = status.notices.iter().find(|n| n.webhook == "down").unwrap();
    assert!(!down.delivered && down.attempts > 1, "{down:?}");
    let condition = status
        .conditions
        .iter()
        .find(|c| c.type_ == "NoticesDelivered")
        .unwrap();
    assert_eq!(
        (condition.status.as_str(), condition.reason.as_str()),
        ("False", "NoticeFailed")
    );
    assert_eq!(status.phase, IncidentPhase::Resolved);
    // Once, also after another restart and more reconciles.
    operator.kill().await;
    let _operator = start_operator(&cluster, api, metrics, &url, &links).await;
    let before = reconciles(metrics).await;
    cluster.annotate("linked", "touched=1").await;
    assert!(
        poll(Duration::from_secs(30), || async {
            reconciles(metrics).await > before
        })
        .await
    );
    for hook in ["slack", "generic"] {
        assert_eq!(
            received.notices(hook, "linked", "Resolved", None).len(),
            1,
            "{hook}: {:#?}",
            received.all()
        );
    }

    // A reject link fails the other incident, which is announced.
    let (_, step) = waiting_at(&cluster, "refused", 0).await;
    assert!(
        poll(Duration::from_secs(60), || async {
            !received
                .notices("generic", "refused", "ApprovalRequested", Some(step))
                .is_empty()
        })
        .await
    );
    let notice = received
        .notices("generic", "refused", "ApprovalRequested", Some(step))
        .remove(0);
    let (code, body) = click(notice["links"]["reject"].as_str().unwrap()).await;
    assert_eq!(code, 200, "{body}");
    let failed = cluster.phase("refused", IncidentPhase::Failed).await;
    assert_eq!(
        failed.status.as_ref().unwrap().reason.as_deref(),
        Some("ConfirmationRefused")
    );
    assert!(
        poll(Duration::from_secs(60), || async {
            !received
                .notices("generic", "refused", "Failed", None)
                .is_empty()
                && !received
                    .notices("slack", "refused", "Failed", None)
                    .is_empty()
        })
        .await
    );

    // Every notice carried its id; the planted key is in none of them.
    for Posted { hook, id, body } in received.all() {
        assert!(id.is_some(), "{hook}: no notice id");
        assert!(!body.to_string().contains(PLANTED), "{hook}: {body}");
    }
    assert_eq!(
        links_counted(metrics, "accepted").await,
        1,
        "the reject link"
    );
}

/// Each outcome counted by the operator process now running.
async fn assert_counted(metrics: SocketAddr, expected: &[(&str, u64)]) {
    for (outcome, count) in expected {
        assert_eq!(links_counted(metrics, outcome).await, *count, "{outcome}");
    }
}
