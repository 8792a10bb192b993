//! How a hint shapes the runbook: which checks, in which order, whether to
//! go first to those the service's error points at, and whether to fix a
//! file the error names without listing it first.
//!
//! The language, as a hint (or a SKILL.md's body) says it:
//! - each clause counts for the first check it names (health, log, locks,
//!   env, config, ready, permissions), in order;
//! - "skip checks the evidence rules out", "go straight to the check the
//!   error names" (and similar): *targeted*, the checks the service's own
//!   error implicates run first, the others only if those found nothing;
//! - "fix what the error names at once" (or "without listing first",
//!   "directly"): *direct*, a file the error blames (a stale lock, a missing
//!   marker, an unwritable directory) is fixed as soon as the error is read.
//!
//! A SKILL.md's front matter (between `---` lines) is not part of it.

use std::sync::LazyLock;

use regex::Regex;

use crate::action::Action;

/// One kind of thing an SRE checks, with its probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Check {
    Health,
    Log,
    /// Stale lock, pid or other files the service says must not be there.
    Locks,
    Env,
    Config,
    /// Marker files the service says are missing.
    Ready,
    Permissions,
}

impl Check {
    pub const ALL: [Check; 7] = [
        Check::Health,
        Check::Log,
        Check::Locks,
        Check::Env,
        Check::Config,
        Check::Ready,
        Check::Permissions,
    ];

    /// Words in a hint that name this check.
    fn keywords(self) -> &'static str {
        match self {
            Check::Health => r"/health|health ?check|\bhttp\b|\bprobe\b|endpoint|\bcurl\b",
            Check::Log => r"\blogs?\b|journal",
            Check::Locks => r"\block|lock ?files?|\bpid\b|pid ?files?|stale files?",
            Check::Env => r"\benv\b|environment|variable",
            Check::Config => r"\bconfig|\bport\b|setting",
            Check::Ready => r"\bready|readiness|marker",
            Check::Permissions => r"writable|permission|chmod|director(y|ies)",
        }
    }

    /// Evidence that points at this check (for hints that ask to skip
    /// checks the evidence rules out).
    fn implicated_by(self) -> &'static str {
        match self {
            Check::Health | Check::Log => r".",
            Check::Locks => r"\block|\bpid\b|\bstale\b|\bpresent\b|\bexists\b|left behind",
            Check::Env => r"environment|variable|not set",
            Check::Config => r"config|\.conf|maintenance|\bport\b|line \d+|setting",
            Check::Ready => r"\bready|flag|marker|missing|not found",
            Check::Permissions => r"permission|writable|cannot write|read-only|denied|eacces",
        }
    }

    fn keyword_regex(self) -> &'static Regex {
        static COMPILED: LazyLock<Vec<Regex>> = LazyLock::new(|| compile_all(Check::keywords));
        &COMPILED[self as usize]
    }

    pub fn implicated_regex(self) -> &'static Regex {
        static COMPILED: LazyLock<Vec<Regex>> = LazyLock::new(|| compile_all(Check::implicated_by));
        &COMPILED[self as usize]
    }

    /// The read-only probe that looks at what this check is about.
    pub fn probe(self) -> Action {
        let exec = |c: &str| Action::Exec(c.to_string());
        match self {
            Check::Health => Action::HttpGet("/health".into()),
            Check::Log => exec(LOG_PROBE),
            Check::Locks | Check::Ready => exec("find . -maxdepth 8 -type f"),
            Check::Env => exec(ENV_PROBE),
            Check::Config => exec(CONFIG_PROBE),
            Check::Permissions => exec("find . -maxdepth 8 -type d -ls"),
        }
    }
}

/// Lines cut at 400 characters, so 30 of them always fit in what a step
/// returns: a padded line cannot push the lines that say where the current
/// generation starts out of sight.
pub const LOG_PROBE: &str = "tail -n 30 service.log | cut -c1-400";
pub const ENV_PROBE: &str = "grep -H '' -- service.env service.env.example";
pub const CONFIG_PROBE: &str = "grep -Hn '' -- service.conf service.conf.example";

/// One compiled pattern per check, indexed by the check's discriminant.
fn compile_all(pattern: fn(Check) -> &'static str) -> Vec<Regex> {
    Check::ALL
        .iter()
        .map(|c| Regex::new(pattern(*c)).expect("static pattern"))
        .collect()
}

/// The broad look around a vague hint gets before any check.
pub fn exploration() -> Vec<Action> {
    [
        "ls -la",
        "cat service.conf",
        "cat service.env",
        LOG_PROBE,
        "ps aux",
        "ss -ltnp",
    ]
    .into_iter()
    .map(|c| Action::Exec(c.into()))
    .chain([Action::HttpGet("/health".into())])
    .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub checks: Vec<Check>,
    /// The hint named no check: explore first, then try all of them.
    pub explore: bool,
    /// Go first to the checks the service's error implicates; the others
    /// run only when those found nothing to fix.
    pub targeted: bool,
    /// Fix a file the service's error names (stale lock, missing marker,
    /// unwritable directory) as soon as the error is read, without listing
    /// first.
    pub direct: bool,
}

pub const DEFAULT_ORDER: [Check; 5] = [
    Check::Config,
    Check::Env,
    Check::Locks,
    Check::Ready,
    Check::Permissions,
];

impl Plan {
    /// Reads the checks a hint names, in the order it names them: each
    /// clause of the hint counts for the first check it mentions.
    pub fn from_hint(hint: &str) -> Self {
        let lower = without_front_matter(hint).to_lowercase();
        static CLAUSE: LazyLock<Regex> =
            LazyLock::new(|| Regex::new(r"\d+[).]\s|[.;\n]\s|\n").expect("static pattern"));
        static TARGETED: LazyLock<Regex> = LazyLock::new(|| {
            Regex::new(r"skip (the )?checks|only the checks?|straight to|jump to")
                .expect("static pattern")
        });
        let mut checks = Vec::new();
        for clause in CLAUSE.split(&lower) {
            let first = Check::ALL
                .iter()
                .filter_map(|check| {
                    check
                        .keyword_regex()
                        .find(clause)
                        .map(|m| (m.start(), *check))
                })
                .min_by_key(|(at, _)| *at);
            if let Some((_, check)) = first
                && !checks.contains(&check)
            {
                checks.push(check);
            }
        }
        static DIRECT: LazyLock<Regex> = LazyLock::new(|| {
            Regex::new(r"\bat once\b|without listing|\bdirectly\b").expect("static pattern")
        });
        let targeted = TARGETED.is_match(&lower);
        let direct = DIRECT.is_match(&lower);
        let acting = checks
            .iter()
            .any(|c| !matches!(c, Check::Health | Check::Log));
        if !acting {
            return Self {
                checks: DEFAULT_ORDER.to_vec(),
                explore: true,
                targeted,
                direct,
            };
        }
        Self {
            checks,
            explore: false,
            targeted,
            direct,
        }
    }
}

/// The text after a leading `---` ... `---` block (a SKILL.md's front
/// matter), or all of it.
pub fn without_front_matter(text: &str) -> &str {
    let trimmed = text.trim_start();
    let Some(rest) = trimmed.strip_prefix("---") else {
        return text;
    };
    let Some(rest) = rest
        .strip_prefix('\n')
        .or_else(|| rest.strip_prefix("\r\n"))
    else {
        return text;
    };
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        offset += line.len();
        if line.trim_end() == "---" {
            return &rest[offset..];
        }
    }
    text
}
