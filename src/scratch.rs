//! Scratch directories for incidents and probes under the system temp dir,
//! each marked with its owner (pid and process start time). A directory
//! whose owner is gone (a `remediator` killed with SIGKILL) is removed by
//! the next one to start ([`sweep_orphans`]).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::sandbox::Identity;

const PREFIX: &str = "remediator-";
const OWNER_FILE: &str = "owner";
const ROOT: &str = "root";
/// Marks a directory kept on purpose (`run --keep`): never swept.
pub const KEPT_FILE: &str = "kept";

/// A directory `remediator-XXXX/` holding an incident's `root/` (owned by
/// the sandbox identity, when there is one) and files only remediator sees.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
    removed: bool,
}

impl ScratchDir {
    pub fn create(identity: Option<Identity>) -> std::io::Result<Self> {
        let path = tempfile::Builder::new().prefix(PREFIX).tempdir()?.keep();
        let dir = Self {
            path,
            removed: false,
        };
        std::fs::write(dir.path.join(OWNER_FILE), owner_mark(std::process::id()))?;
        // Others may pass through to the root, not list or read the rest.
        std::fs::set_permissions(&dir.path, std::fs::Permissions::from_mode(0o711))?;
        let root = dir.root();
        std::fs::create_dir(&root)?;
        if let Some(identity) = identity {
            nix::unistd::chown(
                &root,
                Some(nix::unistd::Uid::from_raw(identity.uid)),
                Some(nix::unistd::Gid::from_raw(identity.gid)),
            )
            .map_err(std::io::Error::from)?;
        }
        Ok(dir)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the service lives and the agent works.
    pub fn root(&self) -> PathBuf {
        self.path.join(ROOT)
    }

    /// Keeps the directory for a person (and `remediator undo`): it is
    /// never removed, by this process or by a later sweep.
    pub fn keep(mut self, incident: &str) -> std::io::Result<PathBuf> {
        std::fs::write(self.path.join(KEPT_FILE), incident)?;
        self.removed = true;
        Ok(self.path.clone())
    }

    /// Removes the directory off the async workers.
    pub async fn remove(mut self) {
        self.removed = true;
        let path = self.path.clone();
        let _ = tokio::task::spawn_blocking(move || remove_tree(&path)).await;
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if !self.removed {
            let _ = remove_tree(&self.path);
        }
    }
}

/// `<pid> <start time in clock ticks>`: a pid alone may be reused.
fn owner_mark(pid: u32) -> String {
    format!("{pid} {}", start_time(pid).unwrap_or(0))
}

fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..]
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

fn owner_alive(mark: &str) -> bool {
    let mut parts = mark.split_whitespace();
    let (Some(pid), Some(started)) = (
        parts.next().and_then(|p| p.parse::<u32>().ok()),
        parts.next().and_then(|s| s.parse::<u64>().ok()),
    ) else {
        return false;
    };
    start_time(pid) == Some(started)
}

/// Removes a tree even where a fault took write access away (a `0555`
/// data directory), which would stop `remove_dir_all` for a non-root user.
pub fn remove_tree(path: &Path) -> std::io::Result<()> {
    fn open_up(dir: &Path) {
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    open_up(&entry.path());
                }
            }
        }
    }
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) => {
            open_up(path);
            std::fs::remove_dir_all(path)
        }
    }
}

/// Kept incident directories (`run --keep`), newest first, with the
/// incident name each holds.
pub fn kept() -> Vec<(PathBuf, String)> {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return Vec::new();
    };
    let mut found: Vec<(std::time::SystemTime, PathBuf, String)> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(PREFIX))
        .filter_map(|e| {
            let marker = e.path().join(KEPT_FILE);
            let name = std::fs::read_to_string(&marker).ok()?;
            let when = std::fs::metadata(&marker).and_then(|m| m.modified()).ok()?;
            Some((when, e.path(), name.trim().to_string()))
        })
        .collect();
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    found
        .into_iter()
        .map(|(_, path, name)| (path, name))
        .collect()
}

/// Removes scratch directories whose owner process is gone; returns them.
pub fn sweep_orphans() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(PREFIX))
        .map(|e| e.path())
        .filter(|path| !path.join(KEPT_FILE).exists())
        .filter(|path| {
            // A directory without an owner mark is not one of ours, or is
            // being created right now: leave it.
            std::fs::read_to_string(path.join(OWNER_FILE)).is_ok_and(|mark| !owner_alive(&mark))
        })
        .filter(|path| remove_tree(path).is_ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_of_a_dead_owner_is_swept_and_a_live_one_kept() {
        let live = ScratchDir::create(None).unwrap();
        let dead = ScratchDir::create(None).unwrap();
        std::fs::write(dead.path().join(OWNER_FILE), "999999999 1").unwrap();
        std::fs::create_dir(dead.root().join("data")).unwrap();
        std::fs::set_permissions(
            dead.root().join("data"),
            std::fs::Permissions::from_mode(0o555),
        )
        .unwrap();
        let swept = sweep_orphans();
        assert!(swept.contains(&dead.path().to_path_buf()), "{swept:?}");
        assert!(!dead.path().exists());
        assert!(live.path().exists());
        assert!(owner_alive(&owner_mark(std::process::id())));
    }
}
