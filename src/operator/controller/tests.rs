//! The controller against a mocked API server (tower-test), in the style of
//! controller-rs's `ApiServerVerifier`: every request the reconcile makes
//! is checked in order (method, path, query, content type, body) and
//! answered; when the reconcile returns, no request is left unanswered.

use std::time::Duration;

use axum::http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock::{Handle, SendResponse};

use super::*;
use crate::agent::episode::{Episode, EpisodeConfig};
use crate::crd::{IncidentStatus, PolicySpec};
use crate::protocol::Task;
use crate::sandbox::{Containment, Layer};

const INCIDENTS: &str = "/apis/remediator.dev/v1alpha1/namespaces/shop/incidents";
const POLICIES: &str = "/apis/remediator.dev/v1alpha1/namespaces/shop/policies";
const PODS: &str = "/api/v1/namespaces/shop/pods";
const JOBS: &str = "/apis/batch/v1/namespaces/shop/jobs";
const SECRETS: &str = "/api/v1/namespaces/shop/secrets";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/shop/events";
const APPLY: &str = "force=true&fieldManager=remediator-operator";

/// One request as the API server saw it.
struct Seen {
    method: Method,
    uri: String,
    content_type: Option<String>,
    body: Value,
}

/// The API server's side of the mocked connection.
struct ApiServer(Handle<Request<Body>, Response<Body>>);

impl ApiServer {
    /// The next request, which must be `method` on `uri` (path and query).
    async fn expect(&mut self, method: Method, uri: &str) -> (Seen, Answer) {
        let (request, send) = tokio::time::timeout(Duration::from_secs(10), self.0.next_request())
            .await
            .unwrap_or_else(|_| panic!("no request came; expected {method} {uri}"))
            .unwrap_or_else(|| panic!("the client is gone; expected {method} {uri}"));
        let seen = Seen {
            method: request.method().clone(),
            uri: request.uri().to_string(),
            content_type: request
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string()),
            body: {
                let bytes = request.into_body().collect_bytes().await.unwrap();
                if bytes.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_slice(&bytes).unwrap()
                }
            },
        };
        assert_eq!(
            (&seen.method, seen.uri.as_str()),
            (&method, uri),
            "unexpected request, body {:#}",
            seen.body
        );
        (seen, Answer(send))
    }

    /// A GET answered with `object`, or 404 when it is None.
    async fn get(&mut self, uri: &str, object: Option<Value>) {
        let (_, answer) = self.expect(Method::GET, uri).await;
        match object {
            Some(object) => answer.ok(object),
            None => answer.not_found(),
        }
    }

    /// After the reconcile returned and every client clone is dropped: no
    /// request was left over.
    async fn done(mut self) {
        let left = tokio::time::timeout(Duration::from_secs(10), self.0.next_request())
            .await
            .expect("a client clone outlived the test");
        if let Some((request, _)) = left {
            panic!("an extra request: {} {}", request.method(), request.uri());
        }
    }
}

struct Answer(SendResponse<Response<Body>>);

impl Answer {
    fn with(self, status: StatusCode, body: Value) {
        let response = Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap();
        self.0.send_response(response);
    }

    fn ok(self, body: Value) {
        self.with(StatusCode::OK, body)
    }

    fn created(self, body: Value) {
        self.with(StatusCode::CREATED, body)
    }

    fn not_found(self) {
        self.with(
            StatusCode::NOT_FOUND,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                   "reason": "NotFound", "code": 404, "message": "not found"}),
        )
    }
}

/// What the watches have seen: the stores a reconcile observes from.
#[derive(Default)]
struct Cluster {
    incidents: Vec<Incident>,
    policies: Vec<Policy>,
    pods: Vec<Value>,
    secrets: Vec<Value>,
}

impl Cluster {
    fn with_policy(policy: Policy) -> Self {
        Self {
            policies: vec![policy],
            ..Self::default()
        }
    }

    /// The scenario Pod ready at `ip`, and both token Secrets.
    fn provisioned(mut self, ip: &str) -> Self {
        self.pods.push(ready_pod(ip));
        self.secrets = ["checkout-agent-token", "checkout-sandbox-token"]
            .map(secret)
            .to_vec();
        self
    }

