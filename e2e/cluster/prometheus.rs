//! A real Prometheus (Debian's) scrapes the operator the chart started
//! while `remediator fanout --kube` runs Incidents through it, with the
//! chart's PrometheusRule loaded as its rule file. Then `promtool check
//! metrics` on the operator's scrape is clean, and every PromQL expression
//! of the chart's dashboard and rules runs against that Prometheus and
//! returns data: each alert is set up to fire here, the reconcile-errors
//! one by taking the operator's RoleBinding away for a moment. The
//! fan-out's report agrees with the Incidents' own status and has the same
//! shape as the local backend's.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use remediator::crd::IncidentPhase;
use serde_json::Value as Json;
use serde_yaml::Value;

use crate::chart::{Installed, find, install};
use crate::control_plane::{path_str, repo};
use crate::kubelet::remediator_bin;
use crate::operator::{check_metrics_with_promtool, get, loopback, poll};

/// What Grafana puts in place of its variables (as e2e/chart/rendered.py).
const GRAFANA_VARIABLES: [(&str, &str); 4] = [
    ("$__rate_interval", "1m"),
    ("$__range", "10m"),
    ("$__interval", "15s"),
    ("\"$policy\"", "\".*\""),
];

/// Alert thresholds low enough that this run's incidents make them fire.
const FIRING: [&str; 7] = [
    "metrics.serviceMonitor.enabled=true",
    "metrics.prometheusRule.enabled=true",
    "metrics.prometheusRule.failingIncidents.threshold=0",
    "metrics.prometheusRule.approvalWaiting.seconds=0",
    "metrics.prometheusRule.fixRate.minimum=1",
    "metrics.prometheusRule.fixRate.minIncidents=1",
    "metrics.prometheusRule.reconcileErrors.rate=0",
];

fn prometheus_installed() -> bool {
    let found = std::process::Command::new("prometheus")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have prometheus (apt-get install prometheus; .ci/run does it)"
        );
        eprintln!("skipped: prometheus is not installed (apt-get install prometheus)");
    }
    found
}

struct Prometheus {
    child: tokio::process::Child,
    address: SocketAddr,
    queries: usize,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Scrapes `target` every second at `path` and evaluates `rules` every second.
    async fn start(target: SocketAddr, path: &str, rules: &Value) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("rules.yaml"),
            serde_yaml::to_string(rules).unwrap(),
        )
        .unwrap();
        let config = format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             rule_files: [rules.yaml]\n\
             scrape_configs:\n\
             - job_name: remediator\n  metrics_path: {path}\n  static_configs: [{{targets: ['{target}']}}]\n"
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        let address = loopback();
        let child = tokio::process::Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={address}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut prometheus = Self {
            child,
            address,
            queries: 0,
            _dir: dir,
        };
        let ready = poll(Duration::from_secs(60), || async {
            get(address, "/-/ready")
                .await
                .is_some_and(|(s, _)| s == 200)
        })
        .await;
        assert!(ready, "prometheus never got ready:\n{}", prometheus.log());
        prometheus.until("up{job=\"remediator\"} == 1").await;
        prometheus
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// The result vector of an instant query; panics if Prometheus refuses it.
    async fn query(&mut self, promql: &str) -> Vec<Json> {
        self.queries += 1;
        let path = format!("/api/v1/query?query={}", encode(promql));
        let (status, body) = get(self.address, &path)
            .await
            .unwrap_or_else(|| panic!("no answer from prometheus for {promql}"));
        let answer: Json = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (status, answer["status"].as_str()),
            (200, Some("success")),
            "{promql}: {body}"
        );
        answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until `promql` returns data.
    async fn until(&mut self, promql: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while self.query(promql).await.is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "prometheus never saw {promql}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every query of the dashboard, by panel title, Grafana's variables given values.
fn dashboard_queries(docs: &[Value]) -> Vec<(String, String)> {
    let config = docs
        .iter()
        .find(|d| {
            d["kind"] == "ConfigMap"
                && d["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.ends_with("-dashboard"))
        })
        .expect("the chart renders the dashboard ConfigMap");
    let json = config["data"]
        .as_mapping()
        .and_then(|m| m.values().next())
        .and_then(Value::as_str)
        .expect("the dashboard JSON");
    let dashboard: Json = serde_json::from_str(json).unwrap();
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                let expr = GRAFANA_VARIABLES
                    .iter()
                    .fold(expr.to_string(), |e, (var, value)| e.replace(var, value));
                queries.push((format!("panel {}", panel["title"]), expr));
            }
        }
    }
    assert!(queries.len() >= 5, "{queries:?}");
    queries
}

