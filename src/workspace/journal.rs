//! Snapshots of an incident root, journalled by step, so any step can be
//! undone and a failed incident left exactly as it was found. A snapshot
//! records every file, directory and symlink with its mode and owner;
//! file contents are copied into the journal (outside the root), and a
//! file unchanged since the previous snapshot (same inode, size, mtime and
//! ctime) reuses that snapshot's copy. The filesystems here (ext4) have no
//! reflinks, so a bounded copy is the honest cost; a snapshot that would
//! exceed its bound refuses the action instead.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Default bound on the bytes one snapshot may copy.
pub const DEFAULT_MAX_SNAPSHOT_BYTES: u64 = 64 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Dir,
    File { blob: String },
    Symlink { target: PathBuf },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Relative to the root.
    pub path: PathBuf,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// (inode, size, mtime ns, ctime ns): unchanged files reuse a copy.
    pub stamp: (u64, u64, i64, i64),
}

/// The root as it was before one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub step: u32,
    pub entries: Vec<Entry>,
    /// Bytes copied for this snapshot (reused copies not counted).
    pub copied_bytes: u64,
    /// The root directory's own mode.
    pub root_mode: u32,
}

/// What a restore changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restored {
    pub written: Vec<String>,
    pub removed: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(
        "a snapshot of the root would copy {bytes} bytes, over the bound of {limit}; the action is refused because it could not be undone"
    )]
    TooBig { bytes: u64, limit: u64 },
    #[error("no snapshot before step {0}")]
    NoSnapshot(u32),
    #[error("journal {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> JournalError + '_ {
    move |error| JournalError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// The snapshots of one root, in `dir` (outside the root).
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    root: PathBuf,
    max_bytes: u64,
    snapshots: BTreeMap<u32, Snapshot>,
    next_blob: u64,
}

