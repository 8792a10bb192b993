//! The incident reconciler over N Incidents (default 1,000) against an
//! in-memory API server behind the kube client (a tower service: every
//! request is really built, serialized, answered and parsed; only the
//! network and etcd are missing). Prints reconcile p50/p99 per phase, API
//! requests per reconcile, the process's peak RSS, and a Policy scorecard
//! from the watch cache next to the obvious alternative (a LIST per
//! reconcile). Run: `cargo bench --bench reconciler [-- N [CONCURRENCY]]`
//! (defaults 1,000 and 16 reconciles in flight, as the controller runs
//! them; with 1 the latencies are a reconcile's own, without queueing).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{Method, Request, Response, StatusCode};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::client::Body;
use kube::runtime::reflector;
use kube::runtime::watcher;
use kube::{Api, Client};
use remediator::agent::episode::{Episode, EpisodeConfig};
use remediator::crd::{Incident, IncidentPhase, IncidentStatus, Policy, PolicySpec};
use remediator::operator::controller::{self, Context};
use remediator::operator::engine::Engine;
use remediator::operator::fixtures;
use remediator::operator::kube_backend::KubeBackend;
use remediator::operator::metrics::Metrics;
use remediator::operator::objects::{self, Settings};
use remediator::operator::scorecard;
use remediator::operator::session::Session;
use remediator::operator::status_writer::StatusWriter;
use remediator::operator::stores::{Keep, Stores};
use remediator::protocol::Task;
use remediator::sandbox::{Containment, Layer};
use remediator::scenario::Catalog;
use serde_json::{Value, json};

#[path = "../e2e/common/procs.rs"]
mod procs;

const NS: &str = "bench";
const INCIDENTS: &str = "/apis/remediator.dev/v1alpha1/namespaces/bench/incidents";

/// Objects by path, as an API server would keep them: serialized, so the
/// fake server's share of the process's memory stays small. Every write
/// also reaches the operator's stores, as its watches would deliver it.
struct Store {
    objects: Mutex<BTreeMap<String, Vec<u8>>>,
    requests: AtomicU64,
    version: AtomicU64,
    watches: Mutex<Watches>,
}

/// The writing ends of the operator's stores: what its watches feed.
struct Watches {
    incidents: reflector::store::Writer<Incident>,
    policies: reflector::store::Writer<Policy>,
    pods: reflector::store::Writer<Pod>,
    jobs: reflector::store::Writer<Job>,
    secrets: reflector::store::Writer<Secret>,
}

fn listed<K>() -> (reflector::Store<K>, reflector::store::Writer<K>)
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    let (store, mut writer) = reflector::store();
    writer.apply_watcher_event(&watcher::Event::Init);
    writer.apply_watcher_event(&watcher::Event::InitDone);
    (store, writer)
}

impl Store {
    fn new() -> (Self, Stores) {
        let (incidents, incident_writer) = listed();
        let (policies, policy_writer) = listed();
        let (pods, pod_writer) = listed();
        let (jobs, job_writer) = listed();
        let (secrets, secret_writer) = listed();
        let store = Self {
            objects: Mutex::default(),
            requests: AtomicU64::default(),
            version: AtomicU64::default(),
            watches: Mutex::new(Watches {
                incidents: incident_writer,
                policies: policy_writer,
                pods: pod_writer,
                jobs: job_writer,
                secrets: secret_writer,
            }),
        };
        let stores = Stores {
            incidents,
            policies,
            pods,
            jobs,
            secrets,
        };
        (store, stores)
    }

