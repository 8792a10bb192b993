//! The agent: an episode loop that asks a [`Brain`] for one action at a
//! time, passes it through the [`Gate`], runs it in the [`Workspace`] and
//! records everything. The brain's "done" is only a claim; the caller
//! verifies the service itself.

pub mod confirm;
pub mod hint;
pub mod llm;
pub mod runbook;

use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde::Serialize;

use crate::crd::{ActionRecord, Decision, OnRiskExceeded, TokenUsage};
use crate::risk::{Gate, SecurityRisk, Verdict};
use crate::workspace::{Action, Observation, Workspace};
use confirm::{Answer, Confirmer};

/// What the agent is told about the incident: never the scenario id or
/// the known fix.
#[derive(Debug, Clone, Serialize)]
pub struct Task {
    pub symptom: String,
    /// The port health probes expect.
    pub expected_port: u16,
    /// The strategy hint or skill text the brain follows.
    pub hint: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Proposal {
    Act {
        action: Action,
        declared_risk: Option<SecurityRisk>,
    },
    /// The brain claims it is finished; a claim, not a verdict.
    Done { summary: String },
}

/// What became of a proposed action, as the brain learns it.
#[derive(Debug, Clone, PartialEq)]
pub enum Feedback {
    Observed(Observation),
    /// The gate refused it (risk above the policy's maximum).
    Denied(String),
    /// Confirmation was refused.
    Rejected(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    pub action: Action,
    pub feedback: Feedback,
}

#[derive(Debug, thiserror::Error)]
pub enum BrainError {
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Protocol(String),
}

/// Proposes the next action from the task and what happened so far.
pub trait Brain: Send {
    fn name(&self) -> &'static str;
    fn model(&self) -> Option<String> {
        None
    }
    fn usage(&self) -> TokenUsage {
        TokenUsage::default()
    }
    fn propose<'a>(
        &'a mut self,
        task: &'a Task,
        history: &'a [Turn],
    ) -> BoxFuture<'a, Result<Proposal, BrainError>>;
}

#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub max_steps: u32,
    pub timeout: Duration,
}

/// Why an episode stopped.
#[derive(Debug, Clone, PartialEq)]
pub enum EpisodeEnd {
    Claimed(String),
    StepBudget,
    TimeBudget,
    /// A denied action under `onRiskExceeded: Fail`.
    RiskLimitExceeded(String),
    /// The brain failed and no fallback was allowed.
    BrainFailed(String),
}

#[derive(Debug, Clone)]
pub struct Episode {
    pub end: EpisodeEnd,
    pub records: Vec<ActionRecord>,
    pub history: Vec<Turn>,
    pub max_risk_seen: Option<SecurityRisk>,
    pub brain: String,
    pub model: Option<String>,
    pub tokens: TokenUsage,
    /// Set when the fallback brain took over, with the reason.
    pub fallback: Option<String>,
}

impl Episode {
    pub fn steps(&self) -> u32 {
        u32::try_from(self.records.len()).unwrap_or(u32::MAX)
    }
}

