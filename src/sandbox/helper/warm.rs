//! A warm sandbox: the inner stage as a server, an op stage beside it,
//! and a fresh process per request forked by the op stage.
//!
//! The inner stage (PID 1 of the namespaces) sets up what does not change
//! during an incident once: the user namespace, the private mounts (empty
//! /run, /var/tmp and /dev/shm, which no op may write), its own /proc and
//! the network with the service port forwarded. It keeps its capabilities in
//! the namespace and takes no Landlock domain, so it can set up the next op;
//! nothing an op runs can reach it (below).
//!
//! Once per incident it starts the op stage, a single-threaded process
//! that only forks: for each request one child, made ahead of the request
//! so its set-up overlaps the caller's reading of the last answer. The
//! child makes what must be fresh per op:
//!
//! - its own PID namespace, of which it is PID 1 with a /proc of its own:
//!   when it exits the kernel kills every process the op started, before
//!   the op stage sees it exit and answers; nothing outside the namespace
//!   can be named, let alone signalled, from inside it;
//! - its own mount namespace with an empty /tmp, and its own System V IPC
//!   namespace, so nothing one op leaves there is seen by the next;
//! - resource limits, a Landlock domain of its own, no capabilities, a
//!   seccomp filter (see `seccomp`), the request's environment and time
//!   limit;
//!
//! then runs the op as the cold path does. A fork costs a fraction of a
//! millisecond where starting this binary per op cost about two of CPU.
//! If an op overruns its time (or the op stage fails), the inner stage
//! kills every other process in the namespace (`kill(-1)` from PID 1),
//! reaps them all and starts a new op stage before it answers.
//!
//! Why an op cannot touch the server or the op stage: neither is in the
//! op's PID namespace, and Landlock's scoping refuses signals and abstract
//! sockets outside the op's domain; ptrace and the /proc files that need
//! ptrace access (`mem`, `environ`, `fd`) are refused across Landlock
//! domains too, and both are made non-dumpable on top. The pipes between
//! them are close-on-exec: no command an op runs holds one. A warm sandbox
//! is only used where every layer holds (see `WarmSandbox`).

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid};

use super::inner::{self, LinkWriter, Setup};
use super::{EXIT_SETUP_FAILED, Stage, forward, layers, report, setup_failed};
use crate::sandbox::{Containment, Layer, Op, Outcome, Request, Spec};

/// Time an op gets beyond its own limit to set up and answer.
const GRACE: Duration = Duration::from_secs(5);

/// The inner stage of a warm sandbox: set up once, answer "ready" (the
/// layers set up so far), then one answer line per request until the link
/// closes.
pub fn serve(spec: &Spec) -> i32 {
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    if std::process::id() != 1 {
        return report(&setup_failed(
            Some(Layer::Pidns),
            "a warm sandbox needs its own PID namespace".into(),
        ));
    }
    let mut setup = Setup::new(spec);
    let mut listeners: Vec<TcpListener> = Vec::new();
    if let Err(outcome) = inner::namespaces(&mut setup, &mut listeners) {
        return report(&outcome);
    }
    // Forked while this process has no threads yet: started afresh, it
    // would cost another start of this binary (about 2 ms of CPU).
    let mut ops = OpStage::fork(spec);
    // Its /proc files go to root of the namespace's owner: a second fence,
    // beside Landlock, around what an op could read of this process.
    let _ = nix::sys::prctl::set_dumpable(false);
    let (requests, received) = mpsc::channel();
    let inside = forward::Inside::new(LinkWriter);
    let serving = inside.clone();
    std::thread::spawn(move || {
        serving.serve(std::io::stdin(), listeners, Some(requests));
        // The link closed: the outer stage is gone, and so is this sandbox.
        std::process::exit(137);
    });
    report(&Outcome::Probed {
        containment: Containment {
            layers: setup.held,
            missing: setup.missing,
        },
    });
    for request in received {
        let outcome = match serde_json::from_slice::<Request>(&request) {
            Err(e) => setup_failed(None, format!("bad request: {e}")),
            Ok(request) if matches!(request.op, Op::Serve | Op::Probe) => Outcome::Refused {
                message: "a warm sandbox runs commands and file operations only".into(),
            },
            Ok(request) => {
                let answered = match &mut ops {
                    Ok(stage) => stage.run(&request),
                    Err(failed) => Err(failed.clone()),
                };
                answered.unwrap_or_else(|outcome| {
                    // The op overran, or the op stage is gone or never
                    // started: nothing of either is left, and a new op
                    // stage serves the next.
                    kill_everything_else();
                    ops = OpStage::start(spec);
                    outcome
                })
            }
        };
        // None of this op's connections reaches the next op.
        inside.reset();
        report(&outcome);
    }
    EXIT_SETUP_FAILED
}

