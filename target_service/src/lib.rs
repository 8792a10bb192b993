//! The deliberately broken HTTP service that remediator incidents are
//! about: a scenario catalog, the fault setup, the service process and the
//! supervisor that restarts it.
#![forbid(unsafe_code)]

pub mod catalog;
mod child;
pub mod cli;
pub mod config;
pub mod control;
mod health;
pub mod input;
pub mod log;
pub mod root;
pub mod supervisor;

pub use catalog::{Catalog, CatalogError, Scenario, Split};
