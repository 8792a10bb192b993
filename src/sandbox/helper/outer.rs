//! The outer stage: identity, user/mount/PID namespaces, the inner stage,
//! and the service's end of the port forwarding; for a warm sandbox, the
//! relay of requests in and answers out.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

use nix::fcntl::OFlag;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::WaitStatus;
use nix::unistd::{ForkResult, Pid};

use super::{forward, layers, middle, setup_failed};
use crate::sandbox::{Layer, MissingLayer, Op, Outcome, Spec};

/// Bytes of one answer a warm sandbox's inner stage may send (its op
/// stage caps what it reports far below this).
const MAX_ANSWER: u64 = 64 << 20;

const NAMESPACED: [Layer; 4] = [Layer::Userns, Layer::Pidns, Layer::Mntns, Layer::Netns];

/// The middle stage (and below it the inner stage), forked from this
/// one: its answers come on `answers`.
struct Middle {
    pid: Pid,
    answers: Option<File>,
}

impl Middle {
    fn kill(&self) {
        let _ = kill(self.pid, Signal::SIGKILL);
    }

    /// Waits for it to end.
    fn wait(&self) -> nix::Result<WaitStatus> {
        super::reap(self.pid)
    }

    fn end(self) {
        self.kill();
        let _ = self.wait();
    }
}

/// The inner stage, started with the spec sent and the forwarding
/// served; and the namespaced layers the kernel refused (when not
/// required).
struct Started {
    inner: Middle,
    link: forward::Link,
    missing: Vec<MissingLayer>,
}

fn start(spec: &Spec, spec_line: &str) -> Result<Started, Outcome> {
    let probing = spec.op == Op::Probe;
    let wants = |layer: Layer| probing || spec.required.contains(&layer);
    if let Some(identity) = spec.identity
        && let Err(e) = layers::drop_identity(identity)
    {
        return Err(setup_failed(Some(Layer::Userns), e));
    }
    let mut missing = Vec::new();
    let mut namespaces = false;
    if NAMESPACED.iter().any(|l| wants(*l)) {
        let entered =
            layers::enter_user_namespace().and_then(|()| layers::pass_setup_capabilities());
        namespaces = entered.is_ok();
        if let Err(reason) = entered {
            if let Some(required) = NAMESPACED.iter().find(|l| spec.required.contains(l)) {
                return Err(setup_failed(Some(*required), reason));
            }
            missing.extend(NAMESPACED.iter().map(|layer| MissingLayer {
                layer: *layer,
                reason: reason.clone(),
            }));
        }
    }
    // The link is the inner stage's stdin: the spec, then forwarded
    // connections. It closes when this stage dies, however it dies.
    let (mut link, inner_end) = match UnixStream::pair() {
        Ok(pair) => pair,
        Err(e) => return Err(setup_failed(None, format!("socketpair: {e}"))),
    };
    let inner = fork_middle(namespaces, inner_end)?;
    if let Err(e) = link.write_all(spec_line.as_bytes()) {
        inner.end();
        return Err(setup_failed(None, format!("sending the spec: {e}")));
    }
    match forward::serve_outer(link, spec.service) {
        Ok(link) => Ok(Started {
            inner,
            link,
            missing,
        }),
        Err(e) => {
            inner.end();
            Err(setup_failed(Some(Layer::Netns), format!("forwarding: {e}")))
        }
    }
}

/// Forks the middle stage with the link as its stdin and a pipe for its
/// answers as its stdout, and nothing else of this stage's: a fork where
/// starting this binary again cost about 2 ms of CPU per sandbox.
fn fork_middle(namespaces: bool, link: UnixStream) -> Result<Middle, Outcome> {
    let failed = |what: &str, e: nix::Error| {
        setup_failed(None, format!("cannot start the middle stage: {what}: {e}"))
    };
    if !super::single_threaded() {
        return Err(setup_failed(
            None,
            "the outer stage forks the middle stage, so it must have one thread until then".into(),
        ));
    }
    let (answers, answers_in) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| failed("pipe", e))?;
    // SAFETY: this process has one thread (checked above), so the child
    // may run any code: no lock another thread held at the fork stays held
    // in it. This stage read its spec without its stdin buffer (see
    // `read_spec_line`), so the inner stage's read of its spec starts on
    // the link.
    #[allow(unsafe_code)]
    let forked = unsafe { nix::unistd::fork() };
    match forked.map_err(|e| failed("fork", e))? {
        ForkResult::Child => super::in_forked_child(|| {
            // The caller's pipes are this stage's: the middle stage may
            // neither read its requests nor answer it.
            let moved = nix::unistd::dup2_stdin(OwnedFd::from(link))
                .and_then(|()| nix::unistd::dup2_stdout(&answers_in));
            if moved.is_err() || !super::close_descriptors_except(&[]) {
                return super::EXIT_SETUP_FAILED;
            }
            middle::run(namespaces)
        }),
        ForkResult::Parent { child } => Ok(Middle {
            pid: child,
            answers: Some(File::from(answers)),
        }),
    }
}