/// `remediator fanout --kube` as a user runs it; its JSON report.
async fn fanout(chart: &Installed, args: &[&str]) -> Json {
    let out = tokio::process::Command::new(remediator_bin())
        .args([
            "fanout",
            "--kube",
            "--namespace",
            &chart.ns,
            "-o",
            "json",
            "--records",
        ])
        .args(args)
        .env("KUBECONFIG", &chart.cp.kubeconfig)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "fanout --kube {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        chart.log()
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The same run on local processes: the report a user compares with.
async fn local_fanout() -> Json {
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(remediator_bin())
        .args(["fanout", "--incidents", "1", "-o", "json", "--records"])
        .args(["--scenario-mix", "port_mismatch"])
        .current_dir(dir.path())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn keys(value: &Json) -> BTreeSet<String> {
    value.as_object().unwrap().keys().cloned().collect()
}

/// The report counts what the Incidents' status says, one record each.
async fn agrees_with_status(chart: &Installed, report: &Json) {
    let records = report["records"].as_array().unwrap();
    assert_eq!(
        records.len(),
        report["completed"].as_u64().unwrap() as usize
    );
    for record in records {
        let name = record["incident"].as_str().unwrap();
        let incident = chart.incidents().get(name).await.unwrap();
        let status = incident.status.unwrap();
        assert_eq!(
            record["phase"].as_str(),
            Some(status.phase.name()),
            "{name}"
        );
        assert_eq!(
            record["steps"].as_u64(),
            Some(u64::from(status.steps)),
            "{name}"
        );
        if let Some(resolved_in) = status.time_to_resolve_seconds {
            assert_eq!(
                record["service_s"].as_f64(),
                Some(resolved_in),
                "{name}: its service time is the time to resolve the operator wrote"
            );
        }
    }
}

/// Takes the operator's RoleBinding away, as a broken RBAC change would,
/// until Prometheus has seen a reconcile fail (so the reconcile-errors
/// alert has something to fire on), then puts it back: the Incident that
/// failed to reconcile meanwhile resolves.
async fn break_rbac_until_a_reconcile_fails(chart: &Installed, prometheus: &mut Prometheus) {
    let binding = chart
        .docs
        .iter()
        .find(|d| {
            d["kind"] == "RoleBinding"
                && d["roleRef"]["name"]
                    .as_str()
                    .is_some_and(|n| n.ends_with("-operator"))
        })
        .expect("the chart binds the operator's Role");
    let name = binding["metadata"]["name"].as_str().unwrap();
    let account = &binding["subjects"][0]["name"];
    let who = format!(
        "--as=system:serviceaccount:{}:{}",
        chart.ns,
        account.as_str().unwrap()
    );
    chart.kubectl(&["delete", "rolebinding", name], "").await;
    let revoked = poll(Duration::from_secs(30), || async {
        let ran = chart
            .cp
            .kubectl()
            .run(
                &[
                    "auth",
                    "can-i",
                    "patch",
                    "incidents/status",
                    "-n",
                    &chart.ns,
                    &who,
                ],
                "",
            )
            .await;
        ran.stdout.trim() == "no"
    })
    .await;
    assert!(revoked, "the API server still lets the operator patch");
    chart
        .kubectl(
            &["apply", "-f", "-"],
            "apiVersion: remediator.dev/v1alpha1\nkind: Incident\nmetadata: {name: forbidden}\nspec: {scenario: stale_lockfile, policyRef: {name: optimized}}\n",
        )
        .await;
    prometheus
        .until("sum(increase(remediator_reconcile_errors_total[10m])) > 0")
        .await;
    chart
        .kubectl(
            &["apply", "-f", "-"],
            &serde_yaml::to_string(binding).unwrap(),
        )
        .await;
    let recovered = chart.ended("forbidden", Duration::from_secs(180)).await;
    assert_eq!(
        recovered.status.unwrap().phase,
        IncidentPhase::Resolved,
        "the operator did not recover once its RBAC was back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prometheus_scrapes_a_kube_fanout_and_every_dashboard_and_rule_query_has_data() {
    if !prometheus_installed() {
        return;
    }
    let Some(chart) = install("chart-prometheus", &FIRING).await else {
        return;
    };
    let monitor = find(&chart.docs, "ServiceMonitor");
    let path = monitor["spec"]["endpoints"][0]["path"]
        .as_str()
        .unwrap_or("/metrics");
    let rules = &find(&chart.docs, "PrometheusRule")["spec"];
    let mut prometheus = Prometheus::start(chart.metrics, path, rules).await;
    let examples = repo().join("examples");
    for file in [
        "policy-optimized.yaml",
        "policy-supervised.yaml",
        "incident-stale-pidfile.yaml",
    ] {
        chart
            .kubectl(&["apply", "-f", path_str(&examples.join(file))], "")
            .await;
    }
    // One step is never enough: every incident under it fails.
    chart
        .kubectl(
            &["apply", "-f", "-"],
            "apiVersion: remediator.dev/v1alpha1\nkind: Policy\nmetadata: {name: starved}\nspec: {maxSteps: 1}\n",
        )
        .await;
    let run = |policy: &'static str, incidents: &'static str, run_id: &'static str| {
        [
            "--scenario-mix",
            "port_mismatch",
            "--policy",
            policy,
            "--incidents",
            incidents,
            "--concurrency",
            "2",
            "--run-id",
            run_id,
        ]
    };
    // Counters are born at their first increment; a series needs a second
    // value, seen by Prometheus, before increase() says anything. Hence two
    // rounds, the first one scraped before the second starts.
    let (good, bad) = (run("optimized", "1", "r1"), run("starved", "1", "r2"));
    let (good, bad) = tokio::join!(fanout(&chart, &good), fanout(&chart, &bad));
    assert_eq!(
        (good["fixed"].as_u64(), bad["failed"].as_u64()),
        (Some(1), Some(1)),
        "{good:#}\n{bad:#}"
    );
    prometheus
        .until("sum(remediator_incidents_total) >= 2")
        .await;
    let (good, bad) = (run("optimized", "4", "r3"), run("starved", "2", "r4"));
    let (good, bad) = tokio::join!(fanout(&chart, &good), fanout(&chart, &bad));
    assert_eq!(
        (
            good["completed"].as_u64(),
            good["fixed"].as_u64(),
            good["fix_rate"].as_f64()
        ),
        (Some(4), Some(4), Some(1.0)),
        "{good:#}"
    );
    assert_eq!(
        (bad["completed"].as_u64(), bad["fixed"].as_u64()),
        (Some(2), Some(0)),
        "{bad:#}"
    );
    agrees_with_status(&chart, &good).await;
    agrees_with_status(&chart, &bad).await;
    let labelled = chart
        .kubectl(
            &[
                "get",
                "incidents",
                "-l",
                "remediator.dev/fanout-run=r3",
                "-o",
                "name",
            ],
            "",
        )
        .await;
    assert_eq!(labelled.lines().count(), 4, "{labelled}");
    let local = local_fanout().await;
    // Nothing is recorded on this machine: the operator keeps the status.
    let mut local_keys = keys(&local);
    assert!(local_keys.remove("trajectory_file"));
    assert_eq!(
        keys(&good),
        local_keys,
        "the same report as the local backend"
    );
    assert_eq!(
        keys(&good["records"][0]),
        keys(&local["records"][0]),
        "the same record as the local backend"
    );
    // The supervised Incident waits for a person while Prometheus looks.
    chart
        .until_phase("stale-pidfile", IncidentPhase::AwaitingApproval)
        .await;
    prometheus
        .until("sum(remediator_incidents_total) >= 8")
        .await;
    prometheus
        .until("sum(remediator_approvals_pending) >= 1")
        .await;
    prometheus.until("remediator:policy_fix_rate:ratio1h").await;
    break_rbac_until_a_reconcile_fails(&chart, &mut prometheus).await;

    let (_, scrape) = get(chart.metrics, "/metrics").await.unwrap();
    check_metrics_with_promtool(&scrape).await;
    let mut empty = Vec::new();
    let mut queries = dashboard_queries(&chart.docs);
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let name = rule["alert"].as_str().or(rule["record"].as_str()).unwrap();
            queries.push((name.to_string(), rule["expr"].as_str().unwrap().to_string()));
        }
    }
    for (what, expr) in &queries {
        if prometheus.query(expr).await.is_empty() {
            empty.push(format!("{what}: {expr}"));
        }
    }
    assert!(empty.is_empty(), "no data for:\n{}", empty.join("\n"));
    eprintln!(
        "prometheus: all {} dashboard and rule expressions returned data ({} queries in all)",
        queries.len(),
        prometheus.queries
    );
    drop(prometheus);
}
