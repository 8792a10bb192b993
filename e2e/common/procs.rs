//! What tests and benchmarks read from `/proc` and the temp dir to judge
//! by the world: which processes live, descriptors, memory, scratch
//! directories. Each test binary and bench is its own crate, so this file
//! is included by path (`#[path = "../common/procs.rs"] mod procs;`) and
//! each uses a part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One live (not zombie) process: pid, parent and resident pages.
struct Proc {
    pid: u32,
    parent: u32,
    rss_pages: u64,
}

fn live_processes() -> Vec<Proc> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // The name may hold spaces and parentheses: the fields start after
        // the last `)`.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // After the name: state, ppid, ..., rss (field 24 of stat) at 21.
        let parent = fields.get(1).and_then(|p| p.parse::<u32>().ok());
        if let (Some(&state), Some(parent)) = (fields.first(), parent)
            && state != "Z"
        {
            let rss_pages = fields.get(21).and_then(|r| r.parse().ok()).unwrap_or(0);
            found.push(Proc {
                pid,
                parent,
                rss_pages,
            });
        }
    }
    found
}

fn tree_of(root: u32, processes: &[Proc]) -> Vec<u32> {
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            processes
                .iter()
                .filter(|p| p.parent == parent)
                .map(|p| p.pid),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// Every live process whose parent chain leads to `root`.
pub fn descendants(root: u32) -> Vec<u32> {
    tree_of(root, &live_processes())
}

/// Live processes whose parent is this one.
pub fn children() -> Vec<u32> {
    let me = std::process::id();
    live_processes()
        .into_iter()
        .filter(|p| p.parent == me)
        .map(|p| p.pid)
        .collect()
}

pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rfind(')')
            .is_some_and(|i| !stat[i + 2..].starts_with('Z'))
    })
}

pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// A line of `/proc/self/status` in KiB, e.g. `VmRSS:` or `VmHWM:`.
pub fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// RSS of this process and all its descendants (services, supervisors,
/// sandbox helpers), in MiB.
pub fn tree_rss_mib() -> f64 {
    let me = std::process::id();
    let processes = live_processes();
    let mut tree = tree_of(me, &processes);
    tree.push(me);
    let pages: u64 = processes
        .iter()
        .filter(|p| tree.contains(&p.pid))
        .map(|p| p.rss_pages)
        .sum();
    pages as f64 * 4096.0 / (1024.0 * 1024.0)
}

/// Scratch directories (`remediator-*`) in `dir`.
pub fn scratch_dirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("remediator-"))
        })
        .collect()
}

/// The scratch directories in `dir` that process `owner` marked as its own.
pub fn scratch_dirs_of(dir: &Path, owner: u32) -> Vec<PathBuf> {
    let owner = owner.to_string();
    scratch_dirs(dir)
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(p.join("owner"))
                .is_ok_and(|mark| mark.split_whitespace().next() == Some(owner.as_str()))
        })
        .collect()
}

/// No child process of this one lives on, and no scratch directory it
/// marked as its own is left in the temp dir.
pub fn assert_no_process_or_scratch_left() {
    let children = children();
    assert!(children.is_empty(), "processes left: {children:?}");
    let scratch = scratch_dirs_of(&std::env::temp_dir(), std::process::id());
    assert!(scratch.is_empty(), "scratch directories left: {scratch:?}");
}

/// A private temp dir for one test's remediator processes (their scratch
/// roots and the sweep stay there, apart from other tests').
pub fn private_tmp() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// Polls `done` until it holds or `limit` passes.
pub async fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done()
}
