//! The `target-service` command line, shared by the standalone binary and
//! `remediator target-service`.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::catalog::Catalog;
use crate::supervisor::{self, ChildProgram, SupervisorError};
use crate::{child, control};

/// Exit code when the expected port (or the faulted one) is taken, so a
/// launcher can pick another port and try again.
pub const EXIT_PORT_IN_USE: i32 = 3;

/// Run a deliberately broken HTTP service for one scenario.
///
/// Sets up the scenario's fault under --root, starts the service under a
/// supervisor and prints one JSON line with its first state. Restart it
/// (to reread service.env and service.conf) with `restart --root DIR`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ServiceArgs {
    #[command(subcommand)]
    pub command: Option<ServiceCommand>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenario id from the catalog.
    #[arg(long)]
    pub scenario: Option<String>,
    /// Directory the service lives in (created if missing).
    #[arg(long, default_value = "/tmp")]
    pub root: PathBuf,
    /// Port health probes expect.
    #[arg(long, default_value_t = 8080, value_parser = clap::value_parser!(u16).range(1..65535))]
    pub port: u16,
    /// Address to bind (0.0.0.0 in a pod).
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Scenario catalog to use instead of the built-in one.
    #[arg(long, env = "REMEDIATOR_CATALOG")]
    pub catalog: Option<PathBuf>,
    /// Stop when stdin closes (for launchers that hold the pipe).
    #[arg(long, hide = true)]
    pub exit_on_stdin_eof: bool,
}

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Restart the service in ROOT and print its new state.
    Restart {
        #[arg(long)]
        root: PathBuf,
    },
    /// Print the state of the service in ROOT.
    Status {
        #[arg(long)]
        root: PathBuf,
    },
    /// The service process itself, started by the supervisor.
    #[command(hide = true)]
    Child {
        #[arg(long)]
        root: PathBuf,
        #[arg(long)]
        bind: IpAddr,
    },
}

/// Runs the command; returns the process exit code. Errors are printed.
pub fn run(args: ServiceArgs, child_program: ChildProgram) -> i32 {
    match args.command {
        Some(ServiceCommand::Child { root, bind }) => child::run(&root, bind),
        Some(ServiceCommand::Restart { root }) => print_state(control::restart(&root)),
        Some(ServiceCommand::Status { root }) => print_state(control::status(&root)),
        None => run_supervisor(args.run, child_program),
    }
}

fn print_state(result: Result<control::ServiceState, control::ControlError>) -> i32 {
    match result {
        Ok(state) => {
            println!("{}", serde_json::to_string(&state).unwrap_or_default());
            if state.running { 0 } else { 1 }
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

fn run_supervisor(args: RunArgs, child: ChildProgram) -> i32 {
    let Some(scenario) = args.scenario else {
        eprintln!("error: --scenario is required (see --help)");
        return 2;
    };
    let catalog = match args.catalog {
        Some(path) => Catalog::load(&path),
        None => Ok(Catalog::builtin()),
    };
    let catalog = match catalog {
        Ok(catalog) => catalog,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let options = supervisor::Options {
        scenario,
        root: args.root,
        port: args.port,
        bind: args.bind,
        catalog,
        child,
        exit_on_stdin_eof: args.exit_on_stdin_eof,
    };
    match supervisor::run(options) {
        Ok(()) => 0,
        Err(e @ SupervisorError::PortInUse(_)) => {
            eprintln!("error: {e}");
            EXIT_PORT_IN_USE
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}
