//! Starting a scenario's service under its supervisor: a scratch root owned
//! by the sandbox identity, a leased port, a scrubbed environment, and a
//! pipe whose closing stops the supervisor (so no service outlives us).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use target_service::cli::EXIT_PORT_IN_USE;
use target_service::control::ServiceState;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin};

use super::ports::PortLease;
use super::{Catalog, CatalogError, ChildProgram};
use crate::sandbox::Identity;
use crate::scratch::ScratchDir;

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("cannot prepare a scratch directory for the service: {0}")]
    Scratch(std::io::Error),
    #[error("cannot start the service supervisor {program}: {error}")]
    Spawn {
        program: PathBuf,
        error: std::io::Error,
    },
    #[error("no free port pair found on 127.0.0.1")]
    NoFreePort,
    #[error("the service did not start: {0}")]
    Failed(String),
    #[error("the service did not report its state within {0:?}")]
    Timeout(Duration),
}

/// How to start a scenario's service.
#[derive(Debug, Clone)]
pub struct Launch {
    pub program: ChildProgram,
    /// The catalog's text when it is not the built-in one; handed to the
    /// supervisor as a file in its scratch directory, so an unprivileged
    /// supervisor needs no access to the user's path.
    pub catalog_text: Option<String>,
    /// A fixed expected port; by default a free one is leased.
    pub port: Option<u16>,
    pub startup_timeout: Duration,
    /// The user the supervisor and its service run as (when we are root).
    pub identity: Option<Identity>,
    /// The address the service binds (127.0.0.1 by default).
    pub bind: std::net::IpAddr,
}

impl Launch {
    /// Services started by the running `remediator` binary itself
    /// (`remediator target-service ...`), through the `/proc/self/exe`
    /// link so an unprivileged supervisor can start it wherever it lives.
    pub fn from_current_exe() -> Self {
        Self::through_remediator("/proc/self/exe")
    }

    /// Services started by the `remediator` binary at `program`
    /// (`program target-service ...`).
    pub fn through_remediator(program: impl Into<std::path::PathBuf>) -> Self {
        Self::with_program(ChildProgram {
            program: program.into(),
            prefix_args: vec!["target-service".into()],
        })
    }

    pub fn with_program(program: ChildProgram) -> Self {
        Self {
            program,
            catalog_text: None,
            port: None,
            startup_timeout: Duration::from_secs(30),
            identity: Identity::for_this_process(),
            bind: std::net::IpAddr::from([127, 0, 0, 1]),
        }
    }

    /// Starts the scenario's service with its fault in place. Picks another
    /// port when the leased one turns out to be taken by another process.
    pub async fn start(
        &self,
        catalog: &Catalog,
        scenario_id: &str,
    ) -> Result<RunningService, LaunchError> {
        catalog.get(scenario_id)?;
        const ATTEMPTS: usize = 10;
        let mut last = LaunchError::NoFreePort;
        for _ in 0..ATTEMPTS {
            let (port, lease) = match self.port {
                Some(port) => (port, None),
                None => {
                    let lease = PortLease::acquire().ok_or(LaunchError::NoFreePort)?;
                    (lease.port(), Some(lease))
                }
            };
            match self.start_on(scenario_id, port, lease).await {
                Err(Attempt::PortInUse(message)) if self.port.is_none() => {
                    last = LaunchError::Failed(message);
                }
                Err(Attempt::PortInUse(message)) => return Err(LaunchError::Failed(message)),
                Err(Attempt::Failed(e)) => return Err(e),
                Ok(service) => return Ok(service),
            }
        }
        Err(last)
    }

