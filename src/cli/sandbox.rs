//! `remediator sandbox probe|serve`: what containment this machine gives,
//! and the executor beside a service (the scenario Pod's sidecar).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::common;
use crate::sidecar::{self, Vault};
use crate::workspace::journal::Journal;
use crate::workspace::{Guard, Local, LocalService};

#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// Report the kernel containment agent commands get on this machine.
    Probe,
    /// Execute what one operator sends, for one incident (the sidecar).
    Serve(Box<ServeArgs>),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The incident this sandbox serves (its uid); requests for others get 403.
    #[arg(long)]
    pub incident_uid: String,
    /// A file holding the bearer token the operator presents.
    #[arg(long)]
    pub token_file: PathBuf,
    #[arg(long, default_value = "0.0.0.0:7070")]
    pub listen: SocketAddr,
    /// The service root (shared with the service).
    #[arg(long)]
    pub root: PathBuf,
    /// Where the service answers.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub service: SocketAddr,
    /// The sandbox's own state (journal, snapshots, secret handles); never
    /// inside the root.
    #[arg(long)]
    pub state_dir: PathBuf,
    #[arg(long, default_value = "/health")]
    pub health_path: String,
    #[arg(long, default_value_t = 64 << 20)]
    pub max_snapshot_bytes: u64,
    /// Extra secret names (globs), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub secret_names: Vec<String>,
}

pub async fn run(command: SandboxCommand) -> anyhow::Result<ExitCode> {
    match command {
        SandboxCommand::Probe => {
            let sandbox = common::sandbox().await;
            let containment = sandbox.containment();
            println!("{}", serde_json::to_string_pretty(containment)?);
            Ok(if containment.is_full() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        SandboxCommand::Serve(args) => serve(*args).await,
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let token = target_service::input::read_bounded(&args.token_file, 4096)
        .with_context(|| format!("reading the token {}", args.token_file.display()))?
        .trim()
        .to_string();
    anyhow::ensure!(
        token.len() >= 32,
        "the token in {} is too short",
        args.token_file.display()
    );
    anyhow::ensure!(
        !args.state_dir.starts_with(&args.root),
        "the state directory must not be inside the root the agent's commands reach"
    );
    std::fs::create_dir_all(&args.state_dir)
        .with_context(|| format!("creating {}", args.state_dir.display()))?;
    let sandbox = Arc::new(common::sandbox().await);
    let journal = Journal::open(
        &args.state_dir.join("journal"),
        &args.root,
        args.max_snapshot_bytes,
    )
    .context("opening the snapshot journal")?;
    let first_start = journal.steps().is_empty();
    let guard = Guard::new(journal, args.health_path.clone());
    if first_start {
        guard
            .baseline()
            .await
            .context("snapshotting the root as found")?;
    }
    let vault = Vault::load_or_new(args.state_dir.join("vault.json"), &args.secret_names);
    let executor = Local::new(
        LocalService {
            root: args.root.clone(),
            address: args.service,
        },
        sandbox,
    )
    .with_guard(guard)
    .with_redactor(vault.redactor.clone());
    eprintln!(
        "sandbox for incident {} on {}, root {}, service {}",
        args.incident_uid,
        args.listen,
        args.root.display(),
        args.service
    );
    let config = sidecar::Config {
        incident_uid: args.incident_uid,
        token,
        listen: args.listen,
        state_dir: args.state_dir,
    };
    sidecar::serve(config, executor, Some(vault), async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .context("serving")?;
    Ok(ExitCode::SUCCESS)
}
