//! A read-only view of everything but the incident's root, in the
//! sandbox's mount namespace. Landlock guards what a command may open,
//! not a file's metadata: without this a command could `chmod`, `touch`
//! or set extended attributes on files outside the root that its identity
//! owns (every local incident's root has the same owner) or that anyone
//! may write. On a read-only mount the kernel refuses all of them.
//!
//! The pseudo-filesystems stay as they are: `/proc` is replaced by the
//! sandbox's own, and what a command could change under `/sys` and `/dev`
//! belongs to root. The scratch directories are mounted afterwards, as
//! fresh tmpfs.

use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::MsFlags;

/// Where the pseudo-filesystems are mounted.
const LEFT_AS_THEY_ARE: [&str; 3] = ["/proc", "/sys", "/dev"];

/// Binds the root onto itself (so it stays writable), then remounts every
/// other mount read-only, keeping its other flags (a mount inherited from
/// a more privileged namespace must keep them).
pub fn everything_but(root: &Path) -> Result<(), String> {
    let none: Option<&str> = None;
    nix::mount::mount(
        Some(root),
        root,
        none,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        none,
    )
    .map_err(|e| format!("binding {} onto itself: {e}", root.display()))?;
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("reading the mount table: {e}"))?;
    for (point, flags) in mounts(&info) {
        if point.starts_with(root) || LEFT_AS_THEY_ARE.iter().any(|p| point.starts_with(p)) {
            continue;
        }
        let remount = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | flags;
        match nix::mount::mount(none, &point, none, remount, none) {
            Ok(()) => {}
            // Out of this identity's reach anyway, or gone meanwhile.
            Err(Errno::EACCES | Errno::ENOENT | Errno::ENOTDIR) => {}
            Err(e) => return Err(format!("read-only {}: {e}", point.display())),
        }
    }
    Ok(())
}

/// Each mount point of a mount table (`/proc/self/mountinfo`) with the
/// per-mount flags a remount must keep.
fn mounts(info: &str) -> Vec<(PathBuf, MsFlags)> {
    info.lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let point = fields.nth(4)?;
            let options = fields.next()?;
            Some((PathBuf::from(unescape(point)), kept_flags(options)))
        })
        .collect()
}

/// The per-mount options (`rw,nosuid,nodev,relatime`) as flags, read-only
/// aside; no atime option means strict atime.
fn kept_flags(options: &str) -> MsFlags {
    let mut flags = MsFlags::empty();
    let mut atime = MsFlags::MS_STRICTATIME;
    for option in options.split(',') {
        match option {
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            "nodiratime" => flags |= MsFlags::MS_NODIRATIME,
            "noatime" => atime = MsFlags::MS_NOATIME,
            "relatime" => atime = MsFlags::MS_RELATIME,
            _ => {}
        }
    }
    flags | atime
}

/// A mount point as the table writes it, with `\040`-style octal escapes
/// for space, tab, newline and backslash.
fn unescape(point: &str) -> String {
    let bytes = point.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal.and_then(|d| u8::from_str_radix(std::str::from_utf8(d).ok()?, 8).ok()) {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mount_table_gives_each_point_and_the_flags_to_keep() {
        let info = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n\
30 22 0:26 / /run/user\\0401000 rw,nosuid,nodev,noexec,noatime - tmpfs tmpfs rw\n\
31 22 0:27 / /mnt ro,nodiratime - ext4 /dev/vdb ro\n";
        let found = mounts(info);
        assert_eq!(
            found,
            vec![
                (PathBuf::from("/"), MsFlags::MS_RELATIME),
                (
                    PathBuf::from("/run/user 1000"),
                    MsFlags::MS_NOSUID
                        | MsFlags::MS_NODEV
                        | MsFlags::MS_NOEXEC
                        | MsFlags::MS_NOATIME
                ),
                (
                    PathBuf::from("/mnt"),
                    MsFlags::MS_NODIRATIME | MsFlags::MS_STRICTATIME
                ),
            ]
        );
    }

    #[test]
    fn escapes_become_the_bytes_they_stand_for() {
        assert_eq!(unescape(r"/a\040b\011c\134d"), "/a b\tc\\d");
        assert_eq!(unescape(r"/plain\09"), r"/plain\09");
    }
}
