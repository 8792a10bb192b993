//! `remediator serve` over HTTP: the API starts one run at a time (409 for
//! a second), refuses bad requests with JSON 4xx errors, reports what ran
//! as the trajectory shows; a port in use is a clear error.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::{http, private_tmp, remediator_bin, scratch_dirs, trajectory};

/// A running `remediator serve` on a port the kernel picked.
pub struct Server {
    /// Killed when dropped (kill_on_drop).
    _child: tokio::process::Child,
    pub addr: String,
    pub dir: tempfile::TempDir,
}

pub async fn serve() -> Server {
    serve_with(&[]).await
}

/// [`serve`] with more environment (an OpenTelemetry endpoint only when
/// given here).
pub async fn serve_with(env: &[(&str, &str)]) -> Server {
    let dir = private_tmp();
    let mut child = tokio::process::Command::new(remediator_bin())
        .args(["serve", "--addr", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env("REMEDIATOR_ARTIFACTS", dir.path().join("artifacts"))
        .env("TMPDIR", dir.path())
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("remediator serve: http://") {
                return rest.split('/').next().unwrap().to_string();
            }
        }
        panic!("serve exited before it listened");
    })
    .await
    .expect("serve listens within 60s");
    // Keep draining stderr so the server never blocks on it.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Server {
        _child: child,
        addr,
        dir,
    }
}

