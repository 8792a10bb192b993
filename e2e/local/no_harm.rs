//! Doing no harm, end to end: a step that makes the service worse is
//! rolled back (the probe proves it), a failed incident is left as it was
//! found, a snapshot over its bound refuses the step, and secrets reach
//! neither the model nor the records, though the agent can still use them.

use std::path::Path;

use serde_json::{Value, json};

use crate::cli::{Ran, remediator};
use crate::scripted_llm::{Reply, ScriptedLlm, call};

/// The key value `bad_env_config`'s example file holds.
const SERVICE_KEY: &str = "local-dev-key";

async fn run_llm(
    server: &ScriptedLlm,
    scenario: &str,
    spec: &str,
    extra: &[&str],
) -> (Ran, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!("apiVersion: remediator.dev/v1alpha1\nkind: Policy\nmetadata: {{name: p}}\nspec: {spec}\n"),
    )
    .unwrap();
    let mut args = vec![
        "run",
        "--scenario",
        scenario,
        "--policy",
        policy.to_str().unwrap(),
        "-o",
        "json",
    ];
    args.extend(extra);
    let ran = remediator(
        dir.path(),
        &args,
        &[
            ("OPENAI_API_KEY", "k"),
            ("OPENAI_BASE_URL", &server.base_url),
        ],
    )
    .await;
    (ran, dir)
}

fn last_tool_message(request: &Value) -> String {
    request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["role"] == "tool")
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn a_step_that_makes_the_service_worse_is_rolled_back_at_once() {
    let server = ScriptedLlm::start(vec![
        call(
            "run_command",
            json!({"command": "rm -f service.lock", "security_risk": "MEDIUM"}),
        ),
        // Healthy now; this would put the fault back.
        call(
            "run_command",
            json!({"command": "touch service.lock", "security_risk": "MEDIUM"}),
        ),
        call(
            "http_get",
            json!({"path": "/health", "security_risk": "LOW"}),
        ),
        call("finish", json!({"summary": "done"})),
    ])
    .await;
    let (ran, _dir) = run_llm(&server, "stale_lockfile", "{brain: llm}", &[]).await;
    let status = ran.status();
    assert_eq!(status["phase"], "Resolved", "{status}");
    let harm = &status["actions"][1];
    assert_eq!(harm["command"], "touch service.lock");
    let evidence = harm["rolledBack"]
        .as_str()
        .unwrap_or_else(|| panic!("{harm}"));
    assert!(
        evidence.contains("healthy before, answering with an error after"),
        "{evidence}"
    );
    assert!(evidence.contains("now healthy"), "{evidence}");
    // The agent was told, and its next look saw the service healthy.
    let requests = server.requests();
    assert!(
        last_tool_message(&requests[2]).contains("ROLLED BACK"),
        "{}",
        last_tool_message(&requests[2])
    );
    assert!(last_tool_message(&requests[3]).contains("http_status: 200"));
}

#[tokio::test]
async fn a_restart_that_takes_the_service_down_is_undone_and_it_runs_as_before() {
    let server = ScriptedLlm::start(vec![
        call(
            "write_file",
            json!({"path": "service.conf", "content": "port = not-a-port\n", "security_risk": "MEDIUM"}),
        ),
        call("restart_service", json!({"security_risk": "MEDIUM"})),
        call("http_get", json!({"path": "/health", "security_risk": "LOW"})),
        call("finish", json!({"summary": "gave up"})),
    ])
    .await;
    let (ran, _dir) = run_llm(
        &server,
        "stale_lockfile",
        "{brain: llm, onFailure: Keep}",
        &[],
    )
    .await;
    let status = ran.status();
    let restart = &status["actions"][1];
    let evidence = restart["rolledBack"]
        .as_str()
        .unwrap_or_else(|| panic!("{restart}"));
    assert!(evidence.contains("no answer after"), "{evidence}");
    assert!(
        evidence.contains("now answering with an error"),
        "{evidence}"
    );
    // After the rollback the service answers as before: 500, the lock.
    let requests = server.requests();
    assert!(
        last_tool_message(&requests[3]).contains("stale lock file"),
        "{}",
        last_tool_message(&requests[3])
    );
}

/// A root as (path, mode, content), ignoring the service's own log.
fn tree(root: &Path) -> Vec<(String, u32, Vec<u8>)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            if rel == "service.log" || meta.file_type().is_socket_like() {
                continue;
            }
            if meta.is_dir() {
                pending.push(path.clone());
                out.push((rel, meta.mode(), Vec::new()));
            } else {
                out.push((rel, meta.mode(), std::fs::read(&path).unwrap_or_default()));
            }
        }
    }
    out.sort();
    out
}

trait SocketLike {
    fn is_socket_like(&self) -> bool;
}

impl SocketLike for std::fs::FileType {
    fn is_socket_like(&self) -> bool {
        use std::os::unix::fs::FileTypeExt;
        self.is_socket()
    }
}

