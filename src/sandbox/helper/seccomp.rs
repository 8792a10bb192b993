//! A seccomp filter for the commands of a sandbox: the calls that reach
//! past what its namespaces and Landlock guard:
//!
//! - `socket` of any family but IPv4, IPv6 and netlink: Landlock does not
//!   guard connecting to a Unix socket by its path (any daemon's socket
//!   the identity may write would be a way out, a red-team review connected
//!   to one), and a network namespace does not separate VM sockets
//!   (AF_VSOCK); `socketpair` stays, which reaches nothing;
//! - io_uring, which makes and connects sockets without that call;
//! - `prlimit64` on another process: the same uid may lower PID 1's
//!   limits and so break every later op (on itself, pid 0, it is allowed);
//! - `add_key`, `request_key`, `keyctl`: the user keyring is shared by
//!   every op of the sandbox.
//!
//! Everything else is allowed. A call from another architecture's ABI is
//! refused by the filter's architecture check (`seccompiler`'s); on
//! x86_64, whose x32 calls pass that check with their own numbers (the
//! same ones with bit 30 set), those numbers are refused the same way.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// Socket families a command may create.
const FAMILIES: [i32; 3] = [
    nix::libc::AF_INET,
    nix::libc::AF_INET6,
    nix::libc::AF_NETLINK,
];

/// Bit 30 of an x32 system call's number (`__X32_SYSCALL_BIT`).
const X32_SYSCALL_BIT: i64 = 0x4000_0000;

fn filter() -> Result<BpfProgram, String> {
    let arch = TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|e| format!("seccomp on {}: {e}", std::env::consts::ARCH))?;
    let rule = |conditions: Result<Vec<SeccompCondition>, _>| {
        conditions
            .and_then(SeccompRule::new)
            .map_err(|e| format!("seccomp rule: {e}"))
    };
    let another_process = rule(
        SeccompCondition::new(0, SeccompCmpArgLen::Qword, SeccompCmpOp::Ne, 0).map(|c| vec![c]),
    )?;
    // One rule, its conditions all true: a family none of the allowed.
    let other_family = rule(
        FAMILIES
            .iter()
            .map(|family| {
                SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, *family as u64)
            })
            .collect(),
    )?;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::from([
        (nix::libc::SYS_socket, vec![other_family]),
        (nix::libc::SYS_prlimit64, vec![another_process]),
        // An empty list: refused whatever the arguments.
        // io_uring makes sockets (and connects them) without the socket
        // call this filter sees.
        (nix::libc::SYS_io_uring_setup, Vec::new()),
        (nix::libc::SYS_io_uring_enter, Vec::new()),
        (nix::libc::SYS_io_uring_register, Vec::new()),
        (nix::libc::SYS_add_key, Vec::new()),
        (nix::libc::SYS_request_key, Vec::new()),
        (nix::libc::SYS_keyctl, Vec::new()),
    ]);
    if arch == TargetArch::x86_64 {
        let x32: Vec<(i64, Vec<SeccompRule>)> = rules
            .iter()
            .map(|(number, rules)| (number | X32_SYSCALL_BIT, rules.clone()))
            .collect();
        rules.extend(x32);
    }
    SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(nix::libc::EPERM as u32),
        arch,
    )
    .and_then(BpfProgram::try_from)
    .map_err(|e| format!("seccomp filter: {e}"))
}

/// Installs the filter on this thread and its future children (needs
/// no_new_privs, which Landlock has set).
pub fn install() -> Result<(), String> {
    let program = filter()?;
    seccompiler::apply_filter(&program).map_err(|e| format!("seccomp filter: {e}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_filter_builds_for_this_architecture() {
        let program = super::filter().unwrap();
        assert!(program.len() > 8, "{}", program.len());
    }
}
