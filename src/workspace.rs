//! Where agent actions execute. Everything an agent does to a service goes
//! through a [`Workspace`]; the gate decides before any of these methods is
//! called. [`Local`] runs actions as child processes in the service root.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub use target_service::Action;

/// What an action produced, as the agent will see it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// Process exit code; for other actions 0 on success, 1 on failure.
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
    pub duration_ms: u64,
}

impl Observation {
    fn failed(message: impl Into<String>, started: Instant) -> Self {
        Self {
            exit_code: Some(1),
            stderr: message.into(),
            duration_ms: elapsed_ms(started),
            ..Self::default()
        }
    }

    fn succeeded(stdout: String, started: Instant) -> Self {
        Self {
            exit_code: Some(0),
            stdout,
            duration_ms: elapsed_ms(started),
            ..Self::default()
        }
    }

    pub fn is_success(&self) -> bool {
        self.exit_code == Some(0)
    }
}

fn elapsed_ms(started: Instant) -> u64 {
    started.elapsed().as_millis().try_into().unwrap_or(u64::MAX)
}

/// Limits on what one action may take and return.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub exec_timeout: Duration,
    pub http_timeout: Duration,
    /// Bytes kept per output stream; the rest is counted, not stored.
    pub max_output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            exec_timeout: Duration::from_secs(30),
            http_timeout: Duration::from_secs(5),
            max_output_bytes: 16 * 1024,
        }
    }
}

pub trait Workspace: Send + Sync {
    fn exec(&self, command: &str) -> impl Future<Output = Observation> + Send;
    fn read_file(&self, path: &str) -> impl Future<Output = Observation> + Send;
    fn write_file(&self, path: &str, content: &str) -> impl Future<Output = Observation> + Send;
    /// GET `path` on the service's expected port.
    fn http_get(&self, path: &str) -> impl Future<Output = Observation> + Send;
    fn restart_service(&self) -> impl Future<Output = Observation> + Send;

    fn run(&self, action: &Action) -> impl Future<Output = Observation> + Send {
        async move {
            match action {
                Action::Exec(command) => self.exec(command).await,
                Action::ReadFile(path) => self.read_file(path).await,
                Action::WriteFile { path, content } => self.write_file(path, content).await,
                Action::HttpGet(path) => self.http_get(path).await,
                Action::RestartService => self.restart_service().await,
            }
        }
    }
}

/// A service root on this machine, with its supervisor's control socket.
#[derive(Debug, Clone)]
pub struct Local {
    root: PathBuf,
    port: u16,
    limits: Limits,
}

/// The only variables a command sees: nothing of the operator's own
/// environment (API keys, tokens) leaks into what the agent runs.
const SAFE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl Local {
    pub fn new(root: impl Into<PathBuf>, port: u16) -> Self {
        Self {
            root: root.into(),
            port,
            limits: Limits::default(),
        }
    }

    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn resolve(&self, path: &str) -> PathBuf {
        let path = Path::new(path);
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.root.join(path)
        }
    }
}

impl Workspace for Local {
    async fn exec(&self, command: &str) -> Observation {
        let started = Instant::now();
        let mut cmd = tokio::process::Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(command)
            .current_dir(&self.root)
            .env_clear()
            .env("PATH", SAFE_PATH)
            .env("HOME", &self.root)
            .env("LANG", "C.UTF-8")
            .env("SERVICE_ROOT", &self.root)
            .env("SERVICE_PORT", self.port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => return Observation::failed(format!("cannot start /bin/sh: {e}"), started),
        };
        let group = child.id().map(|pid| nix::unistd::Pid::from_raw(pid as i32));
        let cap = self.limits.max_output_bytes;
        let stdout = tokio::spawn(read_capped(child.stdout.take(), cap));
        let stderr = tokio::spawn(read_capped(child.stderr.take(), cap));
        let waited = tokio::time::timeout(self.limits.exec_timeout, child.wait()).await;
        // Whatever the command left behind in its process group goes too,
        // so a backgrounded child cannot hold the output pipes open.
        if let Some(group) = group {
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        }
        let (exit_code, timed_out) = match waited {
            Ok(Ok(status)) => (status.code(), false),
            Ok(Err(_)) => (None, false),
            Err(_) => {
                let _ = child.wait().await;
                (None, true)
            }
        };
        let mut stderr = stderr.await.unwrap_or_default();
        if timed_out {
            let limit = self.limits.exec_timeout.as_secs();
            stderr.push_str(&format!("\n[killed: command ran longer than {limit}s]"));
        }
        Observation {
            exit_code,
            http_status: None,
            stdout: stdout.await.unwrap_or_default(),
            stderr,
            timed_out,
            duration_ms: elapsed_ms(started),
        }
    }

    async fn read_file(&self, path: &str) -> Observation {
        let started = Instant::now();
        let file = match tokio::fs::File::open(self.resolve(path)).await {
            Ok(file) => file,
            Err(e) => return Observation::failed(format!("cannot read {path}: {e}"), started),
        };
        let text = read_capped(Some(file), self.limits.max_output_bytes).await;
        Observation::succeeded(text, started)
    }

