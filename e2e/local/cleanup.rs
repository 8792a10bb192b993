//! Stopping remediator mid-incident leaves nothing behind: SIGINT and
//! SIGTERM stop the service and the sandboxed command and remove the
//! scratch root; after SIGKILL every process still dies with it, and the
//! next start removes the root it left.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;

use crate::procs::{alive, descendants, eventually, private_tmp, scratch_dirs_of};
use crate::remediator_bin;
use crate::scripted_llm::{ScriptedLlm, call};

/// A remediator in the middle of an incident: its service is up and a
/// sandboxed `sleep MARKER` runs. Returns the child and its processes.
async fn mid_incident(tmp: &Path, marker: &str) -> (tokio::process::Child, Vec<u32>, ScriptedLlm) {
    let server = ScriptedLlm::start(vec![
        call(
            "http_get",
            json!({"path": "/health", "security_risk": "LOW"}),
        ),
        call(
            "run_command",
            json!({"command": format!("sleep {marker}"), "security_risk": "LOW"}),
        ),
    ])
    .await;
    let work = tempfile::tempdir().unwrap().keep();
    let child = tokio::process::Command::new(remediator_bin())
        .args([
            "run",
            "--scenario",
            "stale_lockfile",
            "--brain",
            "llm",
            "-o",
            "json",
        ])
        .current_dir(&work)
        .env("OPENAI_API_KEY", "k")
        .env("OPENAI_BASE_URL", &server.base_url)
        .env("REMEDIATOR_ARTIFACTS", work.join("artifacts"))
        .env("TMPDIR", tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let running = eventually(Duration::from_secs(60), || {
        descendants(pid).iter().any(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
        })
    })
    .await;
    assert!(running, "the sandboxed sleep never started");
    let processes = descendants(pid);
    assert!(
        processes.len() >= 4,
        "service, supervisor and sandbox: {processes:?}"
    );
    (child, processes, server)
}

async fn stops_cleanly_on(signal: Signal, marker: &str) {
    let tmp = private_tmp();
    let (mut child, processes, _server) = mid_incident(tmp.path(), marker).await;
    let pid = child.id().unwrap();
    assert_eq!(scratch_dirs_of(tmp.path(), pid).len(), 1);
    kill(Pid::from_raw(pid as i32), signal).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("remediator stops")
        .unwrap();
    assert_eq!(status.code(), Some(130), "{signal}");
    let gone = eventually(Duration::from_secs(10), || {
        processes.iter().all(|p| !alive(*p))
    })
    .await;
    assert!(
        gone,
        "{signal}: processes left: {:?}",
        processes.iter().filter(|p| alive(**p)).collect::<Vec<_>>()
    );
    assert!(
        scratch_dirs_of(tmp.path(), pid).is_empty(),
        "{signal}: the scratch root is still there"
    );
}

#[tokio::test]
async fn sigterm_stops_the_service_and_the_sandbox_and_removes_the_root() {
    stops_cleanly_on(Signal::SIGTERM, "4141").await;
}

#[tokio::test]
async fn sigint_stops_the_service_and_the_sandbox_and_removes_the_root() {
    stops_cleanly_on(Signal::SIGINT, "4142").await;
}

#[tokio::test]
async fn after_sigkill_nothing_runs_on_and_the_next_start_removes_the_root() {
    let tmp = private_tmp();
    let (mut child, processes, _server) = mid_incident(tmp.path(), "4143").await;
    let pid = child.id().unwrap();
    let left = scratch_dirs_of(tmp.path(), pid);
    assert_eq!(left.len(), 1);
    child.kill().await.unwrap();
    let gone = eventually(Duration::from_secs(10), || {
        processes.iter().all(|p| !alive(*p))
    })
    .await;
    assert!(
        gone,
        "processes outlived a killed remediator: {:?}",
        processes.iter().filter(|p| alive(**p)).collect::<Vec<_>>()
    );
    assert!(left[0].exists(), "nothing could remove it after SIGKILL");
    let dir = tempfile::tempdir().unwrap();
    let tmpdir = tmp.path().to_str().unwrap();
    let ran = crate::cli::remediator(
        dir.path(),
        &["run", "--scenario", "readiness_probe_fail"],
        &[("TMPDIR", tmpdir)],
    )
    .await;
    assert!(
        !left[0].exists(),
        "the next start did not sweep {}",
        left[0].display()
    );
    assert!(
        ran.stderr.contains("left by a remediator that was killed"),
        "{}",
        ran.stderr
    );
}
