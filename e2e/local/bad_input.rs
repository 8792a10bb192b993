//! Bad input to the CLI: a clear error naming the problem, a non-zero exit
//! code and never a panic.

use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::remediator_bin;

/// Runs the binary and fails the test (rather than hanging) past a deadline.
fn run(args: &[&str]) -> Output {
    let child = Command::new(remediator_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            panic!("remediator {args:?} did not exit within 60s");
        }
    }
}

fn assert_clear_failure(output: &Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "exit code 0; stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    assert!(
        stderr.contains(expected),
        "stderr lacks `{expected}`: {stderr}"
    );
}

#[test]
fn unknown_scenario_id_names_the_known_ones() {
    let output = run(&["scenario", "start", "no_such_scenario"]);
    assert_clear_failure(&output, "unknown scenario `no_such_scenario`");
    assert_clear_failure(&output, "stale_lockfile");
}

#[test]
fn malformed_catalog_is_named_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scenarios.yaml");
    std::fs::write(
        &path,
        "base: []\nscenarios:\n  - id: x\n    split: sometimes\n",
    )
    .unwrap();
    let output = run(&["--catalog", path.to_str().unwrap(), "scenario", "list"]);
    assert_clear_failure(&output, "is malformed");
    assert_clear_failure(&output, "split");
    let output = run(&[
        "--catalog",
        "/nonexistent/scenarios.yaml",
        "scenario",
        "list",
    ]);
    assert_clear_failure(
        &output,
        "cannot read scenario catalog /nonexistent/scenarios.yaml",
    );
}

#[test]
fn root_that_is_not_writable_is_refused() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let under_a_file = file.path().join("root");
    for root in [under_a_file.to_str().unwrap(), "/proc/remediator-root"] {
        let output = run(&[
            "target-service",
            "--scenario",
            "stale_lockfile",
            "--root",
            root,
            "--port",
            "1",
        ]);
        assert_clear_failure(&output, &format!("service root {root} is not writable"));
    }
}

#[test]
fn port_in_use_is_reported() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let output = run(&["scenario", "start", "stale_lockfile", "--port", &port]);
    assert_clear_failure(
        &output,
        &format!("port {port} on 127.0.0.1 is already in use"),
    );
}
