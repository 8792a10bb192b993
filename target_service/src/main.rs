#![forbid(unsafe_code)]

use clap::Parser;
use target_service::cli::{ServiceArgs, run};
use target_service::supervisor::ChildProgram;

#[derive(Parser)]
#[command(name = "target-service", version)]
struct Cli {
    #[command(flatten)]
    args: ServiceArgs,
}

fn main() {
    let cli = Cli::parse();
    // The magic link, not the resolved path: a supervisor running as an
    // unprivileged user may not reach the binary's directory.
    let child = ChildProgram {
        program: "/proc/self/exe".into(),
        prefix_args: Vec::new(),
    };
    std::process::exit(run(cli.args, child));
}
