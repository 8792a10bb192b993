//! The middle stage, forked by the outer one: creates the PID, network,
//! UTS and IPC namespaces and forks the inner stage as their PID 1, then
//! waits. It starts no thread (it could not), opens nothing and reads
//! nothing: the link on its stdin belongs to the inner stage, which it
//! hands on as the only descriptors it has (stdin, stdout, stderr; the
//! outer stage closed the others in it).

use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use nix::unistd::ForkResult;

use super::{Stage, layers, report, setup_failed};
use crate::sandbox::Layer;

pub fn run(namespaces: bool) -> i32 {
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    if namespaces && let Err(reason) = layers::enter_process_namespaces() {
        return report(&setup_failed(Some(Layer::Pidns), reason));
    }
    if !super::single_threaded() {
        return report(&setup_failed(
            None,
            "the middle stage forks, so it must have one thread".into(),
        ));
    }
    // SAFETY: this process has one thread (checked above), so the child
    // may run any code: no lock another thread held at the fork stays held
    // in it. The child is the inner stage, as if started afresh (this
    // process set nothing up that it would not).
    #[allow(unsafe_code)]
    let forked = unsafe { nix::unistd::fork() };
    let inner = match forked {
        Ok(ForkResult::Child) => super::in_forked_child(|| super::main(Stage::Inner)),
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => {
            return report(&setup_failed(
                None,
                format!("cannot start the inner stage: fork: {e}"),
            ));
        }
    };
    match super::reap(inner) {
        Ok(WaitStatus::Exited(_, code)) => code,
        Ok(WaitStatus::Signaled(_, signal, _)) => 128 + signal as i32,
        _ => 137,
    }
}
