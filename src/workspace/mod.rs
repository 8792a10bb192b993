//! Where agent actions execute. A [`Workspace`] runs only what the gate
//! permitted ([`Permit`]); transport failures ([`WorkspaceError`]) are kept
//! apart from commands that ran and failed (an [`Observation`] with a
//! non-zero exit code). [`Local`] runs actions contained by the kernel
//! sandbox on this machine.

mod guard;
pub mod journal;
mod local;
pub mod preview;
mod remote;

pub use guard::Guard;
pub use local::{Local, LocalService};
pub use remote::Remote;

use futures::future::BoxFuture;

use crate::protocol::{Observation, WorkspaceError};
use crate::risk::Permit;

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
