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
    nix::sched::unshare(flags).map_err(|e| {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let restrict =
            std::fs::read_to_string("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
                .unwrap_or_default();
        format!(
            "unshare(user, mount): {e}{}",
            userns_refused_hint(e, &status, restrict.trim())
        )
    })?;
    let write = |file: &str, text: String| {
        std::fs::write(format!("/proc/self/{file}"), text).map_err(|e| format!("{file}: {e}"))
    };
    write("setgroups", "deny".into())?;
    write("uid_map", format!("{uid} {uid} 1"))?;
    write("gid_map", format!("{gid} {gid} 1"))?;
    Ok(())
}

/// What this process can see about why the kernel refused a user
/// namespace: a seccomp filter (a container runtime's RuntimeDefault
/// profile refuses `unshare` without CAP_SYS_ADMIN), AppArmor's
/// restriction, or the namespace limit.
fn userns_refused_hint(error: nix::errno::Errno, status: &str, apparmor_restrict: &str) -> String {
    use nix::errno::Errno;
    let filtered = status.lines().any(|l| {
        l.split_once(':')
            .is_some_and(|(k, v)| k == "Seccomp" && v.trim() == "2")
    });
    match error {
        Errno::EPERM if filtered => "; a seccomp filter is in force (Seccomp: 2 in \
             /proc/self/status), as under a container runtime's RuntimeDefault profile, \
             which refuses unshare without CAP_SYS_ADMIN"
            .into(),
        Errno::EPERM | Errno::EACCES if apparmor_restrict == "1" => {
            "; kernel.apparmor_restrict_unprivileged_userns is 1".into()
        }
        Errno::ENOSPC => "; user.max_user_namespaces is reached (or 0)".into(),
        _ => String::new(),
    }
}

/// Capabilities the inner stage needs to set itself up (mounts, loopback,
/// a service port below 1024, dropping the bounding set).
const SETUP_CAPABILITIES: [caps::Capability; 4] = [
    caps::Capability::CAP_SYS_ADMIN,
    caps::Capability::CAP_NET_ADMIN,
    caps::Capability::CAP_NET_BIND_SERVICE,
    caps::Capability::CAP_SETPCAP,
];

/// Keeps only the setup capabilities of all those the outer stage holds in
/// its new user namespace: the stages it forks inherit no more, and ones
/// started afresh (a warm sandbox's op stage, after the inner stage has
/// threads) get them as ambient. The inner stage drops them all before
/// the op.
pub fn pass_setup_capabilities() -> Result<(), String> {
    use caps::CapSet;
    for cap in SETUP_CAPABILITIES {
        caps::raise(None, CapSet::Inheritable, cap)
            .and_then(|()| caps::raise(None, CapSet::Ambient, cap))
            .map_err(|e| format!("passing {cap} to the inner stage: {e}"))?;
    }
    let setup: caps::CapsHashSet = SETUP_CAPABILITIES.into_iter().collect();
    caps::set(None, CapSet::Effective, &setup)
        .and_then(|()| caps::set(None, CapSet::Permitted, &setup))
        .map_err(|e| format!("keeping only the setup capabilities: {e}"))
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

/// Mounts made from here on stay in this namespace (they would anyway: a
/// mount namespace owned by a new user namespace only receives).
fn private_propagation() -> Result<(), String> {
    let none: Option<&str> = None;
    nix::mount::mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)
        .map_err(|e| format!("making mounts private: {e}"))
}

/// A private view of the filesystem: mounts stay in this namespace,
/// everything but the root is read-only, the scratch directories are
/// empty tmpfs, the root stays where it was.
pub fn private_mounts(root: &Path) -> Result<(), String> {
    private_propagation()?;
    super::read_only::everything_but(root)?;
    for dir in PRIVATE_DIRS {
        empty_dir(dir, root)?;
    }
    Ok(())
}

/// A fresh, empty /tmp for one op of a warm sandbox, in the mount
/// namespace the op stage just made (a copy of one whose mounts are
/// private already); the other scratch directories are the sandbox's,
/// which no op may write.
pub fn fresh_tmp(root: &Path) -> Result<(), String> {
    empty_dir("/tmp", root)
}

/// An empty tmpfs on `dir` (if it is a directory), with the root bound
/// back if the tmpfs hides it.
fn empty_dir(dir: &str, root: &Path) -> Result<(), String> {
    let none: Option<&str> = None;
    let path = Path::new(dir);
    if !path.symlink_metadata().is_ok_and(|m| m.is_dir()) {
        return Ok(());
    }
    // Kept open so the root can be bound back if the tmpfs hides it.
    let root_dir =
        std::fs::File::open(root).map_err(|e| format!("open {}: {e}", root.display()))?;
    let mode = if dir == "/run" { "0755" } else { "1777" };
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
    Ok(())
}

/// The PID namespace's own /proc, which shows only its processes. Called
/// as PID 1 of that namespace, in the mount namespace the outer stage made.
///
/// The kernel refuses a new procfs in a user namespace while the /proc it
/// could already see has paths mounted over it (`mount_too_revealing`):
/// a container runtime's masked /proc (`/proc/keys`, `/proc/timer_list`,
/// ... under /dev/null or an empty tmpfs). Then the command still runs in
/// the PID namespace, which keeps signals in and kills what is left, but
/// /proc lists the container's processes, so the layer is not claimed.
pub fn private_proc() -> Result<(), String> {
    private_propagation()?;
    mount_proc().map_err(|e| {
        let over = std::fs::read_to_string("/proc/self/mountinfo")
            .map(|info| mounts_over_proc(&info))
            .unwrap_or_default();
        proc_refused(e, &over)
    })
}

