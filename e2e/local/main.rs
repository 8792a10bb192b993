//! End-to-end tests on local processes: the real `remediator` binary starts
//! real services that really break and really get fixed, every command in
//! the real kernel sandbox.

mod action_api;
mod agent;
mod bad_input;
mod cleanup;
mod cli;
mod container;
mod containment;
mod docs;
#[path = "../common/jaeger.rs"]
mod jaeger;
mod llama;
mod llm;
#[path = "../common/llm_server.rs"]
mod llm_server;
mod no_harm;
mod operator_flow;
mod optimize;
#[path = "../common/procs.rs"]
mod procs;
mod scenarios;
mod scripted_llm;
mod sidecar;
#[path = "../common/sidecar_process.rs"]
mod sidecar_process;
mod traces;
mod warm_sandbox;

use std::path::PathBuf;
use std::sync::Arc;

use remediator::action::Action;
use remediator::agent::llm::LlmEnvironment;
use remediator::local::Environment;
use remediator::protocol::{Observation, WorkspaceError};
use remediator::risk::{Classifier, Gate, GatePolicy, RiskLevel};
use remediator::sandbox::{HelperProgram, Sandbox};
use remediator::scenario::{Catalog, Launch, RunningService};
use remediator::workspace::{Local, LocalService, Workspace};

pub fn remediator_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_remediator"))
}

/// Launches services through `remediator target-service`, as the CLI does.
pub fn launch() -> Launch {
    Launch::through_remediator(remediator_bin())
}

/// The sandbox, with the real binary as its helper (probed once).
pub async fn sandbox() -> Arc<Sandbox> {
    static SANDBOX: tokio::sync::OnceCell<Arc<Sandbox>> = tokio::sync::OnceCell::const_new();
    SANDBOX
        .get_or_init(|| async {
            let helper = HelperProgram {
                program: remediator_bin(),
                prefix_args: Vec::new(),
            };
            Arc::new(Sandbox::new(helper).await)
        })
        .await
        .clone()
}

/// Local incidents' shared parts, recording nothing.
pub async fn environment(catalog: Catalog) -> Environment {
    Environment {
        catalog,
        launch: launch(),
        sandbox: sandbox().await,
        llm: LlmEnvironment::default(),
        recorder: None,
        operator_secrets: Vec::new(),
    }
}

/// The workspace of a running service, in the sandbox.
pub async fn workspace(service: &RunningService) -> Local {
    Local::new(
        LocalService {
            root: service.root.clone(),
            address: service.address,
        },
        sandbox().await,
    )
}

/// Runs `action` under a gate that allows anything up to HIGH: what the
/// kernel sandbox alone lets happen.
pub async fn run_allowed(
    workspace: &Local,
    step: u32,
    action: Action,
) -> Result<Observation, WorkspaceError> {
    let gate = Gate::new(
        Classifier::new(
            &workspace.service().root,
            workspace.service().address.port(),
        ),
        GatePolicy {
            max_risk: RiskLevel::High,
            ..GatePolicy::default()
        },
    );
    let permit = gate
        .permit(step, &action, None, None)
        .unwrap_or_else(|ruling| panic!("the permissive gate refused {action:?}: {ruling:?}"));
    workspace.run(&permit).await
}