    fn stores(self) -> Stores {
        fn typed<K: serde::de::DeserializeOwned>(values: Vec<Value>) -> Vec<K> {
            values
                .into_iter()
                .map(|v| serde_json::from_value(v).unwrap())
                .collect()
        }
        Stores::holding(
            self.incidents,
            self.policies,
            typed(self.pods),
            Vec::new(),
            typed(self.secrets),
        )
    }
}

fn context(cluster: Cluster) -> (Arc<Context>, ApiServer) {
    context_of(cluster, Settings::default())
}

fn context_of(cluster: Cluster, settings: Settings) -> (Arc<Context>, ApiServer) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "shop");
    let metrics = Arc::new(Metrics::new());
    let status_writer = Arc::new(StatusWriter::new(client.clone(), metrics.clone()));
    let stores = cluster.stores();
    let backend = Arc::new(KubeBackend::new(
        client.clone(),
        settings.clone(),
        status_writer.clone(),
        stores.clone(),
    ));
    let ctx = Context {
        client,
        settings,
        catalog: Catalog::builtin(),
        engine: Arc::new(Engine::new(backend.clone())),
        backend,
        metrics,
        writer: status_writer,
        stores,
        backoff: Backoff::default(),
        policy_backoff: Backoff::default(),
        notifier: None,
    };
    (Arc::new(ctx), ApiServer(handle))
}

/// Incident `shop/checkout` of `stale_lockfile`, following Policy `careful`.
fn incident(status: Option<IncidentStatus>) -> Incident {
    let builder = Incident::test("stale_lockfile")
        .named("shop", "checkout")
        .following("careful")
        .with_uid("0b5e-uid")
        .with_resource_version("100");
    match status {
        Some(status) => builder.with_status(status),
        None => builder,
    }
    .build()
}

fn policy() -> Policy {
    crate::operator::fixtures::policy_in("shop", "careful", PolicySpec::default(), 4)
}

fn to_value(object: &impl serde::Serialize) -> Value {
    serde_json::to_value(object).unwrap()
}

fn secret(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "shop"},
           "data": {"token": "dG9rZW4="}})
}

/// What a POST sent, answered as created (the server echoes the object).
async fn created(api: &mut ApiServer, collection: &str) -> Value {
    let (seen, answer) = api.expect(Method::POST, &format!("{collection}?")).await;
    assert_eq!(seen.content_type.as_deref(), Some("application/json"));
    answer.created(seen.body.clone());
    seen.body
}

/// The owner reference every object the Incident owns carries.
fn assert_owned_by_the_incident(object: &Value) {
    assert_eq!(
        object["metadata"]["ownerReferences"],
        json!([{"apiVersion": "remediator.dev/v1alpha1", "kind": "Incident", "name": "checkout",
                "uid": "0b5e-uid", "controller": true, "blockOwnerDeletion": true}]),
        "{object:#}"
    );
    assert_eq!(
        object["metadata"]["labels"]["remediator.dev/incident"],
        "checkout"
    );
}

