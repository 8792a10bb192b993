//! The runbook brain: deterministic and offline. It follows the checks its
//! hint or skill names, in their order; each check is a real probe of the
//! real service, and a real fix when its evidence fires. Checks act on
//! what the service, its log and its files say (a named file, variable,
//! key or port), never on a scenario id. A hint that names no check (the
//! seed's "Fix the bug.") gets a broad exploration first.

use std::collections::VecDeque;
use std::sync::LazyLock;

use futures::future::BoxFuture;
use regex::Regex;

use super::{Brain, BrainError, Feedback, Proposal, Task, Turn};
use crate::workspace::{Action, Observation};

/// One thing an SRE checks, with its probe and its fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Health,
    Log,
    Locks,
    Env,
    Config,
    Ready,
    Permissions,
}

impl Check {
    const ALL: [Check; 7] = [
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
            Check::Log => r"\blogs?\b|service\.log|journal",
            Check::Locks => r"\block|lock ?files?|\.lock|\bpid\b|pid ?files?",
            Check::Env => r"service\.env|\benv\b|environment|variable",
            Check::Config => r"service\.conf|\bconfig|\bport\b|maintenance",
            Check::Ready => r"\bready|readiness",
            Check::Permissions => r"writable|permission|chmod|data dir",
        }
    }

    /// Evidence that points at this check (used when the hint asks to
    /// skip checks the evidence rules out).
    fn implicated_by(self) -> &'static str {
        match self {
            Check::Health | Check::Log => r".",
            Check::Locks => r"\.lock|\.pid|lock file|pid file",
            Check::Env => r"environment|variable|not set",
            Check::Config => r"service\.conf|config|maintenance|\bport\b",
            Check::Ready => r"ready|flag",
            Check::Permissions => r"permission|writable|cannot write",
        }
    }

    fn keyword_regex(self) -> &'static Regex {
        static COMPILED: LazyLock<Vec<Regex>> = LazyLock::new(|| compile_all(Check::keywords));
        &COMPILED[self as usize]
    }

    fn implicated_regex(self) -> &'static Regex {
        static COMPILED: LazyLock<Vec<Regex>> = LazyLock::new(|| compile_all(Check::implicated_by));
        &COMPILED[self as usize]
    }

    fn probe(self) -> Action {
        match self {
            Check::Health => Action::HttpGet("/health".into()),
            Check::Log => Action::Exec("tail -n 30 service.log".into()),
            Check::Locks => {
                Action::Exec("find . -maxdepth 3 \\( -name '*.lock' -o -name '*.pid' \\)".into())
            }
            Check::Env => Action::Exec("grep -H '' service.env service.env.example".into()),
            Check::Config => Action::Exec("cat service.conf".into()),
            Check::Ready => Action::Exec("ls -la".into()),
            Check::Permissions => Action::Exec("ls -ld -- */".into()),
        }
    }
}

/// One compiled pattern per check, indexed by the check's discriminant.
fn compile_all(pattern: fn(Check) -> &'static str) -> Vec<Regex> {
    Check::ALL
        .iter()
        .map(|c| Regex::new(pattern(*c)).expect("static pattern"))
        .collect()
}

/// The broad look around a vague hint gets before any check.
fn exploration() -> Vec<Action> {
    [
        "ls -la",
        "cat service.conf",
        "cat service.env",
        "tail -n 30 service.log",
        "ps aux",
        "ss -ltnp",
    ]
    .into_iter()
    .map(|c| Action::Exec(c.into()))
    .chain([Action::HttpGet("/health".into())])
    .collect()
}

/// How a hint shapes the runbook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub checks: Vec<Check>,
    /// The hint named no check: explore first, then try all of them.
    pub explore: bool,
    /// Skip checks the evidence does not point at.
    pub targeted: bool,
}

