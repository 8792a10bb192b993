//! The agent on real services: every scenario is resolved and verified by
//! the independent probe; the gate holds whatever the brain proposes.

use remediator::agent::confirm::Refuse;
use remediator::agent::hint::ResolvedHint;
use remediator::crd::{IncidentPhase, PolicySpec};
use remediator::local::{self, LocalIncident};
use remediator::policy::ResolvedPolicy;
use remediator::scenario::{Catalog, oracle_fix};

use crate::cli::remediator;
use crate::environment;

async fn steps_with(
    catalog: &Catalog,
    scenario: &str,
    hint: ResolvedHint,
) -> (IncidentPhase, u32, bool) {
    let incident = LocalIncident {
        name: scenario.replace('_', "-"),
        scenario: scenario.to_string(),
        policy: ResolvedPolicy {
            name: "test".into(),
            spec: PolicySpec::default(),
            hint,
            generation: None,
        },
        classifier_off: false,
        keep: false,
    };
    let env = environment(catalog.clone()).await;
    let outcome = local::run(&incident, &env, &Refuse).await;
    let healthy = outcome.status.verified.as_ref().is_some_and(|v| v.healthy);
    (outcome.status.phase, outcome.status.steps, healthy)
}

/// The hint of the shipped learned policy (examples/policy-learned.yaml).
fn learned_hint() -> ResolvedHint {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policy-learned.yaml");
    let policy: remediator::crd::Policy =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    ResolvedHint::inline(&policy.spec.hint.expect("the learned policy has a hint"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_resolves_and_each_better_hint_needs_fewer_steps() {
    let catalog = Catalog::builtin();
    let budget = PolicySpec::default().max_steps;
    let mut report = Vec::new();
    for scenario in &catalog.scenarios {
        let learned = steps_with(&catalog, &scenario.id, learned_hint()).await;
        let manual = steps_with(&catalog, &scenario.id, ResolvedHint::manual()).await;
        let baseline = steps_with(&catalog, &scenario.id, ResolvedHint::baseline()).await;
        report.push(format!(
            "{}: baseline {baseline:?} manual {manual:?} learned {learned:?}",
            scenario.id
        ));
        assert_eq!(
            learned,
            (IncidentPhase::Resolved, learned.1, true),
            "{report:#?}"
        );
        // A checklist hint may run out of steps on a scenario with several
        // faults, never out of honesty: resolved, or failed at the budget.
        for weaker in [manual, baseline] {
            assert!(
                weaker == (IncidentPhase::Resolved, weaker.1, true)
                    || weaker == (IncidentPhase::Failed, budget, false),
                "{report:#?}"
            );
        }
        assert!(baseline.1 > manual.1 || baseline.1 == budget, "{report:#?}");
        assert!(manual.1 >= learned.1, "{report:#?}");
        assert!(
            learned.1 > oracle_fix(scenario, 1).unwrap().len() as u32,
            "steps are real work, never fewer than the oracle"
        );
    }
}

#[tokio::test]
async fn a_hint_that_skips_the_evidence_does_not_get_lucky() {
    // Locks are only removed when the service blames them; a hint that
    // never looks at the service's answer or log cannot know which.
    let catalog = Catalog::builtin();
    let (phase, _, healthy) = steps_with(
        &catalog,
        "stale_lockfile",
        ResolvedHint::inline("check the lock files"),
    )
    .await;
    assert_eq!((phase, healthy), (IncidentPhase::Failed, false));
}

#[tokio::test]
async fn confirmation_without_a_terminal_or_auto_confirm_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "run",
        "--scenario",
        "stale_lockfile",
        "--require-confirmation-for-risk",
        "MEDIUM",
        "-o",
        "json",
    ];
    let ran = remediator(dir.path(), &args, &[]).await;
    let status = ran.status();
    assert_eq!(ran.code, Some(1));
    assert_eq!(status["phase"], "Failed");
    let medium: Vec<&serde_json::Value> = status["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["risk"] == "MEDIUM")
        .collect();
    assert!(!medium.is_empty());
    for action in medium {
        assert_eq!(action["decision"], "Rejected", "{action}");
        assert_eq!(action["decidedBy"], "no-terminal");
        assert!(
            action.get("exitCode").is_none(),
            "a refused action never runs"
        );
    }

    let auto = [
        "run",
        "--scenario",
        "stale_lockfile",
        "--require-confirmation-for-risk",
        "MEDIUM",
        "--auto-confirm",
        "-o",
        "json",
    ];
    let ran = remediator(dir.path(), &auto, &[]).await;
    assert_eq!(ran.status()["phase"], "Resolved");
    assert!(
        ran.status()["actions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["decision"] == "Confirmed" && a["decidedBy"] == "policy")
    );
}

#[tokio::test]
async fn max_risk_low_denies_every_change_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "run",
        "--scenario",
        "stale_lockfile",
        "--max-security-risk",
        "LOW",
        "-o",
        "json",
    ];
    let ran = remediator(dir.path(), &args, &[]).await;
    let status = ran.status();
    assert_eq!(status["phase"], "Failed");
    assert_eq!(
        status["verified"]["httpStatus"], 500,
        "the lock is still there"
    );
    assert!(
        status["actions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["decision"] == "Denied" && a["command"] == "rm -f -- 'service.lock'")
    );
}

#[tokio::test]
async fn a_manifest_runs_like_kubectl_apply_would_take_it() {
    let dir = tempfile::tempdir().unwrap();
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/incident-port-mismatch.yaml"
    );
    let ran = remediator(dir.path(), &["run", "-f", example, "-o", "json"], &[]).await;
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    let incident = ran.incident();
    assert_eq!(incident["metadata"]["name"], "port-mismatch");
    assert_eq!(incident["status"]["phase"], "Resolved");
    assert_eq!(incident["status"]["agent"]["policy"], "optimized");

    let runs = std::fs::read_dir(dir.path().join("artifacts/runs"))
        .unwrap()
        .count();
    assert_eq!(runs, 1);
}

#[tokio::test]
async fn the_trajectory_line_has_the_fields_the_optimizer_reads() {
    let dir = tempfile::tempdir().unwrap();
    let ran = remediator(
        dir.path(),
        &[
            "run",
            "--scenario",
            "readiness_probe_fail",
            "--run-id",
            "t1",
            "-o",
            "json",
        ],
        &[],
    )
    .await;
    assert_eq!(ran.code, Some(0));
    let text = std::fs::read_to_string(dir.path().join("artifacts/runs/t1.jsonl")).unwrap();
    let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(line["scenario_id"], "readiness_probe_fail");
    assert_eq!(line["trace_key"], "t1:readiness-probe-fail");
    assert_eq!(line["service_up"], true);
    assert_eq!(
        line["step_count"],
        line["tool_actions"].as_array().unwrap().len()
    );
    assert!(line["latency_s"].as_f64().unwrap() > 0.0);
    assert!(
        line["strategy_hint"]
            .as_str()
            .unwrap()
            .contains("GET /health")
    );
}

#[tokio::test]
async fn bad_input_to_run_is_a_clear_failure() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: remediator.dev/v1alpha1\nkind: Incident\nspec: [oops",
    )
    .unwrap();
    let ran = remediator(dir.path(), &["run", "-f", bad.to_str().unwrap()], &[]).await;
    assert_eq!(ran.code, Some(1));
    assert!(
        ran.stderr.contains("document 1 is not valid YAML"),
        "{}",
        ran.stderr
    );
    assert!(!ran.stderr.contains("panicked"));

    let ran = remediator(
        dir.path(),
        &["run", "--scenario", "no_such", "-o", "json"],
        &[],
    )
    .await;
    assert_eq!(ran.code, Some(1));
    assert_eq!(ran.status()["reason"], "UnknownScenario");
    assert_eq!(ran.status()["phase"], "Failed");

    let ran = remediator(
        dir.path(),
        &[
            "run",
            "--scenario",
            "stale_lockfile",
            "--policy",
            "nope.yaml",
        ],
        &[],
    )
    .await;
    assert_eq!(ran.code, Some(1));
    assert!(
        ran.stderr.contains("cannot read nope.yaml"),
        "{}",
        ran.stderr
    );
}

