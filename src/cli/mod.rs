//! The command line: parses arguments and calls the library. Errors get
//! their context here and leave with a non-zero exit code. SIGINT and
//! SIGTERM stop what runs (services, sandboxed processes) and remove its
//! scratch directories before exiting.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

mod agent;
mod common;
mod demo;
mod fanout;
mod logging;
mod mcp;
mod operator;
mod optimize;
mod run;
mod sandbox;
mod scorecard;
mod serve;
mod skill;
mod undo;

use crate::scenario::{self, ChildProgram, Launch};

#[derive(Debug, Parser)]
#[command(
    name = "remediator",
    version,
    about = "Resolve service incidents with a gated, self-improving agent"
)]
pub struct Cli {
    /// Scenario catalog to use instead of the built-in training_data/scenarios.yaml.
    #[arg(long, global = true, env = "REMEDIATOR_CATALOG")]
    pub catalog: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the Incident and Policy CRDs as YAML.
    Crd {
        /// Write incident.yaml and policy.yaml into this directory instead.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
    /// List scenarios or start one's broken service.
    #[command(subcommand)]
    Scenario(ScenarioCommand),
    /// Resolve one incident locally and print the status the operator would write.
    Run(run::RunArgs),
    /// Every train scenario with the baseline and the optimized policy, then hints learned by GEPA and the iterative optimizer, scored on unseen scenarios
    Demo(demo::DemoArgs),
    /// Reconcile Incidents and Policies in a cluster and serve the Action API.
    Operator(Box<operator::OperatorArgs>),
    /// The agent Job's process: propose every step to the operator's Action API.
    Agent(agent::AgentArgs),
    /// Put a kept incident's root back as it was before a step.
    Undo(undo::UndoArgs),
    /// The kernel sandbox: probe what this machine gives, or serve as the
    /// executor beside a service.
    #[command(subcommand)]
    Sandbox(sandbox::SandboxCommand),
    /// Every approach (baseline, manual, learned hints, skill) on the same scenarios, side by side.
    Scorecard(scorecard::ScorecardArgs),
    /// Many incidents at once: a batch or Poisson arrivals, with a report.
    Fanout(fanout::FanoutArgs),
    /// A web dashboard and JSON API to run fan-outs and the scorecard.
    Serve(serve::ServeArgs),
    /// An MCP server for AI assistants: Incidents, Policies, the scorecard
    /// and pending approvals; read-only unless --allow-approvals.
    Mcp(mcp::McpArgs),
    /// Learn a better strategy hint (GEPA or iterative) from rollouts or recorded runs.
    Optimize(Box<optimize::OptimizeArgs>),
    /// Distill a SKILL.md runbook from recorded runs.
    #[command(subcommand)]
    Skill(skill::SkillCommand),
    /// Run the target service (what `target-service` does), from this binary.
    #[command(hide = true)]
    TargetService(target_service::cli::ServiceArgs),
    /// The sandbox helper (started by remediator itself).
    #[command(hide = true, name = "sandbox-exec")]
    SandboxExec {
        #[arg(long, value_enum, default_value = "outer")]
        stage: crate::sandbox::Stage,
    },
}

#[derive(Debug, Subcommand)]
pub enum ScenarioCommand {
    /// List the scenarios in the catalog.
    List {
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = ListFormat::Table)]
        output: ListFormat,
    },
    /// Start a scenario's broken service in a scratch root until Ctrl-C.
    Start {
        id: String,
        /// Port health probes expect (default: a free one).
        #[arg(long)]
        port: Option<u16>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
    Yaml,
}

