//! The inner stage: PID 1 of the sandbox's namespaces. It finishes the
//! containment (mounts, network, Landlock, limits, capabilities), runs the
//! op, and kills whatever the op left behind.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, ChildStderr, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;

use super::capture::Capped;
use super::{files, forward, layers, netlink, setup_failed};
use crate::sandbox::{Containment, Layer, MissingLayer, Op, Outcome, Spec};

/// Layers held and missing so far; a required one missing ends the setup.
pub(super) struct Setup<'a> {
    pub spec: &'a Spec,
    pub held: Vec<Layer>,
    pub missing: Vec<MissingLayer>,
}

impl<'a> Setup<'a> {
    pub fn new(spec: &'a Spec) -> Self {
        Self {
            spec,
            held: Vec::new(),
            missing: Vec::new(),
        }
    }

    fn wants(&self, layer: Layer) -> bool {
        self.spec.op == Op::Probe || self.spec.required.contains(&layer)
    }

    pub fn note(&mut self, layer: Layer, result: Result<(), String>) -> Result<(), Outcome> {
        match result {
            Ok(()) => self.held.push(layer),
            Err(reason) if self.spec.required.contains(&layer) => {
                return Err(setup_failed(Some(layer), reason));
            }
            Err(reason) => self.missing.push(MissingLayer { layer, reason }),
        }
        Ok(())
    }
}

pub fn run(spec: &Spec) -> Outcome {
    match contain(spec) {
        Ok(setup) => run_op(spec, setup),
        Err(outcome) => outcome,
    }
}

fn contain(spec: &Spec) -> Result<Setup<'_>, Outcome> {
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    let mut setup = Setup::new(spec);
    let mut listeners = Vec::new();
    namespaces(&mut setup, &mut listeners)?;
    restrictions(&mut setup, std::process::id() == 1, false)?;
    watch_link(listeners);
    Ok(setup)
}

/// The namespaced layers, as PID 1 of the namespaces the middle stage
/// made: the user namespace, the private mounts, /proc and the network.
pub(super) fn namespaces(
    setup: &mut Setup<'_>,
    listeners: &mut Vec<TcpListener>,
) -> Result<(), Outcome> {
    let spec = setup.spec;
    let pid1 = std::process::id() == 1;
    let namespaced = |result: Result<(), String>| {
        if pid1 {
            result
        } else {
            Err("no user and PID namespace".to_string())
        }
    };
    if setup.wants(Layer::Userns) {
        setup.note(Layer::Userns, namespaced(Ok(())))?;
    }
    if setup.wants(Layer::Mntns) {
        let mounted = namespaced(Ok(())).and_then(|()| layers::private_mounts(&spec.root));
        setup.note(Layer::Mntns, mounted)?;
    }
    // The PID namespace counts only with its own /proc: without it the
    // processes outside stay listed there (a container's masked /proc).
    if setup.wants(Layer::Pidns) {
        let own_proc = namespaced(Ok(())).and_then(|()| layers::private_proc());
        setup.note(Layer::Pidns, own_proc)?;
    }
    if setup.wants(Layer::Netns) {
        let network = namespaced(Ok(())).and_then(|()| private_network(spec, listeners));
        setup.note(Layer::Netns, network)?;
    }
    Ok(())
}

/// What the op's own process gets: resource limits, Landlock (writes in
/// the root and, with private mounts, /tmp), where this process holds
/// capabilities in its user namespace (`namespaced`) none of them, the
/// seccomp filter (see `seccomp`), and last no core dumps:
/// a non-dumpable process cannot be ptrace'd, nor its `/proc` files
/// (`fd`, `mem`, `environ`) opened, by the command it starts, which keeps
/// no capability to override that.
///
/// The filter is required on the warm path (where it fails, commands take
/// the cold path); on the cold path a kernel without it keeps what
/// contained commands before it.
pub(super) fn restrictions(
    setup: &mut Setup<'_>,
    namespaced: bool,
    filter_required: bool,
) -> Result<(), Outcome> {
    let spec = setup.spec;
    layers::resource_limits().map_err(|e| setup_failed(None, e))?;
    if [Layer::LandlockFs, Layer::LandlockNet, Layer::LandlockScope]
        .iter()
        .any(|l| setup.wants(*l))
    {
        let mut writable = vec![spec.root.clone()];
        if setup.held.contains(&Layer::Mntns) {
            writable.push(PathBuf::from("/tmp"));
        }
        match layers::landlock(&writable, spec.service) {
            Ok(result) => {
                setup.held.extend(result.held);
                for (layer, reason) in result.failed {
                    setup.note(layer, Err(reason))?;
                }
            }
            Err(reason) => {
                for layer in [Layer::LandlockFs, Layer::LandlockNet, Layer::LandlockScope] {
                    setup.note(layer, Err(reason.clone()))?;
                }
            }
        }
    }
    if namespaced {
        layers::drop_capabilities().map_err(|e| setup_failed(Some(Layer::Userns), e))?;
    }
    // Landlock has set it where it holds; a filter needs it either way.
    let filtered = nix::sys::prctl::set_no_new_privs()
        .map_err(|e| format!("no_new_privs: {e}"))
        .and_then(|()| super::seccomp::install());
    if let Err(e) = filtered
        && filter_required
    {
        return Err(setup_failed(None, e));
    }
    nix::sys::prctl::set_dumpable(false)
        .map_err(|e| setup_failed(None, format!("set_dumpable: {e}")))?;
    Ok(())
}

