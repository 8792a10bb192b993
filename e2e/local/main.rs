//! End-to-end tests on local processes: the real `remediator` binary starts
//! real services that really break and really get fixed.

mod agent;
mod bad_input;
mod cli;
mod llama;
mod llm;
mod scenarios;
mod scripted_llm;

use std::path::PathBuf;

use remediator::scenario::{ChildProgram, Launch};

pub fn remediator_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_remediator"))
}

/// Launches services through `remediator target-service`, as the CLI does.
pub fn launch() -> Launch {
    Launch::with_program(ChildProgram {
        program: remediator_bin(),
        prefix_args: vec!["target-service".into()],
    })
}
