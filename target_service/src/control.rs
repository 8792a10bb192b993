//! The supervisor's control protocol: one line in (`restart` or `status`),
//! one JSON [`ServiceState`] line out, over `<root>/supervisor.sock`.
//! `target-service restart --root DIR` is the command-line client.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub const CONTROL_SOCKET: &str = "supervisor.sock";

/// What the supervisor knows about its service after a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceState {
    /// Counts starts: 1 after the first, +1 per restart.
    pub generation: u64,
    pub running: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl ServiceState {
    pub fn not_started() -> Self {
        Self {
            generation: 0,
            running: false,
            pid: None,
            port: None,
            exit_code: None,
            reason: None,
        }
    }

    pub fn running(generation: u64, pid: u32, port: u16) -> Self {
        Self {
            generation,
            running: true,
            pid: Some(pid),
            port: Some(port),
            ..Self::not_started()
        }
    }

    pub fn exited(generation: u64, exit_code: Option<i32>, reason: String) -> Self {
        Self {
            generation,
            exit_code,
            reason: Some(reason),
            ..Self::not_started()
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no supervisor answers at {path}: {error}")]
    Connect {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("supervisor at {path} did not answer: {message}")]
    Protocol { path: PathBuf, message: String },
}

/// How long a restart may take before the client gives up.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub fn restart(root: &Path) -> Result<ServiceState, ControlError> {
    request(root, "restart")
}

pub fn status(root: &Path) -> Result<ServiceState, ControlError> {
    request(root, "status")
}

fn request(root: &Path, command: &str) -> Result<ServiceState, ControlError> {
    let path = root.join(CONTROL_SOCKET);
    let protocol = |message: String| ControlError::Protocol {
        path: path.clone(),
        message,
    };
    let mut stream = UnixStream::connect(&path).map_err(|error| ControlError::Connect {
        path: path.clone(),
        error,
    })?;
    stream
        .set_read_timeout(Some(REQUEST_TIMEOUT))
        .map_err(|e| protocol(e.to_string()))?;
    writeln!(stream, "{command}").map_err(|e| protocol(e.to_string()))?;
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .map_err(|e| protocol(e.to_string()))?;
    serde_json::from_str(&line).map_err(|e| protocol(format!("{e} in `{}`", line.trim())))
}
