//! Where agent actions execute. A [`Workspace`] runs only what the gate
//! permitted ([`Permit`]); transport failures ([`WorkspaceError`]) are kept
//! apart from commands that ran and failed (an [`Observation`] with a
//! non-zero exit code). [`Local`] runs actions contained by the kernel
//! sandbox on this machine.

mod guard;
mod http;
pub mod journal;
mod local;
mod remote;

pub use guard::Guard;
pub use http::{HttpAnswer, http_get};
pub use local::{Local, LocalService};
pub use remote::Remote;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::risk::Permit;

/// The directories commands find programs in; nothing of the caller's own
/// environment reaches a sandboxed process.
pub const SAFE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

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
    /// Set when the step made the service worse and was undone at once,
    /// with the evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back: Option<String>,
}

impl Observation {
    pub fn failed(message: impl Into<String>, duration_ms: u64) -> Self {
        Self {
            exit_code: Some(1),
            stderr: message.into(),
            duration_ms,
            ..Self::default()
        }
    }

    pub fn succeeded(stdout: impl Into<String>, duration_ms: u64) -> Self {
        Self {
            exit_code: Some(0),
            stdout: stdout.into(),
            duration_ms,
            ..Self::default()
        }
    }

    pub fn is_success(&self) -> bool {
        self.exit_code == Some(0)
    }
}

/// The workspace could not run the action: nothing (or not known whether
/// anything) happened. Distinct from a command that ran and failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum WorkspaceError {
    /// The containment the sandbox promised could not be set up; refusing
    /// to run uncontained. Not retried.
    #[error("the sandbox refused to run it uncontained: {0}")]
    Sandbox(String),
    /// The executor could not be reached or did not answer. Retrying is
    /// safe: executors journal steps, so a step never runs twice.
    #[error("the workspace did not answer: {0}")]
    Unreachable(String),
}

impl WorkspaceError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, WorkspaceError::Unreachable(_))
    }
}

/// Limits on what one action may take and return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub exec_timeout: std::time::Duration,
    pub http_timeout: std::time::Duration,
    /// Bytes kept per output stream; the rest is counted, not stored.
    pub max_output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            exec_timeout: std::time::Duration::from_secs(30),
            http_timeout: std::time::Duration::from_secs(5),
            max_output_bytes: 16 * 1024,
        }
    }
}

/// Executes permitted actions. Object-safe, so local and remote executors
/// are interchangeable behind `&dyn Workspace`. It takes a [`Permit`],
/// which only the gate issues; an action alone does not run:
///
/// ```compile_fail
/// use remediator::action::Action;
/// use remediator::workspace::Workspace;
/// async fn unchecked(workspace: &dyn Workspace) {
///     let _ = workspace.run(&Action::Exec("rm -rf /".into())).await;
/// }
/// ```
pub trait Workspace: Send + Sync {
    fn run<'a>(&'a self, permit: &'a Permit) -> BoxFuture<'a, Result<Observation, WorkspaceError>>;
}
