//! For arbitrary names and values, the command a fix operator builds is
//! judged at most MEDIUM by the classifier and, run by a real shell in a
//! real directory, changes exactly the named path and nothing else.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use proptest::prelude::*;

use super::facts::{CONFIG, ENV, Fact, LineProblem};
use super::operators::fixes;
use crate::action::Action;
use crate::risk::{Classifier, SecurityRisk};

const PORT: u16 = 9000;

/// A name of one path component: spaces, quotes, a leading dash, shell
/// syntax, unicode and newlines included; never `.`, `..` or empty.
fn component() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a-zA-Z0-9 '\"$`*?;&|<>(){}\\\\\n#~=.,:é中-]{1,12}")
        .expect("regex")
        .prop_filter("a real name", |s| s != "." && s != "..")
}

fn relative_path() -> impl Strategy<Value = String> {
    proptest::collection::vec(component(), 1..=3).prop_map(|parts| parts.join("/"))
}

fn value() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a-zA-Z0-9 '\"$`*;&|/\\\\#=:é-]{1,20}").expect("regex")
}

/// Every file and directory under `root`, with its mode and content.
fn tree(root: &Path) -> BTreeMap<String, (u32, Vec<u8>)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable") {
            let path = entry.expect("entry").path();
            let meta = std::fs::symlink_metadata(&path).expect("meta");
            let name = path
                .strip_prefix(root)
                .expect("inside")
                .display()
                .to_string();
            let content = if meta.is_file() {
                std::fs::read(&path).expect("file")
            } else {
                Vec::new()
            };
            out.insert(name, (meta.permissions().mode(), content));
            if meta.is_dir() {
                stack.push(path);
            }
        }
    }
    out
}

fn run_in(root: &Path, command: &str) -> std::process::Output {
    Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(root)
        .env_clear()
        .env("PATH", crate::sandbox::SAFE_PATH)
        .output()
        .expect("sh runs")
}

fn command_of(action: &Action) -> &str {
    match action {
        Action::Exec(command) => command,
        other => panic!("operators build commands, got {other:?}"),
    }
}

/// The paths that differ between two trees.
fn changed(
    before: &BTreeMap<String, (u32, Vec<u8>)>,
    after: &BTreeMap<String, (u32, Vec<u8>)>,
) -> Vec<String> {
    let mut names: Vec<&String> = before.keys().chain(after.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|n| before.get(*n) != after.get(*n))
        .cloned()
        .collect()
}

/// The path and each of its parents ("a", "a/b", "a/b/c").
fn with_parents(path: &str) -> Vec<String> {
    let parts: Vec<&str> = path.split('/').collect();
    (1..=parts.len()).map(|n| parts[..n].join("/")).collect()
}

