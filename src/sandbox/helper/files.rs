//! `read_file` and `write_file`, run inside the sandbox: regular files
//! only (a device, FIFO or socket is refused at once, never waited on), a
//! size cap both ways. Paths outside the root fail in the kernel, symlinks
//! included.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;

use crate::sandbox::Outcome;

/// Largest content `write_file` accepts.
pub const MAX_WRITE_BYTES: usize = 1 << 20;

fn resolve(root: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        root.join(path)
    }
}

/// For an absolute path that was not found but names a file of the
/// service (`/service.log`), a pointer to the relative path: small models
/// often write the service's files as if they sat at `/`.
fn in_root_instead(root: &Path, path: &str) -> String {
    let Some(relative) = path.strip_prefix('/') else {
        return String::new();
    };
    let relative = relative.trim_start_matches('/');
    let plain = Path::new(relative)
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    if relative.is_empty() || !plain || !root.join(relative).exists() {
        return String::new();
    }
    format!(" (the service's files are relative to its directory: did you mean `{relative}`?)")
}

fn failed(message: String) -> Outcome {
    Outcome::Finished {
        exit_code: Some(1),
        stdout: String::new(),
        stderr: message,
        timed_out: false,
    }
}

fn not_regular(path: &str, file: &File) -> Option<Outcome> {
    match file.metadata() {
        Ok(meta) if meta.is_file() => None,
        Ok(meta) => Some(Outcome::Refused {
            message: format!(
                "{path} is not a regular file ({}); only regular files can be read or written",
                describe(&meta.file_type())
            ),
        }),
        Err(e) => Some(failed(format!("cannot inspect {path}: {e}"))),
    }
}

fn describe(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else {
        "not a file"
    }
}

pub fn read(root: &Path, path: &str, cap: usize) -> Outcome {
    // Non-blocking so opening a FIFO without a writer returns at once.
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NONBLOCK | OFlag::O_NOCTTY).bits())
        .open(resolve(root, path));
    let file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return failed(format!(
                "cannot read {path}: {e}{}",
                in_root_instead(root, path)
            ));
        }
        Err(e) => return failed(format!("cannot read {path}: {e}")),
    };
    if let Some(refused) = not_regular(path, &file) {
        return refused;
    }
    let mut kept = Vec::new();
    if let Err(e) = file.take(cap as u64 + 1).read_to_end(&mut kept) {
        return failed(format!("cannot read {path}: {e}"));
    }
    let mut text = String::from_utf8_lossy(&kept[..kept.len().min(cap)]).into_owned();
    if kept.len() > cap {
        text.push_str(&format!(
            "\n[... what follows the first {cap} bytes{}",
            crate::protocol::TRUNCATED
        ));
    }
    Outcome::Finished {
        exit_code: Some(0),
        stdout: text,
        stderr: String::new(),
        timed_out: false,
    }
}

pub fn write(root: &Path, path: &str, content: &str) -> Outcome {
    if content.len() > MAX_WRITE_BYTES {
        return Outcome::Refused {
            message: format!(
                "write_file content is {} bytes; the limit is {MAX_WRITE_BYTES}",
                content.len()
            ),
        };
    }
    let opened = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .custom_flags((OFlag::O_NONBLOCK | OFlag::O_NOCTTY).bits())
        .open(resolve(root, path));
    let mut file = match opened {
        Ok(file) => file,
        Err(e) => return failed(format!("cannot write {path}: {e}")),
    };
    if let Some(refused) = not_regular(path, &file) {
        return refused;
    }
    let written = file
        .set_len(0)
        .and_then(|()| file.write_all(content.as_bytes()));
    match written {
        Ok(()) => Outcome::Finished {
            exit_code: Some(0),
            stdout: format!("wrote {} bytes to {path}", content.len()),
            stderr: String::new(),
            timed_out: false,
        },
        Err(e) => failed(format!("cannot write {path}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stderr_of(outcome: Outcome) -> String {
        match outcome {
            Outcome::Finished { stderr, .. } => stderr,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_service_file_written_as_absolute_is_pointed_at_its_relative_path() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("service.log"), "x").unwrap();
        let err = stderr_of(read(root.path(), "/service.log", 100));
        assert!(err.contains("did you mean `service.log`?"), "{err}");
        // Nothing to point at: no pointer, and never one that leaves the root.
        for path in ["/no-such-file.log", "/../service.log"] {
            let err = stderr_of(read(root.path(), path, 100));
            assert!(!err.contains("did you mean"), "{path}: {err}");
        }
    }

    #[test]
    fn a_read_cut_at_its_cap_says_so_as_observations_recognise() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("service.log"), "x".repeat(10)).unwrap();
        let observed = |cap| match read(root.path(), "service.log", cap) {
            Outcome::Finished { stdout, .. } => crate::protocol::Observation::succeeded(stdout, 0),
            other => panic!("{other:?}"),
        };
        assert!(observed(4).is_truncated());
        assert!(!observed(10).is_truncated());
    }
}