const DEFAULT_ORDER: [Check; 5] = [
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
        let lower = hint.to_lowercase();
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
        let targeted = TARGETED.is_match(&lower);
        let acting = checks
            .iter()
            .any(|c| !matches!(c, Check::Health | Check::Log));
        if !acting {
            return Self {
                checks: DEFAULT_ORDER.to_vec(),
                explore: true,
                targeted,
            };
        }
        Self {
            checks,
            explore: false,
            targeted,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Explore,
    Probe(Check),
    Fix,
    Verify,
}

/// What the runbook has learned about the service so far.
#[derive(Debug, Default)]
struct Evidence {
    text: String,
    /// A health probe found nothing listening.
    unreachable: bool,
}

pub struct RunbookBrain {
    plan: Plan,
    remaining: VecDeque<Check>,
    queue: VecDeque<(Action, Purpose)>,
    in_flight: Option<Purpose>,
    evidence: Evidence,
    finished: Option<String>,
    expected_port: u16,
}

impl RunbookBrain {
    pub fn new(task: &Task) -> Self {
        let plan = Plan::from_hint(&task.hint);
        let mut queue = VecDeque::new();
        if plan.explore {
            queue.extend(exploration().into_iter().map(|a| (a, Purpose::Explore)));
        }
        Self {
            remaining: plan.checks.iter().copied().collect(),
            plan,
            queue,
            in_flight: None,
            evidence: Evidence::default(),
            finished: None,
            expected_port: task.expected_port,
        }
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    fn absorb(&mut self, purpose: Purpose, turn: &Turn) {
        let Feedback::Observed(observation) = &turn.feedback else {
            return;
        };
        if matches!(turn.action, Action::HttpGet(_)) {
            self.evidence.unreachable = observation.http_status.is_none();
            if is_healthy(observation) {
                self.finished = Some("the service answers 200 status ok".into());
                return;
            }
        }
        // A probe's fix is decided on what the service said before it: a
        // lock file is removed because the service blames it, not because
        // the listing shows it.
        if let Purpose::Probe(check) = purpose {
            let fixes = fixes_for(check, observation, &self.evidence, self.expected_port);
            if !fixes.is_empty() {
                let restarts = fixes.iter().any(|f| matches!(f, Action::RestartService));
                self.queue
                    .extend(fixes.into_iter().map(|a| (a, Purpose::Fix)));
                if !restarts && self.evidence.unreachable {
                    self.queue.push_back((Action::RestartService, Purpose::Fix));
                }
                self.queue
                    .push_back((Action::HttpGet("/health".into()), Purpose::Verify));
            }
        }
        self.evidence.text.push_str(&observation.stdout);
        self.evidence.text.push('\n');
        self.evidence.text.push_str(&observation.stderr);
        self.evidence.text.push('\n');
    }

    fn next_action(&mut self) -> Option<(Action, Purpose)> {
        if let Some(next) = self.queue.pop_front() {
            return Some(next);
        }
        while let Some(check) = self.remaining.pop_front() {
            if self.plan.targeted && !self.implicated(check) {
                continue;
            }
            return Some((check.probe(), Purpose::Probe(check)));
        }
        None
    }

    /// With no specific evidence yet, every check is implicated.
    fn implicated(&self, check: Check) -> bool {
        let text = self.evidence.text.to_lowercase();
        let specific = Check::ALL
            .iter()
            .filter(|c| !matches!(c, Check::Health | Check::Log))
            .any(|c| c.implicated_regex().is_match(&text));
        !specific || check.implicated_regex().is_match(&text)
    }
}

impl Brain for RunbookBrain {
    fn name(&self) -> &'static str {
        "runbook"
    }

    fn propose<'a>(
        &'a mut self,
        _task: &'a Task,
        history: &'a [Turn],
    ) -> BoxFuture<'a, Result<Proposal, BrainError>> {
        Box::pin(async move {
            if let (Some(purpose), Some(last)) = (self.in_flight.take(), history.last()) {
                self.absorb(purpose, last);
            }
            if let Some(summary) = self.finished.take() {
                return Ok(Proposal::Done { summary });
            }
            match self.next_action() {
                Some((action, purpose)) => {
                    self.in_flight = Some(purpose);
                    Ok(Proposal::Act {
                        action,
                        declared_risk: None,
                    })
                }
                None => Ok(Proposal::Done {
                    summary: "every check ran; none found a fault to fix".into(),
                }),
            }
        })
    }
}

fn is_healthy(observation: &Observation) -> bool {
    observation
        .http_status
        .is_some_and(|status| crate::verify::is_healthy_answer(status, &observation.stdout))
}

