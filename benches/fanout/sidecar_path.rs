//! The cluster's three processes on loopback, for the fan-out bench: an
//! agent process proposes every step to the operator's Action API (served
//! here by the engine in this process), which gates it and sends it to a
//! sandbox sidecar process beside the scenario's service. What an incident
//! costs on the path it takes in a cluster, without the cluster.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use remediator::agent::driver::now_ms;
use remediator::agent::episode::Episode;
use remediator::agent::hint::ResolvedHint;
use remediator::crd::PolicySpec;
use remediator::local::Environment;
use remediator::operator::api;
use remediator::operator::engine::Engine;
use remediator::operator::memory::MemoryBackend;
use remediator::operator::session::Session;
use remediator::protocol::{IncidentKey, Task};
use remediator::workspace::Remote;

use crate::sidecar_process::SidecarProcess;

/// What a batch on this path came to.
pub struct Batch {
    pub fixed: usize,
    pub incidents: usize,
    pub wall_s: f64,
}

/// One incident per scenario of `scenarios` (a fan-out plan's arrivals,
/// so both paths run the same mix) at `concurrency`.
pub async fn run(
    env: &Environment,
    binary: &std::path::Path,
    spec: &PolicySpec,
    scenarios: &[String],
    concurrency: usize,
) -> Batch {
    let backend = Arc::new(MemoryBackend::default());
    let engine = Arc::new(Engine::new(backend.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, api::router(engine)).await });
    let started = Instant::now();
    let fixed = futures::stream::iter(scenarios.iter().enumerate())
        .map(|(i, scenario)| {
            let (backend, url) = (backend.clone(), url.clone());
            async move { incident(env, binary, spec, &backend, &url, scenario, i).await }
        })
        .buffer_unordered(concurrency)
        .filter(|fixed| std::future::ready(*fixed))
        .count()
        .await;
    server.abort();
    Batch {
        fixed,
        incidents: scenarios.len(),
        wall_s: started.elapsed().as_secs_f64(),
    }
}

/// One incident through the three processes; whether the controller's own
/// probe found the service healthy afterwards.
async fn incident(
    env: &Environment,
    binary: &std::path::Path,
    spec: &PolicySpec,
    backend: &MemoryBackend,
    url: &str,
    scenario: &str,
    n: usize,
) -> bool {
    let service = env
        .launch
        .start(&env.catalog, scenario)
        .await
        .expect("service starts");
    let uid = format!("bench-{n}");
    let mut sidecar = SidecarProcess::spawn(binary, &uid, &service.root, service.address);
    let remote = Remote::new(
        format!("http://{}", sidecar.address),
        &sidecar.token,
        &uid,
        Duration::from_secs(60),
    );
    // Its readiness, as the operator waits for it: the first answer.
    let deadline = Instant::now() + Duration::from_secs(30);
    let containment = loop {
        match remote.containment().await {
            Ok(containment) => break containment,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(5)).await
            }
            Err(e) => panic!("the sidecar never answered: {e}"),
        }
    };
    let key = IncidentKey {
        namespace: "bench".into(),
        name: format!("incident-{n}"),
    };
    let session = Session {
        episode: Episode::new(remediator::policy::episode_config(spec), now_ms()),
        task: Task {
            symptom: env
                .catalog
                .get(scenario)
                .unwrap()
                .symptom_for(service.address.port()),
            expected_port: service.address.port(),
            hint: ResolvedHint::manual().text.trim().into(),
        },
        policy: spec.clone(),
        policy_name: "optimized".into(),
        policy_generation: Some(1),
        root: service.root.display().to_string(),
        max_risk: None,
        containment,
    };
    let agent_token = remediator::tokens::generate();
    backend.insert(key.clone(), session, remote, agent_token.clone());
    let agent_token_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(agent_token_file.path(), &agent_token).unwrap();
    let status = tokio::process::Command::new(binary)
        .args(["agent", "--operator", url, "--incident", &key.to_string()])
        .arg("--token-file")
        .arg(agent_token_file.path())
        .env_remove("OPENAI_API_KEY")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .status()
        .await
        .expect("the agent runs");
    let path = &env.catalog.get(scenario).unwrap().verify.path;
    let healthy = status.success()
        && remediator::verify::probe(service.address, path, 3)
            .await
            .0
            .healthy;
    let _ = sidecar.child.kill().await;
    service.stop().await;
    healthy
}