pub fn run(spec: &Spec, spec_line: &str) -> Outcome {
    let Started {
        mut inner,
        link: _link,
        missing,
    } = match start(spec, spec_line) {
        Ok(started) => started,
        Err(outcome) => return outcome,
    };
    watch_caller(inner.pid);

    let mut report = String::new();
    if let Some(answers) = inner.answers.take() {
        // The inner stage caps what it reports; this bounds a broken one.
        let cap = crate::sandbox::answer_limit(spec.max_output_bytes) as u64;
        let _ = answers.take(cap).read_to_string(&mut report);
    }
    let status = inner.wait();
    let outcome = serde_json::from_str::<Outcome>(report.trim())
        .unwrap_or_else(|_| super::ended_without_a_result(status));
    match outcome {
        Outcome::Probed { mut containment } => {
            for gone in &missing {
                containment.layers.retain(|l| *l != gone.layer);
            }
            containment
                .missing
                .retain(|m| !missing.iter().any(|g| g.layer == m.layer));
            containment.missing.extend(missing);
            containment.missing.sort_by_key(|m| m.layer);
            Outcome::Probed { containment }
        }
        other => other,
    }
}

/// When the caller closes this stage's stdin (it is done, or gone), the
/// inner stage and with it every sandboxed process is killed.
fn watch_caller(inner: Pid) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        let _ = kill(inner, Signal::SIGKILL);
        std::process::exit(137);
    });
}

/// A warm sandbox's outer stage: after the inner stage's first answer
/// (ready, or why not), relays each request line from stdin to the inner
/// stage and its answer line back, one at a time. Stdin closing (the
/// caller is done, or gone) ends the sandbox and everything in it.
pub fn serve(spec: &Spec, spec_line: &str) -> i32 {
    let Started {
        mut inner, link, ..
    } = match start(spec, spec_line) {
        Ok(started) => started,
        Err(outcome) => return super::report(&outcome),
    };
    let Some(stdout) = inner.answers.take() else {
        inner.end();
        return super::report(&setup_failed(
            None,
            "no answers from the inner stage".into(),
        ));
    };
    let mut answers = BufReader::new(stdout);
    let end = |inner: Middle, code: i32| {
        inner.end();
        code
    };
    // Ready first, then one answer per request.
    if !relay_answer(&mut answers) {
        return end(inner, super::EXIT_SETUP_FAILED);
    }
    let requests = watch_requests(inner.pid);
    for request in requests {
        // The op may have run in part: the caller sees no answer (not a
        // set-up failure, which would have it run the op again).
        if forward::send_request(&link, request.trim_end().as_bytes()).is_err()
            || !relay_answer(&mut answers)
        {
            return end(inner, super::EXIT_SETUP_FAILED);
        }
    }
    end(inner, 0)
}

/// Request lines from stdin, read while an op runs: stdin closing (the
/// caller is done, or gone, even mid-op) kills the inner stage and with
/// it every sandboxed process, as in [`watch_caller`].
fn watch_requests(inner: Pid) -> std::sync::mpsc::Receiver<String> {
    let (requests, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        loop {
            let mut line = String::new();
            match stdin.read_line(&mut line) {
                Ok(n) if n > 0 && requests.send(line).is_ok() => {}
                _ => break,
            }
        }
        let _ = kill(inner, Signal::SIGKILL);
        std::process::exit(137);
    });
    received
}

/// Copies one answer line from the inner stage to stdout; false when the
/// inner stage is gone (or sent more than an answer may hold).
fn relay_answer(answers: &mut impl BufRead) -> bool {
    let mut line = String::new();
    match answers.take(MAX_ANSWER).read_line(&mut line) {
        Ok(n) if n > 0 && line.ends_with('\n') => {
            let mut out = std::io::stdout().lock();
            out.write_all(line.as_bytes()).is_ok() && out.flush().is_ok()
        }
        _ => false,
    }
}
