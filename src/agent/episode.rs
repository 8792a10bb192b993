//! One episode as a sans-IO step machine: its state plus an event (a
//! proposal, an answer, an execution result, time passing) give the next
//! request (`NeedProposal`, `NeedApproval`, `Execute`, `Done`) and, for
//! each finished step, its audit record and the turn the brain learns from.
//! The state is small and serializable, so a controller can persist it and
//! resume after a restart: [`Episode::current`] re-derives what it waits
//! for, and an execution it waited on is asked for again under the same
//! step (executors journal steps, so nothing runs twice).

use serde::{Deserialize, Serialize};

use crate::action::Action;
use crate::crd::{ActionRecord, Decision, TokenUsage};
use crate::protocol::{BrainRole, EpisodeEnd};
use crate::protocol::{Feedback, Observation, Proposal, Turn, WorkspaceError};
use crate::risk::{DecidedBy, Gate, OnRiskExceeded, Permit, Ruling, SecurityRisk, Verdict};

/// What an episode may spend, and how it treats failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpisodeConfig {
    pub max_steps: u32,
    pub timeout_ms: u64,
    /// How long an approval may be waited for (never past the episode's
    /// own time budget).
    pub approval_timeout_ms: Option<u64>,
    /// A failed brain hands over to the fallback brain once.
    pub allow_fallback: bool,
    /// Attempts at an execution whose executor did not answer.
    pub max_execute_attempts: u32,
}

/// An action waiting for a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub step: u32,
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared_risk: Option<SecurityRisk>,
    pub risk: SecurityRisk,
    /// Why the gate wants a person (the classifier's reason).
    pub reason: String,
    pub requested_at_ms: u64,
    pub deadline_ms: u64,
    /// What a write would change (a redacted diff), once the executor
    /// was asked: what the person approving it is shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<String>,
}

/// An action the gate permitted, waiting for its result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Execution {
    pub step: u32,
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared_risk: Option<SecurityRisk>,
    pub decided_by: DecidedBy,
    pub attempts: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "waiting_for")]
pub enum Waiting {
    Proposal,
    Approval(Approval),
    Execution(Execution),
    Nothing { end: EpisodeEnd },
}

/// The persistent state of one episode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Episode {
    pub config: EpisodeConfig,
    pub started_at_ms: u64,
    /// Actions proposed so far, refused ones included.
    pub steps: u32,
    pub waiting: Waiting,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_risk_seen: Option<SecurityRisk>,
    /// Set when the fallback brain took over, with the primary's failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
    #[serde(default)]
    pub primary_tokens: TokenUsage,
    #[serde(default)]
    pub fallback_tokens: TokenUsage,
}

/// What happened, as the driver tells it.
#[derive(Debug)]
pub enum Event {
    Proposed {
        proposal: Proposal,
        /// Tokens this proposal cost.
        usage: TokenUsage,
    },
    BrainFailed {
        error: String,
        usage: TokenUsage,
    },
    Answered {
        approved: bool,
        by: DecidedBy,
    },
    Executed(Result<Observation, WorkspaceError>),
    /// Time passed without an answer (a deadline may be over).
    Tick,
}

/// What the episode needs next.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    NeedProposal { role: BrainRole, deadline_ms: u64 },
    NeedApproval(Approval),
    Execute(Permit),
    Done(EpisodeEnd),
}

/// The outcome of one event: a finished step's record and turn, if any,
/// and the next request.
#[derive(Debug)]
pub struct Advance {
    pub record: Option<ActionRecord>,
    pub turn: Option<Turn>,
    pub request: Request,
}

impl Episode {
    pub fn new(config: EpisodeConfig, now_ms: u64) -> Self {
        Self {
            config,
            started_at_ms: now_ms,
            steps: 0,
            waiting: Waiting::Proposal,
            max_risk_seen: None,
            fallback_reason: None,
            primary_tokens: TokenUsage::default(),
            fallback_tokens: TokenUsage::default(),
        }
    }