impl Journal {
    /// Opens (or creates) the journal in `dir`, loading its snapshots.
    pub fn open(dir: &Path, root: &Path, max_bytes: u64) -> Result<Self, JournalError> {
        std::fs::create_dir_all(dir.join("blobs")).map_err(io(dir))?;
        let mut snapshots = BTreeMap::new();
        for entry in std::fs::read_dir(dir).map_err(io(dir))?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(step) = name
                .strip_prefix("before-step-")
                .and_then(|s| s.strip_suffix(".json"))
                .and_then(|s| s.parse::<u32>().ok())
            {
                let text = std::fs::read_to_string(entry.path()).map_err(io(&entry.path()))?;
                let snapshot: Snapshot =
                    serde_json::from_str(&text).map_err(|e| JournalError::Io {
                        path: entry.path(),
                        error: std::io::Error::other(e),
                    })?;
                snapshots.insert(step, snapshot);
            }
        }
        let next_blob = std::fs::read_dir(dir.join("blobs")).map_or(0, |d| d.count() as u64);
        Ok(Self {
            dir: dir.to_path_buf(),
            root: root.to_path_buf(),
            max_bytes,
            snapshots,
            next_blob,
        })
    }

    pub fn steps(&self) -> Vec<u32> {
        self.snapshots.keys().copied().collect()
    }

    pub fn get(&self, step: u32) -> Option<&Snapshot> {
        self.snapshots.get(&step)
    }

    /// Records the root as it is now, as the state before `step`.
    pub fn take(&mut self, step: u32) -> Result<&Snapshot, JournalError> {
        let previous: BTreeMap<PathBuf, Entry> = self
            .snapshots
            .range(..step)
            .next_back()
            .map(|(_, s)| {
                s.entries
                    .iter()
                    .map(|e| (e.path.clone(), e.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let found = walk(&self.root)?;
        let bytes: u64 = found
            .iter()
            .filter(|(rel, meta)| meta.is_file() && !reusable(previous.get(rel), meta))
            .map(|(_, meta)| meta.len())
            .sum();
        if bytes > self.max_bytes {
            return Err(JournalError::TooBig {
                bytes,
                limit: self.max_bytes,
            });
        }
        let mut entries = Vec::with_capacity(found.len());
        for (rel, meta) in found {
            let source = self.root.join(&rel);
            let kind = if meta.is_dir() {
                Kind::Dir
            } else if meta.file_type().is_symlink() {
                Kind::Symlink {
                    target: std::fs::read_link(&source).map_err(io(&source))?,
                }
            } else {
                match previous.get(&rel) {
                    Some(old) if reusable(Some(old), &meta) => old.kind.clone(),
                    _ => {
                        let blob = format!("{}", self.next_blob);
                        self.next_blob += 1;
                        let target = self.dir.join("blobs").join(&blob);
                        std::fs::copy(&source, &target).map_err(io(&source))?;
                        Kind::File { blob }
                    }
                }
            };
            entries.push(Entry {
                path: rel,
                kind,
                mode: meta.mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
                stamp: stamp(&meta),
            });
        }
        let root_mode = std::fs::metadata(&self.root)
            .map_err(io(&self.root))?
            .mode()
            & 0o7777;
        let snapshot = Snapshot {
            step,
            entries,
            copied_bytes: bytes,
            root_mode,
        };
        let manifest = self.dir.join(format!("before-step-{step}.json"));
        let text = serde_json::to_string(&snapshot).map_err(|e| JournalError::Io {
            path: manifest.clone(),
            error: std::io::Error::other(e),
        })?;
        std::fs::write(&manifest, text).map_err(io(&manifest))?;
        Ok(self.snapshots.entry(step).or_insert(snapshot))
    }

    /// Puts the root back exactly as it was before `step`: contents,
    /// modes, owners; files added since are removed. Sockets (the
    /// supervisor's) are left alone.
    pub fn restore(&self, step: u32) -> Result<Restored, JournalError> {
        let snapshot = self
            .snapshots
            .get(&step)
            .ok_or(JournalError::NoSnapshot(step))?;
        let wanted: BTreeMap<&Path, &Entry> = snapshot
            .entries
            .iter()
            .map(|e| (e.path.as_path(), e))
            .collect();
        let mut restored = Restored::default();
        // Write access first, in case a step (or the fault) took it away.
        let current = walk(&self.root)?;
        for (rel, meta) in &current {
            if meta.is_dir() {
                let _ = std::fs::set_permissions(
                    self.root.join(rel),
                    std::fs::Permissions::from_mode(0o700),
                );
            }
        }
        let _ = std::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(0o700));
        // Remove what is new or of another kind, deepest first.
        for (rel, meta) in current.iter().rev() {
            let keep = wanted
                .get(rel.as_path())
                .is_some_and(|e| same_kind(&e.kind, meta, &self.root.join(rel)));
            if !keep {
                let path = self.root.join(rel);
                let removed = if meta.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                removed.map_err(io(&path))?;
                restored.removed.push(rel.display().to_string());
            }
        }
        let now: BTreeMap<PathBuf, std::fs::Metadata> = walk(&self.root)?.into_iter().collect();
        for entry in &snapshot.entries {
            let path = self.root.join(&entry.path);
            match &entry.kind {
                Kind::Dir => {
                    if !now.contains_key(&entry.path) {
                        std::fs::create_dir(&path).map_err(io(&path))?;
                        restored.written.push(entry.path.display().to_string());
                    }
                }
                Kind::Symlink { target } => {
                    if !now.contains_key(&entry.path) {
                        std::os::unix::fs::symlink(target, &path).map_err(io(&path))?;
                        restored.written.push(entry.path.display().to_string());
                    }
                }
                Kind::File { blob } => {
                    let source = self.dir.join("blobs").join(blob);
                    let unchanged = now.get(&entry.path).is_some_and(|m| {
                        stamp(m) == entry.stamp || same_content(&path, &source, m.len())
                    });
                    if !unchanged {
                        std::fs::copy(&source, &path).map_err(io(&path))?;
                        restored.written.push(entry.path.display().to_string());
                    }
                }
            }
            let owner = (
                Some(nix::unistd::Uid::from_raw(entry.uid)),
                Some(nix::unistd::Gid::from_raw(entry.gid)),
            );
            let _ = nix::unistd::fchownat(
                nix::fcntl::AT_FDCWD,
                &path,
                owner.0,
                owner.1,
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            );
        }
        // Modes last, deepest first, so a read-only directory is read-only
        // again only once everything inside it is back.
        for entry in snapshot.entries.iter().rev() {
            if !matches!(entry.kind, Kind::Symlink { .. }) {
                let path = self.root.join(&entry.path);
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(entry.mode))
                    .map_err(io(&path))?;
            }
        }
        std::fs::set_permissions(
            &self.root,
            std::fs::Permissions::from_mode(snapshot.root_mode),
        )
        .map_err(io(&self.root))?;
        Ok(restored)
    }
}

fn stamp(meta: &std::fs::Metadata) -> (u64, u64, i64, i64) {
    (
        meta.ino(),
        meta.size(),
        meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
    )
}

/// Whether `path` (of `len` bytes) holds exactly the bytes of `blob`.
fn same_content(path: &Path, blob: &Path, len: u64) -> bool {
    std::fs::metadata(blob).is_ok_and(|m| m.len() == len)
        && matches!((std::fs::read(path), std::fs::read(blob)), (Ok(a), Ok(b)) if a == b)
}

fn reusable(previous: Option<&Entry>, meta: &std::fs::Metadata) -> bool {
    previous.is_some_and(|e| matches!(e.kind, Kind::File { .. }) && e.stamp == stamp(meta))
}

/// Whether what is at `path` can stay and be brought back in place (a
/// symlink must also point where it did).
fn same_kind(kind: &Kind, meta: &std::fs::Metadata, path: &Path) -> bool {
    match kind {
        Kind::Dir => meta.is_dir(),
        Kind::File { .. } => meta.is_file(),
        Kind::Symlink { target } => {
            meta.file_type().is_symlink() && std::fs::read_link(path).is_ok_and(|t| &t == target)
        }
    }
}

/// Every directory, regular file and symlink under `root` (sockets, FIFOs
/// and devices skipped), parents before children.
fn walk(root: &Path) -> Result<Vec<(PathBuf, std::fs::Metadata)>, JournalError> {
    let mut out = Vec::new();
    let mut pending = vec![PathBuf::new()];
    let mut seen = BTreeSet::new();
    while let Some(dir) = pending.pop() {
        let full = root.join(&dir);
        let mut children: Vec<_> = std::fs::read_dir(&full)
            .map_err(io(&full))?
            .flatten()
            .map(|e| dir.join(e.file_name()))
            .collect();
        children.sort();
        for rel in children {
            let meta = std::fs::symlink_metadata(root.join(&rel)).map_err(io(&rel))?;
            let kind = meta.file_type();
            if kind.is_dir() {
                if seen.insert(rel.clone()) {
                    pending.push(rel.clone());
                }
            } else if !(kind.is_file() || kind.is_symlink()) {
                continue;
            }
            out.push((rel, meta));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

#[cfg(test)]
mod tests;