pub fn main() -> ExitCode {
    // The sandbox helper starts once per command: it skips building the
    // whole command line's parser (a fair part of its start).
    if let Some(stage) = sandbox_stage(std::env::args_os().skip(1)) {
        let code = crate::sandbox::helper_main(stage);
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    let cli = Cli::parse();
    match cli.command {
        Command::TargetService(args) => {
            let child = ChildProgram {
                program: "/proc/self/exe".into(),
                prefix_args: vec!["target-service".into()],
            };
            let code = target_service::cli::run(args, child);
            return ExitCode::from(u8::try_from(code).unwrap_or(1));
        }
        Command::SandboxExec { stage } => {
            let code = crate::sandbox::helper_main(stage);
            return ExitCode::from(u8::try_from(code).unwrap_or(1));
        }
        _ => {}
    }
    let (service, logs) = match &cli.command {
        Command::Operator(_) => ("remediator-operator", logging::Logs::Written),
        Command::Agent(_) => ("remediator-agent", logging::Logs::Silent),
        Command::Sandbox(_) => ("remediator-sandbox", logging::Logs::Silent),
        _ => ("remediator", logging::Logs::Silent),
    };
    logging::init(service, logs);
    let code = run_in_runtime(cli);
    // What is still buffered leaves before the process does.
    crate::telemetry::shutdown(std::time::Duration::from_secs(5));
    code
}

fn run_in_runtime(cli: Cli) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The operator handles its own signals: it finishes in-flight work.
    if let Command::Operator(args) = cli.command {
        let code = runtime.block_on(operator::run(cli.catalog, *args));
        return match code {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    // fanout and serve stop on a signal themselves, so what ran is reported.
    let owns_signals = matches!(
        cli.command,
        Command::Fanout(_) | Command::Serve(_) | Command::Mcp(_)
    );
    let code = runtime.block_on(async {
        if owns_signals {
            return match run(cli).await {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            };
        }
        tokio::select! {
            result = run(cli) => match result {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            },
            signal = interrupted() => {
                // Dropping the command's future drops its running services
                // (their supervisors are killed) and sandboxed processes,
                // and removes their scratch directories.
                eprintln!("{signal}: stopping; services, sandboxed commands and their scratch directories are removed");
                ExitCode::from(130)
            }
        }
    });
    // Background tasks (pipes, reapers) must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    code
}

/// Resolves at the first SIGINT or SIGTERM, naming it.
pub(crate) async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "interrupted",
        _ = term.recv() => "terminated",
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Crd { out_dir: None } => {
            print!(
                "{}",
                crate::crd::crds_document().context("rendering the CRDs")?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Crd { out_dir: Some(dir) } => {
            crate::crd::write_crds(&dir)
                .with_context(|| format!("writing CRDs to {}", dir.display()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Scenario(ScenarioCommand::List { output }) => {
            let catalog = scenario::load_catalog(cli.catalog.as_deref())?;
            print!("{}", render_scenario_list(&catalog, output)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Scenario(ScenarioCommand::Start { id, port }) => {
            common::sweep_orphans();
            start_scenario(cli.catalog, &id, port).await
        }
        Command::Run(args) => {
            common::sweep_orphans();
            run::run(cli.catalog, args).await
        }
        Command::Demo(args) => {
            common::sweep_orphans();
            demo::demo(cli.catalog, args).await
        }
        Command::Optimize(args) => {
            common::sweep_orphans();
            optimize::optimize(cli.catalog, *args).await
        }
        Command::Skill(command) => skill::skill(cli.catalog, command),
        Command::Scorecard(args) => {
            common::sweep_orphans();
            scorecard::scorecard(cli.catalog, args).await
        }
        Command::Fanout(args) => {
            common::sweep_orphans();
            fanout::fanout(cli.catalog, args).await
        }
        Command::Mcp(args) => mcp::run(args).await,
        Command::Serve(args) => {
            common::sweep_orphans();
            serve::serve(cli.catalog, args).await
        }
        Command::Undo(args) => undo::undo(args),
        Command::Agent(args) => agent::run(args).await,
        Command::Sandbox(command) => sandbox::run(command).await,
        Command::TargetService(_) | Command::SandboxExec { .. } | Command::Operator(_) => {
            unreachable!("handled before the runtime starts")
        }
    }
}

fn render_scenario_list(catalog: &scenario::Catalog, output: ListFormat) -> anyhow::Result<String> {
    Ok(match output {
        ListFormat::Json => serde_json::to_string_pretty(&catalog.scenarios)? + "\n",
        ListFormat::Yaml => serde_yaml::to_string(&catalog.scenarios)?,
        ListFormat::Table => {
            let width = catalog
                .ids()
                .iter()
                .map(|id| id.len())
                .max()
                .unwrap_or(2)
                .max(2);
            let mut out = format!("{:<width$}  {:<10}  SYMPTOM\n", "ID", "SPLIT");
            for s in &catalog.scenarios {
                let split = serde_json::to_value(s.split)?;
                let split = split.as_str().unwrap_or_default();
                out.push_str(&format!(
                    "{:<width$}  {:<10}  {}\n",
                    s.id,
                    split,
                    s.symptom.trim()
                ));
            }
            out
        }
    })
}

async fn start_scenario(
    catalog_path: Option<PathBuf>,
    id: &str,
    port: Option<u16>,
) -> anyhow::Result<ExitCode> {
    let catalog = scenario::load_catalog(catalog_path.as_deref())?;
    let mut launch = Launch::from_current_exe();
    launch.port = port;
    launch.catalog_text = common::catalog_text(catalog_path.as_deref())?;
    let service = launch.start(&catalog, id).await?;
    let scenario = catalog.get(&service.scenario_id)?;
    let state = &service.first_state;
    let status = if state.running {
        format!(
            "process running, pid {} bound to port {}",
            state.pid.unwrap_or_default(),
            state.port.unwrap_or_default()
        )
    } else {
        format!(
            "process down: {}",
            state.reason.as_deref().unwrap_or("unknown")
        )
    };
    println!(
        "scenario {} is running with its fault in place",
        service.scenario_id
    );
    println!("  url:      {}", service.url());
    println!("  root:     {}", service.root.display());
    println!("  service:  {status}");
    println!(
        "  symptom:  {}",
        scenario.symptom_for(service.address.port()).trim()
    );
    println!(
        "  log:      {}",
        service.root.join(target_service::log::LOG_FILE).display()
    );
    println!(
        "  restart:  remediator target-service restart --root {}",
        service.root.display()
    );
    println!("Press Ctrl-C to stop it; its root is removed.");
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    service.stop().await;
    Ok(ExitCode::SUCCESS)
}

/// `sandbox-exec [--stage STAGE]` exactly, as the sandbox starts itself;
/// anything else goes through the parser (and its errors).
fn sandbox_stage(
    mut args: impl Iterator<Item = std::ffi::OsString>,
) -> Option<crate::sandbox::Stage> {
    use clap::ValueEnum;
    if args.next()? != crate::sandbox::HELPER_SUBCOMMAND {
        return None;
    }
    let stage = match (args.next(), args.next()) {
        (None, _) => crate::sandbox::Stage::Outer,
        (Some(flag), Some(value)) if flag == "--stage" => {
            crate::sandbox::Stage::from_str(value.to_str()?, false).ok()?
        }
        _ => return None,
    };
    args.next().is_none().then_some(stage)
}
