//! Drives an episode in one process: the brain proposes, the confirmer
//! answers, the workspace executes, each under the episode's deadlines.
//! `remediator run` uses it; the operator drives the same step machine
//! across processes.

use std::time::Duration;

use tracing::{Instrument, Span};

use super::confirm::{Answer, Confirmer};
use super::episode::{Episode, Event, Request};
use super::llm::{LlmBrain, LlmConfig, LlmEnvironment};
use super::runbook::RunbookBrain;
use super::{Brain, step_span};
use crate::crd::{ActionRecord, BrainKind, LlmSpec};
use crate::protocol::{BrainRole, Task, Turn};
use crate::risk::Gate;
use crate::workspace::Workspace;

/// The brains of an episode: the policy's, and the one that takes over
/// when it fails (if the policy allows). Either may be absent (an LLM brain
/// without a key never existed).
pub struct Brains {
    pub primary: Option<Box<dyn Brain>>,
    pub fallback: Option<Box<dyn Brain>>,
}

impl Brains {
    pub fn only(brain: Box<dyn Brain>) -> Self {
        Self {
            primary: Some(brain),
            fallback: None,
        }
    }

    pub fn for_role(&mut self, role: BrainRole) -> Option<&mut Box<dyn Brain>> {
        match role {
            BrainRole::Primary => self.primary.as_mut(),
            BrainRole::Fallback => self.fallback.as_mut(),
        }
    }

    /// `llm`, `runbook`, or `llm+runbook` when the fallback took over.
    pub fn label(&self, episode: &Episode) -> String {
        let name = |b: &Option<Box<dyn Brain>>| b.as_ref().map(|b| b.name());
        match (
            episode.fallback_reason.is_some(),
            name(&self.primary),
            name(&self.fallback),
        ) {
            (true, primary, Some(fallback)) => {
                format!("{}+{fallback}", primary.unwrap_or("llm"))
            }
            (_, Some(primary), _) => primary.to_string(),
            (_, None, Some(fallback)) => fallback.to_string(),
            (_, None, None) => "none".to_string(),
        }
    }

    pub fn model(&self) -> Option<String> {
        self.primary.as_ref().and_then(|b| b.model())
    }
}

/// The brains a Policy asks for: its brain, and the runbook to take over
/// when an LLM brain fails (if allowed). An LLM brain that cannot even be
/// built (no key) is an error when no fallback is allowed; with fallback
/// the runbook takes over from the start and the reason comes back.
pub fn brains_for(
    kind: BrainKind,
    llm: Option<&LlmSpec>,
    allow_fallback: bool,
    env: &LlmEnvironment,
) -> Result<(Brains, Option<String>), String> {
    let runbook = || Some(Box::new(RunbookBrain) as Box<dyn Brain>);
    match kind {
        BrainKind::Runbook => Ok((Brains::only(Box::new(RunbookBrain)), None)),
        BrainKind::Llm => {
            let built =
                LlmConfig::resolve(&llm.cloned().unwrap_or_default(), env).and_then(LlmBrain::new);
            match (built, allow_fallback) {
                (Ok(brain), true) => Ok((
                    Brains {
                        primary: Some(Box::new(brain)),
                        fallback: runbook(),
                    },
                    None,
                )),
                (Ok(brain), false) => Ok((Brains::only(Box::new(brain)), None)),
                (Err(e), true) => Ok((
                    Brains {
                        primary: None,
                        fallback: runbook(),
                    },
                    Some(e.to_string()),
                )),
                (Err(e), false) => Err(format!(
                    "{e} (or allow the runbook brain to take over: allowFallback in the Policy, --allow-fallback)"
                )),
            }
        }
    }
}

/// Everything an episode produced.
pub struct Driven {
    pub episode: Episode,
    pub records: Vec<ActionRecord>,
    pub history: Vec<Turn>,
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

fn until(deadline_ms: u64) -> Duration {
    Duration::from_millis(deadline_ms.saturating_sub(now_ms()))
}

/// Runs `episode` to its end (or resumes it, given the history so far).
pub async fn drive(
    task: &Task,
    brains: &mut Brains,
    gate: &Gate,
    workspace: &dyn Workspace,
    confirmer: &dyn Confirmer,
    mut episode: Episode,
    mut history: Vec<Turn>,
) -> Driven {
    let mut records = Vec::new();
    let mut request = episode.current(gate, now_ms());
    // The open step's span: from the step's first request to its record.
    let mut step: Option<Span> = None;
    loop {
        if !matches!(request, Request::Done(_)) && step.is_none() {
            step = Some(step_span::open(episode.steps + 1));
        }
        let span = step.clone().unwrap_or_else(Span::none);
        let event = match &request {
            Request::Done(end) => {
                step_span::ended(&span, end);
                break;
            }
            Request::NeedProposal { role, deadline_ms } => {
                let Some(brain) = brains.for_role(*role) else {
                    let error = format!("no {role:?} brain is configured").to_lowercase();
                    request = episode
                        .next(
                            gate,
                            Event::BrainFailed {
                                error,
                                usage: Default::default(),
                            },
                            now_ms(),
                        )
                        .request;
                    continue;
                };
                let before = brain.usage();
                let propose_span = tracing::info_span!(parent: &span, "propose", brain = brain.name(), role = ?role);
                let asked = async { brain.propose(task, &history).await }.instrument(propose_span);
                let proposed = tokio::time::timeout(until(*deadline_ms), asked).await;
                let after = brain.usage();
                let usage = after.since(before);
                match proposed {
                    Err(_) => Event::Tick,
                    Ok(Ok(proposal)) => Event::Proposed { proposal, usage },
                    Ok(Err(error)) => Event::BrainFailed {
                        error: error.to_string(),
                        usage,
                    },
                }
            }
            Request::NeedApproval(approval) => {
                let asked = async {
                    confirmer
                        .confirm(approval.step, &approval.action, approval.risk)
                        .await
                }
                .instrument(tracing::info_span!(parent: &span, "approval", risk = %approval.risk));
                match tokio::time::timeout(until(approval.deadline_ms), asked).await {
                    Err(_) => Event::Tick,
                    Ok(Answer::Approved(by)) => Event::Answered { approved: true, by },
                    Ok(Answer::Refused(by)) => Event::Answered {
                        approved: false,
                        by,
                    },
                }
            }
            Request::Execute(permit) => {
                // Called inside the step span, so the workspace's spans are its children.
                let run = async { workspace.run(permit).await }.instrument(span.clone());
                Event::Executed(run.await)
            }
        };
        let advance = episode.next(gate, event, now_ms());
        if let Some(record) = &advance.record {
            step_span::close(&span, record);
            // An episode that ends with a record (a failed run, the step
            // budget) ends on that step.
            if let Request::Done(end) = &advance.request {
                step_span::ended(&span, end);
            }
            step = None;
        }
        records.extend(advance.record);
        history.extend(advance.turn);
        request = advance.request;
    }
    Driven {
        episode,
        records,
        history,
    }
}
