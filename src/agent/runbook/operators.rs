//! The fix operators: one per kind of fact, each an ordinary action the
//! gate judges, at most MEDIUM. A fact has a short list of fixes in order;
//! the loop uses the next one when the one before failed (at once, past
//! those its error rules out) or the fact came back after it. None may
//! destroy data a planted message names: a directory is emptied only when
//! it is a small flat lock, a file replaced only when empty, a line edited
//! only where it is the one the service quoted. Every
//! path and value reaches the shell through [`quote`](super::quote), after
//! `--`, so a name is never split, expanded or taken for an option.

use std::sync::LazyLock;

use regex::Regex;

use super::facts::{CONFIG, ENV, Fact, LineProblem, config_has, documented_default};
use super::quote::{is_plain_name, path_word, sed_replacement, shell_word};
use crate::action::Action;

/// What an operator needs before it can act.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// The config and its example, for a documented default.
    ConfigListing,
}

const MAX_LOCK_DIR_FILES: usize = 3;

/// Removes the files a listing shows under `dir`, then `dir` and the
/// directories between, deepest first; None when none is listed.
fn emptied_directory(dir: &str, listing: &str) -> Option<Action> {
    let prefix = format!("{dir}/");
    let files: Vec<&str> = listing
        .lines()
        .map(|line| line.strip_prefix("./").unwrap_or(line))
        .filter(|path| path.starts_with(&prefix))
        .collect();
    // A lock directory holds its owner's note, not a tree: anything more
    // is data, which no message may have removed.
    let last = dir.rsplit('/').next().unwrap_or(dir).to_lowercase();
    let lock_like = ["lock", "lck", "pid", "mutex"]
        .iter()
        .any(|w| last.contains(w));
    let flat = files.iter().all(|f| !f[prefix.len()..].contains('/'));
    if files.is_empty() || files.len() > MAX_LOCK_DIR_FILES || !flat || !lock_like {
        return None;
    }
    let mut dirs: Vec<&str> = vec![dir];
    for file in &files {
        let mut at = *file;
        while let Some((parent, _)) = at.rsplit_once('/') {
            if parent.len() <= dir.len() {
                break;
            }
            if !dirs.contains(&parent) {
                dirs.push(parent);
            }
            at = parent;
        }
    }
    dirs.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
    let words = |paths: &[&str]| {
        paths
            .iter()
            .map(|p| path_word(p))
            .collect::<Vec<_>>()
            .join(" ")
    };
    Some(Action::Exec(format!(
        "rm -f -- {} && rmdir -- {}",
        words(&files),
        words(&dirs)
    )))
}

