//! The deterministic reflector: reads the minibatch's traces and changes
//! the parent's strategy only where they show a cost, one rule per lesson:
//!
//! 1. where the service's reason showed: when a health answer said nothing
//!    the log did say, read the log first (and drop the health look when
//!    the log told every time); when the health answer told every time and
//!    the log read after it was wasted, look at health first and read the
//!    log only later;
//! 2. looks at checks the reason did not implicate before the one that
//!    found the fault: go straight to what the error names (targeted);
//! 3. a listing that only confirmed a file the error named: fix it at once
//!    (direct);
//! 4. the checks that found faults move ahead of those that found none
//!    (by how often, then by their old order);
//! 5. failures: a refused direct fix turns direct off; an unresolved
//!    episode that never saw a reason puts the log first.
//!
//! Every check the runbook knows stays in the strategy: reflection only
//! orders them and chooses the rules, so a hint stays general.

use futures::future::BoxFuture;

use super::{ReflectError, Reflection, Reflector};
use crate::agent::runbook::Check;
use crate::optimize::evaluate::Rollout;
use crate::optimize::feedback::Analysis;
use crate::optimize::strategy::{Strategy, name};

#[derive(Debug, Default, Clone, Copy)]
pub struct Deterministic;

impl Reflector for Deterministic {
    fn name(&self) -> &'static str {
        "deterministic"
    }

    fn reflect<'a>(
        &'a self,
        parent: &'a str,
        rollouts: &'a [Rollout],
    ) -> BoxFuture<'a, Result<Option<Reflection>, ReflectError>> {
        let analyses: Vec<&Analysis> = rollouts.iter().map(|r| &r.analysis).collect();
        let parent = Strategy::of_hint(parent);
        let (child, notes) = reflect(&parent, &analyses);
        Box::pin(async move {
            Ok((child != parent).then(|| Reflection {
                hint: child.hint(),
                notes,
            }))
        })
    }
}

/// Moves `check` to position `at` (or appends it).
fn place(checks: &mut Vec<Check>, check: Check, at: usize) {
    checks.retain(|c| *c != check);
    checks.insert(at.min(checks.len()), check);
}

