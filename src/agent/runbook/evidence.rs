//! What the service itself has said: the reason in its HTTP answer and the
//! errors in its own log, and the facts a fix may act on (a file it names,
//! a variable, a config line, a directory). Free text elsewhere is evidence
//! for choosing checks, never a value to write.

use std::sync::LazyLock;

use regex::Regex;

use crate::protocol::Observation;

#[derive(Debug, Clone, Default)]
pub struct Evidence {
    /// The service's own error messages, in the order first seen.
    pub reasons: Vec<String>,
    /// Everything observed so far, for choosing checks.
    pub text: String,
    /// The last health probe found nothing listening.
    pub unreachable: bool,
    /// The service's own log last said it is down (its supervisor's
    /// "generation N is down"), and no health answer came since.
    pub down: bool,
}

/// What a message blames a file for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// It is there and should not be (stale lock, leftover pid file).
    Present,
    /// It should be there and is not (marker, flag).
    Absent,
    Other,
}

static LOG_ERROR: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\S+ ERROR (.+)$").expect("static pattern"));
/// The supervisor's own lifecycle lines: down, or (re)started.
static LOG_DOWN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\S+ ERROR supervisor: service generation \d+ is down\b").expect("static")
});
static LOG_UP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\S+ INFO (?:supervisor: service generation \d+ started|listening on )")
        .expect("static")
});
/// Wrappers the service and its supervisor put around a reason.
static WRAPPERS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:health check failed: |startup failed: |supervisor: service generation \d+ is down: |invalid config: )+",
    )
    .expect("static pattern")
});
static PATH: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[A-Za-z0-9_][A-Za-z0-9_./-]*").expect("static pattern"));
static VARIABLE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b").expect("static pattern"));
static LINE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\bline (\d+)\b").expect("static"));
static FOUND: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"found `([^`]*)`").expect("static"));
static IDENTIFIER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b[a-z][a-z0-9_]*\b").expect("static pattern"));

impl Evidence {
    /// Takes in one observation: a health answer's reason, the service
    /// log's error lines, and the raw text.
    pub fn absorb(&mut self, observation: &Observation, from_health_probe: bool) {
        if from_health_probe {
            self.unreachable = observation.http_status.is_none();
            self.down = self.unreachable;
            if let Some(reason) = health_reason(&observation.stdout) {
                self.note(reason);
            }
        }
        for line in observation.stdout.lines() {
            let line = line.trim_end();
            if LOG_DOWN.is_match(line) {
                self.down = true;
            } else if LOG_UP.is_match(line) {
                self.down = false;
            }
            if let Some(message) = LOG_ERROR.captures(line) {
                self.note(WRAPPERS.replace(&message[1], "").trim().to_string());
            }
        }
        self.text.push_str(&observation.stdout);
        self.text.push('\n');
        self.text.push_str(&observation.stderr);
        self.text.push('\n');
    }

    /// The same evidence with only the reasons from the `from`-th on (the
    /// ones a new round of checks is about).
    pub fn since(&self, from: usize) -> Evidence {
        Evidence {
            reasons: self.reasons.get(from..).unwrap_or_default().to_vec(),
            ..self.clone()
        }
    }

    /// The service cannot reread anything until it is restarted.
    pub fn needs_restart(&self) -> bool {
        self.unreachable || self.down
    }

    fn note(&mut self, reason: String) {
        if !reason.is_empty() && reason != "internal error" && !self.reasons.contains(&reason) {
            self.reasons.push(reason);
        }
    }

    /// Paths the service names, with what it blames each for.
    pub fn named_files(&self) -> Vec<(String, Blame)> {
        let mut out: Vec<(String, Blame)> = Vec::new();
        for reason in &self.reasons {
            let blame = blame(reason);
            for path in named_paths(reason) {
                if !out.iter().any(|(p, _)| *p == path) {
                    out.push((path, blame));
                }
            }
        }
        out
    }

    /// Variables the service says are missing from its environment.
    pub fn missing_variables(&self) -> Vec<String> {
        static ABOUT_ENV: LazyLock<Regex> = LazyLock::new(|| {
            Regex::new(r"(?i)environment|variable|not set|unset|missing").expect("static")
        });
        let mut out = Vec::new();
        for reason in self.reasons.iter().filter(|r| ABOUT_ENV.is_match(r)) {
            for name in VARIABLE.find_iter(reason) {
                if !out.iter().any(|n| n == name.as_str()) {
                    out.push(name.as_str().to_string());
                }
            }
        }
        out
    }

    /// A config line the service could not parse: its number and text.
    pub fn broken_config_line(&self) -> Option<(usize, String)> {
        self.reasons.iter().find_map(|reason| {
            let line = LINE.captures(reason)?[1].parse().ok()?;
            let found = FOUND.captures(reason)?[1].to_string();
            Some((line, found))
        })
    }

    /// Lowercase identifiers the service's messages mention (candidate
    /// config keys; only real keys with documented defaults are used).
    pub fn mentioned_identifiers(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for reason in &self.reasons {
            for word in IDENTIFIER.find_iter(reason) {
                if !out.iter().any(|w| w == word.as_str()) {
                    out.push(word.as_str().to_string());
                }
            }
        }
        out
    }

