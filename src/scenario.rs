//! The scenario catalog (from `training_data/`) and starting a scenario's
//! broken service on this machine, each in its own temp root and port.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::Duration;

use target_service::cli::EXIT_PORT_IN_USE;
use target_service::control::ServiceState;
pub use target_service::supervisor::ChildProgram;
pub use target_service::{Action, Catalog, CatalogError, Scenario, Split};

/// The catalog at `path`, or the one built in (`training_data/scenarios.yaml`).
pub fn load_catalog(path: Option<&Path>) -> Result<Catalog, CatalogError> {
    match path {
        Some(path) => Catalog::load(path),
        None => Ok(Catalog::builtin()),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("cannot create a temp directory for the service: {0}")]
    TempDir(std::io::Error),
    #[error("cannot start the service supervisor {program}: {source}")]
    Spawn {
        program: PathBuf,
        source: std::io::Error,
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
    /// A catalog file the service should read instead of its built-in one.
    pub catalog_path: Option<PathBuf>,
    /// A fixed expected port; by default a free one is picked.
    pub port: Option<u16>,
    pub startup_timeout: Duration,
}

impl Launch {
    /// Services started by the running `remediator` binary itself
    /// (`remediator target-service ...`).
    pub fn from_current_exe() -> std::io::Result<Self> {
        Ok(Self::with_program(ChildProgram {
            program: std::env::current_exe()?,
            prefix_args: vec!["target-service".into()],
        }))
    }

    pub fn with_program(program: ChildProgram) -> Self {
        Self {
            program,
            catalog_path: None,
            port: None,
            startup_timeout: Duration::from_secs(30),
        }
    }

    /// Starts the scenario's service with its fault in place. Picks another
    /// port when the picked one turns out to be taken.
    pub fn start(
        &self,
        catalog: &Catalog,
        scenario_id: &str,
    ) -> Result<RunningService, LaunchError> {
        catalog.get(scenario_id)?;
        const ATTEMPTS: usize = 10;
        let mut last = LaunchError::NoFreePort;
        for _ in 0..ATTEMPTS {
            let port = match self.port {
                Some(port) => port,
                None => free_port_pair().ok_or(LaunchError::NoFreePort)?,
            };
            match self.start_on(scenario_id, port) {
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

    fn start_on(&self, scenario_id: &str, port: u16) -> Result<RunningService, Attempt> {
        let dir = tempfile::Builder::new()
            .prefix("remediator-")
            .tempdir()
            .map_err(|e| Attempt::Failed(LaunchError::TempDir(e)))?;
        let root = dir.path().join("root");
        // Outside the root, so the agent does not see the supervisor's noise.
        let stderr_path = dir.path().join("supervisor.stderr");
        let stderr = std::fs::File::create(&stderr_path)
            .map_err(|e| Attempt::Failed(LaunchError::TempDir(e)))?;
        let mut command = Command::new(&self.program.program);
        command
            .args(&self.program.prefix_args)
            .arg("--scenario")
            .arg(scenario_id)
            .arg("--root")
            .arg(&root)
            .arg("--port")
            .arg(port.to_string())
            .arg("--exit-on-stdin-eof")
            .env_remove("REMEDIATOR_CATALOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr);
        if let Some(path) = &self.catalog_path {
            command.arg("--catalog").arg(path);
        }
        let mut child = command.spawn().map_err(|source| {
            Attempt::Failed(LaunchError::Spawn {
                program: self.program.program.clone(),
                source,
            })
        })?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            if let Some(stdout) = stdout {
                let _ = BufReader::new(stdout).read_line(&mut line);
            }
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(self.startup_timeout) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Attempt::Failed(LaunchError::Timeout(self.startup_timeout)));
            }
        };
        let started: Option<StartedEvent> = serde_json::from_str(&line).ok();
        let Some(started) = started else {
            let status = child.wait().ok();
            let message = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            let message = message.trim().trim_start_matches("error: ").to_string();
            if status.and_then(|s| s.code()) == Some(EXIT_PORT_IN_USE) {
                return Err(Attempt::PortInUse(message));
            }
            return Err(Attempt::Failed(LaunchError::Failed(message)));
        };
        Ok(RunningService {
            scenario_id: scenario_id.to_string(),
            root,
            port,
            first_state: started.state,
            supervisor: child,
            stdin,
            _dir: dir,
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

/// A scenario's service running under its supervisor. Dropping it stops
/// the service and removes its root.
#[derive(Debug)]
pub struct RunningService {
    pub scenario_id: String,
    pub root: PathBuf,
    /// The port health probes expect (the service may bind another one).
    pub port: u16,
    pub first_state: ServiceState,
    supervisor: Child,
    stdin: Option<ChildStdin>,
    _dir: tempfile::TempDir,
}

impl RunningService {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    pub fn supervisor_pid(&self) -> u32 {
        self.supervisor.id()
    }
}

impl Drop for RunningService {
    fn drop(&mut self) {
        // Closing stdin makes the supervisor stop the service and exit.
        drop(self.stdin.take());
        let _ = self.supervisor.wait();
    }
}

/// A port `p` with `p+1` also free (a scenario may bind the next one).
/// Ports handed out in this process are never handed out twice; other
/// processes are caught by the bind check and, failing that, by the retry
/// in [`Launch::start`].
fn free_port_pair() -> Option<u16> {
    static HANDED_OUT: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..100 {
        let listener = TcpListener::bind("127.0.0.1:0").ok()?;
        let port = listener.local_addr().ok()?.port();
        let Some(next) = port.checked_add(1) else {
            continue;
        };
        if handed_out.contains(&port) || handed_out.contains(&next) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", next)).is_ok() {
            handed_out.extend([port, next]);
            return Some(port);
        }
    }
    None
}
