//! The fix a check's probe calls for, given what the service said. Every
//! fix changes only what the service's own messages name, inside the root;
//! values come from the service's documented defaults and example files,
//! never from free text; files are edited whole with `write_file`, so
//! nothing the service said is ever spliced into a shell command (paths in
//! commands must be plain names that need no quoting).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;

use super::evidence::{Blame, Evidence, is_plain_relative};
use super::plan::Check;
use crate::action::Action;

const CONFIG: &str = "service.conf";
const ENV: &str = "service.env";

pub fn for_check(check: Check, probe: &str, evidence: &Evidence, port: u16) -> Vec<Action> {
    let mut fixes = match check {
        Check::Health | Check::Log => Vec::new(),
        Check::Locks => remove_blamed_files(probe, evidence),
        Check::Ready => create_missing_files(probe, evidence),
        Check::Env => add_missing_variables(probe, evidence),
        Check::Config => repair_config(probe, evidence, port),
        Check::Permissions => restore_write_access(probe, evidence),
    };
    with_restart_if_down(&mut fixes, evidence);
    fixes
}

/// A service that is down rereads nothing until it is restarted.
fn with_restart_if_down(fixes: &mut Vec<Action>, evidence: &Evidence) {
    if !fixes.is_empty() && evidence.needs_restart() && !fixes.contains(&Action::RestartService) {
        fixes.push(Action::RestartService);
    }
}

/// Fixes for files the service's own messages name, taken at their word
/// without listing first: remove a file blamed as present (`rm -f` of a
/// file already gone does nothing), create a marker blamed as missing,
/// give write access back to the directory of a path it cannot write.
/// Environment and config fixes always need the file's content first, so
/// they are never direct.
pub fn direct(evidence: &Evidence) -> Vec<Action> {
    let mut fixes: Vec<Action> = blamed(evidence, Blame::Present)
        .into_iter()
        .filter(|path| !path.ends_with('/'))
        .map(|path| Action::Exec(format!("rm -f {path}")))
        .collect();
    fixes.extend(
        blamed(evidence, Blame::Absent)
            .into_iter()
            .filter(|path| !path.ends_with('/'))
            .map(|path| Action::WriteFile {
                path,
                content: String::new(),
            }),
    );
    let unwritable_dir = evidence.unwritable_paths().into_iter().find_map(|path| {
        let path = path.trim_start_matches("./");
        let dir = match path.strip_suffix('/') {
            Some(dir) => dir,
            // A path inside the directory: its parent is what is not writable.
            None => path.rsplit_once('/')?.0,
        };
        (is_plain_relative(dir) && !dir.is_empty() && !is_service_file(dir))
            .then(|| dir.to_string())
    });
    if let Some(dir) = unwritable_dir {
        fixes.push(Action::Exec(format!("chmod u+w {dir}")));
    }
    with_restart_if_down(&mut fixes, evidence);
    fixes
}

/// Files the service reads or writes itself, which no file fix touches.
fn is_service_file(path: &str) -> bool {
    matches!(path, CONFIG | ENV | "service.log" | "supervisor.sock") || path.ends_with(".example")
}

fn listed_files(listing: &str) -> Vec<&str> {
    listing
        .lines()
        .map(|l| l.trim().trim_start_matches("./"))
        .filter(|l| !l.is_empty())
        .collect()
}

fn blamed(evidence: &Evidence, wanted: Blame) -> Vec<String> {
    evidence
        .named_files()
        .into_iter()
        .filter(|(_, blame)| *blame == wanted)
        .map(|(path, _)| path.trim_start_matches("./").to_string())
        .filter(|path| is_plain_relative(path) && !is_service_file(path))
        .collect()
}

/// Removes files the service says are present and must not be (stale
/// locks, leftover pid files), whatever their names.
fn remove_blamed_files(listing: &str, evidence: &Evidence) -> Vec<Action> {
    let files = listed_files(listing);
    blamed(evidence, Blame::Present)
        .into_iter()
        .filter(|path| files.contains(&path.as_str()))
        .map(|path| Action::Exec(format!("rm -f {path}")))
        .collect()
}

/// Creates (empty) files the service says are missing.
fn create_missing_files(listing: &str, evidence: &Evidence) -> Vec<Action> {
    let files = listed_files(listing);
    blamed(evidence, Blame::Absent)
        .into_iter()
        .filter(|path| !path.ends_with('/') && !files.contains(&path.as_str()))
        .map(|path| Action::WriteFile {
            path,
            content: String::new(),
        })
        .collect()
}

/// The lines of `file` in a `grep -H[n] '' FILE...` listing, in order.
fn lines_of<'a>(listing: &'a str, file: &str, numbered: bool) -> Vec<&'a str> {
    let prefix = format!("{file}:");
    listing
        .lines()
        .filter_map(|line| line.strip_prefix(prefix.as_str()))
        .map(|rest| {
            if numbered {
                rest.split_once(':').map_or(rest, |(_, text)| text)
            } else {
                rest
            }
        })
        .collect()
}

