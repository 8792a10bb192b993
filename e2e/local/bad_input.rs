//! Bad input to the CLI: a clear error naming the problem, a non-zero exit
//! code and never a panic.

use std::net::TcpListener;

use crate::cli::{Ran, remediator};

async fn run(args: &[&str]) -> Ran {
    let dir = tempfile::tempdir().unwrap();
    remediator(dir.path(), args, &[]).await
}

fn assert_clear_failure(ran: &Ran, expected: &str) {
    assert!(
        ran.code.is_some_and(|c| c != 0),
        "exit code {:?}; stderr: {}",
        ran.code,
        ran.stderr
    );
    assert!(!ran.stderr.contains("panicked"), "panic: {}", ran.stderr);
    assert!(
        ran.stderr.contains(expected),
        "stderr lacks `{expected}`: {}",
        ran.stderr
    );
}

#[tokio::test]
async fn unknown_scenario_id_names_the_known_ones() {
    let ran = run(&["scenario", "start", "no_such_scenario"]).await;
    assert_clear_failure(&ran, "unknown scenario `no_such_scenario`");
    assert_clear_failure(&ran, "stale_lockfile");
}

#[tokio::test]
async fn malformed_catalog_is_named_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scenarios.yaml");
    std::fs::write(
        &path,
        "base: []\nscenarios:\n  - id: x\n    split: sometimes\n",
    )
    .unwrap();
    let ran = run(&["--catalog", path.to_str().unwrap(), "scenario", "list"]).await;
    assert_clear_failure(&ran, "is malformed");
    assert_clear_failure(&ran, "split");
    let ran = run(&[
        "--catalog",
        "/nonexistent/scenarios.yaml",
        "scenario",
        "list",
    ])
    .await;
    assert_clear_failure(
        &ran,
        "cannot read scenario catalog /nonexistent/scenarios.yaml",
    );
}

/// YAML nested 100,000 deep (500 KB) is refused by name, as a manifest, a
/// Policy and a catalog, before serde_yaml's quadratic parse would hold
/// the CLI for most of a minute.
#[tokio::test]
async fn deeply_nested_yaml_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let deep = format!("a: {}1{}\n", "{a: ".repeat(100_000), "}".repeat(100_000));
    let path = dir.path().join("deep.yaml");
    std::fs::write(&path, &deep).unwrap();
    let path = path.to_str().unwrap();
    for args in [
        vec!["run", "-f", path],
        vec!["run", "--scenario", "stale_lockfile", "--policy", path],
        vec!["--catalog", path, "scenario", "list"],
    ] {
        let started = std::time::Instant::now();
        let ran = run(&args).await;
        println!("{args:?} refused in {:?}", started.elapsed());
        assert_clear_failure(&ran, "more than 64 deep (line 1)");
    }
}

#[tokio::test]
async fn root_that_is_not_writable_is_refused() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let under_a_file = file.path().join("root");
    for root in [under_a_file.to_str().unwrap(), "/proc/remediator-root"] {
        let args = [
            "target-service",
            "--scenario",
            "stale_lockfile",
            "--root",
            root,
            "--port",
            "1",
        ];
        let ran = run(&args).await;
        assert_clear_failure(&ran, &format!("service root {root} is not writable"));
    }
}

#[tokio::test]
async fn port_in_use_is_reported() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let ran = run(&["scenario", "start", "stale_lockfile", "--port", &port]).await;
    assert_clear_failure(&ran, &format!("port {port} on 127.0.0.1 is already in use"));
}

#[tokio::test]
async fn an_unmasked_proc_without_a_user_namespace_is_refused_before_connecting() {
    // KUBECONFIG points nowhere: the refusal must come first.
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-kubeconfig");
    let ran = remediator(
        dir.path(),
        &[
            "operator",
            "--proc-mount=Unmasked",
            "--no-leader-election",
            "--action-api-url=http://remediator:8080",
        ],
        &[("KUBECONFIG", missing.to_str().unwrap())],
    )
    .await;
    assert_clear_failure(&ran, "--proc-mount=Unmasked needs --host-users=false");
}
