//! The runbook brain: deterministic and offline. It follows the checks its
//! hint or skill names, in their order; each check is a real probe of the
//! real service, and a fix when the service's own words blame something.
//! It never sees the scenario id. It keeps no state between proposals: it
//! replays the recorded history through the same decisions, so a restarted
//! agent (or one taking over from the LLM brain) continues where it was.

mod evidence;
mod fixes;
mod plan;
#[cfg(test)]
mod tests;

pub use plan::{Check, Plan};

use std::collections::VecDeque;

use futures::future::BoxFuture;

use super::{Brain, BrainError};
use crate::action::Action;
use crate::protocol::{Feedback, Proposal, Task, Turn};
use evidence::Evidence;
use plan::exploration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Explore,
    Probe(Check),
    Fix,
    Verify,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Planned {
    action: Action,
    purpose: Purpose,
}

/// The runbook's state after some history; rebuilt by replay.
struct Runbook {
    plan: Plan,
    expected_port: u16,
    remaining: VecDeque<Check>,
    queue: VecDeque<Planned>,
    evidence: Evidence,
    /// Reasons the checks have been run against, so a new failure after a
    /// fix (a second fault) gets the checks again, once.
    checked_reasons: usize,
    /// The first reason the current round of checks is about (earlier ones
    /// were fixed already).
    focus_from: usize,
    /// Reasons a direct fix has been considered for.
    direct_from: usize,
    finished: Option<String>,
    /// Fixes the gate or a person refused.
    refused: Vec<String>,
}

impl Runbook {
    fn new(task: &Task) -> Self {
        let plan = Plan::from_hint(&task.hint);
        let mut queue = VecDeque::new();
        if plan.explore {
            queue.extend(exploration().into_iter().map(|action| Planned {
                action,
                purpose: Purpose::Explore,
            }));
        }
        Self {
            remaining: plan.checks.iter().copied().collect(),
            plan,
            expected_port: task.expected_port,
            queue,
            evidence: Evidence::default(),
            checked_reasons: 0,
            focus_from: 0,
            direct_from: 0,
            finished: None,
            refused: Vec::new(),
        }
    }

    fn replay(task: &Task, history: &[Turn]) -> Self {
        let mut runbook = Self::new(task);
        for turn in history {
            let planned = runbook.next_planned();
            match planned {
                Some(planned) if planned.action == turn.action => {
                    runbook.absorb(Some(planned.purpose), turn)
                }
                other => {
                    // Someone else acted (the LLM brain before a fallback):
                    // its observations are evidence; our plan stands.
                    if let Some(planned) = other {
                        runbook.queue.push_front(planned);
                    }
                    runbook.absorb(None, turn);
                }
            }
        }
        runbook
    }