/// The fix a check's probe calls for, given all evidence so far.
fn fixes_for(check: Check, probe: &Observation, evidence: &Evidence, port: u16) -> Vec<Action> {
    match check {
        Check::Health | Check::Log => Vec::new(),
        Check::Locks => lock_fixes(&probe.stdout, &evidence.text),
        Check::Env => env_fixes(&probe.stdout, &evidence.text),
        Check::Config => config_fixes(&probe.stdout, &evidence.text, port),
        Check::Ready => missing_file_fixes(&probe.stdout, &evidence.text),
        Check::Permissions => permission_fixes(&probe.stdout, &evidence.text),
    }
}

/// Removes lock or pid files the service's own messages name.
fn lock_fixes(found: &str, evidence: &str) -> Vec<Action> {
    found
        .lines()
        .map(|l| l.trim().trim_start_matches("./"))
        .filter(|path| !path.is_empty() && evidence.contains(path))
        .map(|path| Action::Exec(format!("rm -f {}", shell_quote(path))))
        .collect()
}

/// Adds a variable the service says is missing, with the value from
/// `service.env.example`; a value it cannot find it does not invent.
fn env_fixes(listing: &str, evidence: &str) -> Vec<Action> {
    let var = Regex::new(r"\b([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)\b").expect("static");
    let mentioned = evidence
        .lines()
        .filter(|line| {
            let l = line.to_lowercase();
            l.contains("not set") || l.contains("missing") || l.contains("environment")
        })
        .flat_map(|line| {
            var.captures_iter(line)
                .map(|c| c[1].to_string())
                .collect::<Vec<_>>()
        });
    let value_in = |file: &str, name: &str| {
        listing.lines().find_map(|line| {
            let rest = line.strip_prefix(file)?.strip_prefix(':')?;
            let rest = rest.trim().strip_prefix("export ").unwrap_or(rest.trim());
            let (key, value) = rest.split_once('=')?;
            (key.trim() == name && !value.trim().is_empty()).then(|| value.trim().to_string())
        })
    };
    let mut fixes = Vec::new();
    for name in mentioned {
        if value_in("service.env", &name).is_some() {
            continue;
        }
        if let Some(value) = value_in("service.env.example", &name) {
            fixes.push(Action::Exec(format!(
                "echo {} >> service.env",
                shell_quote(&format!("{name}={value}"))
            )));
            fixes.push(Action::RestartService);
            break;
        }
    }
    fixes
}

/// Repairs lines that do not parse, a port other than the expected one,
/// and a boolean flag the service blames.
fn config_fixes(config: &str, evidence: &str, port: u16) -> Vec<Action> {
    let mut edits = Vec::new();
    let broken = Regex::new(r"^([a-z_][a-z0-9_]*)\s+([^=\s]+)$").expect("static");
    for line in config.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(c) = broken.captures(line) {
            edits.push(format!(
                "s/^{}$/{} = {}/",
                sed_escape(line),
                &c[1],
                sed_escape(&c[2])
            ));
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        if key == "port" && value != port.to_string() {
            edits.push(format!("s/^port = .*/port = {port}/"));
        }
        let blamed = evidence.contains(&format!("{key} = {value}"));
        let flipped = match value {
            "true" => Some("false"),
            "on" => Some("off"),
            "yes" => Some("no"),
            _ => None,
        };
        if let (true, Some(flipped)) = (blamed, flipped) {
            edits.push(format!("s/^{key} = .*/{key} = {flipped}/"));
        }
    }
    if edits.is_empty() {
        return Vec::new();
    }
    let script = edits.join("; ");
    vec![
        Action::Exec(format!("sed -i {} service.conf", shell_quote(&script))),
        Action::RestartService,
    ]
}

/// Creates a flag file the service says is missing.
fn missing_file_fixes(listing: &str, evidence: &str) -> Vec<Action> {
    let named = Regex::new(r"([A-Za-z0-9_.-]+\.flag)\b").expect("static");
    evidence
        .lines()
        .filter(|l| l.contains("missing"))
        .flat_map(|l| {
            named
                .captures_iter(l)
                .map(|c| c[1].to_string())
                .collect::<Vec<_>>()
        })
        .find(|file| !listing.split_whitespace().any(|w| w == file))
        .map(|file| vec![Action::Exec(format!("touch {}", shell_quote(&file)))])
        .unwrap_or_default()
}