/// A /proc for one op of a warm sandbox, as PID 1 of the op's own PID
/// namespace, in the mount namespace it just made (a copy of one where
/// [`private_proc`] held, so the kernel allows it): it lists only the op's
/// processes.
pub fn fresh_proc() -> Result<(), String> {
    mount_proc().map_err(|e| format!("no /proc of the op's own: mount(proc): {e}"))
}

/// A new procfs on /proc, for the PID namespace of the caller.
fn mount_proc() -> nix::Result<()> {
    let none: Option<&str> = None;
    nix::mount::mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        none,
    )
}

/// Why a private /proc could not be mounted, in words an operator can act on.
fn proc_refused(error: nix::errno::Errno, over: &[String]) -> String {
    let mut reason = format!("no private /proc: mount(proc): {error}");
    if error == nix::errno::Errno::EPERM && !over.is_empty() {
        const SHOWN: usize = 4;
        let mut listed = over
            .iter()
            .take(SHOWN)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if over.len() > SHOWN {
            listed.push_str(&format!(" and {} more", over.len() - SHOWN));
        }
        reason.push_str(&format!(
            "; the kernel refuses a new /proc in a user namespace while paths of the existing \
             one are mounted over ({listed}: a container runtime's masked /proc; \
             procMount: Unmasked, which needs hostUsers: false, lifts it)"
        ));
    }
    reason.push_str(
        "; commands still run in a PID namespace (no signals out, nothing outlives them), \
         but /proc shows the processes outside it",
    );
    reason
}

/// The mount points below /proc in `/proc/self/mountinfo` (the fifth
/// field; octal escapes such as `\040` left as they are).
fn mounts_over_proc(mountinfo: &str) -> Vec<String> {
    let mut over: Vec<String> = Vec::new();
    for point in mountinfo.lines().filter_map(|line| line.split(' ').nth(4)) {
        if point.starts_with("/proc/") && !over.iter().any(|o| o == point) {
            over.push(point.to_string());
        }
    }
    over
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

#[cfg(test)]
mod tests {
    use nix::errno::Errno;

    use super::*;

    /// /proc/self/mountinfo in a runc container (trimmed), with the
    /// runtime's default masked and read-only paths.
    const RUNC_MOUNTINFO: &str = "\
612 540 0:58 / / ro,relatime - overlay overlay rw
613 612 0:61 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
614 612 0:62 / /dev rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755
541 613 0:61 /bus /proc/bus ro,nosuid,nodev,noexec,relatime - proc proc rw
542 613 0:61 /fs /proc/fs ro,nosuid,nodev,noexec,relatime - proc proc rw
543 613 0:61 /irq /proc/irq ro,nosuid,nodev,noexec,relatime - proc proc rw
544 613 0:61 /sys /proc/sys ro,nosuid,nodev,noexec,relatime - proc proc rw
546 613 0:66 / /proc/acpi ro,relatime - tmpfs tmpfs ro
547 613 0:62 /null /proc/kcore rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755
548 613 0:62 /null /proc/keys rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755
549 613 0:62 /null /proc/timer_list rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755
551 613 0:67 / /proc/scsi ro,relatime - tmpfs tmpfs ro
552 616 0:68 / /sys/firmware ro,relatime - tmpfs tmpfs ro
";

    #[test]
    fn the_paths_a_runtime_masks_are_found_in_mountinfo() {
        assert_eq!(
            mounts_over_proc(RUNC_MOUNTINFO),
            [
                "/proc/bus",
                "/proc/fs",
                "/proc/irq",
                "/proc/sys",
                "/proc/acpi",
                "/proc/kcore",
                "/proc/keys",
                "/proc/timer_list",
                "/proc/scsi"
            ]
        );
        assert!(mounts_over_proc("22 1 0:21 / /proc rw - proc proc rw\n").is_empty());
    }

    #[test]
    fn a_refused_proc_says_why_and_what_still_holds() {
        let over = mounts_over_proc(RUNC_MOUNTINFO);
        let reason = proc_refused(Errno::EPERM, &over);
        assert!(
            reason.starts_with("no private /proc: mount(proc): EPERM"),
            "{reason}"
        );
        assert!(
            reason.contains("(/proc/bus, /proc/fs, /proc/irq, /proc/sys and 5 more"),
            "{reason}"
        );
        assert!(reason.contains("procMount: Unmasked"), "{reason}");
        assert!(
            reason.contains("/proc shows the processes outside it"),
            "{reason}"
        );
        // Another refusal is not blamed on masking.
        let other = proc_refused(Errno::EACCES, &over);
        assert!(!other.contains("procMount"), "{other}");
        assert!(!proc_refused(Errno::EPERM, &[]).contains("procMount"));
    }

    #[test]
    fn a_refused_user_namespace_names_what_is_visible() {
        let filtered = "Name:\tremediator\nNoNewPrivs:\t1\nSeccomp:\t2\nSeccomp_filters:\t1\n";
        let open = "Name:\tremediator\nSeccomp:\t0\n";
        assert!(userns_refused_hint(Errno::EPERM, filtered, "").contains("RuntimeDefault"));
        assert_eq!(userns_refused_hint(Errno::EPERM, open, "0"), "");
        assert!(userns_refused_hint(Errno::EPERM, open, "1").contains("apparmor"));
        assert!(userns_refused_hint(Errno::ENOSPC, open, "").contains("max_user_namespaces"));
    }
}