    /// What a watch of `path`'s kind would deliver for `object`.
    fn deliver(&self, path: &str, object: &Value) {
        fn applied<K: serde::de::DeserializeOwned + Keep>(object: &Value) -> watcher::Event<K> {
            let mut object: K = serde_json::from_value(object.clone()).unwrap();
            object.keep_what_is_read();
            watcher::Event::Apply(object)
        }
        let mut watches = self.watches.lock().unwrap();
        if path.contains("/incidents/") {
            watches.incidents.apply_watcher_event(&applied(object));
        } else if path.contains("/policies/") {
            watches.policies.apply_watcher_event(&applied(object));
        } else if path.contains("/pods/") {
            watches.pods.apply_watcher_event(&applied(object));
        } else if path.contains("/jobs/") {
            watches.jobs.apply_watcher_event(&applied(object));
        } else if path.contains("/secrets/") {
            watches.secrets.apply_watcher_event(&applied(object));
        }
    }
}

fn answer(status: StatusCode, body: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap()
}

fn not_found() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404})
}

impl Store {
    fn put(&self, path: String, mut object: Value) {
        let version = self.version.fetch_add(1, Ordering::Relaxed) + 1;
        object["metadata"]["resourceVersion"] = json!(version.to_string());
        let bytes = serde_json::to_vec(&object).unwrap();
        self.deliver(&path, &object);
        self.objects.lock().unwrap().insert(path, bytes);
    }

    fn get(&self, path: &str) -> Option<Value> {
        let bytes = self.objects.lock().unwrap().get(path).cloned()?;
        Some(serde_json::from_slice(&bytes).unwrap())
    }

    async fn serve(&self, request: Request<Body>) -> Response<Body> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        let bytes = request.into_body().collect_bytes().await.unwrap();
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        if path.contains("/events") {
            return answer(StatusCode::CREATED, &body);
        }
        match method {
            Method::GET => match self.get(&path) {
                Some(object) => answer(StatusCode::OK, &object),
                None if path.ends_with('s') => {
                    let prefix = format!("{path}/");
                    let items: Vec<Value> = self
                        .objects
                        .lock()
                        .unwrap()
                        .iter()
                        .filter(|(k, _)| k.starts_with(&prefix) && !k[prefix.len()..].contains('/'))
                        .map(|(_, v)| serde_json::from_slice(v).unwrap())
                        .collect();
                    answer(
                        StatusCode::OK,
                        &json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"}, "items": items}),
                    )
                }
                None => answer(StatusCode::NOT_FOUND, &not_found()),
            },
            Method::POST => {
                let name = body["metadata"]["name"].as_str().unwrap_or_default();
                let at = format!("{path}/{name}");
                if self.get(&at).is_some() {
                    return answer(
                        StatusCode::CONFLICT,
                        &json!({"kind": "Status", "code": 409}),
                    );
                }
                self.put(at, body.clone());
                answer(StatusCode::CREATED, &body)
            }
            Method::PATCH => {
                let at = path.trim_end_matches("/status").to_string();
                let Some(mut object) = self.get(&at) else {
                    return answer(StatusCode::NOT_FOUND, &not_found());
                };
                object["status"] = body["status"].clone();
                self.put(at.clone(), object);
                answer(StatusCode::OK, &self.get(&at).unwrap())
            }
            _ => answer(StatusCode::METHOD_NOT_ALLOWED, &json!({})),
        }
    }
}

fn client(store: Arc<Store>) -> Client {
    let service = tower::service_fn(move |request: Request<Body>| {
        let store = store.clone();
        async move { Ok::<_, Infallible>(store.serve(request).await) }
    });
    Client::new(service, NS)
}

fn incident(i: usize) -> Incident {
    let scenarios = [
        "stale_lockfile",
        "port_mismatch",
        "bad_env_config",
        "readiness_probe_fail",
    ];
    Incident::test(scenarios[i % scenarios.len()])
        .named(NS, &format!("inc-{i:04}"))
        .with_uid(&format!("uid-{i:04}"))
        .build()
}

