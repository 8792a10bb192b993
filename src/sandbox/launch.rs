//! The caller's side of the sandbox: starts the helper with a [`Spec`],
//! bounds it in time and output, and reads back its [`Outcome`].

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};

use super::{Containment, HELPER_SUBCOMMAND, Identity, Layer, Op, Outcome, Request, Spec};

/// How to start the helper: a program and the arguments before
/// `sandbox-exec` (the `remediator` binary itself, normally).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperProgram {
    pub program: PathBuf,
    pub prefix_args: Vec<OsString>,
}

impl HelperProgram {
    pub fn current_exe() -> std::io::Result<Self> {
        Ok(Self {
            program: std::env::current_exe()?,
            prefix_args: Vec::new(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot start the sandbox helper {program}: {error}")]
    Spawn {
        program: PathBuf,
        error: std::io::Error,
    },
    #[error("the sandbox could not set up {}: {message}", layer.map_or("itself", Layer::name))]
    Setup {
        layer: Option<Layer>,
        message: String,
    },
    #[error("the sandbox helper broke its protocol: {0}")]
    Protocol(String),
    #[error("the sandbox helper did not finish within {0:?}")]
    Hung(Duration),
}

/// Runs ops contained, with every layer the probe found on this machine
/// required: a layer that held once and fails later stops the op.
#[derive(Debug, Clone)]
pub struct Sandbox {
    helper: HelperProgram,
    containment: Containment,
    identity: Option<Identity>,
}

/// What one contained op needs beyond the op itself.
#[derive(Debug, Clone)]
pub struct Job<'a> {
    pub root: &'a Path,
    pub service: SocketAddr,
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
    pub max_output_bytes: usize,
}

/// Time the helper gets beyond the op's own timeout to set up and report.
const GRACE: Duration = Duration::from_secs(10);

impl Sandbox {
    /// A sandbox with the layers this machine gives (probed once).
    pub async fn new(helper: HelperProgram) -> Self {
        let containment = super::probe(&helper).await;
        Self {
            helper,
            containment,
            identity: Identity::for_this_process(),
        }
    }

    /// A sandbox requiring only `layers` (benchmarks and tests compare
    /// layer sets; real runs use [`Sandbox::new`]).
    pub fn with_layers(helper: HelperProgram, layers: Vec<Layer>) -> Self {
        let missing = Layer::ALL
            .iter()
            .filter(|l| !layers.contains(l))
            .map(|layer| super::MissingLayer {
                layer: *layer,
                reason: "not requested".into(),
            })
            .collect();
        Self {
            helper,
            containment: Containment { layers, missing },
            identity: Identity::for_this_process(),
        }
    }

    pub fn containment(&self) -> &Containment {
        &self.containment
    }

    /// The identity sandboxed processes run as, when the caller is root;
    /// files they must change have to belong to it.
    pub fn identity(&self) -> Option<Identity> {
        self.identity
    }

    pub async fn run(&self, job: Job<'_>, op: Op) -> Result<Outcome, SandboxError> {
        let spec = Spec {
            root: job.root.to_path_buf(),
            service: job.service,
            op,
            env: job.env,
            timeout_ms: millis(job.timeout),
            max_output_bytes: job.max_output_bytes,
            required: self.containment.layers.clone(),
            identity: self.identity,
        };
        let limit = super::answer_limit(job.max_output_bytes);
        op_result(execute(&self.helper, &spec, job.timeout + GRACE, limit).await?)
    }

    /// Runs the helper's probe in a scratch root and reports what held.
    pub(super) async fn probe_now(helper: &HelperProgram) -> Containment {
        let identity = Identity::for_this_process();
        let failed = |reason: String| Containment {
            layers: Vec::new(),
            missing: Layer::ALL
                .iter()
                .map(|layer| super::MissingLayer {
                    layer: *layer,
                    reason: reason.clone(),
                })
                .collect(),
        };
        let scratch = match tempfile::Builder::new()
            .prefix("remediator-probe-")
            .tempdir()
        {
            Ok(dir) => dir,
            Err(e) => return failed(format!("no scratch directory for the probe: {e}")),
        };
        if let Some(identity) = identity {
            let owner = (
                Some(nix::unistd::Uid::from_raw(identity.uid)),
                Some(nix::unistd::Gid::from_raw(identity.gid)),
            );
            if let Err(e) = nix::unistd::chown(scratch.path(), owner.0, owner.1) {
                return failed(format!("cannot hand the probe's root to {identity:?}: {e}"));
            }
        }
        let spec = Spec {
            root: scratch.path().to_path_buf(),
            service: SocketAddr::from(([127, 0, 0, 1], 8080)),
            op: Op::Probe,
            env: Vec::new(),
            timeout_ms: 10_000,
            max_output_bytes: 4096,
            required: Vec::new(),
            identity,
        };
        match execute(helper, &spec, Duration::from_secs(30), 1 << 20).await {
            Ok(Outcome::Probed { containment }) => containment,
            Ok(Outcome::SetupFailed { message, .. }) => failed(message),
            Ok(other) => failed(format!("unexpected probe answer {other:?}")),
            Err(e) => failed(e.to_string()),
        }
    }
}

/// A sandbox kept warm for one incident's root and service: the helper's
/// namespaces are set up at the first op and serve every op after it,
/// each contained afresh (see the helper's `warm` module). Used only
/// where every layer holds; anything else, or an op for another root,
/// goes the cold way. Dropping it ends the helper and all in it.
#[derive(Debug)]
pub struct WarmSandbox {
    sandbox: Sandbox,
    root: PathBuf,
    service: SocketAddr,
    session: tokio::sync::Mutex<Option<Session>>,
    /// Set when the warm helper could not be set up here: every op after
    /// that goes the cold way.
    cold_only: std::sync::atomic::AtomicBool,
}

#[derive(Debug)]
struct Session {
    /// Killed on drop, or at [`WarmSandbox::close`]: the helper ends with
    /// the session.
    child: Child,
    stdin: ChildStdin,
    answers: BufReader<ChildStdout>,
}

/// Time a warm helper gets to set up its namespaces.
const WARM_START: Duration = Duration::from_secs(30);

impl Sandbox {
    /// A warm sandbox for `root` and `service`; nothing starts before its
    /// first op.
    pub fn warm(&self, root: &Path, service: SocketAddr) -> WarmSandbox {
        WarmSandbox {
            sandbox: self.clone(),
            root: root.to_path_buf(),
            service,
            session: tokio::sync::Mutex::new(None),
            cold_only: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl WarmSandbox {
    /// Ends the helper and everything in it, and waits until it is gone,
    /// so nothing of the incident outlives its end (dropping it kills the
    /// helper too, without waiting).
    pub async fn close(&self) {
        if let Some(mut session) = self.session.lock().await.take() {
            let _ = session.child.kill().await;
        }
    }

    /// Runs `op` as [`Sandbox::run`] would, in the warm helper. A helper
    /// that breaks its protocol, hangs or dies is ended, and the next op
    /// starts a new one. One that cannot be set up (its start, or an op
    /// stage's set-up, before the op runs) hands this op and every later
    /// one to the cold path, which requires the same layers.
    pub async fn run(&self, job: Job<'_>, op: Op) -> Result<Outcome, SandboxError> {
        use std::sync::atomic::Ordering;
        if self.cold_only.load(Ordering::Relaxed)
            || !self.sandbox.containment.is_full()
            || job.root != self.root
            || job.service != self.service
        {
            return self.sandbox.run(job, op).await;
        }
        let cold = (job.clone(), op.clone());
        match self.run_warm(job, op).await {
            Err(SandboxError::Setup { .. } | SandboxError::Spawn { .. }) => {
                self.cold_only.store(true, Ordering::Relaxed);
                self.sandbox.run(cold.0, cold.1).await
            }
            other => other,
        }
    }

    async fn run_warm(&self, job: Job<'_>, op: Op) -> Result<Outcome, SandboxError> {
        let request = Request {
            op,
            env: job.env,
            timeout_ms: millis(job.timeout),
            max_output_bytes: job.max_output_bytes,
        };
        let line = json_line(&request)?;
        let limit = super::answer_limit(job.max_output_bytes);
        let mut session = self.session.lock().await;
        if session.is_none() {
            *session = Some(self.start().await?);
        }
        let Some(running) = session.as_mut() else {
            return Err(SandboxError::Protocol("no warm sandbox".into()));
        };
        let answered = async {
            running
                .stdin
                .write_all(line.as_bytes())
                .await
                .map_err(|e| SandboxError::Protocol(format!("sending the op: {e}")))?;
            read_answer(&mut running.answers, limit).await
        };
        let deadline = job.timeout + GRACE;
        let outcome = match tokio::time::timeout(deadline, answered).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(e)) => {
                *session = None;
                return Err(e);
            }
            Err(_) => {
                *session = None;
                return Err(SandboxError::Hung(deadline));
            }
        };
        let result = op_result(outcome);
        if result.is_err() {
            // The next op gets a fresh helper.
            *session = None;
        }
        result
    }

    async fn start(&self) -> Result<Session, SandboxError> {
        let helper = &self.sandbox.helper;
        let mut child = spawn_helper(helper, Stdio::null())?;
        let spec = Spec {
            root: self.root.clone(),
            service: self.service,
            op: Op::Serve,
            env: Vec::new(),
            timeout_ms: 0,
            max_output_bytes: 0,
            required: self.sandbox.containment.layers.clone(),
            identity: self.sandbox.identity,
        };
        let line = json_line(&spec)?;
        let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(SandboxError::Protocol("the helper has no pipes".into()));
        };
        stdin
            .write_all(line.as_bytes())
            .await
            .map_err(|e| SandboxError::Protocol(format!("sending the spec: {e}")))?;
        let mut answers = BufReader::new(stdout);
        let ready = tokio::time::timeout(WARM_START, read_answer(&mut answers, 1 << 20))
            .await
            .map_err(|_| SandboxError::Hung(WARM_START))??;
        match ready {
            Outcome::Probed { .. } => Ok(Session {
                child,
                stdin,
                answers,
            }),
            Outcome::SetupFailed { layer, message } => Err(SandboxError::Setup { layer, message }),
            other => Err(SandboxError::Protocol(format!(
                "a warm sandbox answered {other:?} when it should be ready"
            ))),
        }
    }
}

/// An op's answer as the caller takes it: a set-up failure or a probe
/// answer is an error, anything else the op's outcome.
fn op_result(outcome: Outcome) -> Result<Outcome, SandboxError> {
    match outcome {
        Outcome::SetupFailed { layer, message } => Err(SandboxError::Setup { layer, message }),
        Outcome::Probed { .. } => Err(SandboxError::Protocol("a probe answer to an op".into())),
        outcome => Ok(outcome),
    }
}

/// `value` as one JSON line, as the helper reads its spec and requests.
fn json_line(value: &impl serde::Serialize) -> Result<String, SandboxError> {
    let mut line =
        serde_json::to_string(value).map_err(|e| SandboxError::Protocol(e.to_string()))?;
    line.push('\n');
    Ok(line)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// One answer line of at most `limit` bytes.
async fn read_answer(
    answers: &mut BufReader<ChildStdout>,
    limit: usize,
) -> Result<Outcome, SandboxError> {
    let mut line = String::new();
    let read = (&mut *answers)
        .take(limit as u64)
        .read_line(&mut line)
        .await
        .map_err(|e| SandboxError::Protocol(format!("reading the answer: {e}")))?;
    if read == 0 || !line.ends_with('\n') {
        return Err(SandboxError::Protocol(
            "the warm sandbox ended without an answer".into(),
        ));
    }
    serde_json::from_str(&line).map_err(|e| SandboxError::Protocol(format!("{e}")))
}

/// The helper, out of the terminal's process group (like the services: a
/// Ctrl-C is remediator's to act on, not a kill of running commands),
/// killed when its handle is dropped.
fn spawn_helper(helper: &HelperProgram, stderr: Stdio) -> Result<Child, SandboxError> {
    tokio::process::Command::new(&helper.program)
        .args(&helper.prefix_args)
        .arg(HELPER_SUBCOMMAND)
        .env_clear()
        .env("PATH", crate::sandbox::SAFE_PATH)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| SandboxError::Spawn {
            program: helper.program.clone(),
            error,
        })
}

async fn execute(
    helper: &HelperProgram,
    spec: &Spec,
    deadline: Duration,
    limit: usize,
) -> Result<Outcome, SandboxError> {
    let mut child = spawn_helper(helper, Stdio::piped())?;
    let line = json_line(spec)?;
    // Held open until the helper is done: closing it kills the sandbox.
    let mut stdin = child.stdin.take();
    if let Some(pipe) = stdin.as_mut() {
        pipe.write_all(line.as_bytes())
            .await
            .map_err(|e| SandboxError::Protocol(format!("sending the spec: {e}")))?;
    }
    let stdout = read_limited(child.stdout.take(), limit);
    let stderr = read_limited(child.stderr.take(), 16 * 1024);
    let finished = tokio::time::timeout(deadline, async {
        let (out, err) = tokio::join!(stdout, stderr);
        let status = child.wait().await;
        (out, err, status)
    })
    .await;
    drop(stdin);
    let (out, err, status) = match finished {
        Ok(done) => done,
        Err(_) => {
            let _ = child.kill().await;
            return Err(SandboxError::Hung(deadline));
        }
    };
    let last = out
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    serde_json::from_str(last).map_err(|e| {
        SandboxError::Protocol(format!(
            "{e}; exit {}; stderr: {}",
            status.map_or_else(|e| e.to_string(), |s| s.to_string()),
            err.trim()
        ))
    })
}

async fn read_limited<R: AsyncRead + Unpin>(reader: Option<R>, limit: usize) -> String {
    let Some(reader) = reader else {
        return String::new();
    };
    let mut kept = Vec::new();
    let _ = reader.take(limit as u64).read_to_end(&mut kept).await;
    String::from_utf8_lossy(&kept).into_owned()
}
