//! What one rollout teaches, read from its trajectory: where the service's
//! own reason first showed (health answer or log), which check found the
//! fault (by the shape of the first fix), which looks were wasted, what
//! was refused, rated high-risk or failed; and the same as text for
//! reflection. Never the scenario's id: an incident is told by its symptom.

use std::sync::LazyLock;

use regex::Regex;

use super::score::{self, Counts};
use super::strategy::name;
use crate::agent::runbook::Check;
use crate::trajectory::{StepTrace, TrajectoryLine};

/// What a read-only step looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    Check(Check),
    /// A file listing: what the locks and the ready checks read.
    Files,
    Other,
}

impl Look {
    pub fn of(step: &StepTrace) -> Self {
        let action = step.action.as_str();
        if step.kind == "http_get" {
            Look::Check(Check::Health)
        } else if action.contains("service.log") {
            Look::Check(Check::Log)
        } else if action.contains("service.env") {
            Look::Check(Check::Env)
        } else if action.contains("service.conf") {
            Look::Check(Check::Config)
        } else if action.starts_with("find ") && action.contains("-type d") {
            Look::Check(Check::Permissions)
        } else if action.starts_with("find ") {
            Look::Files
        } else if action.starts_with("ls -ld") || action.starts_with("stat ") {
            Look::Check(Check::Permissions)
        } else {
            Look::Other
        }
    }

    /// Whether this look is the probe of `check`.
    pub fn serves(self, check: Check) -> bool {
        match self {
            Look::Check(c) => c == check,
            Look::Files => matches!(check, Check::Locks | Check::Ready),
            Look::Other => false,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Look::Check(c) => name(c),
            Look::Files => "file listing",
            Look::Other => "other look",
        }
    }
}

/// Where the service's reason first showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    pub step: u32,
    pub from: Look,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    pub symptom: String,
    pub resolved: bool,
    pub score: f64,
    pub shortest: usize,
    pub counts: Counts,
    pub reason: Option<Reason>,
    /// The first health answer before any fix: did it carry a reason?
    pub health_told: Option<bool>,
    /// The first log read before any fix: did it carry a reason?
    pub log_told: Option<bool>,
    /// The check whose kind of fix was applied first.
    pub finder: Option<Check>,
    pub first_fix: Option<(u32, String)>,
    /// Looks before the first fix that neither gave the reason nor were the
    /// finder's probe.
    pub wasted: Vec<(u32, String)>,
    /// The finder's probe was a listing that only confirmed a file the
    /// reason already named.
    pub listing_confirmed_named_file: bool,
    /// The checks the reason implicates.
    pub implicated: Vec<Check>,
    pub refused: Vec<String>,
    pub high_risk: Vec<String>,
    pub failed: Vec<String>,
    /// How the episode ended, when it did not resolve.
    pub ending: Option<String>,
    /// Every step in one line: the action, the gate's word, what came of it.
    pub trace: Vec<String>,
}

static BODY_REASON: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#""reason"\s*:\s*"([^"]*)""#).expect("static pattern"));
static LOG_REASON: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?m)^\S+ ERROR (?:health check failed: |startup failed: |supervisor: service generation \d+ is down: |invalid config: )*(.+)$")
        .expect("static pattern")
});

fn is_fix(step: &StepTrace) -> bool {
    match step.kind.as_str() {
        "write_file" | "restart_service" => true,
        "exec" => step.risk != "LOW",
        _ => false,
    }
}

/// The path a fix acts on, as written.
fn fix_target(step: &StepTrace) -> Option<String> {
    match step.kind.as_str() {
        "write_file" => step.action.split(" (").next().map(str::to_string),
        // The last word, unquoted: the runbook's operators quote every path.
        "exec" => shlex::split(&step.action)
            .and_then(|words| words.last().cloned())
            .or_else(|| step.action.split_whitespace().last().map(str::to_string)),
        _ => None,
    }
}

/// The check whose kind of fix this is (the runbook's operators, and the
/// shapes an LLM writes).
fn fixing_check(step: &StepTrace) -> Option<Check> {
    let action = step.action.as_str();
    let removes =
        action.starts_with("rm ") || action.starts_with("rmdir ") || action.contains("&& rm -f");
    match step.kind.as_str() {
        "write_file" if action.starts_with("service.env") => Some(Check::Env),
        "write_file" if action.starts_with("service.conf") => Some(Check::Config),
        "write_file" => Some(Check::Ready),
        "exec" if action.contains("service.env") => Some(Check::Env),
        "exec" if action.contains("service.conf") => Some(Check::Config),
        "exec" if action.contains("touch ") => Some(Check::Ready),
        // A file replaced by the directory the service needs.
        "exec" if removes && action.contains("mkdir") => Some(Check::Permissions),
        "exec" if removes => Some(Check::Locks),
        "exec" if action.contains("chmod") || action.starts_with("mkdir ") => {
            Some(Check::Permissions)
        }
        _ => None,
    }
}