    /// Starts on the fallback brain, because the primary could not even be
    /// built (`reason`).
    pub fn on_fallback_from_start(mut self, reason: String) -> Self {
        self.fallback_reason = Some(reason);
        self
    }

    pub fn end(&self) -> Option<&EpisodeEnd> {
        match &self.waiting {
            Waiting::Nothing { end } => Some(end),
            _ => None,
        }
    }

    pub fn tokens(&self) -> TokenUsage {
        let mut total = self.primary_tokens;
        total.add(self.fallback_tokens);
        total
    }

    fn deadline_ms(&self) -> u64 {
        self.started_at_ms.saturating_add(self.config.timeout_ms)
    }

    fn role(&self) -> BrainRole {
        if self.fallback_reason.is_some() {
            BrainRole::Fallback
        } else {
            BrainRole::Primary
        }
    }

    /// What the episode waits for now: where a driver starts, and where a
    /// restarted controller resumes.
    pub fn current(&mut self, gate: &Gate, now_ms: u64) -> Request {
        match self.waiting.clone() {
            Waiting::Proposal => self.ask_for_proposal(now_ms),
            Waiting::Approval(approval) => {
                if now_ms >= approval.deadline_ms {
                    return self.advance_approval_timeout(approval).request;
                }
                Request::NeedApproval(approval)
            }
            Waiting::Execution(execution) => {
                let approved = match execution.decided_by {
                    DecidedBy::Gate | DecidedBy::Policy => None,
                    person => Some(person),
                };
                match gate.permit(
                    execution.step,
                    &execution.action,
                    execution.declared_risk,
                    approved,
                ) {
                    Ok(permit) => Request::Execute(permit),
                    // The gate is pure and its policy pinned: a permit it
                    // gave once it gives again. Refuse rather than guess.
                    Err(_) => self.finish(EpisodeEnd::WorkspaceFailed {
                        step: execution.step,
                        reason: "the gate no longer permits this step".into(),
                    }),
                }
            }
            Waiting::Nothing { end } => Request::Done(end),
        }
    }

    fn finish(&mut self, end: EpisodeEnd) -> Request {
        self.waiting = Waiting::Nothing { end: end.clone() };
        Request::Done(end)
    }

    fn ask_for_proposal(&mut self, now_ms: u64) -> Request {
        self.waiting = Waiting::Proposal;
        if self.steps >= self.config.max_steps {
            return self.finish(EpisodeEnd::StepBudget);
        }
        if now_ms >= self.deadline_ms() {
            return self.finish(EpisodeEnd::TimeBudget);
        }
        Request::NeedProposal {
            role: self.role(),
            deadline_ms: self.deadline_ms(),
        }
    }

    /// Feeds one event; events that do not fit what the episode waits for
    /// change nothing.
    pub fn next(&mut self, gate: &Gate, event: Event, now_ms: u64) -> Advance {
        match (self.waiting.clone(), event) {
            (Waiting::Proposal, Event::Proposed { proposal, usage }) => {
                self.note_usage(usage);
                self.on_proposal(gate, proposal, now_ms)
            }
            (Waiting::Proposal, Event::BrainFailed { error, usage }) => {
                self.note_usage(usage);
                let request = if self.config.allow_fallback && self.fallback_reason.is_none() {
                    self.fallback_reason = Some(error);
                    self.ask_for_proposal(now_ms)
                } else {
                    self.finish(EpisodeEnd::BrainFailed { reason: error })
                };
                only(request)
            }
            (Waiting::Approval(approval), Event::Answered { approved, by }) => {
                self.on_answer(gate, approval, approved, by, now_ms)
            }
            (Waiting::Approval(approval), Event::Tick) if now_ms >= approval.deadline_ms => {
                self.advance_approval_timeout(approval)
            }
            (Waiting::Execution(execution), Event::Executed(result)) => {
                self.on_executed(gate, execution, result, now_ms)
            }
            _ => only(self.current(gate, now_ms)),
        }
    }