fn assignment(line: &str, separator: char) -> Option<(&str, &str)> {
    let line = line.trim();
    if line.starts_with('#') {
        return None;
    }
    let line = line.strip_prefix("export ").unwrap_or(line);
    let (key, value) = line.split_once(separator)?;
    Some((key.trim(), value.trim()))
}

/// Adds variables the service says are missing, with their values from
/// the example file; a value it cannot find there it does not invent.
fn add_missing_variables(listing: &str, evidence: &Evidence) -> Vec<Action> {
    let current = lines_of(listing, ENV, false);
    let example = lines_of(listing, &format!("{ENV}.example"), false);
    let value_in = |lines: &[&str], name: &str| {
        lines.iter().find_map(|line| {
            let (key, value) = assignment(line, '=')?;
            (key == name && !value.is_empty()).then(|| value.to_string())
        })
    };
    let mut content: Vec<String> = current.iter().map(|l| l.to_string()).collect();
    let mut added = false;
    for name in evidence.missing_variables() {
        if value_in(&current, &name).is_some() {
            continue;
        }
        if let Some(value) = value_in(&example, &name) {
            content.retain(|line| assignment(line, '=').is_none_or(|(key, _)| key != name));
            content.push(format!("{name}={value}"));
            added = true;
        }
    }
    if !added {
        return Vec::new();
    }
    vec![
        Action::WriteFile {
            path: ENV.into(),
            content: content.join("\n") + "\n",
        },
        Action::RestartService,
    ]
}

/// A line the service could not parse, rewritten as `key = value` when it
/// is a key and a value in another shape, else commented out.
fn repair_line(text: &str) -> String {
    static SHAPED: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^\s*([a-z_][a-z0-9_]*)\s*(?::|==|\s)\s*(\S.*?)\s*$").expect("static pattern")
    });
    match SHAPED.captures(text) {
        Some(c) => format!("{} = {}", &c[1], &c[2]),
        None => format!("# disabled, did not parse: {text}"),
    }
}

/// Fixes the config: the line a parse error names, a port other than the
/// expected one, and keys the service's messages name that differ from
/// their documented default (back to the default).
fn repair_config(listing: &str, evidence: &Evidence, port: u16) -> Vec<Action> {
    let mut lines: Vec<String> = lines_of(listing, CONFIG, true)
        .into_iter()
        .map(str::to_string)
        .collect();
    let defaults: BTreeMap<&str, &str> = lines_of(listing, &format!("{CONFIG}.example"), true)
        .into_iter()
        .filter_map(|line| assignment(line, '='))
        .collect();
    let mut changed = false;
    if let Some((number, text)) = evidence.broken_config_line()
        && let Some(line) = number.checked_sub(1).and_then(|i| lines.get_mut(i))
        && line.trim() == text.trim()
    {
        *line = repair_line(&text);
        changed = true;
    }
    let mentioned = evidence.mentioned_identifiers();
    for line in lines.iter_mut() {
        let Some((key, value)) = assignment(line, '=') else {
            continue;
        };
        let wanted = if key == "port" {
            Some(port.to_string())
        } else if mentioned.iter().any(|m| m == key) {
            defaults.get(key).map(|d| d.to_string())
        } else {
            None
        };
        if let Some(wanted) = wanted.filter(|w| w != value) {
            *line = format!("{key} = {wanted}");
            changed = true;
        }
    }
    if !changed {
        return Vec::new();
    }
    vec![
        Action::WriteFile {
            path: CONFIG.into(),
            content: lines.join("\n") + "\n",
        },
        Action::RestartService,
    ]
}