/// What the status apply patch and the Event say, for a reconcile that
/// writes one status and publishes one event.
async fn status_and_event(api: &mut ApiServer) -> (Value, Value) {
    let (seen, answer) = api
        .expect(
            Method::PATCH,
            &format!("{INCIDENTS}/checkout/status?&{APPLY}"),
        )
        .await;
    assert_eq!(
        seen.content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert_eq!(
        (&seen.body["apiVersion"], &seen.body["kind"]),
        (&json!("remediator.dev/v1alpha1"), &json!("Incident"))
    );
    assert_eq!(seen.body["metadata"], json!({"name": "checkout"}));
    let mut written = to_value(&incident(None));
    written["status"] = seen.body["status"].clone();
    answer.ok(written);
    let (event, answer) = api.expect(Method::POST, &format!("{EVENTS}?")).await;
    answer.created(event.body.clone());
    (seen.body["status"].clone(), event.body)
}

#[tokio::test]
async fn a_new_incident_gets_its_secrets_and_pod_then_provisioning_status_and_an_event() {
    let (ctx, mut api) = context(Cluster::with_policy(policy()));
    let new = incident(None);
    let reconcile = tokio::spawn(reconcile(Arc::new(new.clone()), ctx.clone()));

    // The Incident and, until the episode pins it, its Policy are read
    // afresh; the owned objects come from the stores (none yet). Before the
    // stores, this reconcile also read the Pod, the Job and both Secrets.
    api.get(&format!("{INCIDENTS}/checkout"), Some(to_value(&new)))
        .await;
    api.get(&format!("{POLICIES}/careful"), Some(to_value(&policy())))
        .await;

    let mut tokens = Vec::new();
    for name in ["checkout-agent-token", "checkout-sandbox-token"] {
        let secret = created(&mut api, SECRETS).await;
        assert_eq!(secret["metadata"]["name"], name);
        assert_owned_by_the_incident(&secret);
        let token = secret["data"]["token"].as_str().unwrap().to_string();
        assert!(token.len() >= 40, "a token of 32 random bytes: {token}");
        tokens.push(token);
    }
    assert_ne!(tokens[0], tokens[1], "each side has its own token");

    let pod = created(&mut api, PODS).await;
    assert_eq!(
        pod,
        to_value(&objects::scenario_pod(
            &new,
            &PolicySpec::default(),
            &Settings::default()
        )),
        "the Pod sent is the one objects.rs builds"
    );
    assert_owned_by_the_incident(&pod);
    let spec = &pod["spec"];
    assert_eq!(spec["automountServiceAccountToken"], false);
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
    for container in spec["containers"].as_array().unwrap() {
        let sc = &container["securityContext"];
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{container:#}");
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{container:#}");
        assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]), "{container:#}");
    }
    let volumes = spec["volumes"].as_array().unwrap();
    assert!(
        volumes.iter().all(|v| v.get("projected").is_none()),
        "no service-account token volume: {volumes:#?}"
    );

    let (status, event) = status_and_event(&mut api).await;
    assert_eq!(status["phase"], "Provisioning");
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(status["conditions"][0]["type"], "PolicyReady");
    assert_eq!(status["conditions"][0]["status"], "True");
    assert_eq!(
        status["conditions"][0]["message"],
        "following Policy careful generation 4"
    );
    assert_eq!(
        (&event["type"], &event["reason"], &event["note"]),
        (
            &json!("Normal"),
            &json!("Provisioning"),
            &json!("starting scenario stale_lockfile")
        )
    );
    assert_eq!(event["regarding"]["kind"], "Incident");
    assert_eq!(event["regarding"]["name"], "checkout");
    assert_eq!(event["reportingController"], FIELD_MANAGER);

    let action = reconcile.await.unwrap().unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(5)));
    drop(ctx);
    api.done().await;
}

#[tokio::test]
async fn a_missing_policy_is_reported_and_retried_and_nothing_is_created() {
    let (ctx, mut api) = context(Cluster::default());
    let new = incident(None);
    let reconcile = tokio::spawn(reconcile(Arc::new(new.clone()), ctx.clone()));
    api.get(&format!("{INCIDENTS}/checkout"), Some(to_value(&new)))
        .await;
    api.get(&format!("{POLICIES}/careful"), None).await;
    let (status, event) = status_and_event(&mut api).await;
    assert_eq!(status["phase"], "Pending");
    assert_eq!(status["reason"], "PolicyNotFound");
    assert_eq!(status["conditions"][0]["status"], "False");
    assert_eq!(status["conditions"][0]["reason"], "PolicyNotFound");
    assert_eq!(
        (&event["type"], &event["reason"]),
        (&json!("Warning"), &json!("PolicyNotFound"))
    );
    let action = reconcile.await.unwrap().unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(30)));
    drop(ctx);
    api.done().await;
}

