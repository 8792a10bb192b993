//! The operator: the gate side of every episode (the [`engine`]), the
//! Action API agents propose through ([`api`]), and the Kubernetes
//! controller that provisions incidents, answers approvals and verifies.

pub mod api;
pub mod engine;
pub mod memory;
pub mod protocol;
pub mod session;
