//! What a process reports through `tracing`: logs and traces.
//!
//! Logs (the long-running processes only): readable lines on a terminal,
//! one JSON object a line otherwise (what a cluster's log collector
//! reads), with each span's fields (incident, policy) on every line and,
//! when traces are exported, the line's `trace_id` and `span_id`.
//! `RUST_LOG` filters as usual; the default is `info`.
//!
//! Traces (every command): exported over OTLP when the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set ([`crate::telemetry`]); without
//! it nothing is installed.

use std::io::IsTerminal;

use opentelemetry::trace::TraceContextExt;
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Whether a command writes logs or only traces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logs {
    /// The operator: its logs are what an SRE reads.
    Written,
    /// Commands with output of their own (the agent and the sidecar print
    /// their few lines themselves): logs would only interleave with it.
    Silent,
}

/// Installs the subscriber for this process, named `service` in traces.
/// Runs before the async runtime starts (see [`crate::telemetry::start`]).
pub fn init(service: &str, logs: Logs) {
    let tracer = match crate::telemetry::start(service) {
        Ok(tracer) => tracer,
        Err(e) => {
            eprintln!("warning: traces are not exported: {e}");
            None
        }
    };
    let traces = tracer.map(|tracer| {
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_location(false)
            .with_threads(false)
            .with_filter(traced())
    });
    let written = logs == Logs::Written;
    let terminal = written && std::io::stderr().is_terminal();
    let readable = terminal.then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(filter())
    });
    let json = (written && !terminal).then(|| {
        let format = tracing_subscriber::fmt::format()
            .json()
            .with_current_span(true)
            .with_span_list(false);
        tracing_subscriber::fmt::layer()
            .event_format(WithTraceIds(format))
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .with_writer(std::io::stderr)
            .with_filter(filter())
    });
    if traces.is_none() && !written {
        return;
    }
    // Already set (a test that runs a command in-process twice): keep it.
    let _ = tracing_subscriber::registry()
        .with(traces)
        .with(readable)
        .with(json)
        .try_init();
}

/// What is exported as spans: remediator's own at info and above, however
/// verbose the logs (RUST_LOG) are; other crates' spans (kube-runtime
/// opens one per reconcile) would each be a trace of their own.
fn traced() -> Targets {
    Targets::new().with_target("remediator", LevelFilter::INFO)
}

fn filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

/// A JSON line with the trace and span ids of the span it was logged in.
struct WithTraceIds<F>(F);

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        if !crate::telemetry::enabled() {
            return self.0.format_event(ctx, writer, event);
        }
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        let ids = ctx.lookup_current().and_then(|span| {
            let dispatch = tracing::dispatcher::get_default(Clone::clone);
            let context = tracing_opentelemetry::get_otel_context(&span.id(), &dispatch)?;
            let span_context = context.span().span_context().clone();
            span_context
                .is_valid()
                .then(|| (span_context.trace_id(), span_context.span_id()))
        });
        match (ids, line.strip_suffix("}\n")) {
            (Some((trace_id, span_id)), Some(body)) => {
                writeln!(
                    writer,
                    "{body},\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\"}}"
                )
            }
            _ => writer.write_str(&line),
        }
    }
}
