//! Each containment layer as one function that either holds or says why
//! not. The stages decide what a failure means (fatal when required,
//! reported when probing).

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, AccessNet, LandlockStatus, NetPort, PathBeneath, PathFd, Ruleset,
    RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
};
use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use nix::sys::resource::{Resource, setrlimit};
use nix::unistd::{Gid, Uid};

use crate::sandbox::{Identity, Layer};

/// A layer that did not hold, and why.
pub type Failed = (Layer, String);

/// Drops a root caller to the unprivileged identity, for good.
pub fn drop_identity(identity: Identity) -> Result<(), String> {
    let (uid, gid) = (Uid::from_raw(identity.uid), Gid::from_raw(identity.gid));
    nix::unistd::setgroups(&[gid]).map_err(|e| format!("setgroups: {e}"))?;
    nix::unistd::setresgid(gid, gid, gid).map_err(|e| format!("setresgid({gid}): {e}"))?;
    nix::unistd::setresuid(uid, uid, uid).map_err(|e| format!("setresuid({uid}): {e}"))?;
    if nix::unistd::setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0)).is_ok() {
        return Err("could regain root after dropping it".into());
    }
    // Changing identity made the process non-dumpable, which hands its
    // /proc/self files to root; the user namespace maps must be written.
    nix::sys::prctl::set_dumpable(true).map_err(|e| format!("set_dumpable: {e}"))
}

/// New user and mount namespaces, with this process's own (unprivileged)
/// identity mapped. (PID namespaces come later, in a process that needs no
/// threads: a process that unshares one can no longer create threads.)
pub fn enter_user_namespace() -> Result<(), String> {
    let (uid, gid) = (nix::unistd::geteuid(), nix::unistd::getegid());
    let flags = CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS;
    nix::sched::unshare(flags).map_err(|e| format!("unshare(user, mount): {e}"))?;
    let write = |file: &str, text: String| {
        std::fs::write(format!("/proc/self/{file}"), text).map_err(|e| format!("{file}: {e}"))
    };
    write("setgroups", "deny".into())?;
    write("uid_map", format!("{uid} {uid} 1"))?;
    write("gid_map", format!("{gid} {gid} 1"))?;
    Ok(())
}

/// Capabilities the inner stage needs to set itself up (mounts, loopback,
/// a service port below 1024, dropping the bounding set). The outer stage holds every capability in
/// the new user namespace, but an unprivileged identity loses them at exec
/// unless they are ambient; the inner stage drops them all before the op.
pub fn pass_setup_capabilities() -> Result<(), String> {
    use caps::{CapSet, Capability};
    for cap in [
        Capability::CAP_SYS_ADMIN,
        Capability::CAP_NET_ADMIN,
        Capability::CAP_NET_BIND_SERVICE,
        Capability::CAP_SETPCAP,
    ] {
        caps::raise(None, CapSet::Inheritable, cap)
            .and_then(|()| caps::raise(None, CapSet::Ambient, cap))
            .map_err(|e| format!("passing {cap} to the inner stage: {e}"))?;
    }
    Ok(())
}

/// New PID, network, UTS and IPC namespaces for this process's children.
pub fn enter_process_namespaces() -> Result<(), String> {
    let flags = CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC;
    nix::sched::unshare(flags).map_err(|e| format!("unshare(pid, net, uts, ipc): {e}"))
}

/// Directories that get an empty private tmpfs: scratch space and the
/// places where other programs' unix sockets live.
const PRIVATE_DIRS: &[&str] = &["/tmp", "/var/tmp", "/run", "/dev/shm"];

/// A private view of the filesystem: mounts stay in this namespace, the
/// scratch directories are empty tmpfs, the root stays where it was, and
/// (as PID 1) /proc shows only this namespace's processes.
pub fn private_mounts(root: &Path, own_proc: bool) -> Result<(), String> {
    let none: Option<&str> = None;
    nix::mount::mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)
        .map_err(|e| format!("making mounts private: {e}"))?;
    // Kept open so the root can be bound back if a tmpfs hides it.
    let root_dir =
        std::fs::File::open(root).map_err(|e| format!("open {}: {e}", root.display()))?;
    for dir in PRIVATE_DIRS {
        let path = Path::new(dir);
        if !path.symlink_metadata().is_ok_and(|m| m.is_dir()) {
            continue;
        }
        let mode = if *dir == "/run" { "0755" } else { "1777" };
        nix::mount::mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(format!("size=16m,mode={mode}").as_str()),
        )
        .map_err(|e| format!("tmpfs on {dir}: {e}"))?;
        if root.starts_with(path) {
            std::fs::create_dir_all(root).map_err(|e| format!("mkdir {}: {e}", root.display()))?;
            let source = format!("/proc/self/fd/{}", root_dir.as_raw_fd());
            nix::mount::mount(
                Some(source.as_str()),
                root,
                none,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                none,
            )
            .map_err(|e| format!("binding {} back: {e}", root.display()))?;
        }
    }
    if own_proc {
        nix::mount::mount(
            Some("proc"),
            "/proc",
            Some("proc"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            none,
        )
        .map_err(|e| format!("mounting /proc: {e}"))?;
    }
    Ok(())
}

