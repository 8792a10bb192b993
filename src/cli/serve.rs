//! `remediator serve`: the web dashboard and its JSON API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::common::{self, Recording};
use crate::web::{self, AppState};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where to listen. Loopback by default: the API starts real incidents.
    #[arg(long, default_value = "127.0.0.1:8008")]
    pub addr: SocketAddr,
    #[command(flatten)]
    pub recording: Recording,
}

pub async fn serve(catalog_path: Option<PathBuf>, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let listener = web::bind(args.addr).await?;
    let paths = args.recording.paths()?;
    let env = common::environment(catalog_path.as_deref(), None).await?;
    let state = AppState::new(env, paths);
    let local = listener.local_addr()?;
    if local.ip().is_loopback() {
        eprintln!(
            "remediator serve: http://{local}/ (loopback only: reachable from this machine alone)"
        );
    } else {
        eprintln!(
            "remediator serve: http://{local}/ -- warning: not loopback; anyone who reaches this address can start incidents"
        );
    }
    web::serve(listener, state, async {
        let signal = super::interrupted().await;
        eprintln!(
            "{signal}: stopping the server; a running fan-out is aborted and its services stopped"
        );
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}