fn reason_in(step: &StepTrace) -> Option<String> {
    let text = if step.kind == "http_get" {
        BODY_REASON
            .captures(&step.observation)
            .map(|c| c[1].to_string())
    } else {
        LOG_REASON
            .captures(&step.observation)
            .map(|c| c[1].trim().to_string())
    };
    text.filter(|t| !t.is_empty() && t != "internal error")
}

pub fn analyze(line: &TrajectoryLine, shortest: usize) -> Analysis {
    let counts = score::counts(line);
    let first_fix_at = line.steps.iter().position(is_fix);
    let before_fix = &line.steps[..first_fix_at.unwrap_or(line.steps.len())];
    let mut reason: Option<Reason> = None;
    let mut health_told = None;
    let mut log_told = None;
    for step in before_fix {
        if step.decision != "Allowed" && step.decision != "Confirmed" {
            continue;
        }
        let look = Look::of(step);
        let found = reason_in(step);
        if look == Look::Check(Check::Health) && health_told.is_none() {
            health_told = Some(found.is_some());
        }
        if look == Look::Check(Check::Log) && log_told.is_none() {
            log_told = Some(found.is_some());
        }
        if reason.is_none()
            && let Some(text) = found
        {
            reason = Some(Reason {
                step: step.step,
                from: look,
                text,
            });
        }
    }
    let first_fix = first_fix_at.map(|i| &line.steps[i]);
    let finder = first_fix.and_then(fixing_check);
    // The finder's probe: the last look before the fix that serves it.
    let finder_probe = finder.and_then(|check| {
        before_fix
            .iter()
            .rev()
            .find(|s| Look::of(s).serves(check) && s.kind != "http_get")
            .map(|s| s.step)
    });
    let reason_step = reason.as_ref().map(|r| r.step);
    let wasted = before_fix
        .iter()
        .filter(|s| Some(s.step) != reason_step && Some(s.step) != finder_probe)
        .map(|s| (s.step, s.action.clone()))
        .collect();
    let listing_confirmed_named_file = match (finder_probe, first_fix, &reason) {
        (Some(probe), Some(fix), Some(reason)) => {
            let probe = line.steps.iter().find(|s| s.step == probe);
            let listing = probe.is_some_and(|p| {
                matches!(Look::of(p), Look::Files | Look::Check(Check::Permissions))
            });
            let named = fix_target(fix).is_some_and(|target| {
                let target = target.trim_start_matches("./").trim_end_matches('/');
                !target.is_empty() && reason.text.contains(target)
            });
            listing && named
        }
        _ => false,
    };
    let implicated = reason
        .as_ref()
        .map(|r| {
            let lower = r.text.to_lowercase();
            Check::ALL
                .into_iter()
                .filter(|c| !matches!(c, Check::Health | Check::Log))
                .filter(|c| c.implicated_regex().is_match(&lower))
                .collect()
        })
        .unwrap_or_default();
    let described = |s: &StepTrace| format!("step {} {} ({})", s.step, s.action, s.risk);
    let refused = line
        .steps
        .iter()
        .filter(|s| matches!(s.decision.as_str(), "Denied" | "Rejected"))
        .map(|s| format!("{} {}", described(s), s.decision.to_lowercase()))
        .collect();
    let high_risk = line
        .steps
        .iter()
        .filter(|s| matches!(s.risk.as_str(), "HIGH" | "UNKNOWN"))
        .map(described)
        .collect();
    let failed = line
        .steps
        .iter()
        .filter(|s| {
            !matches!(s.decision.as_str(), "Denied" | "Rejected")
                && s.kind != "http_get"
                && s.exit_code != Some(0)
        })
        .map(|s| format!("{} exit {:?}", described(s), s.exit_code))
        .collect();
    let ending = (!line.service_up).then(|| {
        format!(
            "{}{}",
            line.reason.as_deref().unwrap_or("not resolved"),
            line.message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        )
    });
    let trace = line.steps.iter().map(traced).collect();
    Analysis {
        trace,
        symptom: line.symptom.clone(),
        resolved: line.service_up,
        score: score::score(line, shortest),
        shortest,
        counts,
        reason,
        health_told,
        log_told,
        finder,
        first_fix: first_fix.map(|s| (s.step, s.action.clone())),
        wasted,
        listing_confirmed_named_file,
        implicated,
        refused,
        high_risk,
        failed,
        ending,
    }
}

/// Longest result kept per step in a trace.
const MAX_RESULT_CHARS: usize = 200;

