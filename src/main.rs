#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    remediator::cli::main()
}
