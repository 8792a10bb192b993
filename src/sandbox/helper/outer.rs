//! The outer stage: identity, user/mount/PID namespaces, the inner stage,
//! and the service's end of the port forwarding.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{Stage, forward, layers, setup_failed};
use crate::sandbox::{HELPER_SUBCOMMAND, Layer, MissingLayer, Op, Outcome, Spec};

const NAMESPACED: [Layer; 4] = [Layer::Userns, Layer::Pidns, Layer::Mntns, Layer::Netns];

pub fn run(spec: &Spec, spec_line: &str) -> Outcome {
    let probing = spec.op == Op::Probe;
    let wants = |layer: Layer| probing || spec.required.contains(&layer);
    // Opened before dropping root: the identity may not reach its path.
    let exe = match File::open("/proc/self/exe") {
        Ok(exe) => exe,
        Err(e) => return setup_failed(None, format!("cannot open this executable: {e}")),
    };
    if let Some(identity) = spec.identity
        && let Err(e) = layers::drop_identity(identity)
    {
        return setup_failed(Some(Layer::Userns), e);
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
                return setup_failed(Some(*required), reason);
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
        Err(e) => return setup_failed(None, format!("socketpair: {e}")),
    };
    let spawned = Command::new(format!("/proc/self/fd/{}", exe.as_raw_fd()))
        .arg(HELPER_SUBCOMMAND)
        .arg("--stage")
        .arg(middle.arg())
        .env_clear()
        .env("PATH", crate::sandbox::SAFE_PATH)
        .stdin(Stdio::from(OwnedFd::from(inner_end)))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn();
    let mut inner = match spawned {
        Ok(inner) => inner,
        Err(e) => return setup_failed(None, format!("cannot start the inner stage: {e}")),
    };
    if let Err(e) = link.write_all(spec_line.as_bytes()) {
        let _ = inner.kill();
        return setup_failed(None, format!("sending the spec: {e}"));
    }
    if let Err(e) = forward::serve_outer(link, spec.service) {
        let _ = inner.kill();
        return setup_failed(Some(Layer::Netns), format!("forwarding: {e}"));
    }
    watch_caller(Pid::from_raw(inner.id() as i32));

    let mut report = String::new();
    if let Some(stdout) = inner.stdout.take() {
        // The inner stage caps what it reports; this bounds a broken one.
        let cap = 4 * spec.max_output_bytes as u64 + (1 << 20);
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
