//! Reading files a user hands in (catalogs, manifests, policies, skills):
//! regular files only, bounded in size, so a FIFO, a device or a huge file
//! is refused at once instead of hanging or exhausting memory; and YAML
//! nested too deep for its parser, refused before it is parsed.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Largest input file read (4 MiB): far above any real catalog or manifest.
pub const MAX_INPUT_BYTES: u64 = 4 << 20;

/// Deepest nesting of mappings and sequences a YAML input may have; a
/// Kubernetes manifest or a catalog needs about ten.
pub const MAX_YAML_NESTING: usize = 64;

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

/// Refuses YAML nested deeper than [`MAX_YAML_NESTING`], in time linear in
/// its length. serde_yaml's parser (libyaml) takes time quadratic in the
/// depth of flow collections and checks its own depth limit only after the
/// whole document is scanned: 100,000 nested `{a: ` in 500 KB held a CLI
/// for 38 s before it said so. This walks the events of a second parser
/// and stops at the first collection too deep. Where that parser finds a
/// syntax error first, the check passes and serde_yaml names the error as
/// it always has (the two parsers would have to disagree on valid YAML for
/// a deep document to get through).
pub fn check_yaml_nesting(text: &str) -> Result<(), String> {
    use saphyr_parser::{Event, Parser};
    let mut depth = 0usize;
    for event in Parser::new_from_str(text) {
        let (event, span) = match event {
            Ok(event) => event,
            Err(error) if error.info().contains("recursion limit") => {
                return Err(too_deep(error.marker().line()));
            }
            Err(_) => return Ok(()),
        };
        match event {
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                depth += 1;
                if depth > MAX_YAML_NESTING {
                    return Err(too_deep(span.start.line()));
                }
            }
            Event::MappingEnd | Event::SequenceEnd => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn too_deep(line: usize) -> String {
    format!("it nests mappings or sequences more than {MAX_YAML_NESTING} deep (line {line})")
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
    fn deep_yaml_is_refused_before_it_is_parsed_and_ordinary_yaml_is_not() {
        let flow = format!("a: {}1{}", "{a: ".repeat(100_000), "}".repeat(100_000));
        let sequences = format!("a: {}1{}", "[".repeat(100_000), "]".repeat(100_000));
        let mut block = String::new();
        for level in 0..200 {
            block.push_str(&format!("{}a:\n", " ".repeat(level)));
        }
        for deep in [&flow, &sequences, &block] {
            let err = check_yaml_nesting(deep).unwrap_err();
            assert!(err.contains("more than 64 deep"), "{err}");
        }
        let at_the_limit = format!("a: {}1{}", "[".repeat(63), "]".repeat(63));
        assert_eq!(check_yaml_nesting(&at_the_limit), Ok(()));
        let manifest = "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: a\n    env: [{name: X, value: \"{[\"}]\n---\n# comment {{{{\nb: |\n  {{{{[[[[\n";
        assert_eq!(check_yaml_nesting(manifest), Ok(()));
        // A syntax error is serde_yaml's to name.
        assert_eq!(check_yaml_nesting("a: [1, 2"), Ok(()));
    }

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
