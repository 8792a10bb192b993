//! Logs of the long-running processes through `tracing`: readable lines on
//! a terminal, one JSON object a line otherwise (what a cluster's log
//! collector reads), with each span's fields (incident, policy) on every
//! line. `RUST_LOG` filters as usual; the default is `info`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // Already set (a test that runs the operator in-process twice): keep it.
    let _ = if std::io::stderr().is_terminal() {
        builder.try_init()
    } else {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    };
}