/// The fresh network namespace (made by the middle stage) with loopback
/// up and the service port listened on, to be forwarded outside.
fn private_network(spec: &Spec, listeners: &mut Vec<TcpListener>) -> Result<(), String> {
    netlink::loopback_up()?;
    let port = spec.service.port();
    listeners.push(
        TcpListener::bind(("127.0.0.1", port))
            .map_err(|e| format!("listening on 127.0.0.1:{port}: {e}"))?,
    );
    // localhost may resolve to ::1 first; where IPv6 exists, answer there too.
    if let Ok(v6) = TcpListener::bind(("::1", port)) {
        listeners.push(v6);
    }
    Ok(())
}

/// Writes to the link (this stage's stdin, a socket).
pub(super) struct LinkWriter;

impl Write for LinkWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        nix::unistd::write(std::io::stdin().as_fd(), buf).map_err(std::io::Error::from)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Serves forwarded connections over the link; when the link closes the
/// outer stage is gone, and so is this sandbox.
fn watch_link(listeners: Vec<TcpListener>) {
    std::thread::spawn(move || {
        forward::Inside::new(LinkWriter).serve(std::io::stdin(), listeners, None);
        std::process::exit(137);
    });
}

pub(super) fn run_op(spec: &Spec, mut setup: Setup<'_>) -> Outcome {
    match &spec.op {
        Op::Probe => {
            setup.held.sort();
            setup.missing.sort_by_key(|m| m.layer);
            Outcome::Probed {
                containment: Containment {
                    layers: setup.held,
                    missing: setup.missing,
                },
            }
        }
        Op::Read { path } => files::read(&spec.root, path, spec.max_output_bytes),
        Op::Write { path, content } => files::write(&spec.root, path, content),
        Op::Exec { command } => run_command(spec, command),
        Op::Serve => Outcome::Refused {
            message: "a warm sandbox is started by its caller, not by an op".into(),
        },
    }
}

fn run_command(spec: &Spec, command: &str) -> Outcome {
    let pid1 = std::process::id() == 1;
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(command)
        .current_dir(&spec.root)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if !pid1 {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        let _ = nix::sys::prctl::set_child_subreaper(true);
    }
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            return Outcome::Finished {
                exit_code: Some(127),
                stdout: String::new(),
                stderr: format!("cannot start /bin/sh: {e}"),
                timed_out: false,
            };
        }
    };
    let pid = Pid::from_raw(child.id() as i32);
    let mut output = Output::new(&mut child, spec.max_output_bytes);
    let ended = output.until_exit(&mut child, Duration::from_millis(spec.timeout_ms));
    // The command is over: nothing it started may outlive it.
    kill_everything(pid1, pid);
    let (exit_code, timed_out) = match ended {
        Ended::Exited(code) => (code, false),
        Ended::TimedOut => {
            // Killed above; reaped here (unless the sweep reaped it).
            let _ = child.wait();
            (None, true)
        }
    };
    // Every process that could write to the pipes is gone.
    let (stdout, mut stderr) = output.read_to_end();
    if timed_out {
        let seconds = spec.timeout_ms as f64 / 1000.0;
        stderr.push_str(&format!("\n[killed: command ran longer than {seconds}s]"));
    }
    Outcome::Finished {
        exit_code,
        stdout,
        stderr,
        timed_out,
    }
}

/// How a command ended: its exit code (none when a signal ended it, or
/// when its status is lost), or its time ran out.
enum Ended {
    Exited(Option<i32>),
    TimedOut,
}

/// A command's stdout and stderr, read as they come in this one thread
/// (no reader threads to start per command), until it exits or its time
/// is up.
struct Output {
    stdout: Option<ChildStdout>,
    stderr: Option<ChildStderr>,
    kept: [Capped; 2],
}

impl Output {
    fn new(child: &mut Child, cap: usize) -> Self {
        Self {
            stdout: child.stdout.take(),
            stderr: child.stderr.take(),
            kept: [Capped::new(cap), Capped::new(cap)],
        }
    }