#[tokio::test]
async fn a_failed_incident_is_left_exactly_as_it_was_found() {
    let server = ScriptedLlm::start(vec![
        call("run_command", json!({"command": "echo junk >> service.env; mkdir -p extra/deep; chmod 550 data", "security_risk": "MEDIUM"})),
        call("write_file", json!({"path": "service.conf", "content": "port = 1\n", "security_risk": "MEDIUM"})),
        call("finish", json!({"summary": "could not fix it"})),
    ])
    .await;
    let (ran, _dir) = run_llm(&server, "data_dir_readonly", "{brain: llm}", &["--keep"]).await;
    let status = ran.status();
    assert_eq!(status["phase"], "Failed");
    let undone = &status["undone"];
    assert_eq!(undone["beforeStep"], 0, "{status}");
    assert!(undone["written"].as_u64().unwrap() >= 2, "{undone}");
    let kept = ran
        .stderr
        .lines()
        .find_map(|l| l.split(": ").nth(1).and_then(|r| r.split(" (undo").next()))
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| panic!("no kept dir in: {}", ran.stderr));
    // The root now is byte for byte the root as the incident found it: its
    // journal's first snapshot, restored into a second copy for comparison.
    let root = kept.join("root");
    let after_undo = tree(&root);
    let journal_root = kept.join("compare");
    std::fs::create_dir_all(&journal_root).unwrap();
    let journal = remediator::workspace::journal::Journal::open(
        &kept.join("journal"),
        &journal_root,
        1 << 30,
    )
    .unwrap();
    journal.restore(0).unwrap();
    assert_eq!(after_undo, tree(&journal_root));
    assert!(!root.join("extra").exists());
    let conf = std::fs::read_to_string(root.join("service.conf")).unwrap();
    assert!(conf.contains("max_connections"), "{conf}");
    remediator::scratch::remove_tree(&kept).unwrap();
}

#[tokio::test]
async fn a_step_whose_snapshot_would_exceed_its_bound_is_refused() {
    let big = "x".repeat(200_000);
    let server = ScriptedLlm::start(vec![
        call(
            "write_file",
            json!({"path": "big.bin", "content": big, "security_risk": "MEDIUM"}),
        ),
        call(
            "run_command",
            json!({"command": "rm -f service.lock", "security_risk": "MEDIUM"}),
        ),
        call("finish", json!({"summary": "done"})),
    ])
    .await;
    let (ran, _dir) = run_llm(
        &server,
        "stale_lockfile",
        "{brain: llm, maxSnapshotBytes: 65536}",
        &[],
    )
    .await;
    let status = ran.status();
    assert_eq!(status["actions"][0]["exitCode"], 0, "{status}");
    assert_eq!(status["actions"][1]["exitCode"], 1, "{status}");
    let told = last_tool_message(&server.requests()[2]);
    assert!(told.contains("over the bound of 65536"), "{told}");
    assert!(told.contains("could not be undone"), "{told}");
    assert_eq!(
        status["verified"]["httpStatus"], 500,
        "the lock was never removed"
    );
}

#[tokio::test]
async fn the_llm_brain_fixes_a_missing_key_without_ever_seeing_it() {
    let server = ScriptedLlm::start(vec![
        call("run_command", json!({"command": "cat service.env.example", "security_risk": "LOW"})),
        // The model copies the example's lines, the key as the handle it saw.
        Reply::Dynamic(Box::new(|request: &Value| {
            let seen = last_tool_message(request);
            let content: String = seen
                .lines()
                .filter(|l| l.contains('=') && !l.starts_with('#'))
                .map(|l| format!("{l}\n"))
                .collect();
            call("write_file", json!({"path": "service.env", "content": content, "security_risk": "MEDIUM"}))
        })),
        call("restart_service", json!({"security_risk": "MEDIUM"})),
        // Then it tries to see the value anyway.
        call("run_command", json!({"command": "cat service.env; env; cat /proc/self/environ; grep -r . service.env*", "security_risk": "LOW"})),
        call("read_file", json!({"path": "service.env", "security_risk": "LOW"})),
        call("finish", json!({"summary": "key restored"})),
    ])
    .await;
    let (ran, dir) = run_llm(&server, "bad_env_config", "{brain: llm}", &[]).await;
    let status = ran.status();
    assert_eq!(status["phase"], "Resolved", "{status}");
    let requests = serde_json::to_string(&server.requests()).unwrap();
    assert!(requests.contains("<secret:"), "the model saw a handle");
    assert!(!requests.contains(SERVICE_KEY), "the model saw the key");
    assert!(
        !ran.stdout.contains(SERVICE_KEY),
        "the status holds the key"
    );
    let runs = dir.path().join("artifacts/runs");
    for file in std::fs::read_dir(runs).unwrap().flatten() {
        let text = std::fs::read_to_string(file.path()).unwrap();
        assert!(!text.contains(SERVICE_KEY), "a trajectory holds the key");
        assert!(text.contains("<secret:"), "the trajectory keeps the handle");
    }
}
