//! What the benchmarks share: finding the release binaries next to the
//! benchmark itself, wherever the target directory is (`CARGO_TARGET_DIR`).

use std::path::PathBuf;

/// `<target>/release/<name>`, exiting with a hint when it is not built.
pub fn release_binary(name: &str) -> PathBuf {
    // The bench runs as <target>/release/deps/<bench>-<hash>.
    let dir = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| PathBuf::from("target/release"));
    let path = dir.join(name);
    if !path.exists() {
        eprintln!(
            "{} is missing: run `cargo build --release` first",
            path.display()
        );
        std::process::exit(1);
    }
    path
}

/// The filesystem type `path` lives on (the mount with the longest
/// mount point above it, from /proc/self/mountinfo), or "unknown".
#[allow(dead_code)]
pub fn filesystem_of(path: &std::path::Path) -> String {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    mountinfo
        .lines()
        .filter_map(|line| {
            // `id parent major:minor root mountpoint options... - fstype source ...`
            let (left, right) = line.split_once(" - ")?;
            let mount_point = left.split(' ').nth(4)?.replace("\\040", " ");
            let fstype = right.split(' ').next()?;
            path.starts_with(&mount_point)
                .then(|| (mount_point.len(), fstype.to_string()))
        })
        .max_by_key(|(len, _)| *len)
        .map_or_else(|| "unknown".into(), |(_, fstype)| fstype)
}
