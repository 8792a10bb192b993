//! The sandbox sidecar over real HTTP, as the operator reaches it: only
//! its operator's token for its incident gets in, a step runs once however
//! often it is sent, bad bodies get 4xx, and a slow or vanished sidecar is
//! a transport error the caller may retry, never a failed command.

use std::time::Duration;

use remediator::action::Action;
use remediator::protocol::WorkspaceError;
use remediator::risk::{Classifier, Gate, GatePolicy, RiskLevel};
use remediator::scenario::{Catalog, RunningService};
use remediator::workspace::{Remote, Workspace};
use serde_json::json;

use crate::sidecar_process::SidecarProcess;
use crate::{launch, remediator_bin};

const UID: &str = "6f1c2a7e-0000-4000-8000-000000000001";

pub struct Sidecar {
    process: SidecarProcess,
    pub uid: String,
    pub service: RunningService,
}

impl Sidecar {
    async fn start(scenario: &str) -> Self {
        Self::start_for(scenario, UID).await
    }

    /// A scenario's service with a sidecar for incident `uid`.
    pub async fn start_for(scenario: &str, uid: &str) -> Self {
        let service = launch().start(&Catalog::builtin(), scenario).await.unwrap();
        let process = SidecarProcess::spawn(&remediator_bin(), uid, &service.root, service.address);
        let address = process.address;
        let ready = crate::procs::eventually(Duration::from_secs(30), || {
            std::net::TcpStream::connect(address).is_ok()
        })
        .await;
        assert!(ready, "the sidecar never listened");
        Self {
            process,
            uid: uid.to_string(),
            service,
        }
    }

    pub async fn kill(&mut self) {
        self.process.child.kill().await.unwrap();
    }

    pub fn remote(&self, timeout: Duration) -> Remote {
        Remote::new(
            format!("http://{}", self.process.address),
            &self.process.token,
            &self.uid,
            timeout,
        )
    }

    fn gate(&self) -> Gate {
        Gate::new(
            Classifier::new(&self.service.root, self.service.address.port()),
            GatePolicy {
                max_risk: RiskLevel::High,
                ..GatePolicy::default()
            },
        )
    }

    async fn raw(&self, path: &str, token: Option<&str>, body: Vec<u8>) -> (u16, String) {
        let mut request = reqwest::Client::new()
            .post(format!("http://{}{path}", self.process.address))
            .header("content-type", "application/json")
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }
}

fn step_body(incident: &str, command: &str) -> Vec<u8> {
    serde_json::to_vec(
        &json!({"incident": incident, "action": {"exec": command}, "risk": "MEDIUM"}),
    )
    .unwrap()
}

#[tokio::test]
async fn a_step_sent_twice_runs_once_and_answers_the_same() {
    let sidecar = Sidecar::start("stale_lockfile").await;
    let remote = sidecar.remote(Duration::from_secs(30));
    let gate = sidecar.gate();
    let action = Action::Exec("echo ran >> ran.txt; wc -l < ran.txt".into());
    let permit = gate.permit(1, &action, None, None).unwrap();
    let first = remote.run(&permit).await.unwrap();
    let second = remote.run(&permit).await.unwrap();
    assert_eq!(first, second);
    let ran = std::fs::read_to_string(sidecar.service.root.join("ran.txt")).unwrap();
    assert_eq!(ran, "ran\n", "the step ran twice");
    // The same number with another action is a protocol error, not a run.
    let other = gate
        .permit(1, &Action::Exec("touch other".into()), None, None)
        .unwrap();
    assert!(
        matches!(remote.run(&other).await, Err(WorkspaceError::Sandbox(e)) if e.contains("409"))
    );
    assert!(!sidecar.service.root.join("other").exists());
    let history = remote.history().await.unwrap();
    assert_eq!(history.len(), 1);
}

#[tokio::test]
async fn only_its_operator_for_its_incident_gets_in() {
    let sidecar = Sidecar::start("stale_lockfile").await;
    let body = step_body(UID, "touch intruded");
    let (status, _) = sidecar.raw("/v1/steps/1", None, body.clone()).await;
    assert_eq!(status, 401);
    let (status, _) = sidecar
        .raw("/v1/steps/1", Some(&remediator::tokens::generate()), body)
        .await;
    assert_eq!(status, 401);
    let other = step_body("another-incident", "touch intruded");
    let (status, text) = sidecar
        .raw("/v1/steps/1", Some(&sidecar.process.token), other)
        .await;
    assert_eq!(status, 403, "{text}");
    assert!(!sidecar.service.root.join("intruded").exists());
}