/// Runs one episode. `fallback` takes over if the brain fails; without it
/// a brain failure ends the episode.
pub async fn run_episode<W: Workspace>(
    task: &Task,
    mut brain: Box<dyn Brain>,
    mut fallback: Option<Box<dyn Brain>>,
    gate: &Gate,
    workspace: &W,
    confirmer: &dyn Confirmer,
    budget: Budget,
) -> Episode {
    let started = Instant::now();
    let primary_name = brain.name();
    let mut episode = Episode {
        end: EpisodeEnd::StepBudget,
        records: Vec::new(),
        history: Vec::new(),
        max_risk_seen: None,
        brain: primary_name.to_string(),
        model: brain.model(),
        tokens: TokenUsage::default(),
        fallback: None,
    };
    let mut primary_usage = TokenUsage::default();
    loop {
        if episode.steps() >= budget.max_steps {
            episode.end = EpisodeEnd::StepBudget;
            break;
        }
        let Some(remaining) = budget.timeout.checked_sub(started.elapsed()) else {
            episode.end = EpisodeEnd::TimeBudget;
            break;
        };
        let proposed = tokio::time::timeout(remaining, brain.propose(task, &episode.history)).await;
        let proposal = match proposed {
            Err(_) => {
                episode.end = EpisodeEnd::TimeBudget;
                break;
            }
            Ok(Ok(proposal)) => proposal,
            Ok(Err(error)) => match fallback.take() {
                Some(next) => {
                    primary_usage = brain.usage();
                    episode.fallback = Some(error.to_string());
                    brain = next;
                    continue;
                }
                None => {
                    episode.end = EpisodeEnd::BrainFailed(error.to_string());
                    break;
                }
            },
        };
        let (action, declared) = match proposal {
            Proposal::Done { summary } => {
                episode.end = EpisodeEnd::Claimed(summary);
                break;
            }
            Proposal::Act {
                action,
                declared_risk,
            } => (action, declared_risk),
        };
        let step = episode.steps() + 1;
        let decision = gate.decide(&action, declared);
        episode.max_risk_seen = Some(
            episode
                .max_risk_seen
                .map_or(decision.risk, |seen| seen.max(decision.risk)),
        );
        let (record_decision, decided_by, run) = match &decision.verdict {
            Verdict::Allow => (Decision::Allowed, "gate", true),
            Verdict::AutoConfirmed => (Decision::Confirmed, "policy", true),
            Verdict::Deny(_) => (Decision::Denied, "gate", false),
            // Waiting for a person counts against the episode's time budget.
            Verdict::Confirm => {
                let left = budget.timeout.saturating_sub(started.elapsed());
                let asked = confirmer.confirm(step, &action, decision.risk);
                match tokio::time::timeout(left, asked).await {
                    Ok(Answer::Approved(by)) => (Decision::Confirmed, by, true),
                    Ok(Answer::Refused(by)) => (Decision::Rejected, by, false),
                    Err(_) => (Decision::Rejected, "timeout", false),
                }
            }
        };
        let denied = match &decision.verdict {
            Verdict::Deny(reason) => Some(reason.clone()),
            _ => None,
        };
        let feedback = if run {
            Feedback::Observed(workspace.run(&action).await)
        } else if let Some(reason) = &denied {
            Feedback::Denied(format!("denied by the risk gate: {reason}"))
        } else {
            Feedback::Rejected(format!("confirmation refused ({decided_by})"))
        };
        let (exit_code, duration_ms) = match &feedback {
            Feedback::Observed(o) => (o.exit_code, o.duration_ms),
            _ => (None, 0),
        };
        episode.records.push(ActionRecord {
            step,
            kind: action_kind(&action).to_string(),
            command: action_text(&action),
            declared_risk: declared,
            risk: decision.risk,
            decision: record_decision,
            decided_by: decided_by.to_string(),
            exit_code,
            duration_ms,
        });
        episode.history.push(Turn { action, feedback });
        if let (Some(reason), OnRiskExceeded::Fail) = (denied, gate.policy().on_risk_exceeded) {
            episode.end = EpisodeEnd::RiskLimitExceeded(reason);
            break;
        }
    }
    let last = brain.usage();
    episode.tokens = TokenUsage {
        prompt: primary_usage.prompt + last.prompt,
        completion: primary_usage.completion + last.completion,
    };
    if episode.fallback.is_some() {
        episode.brain = format!("{primary_name}+{}", brain.name());
    }
    episode
}

pub fn action_kind(action: &Action) -> &'static str {
    match action {
        Action::Exec(_) => "exec",
        Action::ReadFile(_) => "read_file",
        Action::WriteFile { .. } => "write_file",
        Action::HttpGet(_) => "http_get",
        Action::RestartService => "restart_service",
    }
}

/// The action as one line for status and logs (file contents elided).
pub fn action_text(action: &Action) -> String {
    let text = match action {
        Action::Exec(command) => command.clone(),
        Action::ReadFile(path) => path.clone(),
        Action::WriteFile { path, content } => format!("{path} ({} bytes)", content.len()),
        Action::HttpGet(path) => format!("GET {path}"),
        Action::RestartService => "restart".to_string(),
    };
    const MAX: usize = 500;
    if text.len() > MAX {
        let mut end = MAX;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &text[..end])
    } else {
        text
    }
}

/// An observation as text for a model or a log.
pub fn feedback_text(feedback: &Feedback) -> String {
    match feedback {
        Feedback::Denied(reason) | Feedback::Rejected(reason) => format!("NOT EXECUTED: {reason}"),
        Feedback::Observed(o) => {
            let mut text = String::new();
            if let Some(status) = o.http_status {
                text.push_str(&format!("http_status: {status}\n"));
            }
            match o.exit_code {
                Some(code) => text.push_str(&format!("exit_code: {code}\n")),
                None => text.push_str("exit_code: none (killed)\n"),
            }
            if !o.stdout.is_empty() {
                text.push_str(&format!("stdout:\n{}\n", o.stdout));
            }
            if !o.stderr.is_empty() {
                text.push_str(&format!("stderr:\n{}\n", o.stderr));
            }
            text
        }
    }
}