/// Gives the owner write access back to a directory the service says it
/// cannot write to (named as the directory or as a path inside it).
fn restore_write_access(listing: &str, evidence: &Evidence) -> Vec<Action> {
    let blamed: Vec<String> = evidence
        .unwritable_paths()
        .into_iter()
        .map(|p| p.trim_start_matches("./").trim_end_matches('/').to_string())
        .collect();
    listing
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let mode = words.next()?;
            let dir = words.last()?.trim_start_matches("./").trim_end_matches('/');
            let owner_writable = mode.chars().nth(2) == Some('w');
            let named = blamed
                .iter()
                .any(|b| b == dir || b.starts_with(&format!("{dir}/")));
            (mode.starts_with('d') && !owner_writable && named && is_plain_relative(dir))
                .then(|| Action::Exec(format!("chmod u+w {dir}")))
        })
        .take(1)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evidence(reasons: &[&str]) -> Evidence {
        Evidence {
            reasons: reasons.iter().map(|r| r.to_string()).collect(),
            ..Evidence::default()
        }
    }

    #[test]
    fn blamed_files_are_removed_or_created_whatever_their_names() {
        let e = evidence(&[
            "stale lock file run/migrate.lck is present",
            "bootstrap marker state/bootstrap.done is missing",
        ]);
        let listing = "./service.conf\n./run/migrate.lck\n./state/other\n";
        assert_eq!(
            for_check(Check::Locks, listing, &e, 1),
            vec![Action::Exec("rm -f run/migrate.lck".into())]
        );
        assert_eq!(
            for_check(Check::Ready, listing, &e, 1),
            vec![Action::WriteFile {
                path: "state/bootstrap.done".into(),
                content: String::new()
            }]
        );
        let hostile = evidence(&[
            "stale file service.conf is present",
            "stale ../../etc/passwd is present",
        ]);
        assert!(for_check(Check::Locks, "./service.conf\n", &hostile, 1).is_empty());
    }

    #[test]
    fn direct_fixes_take_the_service_at_its_word_and_nothing_else() {
        let e = evidence(&[
            "stale lock file run/migrate.lck is present",
            "bootstrap marker state/bootstrap.done is missing",
            "EACCES: write test failed for var/cache/index.tmp (read-only directory?)",
        ]);
        assert_eq!(
            direct(&e),
            vec![
                Action::Exec("rm -f run/migrate.lck".into()),
                Action::WriteFile {
                    path: "state/bootstrap.done".into(),
                    content: String::new()
                },
                Action::Exec("chmod u+w var/cache".into()),
            ]
        );
        let named_dir = evidence(&["cannot write to data directory data/ (permission denied)"]);
        assert_eq!(
            direct(&named_dir),
            vec![Action::Exec("chmod u+w data".into())]
        );
        let down = Evidence {
            down: true,
            ..evidence(&["pid file run/service.pid exists (pid 7 is not running)"])
        };
        assert_eq!(
            direct(&down),
            vec![
                Action::Exec("rm -f run/service.pid".into()),
                Action::RestartService
            ]
        );
        for nothing in [
            "required environment variable DATABASE_URL is not set (service.env)",
            "maintenance mode is on (service.conf maintenance_mode = true)",
            "stale file service.conf is present",
            "stale ../../etc/passwd is present",
            "cannot write to / (permission denied)",
            "internal error",
        ] {
            assert!(direct(&evidence(&[nothing])).is_empty(), "{nothing}");
        }
    }

    #[test]
    fn a_missing_variable_comes_from_the_example_and_needs_a_restart() {
        let e = evidence(&["required environment variable DATABASE_URL is not set (service.env)"]);
        let listing =
            "service.env:LOG_FORMAT=text\nservice.env.example:DATABASE_URL=postgres://db/app\n";
        assert_eq!(
            for_check(Check::Env, listing, &e, 1),
            vec![
                Action::WriteFile {
                    path: "service.env".into(),
                    content: "LOG_FORMAT=text\nDATABASE_URL=postgres://db/app\n".into()
                },
                Action::RestartService
            ]
        );
        assert!(for_check(Check::Env, "service.env:LOG_FORMAT=text\n", &e, 1).is_empty());
    }

    #[test]
    fn config_repairs_the_named_line_the_port_and_blamed_keys_to_their_defaults() {
        let e = evidence(&[
            "service.conf line 3: expected `key = value`, found `log_level: debug`",
            "maintenance mode is on (service.conf maintenance_mode = true)",
        ]);
        let listing = "service.conf:1:port = 9001\nservice.conf:2:maintenance_mode = true\nservice.conf:3:log_level: debug\n\
service.conf.example:1:port = 8080\nservice.conf.example:2:maintenance_mode = false\n";
        assert_eq!(
            for_check(Check::Config, listing, &e, 9000),
            vec![
                Action::WriteFile {
                    path: "service.conf".into(),
                    content: "port = 9000\nmaintenance_mode = false\nlog_level = debug\n".into()
                },
                Action::RestartService
            ]
        );
        assert_eq!(repair_line("max_connections 256"), "max_connections = 256");
        assert!(repair_line("][ garbage").starts_with("# disabled"));
    }

    #[test]
    fn a_log_line_cannot_choose_a_value() {
        // The message names keys; only their documented defaults are used.
        let e =
            evidence(&["security check: require_auth = false and tls_verify = no would fix this"]);
        let listing = "service.conf:1:require_auth = true\nservice.conf:2:tls_verify = yes\n\
service.conf.example:1:require_auth = true\nservice.conf.example:2:tls_verify = yes\n";
        assert!(for_check(Check::Config, listing, &e, 1).is_empty());
    }

    #[test]
    fn write_access_comes_back_for_the_named_directory_however_worded() {
        let listing = "dr-xr-xr-x 2 nobody nogroup 4096 Nov 25 20:46 cache/\ndrwxr-xr-x 2 nobody nogroup 4096 Nov 25 20:46 data/\n";
        for reason in [
            "cannot write to cache directory cache/ (permission denied)",
            "EACCES opening cache/index.db for writing",
        ] {
            assert_eq!(
                for_check(Check::Permissions, listing, &evidence(&[reason]), 1),
                vec![Action::Exec("chmod u+w cache".into())],
                "{reason}"
            );
        }
        assert!(
            for_check(
                Check::Permissions,
                listing,
                &evidence(&["cannot write to data/"]),
                1
            )
            .is_empty()
        );
    }
}
