//! The middle stage: creates the PID, network, UTS and IPC namespaces and
//! starts the inner stage as their PID 1, then waits. It starts no thread
//! (it could not) and reads nothing: the link on its stdin belongs to the
//! inner stage.

use std::process::Stdio;

use nix::sys::signal::Signal;

use super::{Stage, layers, report, setup_failed};
use crate::sandbox::Layer;

pub fn run(namespaces: bool) -> i32 {
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    if namespaces && let Err(reason) = layers::enter_process_namespaces() {
        return report(&setup_failed(Some(Layer::Pidns), reason));
    }
    let spawned = Stage::Inner
        .command("/proc/self/exe")
        .stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status();
    match spawned {
        Ok(status) => status.code().unwrap_or(137),
        Err(e) => report(&setup_failed(
            None,
            format!("cannot start the inner stage: {e}"),
        )),
    }
}
