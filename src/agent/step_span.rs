//! One span per agent step, the same in the local driver and the
//! operator's: it opens when the step's first event happens (the brain is
//! asked) and closes with the step's record, carrying what the status
//! records about it. The proposal, the approval wait and the sandbox run
//! are its children.

use tracing::Span;
use tracing::field::Empty;

use crate::crd::{ActionRecord, Decision};
use crate::protocol::EpisodeEnd;

macro_rules! step_span {
    ($name:literal, $step:expr) => {
        tracing::info_span!(
            $name,
            otel.name = %format!(concat!($name, " {}"), $step),
            step = crate::telemetry::count($step),
            action.kind = Empty,
            action.command = Empty,
            risk = Empty,
            decision = Empty,
            decided_by = Empty,
            reason = Empty,
            rolled_back = Empty,
            exit_code = Empty,
            duration_ms = Empty,
            episode.end = Empty,
            otel.status_code = Empty,
            otel.status_message = Empty,
        )
    };
}

/// The span of step `step` (1-based) where the agent and the gate share a
/// process, a child of the current span.
pub fn open(step: u32) -> Span {
    step_span!("step", step)
}

/// The gate's side of step `step` in the operator, where the agent is
/// another process: a child of the Action API request that brought it.
pub fn open_gate(step: u32) -> Span {
    step_span!("gate", step)
}

/// Records the step's outcome on its span (which the caller then drops).
/// The command is the one the agent proposed, as the status keeps it: the
/// agent only ever saw secrets as the redactor's handles, so that is all
/// it can write. The reason is kept for a refusal (the gate's or a
/// person's words), not for a failed run, whose text quotes the sandbox.
pub fn close(span: &Span, record: &ActionRecord) {
    span.record("action.kind", record.kind.as_str());
    span.record("action.command", record.command.as_str());
    span.record("risk", tracing::field::display(&record.risk));
    span.record("decision", tracing::field::debug(&record.decision));
    span.record("decided_by", record.decided_by.as_str());
    let refused = matches!(record.decision, Decision::Denied | Decision::Rejected);
    if let Some(reason) = record.reason.as_ref().filter(|_| refused) {
        span.record("reason", reason.as_str());
    }
    if let Some(evidence) = &record.rolled_back {
        span.record("rolled_back", evidence.as_str());
    }
    if let Some(code) = record.exit_code {
        span.record("exit_code", code);
    }
    span.record("duration_ms", crate::telemetry::count(record.duration_ms));
    if refused {
        span.record("otel.status_code", "ERROR");
        span.record(
            "otel.status_message",
            record.reason.as_deref().unwrap_or("not allowed"),
        );
    }
}

/// Records how the episode ended on the step that was open when it did
/// (a "done" claim ends a step without an action).
pub fn ended(span: &Span, end: &EpisodeEnd) {
    let how = match end {
        EpisodeEnd::Claimed { .. } => "claimed done",
        EpisodeEnd::StepBudget => "step budget",
        EpisodeEnd::TimeBudget => "time budget",
        EpisodeEnd::RiskLimitExceeded { .. } => "risk limit exceeded",
        EpisodeEnd::ConfirmationRefused { .. } => "confirmation refused",
        EpisodeEnd::ApprovalTimeout { .. } => "approval timeout",
        EpisodeEnd::BrainFailed { .. } => "brain failed",
        EpisodeEnd::WorkspaceFailed { .. } => "workspace failed",
    };
    span.record("episode.end", how);
}