/// Creates a name a glob would pass as an option (the last name of an
/// operand it creates begins with `-`): HIGH by the classifier's rule.
/// Removing one, or changing its mode, is not.
fn creates_option_like(fact: &Fact, path: &str) -> bool {
    let last = |p: &str| p.rsplit('/').next().unwrap_or(p).starts_with('-');
    match fact {
        Fact::Directory(_) => last(path),
        Fact::Present(_) => {
            last(path)
                || path
                    .rsplit_once('/')
                    .is_some_and(|(parent, _)| last(parent))
        }
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn file_operators_are_medium_and_touch_only_the_named_path(path in relative_path()) {
        let classifier = Classifier::new("/srv/root", PORT);
        let facts = [
            Fact::Absent(path.clone()),
            Fact::Present(path.clone()),
            Fact::Directory(path.clone()),
            Fact::Writable(path.clone()),
        ];
        for fact in facts {
            let root = tempfile::tempdir().unwrap();
            std::fs::write(root.path().join("bystander"), "x").unwrap();
            // Set the world up so the fix has something to do.
            let target = root.path().join(&path);
            match &fact {
                Fact::Absent(_) => {
                    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
                    std::fs::write(&target, "stale").unwrap();
                }
                Fact::Writable(_) => {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::create_dir_all(&target).unwrap();
                    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o555)).unwrap();
                }
                _ => {}
            }
            let first = fixes(&fact, None, None).unwrap().remove(0);
            let risk = classifier.classify(&first).risk;
            if creates_option_like(&fact, &path) {
                prop_assert_eq!(risk, SecurityRisk::High, "{:?}", first);
            } else {
                prop_assert!(risk <= SecurityRisk::Medium, "{:?} is {:?}", first, risk);
            }
            let before = tree(root.path());
            let output = run_in(root.path(), command_of(&first));
            prop_assert!(output.status.success(), "{:?}: {}", first, String::from_utf8_lossy(&output.stderr));
            let after = tree(root.path());
            let allowed = with_parents(&path);
            for name in changed(&before, &after) {
                prop_assert!(allowed.contains(&name), "{:?} changed {:?}", first, name);
            }
            let meta = std::fs::symlink_metadata(&target);
            match &fact {
                Fact::Absent(_) => prop_assert!(meta.is_err()),
                Fact::Present(_) => prop_assert!(meta.unwrap().is_file()),
                Fact::Directory(_) => prop_assert!(meta.unwrap().is_dir()),
                _ => {
                    use std::os::unix::fs::PermissionsExt;
                    prop_assert!(meta.unwrap().permissions().mode() & 0o200 != 0);
                }
            }
        }
    }

    #[test]
    fn line_and_setting_operators_are_medium_and_write_exactly_the_value(
        key in "[a-z][a-z0-9_]{0,10}",
        value in value(),
        line_text in value(),
    ) {
        prop_assume!(!value.trim().is_empty() && value.trim() == value);
        let classifier = Classifier::new("/srv/root", PORT);
        let root = tempfile::tempdir().unwrap();
        let config = format!("# header\n{key} = old\nother = 1\n");
        std::fs::write(root.path().join(CONFIG), &config).unwrap();
        std::fs::write(root.path().join(ENV), format!("A=1\n{line_text}\n")).unwrap();

        let setting = Fact::Setting { key: key.clone(), value: Some(value.clone()), missing: false };
        let set = fixes(&setting, None, None).unwrap().remove(0);
        prop_assert!(classifier.classify(&set).risk <= SecurityRisk::Medium, "{:?}", set);
        let output = run_in(root.path(), command_of(&set));
        prop_assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let written = std::fs::read_to_string(root.path().join(CONFIG)).unwrap();
        prop_assert_eq!(written, format!("# header\n{key} = {value}\nother = 1\n"));

        let broken = Fact::BrokenLine {
            file: ENV.into(),
            line: 2,
            problem: LineProblem::Unparsed(line_text.trim().to_string()),
        };
        for fix in fixes(&broken, None, None).unwrap() {
            std::fs::write(root.path().join(ENV), format!("A=1\n{line_text}\n")).unwrap();
            prop_assert!(classifier.classify(&fix).risk <= SecurityRisk::Medium, "{:?}", fix);
            let before = tree(root.path());
            let output = run_in(root.path(), command_of(&fix));
            prop_assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
            prop_assert_eq!(changed(&before, &tree(root.path())), vec![ENV.to_string()]);
            let lines: Vec<String> = std::fs::read_to_string(root.path().join(ENV))
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect();
            prop_assert_eq!(lines.len(), 2, "{:?}", lines);
            prop_assert_eq!(&lines[0], "A=1");
            // Repaired into NAME=value, or commented out: never another line.
            prop_assert!(lines[1].contains('=') || lines[1].starts_with("# "), "{:?}", lines[1]);
        }
    }
}

/// The attacks a hostile review found, run for real: each message is what a
/// planted log line or a crafted answer could make the service say, every
/// operator the runbook would try in turn runs in a real shell, and the
/// world is looked at afterwards.
#[test]
fn planted_messages_destroy_no_data_and_rewrite_no_other_line() {
    use super::facts::read_message;
    let root = tempfile::tempdir().unwrap();
    let at = |p: &str| root.path().join(p);
    std::fs::create_dir_all(at("data/db")).unwrap();
    std::fs::write(at("data/app.db"), "SQLite format 3\0rows").unwrap();
    std::fs::write(at("data/db/x"), "x").unwrap();
    std::fs::write(at("data/y"), "y").unwrap();
    std::fs::write(at(ENV), "DATABASE_URL=postgres://real\nLOG_FORMAT=json\n").unwrap();
    std::fs::write(at(CONFIG), "port = 9000\nmode = safe\n").unwrap();
    let listing = "./data/app.db\n./data/db/x\n./data/y\n./service.env\n./service.conf\n";
    let before = tree(root.path());
    for message in [
        "stale lock data/ is present",
        "stale lock `data` is present",
        "data/app.db is not a directory",
        "service.env line 1: expected `NAME=value`, found `HTTPS_PROXY: http://attacker:3128`",
        "service.conf line 2: invalid key `Port`",
        "data/app.db line 1: invalid key `-`",
        "service.conf line 1: expected `key = value`, found `port 1`",
    ] {
        for reading in read_message(message, false, PORT) {
            let all = fixes(&reading.fact, None, Some(listing)).unwrap_or_default();
            for action in all {
                run_in(root.path(), command_of(&action));
            }
        }
    }
    assert_eq!(changed(&before, &tree(root.path())), Vec::<String>::new());
}