/// The running op stage, as the inner stage sees it.
struct OpStage {
    /// Where it was started rather than forked.
    _child: Option<Child>,
    stdin: File,
    answers: mpsc::Receiver<String>,
}

impl OpStage {
    /// Forks the op stage from this process while it has one thread (or
    /// else starts it afresh); it forks the first op's process at once.
    fn fork(spec: &Spec) -> Result<Self, Outcome> {
        if !super::single_threaded() {
            return Self::start(spec);
        }
        let failed = |what: &str, e: Errno| setup_failed(None, format!("{what}: {e}"));
        let (requests, request_in) =
            nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| failed("pipe", e))?;
        let (answer_out, answers) =
            nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| failed("pipe", e))?;
        // SAFETY: this process has one thread (checked above).
        #[allow(unsafe_code)]
        let forked = unsafe { nix::unistd::fork() };
        match forked.map_err(|e| failed("fork", e))? {
            ForkResult::Child => super::in_forked_child(|| {
                // Only the request pipe in and the answer pipe out: not the
                // link (stdin), nor the listeners. Until then its stdout is
                // the inner stage's answer line, so a failure says nothing:
                // the inner stage sees an op stage that answers nothing.
                let detached = detach_stdio()
                    .and_then(|()| nix::unistd::dup2_stdout(&answers))
                    .is_ok()
                    && super::close_descriptors_except(&[requests.as_raw_fd()]);
                if !detached {
                    return EXIT_SETUP_FAILED;
                }
                run_ops(spec, &mut BufReader::new(File::from(requests)))
            }),
            ForkResult::Parent { .. } => Ok(Self::attach(
                None,
                File::from(request_in),
                File::from(answer_out),
            )),
        }
    }

    fn attach(child: Option<Child>, stdin: File, stdout: impl Read + Send + 'static) -> Self {
        let (answer, answers) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if answer.send(line).is_err() {
                    return;
                }
            }
        });
        Self {
            _child: child,
            stdin,
            answers,
        }
    }

    /// Starts the op stage afresh (the process has threads now); it forks
    /// the first op's process at once.
    fn start(spec: &Spec) -> Result<Self, Outcome> {
        let line = serde_json::to_string(spec)
            .map(|line| line + "\n")
            .map_err(|e| setup_failed(None, format!("encoding the spec: {e}")))?;
        let mut child = Stage::Op
            .command("/proc/self/exe")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| setup_failed(None, format!("cannot start the op stage: {e}")))?;
        let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(setup_failed(None, "the op stage has no pipes".into()));
        };
        stdin
            .write_all(line.as_bytes())
            .map_err(|e| setup_failed(None, format!("the op stage took no spec: {e}")))?;
        let stdin = File::from(OwnedFd::from(stdin));
        Ok(Self::attach(Some(child), stdin, stdout))
    }

    /// One request, answered by a fresh process of the op stage's; `Err`
    /// when it did not answer in time (the op may still run).
    fn run(&mut self, request: &Request) -> Result<Outcome, Outcome> {
        let line = serde_json::to_string(request)
            .map(|line| line + "\n")
            .map_err(|e| setup_failed(None, format!("encoding the op: {e}")))?;
        let limit = Duration::from_millis(request.timeout_ms).saturating_add(GRACE);
        let ended = |stderr: String, timed_out: bool| Outcome::Finished {
            exit_code: None,
            stdout: String::new(),
            stderr,
            timed_out,
        };
        if let Err(e) = self.stdin.write_all(line.as_bytes()) {
            return Err(ended(
                format!("[sandbox ended without a result: {e}]"),
                false,
            ));
        }
        match self.answers.recv_timeout(limit) {
            Ok(line) => serde_json::from_str(&line)
                .map_err(|e| ended(format!("[sandbox answered nonsense: {e}]"), false)),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(ended("[sandbox ended without a result]".into(), false))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => Err(ended(
                format!(
                    "[killed: the op did not finish within {:.1}s]",
                    limit.as_secs_f64()
                ),
                true,
            )),
        }
    }
}

