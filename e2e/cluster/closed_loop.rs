//! The closed loop on the real control plane: the operator records each
//! finished Incident's trajectory in its Policy's ring (ConfigMap
//! `<policy>-trajectories`, with what the sandbox journal says came back);
//! the chart's CronJob container (its exact arguments, under a token of
//! its ServiceAccount and so only its Role) runs `remediator optimize
//! --publish --to-policy` with the runbook brain, reusing those recordings
//! instead of fresh rollouts of the hint in use. The learned hint lands in
//! ConfigMap `<policy>-hint` and on the Policy with its hintVersion; an
//! Incident created before it keeps the hint it started with, one created
//! after follows the new one. A Policy that does not follow the optimizer
//! is refused before any rollout is spent.

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use remediator::crd::{IncidentPhase, Policy};
use remediator::trajectory::in_cluster;
use serde_yaml::Value;

use crate::chart::{Installed, find, install, token_of};
use crate::kubelet::remediator_bin;
use crate::operator::kubeconfig_with_token;

const LOOP: [&str; 3] = [
    "optimizer.closedLoop.enabled=true",
    "optimizer.closedLoop.policy=learner",
    "optimizer.closedLoop.budget=60",
];

/// The CronJob's container, run here as its Pod would run it, with the
/// artifact paths in `dir` and `--to-policy` pointed at `policy`.
async fn run_cronjob(
    chart: &Installed,
    dir: &std::path::Path,
    policy: &str,
) -> std::process::Output {
    let pod = &find(&chart.docs, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let account = pod["serviceAccountName"].as_str().unwrap();
    let token = token_of(&chart.client, &chart.ns, account).await;
    let kubeconfig = kubeconfig_with_token(chart.cp, &token, &dir.join("kubeconfig"));
    let args: Vec<String> = pod["containers"][0]["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .map(|arg| match arg.split_once('=') {
            Some(("--artifacts-dir", _)) => format!("--artifacts-dir={}", dir.display()),
            Some(("--default-skill-file", _)) => {
                format!("--default-skill-file={}", dir.join("SKILL.md").display())
            }
            Some(("--to-policy", _)) => format!("--to-policy={policy}"),
            _ => arg.to_string(),
        })
        .collect();
    assert!(args.iter().any(|a| a == "--publish"), "{args:?}");
    tokio::process::Command::new(remediator_bin())
        .args(&args)
        .args(["--seed", "1", "--concurrency", "2"])
        .env("KUBECONFIG", &kubeconfig)
        .current_dir(dir)
        .output()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_closed_loop_publishes_to_a_following_policy_for_new_incidents_only() {
    let Some(chart) = install("closed-loop", &LOOP).await else {
        return;
    };
    // No hint of its own: it starts from the baseline hint.
    chart
        .kubectl(
            &["apply", "-f", "-"],
            "apiVersion: remediator.dev/v1alpha1\nkind: Policy\nmetadata: {name: learner}\nspec: {followOptimizer: true}\n\
             ---\napiVersion: remediator.dev/v1alpha1\nkind: Policy\nmetadata: {name: bystander}\nspec: {}\n",
        )
        .await;
    let dir = tempfile::tempdir().unwrap();
    let refused = run_cronjob(&chart, dir.path(), "bystander").await;
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && said.contains("does not follow the optimizer"),
        "{said}"
    );
    assert!(
        !dir.path().join("runs").exists(),
        "a refused Policy cost rollouts"
    );

    let incident = |name: &str, scenario: &str| {
        format!(
            "apiVersion: remediator.dev/v1alpha1\nkind: Incident\nmetadata: {{name: {name}}}\nspec: {{scenario: {scenario}, policyRef: {{name: learner}}}}\n"
        )
    };
    // Two train scenarios run under the hint in use before the loop runs.
    for (name, scenario) in [
        ("before", "port_mismatch"),
        ("before-lock", "stale_lockfile"),
    ] {
        chart
            .kubectl(&["apply", "-f", "-"], &incident(name, scenario))
            .await;
    }
    let before = chart.ended("before", Duration::from_secs(180)).await;
    let before_agent = before.status.as_ref().unwrap().agent.clone().unwrap();
    assert_eq!(before_agent.hint_version, None, "{before_agent:?}");
    chart.ended("before-lock", Duration::from_secs(180)).await;
    let before = chart.recorded("before").await;
    chart.recorded("before-lock").await;

    // The operator's recordings: every step, with what came back.
    let ring = Api::<ConfigMap>::namespaced(chart.client.clone(), &chart.ns)
        .get("learner-trajectories")
        .await
        .unwrap();
    let recorded = in_cluster::parse(ring.data.as_ref().unwrap());
    assert_eq!(recorded.malformed, 0);
    let mut names: Vec<&str> = recorded.lines.iter().map(|l| l.incident.as_str()).collect();
    names.sort();
    assert_eq!(names, ["before", "before-lock"]);
    let line = recorded
        .lines
        .iter()
        .find(|l| l.incident == "before")
        .unwrap();
    let status = before.status.as_ref().unwrap();
    assert_eq!(line.service_up, status.phase == IncidentPhase::Resolved);
    assert_eq!(line.step_count, status.steps);
    assert_eq!(line.steps.len(), status.actions.len());
    assert!(
        line.steps
            .iter()
            .any(|s| s.decision == "Allowed" && !s.observation.trim().is_empty()),
        "what came back is recorded: {:#?}",
        line.steps
    );
    assert_eq!(
        ring.metadata.owner_references.as_ref().unwrap()[0].name,
        "learner",
        "the recordings go with their Policy"
    );

    let ran = run_cronjob(&chart, dir.path(), "learner").await;
    let stdout = String::from_utf8_lossy(&ran.stdout);
    assert!(
        ran.status.success() && stdout.contains("published to Policy"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    assert!(
        stdout.contains("recorded in the cluster: 2 trajectories of Policy learner"),
        "{stdout}"
    );
    let reused: usize = stdout
        .split_once(" reused from recordings")
        .and_then(|(head, _)| head.rsplit_once('(')?.1.parse().ok())
        .unwrap_or_else(|| panic!("no reuse count in {stdout}"));
    assert!(
        reused >= 2,
        "the hint in use was not run again where it was recorded: {stdout}"
    );
    let policy = Api::<Policy>::namespaced(chart.client.clone(), &chart.ns)
        .get("learner")
        .await
        .unwrap();
    let record = Api::<ConfigMap>::namespaced(chart.client.clone(), &chart.ns)
        .get("learner-hint")
        .await
        .unwrap();
    let data = record.data.clone().unwrap();
    let version = policy.spec.hint_version.clone().expect("a hintVersion");
    assert_eq!(data.get("version"), Some(&version));
    assert_eq!(data.get("hint"), policy.spec.hint.as_ref());
    assert_eq!(
        record.metadata.owner_references.unwrap()[0].uid,
        policy.metadata.uid.unwrap(),
        "the record goes with its Policy"
    );
    assert!(policy.spec.follow_optimizer, "the rest of the spec is kept");

    chart
        .kubectl(&["apply", "-f", "-"], &incident("after", "port_mismatch"))
        .await;
    let after = chart.ended("after", Duration::from_secs(180)).await;
    let status = after.status.unwrap();
    assert_eq!(status.phase, IncidentPhase::Resolved, "{status:#?}");
    let agent = status.agent.unwrap();
    assert_eq!(agent.hint_version.as_deref(), Some(version.as_str()));
    assert!(agent.policy_generation > before_agent.policy_generation);
    // The one that ran before is as it was.
    let before_now = chart.incidents().get("before").await.unwrap();
    assert_eq!(before_now.status.unwrap().agent.unwrap(), before_agent);
    eprintln!(
        "closed loop: {reused} rollouts reused from the operator's recordings; published hintVersion {version}; {}",
        stdout
            .lines()
            .find(|l| l.contains("published: validation"))
            .unwrap_or_default()
    );
}
