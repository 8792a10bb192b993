//! remediator: resolves service incidents with an agent that acts only
//! through a deterministic risk gate, contained by the kernel, verified by
//! the operator's own probe.
// One exception, in two places of the sandbox helper: fork(2) in a
// process that starts no threads (`sandbox::helper::{middle, warm}`).
#![deny(unsafe_code)]

pub mod action;
pub mod agent;
pub mod cli;
pub mod crd;
pub mod eval;
pub mod local;
pub mod manifest;
pub mod mcp;
pub mod operator;
pub mod optimize;
pub mod policy;
pub mod protocol;
pub mod redact;
pub mod risk;
pub mod rng;
pub mod sandbox;
pub mod scenario;
pub mod scratch;
pub mod sidecar;
pub mod status;
pub mod telemetry;
pub mod tokens;
pub mod trajectory;
pub mod verify;
pub mod web;
pub mod workspace;

#[cfg(test)]
mod layers;
