//! Containment: every agent command and file operation runs in a sandbox the
//! kernel enforces, so a command the classifier misjudges can only touch the
//! incident. The policy is a typed [`Spec`] serialized to a helper process
//! (`remediator sandbox-exec`), which applies it to itself before running
//! anything, so the caller is never restricted:
//!
//! - an unprivileged identity in a user namespace: no capabilities on the
//!   host (`hostname`, `date -s`, `mount` fail);
//! - a PID namespace with its own `/proc`: other processes (and their
//!   `environ`) are invisible, and every process a command starts dies when
//!   the command ends or times out;
//! - a network namespace with only loopback, where the service port is
//!   forwarded to the real service: no egress of any kind (TCP, UDP, raw);
//! - a mount namespace with empty `/tmp`, `/run` and friends;
//! - Landlock: writes only inside the incident root (and the private tmp),
//!   reads only of system directories and the root, TCP connect only to the
//!   service port, no signals or abstract sockets outside the sandbox;
//! - an environment from an allowlist and resource limits.
//!
//! What the kernel cannot give is found by [`probe`] once per process and
//! reported as [`Containment`]; the gate then refuses actions above LOW
//! unless the policy accepts weaker containment.

mod helper;
mod launch;

pub use helper::{Stage, main as helper_main};
pub use launch::{HelperProgram, Job, Sandbox, SandboxError, WarmSandbox};

use std::net::SocketAddr;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The directories commands find programs in; nothing of the caller's own
/// environment reaches a sandboxed process.
pub const SAFE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The subcommand the helper runs as.
pub const HELPER_SUBCOMMAND: &str = "sandbox-exec";

/// One kernel mechanism the sandbox relies on.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Layer {
    /// Landlock filesystem rules.
    LandlockFs,
    /// Landlock TCP rules: connect only to the service port, bind nothing.
    LandlockNet,
    /// Landlock scoping: no signals or abstract sockets outside.
    LandlockScope,
    /// A user namespace with an unprivileged identity: no host capabilities.
    Userns,
    /// A PID namespace with its own /proc.
    Pidns,
    /// A network namespace: loopback only, the service port forwarded.
    Netns,
    /// A mount namespace: private /tmp, /var/tmp, /run and /dev/shm (the
    /// private /proc is part of [`Layer::Pidns`]).
    Mntns,
}

impl Layer {
    pub const ALL: [Layer; 7] = [
        Layer::LandlockFs,
        Layer::LandlockNet,
        Layer::LandlockScope,
        Layer::Userns,
        Layer::Pidns,
        Layer::Netns,
        Layer::Mntns,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Layer::LandlockFs => "landlock-fs",
            Layer::LandlockNet => "landlock-net",
            Layer::LandlockScope => "landlock-scope",
            Layer::Userns => "userns",
            Layer::Pidns => "pidns",
            Layer::Netns => "netns",
            Layer::Mntns => "mntns",
        }
    }
}

/// What the sandbox gives on this machine: the layers in force and those
/// the kernel (or the container) refused, with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Containment {
    pub layers: Vec<Layer>,
    /// Layers that could not be set up, each with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<MissingLayer>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MissingLayer {
    pub layer: Layer,
    pub reason: String,
}

impl Containment {
    pub fn is_full(&self) -> bool {
        self.missing.is_empty()
    }

    pub fn has(&self, layer: Layer) -> bool {
        self.layers.contains(&layer)
    }

    /// One line: `landlock-fs, landlock-net, ..., no-netns (why)`.
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = self.layers.iter().map(|l| l.name().to_string()).collect();
        parts.extend(
            self.missing
                .iter()
                .map(|m| format!("no-{} ({})", m.layer.name(), m.reason)),
        );
        parts.join(", ")
    }

    /// The missing layers, for a gate refusal.
    pub fn missing_names(&self) -> String {
        self.missing
            .iter()
            .map(|m| m.layer.name())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What the helper does once contained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// `/bin/sh -c COMMAND` in the root.
    Exec { command: String },
    /// A regular file's content, at most `max_output_bytes`.
    Read { path: String },
    /// Replace a regular file's content (created if missing).
    Write { path: String, content: String },
    /// Set up every layer it can and report which held.
    Probe,
    /// A warm sandbox: set up the namespaces once, then run each
    /// [`Request`] sent after the spec, one at a time, each op contained
    /// afresh (its own mounts, limits, Landlock domain, no capabilities)
    /// and everything it started killed before the answer.
    Serve,
}

/// One op for a warm sandbox ([`Op::Serve`]): what a [`Spec`] says per op.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub op: Op,
    pub env: Vec<(String, String)>,
    pub timeout_ms: u64,
    pub max_output_bytes: usize,
}

/// The unprivileged identity commands run as when the caller is root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
}

impl Identity {
    /// `nobody:nogroup`, unless `REMEDIATOR_SANDBOX_UID`/`_GID` say otherwise.
    pub fn unprivileged() -> Self {
        let read = |name: &str| std::env::var(name).ok().and_then(|v| v.parse().ok());
        Self {
            uid: read("REMEDIATOR_SANDBOX_UID").unwrap_or(65534),
            gid: read("REMEDIATOR_SANDBOX_GID").unwrap_or(65534),
        }
    }

    /// The identity to drop to: only a root caller has one to drop from.
    pub fn for_this_process() -> Option<Self> {
        nix::unistd::geteuid().is_root().then(Self::unprivileged)
    }
}

/// The typed policy the helper applies to itself before running anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    /// The incident root: the only writable place (with the private tmp).
    pub root: PathBuf,
    /// The service as the host reaches it; inside the sandbox it appears on
    /// 127.0.0.1 at the same port.
    pub service: SocketAddr,
    pub op: Op,
    /// The command's whole environment.
    pub env: Vec<(String, String)>,
    pub timeout_ms: u64,
    /// Bytes kept per output stream (and most bytes a read returns).
    pub max_output_bytes: usize,
    /// Layers that must hold; the helper refuses to run if one fails.
    pub required: Vec<Layer>,
    pub identity: Option<Identity>,
}

/// Bytes an answer to an op may take: both output streams, escaped in
/// JSON (at most 4 bytes per byte), and room for the rest.
pub fn answer_limit(max_output_bytes: usize) -> usize {
    4 * max_output_bytes + (1 << 20)
}

/// What the helper reports: the command's result, or why it did not run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Finished {
        /// None when killed by a signal.
        exit_code: Option<i32>,
        stdout: String,
        stderr: String,
        timed_out: bool,
    },
    /// The op was refused inside the sandbox (a device read, say); nothing
    /// ran. Reported to the agent as a failed action.
    Refused { message: String },
    /// The sandbox could not be set up as required; nothing ran.
    SetupFailed {
        layer: Option<Layer>,
        message: String,
    },
    /// The answer to [`Op::Probe`].
    Probed { containment: Containment },
}

/// Finds once per process which layers hold here.
pub async fn probe(helper: &HelperProgram) -> Containment {
    static PROBED: tokio::sync::OnceCell<Containment> = tokio::sync::OnceCell::const_new();
    PROBED
        .get_or_init(|| async { Sandbox::probe_now(helper).await })
        .await
        .clone()
}
