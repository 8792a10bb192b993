//! remediator: resolves service incidents with an agent that acts only
//! through a deterministic risk gate, verified by the operator's own probe.
#![forbid(unsafe_code)]

pub mod agent;
pub mod cli;
pub mod crd;
pub mod local;
pub mod manifest;
pub mod risk;
pub mod scenario;
pub mod trajectory;
pub mod verify;
pub mod workspace;