    async fn write_file(&self, path: &str, content: &str) -> Observation {
        let started = Instant::now();
        let target = self.resolve(path);
        match tokio::fs::write(&target, content).await {
            Ok(()) => {
                Observation::succeeded(format!("wrote {} bytes to {path}", content.len()), started)
            }
            Err(e) => Observation::failed(format!("cannot write {path}: {e}"), started),
        }
    }

    async fn http_get(&self, path: &str) -> Observation {
        let started = Instant::now();
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        let fetched = tokio::time::timeout(
            self.limits.http_timeout,
            http_get(self.port, &path, self.limits.max_output_bytes),
        )
        .await;
        match fetched {
            Ok(Ok((status, body))) => Observation {
                exit_code: Some(if status < 400 { 0 } else { 1 }),
                http_status: Some(status),
                stdout: body,
                duration_ms: elapsed_ms(started),
                ..Observation::default()
            },
            Ok(Err(e)) => Observation::failed(
                format!("GET http://127.0.0.1:{}{path} failed: {e}", self.port),
                started,
            ),
            Err(_) => {
                let mut obs = Observation::failed(
                    format!("GET http://127.0.0.1:{}{path} timed out", self.port),
                    started,
                );
                obs.timed_out = true;
                obs
            }
        }
    }

    async fn restart_service(&self) -> Observation {
        let started = Instant::now();
        let root = self.root.clone();
        let result =
            tokio::task::spawn_blocking(move || target_service::control::restart(&root)).await;
        match result {
            Ok(Ok(state)) => {
                let text = serde_json::to_string(&state).unwrap_or_default();
                if state.running {
                    Observation::succeeded(format!("service restarted: {text}"), started)
                } else {
                    Observation::failed(format!("service did not come up: {text}"), started)
                }
            }
            Ok(Err(e)) => Observation::failed(format!("restart failed: {e}"), started),
            Err(e) => Observation::failed(format!("restart failed: {e}"), started),
        }
    }
}

/// Reads a stream to its end, keeping at most `cap` bytes and noting how
/// many were dropped, so a hostile command cannot exhaust memory.
async fn read_capped<R: AsyncRead + Unpin>(reader: Option<R>, cap: usize) -> String {
    let Some(mut reader) = reader else {
        return String::new();
    };
    let mut kept = Vec::new();
    let mut dropped = 0usize;
    let mut buf = [0u8; 8192];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                dropped += n.saturating_sub(room);
            }
        }
    }
    let mut text = String::from_utf8_lossy(&kept).into_owned();
    if dropped > 0 {
        text.push_str(&format!("\n[... {dropped} more bytes truncated]"));
    }
    text
}

/// A minimal HTTP/1.1 GET on loopback: status code and (capped) body.
pub async fn http_get(port: u16, path: &str, cap: usize) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: remediator\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let response = read_capped(Some(stream), cap + 4096).await;
    let status = response
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other("response has no HTTP status line"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(dir: &Path) -> Local {
        Local::new(dir, 1)
    }

    #[tokio::test]
    async fn exec_runs_in_the_root_with_a_scrubbed_environment() {
        let dir = tempfile::tempdir().unwrap();
        // cargo sets CARGO_* for test processes: none may reach the command.
        assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
        let obs = local(dir.path()).exec("pwd; env; exit 7").await;
        assert_eq!(obs.exit_code, Some(7));
        assert!(
            obs.stdout.contains(&dir.path().display().to_string()),
            "{obs:?}"
        );
        assert!(obs.stdout.contains("SERVICE_PORT=1"), "{obs:?}");
        assert!(!obs.stdout.contains("CARGO"), "{obs:?}");
    }

    #[tokio::test]
    async fn huge_output_is_capped_with_a_marker() {
        let dir = tempfile::tempdir().unwrap();
        let ws = local(dir.path()).with_limits(Limits {
            max_output_bytes: 1000,
            ..Limits::default()
        });
        let obs = ws.exec("head -c 5000000 /dev/zero | tr '\\0' x").await;
        assert_eq!(obs.exit_code, Some(0));
        assert!(obs.stdout.len() < 1100, "{}", obs.stdout.len());
        assert!(
            obs.stdout.ends_with("[... 4999000 more bytes truncated]"),
            "{}",
            &obs.stdout[1000..]
        );
    }

    #[tokio::test]
    async fn a_command_past_its_timeout_is_killed_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let ws = local(dir.path()).with_limits(Limits {
            exec_timeout: Duration::from_millis(300),
            ..Limits::default()
        });
        let obs = ws.exec("sleep 30 & sleep 30").await;
        assert!(obs.timed_out, "{obs:?}");
        assert!(obs.duration_ms < 10_000, "{obs:?}");
        assert!(obs.stderr.contains("killed"), "{obs:?}");
    }

    #[tokio::test]
    async fn files_are_read_and_written_relative_to_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let ws = local(dir.path());
        assert!(ws.write_file("a.txt", "hello").await.is_success());
        assert_eq!(ws.read_file("a.txt").await.stdout, "hello");
        let missing = ws.read_file("nope").await;
        assert_eq!(missing.exit_code, Some(1));
        assert!(missing.stderr.contains("cannot read nope"), "{missing:?}");
    }

    #[tokio::test]
    async fn http_get_to_a_closed_port_is_a_failed_observation() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let obs = Local::new("/", port).http_get("/").await;
        assert_eq!(obs.exit_code, Some(1));
        assert!(obs.stderr.contains("failed"), "{obs:?}");
    }
}
