//! `remediator agent`: the agent Job's process. It runs the brain and
//! proposes every step to the operator's Action API; it holds no cluster
//! rights and executes nothing itself.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tracing::Instrument;

use crate::agent::llm::LlmEnvironment;
use crate::agent::remote::{self, Connection};
use crate::protocol::IncidentKey;

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The operator's Action API, e.g. http://remediator.remediator-system:8080.
    #[arg(long, env = "REMEDIATOR_OPERATOR_URL")]
    pub operator: String,
    /// The incident as NAMESPACE/NAME.
    #[arg(long)]
    pub incident: String,
    /// A file holding the incident's bearer token (its Secret, mounted).
    #[arg(long)]
    pub token_file: PathBuf,
    /// How long to keep retrying while the operator is unreachable.
    #[arg(long, default_value_t = 300)]
    pub patience_seconds: u64,
}

pub async fn run(args: AgentArgs) -> anyhow::Result<ExitCode> {
    let (namespace, name) = args
        .incident
        .split_once('/')
        .filter(|(ns, name)| !ns.is_empty() && !name.is_empty() && !name.contains('/'))
        .with_context(|| format!("--incident `{}` must be NAMESPACE/NAME", args.incident))?;
    let token = target_service::input::read_bounded(&args.token_file, 4096)
        .with_context(|| format!("reading the token {}", args.token_file.display()))?
        .trim()
        .to_string();
    let key = IncidentKey {
        namespace: namespace.to_string(),
        name: name.to_string(),
    };
    let connection = Connection::new(
        &args.operator,
        key.clone(),
        token,
        Duration::from_secs(args.patience_seconds),
    );
    // The operator names the incident's trace in TRACEPARENT.
    let span = tracing::info_span!("agent", incident = %key);
    let parent = std::env::var(crate::telemetry::TRACEPARENT_ENV).ok();
    crate::telemetry::adopt_header(&span, parent.as_deref());
    let end = remote::run(&connection, &LlmEnvironment::from_process())
        .instrument(span)
        .await
        .with_context(|| format!("incident {key}"))?;
    eprintln!("incident {key}: the episode ended: {end:?}; the operator verifies the service");
    Ok(ExitCode::SUCCESS)
}