/// Gives the owner write access back to a directory the service cannot
/// write to.
fn permission_fixes(listing: &str, evidence: &str) -> Vec<Action> {
    let blamed = Regex::new(r"(?:cannot write to|permission denied)[^\n]*?\b([A-Za-z0-9_.-]+)/")
        .expect("static");
    let dirs: Vec<String> = blamed
        .captures_iter(evidence)
        .map(|c| c[1].to_string())
        .collect();
    listing
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let mode = words.next()?;
            let name = words.last()?.trim_end_matches('/');
            let owner_writable = mode.chars().nth(2) == Some('w');
            (!owner_writable && dirs.iter().any(|d| d == name)).then(|| name.to_string())
        })
        .map(|dir| Action::Exec(format!("chmod u+w {}", shell_quote(&dir))))
        .take(1)
        .collect()
}

fn shell_quote(text: &str) -> String {
    if text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | '='))
    {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

fn sed_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| match c {
            '/' | '\\' | '.' | '*' | '[' | ']' | '^' | '$' | '&' => vec!['\\', c],
            _ => vec![c],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_baseline_hint_is_vague_and_explores() {
        let plan = Plan::from_hint("Fix the bug.");
        assert!(plan.explore);
        assert_eq!(plan.checks, DEFAULT_ORDER.to_vec());
    }

    #[test]
    fn the_manual_hint_names_checks_in_order() {
        let plan = Plan::from_hint(super::super::hint::MANUAL_HINT);
        assert!(!plan.explore);
        assert_eq!(
            plan.checks,
            vec![
                Check::Health,
                Check::Log,
                Check::Locks,
                Check::Env,
                Check::Config,
                Check::Ready,
                Check::Permissions
            ]
        );
    }

    #[test]
    fn a_reordered_hint_reorders_checks_and_can_target() {
        let plan = Plan::from_hint(
            "1) read the log. 2) check permissions of data dirs. 3) look for lock files. Skip checks the evidence rules out.",
        );
        assert_eq!(
            plan.checks,
            vec![Check::Log, Check::Permissions, Check::Locks]
        );
        assert!(plan.targeted);
    }

    #[test]
    fn locks_are_removed_only_when_the_service_names_them() {
        let found = "./service.lock\n./run/other.pid\n";
        let evidence = "ERROR stale lock file service.lock is present";
        assert_eq!(
            lock_fixes(found, evidence),
            vec![Action::Exec("rm -f service.lock".into())]
        );
        assert!(lock_fixes(found, "nothing relevant").is_empty());
    }

    #[test]
    fn env_fix_takes_the_value_from_the_example_and_restarts() {
        let listing = "service.env:LOG_FORMAT=text\nservice.env.example:REQUIRED_API_KEY=abc\n";
        let evidence = "required environment variable REQUIRED_API_KEY is not set (service.env)";
        assert_eq!(
            env_fixes(listing, evidence),
            vec![
                Action::Exec("echo REQUIRED_API_KEY=abc >> service.env".into()),
                Action::RestartService
            ]
        );
        assert!(env_fixes("service.env:LOG_FORMAT=text\n", evidence).is_empty());
    }

    #[test]
    fn config_fixes_syntax_port_and_blamed_flags() {
        let config = "port = 9001\nmax_connections 256\nmaintenance_mode = true\n";
        let fixes = config_fixes(
            config,
            "maintenance mode is on (service.conf maintenance_mode = true)",
            9000,
        );
        let Action::Exec(sed) = &fixes[0] else {
            panic!("{fixes:?}")
        };
        assert!(
            sed.contains("s/^max_connections 256$/max_connections = 256/"),
            "{sed}"
        );
        assert!(sed.contains("s/^port = .*/port = 9000/"), "{sed}");
        assert!(
            sed.contains("s/^maintenance_mode = .*/maintenance_mode = false/"),
            "{sed}"
        );
        assert_eq!(fixes[1], Action::RestartService);
        assert!(config_fixes("port = 9000\nmode = true\n", "", 9000).is_empty());
    }

    #[test]
    fn permission_fix_needs_blame_and_a_missing_write_bit() {
        let listing = "dr-xr-xr-x 2 root root 4096 Nov 25 20:46 data/\ndrwxr-xr-x 2 root root 4096 Nov 25 20:46 run/\n";
        let evidence =
            "ERROR health check failed: cannot write to data directory data/ (permission denied)";
        assert_eq!(
            permission_fixes(listing, evidence),
            vec![Action::Exec("chmod u+w data".into())]
        );
        assert!(permission_fixes(listing, "cannot write to run/").is_empty());
    }
}