    async fn start_on(
        &self,
        scenario_id: &str,
        port: u16,
        lease: Option<PortLease>,
    ) -> Result<RunningService, Attempt> {
        let scratch = |e| Attempt::Failed(LaunchError::Scratch(e));
        let dir = ScratchDir::create(self.identity).map_err(scratch)?;
        let root = dir.root();
        // Outside the root, so the agent does not see the supervisor's noise.
        let stderr_path = dir.path().join("supervisor.stderr");
        let stderr = std::fs::File::create(&stderr_path).map_err(scratch)?;
        let mut command = tokio::process::Command::new(&self.program.program);
        command
            .args(&self.program.prefix_args)
            .arg("--scenario")
            .arg(scenario_id)
            .arg("--root")
            .arg(&root)
            .arg("--port")
            .arg(port.to_string())
            .arg("--bind")
            .arg(self.bind.to_string())
            .arg("--exit-on-stdin-eof")
            .env_clear()
            .env("PATH", crate::sandbox::SAFE_PATH)
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            // Its own process group: a Ctrl-C at the terminal reaches
            // remediator alone, which decides (fanout drains, and its
            // running incidents' services must live until they finish).
            .process_group(0)
            .kill_on_drop(true);
        if let Some(text) = &self.catalog_text {
            let path = dir.path().join("catalog.yaml");
            std::fs::write(&path, text).map_err(scratch)?;
            command.arg("--catalog").arg(path);
        }
        if let Some(identity) = self.identity {
            command.uid(identity.uid).gid(identity.gid);
        }
        let mut child = command.spawn().map_err(|error| {
            Attempt::Failed(LaunchError::Spawn {
                program: self.program.program.clone(),
                error,
            })
        })?;
        let stdin = child.stdin.take();
        let mut line = String::new();
        if let Some(stdout) = child.stdout.take() {
            let mut reader = BufReader::new(stdout);
            let read = reader.read_line(&mut line);
            if tokio::time::timeout(self.startup_timeout, read)
                .await
                .is_err()
            {
                return Err(Attempt::Failed(LaunchError::Timeout(self.startup_timeout)));
            }
        }
        let started: Option<StartedEvent> = serde_json::from_str(&line).ok();
        let Some(started) = started else {
            let status = child.wait().await.ok();
            let message = tokio::fs::read_to_string(&stderr_path)
                .await
                .unwrap_or_default();
            let message = message.trim().trim_start_matches("error: ").to_string();
            if status.and_then(|s| s.code()) == Some(EXIT_PORT_IN_USE) {
                return Err(Attempt::PortInUse(message));
            }
            return Err(Attempt::Failed(LaunchError::Failed(message)));
        };
        Ok(RunningService {
            scenario_id: scenario_id.to_string(),
            root,
            address: SocketAddr::new(self.bind, port),
            first_state: started.state,
            supervisor: child,
            stdin,
            dir: Some(dir),
            _lease: lease,
        })
    }
}

enum Attempt {
    PortInUse(String),
    Failed(LaunchError),
}

#[derive(serde::Deserialize)]
struct StartedEvent {
    state: ServiceState,
}

/// A scenario's service running under its supervisor. [`stop`](Self::stop)
/// ends it and removes its root; dropping it does the same without waiting.
#[derive(Debug)]
pub struct RunningService {
    pub scenario_id: String,
    pub root: PathBuf,
    /// Where health probes expect it (the faulted service may bind elsewhere).
    pub address: SocketAddr,
    pub first_state: ServiceState,
    supervisor: Child,
    stdin: Option<ChildStdin>,
    dir: Option<ScratchDir>,
    _lease: Option<PortLease>,
}

impl RunningService {
    pub fn url(&self) -> String {
        format!("http://{}/", self.address)
    }

    /// The scratch directory around the root (journal, supervisor output).
    pub fn scratch(&self) -> Option<&std::path::Path> {
        self.dir.as_ref().map(ScratchDir::path)
    }

    pub fn supervisor_pid(&self) -> Option<u32> {
        self.supervisor.id()
    }

    /// Stops the service (closing the pipe makes the supervisor stop it and
    /// exit) and removes its scratch directory.
    pub async fn stop(mut self) {
        self.stop_service().await;
        if let Some(dir) = self.dir.take() {
            dir.remove().await;
        }
    }

    /// Stops the service and keeps its scratch directory (root, journal)
    /// for a person and `remediator undo`; returns where it is.
    pub async fn stop_and_keep(mut self, incident: &str) -> std::io::Result<PathBuf> {
        self.stop_service().await;
        match self.dir.take() {
            Some(dir) => dir.keep(incident),
            None => Err(std::io::Error::other(
                "the scratch directory is already gone",
            )),
        }
    }

    async fn stop_service(&mut self) {
        drop(self.stdin.take());
        let waited = tokio::time::timeout(Duration::from_secs(10), self.supervisor.wait()).await;
        if waited.is_err() {
            let _ = self.supervisor.kill().await;
        }
    }
}