    fn note_usage(&mut self, usage: TokenUsage) {
        let total = match self.role() {
            BrainRole::Primary => &mut self.primary_tokens,
            BrainRole::Fallback => &mut self.fallback_tokens,
        };
        total.add(usage);
    }

    fn on_proposal(&mut self, gate: &Gate, proposal: Proposal, now_ms: u64) -> Advance {
        let (action, declared) = match proposal {
            Proposal::Done { summary } => {
                return only(self.finish(EpisodeEnd::Claimed { summary }));
            }
            Proposal::Act {
                action,
                declared_risk,
            } => (action, declared_risk),
        };
        self.steps += 1;
        let step = self.steps;
        let decision = gate.decide(step, &action, declared);
        self.max_risk_seen = Some(
            self.max_risk_seen
                .map_or(decision.risk, |seen| seen.max(decision.risk)),
        );
        match decision.verdict {
            Verdict::Allow | Verdict::AutoConfirmed => {
                let decided_by = if decision.verdict == Verdict::Allow {
                    DecidedBy::Gate
                } else {
                    DecidedBy::Policy
                };
                self.waiting = Waiting::Execution(Execution {
                    step,
                    action,
                    declared_risk: declared,
                    decided_by,
                    attempts: 0,
                });
                only(self.current(gate, now_ms))
            }
            Verdict::Confirm => {
                let deadline_ms = self
                    .config
                    .approval_timeout_ms
                    .map_or(self.deadline_ms(), |t| {
                        now_ms.saturating_add(t).min(self.deadline_ms())
                    });
                let approval = Approval {
                    step,
                    action,
                    declared_risk: declared,
                    risk: decision.risk,
                    reason: decision.classified.why,
                    requested_at_ms: now_ms,
                    deadline_ms,
                    preview: None,
                };
                self.waiting = Waiting::Approval(approval.clone());
                only(Request::NeedApproval(approval))
            }
            Verdict::Deny(reason) => {
                let reason = format!("denied by the risk gate: {reason}");
                let record = record(
                    step,
                    &action,
                    declared,
                    decision.risk,
                    Decision::Denied,
                    DecidedBy::Gate,
                )
                .with_reason(&reason);
                let turn = Turn {
                    step,
                    action: action.clone(),
                    declared_risk: declared,
                    feedback: Feedback::Denied {
                        reason: reason.clone(),
                    },
                };
                let request = match gate.policy().on_risk_exceeded {
                    OnRiskExceeded::Fail => self.finish(EpisodeEnd::RiskLimitExceeded {
                        step,
                        action: action.summary(),
                        reason,
                    }),
                    OnRiskExceeded::Deny => self.ask_for_proposal(now_ms),
                };
                Advance {
                    record: Some(record),
                    turn: Some(turn),
                    request,
                }
            }
        }
    }

    fn on_answer(
        &mut self,
        gate: &Gate,
        approval: Approval,
        approved: bool,
        by: DecidedBy,
        now_ms: u64,
    ) -> Advance {
        if approved {
            return match gate.permit(
                approval.step,
                &approval.action,
                approval.declared_risk,
                Some(by),
            ) {
                Ok(permit) => {
                    self.waiting = Waiting::Execution(Execution {
                        step: approval.step,
                        action: approval.action,
                        declared_risk: approval.declared_risk,
                        decided_by: by,
                        attempts: 0,
                    });
                    only(Request::Execute(permit))
                }
                Err(Ruling::Denied(decision) | Ruling::NeedsApproval(decision)) => {
                    let reason = match decision.verdict {
                        Verdict::Deny(reason) => reason,
                        _ => "the gate did not accept the approval".into(),
                    };
                    self.refused(approval, Decision::Denied, DecidedBy::Gate, reason, now_ms)
                }
            };
        }
        let reason = format!("confirmation refused ({by})");
        let end = EpisodeEnd::ConfirmationRefused {
            step: approval.step,
            action: approval.action.summary(),
            by,
        };
        let mut advance = self.refused(approval, Decision::Rejected, by, reason, now_ms);
        advance.request = self.finish(end);
        advance
    }