fn remediating() -> IncidentStatus {
    let session = Session {
        episode: Episode::new(
            EpisodeConfig {
                max_steps: 20,
                timeout_ms: 300_000,
                approval_timeout_ms: None,
                allow_fallback: false,
                max_execute_attempts: 3,
            },
            now_ms(),
        ),
        task: Task {
            symptom: "GET / returns HTTP 500".into(),
            expected_port: 8080,
            hint: "Fix the bug.".into(),
        },
        policy: PolicySpec::default(),
        policy_name: "careful".into(),
        policy_generation: Some(4),
        root: objects::ROOT.into(),
        max_risk: None,
        containment: Containment {
            layers: Layer::ALL.to_vec(),
            missing: Vec::new(),
        },
    };
    IncidentStatus {
        phase: IncidentPhase::Remediating,
        observed_generation: Some(1),
        session: Some(to_value(&session)),
        ..IncidentStatus::default()
    }
}

fn ready_pod(ip: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "checkout-scenario", "namespace": "shop"},
           "status": {"phase": "Running", "podIP": ip,
                      "conditions": [{"type": "Ready", "status": "True"}]}})
}

#[tokio::test]
async fn a_remediating_incident_without_its_job_gets_one_and_no_status_write() {
    let running = incident(Some(remediating()));
    // The Policy was edited since the incident started; the Job follows
    // the spec the incident pinned (timeout 300 s), not this one.
    let mut edited = policy();
    edited.spec.timeout_seconds = 900;
    edited.metadata.generation = Some(5);
    let (ctx, mut api) = context(Cluster::with_policy(edited).provisioned("10.0.0.7"));
    let reconcile = tokio::spawn(reconcile(Arc::new(running.clone()), ctx.clone()));
    // One read: the episode has pinned its Policy, the rest is in the
    // stores. Before the stores, this reconcile made six.
    api.get(&format!("{INCIDENTS}/checkout"), Some(to_value(&running)))
        .await;
    let job = created(&mut api, JOBS).await;
    assert_eq!(
        job,
        to_value(&objects::agent_job(
            &running,
            &PolicySpec::default(),
            &Settings::default()
        )),
        "the Job sent is the one objects.rs builds, from the pinned Policy"
    );
    assert_owned_by_the_incident(&job);
    assert_eq!(job["spec"]["activeDeadlineSeconds"], 300 + 120);
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert!(
        pod.get("serviceAccountName").is_none(),
        "the namespace's default account, with no token: {pod:#}"
    );
    assert_eq!(
        pod["volumes"],
        json!([{"name": "agent-token", "secret": {"secretName": "checkout-agent-token", "defaultMode": 0o440}}]),
        "the agent mounts its own token and nothing else"
    );
    // The status is unchanged, so it is not written, and nothing is said.
    let action = reconcile.await.unwrap().unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(30)));
    drop(ctx);
    api.done().await;
}