/// Runs `remediator run` on a pseudo-terminal (util-linux `script`), typing
/// `answer` at every confirmation prompt; returns the printed Incident.
async fn run_on_a_terminal(answer: &str) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let command = format!(
        "{} run --scenario stale_lockfile --require-confirmation-for-risk MEDIUM --artifacts-dir {} -o json",
        crate::remediator_bin().display(),
        dir.path().join("artifacts").display()
    );
    let mut child = tokio::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("util-linux `script` is installed");
    let mut stdin = child.stdin.take().unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stdin, format!("{answer}\n").repeat(4).as_bytes())
        .await
        .unwrap();
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        child.wait_with_output(),
    )
    .await
    .unwrap()
    .unwrap();
    // The terminal merges the prompt, the JSON and stderr: cut the JSON out.
    let screen = String::from_utf8_lossy(&output.stdout).replace('\r', "");
    let start = screen
        .find("{\n  \"apiVersion\"")
        .unwrap_or_else(|| panic!("no JSON on the terminal:\n{screen}"));
    let end = screen.rfind("\n}").unwrap() + 2;
    assert!(
        screen[..start].contains("wants to run [MEDIUM] rm -f -- 'service.lock'"),
        "{screen}"
    );
    assert!(
        screen[..start].contains("allow? [y/N]"),
        "no prompt was shown:\n{screen}"
    );
    serde_json::from_str(&screen[start..end]).unwrap_or_else(|e| panic!("{e}:\n{screen}"))
}

#[tokio::test]
async fn a_person_at_the_terminal_approves_or_rejects() {
    let approved = run_on_a_terminal("y").await;
    let status = &approved["status"];
    assert_eq!(status["phase"], "Resolved");
    let rm = status["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["command"] == "rm -f -- 'service.lock'")
        .unwrap();
    assert_eq!(
        (rm["decision"].as_str(), rm["decidedBy"].as_str()),
        (Some("Confirmed"), Some("terminal"))
    );

    let rejected = run_on_a_terminal("n").await;
    let status = &rejected["status"];
    assert_eq!(status["phase"], "Failed");
    let rm = status["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["command"] == "rm -f -- 'service.lock'")
        .unwrap();
    assert_eq!(
        (rm["decision"].as_str(), rm["decidedBy"].as_str()),
        (Some("Rejected"), Some("terminal"))
    );
    assert!(rm.get("exitCode").is_none());
}
