//! The outer stage: identity, user/mount/PID namespaces, the inner stage,
//! and the service's end of the port forwarding; for a warm sandbox, the
//! relay of requests in and answers out.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Child, Stdio};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{Stage, forward, layers, setup_failed};
use crate::sandbox::{Layer, MissingLayer, Op, Outcome, Spec};

/// Bytes of one answer a warm sandbox's inner stage may send (its op
/// stage caps what it reports far below this).
const MAX_ANSWER: u64 = 64 << 20;

const NAMESPACED: [Layer; 4] = [Layer::Userns, Layer::Pidns, Layer::Mntns, Layer::Netns];

/// The inner stage, started with the spec sent and the forwarding
/// served; and the namespaced layers the kernel refused (when not
/// required).
struct Started {
    inner: Child,
    link: forward::Link,
    missing: Vec<MissingLayer>,
}

fn start(spec: &Spec, spec_line: &str) -> Result<Started, Outcome> {
    let probing = spec.op == Op::Probe;
    let wants = |layer: Layer| probing || spec.required.contains(&layer);
    // Opened before dropping root: the identity may not reach its path.
    let exe = match File::open("/proc/self/exe") {
        Ok(exe) => exe,
        Err(e) => {
            return Err(setup_failed(
                None,
                format!("cannot open this executable: {e}"),
            ));
        }
    };
    if let Some(identity) = spec.identity
        && let Err(e) = layers::drop_identity(identity)
    {
        return Err(setup_failed(Some(Layer::Userns), e));
    }
    let mut missing = Vec::new();
    let mut middle = Stage::MiddlePlain;
    if NAMESPACED.iter().any(|l| wants(*l)) {
        let entered =
            layers::enter_user_namespace().and_then(|()| layers::pass_setup_capabilities());
        if entered.is_ok() {
            middle = Stage::Middle;
        }
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
    let spawned = middle
        .command(format!("/proc/self/fd/{}", exe.as_raw_fd()))
        .stdin(Stdio::from(OwnedFd::from(inner_end)))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn();
    let mut inner = match spawned {
        Ok(inner) => inner,
        Err(e) => {
            return Err(setup_failed(
                None,
                format!("cannot start the inner stage: {e}"),
            ));
        }
    };
    if let Err(e) = link.write_all(spec_line.as_bytes()) {
        let _ = inner.kill();
        return Err(setup_failed(None, format!("sending the spec: {e}")));
    }
    match forward::serve_outer(link, spec.service) {
        Ok(link) => Ok(Started {
            inner,
            link,
            missing,
        }),
        Err(e) => {
            let _ = inner.kill();
            Err(setup_failed(Some(Layer::Netns), format!("forwarding: {e}")))
        }
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
    watch_caller(Pid::from_raw(inner.id() as i32));

    let mut report = String::new();
    if let Some(stdout) = inner.stdout.take() {
        // The inner stage caps what it reports; this bounds a broken one.
        let cap = crate::sandbox::answer_limit(spec.max_output_bytes) as u64;
        let _ = stdout.take(cap).read_to_string(&mut report);
    }
    let status = inner.wait();
    let outcome =
        serde_json::from_str::<Outcome>(report.trim()).unwrap_or_else(|_| Outcome::Finished {
            exit_code: None,
            stdout: String::new(),
            stderr: format!(
                "[sandbox ended without a result: {}]",
                status.map_or_else(|e| e.to_string(), |s| s.to_string())
            ),
            timed_out: false,
        });
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
    let Some(stdout) = inner.stdout.take() else {
        let _ = inner.kill();
        return super::report(&setup_failed(
            None,
            "no answers from the inner stage".into(),
        ));
    };
    let mut answers = BufReader::new(stdout);
    let end = |mut inner: Child, code: i32| {
        let _ = inner.kill();
        let _ = inner.wait();
        code
    };
    // Ready first, then one answer per request.
    if !relay_answer(&mut answers) {
        return end(inner, super::EXIT_SETUP_FAILED);
    }
    let requests = watch_requests(Pid::from_raw(inner.id() as i32));
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
