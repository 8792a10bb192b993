//! The wire and history types the three processes share (operator, agent,
//! sandbox sidecar), and the local driver records: one leaf, so every layer
//! above can speak them without importing another's internals.

mod action_api;
mod history;
mod sidecar_api;

pub use action_api::{
    AgentSession, BrainRole, BrainSettings, EpisodeEnd, IncidentKey, MAX_BODY_BYTES, Next, Offer,
    StepReply, Submission,
};
pub use history::{Feedback, Observation, Proposal, TRUNCATED, Task, Turn, WorkspaceError};
pub use sidecar_api::{
    NoteRequest, PreviewAnswer, PreviewRequest, StepAnswer, StepRequest, UndoAnswer, UndoRequest,
};
