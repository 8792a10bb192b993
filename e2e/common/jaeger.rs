//! A real Jaeger (scripts/jaeger: v2, built from its Go module) on free
//! loopback ports, for tests that read back the traces remediator exports.
//! Without the binary a plain `cargo test` skips; CI never does.

#![allow(dead_code)] // each test binary uses part of it

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

pub struct Jaeger {
    /// What `OTEL_EXPORTER_OTLP_ENDPOINT` takes: `http://127.0.0.1:P`.
    pub otlp: String,
    /// The query API (and UI): `http://127.0.0.1:Q`.
    pub query: String,
    server: Child,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/jaeger")
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

impl Jaeger {
    /// Starts Jaeger and waits for its query API; `None` (skip) when it is
    /// not installed outside CI.
    pub async fn start() -> Option<Jaeger> {
        let installed = Command::new(script()).arg("path").output().unwrap();
        if !installed.status.success() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run the tracing tier: scripts/jaeger install (./scripts/test does)"
            );
            eprintln!(
                "skipped: {}",
                String::from_utf8_lossy(&installed.stderr).trim()
            );
            return None;
        }
        // A free port can be taken by another test before Jaeger binds it:
        // then Jaeger exits at once, and it is started again on others.
        for _ in 0..5 {
            if let Some(jaeger) = Self::start_on_free_ports().await {
                return Some(jaeger);
            }
        }
        panic!("Jaeger did not stay up on free ports in 5 attempts");
    }

    /// Jaeger on ports free a moment ago, once it answers; `None` when it
    /// exited first (a port was taken meanwhile).
    async fn start_on_free_ports() -> Option<Jaeger> {
        let (otlp, query) = (
            format!("127.0.0.1:{}", free_port()),
            format!("127.0.0.1:{}", free_port()),
        );
        let server = {
            use std::os::unix::process::CommandExt;
            Command::new(script())
                .args(["serve", "--otlp", &otlp, "--ui", &query])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                // Its own group, so dropping it stops the script and Jaeger.
                .process_group(0)
                .spawn()
                .unwrap()
        };
        let mut jaeger = Jaeger {
            otlp: format!("http://{otlp}"),
            query: format!("http://{query}"),
            server,
        };
        let client = reqwest::Client::new();
        let services = format!("{}/api/services", jaeger.query);
        let receiver = otlp.clone();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if jaeger.server.try_wait().ok().flatten().is_some() {
                return None;
            }
            let query_up = client
                .get(&services)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            let receiver_up = tokio::net::TcpStream::connect(&receiver).await.is_ok();
            if query_up && receiver_up {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "Jaeger did not come up within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some(jaeger)
    }

    /// The trace `id` (Jaeger's JSON: `data[0]` with `spans` and
    /// `processes`) once `complete` holds for it; panics after 30 s with
    /// what arrived.
    pub async fn trace(&self, id: &str, complete: impl Fn(&Value) -> bool) -> Value {
        self.follow(&format!("{}/api/traces/{id}", self.query), complete)
            .await
    }

    /// [`Jaeger::trace`] through a link to the query API, as printed.
    pub async fn follow(&self, url: &str, complete: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut last = Value::Null;
        loop {
            if let Ok(response) = reqwest::get(url).await
                && response.status().is_success()
            {
                last = serde_json::from_str(&response.text().await.unwrap_or_default())
                    .unwrap_or(Value::Null);
                let trace = &last["data"][0];
                if trace.is_object() && complete(trace) {
                    return trace.clone();
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{url}: the trace is not complete in Jaeger within 30 s; it has: {last}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Jaeger {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(-(self.server.id() as i32));
        let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGTERM);
        let _ = self.server.wait();
    }
}

/// One span of a Jaeger trace, as the tests look at it.
#[derive(Debug, Clone)]
pub struct Span {
    pub id: String,
    pub parent: Option<String>,
    pub name: String,
    pub service: String,
    pub tags: serde_json::Map<String, Value>,
}

impl Span {
    pub fn tag(&self, key: &str) -> Option<&Value> {
        self.tags.get(key)
    }
}

/// The spans of a trace with their tags as a map and their service.
pub fn spans(trace: &Value) -> Vec<Span> {
    let processes = &trace["processes"];
    trace["spans"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|span| Span {
            id: span["spanID"].as_str().unwrap_or_default().to_string(),
            parent: span["references"]
                .as_array()
                .and_then(|refs| refs.iter().find(|r| r["refType"] == "CHILD_OF"))
                .and_then(|r| r["spanID"].as_str())
                .map(str::to_string),
            name: span["operationName"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            service: processes[span["processID"].as_str().unwrap_or_default()]["serviceName"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            tags: span["tags"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|t| {
                    (
                        t["key"].as_str().unwrap_or_default().to_string(),
                        t["value"].clone(),
                    )
                })
                .collect(),
        })
        .collect()
}