#[tokio::test]
async fn a_policy_status_is_applied_from_the_cache_only_when_its_scorecard_changes() {
    let resolved = |name: &str, steps: u32, seconds: f64| {
        let mut i = incident(Some(IncidentStatus {
            phase: IncidentPhase::Resolved,
            steps,
            time_to_resolve_seconds: Some(seconds),
            ..IncidentStatus::default()
        }));
        i.metadata.name = Some(name.into());
        i
    };
    let failed = |name: &str, policy: &str, namespace: &str| {
        let mut i = incident(Some(IncidentStatus {
            phase: IncidentPhase::Failed,
            ..IncidentStatus::default()
        }));
        i.metadata.name = Some(name.into());
        i.metadata.namespace = Some(namespace.into());
        i.spec.policy_ref.name = policy.into();
        i
    };
    let cached = vec![
        resolved("a", 3, 10.0),
        resolved("b", 5, 30.0),
        failed("c", "someone-else", "shop"),
        failed("d", "careful", "another-namespace"),
    ];

    // The scorecard comes from the cache: the API sees one apply, no LIST.
    let (ctx, mut api) = context(Cluster {
        incidents: cached,
        ..Cluster::default()
    });
    let reconcile = tokio::spawn(reconcile_policy(Arc::new(policy()), ctx.clone()));
    let (seen, answer) = api
        .expect(
            Method::PATCH,
            &format!("{POLICIES}/careful/status?&{APPLY}"),
        )
        .await;
    assert_eq!(
        seen.content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    let status = seen.body["status"].clone();
    assert_eq!(
        (
            &status["resolved"],
            &status["failed"],
            &status["fixRate"],
            &status["meanSteps"]
        ),
        (&json!(2), &json!(0), &json!(1.0), &json!(4.0)),
        "only this namespace's incidents that follow this Policy count: {status:#}"
    );
    assert_eq!(status["observedGeneration"], 4);
    let mut written = to_value(&policy());
    written["status"] = status.clone();
    answer.ok(written.clone());
    reconcile.await.unwrap().unwrap();

    // Reconciled again with that status: no write.
    let current: Policy = serde_json::from_value(written).unwrap();
    reconcile_policy(Arc::new(current), ctx.clone())
        .await
        .unwrap();
    drop(ctx);
    api.done().await;
}

const CONFIG_MAPS: &str = "/api/v1/namespaces/shop/configmaps";

/// A sandbox sidecar that answers `GET /v1/history` with `turns` to the
/// token the test Secrets hold; returns its port.
async fn sidecar_with_history(turns: Vec<crate::protocol::Turn>) -> u16 {
    use axum::http::HeaderMap;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().route(
        "/v1/history",
        axum::routing::get(move |headers: HeaderMap| {
            let turns = turns.clone();
            async move {
                let authorized = headers
                    .get("authorization")
                    .is_some_and(|v| v == "Bearer token");
                if authorized {
                    Ok(axum::Json(turns))
                } else {
                    Err(StatusCode::UNAUTHORIZED)
                }
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

/// An incident the probe resolved after one step.
fn resolved() -> IncidentStatus {
    let mut status = remediating();
    status.phase = IncidentPhase::Resolved;
    status.steps = 1;
    // Just now, in whole seconds as the API server keeps it: an incident
    // that ended long ago is not recorded any more.
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    status.started_at = Some(Time(
        k8s_openapi::jiff::Timestamp::from_second(now).unwrap(),
    ));
    status.actions = vec![crate::crd::ActionRecord {
        step: 1,
        kind: "exec".into(),
        command: "rm -f /srv/app/app.lock".into(),
        declared_risk: None,
        risk: crate::risk::SecurityRisk::Medium,
        decision: crate::crd::Decision::Allowed,
        decided_by: "gate".into(),
        reason: None,
        rolled_back: None,
        approver: None,
        exit_code: Some(0),
        duration_ms: 4,
    }];
    status.agent = Some(crate::crd::AgentInfo {
        brain: "runbook".into(),
        ..Default::default()
    });
    status
}

fn one_turn() -> Vec<crate::protocol::Turn> {
    vec![crate::protocol::Turn {
        step: 1,
        action: crate::action::Action::Exec("rm -f /srv/app/app.lock".into()),
        declared_risk: None,
        feedback: crate::protocol::Feedback::Observed(crate::protocol::Observation {
            exit_code: Some(0),
            http_status: None,
            stdout: "removed the stale lock".into(),
            stderr: String::new(),
            timed_out: false,
            duration_ms: 4,
            rolled_back: None,
        }),
    }]
}

/// The one read every reconcile of a finished incident makes: the
/// Incident itself (the Pod at 127.0.0.1, the tokens and the Policy are in
/// the stores).
async fn finished_incident_reads(api: &mut ApiServer, finished: &Incident) {
    api.get(&format!("{INCIDENTS}/checkout"), Some(to_value(finished)))
        .await;
}

/// The condition status apply the recording ends with.
async fn recorded_condition(api: &mut ApiServer, finished: &Incident) -> Value {
    api.get(&format!("{INCIDENTS}/checkout"), Some(to_value(finished)))
        .await;
    let (seen, answer) = api
        .expect(
            Method::PATCH,
            &format!("{INCIDENTS}/checkout/status?&{APPLY}"),
        )
        .await;
    answer.ok(to_value(finished));
    let conditions = seen.body["status"]["conditions"]
        .as_array()
        .unwrap()
        .clone();
    conditions
        .into_iter()
        .find(|c| c["type"] == "TrajectoryRecorded")
        .expect("a TrajectoryRecorded condition")
}

/// A `TrajectoryRecorded=False/RecordingFailed` condition whose message
/// says `says`.
fn assert_recording_failed(condition: &Value, says: &str) {
    assert_eq!(
        (&condition["status"], &condition["reason"]),
        (&json!("False"), &json!("RecordingFailed"))
    );
    let message = condition["message"].as_str().unwrap_or_default();
    assert!(message.contains(says), "{condition:#}");
}

/// A resolved incident following `policy` whose sidecar (on 127.0.0.1)
/// still answers.
async fn finished_with_a_sidecar(policy: Policy) -> (Arc<Context>, ApiServer, Incident) {
    let port = sidecar_with_history(one_turn()).await;
    let (ctx, api) = context_of(
        Cluster::with_policy(policy).provisioned("127.0.0.1"),
        Settings {
            sandbox_port: port,
            ..Settings::default()
        },
    );
    (ctx, api, incident(Some(resolved())))
}

#[tokio::test]
async fn a_finished_incident_is_recorded_in_its_policys_ring_with_what_came_back() {
    let mut owner = policy();
    owner.metadata.uid = Some("pol-uid".into());
    let (ctx, mut api, finished) = finished_with_a_sidecar(owner).await;
    let reconcile = tokio::spawn(reconcile(Arc::new(finished.clone()), ctx.clone()));
    finished_incident_reads(&mut api, &finished).await;
    api.get(&format!("{CONFIG_MAPS}/careful-trajectories"), None)
        .await;
    let ring = created(&mut api, CONFIG_MAPS).await;
    assert_eq!(
        ring["metadata"],
        json!({"name": "careful-trajectories",
               "labels": {"app.kubernetes.io/name": "remediator",
                          "app.kubernetes.io/component": "trajectories",
                          "remediator.dev/policy": "careful"},
               "ownerReferences": [{"apiVersion": "remediator.dev/v1alpha1", "kind": "Policy",
                                    "name": "careful", "uid": "pol-uid", "controller": false}]})
    );
    let data = ring["data"].as_object().unwrap();
    let key = recording::key_of(&finished);
    assert_eq!(data.keys().collect::<Vec<_>>(), [&key]);
    let session: Session =
        serde_json::from_value(finished.status.clone().unwrap().session.unwrap()).unwrap();
    let expected = recording::line_of(&finished, &session, &one_turn());
    assert!(
        expected.steps[0]
            .observation
            .contains("removed the stale lock")
    );
    assert_eq!(data[&key], json!(in_cluster::encode(&expected).unwrap()));
    let condition = recorded_condition(&mut api, &finished).await;
    assert_eq!(
        (
            &condition["status"],
            &condition["reason"],
            &condition["message"]
        ),
        (
            &json!("True"),
            &json!("Recorded"),
            &json!("in ConfigMap careful-trajectories")
        )
    );
    let action = reconcile.await.unwrap().unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(30)));
    drop(ctx);
    api.done().await;
}

#[tokio::test]
async fn a_recording_that_races_another_reads_again_and_keeps_both_lines() {
    let (ctx, mut api, finished) = finished_with_a_sidecar(policy()).await;
    let ring = |version: &str, keys: &[&str]| {
        let data: serde_json::Map<String, Value> =
            keys.iter().map(|k| (k.to_string(), json!("{}"))).collect();
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "careful-trajectories", "namespace": "shop",
                            "resourceVersion": version},
               "data": data})
    };
    let reconcile = tokio::spawn(reconcile(Arc::new(finished.clone()), ctx.clone()));
    finished_incident_reads(&mut api, &finished).await;
    let path = format!("{CONFIG_MAPS}/careful-trajectories");
    api.get(&path, Some(ring("7", &["0000000000001-older.json"])))
        .await;
    let (first, answer) = api.expect(Method::PUT, &format!("{path}?")).await;
    assert_eq!(first.body["metadata"]["resourceVersion"], "7");
    answer.with(
        StatusCode::CONFLICT,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
               "reason": "Conflict", "code": 409, "message": "the object has been modified"}),
    );
    // Another incident wrote in between: its line must survive.
    api.get(
        &path,
        Some(ring(
            "8",
            &["0000000000001-older.json", "0000000000002-other.json"],
        )),
    )
    .await;
    let (second, answer) = api.expect(Method::PUT, &format!("{path}?")).await;
    assert_eq!(second.body["metadata"]["resourceVersion"], "8");
    answer.ok(second.body.clone());
    let keys: Vec<&String> = second.body["data"].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "0000000000001-older.json",
            "0000000000002-other.json",
            &recording::key_of(&finished)
        ]
    );
    let condition = recorded_condition(&mut api, &finished).await;
    assert_eq!(condition["status"], "True");
    reconcile.await.unwrap().unwrap();
    drop(ctx);
    api.done().await;
}

