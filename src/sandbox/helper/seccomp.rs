//! A seccomp filter for the ops of a warm sandbox: the calls that reach
//! another process, or leave state for the next op in the kernel's
//! per-user tables, which a namespace shared across ops does not separate
//! and Landlock does not guard:
//!
//! - `prlimit64` on another process: the same uid may lower PID 1's
//!   limits and so break every later op (on itself, pid 0, it is allowed);
//! - `add_key`, `request_key`, `keyctl`: the user keyring is shared by
//!   every op of the sandbox.
//!
//! Everything else is allowed. A call from another architecture's ABI is
//! refused by the filter's architecture check (`seccompiler`'s).

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

fn filter() -> Result<BpfProgram, String> {
    let arch = TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|e| format!("seccomp on {}: {e}", std::env::consts::ARCH))?;
    let another_process = SeccompCondition::new(0, SeccompCmpArgLen::Qword, SeccompCmpOp::Ne, 0)
        .and_then(|other| SeccompRule::new(vec![other]))
        .map_err(|e| format!("seccomp rule: {e}"))?;
    let rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::from([
        (nix::libc::SYS_prlimit64, vec![another_process]),
        // An empty list: refused whatever the arguments.
        (nix::libc::SYS_add_key, Vec::new()),
        (nix::libc::SYS_request_key, Vec::new()),
        (nix::libc::SYS_keyctl, Vec::new()),
    ]);
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