/// `text` as an extended regular expression that matches only itself
/// (and is safe between the `/` of a sed `s` command).
fn ere_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for c in text.chars() {
        if "\\.*+?()[]{}|^$/".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A whole line whose trimmed text is `text` (the way the service quotes a
/// line it cannot parse; `export ` is dropped from an env line).
fn quoted_line(text: &str, env: bool) -> String {
    let export = if env { "(export[[:space:]]+)?" } else { "" };
    format!("^[[:space:]]*{export}{}[[:space:]]*$", ere_literal(text))
}

/// Whether what a failed operator said rules `candidate` out: the tools'
/// own words (a directory where a file was meant, a read-only parent).
pub fn ruled_out(candidate: &Action, failure: &str) -> bool {
    let Action::Exec(command) = candidate else {
        return false;
    };
    let opens_parent_to_remove =
        command.starts_with("chmod u+w -- ") && command.contains(" && rm -f -- ");
    let a_directory = failure.contains("Is a directory") || failure.contains("Directory not empty");
    (a_directory && opens_parent_to_remove)
        || (failure.contains("Permission denied") && command.starts_with("rmdir "))
}

/// A file (or nothing) at `path` replaced by an empty directory.
/// Only an empty file (or nothing) is replaced: a file with content is
/// data a message must not be able to destroy.
fn replaced_by_directory(path: &str) -> Action {
    Action::Exec(format!(
        "test ! -s {path} && rm -f -- {path} && mkdir -p -- {path}",
        path = path_word(path)
    ))
}

/// The fixes for `fact`, in the order to try them; empty when the fact
/// names nothing a fix may change. `config`: the last config listing read;
/// `files`: the last file listing (`find . -type f`) since the last change.
pub fn fixes(fact: &Fact, config: Option<&str>, files: Option<&str>) -> Result<Vec<Action>, Need> {
    let exec = |command: String| Action::Exec(command);
    Ok(match fact {
        Fact::Absent(path) => {
            let mut out = vec![
                exec(format!("rm -f -- {}", path_word(path))),
                exec(format!("rmdir -- {}", path_word(path))),
            ];
            // A file in a directory the service keeps read-only: open it
            // for the removal only.
            if let Some((parent, _)) = path.rsplit_once('/') {
                out.push(exec(format!(
                    "chmod u+w -- {parent} && rm -f -- {path} && chmod u-w -- {parent}",
                    parent = path_word(parent),
                    path = path_word(path)
                )));
            }
            // A lock held as a directory (mkdir-style): each file in it by
            // name, then the directories, deepest first. Never recursive.
            if let Some(action) = files.and_then(|listing| emptied_directory(path, listing)) {
                out.push(action);
            }
            out
        }
        Fact::Present(path) => vec![
            exec(match path.rsplit_once('/') {
                Some((parent, _)) => format!(
                    "mkdir -p -- {} && touch -- {}",
                    path_word(parent),
                    path_word(path)
                ),
                None => format!("touch -- {}", path_word(path)),
            }),
            // The service wanted a directory by that name after all.
            replaced_by_directory(path),
        ],
        Fact::Directory(path) => vec![
            exec(format!("mkdir -p -- {}", path_word(path))),
            // A file stands where the directory must be.
            replaced_by_directory(path),
            exec(format!("chmod u+w -- {}", path_word(path))),
        ],
        Fact::Writable(path) => vec![
            exec(format!("chmod u+w -- {}", path_word(path))),
            exec(format!("mkdir -p -- {}", path_word(path))),
            replaced_by_directory(path),
        ],
        Fact::BrokenLine {
            file,
            line,
            problem,
        } => {
            if file != CONFIG && file != ENV {
                return Ok(Vec::new());
            }
            let sed = |expression: String| {
                exec(format!(
                    "sed -E -i -- {} {}",
                    shell_word(&expression),
                    shell_word(file)
                ))
            };
            // Each edit is addressed by the line number *and* by what the
            // service quoted of it: a line that is not the one it quoted
            // (a message planted to overwrite another) stays as it is.
            let (quoted, repaired) = match problem {
                LineProblem::Unparsed(text) => (
                    quoted_line(text, file == ENV),
                    repair(text, file == ENV).map(|text| sed_replacement(&text)),
                ),
                LineProblem::InvalidKey(key) => (
                    format!("^[[:space:]]*{}[[:space:]]*=.*$", ere_literal(key)),
                    normal_key(key).map(|normal| {
                        // The rest of the line (`= value`) kept as it is.
                        format!("{normal} =\\1")
                    }),
                ),
            };
            let repair = repaired.map(|replacement| match problem {
                LineProblem::InvalidKey(key) => format!(
                    "{line}s/^[[:space:]]*{}[[:space:]]*=(.*)$/{replacement}/",
                    ere_literal(key)
                ),
                LineProblem::Unparsed(_) => format!("{line}s/{quoted}/{replacement}/"),
            });
            repair
                .into_iter()
                .chain([format!("{line}s/{quoted}/# &/")])
                .map(sed)
                .collect()
        }
        Fact::Variable(name) if is_plain_name(name) => vec![exec(format!(
            "grep -m1 -E -- {} {} >> {}",
            shell_word(&format!("^(export[[:space:]]+)?{name}=")),
            shell_word(&format!("{ENV}.example")),
            shell_word(ENV)
        ))],
        Fact::Variable(_) => Vec::new(),
        Fact::Setting {
            key,
            value,
            missing,
        } => {
            if !is_plain_name(key) {
                return Ok(Vec::new());
            }
            let value = match value {
                Some(value) => value.clone(),
                None => {
                    let listing = config.ok_or(Need::ConfigListing)?;
                    match documented_default(listing, key) {
                        Some(default) => default,
                        None => return Ok(Vec::new()),
                    }
                }
            };
            if let Some(listing) = config
                && current_value(listing, key).as_deref() == Some(value.as_str())
            {
                // Already so: the message blamed something else.
                return Ok(Vec::new());
            }
            let set = exec(format!(
                "sed -i -- {} {}",
                shell_word(&format!(
                    "s/^[[:space:]]*{key}[[:space:]]*=.*/{key} = {}/",
                    sed_replacement(&value)
                )),
                shell_word(CONFIG)
            ));
            let append = exec(format!(
                "printf '%s\\n' {} >> {}",
                shell_word(&format!("{key} = {value}")),
                shell_word(CONFIG)
            ));
            // A line is added only for a key the example documents: a
            // message cannot make up a setting the service never had. The
            // port is the task's own, not a message's.
            if *missing && key == "port" {
                return Ok(vec![append]);
            }
            if *missing {
                let listing = config.ok_or(Need::ConfigListing)?;
                return Ok(if documented_default(listing, key).is_some() {
                    vec![append]
                } else {
                    Vec::new()
                });
            }
            match config {
                Some(listing) if !config_has(listing, key) => {
                    if documented_default(listing, key).is_some() {
                        vec![append]
                    } else {
                        Vec::new()
                    }
                }
                Some(listing) if documented_default(listing, key).is_some() => vec![set, append],
                _ => vec![set],
            }
        }
    })
}

fn current_value(listing: &str, key: &str) -> Option<String> {
    super::facts::lines_of(listing, CONFIG, true)
        .into_iter()
        .filter_map(|(_, line)| super::facts::assignment(line))
        .rfind(|(k, _)| *k == key)
        .map(|(_, v)| v.to_string())
}

/// A key the config parser accepts: lowercase letters, digits and `_`.
fn normal_key(key: &str) -> Option<String> {
    let normal: String = key
        .trim()
        .chars()
        .map(|c| match c {
            'A'..='Z' => c.to_ascii_lowercase(),
            'a'..='z' | '0'..='9' | '_' => c,
            _ => '_',
        })
        .collect();
    let normal = normal.trim_matches('_').to_string();
    (!normal.is_empty()
        && normal
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase()))
    .then_some(normal)
}

/// A line in another shape (`key: value`, `key value`, `key == value`)
/// as the parser wants it; None when it is not a key and a value.
fn repair(text: &str, env: bool) -> Option<String> {
    static SHAPED: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^\s*(export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*(?::=|==|=>|:|\s)\s*(\S.*?)\s*$")
            .expect("static pattern")
    });
    let parts = SHAPED.captures(text)?;
    let (export, key, value) = (parts.get(1).is_some(), &parts[2], &parts[3]);
    if env {
        if !is_plain_name(key) {
            return None;
        }
        let export = if export { "export " } else { "" };
        return Some(format!("{export}{key}={value}"));
    }
    Some(format!("{} = {value}", normal_key(key)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commands(fact: Fact) -> Vec<String> {
        fixes(&fact, None, None)
            .unwrap()
            .into_iter()
            .map(|a| match a {
                Action::Exec(c) => c,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn file_fixes_quote_every_name_once() {
        assert_eq!(
            commands(Fact::Absent("run/my lock.lck".into()))[0],
            "rm -f -- 'run/my lock.lck'"
        );
        assert_eq!(
            commands(Fact::Present(".state/it's ready".into())),
            vec![
                r"mkdir -p -- '.state' && touch -- '.state/it'\''s ready'",
                r"test ! -s '.state/it'\''s ready' && rm -f -- '.state/it'\''s ready' && mkdir -p -- '.state/it'\''s ready'"
            ]
        );
        assert_eq!(
            commands(Fact::Writable("-cache".into()))[0],
            "chmod u+w -- '-cache'"
        );
        assert_eq!(
            commands(Fact::Directory("spool/out".into()))[0],
            "mkdir -p -- 'spool/out'"
        );
        let listing = "./run/d.lock/owner\n./run/d.lock/pid x\n./run/other\n./data/a\n";
        assert_eq!(
            fixes(&Fact::Absent("run/d.lock".into()), None, Some(listing)).unwrap()[3],
            Action::Exec(
                "rm -f -- 'run/d.lock/owner' 'run/d.lock/pid x' && rmdir -- 'run/d.lock'".into()
            )
        );
        // Not a lock's name, or a tree: data, never emptied.
        assert_eq!(
            fixes(&Fact::Absent("data".into()), None, Some(listing))
                .unwrap()
                .len(),
            2
        );
        let nested = "./run/d.lock/sub/x\n";
        assert_eq!(
            fixes(&Fact::Absent("run/d.lock".into()), None, Some(nested))
                .unwrap()
                .len(),
            3
        );
        assert_eq!(
            commands(Fact::Absent("run/locks/c.lock".into()))[2],
            "chmod u+w -- 'run/locks' && rm -f -- 'run/locks/c.lock' && chmod u-w -- 'run/locks'"
        );
    }

    #[test]
    fn broken_lines_are_repaired_in_place_or_commented_out() {
        let fact = |file: &str, text: &str| Fact::BrokenLine {
            file: file.into(),
            line: 6,
            problem: LineProblem::Unparsed(text.into()),
        };
        assert_eq!(
            commands(fact(CONFIG, "max_connections 256")),
            vec![
                "sed -E -i -- '6s/^[[:space:]]*max_connections 256[[:space:]]*$/max_connections = 256/' 'service.conf'",
                "sed -E -i -- '6s/^[[:space:]]*max_connections 256[[:space:]]*$/# &/' 'service.conf'"
            ]
        );
        assert_eq!(
            commands(fact(ENV, "DATABASE_URL: postgres://db/a&b"))[0],
            r"sed -E -i -- '6s/^[[:space:]]*(export[[:space:]]+)?DATABASE_URL: postgres:\/\/db\/a&b[[:space:]]*$/DATABASE_URL=postgres:\/\/db\/a\&b/' 'service.env'"
        );
        assert_eq!(
            commands(fact(CONFIG, "<<<<<<< HEAD")),
            vec!["sed -E -i -- '6s/^[[:space:]]*<<<<<<< HEAD[[:space:]]*$/# &/' 'service.conf'"]
        );
        // Only the two files the service parses.
        assert!(commands(fact("data/app.db", "x")).is_empty());
        let key = Fact::BrokenLine {
            file: CONFIG.into(),
            line: 2,
            problem: LineProblem::InvalidKey("Max-Connections".into()),
        };
        assert_eq!(
            commands(key)[0],
            r"sed -E -i -- '2s/^[[:space:]]*Max-Connections[[:space:]]*=(.*)$/max_connections =\1/' 'service.conf'"
        );
    }

    #[test]
    fn settings_take_the_stated_value_or_the_documented_default() {
        let stated = Fact::Setting {
            key: "log_level".into(),
            value: Some("info".into()),
            missing: false,
        };
        assert_eq!(
            commands(stated)[0],
            "sed -i -- 's/^[[:space:]]*log_level[[:space:]]*=.*/log_level = info/' 'service.conf'"
        );
        let default = Fact::Setting {
            key: "maintenance_mode".into(),
            value: None,
            missing: false,
        };
        assert_eq!(fixes(&default, None, None), Err(Need::ConfigListing));
        let listing = "service.conf:1:maintenance_mode = true\nservice.conf.example:1:maintenance_mode = false\n";
        assert_eq!(
            fixes(&default, Some(listing), None).unwrap()[0],
            Action::Exec("sed -i -- 's/^[[:space:]]*maintenance_mode[[:space:]]*=.*/maintenance_mode = false/' 'service.conf'".into())
        );
        let already = "service.conf:1:maintenance_mode = false\nservice.conf.example:1:maintenance_mode = false\n";
        assert!(fixes(&default, Some(already), None).unwrap().is_empty());
        let port = Fact::Setting {
            key: "port".into(),
            value: Some("9000".into()),
            missing: true,
        };
        assert_eq!(
            commands(port),
            vec![r"printf '%s\n' 'port = 9000' >> 'service.conf'"]
        );
    }

    #[test]
    fn a_variable_comes_from_the_example_file_by_name_only() {
        assert_eq!(
            commands(Fact::Variable("DATABASE_URL".into())),
            vec![
                r"grep -m1 -E -- '^(export[[:space:]]+)?DATABASE_URL=' 'service.env.example' >> 'service.env'"
            ]
        );
        assert!(commands(Fact::Variable("A;B".into())).is_empty());
    }
}