fn remediating_status() -> Value {
    let session = Session {
        episode: Episode::new(
            EpisodeConfig {
                max_steps: 20,
                timeout_ms: 300_000,
                approval_timeout_ms: None,
                allow_fallback: false,
                max_execute_attempts: 3,
            },
            remediator::agent::driver::now_ms(),
        ),
        task: Task {
            symptom: "GET / returns HTTP 500".into(),
            expected_port: 8080,
            hint: "Fix the bug.".into(),
        },
        policy: PolicySpec::default(),
        policy_name: "optimized".into(),
        policy_generation: Some(1),
        root: objects::ROOT.into(),
        max_risk: None,
        containment: Containment {
            layers: Layer::ALL.to_vec(),
            missing: Vec::new(),
        },
    };
    serde_json::to_value(IncidentStatus {
        phase: IncidentPhase::Remediating,
        observed_generation: Some(1),
        session: Some(serde_json::to_value(session).unwrap()),
        ..IncidentStatus::default()
    })
    .unwrap()
}

struct Pass {
    name: &'static str,
    latencies: Vec<Duration>,
    requests: u64,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn pass(
    name: &'static str,
    ctx: &Arc<Context>,
    store: &Arc<Store>,
    n: usize,
    concurrency: usize,
) -> Pass {
    let before = store.requests.load(Ordering::Relaxed);
    let mut latencies: Vec<Duration> = futures::stream::iter(0..n)
        .map(|i| {
            let ctx = ctx.clone();
            let store = store.clone();
            async move {
                let path = format!("{INCIDENTS}/inc-{i:04}");
                let incident: Incident = serde_json::from_value(store.get(&path).unwrap()).unwrap();
                let started = Instant::now();
                controller::reconcile(Arc::new(incident), ctx)
                    .await
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                started.elapsed()
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    latencies.sort();
    Pass {
        name,
        latencies,
        requests: store.requests.load(Ordering::Relaxed) - before,
    }
}

fn phases(store: &Store, n: usize) -> BTreeMap<String, usize> {
    let mut count = BTreeMap::new();
    for i in 0..n {
        let object = store.get(&format!("{INCIDENTS}/inc-{i:04}")).unwrap();
        let phase = object["status"]["phase"]
            .as_str()
            .unwrap_or("Pending")
            .to_string();
        *count.entry(phase).or_default() += 1;
    }
    count
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let numbers: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = numbers.first().copied().unwrap_or(1000);
    let concurrency = numbers.get(1).copied().unwrap_or(16).max(1);
    let rss_at_start = procs::status_kib("VmRSS:");
    let (store, stores) = Store::new();
    let store = Arc::new(store);
    let policy = fixtures::policy_in(NS, "optimized", PolicySpec::default(), 1);
    store.put(
        "/apis/remediator.dev/v1alpha1/namespaces/bench/policies/optimized".into(),
        serde_json::to_value(&policy).unwrap(),
    );
    for i in 0..n {
        store.put(
            format!("{INCIDENTS}/inc-{i:04}"),
            serde_json::to_value(incident(i)).unwrap(),
        );
    }
    let client = client(store.clone());
    let metrics = Arc::new(Metrics::new());
    let settings = Settings::default();
    let status_writer = Arc::new(StatusWriter::new(client.clone(), metrics.clone()));
    let backend = Arc::new(KubeBackend::new(
        client.clone(),
        settings.clone(),
        status_writer.clone(),
        stores.clone(),
    ));
    let cache = stores.incidents.clone();
    let ctx = Arc::new(Context {
        client: client.clone(),
        settings,
        catalog: Catalog::builtin(),
        engine: Arc::new(Engine::new(backend.clone())),
        backend,
        metrics,
        writer: status_writer,
        stores,
        backoff: Default::default(),
        policy_backoff: Default::default(),
        notifier: None,
    });
    let rss_loaded = procs::status_kib("VmRSS:");

    let mut passes = vec![
        pass(
            "new Incident: 2 Secrets, Pod, status, Event",
            &ctx,
            &store,
            n,
            concurrency,
        )
        .await,
    ];
    assert_eq!(
        phases(&store, n).get("Provisioning"),
        Some(&n),
        "{:?}",
        phases(&store, n)
    );
    passes.push(
        pass(
            "Provisioning, Pod not ready: no write",
            &ctx,
            &store,
            n,
            concurrency,
        )
        .await,
    );
    for i in 0..n {
        let path = format!("{INCIDENTS}/inc-{i:04}");
        let mut object = store.get(&path).unwrap();
        object["status"] = remediating_status();
        store.put(path, object);
        let pod = format!("/api/v1/namespaces/bench/pods/inc-{i:04}-scenario");
        let mut object = store.get(&pod).unwrap();
        object["status"] = json!({"phase": "Running", "podIP": "10.0.0.7",
                                  "conditions": [{"type": "Ready", "status": "True"}]});
        store.put(pod, object);
    }
    passes.push(
        pass(
            "Remediating, no Job yet: creates it",
            &ctx,
            &store,
            n,
            concurrency,
        )
        .await,
    );
    passes.push(
        pass(
            "Remediating, steady: no write",
            &ctx,
            &store,
            n,
            concurrency,
        )
        .await,
    );
    let jobs = (0..n)
        .filter(|i| {
            store
                .get(&format!(
                    "/apis/batch/v1/namespaces/bench/jobs/inc-{i:04}-agent"
                ))
                .is_some()
        })
        .count();
    assert_eq!(jobs, n, "every Remediating incident got its Job");

    println!("reconciler over {n} Incidents, {concurrency} at a time, in-memory API server\n");
    println!(
        "{:<46} {:>9} {:>9} {:>9} {:>14}",
        "pass", "p50", "p99", "max", "requests/each"
    );
    for p in &passes {
        println!(
            "{:<46} {:>7.2}ms {:>7.2}ms {:>7.2}ms {:>14.1}",
            p.name,
            percentile(&p.latencies, 50.0).as_secs_f64() * 1e3,
            percentile(&p.latencies, 99.0).as_secs_f64() * 1e3,
            p.latencies.last().unwrap().as_secs_f64() * 1e3,
            p.requests as f64 / n as f64,
        );
    }

    // A Policy's scorecard: from the watch cache (what the operator does)
    // against a LIST of every Incident per reconcile.
    for i in 0..n {
        let path = format!("{INCIDENTS}/inc-{i:04}");
        let mut object = store.get(&path).unwrap();
        object["status"] = json!({"phase": if i % 10 == 0 { "Failed" } else { "Resolved" },
                                  "steps": 3 + i % 7, "timeToResolveSeconds": 10.0 + (i % 50) as f64});
        store.put(path.clone(), object.clone());
    }
    let rounds = 50;
    let policy = Arc::new(policy);
    let started = Instant::now();
    for _ in 0..rounds {
        controller::reconcile_policy(policy.clone(), ctx.clone())
            .await
            .unwrap();
    }
    let cached = started.elapsed() / rounds;
    let api: Api<Incident> = Api::namespaced(client.clone(), NS);
    let started = Instant::now();
    let mut listed = None;
    for _ in 0..rounds {
        let list = api.list(&Default::default()).await.unwrap();
        listed = Some(scorecard::policy_status(Some(1), &list.items));
    }
    let per_list = started.elapsed() / rounds;
    let from_cache = scorecard::policy_status(
        Some(1),
        &cache
            .state()
            .iter()
            .map(|i| i.as_ref().clone())
            .collect::<Vec<_>>(),
    );
    assert_eq!(
        listed,
        Some(from_cache),
        "both ways give the same scorecard"
    );
    println!(
        "\nPolicy scorecard over {n} Incidents: from the cache {:.2} ms, LIST per reconcile {:.2} ms ({:.1}x)",
        cached.as_secs_f64() * 1e3,
        per_list.as_secs_f64() * 1e3,
        per_list.as_secs_f64() / cached.as_secs_f64()
    );
    let peak = procs::status_kib("VmHWM:");
    println!(
        "\npeak RSS {:.1} MiB (at start {:.1} MiB; with the fake API server's {n} objects loaded {:.1} MiB)",
        peak as f64 / 1024.0,
        rss_at_start as f64 / 1024.0,
        rss_loaded as f64 / 1024.0
    );
    println!("targets: p99 under 20 ms, RSS under 64 MiB");
}