#[tokio::test]
async fn malformed_and_oversized_bodies_get_4xx() {
    let sidecar = Sidecar::start("stale_lockfile").await;
    let token = Some(sidecar.process.token.as_str());
    let (status, _) = sidecar
        .raw("/v1/steps/1", token, b"{not json".to_vec())
        .await;
    assert!((400..500).contains(&status), "{status}");
    let unknown = br#"{"incident":"x","action":{"format_disk":true},"risk":"LOW"}"#.to_vec();
    let (status, _) = sidecar.raw("/v1/steps/1", token, unknown).await;
    assert_eq!(status, 422);
    let huge = step_body(UID, &"x".repeat(3 << 20));
    let (status, _) = sidecar.raw("/v1/steps/1", token, huge).await;
    assert_eq!(status, 413);
    let (status, _) = sidecar
        .raw("/v1/steps/not-a-number", token, step_body(UID, "ls"))
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_slow_sidecar_times_out_and_the_retry_gets_the_journalled_answer() {
    let sidecar = Sidecar::start("stale_lockfile").await;
    let gate = sidecar.gate();
    let action = Action::Exec("sleep 2; echo ran >> slow.txt".into());
    let permit = gate.permit(1, &action, None, None).unwrap();
    let impatient = sidecar.remote(Duration::from_millis(500));
    assert!(matches!(
        impatient.run(&permit).await,
        Err(WorkspaceError::Unreachable(_))
    ));
    let patient = sidecar.remote(Duration::from_secs(30));
    let answer = patient.run(&permit).await.unwrap();
    assert_eq!(answer.exit_code, Some(0));
    let ran = std::fs::read_to_string(sidecar.service.root.join("slow.txt")).unwrap();
    assert_eq!(ran, "ran\n", "the retried step ran again");
}

#[tokio::test]
async fn a_gone_sidecar_is_unreachable_not_a_failed_command() {
    let mut sidecar = Sidecar::start("stale_lockfile").await;
    sidecar.process.child.kill().await.unwrap();
    let gate = sidecar.gate();
    let permit = gate
        .permit(1, &Action::Exec("ls".into()), None, None)
        .unwrap();
    let result = sidecar.remote(Duration::from_secs(5)).run(&permit).await;
    assert!(matches!(&result, Err(e) if e.is_retryable()), "{result:?}");
}

#[tokio::test]
async fn a_waiting_write_is_previewed_as_a_redacted_diff_and_nothing_runs() {
    let sidecar = Sidecar::start("stale_lockfile").await;
    let remote = sidecar.remote(Duration::from_secs(10));
    let root = &sidecar.service.root;
    let before = std::fs::read_to_string(root.join("service.env")).unwrap();
    assert!(before.contains("local-dev-key"));
    let diff = remote
        .preview(
            "service.env",
            "REQUIRED_API_KEY=<secret:0000:1>\nLOG_FORMAT=json\n",
        )
        .await
        .unwrap();
    assert!(
        diff.contains("+LOG_FORMAT=json") && diff.contains("-LOG_FORMAT=text"),
        "{diff}"
    );
    assert!(
        !diff.contains("local-dev-key"),
        "the key's value is in the diff: {diff}"
    );
    let diff = remote.preview("new.flag", "ready\n").await.unwrap();
    assert!(diff.starts_with("--- /dev/null"), "{diff}");
    // Nothing outside the root, nor behind a symlink, is read.
    let outside = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(outside.path(), "OUTSIDE-ONLY\n").unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("escape")).unwrap();
    for path in [
        "escape",
        "../../../../etc/passwd",
        "/etc/passwd",
        "/proc/self/environ",
    ] {
        let answer = remote.preview(path, "x\n").await;
        let text = format!("{answer:?}");
        assert!(
            !text.contains("OUTSIDE-ONLY") && !text.contains("root:x:0"),
            "{path}: {text}"
        );
        assert!(
            answer.is_err() || text.contains("/dev/null"),
            "{path}: {text}"
        );
    }
    // A preview is no step: the file, the journal and the service are as they were.
    assert_eq!(
        std::fs::read_to_string(root.join("service.env")).unwrap(),
        before
    );
    assert!(!root.join("new.flag").exists());
    assert!(remote.history().await.unwrap().is_empty());
    // Only this sidecar's operator may ask.
    let (status, _) = sidecar
        .raw(
            "/v1/preview",
            Some("not-the-token"),
            json!({"incident": sidecar.uid, "path": "service.env", "content": ""})
                .to_string()
                .into_bytes(),
        )
        .await;
    assert_eq!(status, 401);
}