/// As PID 1: kills every other process in the namespace and reaps them
/// all (orphans are this process's children). A process forking while the
/// signal goes out already has it pending, so its fork fails.
fn kill_everything_else() {
    let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
    loop {
        match waitpid(None, None) {
            Err(Errno::ECHILD) => return,
            Err(Errno::EINTR) | Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// The op stage: single-threaded, it forks one process per request (made
/// before the request comes), passes the request on, waits for the process
/// (and with it its PID namespace) to be gone, then answers. Runs until
/// `requests` closes.
pub fn run_ops(spec: &Spec, requests: &mut impl BufRead) -> i32 {
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    let _ = nix::sys::prctl::set_dumpable(false);
    if !super::single_threaded() {
        return report(&setup_failed(
            None,
            "the op stage forks, so it must have one thread".into(),
        ));
    }
    let own_pid_namespace = match File::open("/proc/self/ns/pid") {
        Ok(file) => file,
        Err(e) => return report(&setup_failed(Some(Layer::Pidns), format!("{e}"))),
    };
    loop {
        let next = fork_op(spec, &own_pid_namespace);
        let mut line = String::new();
        match requests.read_line(&mut line) {
            Ok(0) | Err(_) => return 0,
            Ok(_) => {}
        }
        let outcome = match next {
            Ok(op) => op.answer(&line),
            Err(outcome) => outcome,
        };
        report(&outcome);
    }
}

/// A forked op process waiting for its request.
struct ForkedOp {
    pid: Pid,
    request: File,
    answer: File,
}

impl ForkedOp {
    fn answer(self, line: &str) -> Outcome {
        let Self {
            pid,
            mut request,
            mut answer,
        } = self;
        // A process that failed its set-up has answered already and reads
        // nothing: the write then fails, and its answer says why.
        let _ = request.write_all(line.as_bytes());
        drop(request);
        let mut text = String::new();
        let _ = answer.read_to_string(&mut text);
        // Its PID namespace is gone once it is: nothing it started is left.
        let status = super::reap(pid);
        serde_json::from_str::<Outcome>(text.trim())
            .unwrap_or_else(|_| super::ended_without_a_result(status))
    }
}

/// Forks the next op's process as PID 1 of a new PID namespace; it sets
/// itself up and waits for its request.
fn fork_op(spec: &Spec, own_pid_namespace: &File) -> Result<ForkedOp, Outcome> {
    let failed = |what: &str, e: Errno| setup_failed(Some(Layer::Pidns), format!("{what}: {e}"));
    let (request_out, request_in) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| failed("pipe", e))?;
    let (answer_out, answer_in) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| failed("pipe", e))?;
    // The last op's namespace is the one children would be born into:
    // back to this process's own, then a new one for the next child.
    nix::sched::setns(own_pid_namespace.as_fd(), CloneFlags::CLONE_NEWPID)
        .map_err(|e| failed("setns(pid)", e))?;
    nix::sched::unshare(CloneFlags::CLONE_NEWPID).map_err(|e| failed("unshare(pid)", e))?;
    // SAFETY: the op stage has one thread (checked in `run_ops`, and it
    // starts none), so the child may run any code: no lock another thread
    // held at the fork stays held in it.
    #[allow(unsafe_code)]
    let forked = unsafe { nix::unistd::fork() };
    match forked.map_err(|e| failed("fork", e))? {
        ForkResult::Child => super::in_forked_child(|| {
            // Nothing of the op stage's: not its request pipe (which a file
            // op could open through /proc/self/fd and forge the next
            // request on), not its PID namespace; only this op's pipes.
            let outcome = if super::close_descriptors_except(&[
                request_out.as_raw_fd(),
                answer_in.as_raw_fd(),
            ]) {
                op_process(spec, request_out)
            } else {
                setup_failed(None, "cannot close the op stage's descriptors".into())
            };
            let mut answer = File::from(answer_in);
            let _ = writeln!(answer, "{}", super::encode(&outcome));
            0
        }),
        ForkResult::Parent { child } => Ok(ForkedOp {
            pid: child,
            request: File::from(request_in),
            answer: File::from(answer_out),
        }),
    }
}

/// In the forked op process: what must be fresh per op, set up before its
/// request comes; then the request and the op itself.
fn op_process(spec: &Spec, request: OwnedFd) -> Outcome {
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    // The op stage's stdin and stdout are its link to the inner stage:
    // nothing of this op may write there, nor read the next request.
    if let Err(e) = detach_stdio() {
        return setup_failed(None, format!("detaching from the op stage's link: {e}"));
    }
    let mut setup = Setup::new(spec);
    // Set up by the inner stage for the whole sandbox; the PID namespace
    // is this op's own, with its own /proc below.
    setup.held.extend(
        [Layer::Userns, Layer::Netns]
            .into_iter()
            .filter(|l| spec.required.contains(l)),
    );
    // Its own System V IPC namespace too: segments and semaphores an op
    // leaves would otherwise be there for the next.
    if let Err(e) = nix::sched::unshare(CloneFlags::CLONE_NEWIPC) {
        return setup_failed(None, format!("unshare(ipc): {e}"));
    }
    if spec.required.contains(&Layer::Mntns) {
        let mounted = nix::sched::unshare(CloneFlags::CLONE_NEWNS)
            .map_err(|e| format!("unshare(mount): {e}"))
            .and_then(|()| layers::fresh_tmp(&spec.root));
        if let Err(outcome) = setup.note(Layer::Mntns, mounted) {
            return outcome;
        }
    }
    if spec.required.contains(&Layer::Pidns) {
        let own_proc = if setup.held.contains(&Layer::Mntns) {
            layers::fresh_proc()
        } else {
            Err("a /proc of the op's own needs its own mount namespace".into())
        };
        if let Err(outcome) = setup.note(Layer::Pidns, own_proc) {
            return outcome;
        }
    }
    if let Err(outcome) = inner::restrictions(&mut setup, true, true) {
        return outcome;
    }
    let mut line = String::new();
    let request: Request = match BufReader::new(File::from(request))
        .read_line(&mut line)
        .map(|_| serde_json::from_str(&line))
    {
        Ok(Ok(request)) => request,
        _ => return setup_failed(None, "the op got no request".into()),
    };
    let op_spec = Spec {
        op: request.op,
        env: request.env,
        timeout_ms: request.timeout_ms,
        max_output_bytes: request.max_output_bytes,
        ..spec.clone()
    };
    inner::run_op(&op_spec, setup)
}

/// Points stdin and stdout at /dev/null (stderr already is).
fn detach_stdio() -> nix::Result<()> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))?;
    nix::unistd::dup2_stdin(&null)?;
    nix::unistd::dup2_stdout(&null)
}
