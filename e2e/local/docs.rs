//! The documentation stays true to the tree: the scenario table matches
//! the catalog, every relative link (and its #anchor) resolves, and every
//! `remediator` command line the docs show names subcommands and flags the
//! binary accepts. The catalog and the markdown are read as plain files,
//! not through the library, so a rename inside `src/` cannot hide a stale
//! page.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every docs/*.md, sorted.
fn markdown_files() -> Vec<PathBuf> {
    let mut files = vec![repo().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .expect("docs/ exists")
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

fn relative(path: &Path) -> String {
    path.strip_prefix(repo())
        .unwrap_or(path)
        .display()
        .to_string()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Each line with whether it sits inside a fenced code block (the fence
/// lines themselves count as inside).
fn lines_with_fences(text: &str) -> Vec<(&str, bool)> {
    let mut inside = false;
    text.lines()
        .map(|line| {
            let trimmed = line.trim_start();
            if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
                inside = !inside;
                (line, true)
            } else {
                (line, inside)
            }
        })
        .collect()
}

/// The cells of a markdown table row, trimmed, without backticks.
fn cells(row: &str) -> Vec<String> {
    let row = row.trim();
    let row = row.strip_prefix('|').unwrap_or(row);
    let row = row.strip_suffix('|').unwrap_or(row);
    row.split('|')
        .map(|cell| cell.trim().replace('`', ""))
        .collect()
}

/// The catalog's scenarios: id -> split, read straight from the YAML.
fn catalog() -> BTreeMap<String, String> {
    let path = repo().join("training_data/scenarios.yaml");
    let yaml: serde_yaml::Value = serde_yaml::from_str(&read(&path)).expect("the catalog parses");
    let scenarios = yaml
        .get("scenarios")
        .and_then(|s| s.as_sequence())
        .expect("the catalog has a `scenarios` list");
    let mut found = BTreeMap::new();
    for scenario in scenarios {
        let id = scenario
            .get("id")
            .and_then(|v| v.as_str())
            .unwrap_or_else(|| panic!("a scenario without an id: {scenario:?}"));
        let split = scenario
            .get("split")
            .and_then(|v| v.as_str())
            .unwrap_or_else(|| panic!("scenario {id} has no split"));
        assert!(
            found.insert(id.to_string(), split.to_string()).is_none(),
            "scenario {id} is in the catalog twice"
        );
    }
    assert!(!found.is_empty(), "the catalog has no scenarios");
    found
}

/// A markdown table whose first column is `id`: a table of scenarios.
struct ScenarioTable {
    file: String,
    line: usize,
    /// Each row's id, and its split when the table has a `split` column.
    rows: Vec<(String, Option<String>)>,
}

fn scenario_tables(path: &Path) -> Vec<ScenarioTable> {
    let text = read(path);
    let lines = lines_with_fences(&text);
    let mut tables = Vec::new();
    let mut i = 0;
    while i + 1 < lines.len() {
        let (header, fenced) = lines[i];
        let (separator, _) = lines[i + 1];
        let is_table = !fenced
            && header.trim_start().starts_with('|')
            && separator.trim_start().starts_with('|')
            && separator.contains("---");
        if !is_table {
            i += 1;
            continue;
        }
        let columns = cells(header);
        if columns.first().map(String::as_str) != Some("id") {
            i += 2;
            continue;
        }
        let split_column = columns.iter().position(|c| c == "split");
        let mut table = ScenarioTable {
            file: relative(path),
            line: i + 1,
            rows: Vec::new(),
        };
        i += 2;
        while i < lines.len() && lines[i].0.trim_start().starts_with('|') {
            let row = cells(lines[i].0);
            let split = split_column.and_then(|c| row.get(c).cloned());
            table.rows.push((row[0].clone(), split));
            i += 1;
        }
        tables.push(table);
    }
    tables
}

#[test]
fn scenario_table_matches_catalog() {
    let catalog = catalog();
    let mut tables = Vec::new();
    for file in markdown_files() {
        tables.extend(scenario_tables(&file));
    }
    assert!(
        !tables.is_empty(),
        "no scenario table (a markdown table whose first column is `id`) in README.md or docs/*.md"
    );
    let mut problems = Vec::new();
    for table in &tables {
        let at = format!("{}:{}", table.file, table.line);
        let mut seen = BTreeSet::new();
        for (id, split) in &table.rows {
            if !seen.insert(id.clone()) {
                problems.push(format!("{at}: `{id}` is listed twice"));
            }
            match (catalog.get(id), split) {
                (None, _) => problems.push(format!(
                    "{at}: `{id}` is not in training_data/scenarios.yaml"
                )),
                (Some(want), Some(have)) if want != have => problems.push(format!(
                    "{at}: `{id}` has split `{have}` here, `{want}` in the catalog"
                )),
                _ => {}
            }
        }
        for id in catalog.keys().filter(|id| !seen.contains(*id)) {
            problems.push(format!(
                "{at}: catalog scenario `{id}` is missing from the table"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "scenario tables and the catalog disagree:\n{}",
        problems.join("\n")
    );
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces
/// to dashes.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// Every anchor a markdown file's headings give, duplicates numbered as
/// GitHub numbers them.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut found = BTreeSet::new();
    for (line, fenced) in lines_with_fences(text) {
        if fenced || !line.starts_with('#') {
            continue;
        }
        let heading = line.trim_start_matches('#');
        if !heading.starts_with(' ') {
            continue;
        }
        let base = slug(heading.trim().trim_end_matches('#'));
        let n = counts.entry(base.clone()).or_default();
        found.insert(if *n == 0 { base } else { format!("{base}-{n}") });
        *n += 1;
    }
    found
}

/// The line with inline code spans emptied, so `[a](b)` in code is not a link.
fn without_code_spans(line: &str) -> String {
    let mut out = String::new();
    let mut in_code = false;
    for c in line.chars() {
        if c == '`' {
            in_code = !in_code;
            out.push(c);
        } else if !in_code {
            out.push(c);
        }
    }
    out
}

#[test]
fn every_relative_link_in_readme_and_docs_resolves() {
    let link = regex::Regex::new(r#"\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)"#).unwrap();
    let reference = regex::Regex::new(r"^\s*\[[^\]]+\]:\s+(\S+)").unwrap();
    let mut anchor_cache: HashMap<PathBuf, BTreeSet<String>> = HashMap::new();
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in markdown_files() {
        let text = read(&file);
        let dir = file.parent().unwrap().to_path_buf();
        for (number, (line, fenced)) in lines_with_fences(&text).into_iter().enumerate() {
            if fenced {
                continue;
            }
            let line = without_code_spans(line);
            let targets = link
                .captures_iter(&line)
                .chain(reference.captures_iter(&line))
                .map(|c| c[1].to_string());
            for target in targets {
                if target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                checked += 1;
                let at = format!("{}:{}", relative(&file), number + 1);
                let (path, anchor) = match target.split_once('#') {
                    Some((path, anchor)) => (path, Some(anchor)),
                    None => (target.as_str(), None),
                };
                let resolved = if path.is_empty() {
                    file.clone()
                } else {
                    dir.join(path)
                };
                if !resolved.exists() {
                    problems.push(format!(
                        "{at}: `{target}`: {} does not exist",
                        relative(&resolved)
                    ));
                    continue;
                }
                let Some(anchor) = anchor else { continue };
                if resolved.extension().is_none_or(|e| e != "md") {
                    continue;
                }
                let known = anchor_cache
                    .entry(resolved.clone())
                    .or_insert_with(|| anchors(&read(&resolved)));
                if !known.contains(anchor) {
                    problems.push(format!(
                        "{at}: `{target}`: no heading with anchor #{anchor} in {}",
                        relative(&resolved)
                    ));
                }
            }
        }
    }
    assert!(
        checked > 0,
        "no relative links found: is the pattern broken?"
    );
    assert!(
        problems.is_empty(),
        "broken links in the documentation:\n{}",
        problems.join("\n")
    );
}

/// `line` up to a `#` comment outside quotes.
fn without_comment(line: &str) -> &str {
    let mut quote = None;
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') if previous.is_whitespace() => return &line[..i],
            _ => {}
        }
        previous = c;
    }
    line
}

/// The arguments after `remediator` (or `cargo run ... --`) on a command
/// line the docs show, or None when it is not such a line.
fn remediator_arguments(line: &str) -> Option<Vec<String>> {
    let line = line.trim().trim_start_matches("$ ");
    let rest = if let Some(rest) = line.strip_prefix("remediator ") {
        rest
    } else if line.starts_with("cargo run ") {
        line.split_once(" -- ")?.1
    } else {
        return None;
    };
    let words = shlex::split(without_comment(rest))?;
    Some(
        words
            .into_iter()
            .map(|w| w.trim_start_matches('[').trim_end_matches(']').to_string())
            .filter(|w| !w.is_empty() && w != "...")
            .collect(),
    )
}

/// Whether `help` lists `flag` (`--name` or `-x`).
fn help_lists(help: &str, flag: &str) -> bool {
    help.match_indices(flag).any(|(at, _)| {
        let before = help[..at].chars().next_back();
        let after = help[at + flag.len()..].chars().next();
        before.is_none_or(|c| !c.is_alphanumeric() && c != '-')
            && after.is_none_or(|c| !c.is_alphanumeric() && c != '-' && c != '_')
    })
}

#[test]
fn every_documented_remediator_command_line_is_accepted() {
    let binary = env!("CARGO_BIN_EXE_remediator");
    let subcommand_word = regex::Regex::new(r"^[a-z][a-z-]*$").unwrap();
    let mut helps: HashMap<Vec<String>, Result<String, String>> = HashMap::new();
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in markdown_files() {
        let text = read(&file);
        for (number, (line, fenced)) in lines_with_fences(&text).into_iter().enumerate() {
            let at = format!("{}:{}", relative(&file), number + 1);
            // Code blocks: whole lines. Prose: inline code spans.
            let candidates: Vec<String> = if fenced {
                vec![line.to_string()]
            } else {
                line.split('`')
                    .skip(1)
                    .step_by(2)
                    .map(str::to_string)
                    .collect()
            };
            for candidate in candidates {
                let Some(arguments) = remediator_arguments(&candidate) else {
                    continue;
                };
                checked += 1;
                let words: Vec<String> = arguments
                    .iter()
                    .take_while(|w| subcommand_word.is_match(w))
                    .cloned()
                    .collect();
                let help = helps.entry(words.clone()).or_insert_with(|| {
                    let output = Command::new(binary)
                        .args(&words)
                        .arg("--help")
                        .output()
                        .expect("remediator runs");
                    if output.status.success() {
                        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
                    } else {
                        Err(String::from_utf8_lossy(&output.stderr).into_owned())
                    }
                });
                let help = match help {
                    Ok(help) => help,
                    Err(error) => {
                        problems.push(format!(
                            "{at}: `remediator {} --help` fails: {}",
                            words.join(" "),
                            error.lines().next().unwrap_or("")
                        ));
                        continue;
                    }
                };
                for flag in arguments
                    .iter()
                    .filter(|w| w.starts_with('-') && w.len() > 1)
                {
                    let flag = flag.split_once('=').map_or(flag.as_str(), |(f, _)| f);
                    if !help_lists(help, flag) {
                        problems.push(format!(
                            "{at}: `remediator {}` has no flag `{flag}`",
                            words.join(" ")
                        ));
                    }
                }
            }
        }
    }
    assert!(checked > 0, "no remediator command lines found in the docs");
    assert!(
        problems.is_empty(),
        "command lines in the documentation the binary does not accept:\n{}",
        problems.join("\n")
    );
}

/// `LAYERS` in src/layers.rs, read as text: one list of module names per
/// entry, top to bottom.
fn checker_layers() -> Vec<Vec<String>> {
    let text = read(&repo().join("src/layers.rs"));
    let start = text
        .find("const LAYERS")
        .expect("src/layers.rs defines const LAYERS");
    let body = &text[start..];
    let body = &body[..body.find("];").expect("LAYERS ends with `];`")];
    let name = regex::Regex::new(r#""([a-z_0-9]+)""#).unwrap();
    body.lines()
        .map(|line| {
            name.captures_iter(line)
                .map(|c| c[1].to_string())
                .collect::<Vec<_>>()
        })
        .filter(|names| !names.is_empty())
        .collect()
}

/// The layer diagram in docs/architecture.md: the first code block after
/// `## Layers`; each line's modules are what comes before a gap of three
/// or more spaces (lines that start with a space continue a description).
fn documented_layers() -> Vec<Vec<String>> {
    let text = read(&repo().join("docs/architecture.md"));
    let start = text
        .find("\n## Layers")
        .expect("docs/architecture.md has a `## Layers` section");
    let lines = lines_with_fences(&text[start..]);
    let gap = regex::Regex::new(r"\s{3,}").unwrap();
    lines
        .iter()
        .skip_while(|(_, fenced)| !fenced)
        .skip(1)
        .take_while(|(line, _)| !line.trim_start().starts_with("```"))
        .filter(|(line, _)| !line.trim().is_empty() && !line.starts_with(' '))
        .map(|(line, _)| {
            let modules = gap.split(line).next().unwrap_or("");
            modules
                .split(|c: char| c.is_whitespace() || c == '|')
                .filter(|m| !m.is_empty())
                .map(str::to_string)
                .collect()
        })
        .collect()
}

#[test]
fn architecture_layers_match_the_checker() {
    let checker = checker_layers();
    let documented = documented_layers();
    assert!(!checker.is_empty(), "no LAYERS read from src/layers.rs");
    assert_eq!(
        documented, checker,
        "the layer diagram in docs/architecture.md (left) differs from LAYERS in src/layers.rs (right)"
    );
}
