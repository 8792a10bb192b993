//! The helper process that contains one op, in three stages, because a
//! PID namespace only applies to the children of the process that creates
//! it, and that process can no longer start threads:
//!
//! 1. the **outer** stage reads the [`Spec`] on stdin, drops to the
//!    unprivileged identity, creates the user and mount namespaces and
//!    forks the middle stage; it stays in the host network namespace to
//!    carry connections to the service, and kills everything when its own
//!    stdin closes (the caller is gone);
//! 2. the **middle** stage creates the PID, network, UTS and IPC namespaces
//!    and forks the inner stage, then only waits for it;
//! 3. the **inner** stage is PID 1 of the new namespaces: it mounts a
//!    private /proc and /tmp, brings loopback up with the service port
//!    forwarded, applies Landlock and resource limits, drops every
//!    capability and runs the op. When it exits the kernel kills every
//!    process left in the namespace.
//!
//! The outer stage prints nothing but the final [`Outcome`] line on stdout.
//!
//! A warm sandbox ([`crate::sandbox::Op::Serve`]) keeps the three stages
//! for the whole incident: the inner stage sets up the namespaces, /proc
//! and the network once and then serves requests. It starts one **op**
//! stage, which forks a fresh process per request (PID 1 of its own PID
//! namespace, its own mount namespace with empty scratch directories,
//! limits, Landlock, no capabilities); when that process ends, the kernel
//! has killed everything it started before the answer goes back (see
//! `warm`).

mod capture;
mod files;
mod forward;
mod inner;
mod layers;
mod middle;
mod netlink;
mod outer;
mod read_only;
mod seccomp;
mod warm;

use std::io::{BufRead, Write};

use super::{Layer, Outcome, Spec};

/// Exit code of a helper that could not set up its sandbox.
pub const EXIT_SETUP_FAILED: i32 = 125;

/// Which stage a helper process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Stage {
    Outer,
    Inner,
    /// A warm sandbox's op stage, started by its inner stage: it forks a
    /// fresh process per op.
    Op,
}

impl Stage {
    /// `program sandbox-exec --stage STAGE` with nothing of this process's
    /// environment but the safe PATH: how one stage starts the next.
    fn command(self, program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
        let mut command = std::process::Command::new(program);
        command
            .arg(crate::sandbox::HELPER_SUBCOMMAND)
            .arg("--stage")
            .arg(self.arg())
            .env_clear()
            .env("PATH", crate::sandbox::SAFE_PATH);
        command
    }

    fn arg(self) -> &'static str {
        match self {
            Stage::Outer => "outer",
            Stage::Inner => "inner",
            Stage::Op => "op",
        }
    }
}

/// Entry of `remediator sandbox-exec [--stage STAGE]`.
pub fn main(stage: Stage) -> i32 {
    let line = match read_spec_line(stage) {
        Ok(line) => line,
        Err(e) => {
            return report(&setup_failed(
                None,
                format!("cannot read the sandbox spec: {e}"),
            ));
        }
    };
    let spec: Spec = match serde_json::from_str(&line) {
        Ok(spec) => spec,
        Err(e) => return report(&setup_failed(None, format!("bad sandbox spec: {e}"))),
    };
    let serving = spec.op == crate::sandbox::Op::Serve;
    let outcome = match stage {
        Stage::Inner if serving => return warm::serve(&spec),
        Stage::Inner => inner::run(&spec),
        Stage::Op => return warm::run_ops(&spec, &mut std::io::stdin().lock()),
        _ if serving => return outer::serve(&spec, &line),
        _ => outer::run(&spec, &line),
    };
    report(&outcome)
}

/// The spec: the first line on stdin. The outer stage reads it through a
/// reader of its own, not through this process's stdin buffer, which the
/// stages it forks inherit: the inner stage reads the link through it, and
/// must find nothing of the caller's there.
fn read_spec_line(stage: Stage) -> std::io::Result<String> {
    use std::os::fd::AsFd;
    let mut line = String::new();
    if stage != Stage::Outer {
        std::io::stdin().lock().read_line(&mut line)?;
        return Ok(line);
    }
    let own = std::io::stdin().as_fd().try_clone_to_owned()?;
    let mut reader = std::io::BufReader::new(std::fs::File::from(own));
    reader.read_line(&mut line)?;
    if !reader.buffer().is_empty() {
        return Err(std::io::Error::other(
            "the caller sent more than the spec before the first answer",
        ));
    }
    Ok(line)
}

fn setup_failed(layer: Option<Layer>, message: String) -> Outcome {
    Outcome::SetupFailed { layer, message }
}

/// Whether this process has one thread: what makes a fork without exec
/// sound (no lock another thread holds is copied held into the child).
fn single_threaded() -> bool {
    std::fs::read_dir("/proc/self/task").is_ok_and(|tasks| tasks.count() == 1)
}

/// The whole life of a forked child: its code ends the process, and so
/// does a panic, instead of unwinding into the parent's code the child
/// still has on its stack.
fn in_forked_child(child: impl FnOnce() -> i32) -> ! {
    let code =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(EXIT_SETUP_FAILED);
    std::process::exit(code)
}

/// Closes every descriptor but stdin, stdout, stderr and `keep`; false if
/// it cannot tell which are open. Only in a forked child that never drops
/// what owned the others.
pub(super) fn close_descriptors_except(keep: &[std::os::fd::RawFd]) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return false;
    };
    let open: Vec<std::os::fd::RawFd> = entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .collect();
    // The directory's own descriptor is listed too, and closed already.
    for fd in open.into_iter().filter(|fd| *fd > 2 && !keep.contains(fd)) {
        let _ = nix::unistd::close(fd);
    }
    true
}

/// Waits until `child` has ended (exited or killed), through
/// interruptions.
fn reap(child: nix::unistd::Pid) -> nix::Result<nix::sys::wait::WaitStatus> {
    use nix::sys::wait::WaitStatus;
    loop {
        match nix::sys::wait::waitpid(child, None) {
            Err(nix::errno::Errno::EINTR)
            | Ok(WaitStatus::Stopped(..) | WaitStatus::Continued(..)) => {}
            ended => return ended,
        }
    }
}

/// What a stage that ended without answering came to: how it ended, for
/// the caller to see.
fn ended_without_a_result(status: nix::Result<nix::sys::wait::WaitStatus>) -> Outcome {
    use nix::sys::wait::WaitStatus;
    let how = match status {
        Ok(WaitStatus::Exited(_, code)) => format!("exit status: {code}"),
        Ok(WaitStatus::Signaled(_, signal, _)) => format!("killed by {signal}"),
        Ok(status) => format!("{status:?}"),
        Err(e) => e.to_string(),
    };
    Outcome::Finished {
        exit_code: None,
        stdout: String::new(),
        stderr: format!("[sandbox ended without a result: {how}]"),
        timed_out: false,
    }
}

/// An outcome as one line of JSON.
fn encode(outcome: &Outcome) -> String {
    serde_json::to_string(outcome).unwrap_or_else(|e| {
        format!(r#"{{"setup_failed":{{"layer":null,"message":"cannot encode the outcome: {e}"}}}}"#)
    })
}

fn report(outcome: &Outcome) -> i32 {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", encode(outcome));
    let _ = out.flush();
    match outcome {
        Outcome::SetupFailed { .. } => EXIT_SETUP_FAILED,
        _ => 0,
    }
}
