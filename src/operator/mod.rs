//! The operator: the gate side of every episode (the [`engine`]), the
//! Action API agents propose through ([`api`]), and the Kubernetes
//! controller that provisions incidents, answers approvals and verifies.

pub mod annotations;
pub mod api;
pub mod backoff;
pub mod bounded;
pub mod controller;
pub mod engine;
pub mod fixtures;
pub mod kube_backend;
pub mod memory;
pub mod metrics;
pub mod notify;
pub mod objects;
pub mod reconcile;
pub mod recording;
pub mod run;
pub mod scorecard;
pub mod session;
pub mod status_writer;
pub mod stores;
pub mod waiting_for_policy;
