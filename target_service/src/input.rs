//! Reading files a user hands in (catalogs, manifests, policies, skills):
//! regular files only, bounded in size, so a FIFO, a device or a huge file
//! is refused at once instead of hanging or exhausting memory.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Largest input file read (4 MiB): far above any real catalog or manifest.
pub const MAX_INPUT_BYTES: u64 = 4 << 20;

/// O_NONBLOCK: opening a FIFO without a writer must not block.
const O_NONBLOCK: i32 = 0o4000;

/// The file's text, if it is a regular file of at most `max` bytes.
pub fn read_bounded(path: &Path, max: u64) -> std::io::Result<String> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        let kind = meta.file_type();
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else {
            "not a regular file"
        };
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("it is {what}, not a regular file"),
        ));
    }
    if meta.len() > max {
        return Err(too_big(meta.len(), max));
    }
    read_at_most(file, max)
}

fn read_at_most(file: File, max: u64) -> std::io::Result<String> {
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(too_big(bytes.len() as u64, max));
    }
    String::from_utf8(bytes)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "it is not UTF-8 text"))
}

fn too_big(size: u64, max: u64) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("it is {size} bytes; the limit is {max}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_small_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("a.yaml");
        std::fs::write(&small, "x: 1\n").unwrap();
        assert_eq!(read_bounded(&small, 100).unwrap(), "x: 1\n");
        let err = read_bounded(&small, 2).unwrap_err().to_string();
        assert!(err.contains("limit is 2"), "{err}");
        for special in ["/dev/zero", "/dev/null", "/proc/self"] {
            let err = read_bounded(Path::new(special), 100)
                .unwrap_err()
                .to_string();
            assert!(err.contains("not a regular file"), "{special}: {err}");
        }
    }
}