#[tokio::test]
async fn a_ring_an_older_version_left_without_an_owner_gains_its_policy() {
    let mut owner = policy();
    owner.metadata.uid = Some("pol-uid".into());
    let (ctx, mut api, finished) = finished_with_a_sidecar(owner).await;
    let reconcile = tokio::spawn(reconcile(Arc::new(finished.clone()), ctx.clone()));
    finished_incident_reads(&mut api, &finished).await;
    let path = format!("{CONFIG_MAPS}/careful-trajectories");
    let ownerless = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "careful-trajectories", "namespace": "shop", "resourceVersion": "7"},
        "data": {"0000000000001-older.json": "{}"}});
    api.get(&path, Some(ownerless)).await;
    let (written, answer) = api.expect(Method::PUT, &format!("{path}?")).await;
    answer.ok(written.body.clone());
    assert_eq!(
        written.body["metadata"]["ownerReferences"],
        json!([{"apiVersion": "remediator.dev/v1alpha1", "kind": "Policy",
                "name": "careful", "uid": "pol-uid", "controller": false}])
    );
    assert_eq!(written.body["data"].as_object().unwrap().len(), 2);
    assert_eq!(
        recorded_condition(&mut api, &finished).await["status"],
        "True"
    );
    reconcile.await.unwrap().unwrap();
    drop(ctx);
    api.done().await;
}