    fn absorb(&mut self, purpose: Option<Purpose>, turn: &Turn) {
        let observation = match &turn.feedback {
            Feedback::Observed(observation) => observation,
            Feedback::Denied { reason }
            | Feedback::Rejected { reason }
            | Feedback::Failed { reason } => {
                if purpose == Some(Purpose::Fix) {
                    self.refused
                        .push(format!("{} ({reason})", turn.action.summary()));
                    // The rest of this fix and its verification are moot.
                    while self
                        .queue
                        .front()
                        .is_some_and(|p| matches!(p.purpose, Purpose::Fix | Purpose::Verify))
                    {
                        self.queue.pop_front();
                    }
                }
                return;
            }
        };
        let health_probe = matches!(turn.action, Action::HttpGet(_));
        self.evidence.absorb(observation, health_probe);
        if health_probe
            && observation
                .http_status
                .is_some_and(|status| crate::verify::is_healthy_answer(status, &observation.stdout))
        {
            self.finished = Some("the service answers 200 status ok".into());
            return;
        }
        // A fix was verified and the service still fails for a reason the
        // checks have not seen: a second fault. Look again.
        if purpose == Some(Purpose::Verify) && self.evidence.reasons.len() > self.checked_reasons {
            self.focus_from = self.checked_reasons;
            self.checked_reasons = self.evidence.reasons.len();
            // The verification just probed health; every other check again.
            self.remaining = self
                .plan
                .checks
                .iter()
                .copied()
                .filter(|c| *c != Check::Health)
                .collect();
        }
        // A file the service just blamed, fixed at its word.
        if self.plan.direct && self.evidence.reasons.len() > self.direct_from {
            let fresh = self.evidence.since(self.direct_from);
            self.direct_from = self.evidence.reasons.len();
            let found = fixes::direct(&fresh);
            if !found.is_empty() {
                self.checked_reasons = self.checked_reasons.max(self.evidence.reasons.len());
                let verify = Planned {
                    action: Action::HttpGet("/health".into()),
                    purpose: Purpose::Verify,
                };
                for action in std::iter::once(verify)
                    .chain(found.into_iter().rev().map(|action| Planned {
                        action,
                        purpose: Purpose::Fix,
                    }))
                    .collect::<Vec<_>>()
                {
                    self.queue.push_front(action);
                }
                return;
            }
        }
        // A probe's fix is decided on what the service said before it.
        if let Some(Purpose::Probe(check)) = purpose {
            self.checked_reasons = self.checked_reasons.max(self.evidence.reasons.len());
            let found = fixes::for_check(
                check,
                &observation.stdout,
                &self.evidence,
                self.expected_port,
            );
            if !found.is_empty() {
                self.queue.extend(found.into_iter().map(|action| Planned {
                    action,
                    purpose: Purpose::Fix,
                }));
                self.queue.push_back(Planned {
                    action: Action::HttpGet("/health".into()),
                    purpose: Purpose::Verify,
                });
            }
        }
    }

    fn next_planned(&mut self) -> Option<Planned> {
        if let Some(next) = self.queue.pop_front() {
            return Some(next);
        }
        // Targeted: the first check the error implicates, else the next.
        let at = if self.plan.targeted {
            let implicated = self.implicated();
            self.remaining
                .iter()
                .position(|check| implicated.contains(check))
                .unwrap_or(0)
        } else {
            0
        };
        let check = self.remaining.remove(at)?;
        Some(Planned {
            action: check.probe(),
            purpose: Purpose::Probe(check),
        })
    }

    /// The checks the service's reasons of this round point at (health and
    /// log always); every check while no reason points anywhere specific.
    fn implicated(&self) -> Vec<Check> {
        let reasons = self
            .evidence
            .reasons
            .get(self.focus_from..)
            .unwrap_or_default()
            .join("\n")
            .to_lowercase();
        let pointed: Vec<Check> = Check::ALL
            .into_iter()
            .filter(|c| !matches!(c, Check::Health | Check::Log))
            .filter(|c| c.implicated_regex().is_match(&reasons))
            .collect();
        if pointed.is_empty() {
            return Check::ALL.to_vec();
        }
        Check::ALL
            .into_iter()
            .filter(|c| matches!(c, Check::Health | Check::Log) || pointed.contains(c))
            .collect()
    }

    fn propose(mut self) -> Proposal {
        if let Some(summary) = self.finished.take() {
            return Proposal::Done { summary };
        }
        match self.next_planned() {
            Some(planned) => Proposal::Act {
                action: planned.action,
                declared_risk: None,
            },
            None if !self.refused.is_empty() => Proposal::Done {
                summary: format!(
                    "the fix was not allowed to run: {}",
                    self.refused.join("; ")
                ),
            },
            None => Proposal::Done {
                summary: "every check ran; none found a fault to fix".into(),
            },
        }
    }
}

/// The runbook brain. Stateless: every proposal replays the history.
#[derive(Debug, Default, Clone, Copy)]
pub struct RunbookBrain;

impl RunbookBrain {
    /// The plan a task's hint gives (for inspection and tests).
    pub fn plan(task: &Task) -> Plan {
        Plan::from_hint(&task.hint)
    }
}

impl Brain for RunbookBrain {
    fn name(&self) -> &'static str {
        "runbook"
    }

    fn propose<'a>(
        &'a mut self,
        task: &'a Task,
        history: &'a [Turn],
    ) -> BoxFuture<'a, Result<Proposal, BrainError>> {
        Box::pin(async move { Ok(Runbook::replay(task, history).propose()) })
    }
}
