//! A hint as the runbook reads it (which checks, in which order, and the
//! targeted and direct rules), and back to text in the plain words the
//! hand-written hint uses, so every learned hint stays readable by a person
//! and by the LLM brain alike.

use crate::agent::runbook::{Check, Plan};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Strategy {
    pub checks: Vec<Check>,
    pub targeted: bool,
    pub direct: bool,
}

/// The clause that names each check (the hand-written hint's own words).
pub fn clause(check: Check) -> &'static str {
    match check {
        Check::Health => "GET /health on the expected port to see the error",
        Check::Log => "Read the service log for the exact reason",
        Check::Locks => "Look for stale lock or pid files and remove the one the error names",
        Check::Env => {
            "Check the environment file for the variable the error names; add it from the example file and restart the service"
        }
        Check::Config => {
            "Check the config: repair the line a parse error names, a port that differs from the expected one, a setting the error blames (back to its documented default); restart after any config change"
        }
        Check::Ready => "Check that the marker files the error says are missing exist",
        Check::Permissions => "Check that the directories the service writes to are writable",
    }
}

pub const TARGETED_RULE: &str =
    "Go straight to the check the error names; run the others only if it finds nothing.";
pub const DIRECT_RULE: &str = "Fix a file the error names at once, without listing first.";

/// A short name for reports and feedback.
pub fn name(check: Check) -> &'static str {
    match check {
        Check::Health => "health",
        Check::Log => "log",
        Check::Locks => "locks",
        Check::Env => "env",
        Check::Config => "config",
        Check::Ready => "ready",
        Check::Permissions => "permissions",
    }
}

impl Strategy {
    /// What the runbook makes of `hint`. A vague hint (it names no check
    /// that can fix anything) explores: the health answer and the log, then
    /// every check in the default order.
    pub fn of_hint(hint: &str) -> Self {
        let plan = Plan::from_hint(hint);
        let checks = if plan.explore {
            [Check::Health, Check::Log]
                .into_iter()
                .chain(
                    plan.checks
                        .iter()
                        .copied()
                        .filter(|c| !matches!(c, Check::Health | Check::Log)),
                )
                .collect()
        } else {
            plan.checks
        };
        Self {
            checks,
            targeted: plan.targeted,
            direct: plan.direct,
        }
    }

    /// Every check the runbook knows is named: whatever is missing goes last.
    pub fn complete(mut self) -> Self {
        for check in Check::ALL {
            if !self.checks.contains(&check) && !matches!(check, Check::Health | Check::Log) {
                self.checks.push(check);
            }
        }
        self
    }

    /// The hint, in plain words.
    pub fn hint(&self) -> String {
        let mut text = String::from("Work from the service's own words, cheapest first.");
        for (i, check) in self.checks.iter().enumerate() {
            text.push_str(&format!(" {}) {}.", i + 1, clause(*check)));
        }
        if self.targeted {
            text.push(' ');
            text.push_str(TARGETED_RULE);
        }
        if self.direct {
            text.push(' ');
            text.push_str(DIRECT_RULE);
        }
        text.push_str(" After each fix, check that the service answers 200 again and stop as soon as it does.");
        text
    }

    /// One line for reports: `log > config > locks ... [targeted, direct]`.
    pub fn summary(&self) -> String {
        let order = self
            .checks
            .iter()
            .map(|c| name(*c))
            .collect::<Vec<_>>()
            .join(" > ");
        let rules: Vec<&str> = [(self.targeted, "targeted"), (self.direct, "direct")]
            .into_iter()
            .filter_map(|(on, rule)| on.then_some(rule))
            .collect();
        if rules.is_empty() {
            order
        } else {
            format!("{order} [{}]", rules.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manual_hint_is_every_check_in_order_without_rules() {
        let manual = Strategy::of_hint(crate::agent::hint::MANUAL_HINT);
        assert_eq!(manual.checks, Check::ALL.to_vec());
        assert!(!manual.targeted && !manual.direct);
        let vague = Strategy::of_hint("Fix the bug.");
        assert_eq!(&vague.checks[..2], &[Check::Health, Check::Log]);
        assert_eq!(vague.checks.len(), 7);
    }

    #[test]
    fn rendered_hints_read_back_as_the_same_strategy() {
        let orders: [&[Check]; 4] = [
            &Check::ALL,
            &[
                Check::Log,
                Check::Config,
                Check::Locks,
                Check::Env,
                Check::Ready,
                Check::Permissions,
            ],
            &[
                Check::Permissions,
                Check::Health,
                Check::Ready,
                Check::Locks,
                Check::Env,
                Check::Config,
            ],
            &[Check::Env],
        ];
        for checks in orders {
            for (targeted, direct) in [(false, false), (true, false), (false, true), (true, true)] {
                let strategy = Strategy {
                    checks: checks.to_vec(),
                    targeted,
                    direct,
                };
                assert_eq!(
                    Strategy::of_hint(&strategy.hint()),
                    strategy,
                    "{}",
                    strategy.hint()
                );
            }
        }
    }

    #[test]
    fn complete_appends_what_is_missing_after_the_named_order() {
        let s = Strategy {
            checks: vec![Check::Log, Check::Ready],
            targeted: false,
            direct: false,
        }
        .complete();
        assert_eq!(
            s.checks,
            vec![
                Check::Log,
                Check::Ready,
                Check::Locks,
                Check::Env,
                Check::Config,
                Check::Permissions
            ]
        );
        assert_eq!(
            s.summary(),
            "log > ready > locks > env > config > permissions"
        );
    }
}