/// Limits no command may pass: processes, file size, open files, memory.
pub fn resource_limits() -> Result<(), String> {
    let limits = [
        (Resource::RLIMIT_NPROC, 4096),
        (Resource::RLIMIT_FSIZE, 256 << 20),
        (Resource::RLIMIT_NOFILE, 1024),
        (Resource::RLIMIT_CORE, 0),
        (Resource::RLIMIT_AS, 4 << 30),
    ];
    for (resource, limit) in limits {
        setrlimit(resource, limit, limit).map_err(|e| format!("setrlimit {resource:?}: {e}"))?;
    }
    Ok(())
}

/// Files and directories every command may read (and execute from the
/// system directories): the programs and libraries, the few /etc files
/// they look up, and harmless devices. Nothing else outside the root.
const READABLE: &[&str] = &[
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc/alternatives",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/hosts",
    "/etc/host.conf",
    "/etc/localtime",
    "/etc/timezone",
    "/etc/os-release",
    "/etc/debian_version",
    "/etc/services",
    "/etc/protocols",
    "/etc/mime.types",
    "/etc/terminfo",
    "/etc/inputrc",
    "/etc/locale.alias",
    "/proc",
];

/// Devices a command may read and write (redirections to /dev/null).
const DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
];

/// Which Landlock layers held.
pub struct LandlockResult {
    pub held: Vec<Layer>,
    pub failed: Vec<Failed>,
}

/// Applies Landlock to this thread and its future children: write only in
/// `writable`, read only the system and `writable`, connect only to the
/// service port, no signals or abstract sockets outside.
pub fn landlock(writable: &[PathBuf], service: SocketAddr) -> Result<LandlockResult, String> {
    let abi = ABI::V7;
    let existing = |paths: &[&str]| -> Vec<PathBuf> {
        paths
            .iter()
            .map(PathBuf::from)
            .filter(|p| p.exists())
            .collect()
    };
    let rules = |paths: Vec<PathBuf>, access| {
        paths.into_iter().filter_map(move |path| {
            PathFd::new(&path)
                .ok()
                .map(|fd| PathBeneath::new(fd, access))
        })
    };
    let writable_access = AccessFs::from_all(abi) & !AccessFs::Execute;
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.handle_access(AccessNet::from_all(abi)))
        .and_then(|r| r.scope(Scope::from_all(abi)))
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(rules(existing(READABLE), AccessFs::from_read(abi)).map(Ok)))
        .and_then(|r| {
            r.add_rules(rules(existing(DEVICES), AccessFs::ReadFile | AccessFs::WriteFile).map(Ok))
        })
        .and_then(|r| r.add_rules(rules(writable.to_vec(), writable_access).map(Ok)))
        .and_then(|r| r.add_rule(NetPort::new(service.port(), AccessNet::ConnectTcp)))
        .and_then(|r| r.restrict_self())
        .map_err(|e| format!("landlock: {e}"))?;
    let abi = match status.landlock {
        LandlockStatus::Available { effective_abi, .. } => effective_abi,
        other => return Err(format!("landlock is not available: {other:?}")),
    };
    let mut result = LandlockResult {
        held: Vec::new(),
        failed: Vec::new(),
    };
    if status.ruleset == RulesetStatus::NotEnforced {
        return Err("landlock: the ruleset is not enforced".into());
    }
    result.held.push(Layer::LandlockFs);
    let mut need = |layer: Layer, since: ABI, what: &str| {
        if abi >= since {
            result.held.push(layer);
        } else {
            result.failed.push((
                layer,
                format!("{what} needs landlock {since:?}, kernel has {abi:?}"),
            ));
        }
    };
    need(Layer::LandlockNet, ABI::V4, "TCP rules");
    need(Layer::LandlockScope, ABI::V6, "signal and socket scoping");
    if !status.no_new_privs {
        return Err("landlock: no_new_privs could not be set".into());
    }
    Ok(result)
}

/// Drops every capability this process holds (it holds all of them in its
/// own user namespace), so the op runs with none.
pub fn drop_capabilities() -> Result<(), String> {
    use caps::CapSet;
    for cap in caps::all() {
        // Not all may be in the bounding set; what is left is dropped below.
        let _ = caps::drop(None, CapSet::Bounding, cap);
    }
    for set in [
        CapSet::Ambient,
        CapSet::Inheritable,
        CapSet::Effective,
        CapSet::Permitted,
    ] {
        caps::clear(None, set).map_err(|e| format!("clearing {set:?} capabilities: {e}"))?;
    }
    Ok(())
}
