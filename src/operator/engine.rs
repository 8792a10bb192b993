//! The gate side of every running episode. The agent's proposals (through
//! the Action API), a person's answers (through annotations) and the clock
//! are fed into the incident's step machine; permitted actions execute in
//! the sandbox beside the service; each step's record is saved before the
//! agent hears of it. One incident is advanced by one caller at a time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tracing::Instrument;

use super::session::Session;
use crate::agent::driver::now_ms;
use crate::agent::episode::{Advance, Event, Request, Waiting};
use crate::crd::{ActionRecord, Approver};
use crate::protocol::{
    AgentSession, IncidentKey, Next, Offer, StepReply, Submission, Turn, UndoAnswer,
};
use crate::risk::DecidedBy;
use crate::workspace::{Remote, Workspace};

/// How long asking the sidecar what a waiting write would change may take.
const PREVIEW_TIMEOUT: Duration = Duration::from_secs(5);

/// Gives a write that has just started waiting for a person its diff
/// against the file as it is. Best effort: without one the person still
/// sees the whole content.
async fn preview_waiting_write(session: &mut Session, workspace: &Remote) {
    let Waiting::Approval(approval) = &mut session.episode.waiting else {
        return;
    };
    let crate::action::Action::WriteFile { path, content } = &approval.action else {
        return;
    };
    if approval.preview.is_some() {
        return;
    }
    let preview = workspace.clone().with_timeout(PREVIEW_TIMEOUT);
    approval.preview = Some(match preview.preview(path, content).await {
        Ok(diff) => diff,
        Err(e) => format!("{}: {e})", crate::operator::notify::shown::NO_DIFF),
    });
}

/// A person's answer to a waiting action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonsAnswer {
    pub step: u32,
    pub approved: bool,
    pub by: DecidedBy,
    /// Who, as far as anything vouches for it.
    pub approver: Option<Approver>,
    /// The action the person saw, when they saw it hashed (a link).
    pub action_hash: Option<String>,
}

/// Who a bearer token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Granted,
    /// No token, or one that belongs to no incident: 401.
    Unknown,
    /// Another incident's token: 403.
    OtherIncident,
    /// No such incident: 404.
    NoIncident,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    #[error("incident {0} has no running session")]
    NotFound(String),
    #[error("{0}")]
    Unavailable(String),
}

/// Where sessions live (the Incident's status in a cluster, memory
/// locally) and how to reach each incident's sandbox.
pub trait Backend: Send + Sync + 'static {
    fn load<'a>(
        &'a self,
        key: &'a IncidentKey,
    ) -> BoxFuture<'a, Result<Option<(Session, Remote)>, BackendError>>;
    /// Persists the session with the records of the steps just finished.
    fn save<'a>(
        &'a self,
        key: &'a IncidentKey,
        session: &'a Session,
        records: &'a [ActionRecord],
    ) -> BoxFuture<'a, Result<(), BackendError>>;
    fn authenticate<'a>(
        &'a self,
        key: &'a IncidentKey,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Access, BackendError>>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    NotFound(String),
    /// The request does not fit where the episode is (409).
    #[error("{0}")]
    Conflict(String),
    /// Storage or the sandbox is unavailable right now (503).
    #[error("{0}")]
    Unavailable(String),
}

impl From<BackendError> for EngineError {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::NotFound(key) => EngineError::NotFound(format!("no session for {key}")),
            BackendError::Unavailable(why) => EngineError::Unavailable(why),
        }
    }
}

pub struct Engine {
    backend: Arc<dyn Backend>,
    locks: Mutex<HashMap<IncidentKey, Arc<tokio::sync::Mutex<()>>>>,
    changed: Mutex<HashMap<IncidentKey, Arc<tokio::sync::Notify>>>,
}