    /// Reads until the command exits or `limit` passes. Its exit is seen
    /// on a pidfd; where the kernel gives none, or the pidfd says it
    /// exited while it cannot be reaped yet (a tracer holds it), it is
    /// looked for every 10 ms.
    fn until_exit(&mut self, child: &mut Child, limit: Duration) -> Ended {
        const LOOK_AGAIN: Duration = Duration::from_millis(10);
        let deadline = Instant::now().checked_add(limit);
        let mut exit = rustix::process::pidfd_open(
            rustix::process::Pid::from_child(child),
            rustix::process::PidfdFlags::empty(),
        )
        .ok();
        let mut exit_seen = false;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Ended::Exited(status.code()),
                Ok(None) if exit_seen => exit = None,
                Ok(None) => {}
                // Nothing left to wait for.
                Err(_) => return Ended::Exited(None),
            }
            let left = deadline.map_or(Duration::MAX, |d| {
                d.saturating_duration_since(Instant::now())
            });
            if left.is_zero() {
                return Ended::TimedOut;
            }
            let wait = if exit.is_some() {
                left
            } else {
                left.min(LOOK_AGAIN)
            };
            exit_seen = self.read_some(exit.as_ref(), wait);
        }
    }

    /// Waits up to `wait` (rounded up to whole milliseconds) for output or
    /// the exit, and reads what came; whether the exit was seen.
    fn read_some(&mut self, exit: Option<&OwnedFd>, wait: Duration) -> bool {
        let streams: [Option<BorrowedFd<'_>>; 2] = [
            self.stdout.as_ref().map(AsFd::as_fd),
            self.stderr.as_ref().map(AsFd::as_fd),
        ];
        let mut fds: Vec<PollFd<'_>> = streams
            .iter()
            .flatten()
            .chain(exit.map(AsFd::as_fd).as_ref())
            .map(|fd| PollFd::new(*fd, PollFlags::POLLIN))
            .collect();
        let millis = u64::try_from(wait.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX);
        let timeout = PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX);
        // With nothing to watch (both streams closed, no pidfd) this only
        // waits.
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => return false,
            Err(_) => {
                std::thread::sleep(wait.min(Duration::from_millis(10)));
                return false;
            }
        }
        let mut ready = fds
            .iter()
            .map(|fd| fd.revents().is_some_and(|r| !r.is_empty()))
            .collect::<Vec<bool>>()
            .into_iter();
        if self.stdout.is_some() && ready.next() == Some(true) {
            read_once(&mut self.stdout, &mut self.kept[0]);
        }
        if self.stderr.is_some() && ready.next() == Some(true) {
            read_once(&mut self.stderr, &mut self.kept[1]);
        }
        exit.is_some() && ready.next() == Some(true)
    }

    /// Reads both streams to their end: (stdout, stderr).
    fn read_to_end(mut self) -> (String, String) {
        while self.stdout.is_some() {
            read_once(&mut self.stdout, &mut self.kept[0]);
        }
        while self.stderr.is_some() {
            read_once(&mut self.stderr, &mut self.kept[1]);
        }
        let [stdout, stderr] = self.kept;
        (stdout.finish(), stderr.finish())
    }
}

/// One read from a stream that has something (or has ended, which closes
/// it).
fn read_once(stream: &mut Option<impl Read>, kept: &mut Capped) {
    let Some(reader) = stream.as_mut() else {
        return;
    };
    let mut buf = [0u8; 8192];
    match reader.read(&mut buf) {
        Ok(0) => *stream = None,
        Ok(n) => kept.push(&buf[..n]),
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
        Err(_) => *stream = None,
    }
}

/// Kills every process the command left. As PID 1 of the namespace that
/// is one signal to all; otherwise the process group, then whatever was
/// reparented to this stage (a subreaper), until none is left.
fn kill_everything(pid1: bool, child: Pid) {
    if pid1 {
        let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
        return;
    }
    let _ = killpg(child, Signal::SIGKILL);
    let me = std::process::id();
    for _ in 0..100 {
        let left = children_of(me);
        if left.is_empty() {
            return;
        }
        for pid in left {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            if status == nix::sys::wait::WaitStatus::StillAlive {
                break;
            }
        }
    }
}

/// Live (non-zombie) children of `parent`, from /proc.
fn children_of(parent: u32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // Fields after the command name, which may contain spaces.
            let rest = &stat[stat.rfind(')')? + 2..];
            let mut fields = rest.split_whitespace();
            let state = fields.next()?;
            let ppid: u32 = fields.next()?.parse().ok()?;
            (ppid == parent && state != "Z").then_some(pid)
        })
        .collect()
}