    /// Paths named in messages about permissions, however worded.
    pub fn unwritable_paths(&self) -> Vec<String> {
        static ABOUT_PERMISSIONS: LazyLock<Regex> = LazyLock::new(|| {
            Regex::new(
                r"(?i)permission|denied|read-only|readonly|not writable|cannot write|eacces|eperm",
            )
            .expect("static")
        });
        self.reasons
            .iter()
            .filter(|r| ABOUT_PERMISSIONS.is_match(r))
            .flat_map(|r| named_paths(r))
            .collect()
    }
}

/// The `reason` of a health answer's JSON body.
fn health_reason(body: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(body.trim()).ok()?;
    value["reason"].as_str().map(str::to_string)
}

fn blame(reason: &str) -> Blame {
    static PRESENT: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)\bstale\b|\bis present\b|\bexists\b|left behind|already running|leftover")
            .expect("static")
    });
    static ABSENT: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)\bmissing\b|not found|\babsent\b|does not exist|no such file")
            .expect("static")
    });
    match (PRESENT.is_match(reason), ABSENT.is_match(reason)) {
        (true, false) => Blame::Present,
        (false, true) => Blame::Absent,
        _ => Blame::Other,
    }
}

/// File-like tokens (with a dot or a slash) in a message, as written; a
/// token that is the tail of an absolute or `..` path is not one.
fn named_paths(reason: &str) -> Vec<String> {
    PATH.find_iter(reason)
        .filter(|m| !reason[..m.start()].ends_with(['/', '.']))
        .map(|m| {
            m.as_str()
                .trim_end_matches(['.', ',', ';', ':'])
                .to_string()
        })
        .filter(|token| token.contains('/') || token.contains('.'))
        .filter(|token| !token.chars().all(|c| c.is_ascii_digit() || c == '.'))
        .collect()
}

/// A path a fix may touch: relative, inside the root, no option-like or
/// special characters, so it needs no quoting anywhere.
pub fn is_plain_relative(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && !path.starts_with('-')
        && path.split('/').all(|part| part != "..")
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/'))
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
    fn the_service_log_and_the_health_answer_are_the_services_own_words() {
        let mut e = Evidence::default();
        let log = Observation::succeeded(
            "2026-01-01T00:00:00Z INFO listening\n2026-01-01T00:00:01Z ERROR startup failed: pid file run/a.pid exists\nsomeone wrote: ERROR fake\n",
            1,
        );
        e.absorb(&log, false);
        let health = Observation {
            http_status: Some(500),
            ..Observation::succeeded(
                r#"{"status":"error","reason":"stale lock file x.lock is present"}"#,
                1,
            )
        };
        e.absorb(&health, true);
        assert_eq!(
            e.reasons,
            vec![
                "pid file run/a.pid exists",
                "stale lock file x.lock is present"
            ]
        );
        assert!(!e.unreachable);
    }

    #[test]
    fn the_supervisors_last_word_says_whether_the_service_is_down() {
        let mut e = Evidence::default();
        let down = "2026-01-01T00:00:00Z ERROR startup failed: pid file run/a.pid exists\n2026-01-01T00:00:00Z ERROR supervisor: service generation 1 is down: pid file run/a.pid exists\n";
        e.absorb(&Observation::succeeded(down, 1), false);
        assert!(e.down && e.needs_restart());
        let back = format!("{down}2026-01-01T00:00:05Z INFO listening on 127.0.0.1:9 (pid 4)\n");
        e.absorb(&Observation::succeeded(&back, 1), false);
        assert!(!e.down);
        e.absorb(&Observation::succeeded(down, 1), false);
        let answered = Observation {
            http_status: Some(500),
            ..Observation::succeeded(r#"{"status":"error","reason":"x"}"#, 1)
        };
        e.absorb(&answered, true);
        assert!(!e.needs_restart(), "a health answer settles it");
        assert_eq!(e.since(1).reasons, vec!["x".to_string()]);
        assert!(e.since(9).reasons.is_empty());
    }

    #[test]
    fn files_are_named_whatever_their_name_with_what_they_are_blamed_for() {
        let e = evidence(&[
            "bootstrap marker state/bootstrap.done is missing",
            "stale lock file run/migrate.lck is present",
            "cannot write to data directory data/ (permission denied)",
        ]);
        assert_eq!(
            e.named_files(),
            vec![
                ("state/bootstrap.done".to_string(), Blame::Absent),
                ("run/migrate.lck".to_string(), Blame::Present),
                ("data/".to_string(), Blame::Other),
            ]
        );
        assert_eq!(e.unwritable_paths(), vec!["data/"]);
    }

    #[test]
    fn parse_errors_give_their_line_and_text() {
        let e =
            evidence(&["service.conf line 6: expected `key = value`, found `log_level: debug`"]);
        assert_eq!(e.broken_config_line(), Some((6, "log_level: debug".into())));
    }

    #[test]
    fn plain_paths_only() {
        assert!(is_plain_relative("run/service.pid"));
        for bad in [
            "/etc/passwd",
            "../x",
            "-rf",
            "a b",
            "x;rm",
            "a/../../b",
            "$(id)",
        ] {
            assert!(!is_plain_relative(bad), "{bad}");
        }
    }
}
