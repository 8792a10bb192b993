//! The commands as a user runs them: bad input is a clear error and a
//! non-zero exit; `fanout -o json` agrees with its JSONL; Ctrl-C drains,
//! reports what ran and leaves no process or directory behind; the
//! scorecard prints a row for every approach and draws its plot.

use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::Value;

use crate::jaeger::{self, Jaeger};
use crate::{
    alive, descendants, eventually, private_tmp, remediator_bin, scratch_dirs, trajectory,
};

struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn remediator(dir: &std::path::Path, args: &[&str]) -> Ran {
    remediator_with(dir, args, &[]).await
}

/// `remediator` with more environment; the OpenTelemetry endpoint only
/// when given here.
async fn remediator_with(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Ran {
    let output = tokio::time::timeout(
        Duration::from_secs(300),
        tokio::process::Command::new(remediator_bin())
            .args(args)
            .current_dir(dir)
            .env("REMEDIATOR_ARTIFACTS", dir.join("artifacts"))
            .env("TMPDIR", dir)
            .env_remove("OPENAI_API_KEY")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("remediator finished within 300s")
    .expect("remediator ran");
    Ran {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[tokio::test]
async fn bad_fanout_and_scorecard_input_is_a_clear_error_not_a_panic() {
    let dir = private_tmp();
    let cases: [(&[&str], &str); 10] = [
        (&["fanout", "--brain", "llm"], "missing API key"),
        (
            &["fanout", "--scenario-mix", "nope=1"],
            "unknown scenario `nope`",
        ),
        (
            &["fanout", "--concurrency", "0"],
            "--concurrency must be between 1",
        ),
        (
            &[
                "fanout",
                "--continuous",
                "--duration-s",
                "5",
                "--arrival-rate",
                "-1",
            ],
            "--arrival-rate must be a finite number > 0",
        ),
        (
            &["fanout", "--trace-url-template", "http://t/{span}"],
            "unknown placeholder `{span}`",
        ),
        (
            &["fanout", "--trace-url-template", "http://t/{trace_id}"],
            "needs traces exported, and OTEL_EXPORTER_OTLP_ENDPOINT is not set",
        ),
        (
            &["fanout", "--continuous"],
            "--continuous needs --duration-s and --arrival-rate",
        ),
        (
            &["fanout", "--incidents", "0"],
            "--incidents must be at least 1",
        ),
        (
            &["scorecard", "--plot", "card.pdf"],
            "must end in .svg or .png",
        ),
        (
            &["scorecard", "--repeats", "0"],
            "--repeats must be at least 1",
        ),
    ];
    for (args, expected) in cases {
        let ran = remediator(dir.path(), args).await;
        assert_eq!(ran.code, Some(1), "{args:?}: {}", ran.stderr);
        assert!(ran.stderr.contains(expected), "{args:?}: {}", ran.stderr);
        assert!(!ran.stderr.contains("panicked"), "{args:?}: {}", ran.stderr);
    }
    assert!(scratch_dirs(dir.path()).is_empty(), "nothing started");
}

#[tokio::test]
async fn fanout_json_agrees_with_its_trajectory_file() {
    let dir = private_tmp();
    let ran = remediator(
        dir.path(),
        &[
            "fanout",
            "--incidents",
            "8",
            "--concurrency",
            "4",
            "--run-id",
            "cli-json",
            "--trace-url-template",
            "http://traces.local/t?key={trace_key}&run={run_id}",
            "-o",
            "json",
            "--records",
        ],
    )
    .await;
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    let report: Value = serde_json::from_str(&ran.stdout).expect("JSON report");
    let lines = trajectory(&dir.path().join("artifacts"), "cli-json");
    assert_eq!(report["completed"], 8);
    assert_eq!(lines.len(), 8);
    assert_eq!(
        report["fixed"],
        lines
            .iter()
            .filter(|l| l.phase == remediator::crd::IncidentPhase::Resolved)
            .count()
    );
    let records = report["records"].as_array().unwrap();
    for record in records {
        let incident = record["incident"].as_str().unwrap();
        let line = lines
            .iter()
            .find(|l| l.incident == incident)
            .expect("its line");
        assert_eq!(record["steps"], line.step_count);
        assert_eq!(
            record["trace_url"],
            format!("http://traces.local/t?key=cli-json:{incident}&run=cli-json")
        );
    }
    assert!(scratch_dirs(dir.path()).is_empty(), "scratch roots left");
}

/// With traces exported, each incident of a fan-out is a trace of its own
/// and its `{trace_id}` link, followed, is that incident's trace in Jaeger
/// (its query API: the Go module's Jaeger has no UI assets).
#[tokio::test]
async fn fanout_trace_links_open_each_incidents_own_trace_in_jaeger() {
    let Some(jaeger) = Jaeger::start().await else {
        return;
    };
    let dir = private_tmp();
    let template = format!("{}/api/traces/{{trace_id}}", jaeger.query);
    let ran = remediator_with(
        dir.path(),
        &[
            "fanout",
            "--incidents",
            "4",
            "--concurrency",
            "2",
            "--trace-url-template",
            &template,
            "-o",
            "json",
            "--records",
        ],
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", jaeger.otlp.as_str())],
    )
    .await;
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    let report: Value = serde_json::from_str(&ran.stdout).expect("JSON report");
    let records = report["records"].as_array().unwrap();
    assert_eq!(records.len(), 4);
    let mut ids = std::collections::HashSet::new();
    for record in records {
        let incident = record["incident"].as_str().unwrap();
        let link = record["trace_url"]
            .as_str()
            .unwrap_or_else(|| panic!("no link: {record}"));
        let id = link.rsplit('/').next().unwrap();
        assert!(ids.insert(id.to_string()), "two incidents, one trace: {id}");
        // Followed as a person would: the link, not the id.
        let trace = jaeger
            .follow(link, |t| {
                jaeger::spans(t).iter().any(|s| s.parent.is_none())
            })
            .await;
        let spans = jaeger::spans(&trace);
        let roots: Vec<_> = spans.iter().filter(|s| s.parent.is_none()).collect();
        assert_eq!(roots.len(), 1, "{incident}: {spans:#?}");
        assert_eq!(roots[0].name, format!("incident {incident}"));
        assert_eq!(roots[0].tag("scenario"), Some(&record["scenario"]));
        assert!(
            spans.iter().any(|s| s.name.starts_with("step ")),
            "{spans:#?}"
        );
    }
}

#[tokio::test]
async fn ctrl_c_drains_reports_what_ran_and_leaves_nothing_behind() {
    let dir = private_tmp();
    let child = tokio::process::Command::new(remediator_bin())
        .args([
            "fanout",
            "--continuous",
            "--arrival-rate",
            "8",
            "--duration-s",
            "600",
            "--concurrency",
            "2",
            "--run-id",
            "cli-sigint",
            "-o",
            "json",
        ])
        .current_dir(dir.path())
        .env("REMEDIATOR_ARTIFACTS", dir.path().join("artifacts"))
        .env("TMPDIR", dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, as a shell gives a foreground job.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let artifacts = dir.path().join("artifacts");
    assert!(
        eventually(Duration::from_secs(60), || trajectory(
            &artifacts,
            "cli-sigint"
        )
        .len()
            >= 3)
        .await,
        "three incidents finished"
    );
    // Between two incidents a worker may have no service for a moment:
    // signal while some run, so the test sees them drained.
    let mut processes = Vec::new();
    eventually(Duration::from_secs(30), || {
        processes = descendants(pid);
        !processes.is_empty()
    })
    .await;
    // Ctrl-C at a terminal signals the whole foreground process group.
    killpg(Pid::from_raw(pid as i32), Signal::SIGINT).unwrap();
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("remediator stops after Ctrl-C")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    let report: Value = serde_json::from_slice(&output.stdout).expect("a JSON report after Ctrl-C");
    let lines = trajectory(&artifacts, "cli-sigint");
    assert_eq!(
        report["completed"],
        lines.len(),
        "the report covers what ran"
    );
    assert_eq!(report["aborted"], 0, "drained, not aborted: {report}");
    // The signal reached remediator alone: the incidents it let finish
    // still had their services and sandboxed commands.
    assert_eq!(report["failed"], 0, "{report}");
    assert!(
        report["stopped"].as_str().unwrap().contains("stop"),
        "{report}"
    );
    let generated = report["generated"].as_u64().unwrap() as usize;
    let accounted = ["completed", "dropped", "cancelled", "aborted"]
        .iter()
        .map(|k| report[k].as_u64().unwrap() as usize)
        .sum::<usize>();
    assert_eq!(generated, accounted, "{report}");
    assert!(!processes.is_empty(), "services were running");
    let gone = eventually(Duration::from_secs(10), || {
        processes.iter().all(|p| !alive(*p))
    })
    .await;
    assert!(
        gone,
        "processes left: {:?}",
        processes.iter().filter(|p| alive(**p)).collect::<Vec<_>>()
    );
    assert!(scratch_dirs(dir.path()).is_empty(), "scratch roots left");
}

#[tokio::test]
async fn the_scorecard_has_a_row_for_every_approach_and_draws_its_plot() {
    let dir = private_tmp();
    // A learned hint for one optimizer only: the other says it is missing.
    std::fs::create_dir_all(dir.path().join("artifacts/gepa")).unwrap();
    std::fs::write(
        dir.path().join("artifacts/gepa/best_hint.json"),
        r#"{"hint": "Check health, then the log, then locks; fix what they blame.", "score": 0.91}"#,
    )
    .unwrap();
    let ran = remediator(
        dir.path(),
        &[
            "scorecard",
            "--split",
            "validation",
            "--plot",
            "card.png",
            "-o",
            "json",
            "--run-id",
            "card",
        ],
    )
    .await;
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    let card: Value = serde_json::from_str(&ran.stdout).unwrap();
    let approaches = card["approaches"].as_array().unwrap();
    let names: Vec<&str> = approaches
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "baseline",
            "optimized-manual",
            "optimized-gepa",
            "optimized-iterative",
            "skill"
        ]
    );
    assert_eq!(approaches[2]["artifact"]["score"], 0.91);
    assert!(
        approaches[3]["missing"]
            .as_str()
            .unwrap()
            .contains("not trained yet: run remediator optimize")
    );
    assert!(approaches[4]["missing"].is_string());
    let scenarios = card["scenarios"].as_array().unwrap().len();
    let lines = trajectory(&dir.path().join("artifacts"), "card");
    assert_eq!(
        lines.len(),
        3 * scenarios,
        "three approaches ran every scenario once"
    );
    for a in &approaches[..3] {
        let all = &a["all"];
        assert_eq!(all["runs"], scenarios);
        let fixed = lines
            .iter()
            .filter(|l| {
                l.policy == a["name"].as_str().unwrap()
                    && l.phase == remediator::crd::IncidentPhase::Resolved
            })
            .count();
        assert_eq!(all["fixed"], fixed, "{}", a["name"]);
    }
    let png = std::fs::read(dir.path().join("card.png")).expect("the plot");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    // Kept for a person to look at.
    let kept = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("scorecard.png");
    std::fs::copy(dir.path().join("card.png"), &kept).unwrap();
    eprintln!("scorecard plot: {}", kept.display());
}

#[tokio::test]
async fn the_dashboard_falls_back_to_plain_lines_without_a_terminal() {
    let dir = private_tmp();
    let ran = remediator(
        dir.path(),
        &[
            "fanout",
            "--incidents",
            "3",
            "--concurrency",
            "2",
            "--dashboard",
        ],
    )
    .await;
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    // No full-screen escape codes anywhere; one plain line per incident.
    assert!(!ran.stdout.contains('\x1b') && !ran.stderr.contains('\x1b'));
    let lines: Vec<&str> = ran
        .stderr
        .lines()
        .filter(|l| l.starts_with("fo-"))
        .collect();
    assert_eq!(lines.len(), 3, "{}", ran.stderr);
    assert!(
        ran.stdout.contains("generated 3  completed 3"),
        "{}",
        ran.stdout
    );
}

#[tokio::test]
async fn on_a_terminal_the_dashboard_is_full_screen_and_restores_the_screen() {
    let dir = private_tmp();
    // util-linux `script` gives the command a pseudo-terminal.
    let command = format!(
        "stty cols 120 rows 40; {} fanout --incidents 6 --concurrency 2 --dashboard",
        remediator_bin().display()
    );
    let output = tokio::time::timeout(
        Duration::from_secs(300),
        tokio::process::Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .current_dir(dir.path())
            .env("REMEDIATOR_ARTIFACTS", dir.path().join("artifacts"))
            .env("TMPDIR", dir.path())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("finished within 300s")
    .expect("util-linux `script` is installed");
    let screen = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{screen}");
    let enter = screen
        .find("\x1b[?1049h")
        .expect("the alternate screen is entered");
    let leave = screen.rfind("\x1b[?1049l").expect("and left");
    let frames = &screen[enter..leave];
    for part in ["WORKERS", "QUEUE (", "RECENT", "fix rate", "w1"] {
        assert!(frames.contains(part), "{part} missing from the dashboard");
    }
    // The report is printed on the normal screen after it.
    assert!(
        screen[leave..].contains("generated 6  completed 6"),
        "{screen}"
    );
}