impl Engine {
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Self {
            backend,
            locks: Mutex::new(HashMap::new()),
            changed: Mutex::new(HashMap::new()),
        }
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    fn lock_of(&self, key: &IncidentKey) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.clone())
            .or_default()
            .clone()
    }

    fn notify_of(&self, key: &IncidentKey) -> Arc<tokio::sync::Notify> {
        self.changed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.clone())
            .or_default()
            .clone()
    }

    /// Holds the incident's lock: nothing else advances or writes it
    /// meanwhile (the reconciler takes it around its own status write).
    pub async fn exclusive(&self, key: &IncidentKey) -> tokio::sync::OwnedMutexGuard<()> {
        self.lock_of(key).lock_owned().await
    }

    /// Forgets the locks of an incident that is gone.
    pub fn forget(&self, key: &IncidentKey) {
        self.locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        self.changed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    async fn load(&self, key: &IncidentKey) -> Result<(Session, Remote), EngineError> {
        self.backend
            .load(key)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("incident {key} has no running session")))
    }

    /// Feeds `event` (or resumes where the episode waits) and drives every
    /// permitted execution; saves the session and the new records; returns
    /// the steps decided.
    async fn drive(
        &self,
        key: &IncidentKey,
        session: &mut Session,
        workspace: &Remote,
        event: Option<Event>,
    ) -> Result<Vec<Turn>, EngineError> {
        self.drive_answered(key, session, workspace, event, None)
            .await
    }

    /// [`Engine::drive`], with who answered the step that waited, which
    /// its record keeps.
    async fn drive_answered(
        &self,
        key: &IncidentKey,
        session: &mut Session,
        workspace: &Remote,
        event: Option<Event>,
        approver: Option<&Approver>,
    ) -> Result<Vec<Turn>, EngineError> {
        let step = match &session.episode.waiting {
            Waiting::Approval(approval) => approval.step,
            Waiting::Execution(execution) => execution.step,
            _ => session.episode.steps + 1,
        };
        let span = crate::agent::step_span::open_gate(step);
        self.drive_in(key, session, workspace, event, approver, &span)
            .instrument(span.clone())
            .await
    }

    async fn drive_in(
        &self,
        key: &IncidentKey,
        session: &mut Session,
        workspace: &Remote,
        event: Option<Event>,
        approver: Option<&Approver>,
        span: &tracing::Span,
    ) -> Result<Vec<Turn>, EngineError> {
        let answered = match &session.episode.waiting {
            Waiting::Approval(approval) => Some(approval.step),
            _ => None,
        };
        let gate = session.gate();
        let mut advance = match event {
            Some(event) => session.episode.next(&gate, event, now_ms()),
            None => Advance {
                record: None,
                turn: None,
                request: session.episode.current(&gate, now_ms()),
            },
        };
        let mut records = Vec::new();
        let mut turns = Vec::new();
        loop {
            records.extend(advance.record.take());
            turns.extend(advance.turn.take());
            let Request::Execute(permit) = &advance.request else {
                break;
            };
            let result = workspace.run(permit).await;
            advance = session
                .episode
                .next(&gate, Event::Executed(result), now_ms());
        }
        for turn in turns.iter().filter(|t| t.feedback.is_refusal()) {
            // The sandbox journal is the history an agent resumes from.
            workspace.note(turn).await.map_err(|e| {
                EngineError::Unavailable(format!("recording step {}: {e}", turn.step))
            })?;
        }
        preview_waiting_write(session, workspace).await;
        if let (Some(step), Some(approver)) = (answered, approver) {
            for record in records.iter_mut().filter(|r| r.step == step) {
                record.approver = Some(approver.clone());
            }
        }
        self.backend.save(key, session, &records).await?;
        for record in &records {
            crate::agent::step_span::close(span, record);
            tracing::info!(
                incident = %key,
                policy = %session.policy_name,
                step = record.step,
                kind = %record.kind,
                risk = %record.risk,
                decision = ?record.decision,
                decided_by = %record.decided_by,
                exit_code = ?record.exit_code,
                "step decided"
            );
        }
        self.notify_of(key).notify_waiters();
        Ok(turns)
    }

    /// What an agent needs to (re)start.
    pub async fn agent_session(&self, key: &IncidentKey) -> Result<AgentSession, EngineError> {
        let (session, workspace) = self.load(key).await?;
        let history = workspace
            .history()
            .await
            .map_err(|e| EngineError::Unavailable(e.to_string()))?;
        Ok(AgentSession {
            task: session.task.clone(),
            brain: session.brain_settings(),
            history,
            next: session.next(),
        })
    }

    /// An agent's offer for step `step`. A step already decided gets its
    /// recorded turn again; one accepted but undecided is driven on.
    pub async fn submit(
        &self,
        key: &IncidentKey,
        step: u32,
        submission: Submission,
    ) -> Result<StepReply, EngineError> {
        let lock = self.lock_of(key);
        let _one_at_a_time = lock.lock().await;
        let (mut session, workspace) = self.load(key).await?;
        if step <= session.episode.steps {
            return self.settle(key, &mut session, &workspace, step).await;
        }
        let expected = session.episode.steps + 1;
        if step != expected || !matches!(session.episode.waiting, Waiting::Proposal) {
            return Err(EngineError::Conflict(format!(
                "step {step} is not the next one; the episode is at: {:?}",
                session.next()
            )));
        }
        let event = match submission.offer {
            Offer::Proposal(proposal) => Event::Proposed {
                proposal,
                usage: submission.usage,
            },
            Offer::BrainFailed(error) => Event::BrainFailed {
                error,
                usage: submission.usage,
            },
        };
        let turns = self
            .drive(key, &mut session, &workspace, Some(event))
            .await?;
        Ok(StepReply {
            turn: turns.into_iter().find(|t| t.step == step),
            next: session.next(),
        })
    }

    /// The turn of an accepted step: from the journal, or by driving an
    /// execution a restart interrupted.
    async fn settle(
        &self,
        key: &IncidentKey,
        session: &mut Session,
        workspace: &Remote,
        step: u32,
    ) -> Result<StepReply, EngineError> {
        let waiting_on_it = match &session.episode.waiting {
            Waiting::Execution(e) => e.step == step,
            _ => false,
        };
        if waiting_on_it {
            let turns = self.drive(key, session, workspace, None).await?;
            if let Some(turn) = turns.into_iter().find(|t| t.step == step) {
                return Ok(StepReply {
                    turn: Some(turn),
                    next: session.next(),
                });
            }
        }
        let history = workspace
            .history()
            .await
            .map_err(|e| EngineError::Unavailable(e.to_string()))?;
        Ok(StepReply {
            turn: history.into_iter().find(|t| t.step == step),
            next: session.next(),
        })
    }

    /// The state of step `step`, waiting up to `wait` for it to change.
    pub async fn poll(
        &self,
        key: &IncidentKey,
        step: u32,
        wait: Duration,
    ) -> Result<StepReply, EngineError> {
        let changed = self.notify_of(key);
        let notified = changed.notified();
        let reply = {
            let lock = self.lock_of(key);
            let _one_at_a_time = lock.lock().await;
            let (mut session, workspace) = self.load(key).await?;
            self.settle(key, &mut session, &workspace, step).await?
        };
        if reply.turn.is_some() || !matches!(reply.next, Next::Wait { step: s, .. } if s == step) {
            return Ok(reply);
        }
        let _ = tokio::time::timeout(wait, notified).await;
        let lock = self.lock_of(key);
        let _one_at_a_time = lock.lock().await;
        let (mut session, workspace) = self.load(key).await?;
        self.settle(key, &mut session, &workspace, step).await
    }

    /// A person's answer to the approval step `step` waits for; answers to
    /// anything else are stale and change nothing (returns false). With
    /// `action_hash`, the answer holds only for that very action.
    pub async fn answer(
        &self,
        key: &IncidentKey,
        answer: PersonsAnswer,
    ) -> Result<bool, EngineError> {
        let lock = self.lock_of(key);
        let _one_at_a_time = lock.lock().await;
        let (mut session, workspace) = self.load(key).await?;
        let waiting = matches!(
            &session.episode.waiting,
            Waiting::Approval(a) if a.step == answer.step
                && answer.action_hash.as_ref().is_none_or(|h| *h == a.action.digest())
        );
        if !waiting {
            return Ok(false);
        }
        let event = Event::Answered {
            approved: answer.approved,
            by: answer.by,
        };
        self.drive_answered(
            key,
            &mut session,
            &workspace,
            Some(event),
            answer.approver.as_ref(),
        )
        .await?;
        Ok(true)
    }

    /// Lets the clock act: an approval or the episode past its deadline.
    pub async fn tick(&self, key: &IncidentKey) -> Result<(), EngineError> {
        let lock = self.lock_of(key);
        let _one_at_a_time = lock.lock().await;
        let (mut session, workspace) = self.load(key).await?;
        if session.episode.end().is_none() {
            self.drive(key, &mut session, &workspace, Some(Event::Tick))
                .await?;
        }
        Ok(())
    }

    /// Tightens the incident's maximum risk (never loosens it); true when
    /// it changed.
    pub async fn tighten(
        &self,
        key: &IncidentKey,
        max_risk: crate::risk::RiskLevel,
    ) -> Result<bool, EngineError> {
        let lock = self.lock_of(key);
        let _one_at_a_time = lock.lock().await;
        let (mut session, _) = self.load(key).await?;
        let current = session
            .max_risk
            .unwrap_or(session.policy.max_risk)
            .min(session.policy.max_risk);
        if max_risk >= current {
            return Ok(false);
        }
        session.max_risk = Some(max_risk);
        self.backend.save(key, &session, &[]).await?;
        Ok(true)
    }

    /// Puts the incident's root back as it was before `step`.
    pub async fn undo(&self, key: &IncidentKey, step: u32) -> Result<UndoAnswer, EngineError> {
        let lock = self.lock_of(key);
        let _one_at_a_time = lock.lock().await;
        let (_, workspace) = self.load(key).await?;
        workspace
            .undo(step)
            .await
            .map_err(|e| EngineError::Unavailable(e.to_string()))
    }
}
