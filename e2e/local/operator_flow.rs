//! The cluster's three processes on loopback, without a cluster: the agent
//! process proposes through the Action API, the operator's engine gates and
//! sends permitted steps to the sandbox sidecar process beside the target
//! service, and a person's approvals arrive through the same call the
//! approve/reject annotations make. Every train scenario resolves; a
//! rejection fails its incident; no step runs twice.

use std::sync::Arc;
use std::time::Duration;

use remediator::agent::driver::now_ms;
use remediator::agent::episode::{Episode, Waiting};
use remediator::agent::hint::MANUAL_HINT;
use remediator::crd::{Decision, PolicySpec};
use remediator::operator::api;
use remediator::operator::engine::{Engine, PersonsAnswer};
use remediator::operator::memory::MemoryBackend;
use remediator::operator::session::Session;
use remediator::protocol::{EpisodeEnd, IncidentKey, Task};
use remediator::risk::{DecidedBy, RiskLevel};
use remediator::scenario::{Catalog, Split};

use crate::remediator_bin;
use crate::sidecar::Sidecar;

struct Operator {
    engine: Arc<Engine>,
    backend: Arc<MemoryBackend>,
    url: String,
}

async fn operator() -> Operator {
    let backend = Arc::new(MemoryBackend::default());
    let engine = Arc::new(Engine::new(backend.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = api::router(engine.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    Operator {
        engine,
        backend,
        url,
    }
}

/// One incident through the three processes; `approve` answers every
/// approval. Returns its records and how the episode ended.
async fn incident(
    operator: &Operator,
    scenario: &str,
    approve: bool,
) -> (Vec<remediator::crd::ActionRecord>, EpisodeEnd, bool, usize) {
    let uid = format!("uid-{scenario}");
    let sidecar = Sidecar::start_for(scenario, &uid).await;
    let remote = sidecar.remote(Duration::from_secs(60));
    let containment = remote.containment().await.unwrap();
    let catalog = Catalog::builtin();
    let port = sidecar.service.address.port();
    let policy = PolicySpec {
        require_confirmation_for: Some(RiskLevel::Medium),
        ..PolicySpec::default()
    };
    let key = IncidentKey {
        namespace: "e2e".into(),
        name: scenario.replace('_', "-"),
    };
    let session = Session {
        episode: Episode::new(remediator::policy::episode_config(&policy), now_ms()),
        task: Task {
            symptom: catalog.get(scenario).unwrap().symptom_for(port),
            expected_port: port,
            hint: MANUAL_HINT.trim().into(),
        },
        policy,
        policy_name: "optimized".into(),
        policy_generation: Some(1),
        root: sidecar.service.root.display().to_string(),
        max_risk: None,
        containment,
    };
    let agent_token = remediator::tokens::generate();
    operator
        .backend
        .insert(key.clone(), session, remote.clone(), agent_token.clone());
    let token_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(token_file.path(), &agent_token).unwrap();
    let mut agent = tokio::process::Command::new(remediator_bin())
        .args([
            "agent",
            "--operator",
            &operator.url,
            "--incident",
            &key.to_string(),
        ])
        .arg("--token-file")
        .arg(token_file.path())
        .env_remove("OPENAI_API_KEY")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // The person: answers whatever waits, through the annotations' path.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = agent.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{scenario}: the agent never finished"
        );
        if let Some(session) = operator.backend.session(&key)
            && let Waiting::Approval(approval) = &session.episode.waiting
        {
            operator
                .engine
                .answer(
                    &key,
                    PersonsAnswer {
                        step: approval.step,
                        approved: approve,
                        by: DecidedBy::Annotation,
                        approver: None,
                        action_hash: None,
                    },
                )
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = agent.stderr.take() {
        use tokio::io::AsyncReadExt;
        let _ = pipe.read_to_string(&mut stderr).await;
    }
    assert!(status.success(), "{scenario}: the agent failed: {stderr}");
    let session = operator.backend.session(&key).unwrap();
    let end = session.episode.end().cloned().unwrap();
    let healthy = remediator::verify::probe(sidecar.service.address, "/health", 3)
        .await
        .0
        .healthy;
    let journalled = remote.history().await.unwrap().len();
    (operator.backend.records(&key), end, healthy, journalled)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_train_scenario_resolves_across_the_three_processes() {
    let operator = operator().await;
    let catalog = Catalog::builtin();
    for scenario in catalog.scenarios.iter().filter(|s| s.split == Split::Train) {
        let (records, end, healthy, journalled) = incident(&operator, &scenario.id, true).await;
        let summary = format!("{}: {end:?} {records:?}", scenario.id);
        assert!(healthy, "{summary}");
        assert!(matches!(end, EpisodeEnd::Claimed { .. }), "{summary}");
        assert!(
            records
                .iter()
                .any(|r| r.decision == Decision::Confirmed && r.decided_by == "annotation"),
            "{summary}"
        );
        let steps: Vec<u32> = records.iter().map(|r| r.step).collect();
        let expected: Vec<u32> = (1..=records.len() as u32).collect();
        assert_eq!(steps, expected, "{summary}");
        assert_eq!(
            journalled,
            records.len(),
            "every step journalled once: {summary}"
        );
    }
}

#[tokio::test]
async fn a_rejection_fails_the_incident_and_the_fix_never_runs() {
    let operator = operator().await;
    let (records, end, healthy, _) = incident(&operator, "stale_lockfile", false).await;
    assert!(
        matches!(
            end,
            EpisodeEnd::ConfirmationRefused {
                by: DecidedBy::Annotation,
                ..
            }
        ),
        "{end:?}"
    );
    assert!(!healthy);
    let rejected = records
        .iter()
        .find(|r| r.decision == Decision::Rejected)
        .unwrap();
    assert_eq!(rejected.command, "rm -f -- 'service.lock'");
    assert_eq!(rejected.exit_code, None);
}
