//! The module layering (`docs/architecture.md`), checked: an import from
//! library code only ever points to a lower layer, or sideways within a
//! layer where the order below allows it. Tests may import across layers.

/// Top to bottom. Within one entry, a module may import the ones after it
/// (so `scenario` may use `sandbox`), never the ones before.
const LAYERS: &[&[&str]] = &[
    &["cli"],
    &["mcp", "web", "operator", "optimize", "eval"],
    &["local"],
    &["status", "policy", "trajectory"],
    &["agent"],
    &["sidecar"],
    &["workspace"],
    &["scenario", "scratch", "sandbox", "verify", "redact"],
    &["protocol"],
    &["manifest", "crd", "risk"],
    &["action", "rng", "tokens", "telemetry"],
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

/// The library text of a source file: every `#[cfg(test)]` module cut out
/// (by brace matching; braces in its strings come in pairs in practice).
fn library_text(text: &str) -> String {
    let mut library = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        let after = rest[at + "#[cfg(test)]".len()..].trim_start();
        let is_module = ["mod ", "pub mod ", "pub(crate) mod ", "pub(super) mod "]
            .iter()
            .any(|start| after.starts_with(start));
        let open = after.find(['{', ';']);
        match (is_module, open) {
            (true, Some(open)) if after[open..].starts_with('{') => {
                library.push_str(&rest[..at]);
                let block = &after[open..];
                let end = matching_brace(block).unwrap_or(block.len());
                rest = &block[end..];
            }
            _ => {
                library.push_str(&rest[..at + "#[cfg(test)]".len()]);
                rest = &rest[at + "#[cfg(test)]".len()..];
            }
        }
    }
    library.push_str(rest);
    library
}

/// Where the brace `block` opens with is closed (just past it).
fn matching_brace(block: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in block.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

fn is_identifier(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The first name of every path in `text` where it starts: `agent` in
/// `agent::Turn`, `a` and `b` in `{a, b::c}`.
fn leading_names(text: &str) -> Vec<String> {
    if let Some(group) = text.strip_prefix('{') {
        let end = matching_brace(text).map_or(group.len(), |end| end - 2);
        let mut names = Vec::new();
        let mut depth = 0usize;
        let mut start = 0;
        for (i, c) in group[..end].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth = depth.saturating_sub(1),
                ',' if depth == 0 => {
                    names.extend(leading_names(group[start..i].trim()));
                    start = i + 1;
                }
                _ => {}
            }
        }
        names.extend(leading_names(group[start..end].trim()));
        return names;
    }
    let name: String = text.chars().take_while(|c| is_identifier(*c)).collect();
    match name.as_str() {
        "" | "self" => Vec::new(),
        _ => vec![name],
    }
}

/// Every top-level module a file at `module` (its path of module names,
/// `["sandbox", "helper", "inner"]`) names through `crate::` or through
/// enough `super::` to leave its top-level module.
fn imported_modules(text: &str, module: &[&str]) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut add = |names: Vec<String>| {
        for name in names {
            if !found.contains(&name) {
                found.push(name);
            }
        }
    };
    for (at, _) in text.match_indices("crate::") {
        let starts_a_path = !text[..at].ends_with(|c: char| is_identifier(c) || c == ':');
        if starts_a_path {
            add(leading_names(&text[at + "crate::".len()..]));
        }
    }
    for (at, _) in text.match_indices("super::") {
        let starts_a_path = !text[..at].ends_with(|c: char| is_identifier(c) || c == ':');
        if !starts_a_path {
            continue;
        }
        let mut rest = &text[at..];
        let mut levels = 0;
        while let Some(after) = rest.strip_prefix("super::") {
            levels += 1;
            rest = after;
        }
        if levels >= module.len() {
            add(leading_names(rest));
        }
    }
    found
}

/// A file's path of module names: `src/a/b.rs` and `src/a/b/mod.rs` are
/// `["a", "b"]`.
fn module_path(relative: &std::path::Path) -> Vec<&str> {
    let mut names: Vec<&str> = relative
        .components()
        .map(|c| c.as_os_str().to_str().unwrap().trim_end_matches(".rs"))
        .collect();
    if names.last() == Some(&"mod") {
        names.pop();
    }
    names
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
        let modules = module_path(relative);
        let module = modules[0];
        if matches!(module, "lib" | "main" | "layers") {
            continue;
        }
        let from = rank(module).unwrap_or_else(|| panic!("{module} has no layer in LAYERS"));
        let text = std::fs::read_to_string(path).unwrap();
        for imported in imported_modules(&library_text(&text), &modules) {
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
fn the_checker_sees_grouped_nested_and_super_paths() {
    let text = "use crate::agent::Turn;\nfn f() { crate::risk::walk(); }\n\
                use crate::{cli, scenario::{self, Catalog}};\n\
                #[cfg(test)]\nmod tests {\n use crate::web; fn g() { if true {} }\n}\n\
                use crate::eval;";
    let library = library_text(text);
    assert_eq!(
        imported_modules(&library, &["workspace"]),
        ["agent", "risk", "cli", "scenario", "eval"],
        "the test module is cut, the code after it is not: {library}"
    );
    // From src/sidecar/mod.rs `super::` is the crate; from a submodule it is
    // the module itself.
    assert_eq!(
        imported_modules("use super::agent::Turn;", &["sidecar"]),
        ["agent"]
    );
    assert!(imported_modules("use super::state;", &["sidecar", "state2"]).is_empty());
    assert_eq!(
        imported_modules("use super::super::{agent, web};", &["a", "b"]),
        ["agent", "web"]
    );
    assert!(imported_modules("use my_crate::agent;", &["a"]).is_empty());
    assert!(!allowed(rank("workspace").unwrap(), rank("agent").unwrap()));
    assert!(allowed(rank("scenario").unwrap(), rank("sandbox").unwrap()));
    assert!(!allowed(
        rank("sandbox").unwrap(),
        rank("scenario").unwrap()
    ));
}