/// Polls the status until no run is active; returns the last report.
pub async fn finished_run(addr: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let (_, body) = http(addr, "GET", "/api/status", None).await;
        let status = json(&body);
        if status["active"] == false {
            return status["last_report"].clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the run never finished: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[tokio::test]
async fn the_api_runs_one_fanout_at_a_time_and_reports_it() {
    let server = serve().await;
    let addr = server.addr.as_str();
    let (status, body) = http(addr, "GET", "/", None).await;
    assert_eq!(status, 200);
    assert!(body.contains("<script src=\"/app.js\">"));
    let (status, body) = http(addr, "GET", "/api/runs/last", None).await;
    assert_eq!((status, json(&body)["error"].is_string()), (404, true));

    // A run that cannot end by itself: the second start must be refused.
    let endless = r#"{"continuous": true, "arrival_rate": 4, "duration_s": 600, "concurrency": 2}"#;
    let (status, body) = http(addr, "POST", "/api/runs", Some(endless)).await;
    assert_eq!(status, 201, "{body}");
    let endless_id = json(&body)["run_id"].as_str().unwrap().to_string();
    let (status, body) = http(addr, "POST", "/api/runs", Some(endless)).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        json(&body)["error"].as_str().unwrap().contains(&endless_id),
        "{body}"
    );
    // Drain once something has run, so the report has something to cover.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while json(&http(addr, "GET", "/api/status", None).await.1)["snapshot"]["report"]["completed"]
        == 0
    {
        assert!(std::time::Instant::now() < deadline, "nothing completed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = http(addr, "POST", "/api/runs/stop", Some(r#"{"mode": "drain"}"#)).await;
    assert_eq!(status, 200, "{body}");
    let stopped = finished_run(addr).await;
    assert_eq!(stopped["run_id"], endless_id.as_str());
    assert!(stopped["stopped"].is_string(), "{stopped}");
    let lines = trajectory(&server.dir.path().join("artifacts"), &endless_id);
    assert_eq!(stopped["completed"], lines.len());
    assert!(!lines.is_empty());

    let batch = r#"{"incidents": 6, "concurrency": 2, "seed": 3, "split": "train"}"#;
    let (status, body) = http(addr, "POST", "/api/runs", Some(batch)).await;
    assert_eq!(status, 201, "{body}");
    let last = finished_run(addr).await;
    let run_id = last["run_id"].as_str().unwrap();
    let lines = trajectory(&server.dir.path().join("artifacts"), run_id);
    assert_eq!(last["completed"], 6);
    assert_eq!(lines.len(), 6);
    assert_eq!(
        last["fixed"],
        lines
            .iter()
            .filter(|l| l.phase == remediator::crd::IncidentPhase::Resolved)
            .count()
    );
    let (status, body) = http(addr, "GET", "/api/log", None).await;
    assert_eq!(status, 200);
    assert!(body.contains(&format!("run {run_id} finished")), "{body}");
    assert!(
        scratch_dirs(server.dir.path()).is_empty(),
        "scratch roots left"
    );
}

#[tokio::test]
async fn bad_requests_get_json_errors() {
    let server = serve().await;
    let addr = server.addr.as_str();
    let cases: [(&str, &str, Option<&str>, u16, &str); 12] = [
        (
            "POST",
            "/api/scorecard",
            Some(r#"{"split": "test"}"#),
            400,
            "--split must be",
        ),
        (
            "POST",
            "/api/scorecard",
            Some(r#"{"repeats": 0}"#),
            400,
            "repeats must be between 1 and 20",
        ),
        (
            "GET",
            "/api/scorecard/plot.svg",
            None,
            404,
            "no scorecard yet",
        ),
        (
            "POST",
            "/api/runs",
            Some("{not json"),
            400,
            "invalid JSON body",
        ),
        (
            "POST",
            "/api/runs",
            Some(r#"{"incidents": "many"}"#),
            400,
            "invalid JSON body",
        ),
        (
            "POST",
            "/api/runs",
            Some(r#"{"colour": 1}"#),
            400,
            "unknown field `colour`",
        ),
        (
            "POST",
            "/api/runs",
            Some(r#"{"concurrency": 0}"#),
            400,
            "--concurrency must be between 1",
        ),
        (
            "POST",
            "/api/runs",
            Some(r#"{"scenario_mix": "nope=1"}"#),
            400,
            "unknown scenario `nope`",
        ),
        (
            "POST",
            "/api/runs",
            Some(r#"{"policy": "/etc/passwd"}"#),
            400,
            "policy must be baseline or optimized",
        ),
        (
            "POST",
            "/api/runs/stop",
            Some("{}"),
            409,
            "no run is active",
        ),
        ("GET", "/api/nope", None, 404, "no such page"),
        ("DELETE", "/api/runs", None, 405, "method not allowed"),
    ];
    for (method, path, body, expected, text) in cases {
        let (status, answer) = http(addr, method, path, body).await;
        assert_eq!(status, expected, "{method} {path} {body:?}: {answer}");
        let error = json(&answer)["error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(error.contains(text), "{method} {path}: {error}");
    }
    let (status, answer) = http(
        addr,
        "POST",
        "/api/runs",
        Some(r#"{"continuous": true, "duration_s": 5, "arrival_rate": -3}"#),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer.contains("--arrival-rate must be a finite number > 0"),
        "{answer}"
    );
    // The server is still there.
    assert_eq!(http(addr, "GET", "/api/status", None).await.0, 200);
}

#[tokio::test]
async fn a_port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = private_tmp();
    let output = tokio::process::Command::new(remediator_bin())
        .args(["serve", "--addr", &addr])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Reads server-sent `state` events from `/api/events` until `done` holds
/// for one of them; returns how many events came.
async fn follow_events(addr: &str, mut done: impl FnMut(&Value) -> bool) -> usize {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request =
        format!("GET /api/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut text = String::new();
    let mut seen = 0;
    let mut buf = [0u8; 16384];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
            .await
            .expect("the awaited event within 120s")
            .unwrap();
        assert!(n > 0, "the event stream ended");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
        // Complete events end with a blank line; chunk sizes sit on lines
        // of their own and are skipped.
        while let Some(end) = text.find("\n\n") {
            let event: String = text.drain(..end + 2).collect();
            if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) {
                seen += 1;
                if done(&json(data)) {
                    return seen;
                }
            }
        }
    }
}

#[tokio::test]
async fn completions_arrive_over_server_sent_events() {
    let server = serve().await;
    let addr = server.addr.clone();
    // The first event comes at once, with no run active.
    follow_events(&addr, |event| {
        assert_eq!(event["status"]["active"], false, "{event}");
        true
    })
    .await;
    let watcher = tokio::spawn(async move {
        follow_events(&addr, |event| {
            event["status"]["snapshot"]["report"]["completed"]
                .as_u64()
                .is_some_and(|n| n >= 2)
                && event["status"]["snapshot"]["recent"]
                    .as_array()
                    .is_some_and(|r| r.len() >= 2)
        })
        .await
    });
    let (status, body) = http(
        &server.addr,
        "POST",
        "/api/runs",
        Some(r#"{"incidents": 4, "concurrency": 2}"#),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let events = tokio::time::timeout(Duration::from_secs(120), watcher)
        .await
        .expect("completions pushed within 120s")
        .unwrap();
    assert!(events >= 2, "{events} events");
}
