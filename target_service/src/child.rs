//! The service process itself. It reads its environment and `service.conf`
//! once at start, runs the startup checks, binds the configured port, and
//! answers `GET /` and `GET /health` by running the request-time checks.
//!
//! It talks to its supervisor through pipes: the health spec arrives as one
//! JSON line on stdin, the first stdout line says `listening PORT` or
//! `failed REASON`, and end of stdin (the supervisor went away) stops it.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::catalog::{CheckTime, HealthCheck, Visibility};
use crate::config::{CONFIG_FILE, ServiceConfig};
use crate::health::{StartedWith, first_failure};
use crate::log::ServiceLog;

/// Exit code when a startup check or the config stops the service.
pub const EXIT_STARTUP_FAILED: i32 = 2;
/// Exit code when the configured port cannot be bound.
pub const EXIT_BIND_FAILED: i32 = 3;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChildSpec {
    pub scenario: String,
    pub checks: Vec<HealthCheck>,
}

struct Service {
    root: PathBuf,
    spec: ChildSpec,
    started: StartedWith,
    log: ServiceLog,
}

/// Runs the service until its supervisor goes away; returns an exit code.
pub fn run(root: &Path, bind: IpAddr) -> i32 {
    let log = ServiceLog::in_root(root);
    let mut stdin = BufReader::new(std::io::stdin());
    let mut line = String::new();
    let spec: ChildSpec = match stdin
        .read_line(&mut line)
        .map(|_| serde_json::from_str(&line))
    {
        Ok(Ok(spec)) => spec,
        _ => return fail(&log, 1, "no valid health spec on stdin"),
    };
    let config = match std::fs::read_to_string(root.join(CONFIG_FILE)) {
        Ok(text) => match ServiceConfig::parse(&text) {
            Ok(config) => config,
            Err(e) => return fail(&log, EXIT_STARTUP_FAILED, &format!("invalid config: {e}")),
        },
        Err(e) => {
            return fail(
                &log,
                EXIT_STARTUP_FAILED,
                &format!("cannot read {CONFIG_FILE}: {e}"),
            );
        }
    };
    let started = StartedWith {
        env: std::env::vars().collect::<HashMap<_, _>>(),
        config,
    };
    if let Some(check) = first_failure(&spec.checks, CheckTime::Startup, root, &started) {
        return fail(&log, EXIT_STARTUP_FAILED, &check.reason);
    }
    let port = match started.config.port() {
        Ok(port) => port,
        Err(e) => return fail(&log, EXIT_STARTUP_FAILED, &e),
    };
    let listener = match TcpListener::bind((bind, port)) {
        Ok(listener) => listener,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            let reason = format!("port {port} on {bind} is already in use");
            return fail(&log, EXIT_BIND_FAILED, &reason);
        }
        Err(e) => {
            return fail(
                &log,
                EXIT_BIND_FAILED,
                &format!("cannot bind {bind}:{port}: {e}"),
            );
        }
    };
    log.info(&format!(
        "listening on {bind}:{port} (pid {})",
        std::process::id()
    ));
    println!("listening {port}");
    let _ = std::io::stdout().flush();

    std::thread::spawn(move || {
        let _ = std::io::copy(&mut stdin, &mut std::io::sink());
        std::process::exit(0);
    });

    let service = Arc::new(Service {
        root: root.to_path_buf(),
        spec,
        started,
        log,
    });
    for stream in listener.incoming().flatten() {
        let service = Arc::clone(&service);
        std::thread::spawn(move || service.handle(stream));
    }
    0
}

fn fail(log: &ServiceLog, code: i32, reason: &str) -> i32 {
    log.error(&format!("startup failed: {reason}"));
    println!("failed {reason}");
    let _ = std::io::stdout().flush();
    code
}

const MAX_REQUEST_HEAD: usize = 8 * 1024;

impl Service {
    fn handle(&self, mut stream: TcpStream) {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let Some(head) = read_head(&mut stream) else {
            return;
        };
        let mut words = head.lines().next().unwrap_or("").split_whitespace();
        let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let path = target.split('?').next().unwrap_or("");
        let (status, body) = match (method, path) {
            ("GET", "/" | "/health") => self.health(),
            ("GET", _) => (
                404,
                serde_json::json!({"status": "error", "reason": "not found"}),
            ),
            _ => (
                405,
                serde_json::json!({"status": "error", "reason": "method not allowed"}),
            ),
        };
        let body = body.to_string();
        let reason = match status {
            200 => "OK",
            404 => "Not Found",
            405 => "Method Not Allowed",
            _ => "Internal Server Error",
        };
        let response = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(response.as_bytes());
    }

    fn health(&self) -> (u16, serde_json::Value) {
        match first_failure(
            &self.spec.checks,
            CheckTime::Request,
            &self.root,
            &self.started,
        ) {
            None => (
                200,
                serde_json::json!({"status": "ok", "scenario": self.spec.scenario}),
            ),
            Some(check) => {
                self.log
                    .error(&format!("health check failed: {}", check.reason));
                let shown = match check.visible_in {
                    Visibility::Body => check.reason.as_str(),
                    Visibility::Log => "internal error",
                };
                (500, serde_json::json!({"status": "error", "reason": shown}))
            }
        }
    }
}

fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 || buf.len() + n > MAX_REQUEST_HEAD {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8(buf).ok()
}
