//! The Action API as an agent (or an intruder) meets it, over real HTTP:
//! only the incident's own token gets in, a step answered once is answered
//! the same way again without running twice, out-of-order and malformed
//! requests get 4xx, a slow sandbox is waited for, and a vanished one fails
//! the incident rather than the command.

use std::sync::Arc;
use std::time::Duration;

use remediator::agent::driver::now_ms;
use remediator::agent::episode::Episode;
use remediator::crd::PolicySpec;
use remediator::operator::api;
use remediator::operator::engine::Engine;
use remediator::operator::memory::MemoryBackend;
use remediator::operator::session::Session;
use remediator::protocol::{EpisodeEnd, IncidentKey, Next, StepReply, Task};
use remediator::scenario::Catalog;
use serde_json::{Value, json};

use crate::sidecar::Sidecar;

struct Api {
    url: String,
    backend: Arc<MemoryBackend>,
    sidecars: Vec<Sidecar>,
}

/// Two incidents, `a` and `b`, each with its sandbox and its token.
async fn api() -> (Api, [(IncidentKey, String); 2]) {
    let backend = Arc::new(MemoryBackend::default());
    let engine = Arc::new(Engine::new(backend.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = api::router(engine);
    tokio::spawn(async move { axum::serve(listener, router).await });
    let mut sidecars = Vec::new();
    let mut keys = Vec::new();
    for name in ["a", "b"] {
        let sidecar = Sidecar::start_for("stale_lockfile", &format!("uid-{name}")).await;
        let remote = sidecar.remote(Duration::from_secs(60));
        let port = sidecar.service.address.port();
        let policy = PolicySpec::default();
        let session = Session {
            episode: Episode::new(remediator::policy::episode_config(&policy), now_ms()),
            task: Task {
                symptom: Catalog::builtin()
                    .get("stale_lockfile")
                    .unwrap()
                    .symptom_for(port),
                expected_port: port,
                hint: "h".into(),
            },
            policy,
            policy_name: "p".into(),
            policy_generation: None,
            root: sidecar.service.root.display().to_string(),
            max_risk: None,
            containment: remote.containment().await.unwrap(),
        };
        let key = IncidentKey {
            namespace: "ns".into(),
            name: name.into(),
        };
        let token = remediator::tokens::generate();
        backend.insert(key.clone(), session, remote, token.clone());
        keys.push((key, token));
        sidecars.push(sidecar);
    }
    let keys: [(IncidentKey, String); 2] = keys.try_into().unwrap();
    (
        Api {
            url,
            backend,
            sidecars,
        },
        keys,
    )
}

impl Api {
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> (u16, Value) {
        let client = reqwest::Client::new();
        let url = format!("{}{path}", self.url);
        let mut request = match method {
            "POST" => client.post(url).header("content-type", "application/json"),
            _ => client.get(url),
        };
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

fn offer(command: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"offer": {"proposal": {"act": {"action": {"exec": command}}}}}))
        .unwrap()
}

#[tokio::test]
async fn only_the_incidents_own_token_gets_in() {
    let (api, [(a, token_a), (_, token_b)]) = api().await;
    let path = format!("/v1/incidents/{}/{}/session", a.namespace, a.name);
    assert_eq!(api.call("GET", &path, None, None).await.0, 401);
    let stranger = remediator::tokens::generate();
    assert_eq!(api.call("GET", &path, Some(&stranger), None).await.0, 401);
    let (status, body) = api.call("GET", &path, Some(&token_b), None).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = api.call("GET", &path, Some(&token_a), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["next"],
        json!({"next": "propose", "step": 1, "role": "primary"})
    );
    let step = format!("/v1/incidents/{}/{}/steps/1", a.namespace, a.name);
    let (status, _) = api
        .call("POST", &step, Some(&token_b), Some(offer("touch intruded")))
        .await;
    assert_eq!(status, 403);
    assert!(!api.sidecars[0].service.root.join("intruded").exists());
    let missing = "/v1/incidents/ns/nope/session";
    assert_eq!(api.call("GET", missing, Some(&stranger), None).await.0, 404);
}

#[tokio::test]
async fn a_step_answered_once_is_answered_the_same_and_never_runs_twice() {
    let (api, [(a, token), _]) = api().await;
    let step = format!("/v1/incidents/{}/{}/steps/1", a.namespace, a.name);
    let command = "echo ran >> ran.txt; wc -l < ran.txt";
    let (status, first) = api
        .call("POST", &step, Some(&token), Some(offer(command)))
        .await;
    assert_eq!(status, 200, "{first}");
    let (status, again) = api
        .call("POST", &step, Some(&token), Some(offer(command)))
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(first, again);
    let reply: StepReply = serde_json::from_value(first).unwrap();
    assert!(matches!(reply.next, Next::Propose { step: 2, .. }));
    let ran = std::fs::read_to_string(api.sidecars[0].service.root.join("ran.txt")).unwrap();
    assert_eq!(ran, "ran\n");
    assert_eq!(api.backend.records(&a).len(), 1);
    // A step out of order is a conflict, not a second episode.
    let ahead = format!("/v1/incidents/{}/{}/steps/5", a.namespace, a.name);
    assert_eq!(
        api.call("POST", &ahead, Some(&token), Some(offer("ls")))
            .await
            .0,
        409
    );
}

#[tokio::test]
async fn malformed_and_oversized_requests_get_4xx() {
    let (api, [(a, token), _]) = api().await;
    let step = format!("/v1/incidents/{}/{}/steps/1", a.namespace, a.name);
    let (status, _) = api
        .call("POST", &step, Some(&token), Some(b"{oops".to_vec()))
        .await;
    assert!((400..500).contains(&status), "{status}");
    let unknown = br#"{"offer": {"proposal": {"act": {"action": {"format_disk": {}}}}}}"#.to_vec();
    assert_eq!(
        api.call("POST", &step, Some(&token), Some(unknown)).await.0,
        422
    );
    let huge = offer(&"x".repeat(3 << 20));
    assert_eq!(
        api.call("POST", &step, Some(&token), Some(huge)).await.0,
        413
    );
    let bad_step = format!("/v1/incidents/{}/{}/steps/minus-one", a.namespace, a.name);
    assert_eq!(
        api.call("POST", &bad_step, Some(&token), Some(offer("ls")))
            .await
            .0,
        400
    );
    assert!(api.backend.records(&a).is_empty());
}

#[tokio::test]
async fn a_slow_sandbox_is_waited_for_and_an_abandoned_step_completes_once() {
    let (api, [(a, token), _]) = api().await;
    let step = format!(
        "{}/v1/incidents/{}/{}/steps/1",
        api.url, a.namespace, a.name
    );
    let command = "sleep 1; echo ran >> slow.txt";
    // The agent gives up waiting; the step goes on.
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let abandoned = impatient
        .post(&step)
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(offer(command))
        .send()
        .await;
    assert!(
        abandoned.is_err(),
        "the first answer should not arrive in 200 ms"
    );
    let (status, reply) = api
        .call(
            "POST",
            &format!("/v1/incidents/{}/{}/steps/1", a.namespace, a.name),
            Some(&token),
            Some(offer(command)),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        reply["turn"]["feedback"]["observed"]["exit_code"], 0,
        "{reply}"
    );
    let ran = std::fs::read_to_string(api.sidecars[0].service.root.join("slow.txt")).unwrap();
    assert_eq!(ran, "ran\n");
}

#[tokio::test]
async fn a_vanished_sandbox_fails_the_incident_not_the_command() {
    let (mut api, [(a, token), _]) = api().await;
    api.sidecars[0].kill().await;
    let step = format!("/v1/incidents/{}/{}/steps/1", a.namespace, a.name);
    let (status, reply) = api
        .call("POST", &step, Some(&token), Some(offer("ls")))
        .await;
    assert_eq!(status, 200, "{reply}");
    let reply: StepReply = serde_json::from_value(reply).unwrap();
    assert!(
        matches!(
            reply.next,
            Next::Done {
                end: EpisodeEnd::WorkspaceFailed { step: 1, .. }
            }
        ),
        "{reply:?}"
    );
}
