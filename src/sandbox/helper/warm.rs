//! A warm sandbox: the inner stage as a server, and the op stage it starts
//! per request.
//!
//! The inner stage (PID 1 of the namespaces) sets up what does not change
//! during an incident once: the user namespace, the private mounts (empty
//! /run, /var/tmp and /dev/shm, which no op may write), its own /proc and
//! the network with the service port forwarded. It keeps its capabilities in
//! the namespace and takes no Landlock domain, so it can set up the next op;
//! nothing an op runs can reach it (below). For each request it starts the
//! op stage, a fresh process that makes what must be fresh per op:
//!
//! - its own mount namespace with an empty /tmp, and its own System V IPC
//!   namespace, so nothing one op leaves there is seen by the next;
//! - resource limits, a Landlock domain of its own, no capabilities, a
//!   seccomp filter (see `seccomp`), the request's environment and time
//!   limit;
//!
//! then runs the op as the cold path does. When the op stage has ended
//! (or its time is up), the inner stage kills every other process in the
//! namespace (`kill(-1)` from PID 1) and reaps them all before it answers:
//! nothing an op started outlives it.
//!
//! Why an op cannot touch the server: a signal to PID 1 from inside its
//! namespace is dropped unless PID 1 handles it (it handles none), and
//! Landlock's scoping refuses signals and abstract sockets outside the
//! op's domain; ptrace and the /proc files that need ptrace access (`mem`,
//! `environ`, `fd`) are refused across Landlock domains too, and the
//! server is made non-dumpable on top. A warm sandbox is only used where
//! every layer holds (see `WarmSandbox`).

use std::io::{BufRead, Read, Write};
use std::net::TcpListener;
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use super::inner::{self, LinkWriter, Setup};
use super::{EXIT_SETUP_FAILED, Stage, forward, layers, report, setup_failed};
use crate::sandbox::{Containment, Layer, Op, Outcome, Request, Spec};

/// Time an op stage gets beyond its op's own limit to set up and answer.
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
    let mut next = start_op_stage(spec);
    for request in received {
        let outcome = match (serde_json::from_slice::<Request>(&request), next) {
            (Ok(request), Ok(stage)) => answer(stage, request),
            (Err(e), _) => setup_failed(None, format!("bad request: {e}")),
            (_, Err(outcome)) => outcome,
        };
        // Nothing of this op (nor an unused op stage) is left, and none of
        // its connections reaches the next op.
        kill_everything_else();
        inside.reset();
        report(&outcome);
        next = start_op_stage(spec);
    }
    EXIT_SETUP_FAILED
}

/// An op stage started and contained ahead of its request, waiting on
/// stdin for it (or the set-up failure it reported, on stdout).
struct Waiting {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
}

/// Starts the next op stage: it sets up its containment while the caller
/// is still reading the last answer, so a request costs little more than
/// the op. Started only after everything of the last op is gone.
fn start_op_stage(spec: &Spec) -> Result<Waiting, Outcome> {
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
    // A failed write shows as an op stage that answers nothing.
    let _ = stdin.write_all(line.as_bytes());
    Ok(Waiting {
        child,
        stdin,
        stdout,
    })
}

/// One request, run by the waiting op stage; nothing it started is left
/// when this returns.
fn answer(stage: Waiting, request: Request) -> Outcome {
    if matches!(request.op, Op::Serve | Op::Probe) {
        return Outcome::Refused {
            message: "a warm sandbox runs commands and file operations only".into(),
        };
    }
    let Waiting {
        mut child,
        mut stdin,
        stdout,
    } = stage;
    let line = match serde_json::to_string(&request) {
        Ok(line) => line + "\n",
        Err(e) => return setup_failed(None, format!("encoding the op: {e}")),
    };
    let _ = stdin.write_all(line.as_bytes());
    drop(stdin);
    let cap = crate::sandbox::answer_limit(request.max_output_bytes) as u64;
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.take(cap).read_to_string(&mut text);
        text
    });
    let (done, waited) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait());
    });
    let limit = Duration::from_millis(request.timeout_ms).saturating_add(GRACE);
    let status = waited.recv_timeout(limit);
    // Ends the op stage too, if its time is up; its output then closes.
    kill_everything_else();
    let text = reader.join().unwrap_or_default();
    serde_json::from_str::<Outcome>(text.trim()).unwrap_or_else(|_| Outcome::Finished {
        exit_code: None,
        stdout: String::new(),
        stderr: match status {
            Ok(Ok(status)) => format!("[sandbox ended without a result: {status}]"),
            _ => format!(
                "[killed: the op did not finish within {:.1}s]",
                limit.as_secs_f64()
            ),
        },
        timed_out: status.is_err(),
    })
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

/// The op stage: what must be fresh per op, set up before its request
/// comes; then the request (one line on stdin) and the op itself.
pub fn run_op(spec: &Spec) -> Outcome {
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    let mut setup = Setup::new(spec);
    // Set up by the inner stage for the whole sandbox.
    setup.held.extend(
        [Layer::Userns, Layer::Pidns, Layer::Netns]
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
    if let Err(outcome) = inner::restrictions(&mut setup, true, true) {
        return outcome;
    }
    let mut line = String::new();
    let request: Request = match std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map(|_| serde_json::from_str(&line))
    {
        Ok(Ok(request)) => request,
        _ => return setup_failed(None, "the op stage got no request".into()),
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
