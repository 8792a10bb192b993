//! What a waiting write would change, for the person asked to approve it:
//! the file as it is (read beneath the root by the kernel's rules, never
//! through a symlink, redacted like anything the agent sees) against what
//! the agent would write, as a bounded unified diff. Nothing here runs an
//! action; it reads one regular file.

use std::io::Read;
use std::os::fd::AsFd;
use std::path::Path;

use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::Mode;

/// The largest file a preview reads.
pub const MAX_PREVIEW_BYTES: u64 = 256 * 1024;
/// The most diff lines a preview keeps.
pub const MAX_DIFF_LINES: usize = 200;
/// The most characters a preview keeps (status holds it).
pub const MAX_DIFF_CHARS: usize = 8000;
/// How long the diff may take; past it, a coarser diff is given.
const DIFF_DEADLINE: std::time::Duration = std::time::Duration::from_millis(500);

/// The file at `path` under `root` as text, or None when there is none.
/// The kernel resolves it beneath `root` with no symlink, `..` escape or
/// magic link followed; anything else (a directory, a device, too big,
/// not UTF-8) is an error that says so.
pub fn read_beneath(root: &Path, path: &str) -> Result<Option<String>, String> {
    let relative = path.trim_start_matches("./");
    if relative.is_empty() || Path::new(relative).is_absolute() {
        return Err(format!("{path}: not a path inside the service root"));
    }
    if relative.contains("<secret:") {
        return Err("the path holds a secret handle".into());
    }
    let root = std::fs::File::open(root).map_err(|e| format!("the root: {e}"))?;
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)
        .mode(Mode::empty())
        .resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_MAGICLINKS
                | ResolveFlag::RESOLVE_NO_XDEV,
        );
    let fd = match openat2(root.as_fd(), relative, how) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => return Ok(None),
        Err(e) => {
            return Err(format!(
                "{path}: {e} (only a regular file inside the root, reached without a symlink)"
            ));
        }
    };
    let mut file = std::fs::File::from(fd);
    let meta = file.metadata().map_err(|e| format!("{path}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{path}: not a regular file"));
    }
    if meta.len() > MAX_PREVIEW_BYTES {
        return Err(format!(
            "{path}: {} bytes, over the preview's {MAX_PREVIEW_BYTES}",
            meta.len()
        ));
    }
    let mut bytes = Vec::new();
    file.by_ref()
        .take(MAX_PREVIEW_BYTES)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{path}: {e}"))?;
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| format!("{path}: not UTF-8 text"))
}

/// A unified diff of `old` (None: the file is new) to `new`, at most
/// [`MAX_DIFF_LINES`] lines, saying how many more there were.
pub fn unified(path: &str, old: Option<&str>, new: &str) -> String {
    let before = old.unwrap_or("");
    let diff = similar::TextDiff::configure()
        .timeout(DIFF_DEADLINE)
        .diff_lines(before, new);
    let text = diff
        .unified_diff()
        .context_radius(3)
        .header(
            &if old.is_some() {
                format!("a/{path}")
            } else {
                "/dev/null".to_string()
            },
            &format!("b/{path}"),
        )
        .to_string();
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return format!("{path}: no change");
    }
    let mut kept = lines[..lines.len().min(MAX_DIFF_LINES)].join("\n");
    if lines.len() > MAX_DIFF_LINES {
        kept.push_str(&format!(
            "\n... {} more lines",
            lines.len() - MAX_DIFF_LINES
        ));
    }
    if kept.chars().count() > MAX_DIFF_CHARS {
        kept = crate::action::truncate_chars(&kept, MAX_DIFF_CHARS);
        kept.push_str("\n... the rest of the diff is cut");
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("service.conf"),
            "port = 8080\nmode = safe\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        dir
    }

    #[test]
    fn a_change_and_a_new_file_are_diffs() {
        let dir = root();
        let old = read_beneath(dir.path(), "service.conf").unwrap();
        let diff = unified("service.conf", old.as_deref(), "port = 8081\nmode = safe\n");
        assert!(
            diff.contains("-port = 8080") && diff.contains("+port = 8081"),
            "{diff}"
        );
        assert!(diff.starts_with("--- a/service.conf"), "{diff}");
        assert_eq!(read_beneath(dir.path(), "new.flag").unwrap(), None);
        let diff = unified("new.flag", None, "ready\n");
        assert!(
            diff.starts_with("--- /dev/null") && diff.contains("+ready"),
            "{diff}"
        );
        assert_eq!(unified("same", Some("a\n"), "a\n"), "same: no change");
    }

    #[test]
    fn nothing_outside_the_root_or_behind_a_symlink_is_read() {
        let dir = root();
        let outside = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(outside.path(), "TOP SECRET\n").unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        std::os::unix::fs::symlink("/", dir.path().join("slash")).unwrap();
        let escape = format!(
            "../{}",
            outside.path().file_name().unwrap().to_string_lossy()
        );
        for path in [
            "link",
            "slash/etc/passwd",
            escape.as_str(),
            "sub/../../x",
            "/etc/passwd",
            "sub",
            "/proc/self/environ",
        ] {
            let read = read_beneath(dir.path(), path);
            assert!(
                read.as_ref().is_err() || read.as_ref().is_ok_and(|r| r.is_none()),
                "{path}: {read:?}"
            );
            assert!(!format!("{read:?}").contains("TOP SECRET"));
        }
    }

    #[test]
    fn a_long_diff_is_cut_and_says_so() {
        let new: String = (0..500).map(|i| format!("line {i}\n")).collect();
        let diff = unified("big", None, &new);
        assert_eq!(diff.lines().count(), MAX_DIFF_LINES + 1);
        assert!(diff.ends_with("more lines"), "{diff}");
        let wide = unified("wide", None, &"x".repeat(100_000));
        assert!(
            wide.chars().count() < MAX_DIFF_CHARS + 100,
            "{}",
            wide.len()
        );
        assert!(wide.ends_with("is cut"));
        let dir = root();
        assert!(read_beneath(dir.path(), "<secret:ab12:1>/x").is_err());
    }
}
