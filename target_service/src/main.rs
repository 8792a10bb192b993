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
    let program = match std::env::current_exe() {
        Ok(program) => program,
        Err(e) => {
            eprintln!("error: cannot find this executable to start the service: {e}");
            std::process::exit(1);
        }
    };
    let child = ChildProgram {
        program,
        prefix_args: Vec::new(),
    };
    std::process::exit(run(cli.args, child));
}
