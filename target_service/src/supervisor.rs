//! Keeps one service process running in a root and restarts it on request.
//!
//! Environment and port are read by the service at start, so fixes to
//! `service.env` or `service.conf` take effect through a restart. A restart
//! is requested over the control socket `<root>/supervisor.sock` (see
//! [`crate::control`]); a crashed service stays down until then, as a
//! crash-looping pod does until its cause is fixed.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use crate::catalog::{Catalog, CatalogError};
use crate::child::{ChildSpec, EXIT_BIND_FAILED};
use crate::config::{ENV_FILE, parse_env_file};
use crate::control::{CONTROL_SOCKET, ServiceState};
use crate::log::ServiceLog;
use crate::root::{self, SetupError};

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error("{0}")]
    PortInUse(String),
    #[error("cannot open control socket {path}: {error}")]
    ControlSocket {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// How to start the service process: the program and the arguments that
/// come before `child ...` (the remediator binary embeds the service as a
/// subcommand, the standalone binary needs none).
#[derive(Debug, Clone)]
pub struct ChildProgram {
    pub program: PathBuf,
    pub prefix_args: Vec<OsString>,
}

pub struct Options {
    pub scenario: String,
    pub root: PathBuf,
    pub port: u16,
    pub bind: IpAddr,
    pub catalog: Catalog,
    pub child: ChildProgram,
    /// Stop (and stop the service) when stdin closes: a launcher that holds
    /// the pipe can never leak a service, even if it is killed.
    pub exit_on_stdin_eof: bool,
}

struct Supervisor {
    root: PathBuf,
    bind: IpAddr,
    child_program: ChildProgram,
    spec_line: String,
    log: ServiceLog,
    current: Mutex<Current>,
}

struct Current {
    child: Option<Child>,
    state: ServiceState,
}

/// Sets up the scenario, starts the service and serves restart requests.
/// Prints one JSON line with the first state on stdout once the service
/// has either started listening or failed as its fault demands.
pub fn run(options: Options) -> Result<(), SupervisorError> {
    let scenario = options.catalog.get(&options.scenario)?;
    root::prepare(&options.root, &options.catalog, scenario, options.port)?;
    let spec = ChildSpec {
        scenario: scenario.id.clone(),
        checks: scenario.checks.clone(),
    };
    let supervisor = Arc::new(Supervisor {
        root: options.root.clone(),
        bind: options.bind,
        child_program: options.child,
        spec_line: serde_json::to_string(&spec).expect("spec serializes") + "\n",
        log: ServiceLog::in_root(&options.root),
        current: Mutex::new(Current {
            child: None,
            state: ServiceState::not_started(),
        }),
    });
    let first = supervisor.restart();
    if first.exit_code == Some(EXIT_BIND_FAILED) {
        return Err(SupervisorError::PortInUse(first.reason.unwrap_or_default()));
    }

    let socket = options.root.join(CONTROL_SOCKET);
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket).map_err(|error| SupervisorError::ControlSocket {
        path: socket.clone(),
        error,
    })?;
    println!(
        "{}",
        serde_json::json!({"event": "started", "state": first})
    );
    let _ = std::io::stdout().flush();

    let server = {
        let supervisor = Arc::clone(&supervisor);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                supervisor.serve_control(stream);
            }
        })
    };
    if options.exit_on_stdin_eof {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        supervisor.stop();
        let _ = std::fs::remove_file(&socket);
        return Ok(());
    }
    let _ = server.join();
    Ok(())
}

impl Supervisor {
    fn serve_control(&self, stream: UnixStream) {
        let mut reader = BufReader::new(&stream);
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() {
            return;
        }
        let reply = match line.trim() {
            "restart" => serde_json::to_string(&self.restart()),
            "status" => serde_json::to_string(&self.status()),
            other => Ok(serde_json::json!({"error": format!("unknown command `{other}`; use restart or status")}).to_string()),
        };
        let mut stream = &stream;
        let _ = writeln!(stream, "{}", reply.unwrap_or_default());
    }

    fn status(&self) -> ServiceState {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(child) = current.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            current.state = ServiceState::exited(
                current.state.generation,
                status.code(),
                "service exited unexpectedly".into(),
            );
            current.child = None;
        }
        current.state.clone()
    }

    fn stop(&self) {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mut child) = current.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the running service (if any) and starts a new one, rereading
    /// `service.env`; returns once the new one listens or has failed.
    fn restart(&self) -> ServiceState {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mut child) = current.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let generation = current.state.generation + 1;
        let (child, state) = self.start(generation);
        if state.pid.is_some() {
            self.log.info(&format!(
                "supervisor: service generation {generation} started"
            ));
        } else {
            self.log.error(&format!(
                "supervisor: service generation {generation} is down: {}",
                state.reason.as_deref().unwrap_or("unknown reason")
            ));
        }
        current.child = child;
        current.state = state.clone();
        state
    }

    fn start(&self, generation: u64) -> (Option<Child>, ServiceState) {
        let env = match std::fs::read_to_string(self.root.join(ENV_FILE)) {
            Ok(text) => match parse_env_file(&text) {
                Ok(vars) => vars,
                Err(e) => return (None, ServiceState::exited(generation, None, e.to_string())),
            },
            Err(e) => {
                let reason = format!("cannot read {ENV_FILE}: {e}");
                return (None, ServiceState::exited(generation, None, reason));
            }
        };
        let spawned = Command::new(&self.child_program.program)
            .args(&self.child_program.prefix_args)
            .arg("child")
            .arg("--root")
            .arg(&self.root)
            .arg("--bind")
            .arg(self.bind.to_string())
            .current_dir(&self.root)
            .env_clear()
            .envs(env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                let reason = format!("cannot start {}: {e}", self.child_program.program.display());
                return (None, ServiceState::exited(generation, None, reason));
            }
        };
        if let Some(stdin) = child.stdin.as_mut() {
            let _ = stdin.write_all(self.spec_line.as_bytes());
            let _ = stdin.flush();
        }
        let mut first_line = String::new();
        if let Some(stdout) = child.stdout.take() {
            let _ = BufReader::new(stdout).read_line(&mut first_line);
        }
        let first_line = first_line.trim();
        if let Some(port) = first_line
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
        {
            let state = ServiceState::running(generation, child.id(), port);
            return (Some(child), state);
        }
        let code = child.wait().ok().and_then(|s| s.code());
        let reason = first_line
            .strip_prefix("failed ")
            .unwrap_or("service exited before listening")
            .to_string();
        (None, ServiceState::exited(generation, code, reason))
    }
}
