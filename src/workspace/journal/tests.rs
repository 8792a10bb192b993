use std::os::unix::fs::PermissionsExt;

use super::*;

/// The root as (path, kind, mode, content or target), for byte-for-byte
/// comparison.
fn tree(root: &Path) -> Vec<(String, String, u32, Vec<u8>)> {
    walk(root)
        .unwrap()
        .into_iter()
        .map(|(rel, meta)| {
            let path = root.join(&rel);
            let (kind, content) = if meta.is_dir() {
                ("dir", Vec::new())
            } else if meta.file_type().is_symlink() {
                (
                    "symlink",
                    std::fs::read_link(&path)
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes(),
                )
            } else {
                ("file", std::fs::read(&path).unwrap())
            };
            (
                rel.display().to_string(),
                kind.to_string(),
                meta.mode() & 0o7777,
                content,
            )
        })
        .collect()
}

fn root_with_files() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("data")).unwrap();
    std::fs::create_dir_all(root.join("run")).unwrap();
    std::fs::write(root.join("service.conf"), "port = 1\n").unwrap();
    std::fs::write(root.join("service.env"), "KEY=v\n").unwrap();
    std::fs::write(root.join("run/service.pid"), "42\n").unwrap();
    std::os::unix::fs::symlink("service.conf", root.join("conf-link")).unwrap();
    std::fs::set_permissions(root.join("data"), std::fs::Permissions::from_mode(0o555)).unwrap();
    let journal = dir.path().join("journal");
    (dir, root, journal)
}

#[test]
fn an_undo_restores_a_byte_identical_root() {
    let (_dir, root, dir) = root_with_files();
    let before = tree(&root);
    let mut journal = Journal::open(&dir, &root, DEFAULT_MAX_SNAPSHOT_BYTES).unwrap();
    journal.take(0).unwrap();
    // Everything a step could do inside the root.
    std::fs::write(root.join("service.conf"), "port = 2\nbroken\n").unwrap();
    std::fs::remove_file(root.join("run/service.pid")).unwrap();
    std::fs::write(root.join("new.txt"), "added").unwrap();
    std::fs::create_dir_all(root.join("extra/deep")).unwrap();
    std::fs::set_permissions(root.join("data"), std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::set_permissions(
        root.join("service.env"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::remove_file(root.join("conf-link")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("conf-link")).unwrap();
    std::fs::remove_dir(root.join("run")).unwrap_or_else(|_| {
        std::fs::remove_dir_all(root.join("run")).unwrap();
    });
    std::fs::write(root.join("run"), "a file where a directory was").unwrap();
    assert_ne!(tree(&root), before);

    let restored = Journal::open(&dir, &root, DEFAULT_MAX_SNAPSHOT_BYTES)
        .unwrap()
        .restore(0)
        .unwrap();
    assert_eq!(tree(&root), before);
    assert!(
        restored.written.contains(&"service.conf".to_string()),
        "{restored:?}"
    );
    assert!(
        restored.removed.contains(&"new.txt".to_string()),
        "{restored:?}"
    );
}

#[test]
fn unchanged_files_are_not_copied_again() {
    let (_dir, root, dir) = root_with_files();
    let mut journal = Journal::open(&dir, &root, DEFAULT_MAX_SNAPSHOT_BYTES).unwrap();
    let first = journal.take(1).unwrap().copied_bytes;
    assert!(first > 0);
    assert_eq!(journal.take(2).unwrap().copied_bytes, 0);
    std::fs::write(root.join("service.conf"), "port = 3\n").unwrap();
    assert_eq!(journal.take(3).unwrap().copied_bytes, 9);
}

#[test]
fn each_step_can_be_undone_to_its_own_before() {
    let (_dir, root, dir) = root_with_files();
    let mut journal = Journal::open(&dir, &root, DEFAULT_MAX_SNAPSHOT_BYTES).unwrap();
    journal.take(1).unwrap();
    std::fs::write(root.join("service.conf"), "port = 2\n").unwrap();
    let after_step_1 = tree(&root);
    journal.take(2).unwrap();
    std::fs::write(root.join("service.conf"), "port = 3\n").unwrap();
    journal.restore(2).unwrap();
    assert_eq!(tree(&root), after_step_1);
    assert!(matches!(
        journal.restore(7),
        Err(JournalError::NoSnapshot(7))
    ));
}

#[test]
fn a_snapshot_over_its_bound_is_refused() {
    let (_dir, root, dir) = root_with_files();
    std::fs::write(root.join("big"), vec![b'x'; 4096]).unwrap();
    let mut journal = Journal::open(&dir, &root, 1024).unwrap();
    let err = journal.take(1).unwrap_err().to_string();
    assert!(err.contains("over the bound of 1024"), "{err}");
}