pub fn reflect(parent: &Strategy, analyses: &[&Analysis]) -> (Strategy, Vec<String>) {
    let mut s = parent.clone().complete();
    let mut notes = Vec::new();
    let count = |f: &dyn Fn(&Analysis) -> bool| analyses.iter().filter(|a| f(a)).count();

    // 1. Where the reason showed.
    let health_silent = count(&|a| a.health_told == Some(false));
    let health_told = count(&|a| a.health_told == Some(true));
    let log_told = count(&|a| a.log_told == Some(true));
    let log_read = count(&|a| a.log_told.is_some());
    let log_wasted = count(&|a| {
        a.wasted
            .iter()
            .any(|(_, action)| action.contains("service.log"))
    });
    if health_silent > 0 && log_told > 0 {
        place(&mut s.checks, Check::Log, 0);
        if log_told == log_read && log_read == analyses.len() {
            s.checks.retain(|c| *c != Check::Health);
            notes.push(format!(
                "the log named the reason in all {log_told} episodes, the health answer was silent in {health_silent}: read the log first, no health look"
            ));
        } else {
            notes.push(format!(
                "the health answer was silent in {health_silent} episodes where the log named the reason: read the log first"
            ));
        }
    } else if health_told == analyses.len() && health_told > 0 && log_wasted > 0 {
        place(&mut s.checks, Check::Health, 0);
        s.checks.retain(|c| *c != Check::Log);
        s.checks.push(Check::Log);
        notes.push(format!(
            "the health answer named the reason in all {health_told} episodes; the log read after it was wasted: health first, the log last"
        ));
    }

    // 2. Looks at checks the reason did not point at.
    let strays = count(&|a| {
        !a.implicated.is_empty()
            && a.finder.is_some_and(|f| a.implicated.contains(&f))
            && a.wasted
                .iter()
                .any(|(_, action)| !action.starts_with("GET ") && !action.contains("service.log"))
    });
    if strays > 0 && !s.targeted {
        s.targeted = true;
        notes.push(format!(
            "in {strays} episodes checks the error did not point at ran before the one that found the fault: go straight to the check the error names"
        ));
    }

    // 3. Listings that only confirmed what the error named.
    let confirmations = count(&|a| a.listing_confirmed_named_file);
    if confirmations > 0 && !s.direct {
        s.direct = true;
        notes.push(format!(
            "in {confirmations} episodes a listing only confirmed the file the error named: fix it at once"
        ));
    }

    // 4. Checks that found faults go first (after the looks).
    let mut finders: Vec<(Check, usize)> = Vec::new();
    for a in analyses.iter().filter(|a| a.resolved) {
        if let Some(f) = a.finder {
            match finders.iter_mut().find(|(c, _)| *c == f) {
                Some((_, n)) => *n += 1,
                None => finders.push((f, 1)),
            }
        }
    }
    let position = |checks: &[Check], c: Check| checks.iter().position(|x| *x == c);
    finders.sort_by_key(|(c, n)| (std::cmp::Reverse(*n), position(&s.checks, *c)));
    let looks = s
        .checks
        .iter()
        .take_while(|c| matches!(c, Check::Health | Check::Log))
        .count();
    let before = s.checks.clone();
    for (i, (check, _)) in finders.iter().enumerate() {
        place(&mut s.checks, *check, looks + i);
    }
    if s.checks != before {
        notes.push(format!(
            "checks that found faults first: {}",
            finders
                .iter()
                .map(|(c, n)| format!("{} ({n})", name(*c)))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }

    // 5. Failures.
    let refused_fixes = count(&|a| {
        !a.resolved
            && a.refused
                .iter()
                .any(|r| !r.contains(" LOW") && !r.contains("GET "))
    });
    if refused_fixes > 0 && s.direct {
        s.direct = false;
        notes.push(format!(
            "{refused_fixes} episodes failed on a refused change: no fixes without a listing first"
        ));
    }
    let blind = count(&|a| !a.resolved && a.reason.is_none());
    if blind > 0 && position(&s.checks, Check::Log) != Some(0) {
        place(&mut s.checks, Check::Log, 0);
        notes.push(format!(
            "{blind} unresolved episodes never saw the service's reason: read the log first"
        ));
    }
    if notes.is_empty() {
        notes.push("the traces show nothing to change".into());
    }
    (s, notes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optimize::feedback::analyze;
    use crate::optimize::score::tests::{line, step};
    use crate::trajectory::{StepTrace, TrajectoryLine};

    fn observed(mut s: StepTrace, observation: &str) -> StepTrace {
        s.observation = observation.into();
        s
    }

    fn health(step_no: u32, reason: &str) -> StepTrace {
        observed(
            step(step_no, "http_get", "GET /health", "LOW", "Allowed"),
            &format!("http_status: 500\nstdout:\n{{\"reason\":\"{reason}\",\"status\":\"error\"}}"),
        )
    }

    fn log(step_no: u32, reason: &str) -> StepTrace {
        observed(
            step(step_no, "exec", "tail -n 30 service.log", "LOW", "Allowed"),
            &format!("stdout:\n2026-01-01T00:00:01Z ERROR health check failed: {reason}\n"),
        )
    }

    /// The manual hint's episode on a lock the log alone names.
    fn silent_health_lock() -> TrajectoryLine {
        line(
            "x",
            true,
            vec![
                health(1, "internal error"),
                log(2, "stale lock file run/w.lock is present"),
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

    /// The manual hint's episode on a config the health answer names.
    fn told_config() -> TrajectoryLine {
        let reason = "maintenance mode is on (service.conf maintenance_mode = true)";
        line(
            "y",
            true,
            vec![
                health(1, reason),
                log(2, reason),
                step(3, "exec", "find . -maxdepth 3 -type f", "LOW", "Allowed"),
                step(
                    4,
                    "exec",
                    "grep -Hn '' service.conf service.conf.example",
                    "LOW",
                    "Allowed",
                ),
                step(
                    5,
                    "write_file",
                    "service.conf (99 bytes)",
                    "MEDIUM",
                    "Allowed",
                ),
                step(6, "restart_service", "restart", "MEDIUM", "Allowed"),
                step(7, "http_get", "GET /health", "LOW", "Allowed"),
            ],
        )
    }

    #[test]
    fn each_lesson_of_the_traces_becomes_one_change() {
        let manual = Strategy::of_hint(crate::agent::hint::MANUAL_HINT);
        let a = analyze(&silent_health_lock(), 3);
        let (child, notes) = reflect(&manual, &[&a]);
        assert_eq!(
            child.checks,
            vec![
                Check::Log,
                Check::Locks,
                Check::Env,
                Check::Config,
                Check::Ready,
                Check::Permissions
            ]
        );
        assert!(child.targeted && child.direct, "{notes:?}");
        assert_eq!(notes.len(), 3, "{notes:?}");

        let b = analyze(&told_config(), 4);
        let (child, notes) = reflect(&manual, &[&b]);
        assert_eq!(child.checks[0], Check::Health);
        assert_eq!(child.checks[1], Check::Config, "{notes:?}");
        assert_eq!(*child.checks.last().unwrap(), Check::Log);
        assert!(child.targeted && !child.direct);
    }

    #[test]
    fn nothing_to_learn_gives_no_child_and_the_same_traces_the_same_child() {
        let best = Strategy {
            checks: vec![
                Check::Log,
                Check::Locks,
                Check::Env,
                Check::Config,
                Check::Ready,
                Check::Permissions,
            ],
            targeted: true,
            direct: true,
        };
        let clean = line(
            "x",
            true,
            vec![
                log(1, "stale lock file run/w.lock is present"),
                step(2, "exec", "rm -f run/w.lock", "MEDIUM", "Allowed"),
                step(3, "http_get", "GET /health", "LOW", "Allowed"),
            ],
        );
        let a = analyze(&clean, 3);
        assert_eq!(reflect(&best, &[&a]).0, best);
        let m = Strategy::of_hint(crate::agent::hint::MANUAL_HINT);
        let l = analyze(&silent_health_lock(), 3);
        assert_eq!(reflect(&m, &[&l]), reflect(&m, &[&l]));
    }

    #[test]
    fn a_refused_direct_fix_turns_direct_off() {
        let best = Strategy {
            checks: vec![Check::Log, Check::Locks],
            targeted: false,
            direct: true,
        };
        let mut refused = step(2, "exec", "rm -f run/w.lock", "MEDIUM", "Denied");
        refused.exit_code = None;
        let t = line(
            "x",
            false,
            vec![log(1, "stale lock file run/w.lock is present"), refused],
        );
        let (child, _) = reflect(&best, &[&analyze(&t, 3)]);
        assert!(!child.direct);
    }
}
