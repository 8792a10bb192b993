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
