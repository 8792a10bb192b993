//! The module layering (`docs/architecture.md`), checked: an import from
//! library code only ever points to a lower layer, or sideways within a
//! layer where the order below allows it. Tests may import across layers.

/// Top to bottom. Within one entry, a module may import the ones after it
/// (so `scenario` may use `sandbox`), never the ones before.
const LAYERS: &[&[&str]] = &[
    &["cli"],
    &["web", "operator", "optimize", "eval"],
    &["local"],
    &["status", "policy", "trajectory"],
    &["agent"],
    &["sidecar"],
    &["workspace"],
    &["scenario", "scratch", "sandbox", "verify", "redact"],
    &["protocol"],
    &["manifest", "crd", "risk"],
    &["action", "rng", "tokens"],
];

/// A module's place: (layer, position within it). Lower layers have higher
/// numbers.
fn rank(module: &str) -> Option<(usize, usize)> {
    LAYERS.iter().enumerate().find_map(|(layer, modules)| {
        modules
            .iter()
            .position(|m| *m == module)
            .map(|position| (layer, position))
    })
}

/// Whether `from` may import `to`.
fn allowed(from: (usize, usize), to: (usize, usize)) -> bool {
    to.0 > from.0 || (to.0 == from.0 && to.1 > from.1)
}

/// The library text of a source file: inline test modules cut off.
fn library_text(text: &str) -> &str {
    match text.find("#[cfg(test)]\nmod tests {") {
        Some(at) => &text[..at],
        None => text,
    }
}

/// Every top-level module a text names through `crate::`.
fn imported_modules(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() && !found.contains(&name) {
            found.push(name);
        }
        rest = after;
    }
    found
}

fn is_test_file(path: &std::path::Path) -> bool {
    path.file_name().is_some_and(|n| n == "tests.rs")
        || path.components().any(|c| c.as_os_str() == "tests")
}

fn source_files(dir: &std::path::Path, into: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            source_files(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path);
        }
    }
}

#[test]
fn no_import_points_up() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    source_files(&src, &mut files);
    let mut violations = Vec::new();
    for path in files.iter().filter(|p| !is_test_file(p)) {
        let relative = path.strip_prefix(&src).unwrap();
        let first = relative.components().next().unwrap().as_os_str();
        let module = first.to_str().unwrap().trim_end_matches(".rs");
        if matches!(module, "lib" | "main" | "layers") {
            continue;
        }
        let from = rank(module).unwrap_or_else(|| panic!("{module} has no layer in LAYERS"));
        let text = std::fs::read_to_string(path).unwrap();
        for imported in imported_modules(library_text(&text)) {
            if imported == module {
                continue;
            }
            let to = rank(&imported).unwrap_or_else(|| panic!("{imported} has no layer"));
            if !allowed(from, to) {
                violations.push(format!("{} imports {imported}", relative.display()));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "imports that point up (see docs/architecture.md):\n{}",
        violations.join("\n")
    );
}

#[test]
fn every_module_has_a_layer() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs");
    let lib = std::fs::read_to_string(src).unwrap();
    for line in lib.lines() {
        if let Some(name) = line
            .strip_prefix("pub mod ")
            .and_then(|l| l.strip_suffix(';'))
        {
            assert!(rank(name).is_some(), "module {name} has no layer in LAYERS");
        }
    }
}

#[test]
fn the_checker_sees_grouped_and_nested_paths() {
    let text = "use crate::agent::Turn;\nfn f() { crate::risk::walk(); }\n\
                #[cfg(test)]\nmod tests {\n use crate::cli; }";
    assert_eq!(imported_modules(library_text(text)), ["agent", "risk"]);
    assert!(!allowed(rank("workspace").unwrap(), rank("agent").unwrap()));
    assert!(allowed(rank("scenario").unwrap(), rank("sandbox").unwrap()));
    assert!(!allowed(
        rank("sandbox").unwrap(),
        rank("scenario").unwrap()
    ));
}