    fn advance_approval_timeout(&mut self, approval: Approval) -> Advance {
        let end = EpisodeEnd::ApprovalTimeout {
            step: approval.step,
            action: approval.action.summary(),
        };
        let reason = "nobody approved or rejected it in time".to_string();
        let mut advance = self.refused(approval, Decision::Rejected, DecidedBy::Timeout, reason, 0);
        advance.request = self.finish(end);
        advance
    }

    /// A step that did not run: its record and turn, then the next proposal.
    fn refused(
        &mut self,
        approval: Approval,
        decision: Decision,
        by: DecidedBy,
        reason: String,
        now_ms: u64,
    ) -> Advance {
        let record = record(
            approval.step,
            &approval.action,
            approval.declared_risk,
            approval.risk,
            decision,
            by,
        )
        .with_reason(&reason);
        let feedback = match decision {
            Decision::Denied => Feedback::Denied { reason },
            _ => Feedback::Rejected { reason },
        };
        let turn = Turn {
            step: approval.step,
            action: approval.action,
            declared_risk: approval.declared_risk,
            feedback,
        };
        Advance {
            record: Some(record),
            turn: Some(turn),
            request: self.ask_for_proposal(now_ms),
        }
    }

    fn on_executed(
        &mut self,
        gate: &Gate,
        mut execution: Execution,
        result: Result<Observation, WorkspaceError>,
        now_ms: u64,
    ) -> Advance {
        let decision = match execution.decided_by {
            DecidedBy::Gate => Decision::Allowed,
            _ => Decision::Confirmed,
        };
        let risk = gate
            .decide(execution.step, &execution.action, execution.declared_risk)
            .risk;
        let base = record(
            execution.step,
            &execution.action,
            execution.declared_risk,
            risk,
            decision,
            execution.decided_by,
        );
        match result {
            Ok(observation) => {
                let record = ActionRecord {
                    exit_code: observation.exit_code,
                    duration_ms: observation.duration_ms,
                    rolled_back: observation.rolled_back.clone(),
                    approver: None,
                    ..base
                };
                let turn = Turn {
                    step: execution.step,
                    action: execution.action,
                    declared_risk: execution.declared_risk,
                    feedback: Feedback::Observed(observation),
                };
                Advance {
                    record: Some(record),
                    turn: Some(turn),
                    request: self.ask_for_proposal(now_ms),
                }
            }
            Err(error)
                if error.is_retryable()
                    && execution.attempts + 1 < self.config.max_execute_attempts =>
            {
                execution.attempts += 1;
                self.waiting = Waiting::Execution(execution);
                only(self.current(gate, now_ms))
            }
            Err(error) => {
                let reason = error.to_string();
                let turn = Turn {
                    step: execution.step,
                    action: execution.action,
                    declared_risk: execution.declared_risk,
                    feedback: Feedback::Failed {
                        reason: reason.clone(),
                    },
                };
                let end = EpisodeEnd::WorkspaceFailed {
                    step: execution.step,
                    reason: reason.clone(),
                };
                Advance {
                    record: Some(base.with_reason(&reason)),
                    turn: Some(turn),
                    request: self.finish(end),
                }
            }
        }
    }
}

fn only(request: Request) -> Advance {
    Advance {
        record: None,
        turn: None,
        request,
    }
}

fn record(
    step: u32,
    action: &Action,
    declared: Option<SecurityRisk>,
    risk: SecurityRisk,
    decision: Decision,
    by: DecidedBy,
) -> ActionRecord {
    ActionRecord {
        step,
        kind: action.kind().to_string(),
        command: action.summary(),
        declared_risk: declared,
        risk,
        decision,
        decided_by: by.to_string(),
        reason: None,
        rolled_back: None,
        approver: None,
        exit_code: None,
        duration_ms: 0,
    }
}

#[cfg(test)]
mod tests;