/// One step as a reflector reads it: `3. exec sed … (MEDIUM, Allowed) →
/// exit 1: service.conf: `port` is not set; ROLLED BACK …`.
fn traced(step: &StepTrace) -> String {
    let outcome = match (step.http_status, step.exit_code) {
        (Some(status), _) => format!("HTTP {status}"),
        (None, Some(code)) => format!("exit {code}"),
        (None, None) => "no result".to_string(),
    };
    let said: Vec<&str> = step
        .observation
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .filter(|l| {
            !["exit_code:", "http_status:", "stdout:", "stderr:"]
                .iter()
                .any(|header| l.starts_with(header))
        })
        .filter(|l| !l.starts_with("facts remediator read"))
        .collect();
    let mut result: String = said.join(" | ");
    if result.chars().count() > MAX_RESULT_CHARS {
        result = format!(
            "{}…",
            result.chars().take(MAX_RESULT_CHARS).collect::<String>()
        );
    }
    format!(
        "{}. {} {} ({}, {}) -> {outcome}{}",
        step.step,
        step.kind,
        step.action,
        step.risk,
        step.decision,
        if result.is_empty() {
            String::new()
        } else {
            format!(": {result}")
        }
    )
}

/// The feedback a reflector reads for one rollout.
pub fn text(a: &Analysis) -> String {
    let mut out = format!(
        "Symptom: {}\nOutcome: {} in {} steps (shortest honest episode {}), score {:.2}.\n",
        a.symptom.trim(),
        if a.resolved {
            "resolved, verified by the probe"
        } else {
            "NOT resolved"
        },
        a.counts.steps,
        a.shortest,
        a.score
    );
    match &a.reason {
        Some(r) => out.push_str(&format!(
            "The service's own reason first showed at step {} ({}): \"{}\".\n",
            r.step,
            r.from.label(),
            r.text
        )),
        None => out.push_str("The service never stated a reason before the first fix.\n"),
    }
    if a.health_told == Some(false) {
        out.push_str("The health answer gave no reason (down or \"internal error\").\n");
    }
    if a.log_told == Some(true) {
        out.push_str("The log named the reason.\n");
    }
    match (a.finder, &a.first_fix) {
        (Some(check), Some((step, action))) => out.push_str(&format!(
            "The fault was found by the {} check and fixed at step {step} ({action}).\n",
            name(check)
        )),
        (None, Some((step, action))) => {
            out.push_str(&format!("First change at step {step}: {action}.\n"))
        }
        _ => out.push_str("No fix was applied.\n"),
    }
    if !a.implicated.is_empty() {
        out.push_str(&format!(
            "The reason points at: {}.\n",
            a.implicated
                .iter()
                .map(|c| name(*c))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !a.wasted.is_empty() {
        out.push_str(&format!(
            "Wasted looks: {}.\n",
            a.wasted
                .iter()
                .map(|(step, action)| format!("step {step} {action}"))
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    if a.listing_confirmed_named_file {
        out.push_str("The listing before the fix only confirmed a file the error already named.\n");
    }
    for (label, items) in [
        ("Refused", &a.refused),
        ("High risk", &a.high_risk),
        ("Failed", &a.failed),
    ] {
        if !items.is_empty() {
            out.push_str(&format!("{label}: {}.\n", items.join("; ")));
        }
    }
    if !a.trace.is_empty() {
        out.push_str("Trace:\n");
        for step in &a.trace {
            out.push_str(&format!("  {step}\n"));
        }
    }
    if let Some(ending) = &a.ending {
        out.push_str(&format!("Ended: {ending}.\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optimize::score::tests::{line, step};

    /// What came back, with the HTTP status a probe's first line names
    /// (as the recorder keeps it).
    fn observed(mut s: StepTrace, observation: &str) -> StepTrace {
        s.observation = observation.into();
        if let Some(status) = observation
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("http_status: "))
        {
            s.http_status = status.trim().parse().ok();
            s.exit_code = None;
        }
        s
    }

    #[test]
    fn each_runbook_operator_counts_for_its_check() {
        let exec = |command: &str| step(1, "exec", command, "MEDIUM", "Allowed");
        for (command, check) in [
            ("rm -f -- 'run/a b.lock'", Check::Locks),
            ("rmdir -- 'run/d.lock'", Check::Locks),
            (
                "chmod u+w -- 'run' && rm -f -- 'run/x' && chmod u-w -- 'run'",
                Check::Locks,
            ),
            ("mkdir -p -- 'state' && touch -- 'state/ok'", Check::Ready),
            (
                "rm -f -- 'run/sock' && mkdir -p -- 'run/sock'",
                Check::Permissions,
            ),
            ("mkdir -p -- 'spool'", Check::Permissions),
            ("chmod u+w -- 'data'", Check::Permissions),
            ("sed -i -- '3s/^/# /' 'service.env'", Check::Env),
            ("printf '%s\\n' 'port = 9' >> 'service.conf'", Check::Config),
        ] {
            assert_eq!(fixing_check(&exec(command)), Some(check), "{command}");
        }
        assert_eq!(
            Look::of(&exec("find . -maxdepth 8 -type d -ls")),
            Look::Check(Check::Permissions)
        );
        assert_eq!(Look::of(&exec("find . -maxdepth 8 -type f")), Look::Files);
        assert_eq!(
            fix_target(&exec("rm -f -- 'run/deploy lock (old).lck'")).as_deref(),
            Some("run/deploy lock (old).lck")
        );
    }

    /// The manual hint on a lock named only in the log.
    fn manual_on_a_worker_lock() -> TrajectoryLine {
        line(
            "x",
            true,
            vec![
                observed(
                    step(1, "http_get", "GET /health", "LOW", "Allowed"),
                    "http_status: 500\nstdout:\n{\"reason\":\"internal error\",\"status\":\"error\"}",
                ),
                observed(
                    step(2, "exec", "tail -n 30 service.log", "LOW", "Allowed"),
                    "stdout:\n2026-01-01T00:00:00Z INFO listening on 127.0.0.1:9\n2026-01-01T00:00:01Z ERROR health check failed: stale lock file run/w.lock is present\n",
                ),
                step(3, "exec", "find . -maxdepth 3 -type f", "LOW", "Allowed"),
                step(
                    4,
                    "exec",
                    "grep -H '' service.env service.env.example",
                    "LOW",
                    "Allowed",
                ),
                step(5, "exec", "rm -f run/w.lock", "MEDIUM", "Allowed"),
                step(6, "http_get", "GET /health", "LOW", "Allowed"),
            ],
        )
    }

    #[test]
    fn the_finder_the_reason_and_the_waste_are_read_from_the_trace() {
        let a = analyze(&manual_on_a_worker_lock(), 3);
        assert_eq!(a.finder, Some(Check::Locks));
        assert_eq!(a.health_told, Some(false));
        assert_eq!(a.log_told, Some(true));
        let reason = a.reason.clone().unwrap();
        assert_eq!((reason.step, reason.from), (2, Look::Check(Check::Log)));
        assert_eq!(reason.text, "stale lock file run/w.lock is present");
        assert_eq!(a.implicated, vec![Check::Locks]);
        let wasted: Vec<u32> = a.wasted.iter().map(|(s, _)| *s).collect();
        assert_eq!(
            wasted,
            vec![1, 4],
            "the vague health answer and the env look"
        );
        assert!(a.listing_confirmed_named_file);
        assert!((a.score - 0.5).abs() < 1e-9);
        let text = text(&a);
        assert!(text.contains("found by the locks check"), "{text}");
        assert!(
            text.contains("only confirmed a file the error already named"),
            "{text}"
        );
        assert!(
            !text.contains("\"x\""),
            "no scenario id in feedback: {text}"
        );
    }

    #[test]
    fn refusals_and_failures_are_named() {
        let mut t = manual_on_a_worker_lock();
        t.steps[4].decision = "Denied".into();
        t.steps[4].exit_code = None;
        t.service_up = false;
        t.reason = Some("RiskLimitExceeded".into());
        let a = analyze(&t, 3);
        assert_eq!(a.refused.len(), 1);
        assert!(a.ending.as_deref().unwrap().contains("RiskLimitExceeded"));
        assert_eq!(a.score, 0.0);
        assert!(text(&a).contains("Refused: step 5 rm -f run/w.lock"));
    }

    #[test]
    fn the_feedback_carries_every_step_with_what_the_service_said() {
        let a = analyze(&manual_on_a_worker_lock(), 3);
        let text = text(&a);
        let trace: Vec<&str> = text
            .split("Trace:\n")
            .nth(1)
            .unwrap()
            .lines()
            .take_while(|l| l.starts_with("  "))
            .collect();
        assert_eq!(trace.len(), 6, "{text}");
        assert_eq!(
            trace[0],
            r#"  1. http_get GET /health (LOW, Allowed) -> HTTP 500: {"reason":"internal error","status":"error"}"#
        );
        assert!(
            trace[1].ends_with("ERROR health check failed: stale lock file run/w.lock is present"),
            "{}",
            trace[1]
        );
        // A long result is cut, not dropped.
        let mut long = manual_on_a_worker_lock();
        long.steps[1].observation = format!("stdout:\n{}", "x".repeat(1000));
        let cut = super::text(&analyze(&long, 3));
        assert!(
            cut.contains(&format!("{}…", "x".repeat(MAX_RESULT_CHARS))),
            "{cut}"
        );
    }
}