#[tokio::test]
async fn an_incident_whose_policy_is_gone_records_no_ownerless_ring() {
    let port = sidecar_with_history(one_turn()).await;
    let (ctx, mut api) = context_of(
        Cluster::default().provisioned("127.0.0.1"),
        Settings {
            sandbox_port: port,
            ..Settings::default()
        },
    );
    let finished = incident(Some(resolved()));
    let reconcile = tokio::spawn(reconcile(Arc::new(finished.clone()), ctx.clone()));
    finished_incident_reads(&mut api, &finished).await;
    // No ConfigMap is read or written: the next request is the condition.
    let condition = recorded_condition(&mut api, &finished).await;
    assert_recording_failed(&condition, "Policy careful no longer exists");
    reconcile.await.unwrap().unwrap();
    drop(ctx);
    api.done().await;
}

#[tokio::test]
async fn a_recording_the_api_refuses_is_said_in_a_false_condition() {
    let (ctx, mut api, finished) = finished_with_a_sidecar(policy()).await;
    let reconcile = tokio::spawn(reconcile(Arc::new(finished.clone()), ctx.clone()));
    finished_incident_reads(&mut api, &finished).await;
    let (_, answer) = api
        .expect(Method::GET, &format!("{CONFIG_MAPS}/careful-trajectories"))
        .await;
    answer.with(
        StatusCode::FORBIDDEN,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden",
               "code": 403, "message": "configmaps \"careful-trajectories\" is forbidden"}),
    );
    let condition = recorded_condition(&mut api, &finished).await;
    assert_recording_failed(&condition, "is forbidden");
    // Tried again later, not at once.
    let action = reconcile.await.unwrap().unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(30)));
    drop(ctx);
    api.done().await;
}
