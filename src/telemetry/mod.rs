//! OpenTelemetry traces: every incident is one trace, across the operator,
//! the agent Job and the sandbox sidecar (or one local process). Spans are
//! `tracing` spans; `tracing-opentelemetry` turns them into OpenTelemetry
//! spans, exported over OTLP/HTTP, only when the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
//! is set. Without it nothing is installed: no exporter, no ids, no trace
//! ids in status, and a span costs what a `tracing` span costs.
//!
//! Context crosses processes as W3C `traceparent` ([`context`]): in the
//! agent Job's `TRACEPARENT` and on every Action API and sidecar request.
//! In a cluster an incident's trace id and root span id are derived from
//! its UID ([`IncidentTrace`]), so every reconcile, on any replica and
//! after any restart, joins the same trace without storing anything; the
//! root span itself is emitted once, when the incident ends ([`root`]).

mod context;
mod delivery;
mod ids;
mod root;

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracerProvider, Tracer};

pub use context::{
    IncidentTrace, TraceParent, adopt, adopt_header, adopt_incident, adopt_request, propagate,
    trace_id_of, traceparent_of,
};
pub use root::{RootSpan, emit_root};

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// The environment variable the agent Job reads its parent context from
/// (the name OpenTelemetry's environment-carrier proposal uses).
pub const TRACEPARENT_ENV: &str = "TRACEPARENT";

/// The OpenTelemetry variables a process hands on to the processes it
/// starts (the agent Job, the sidecar), so they export where it does.
/// Not the `*_HEADERS` ones: they often hold a collector's credentials,
/// which would be readable in the Pod spec; a collector that needs them is
/// reached through a node-local or in-cluster collector instead.
pub const FORWARDED_ENV: &[&str] = &[
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_RESOURCE_ATTRIBUTES",
];

/// This process's [`FORWARDED_ENV`] values, when it exports traces. An
/// endpoint with credentials in its URL (a user part, a query) is not
/// handed on, for the same reason as the headers; it says so.
pub fn forwarded_env() -> Vec<(String, String)> {
    if !enabled() {
        return Vec::new();
    }
    let values = FORWARDED_ENV
        .iter()
        .filter_map(|name| Some((name.to_string(), std::env::var(name).ok()?)));
    forwardable(values)
}

fn forwardable(values: impl Iterator<Item = (String, String)>) -> Vec<(String, String)> {
    values
        .filter(|(name, value)| {
            let credentialed = name.ends_with("ENDPOINT")
                && reqwest::Url::parse(value.trim()).is_ok_and(|url| has_credentials(&url));
            if credentialed {
                eprintln!(
                    "warning: {name} carries credentials in its URL; agents and sandboxes are not given it and export no traces (use an in-cluster collector: docs/observability.md)"
                );
            }
            !credentialed
        })
        .collect()
}

/// Where a URL can carry credentials: its user part and its query.
fn has_credentials(url: &reqwest::Url) -> bool {
    !url.username().is_empty() || url.password().is_some() || url.query().is_some()
}

/// The endpoint the environment names, the traces-specific one first.
fn configured_endpoint() -> Option<String> {
    [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .iter()
    .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
}

/// Whether the environment asks for traces to be exported.
pub fn configured() -> bool {
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
        || std::env::var("OTEL_TRACES_EXPORTER").is_ok_and(|v| v.eq_ignore_ascii_case("none"));
    !disabled && configured_endpoint().is_some()
}

/// Whether this process exports traces (so trace ids mean something).
pub fn enabled() -> bool {
    PROVIDER.get().is_some()
}

/// Starts the exporter when [`configured`]; `service` names this process
/// unless `OTEL_SERVICE_NAME` does. Must run outside the async runtime:
/// the exporter's blocking HTTP client owns a runtime of its own.
pub fn start(service: &str) -> Result<Option<Tracer>, String> {
    if !configured() {
        return Ok(None);
    }
    if let Some(provider) = PROVIDER.get() {
        return Ok(Some(provider.tracer("remediator")));
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| format!("the OTLP trace exporter cannot be built: {e}"))?;
    let mut resource = Resource::builder();
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        resource = resource.with_service_name(service.to_string());
    }
    let exporter = delivery::Reporting {
        inner: exporter,
        endpoint: endpoint(),
    };
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_id_generator(ids::Ids::default())
        .with_resource(resource.build())
        .build();
    let tracer = provider.tracer("remediator");
    let _ = PROVIDER.set(provider);
    Ok(Some(tracer))
}

/// Sends what is buffered and stops the exporter; a process calls it once,
/// on its way out. An unreachable collector costs at most `timeout`.
pub fn shutdown(timeout: Duration) {
    let Some(provider) = PROVIDER.get() else {
        return;
    };
    if let Err(e) = provider.shutdown_with_timeout(timeout) {
        eprintln!("warning: traces not all exported: {e}");
    }
    if let Some((batches, error)) = delivery::lost() {
        eprintln!(
            "warning: {batches} batch(es) of spans could not be exported to {}: {error}",
            endpoint()
        );
    }
}

/// Where spans are sent, as configured, for messages: without a user
/// part or query, which could hold credentials.
fn endpoint() -> String {
    let configured = configured_endpoint().unwrap_or_default();
    match reqwest::Url::parse(configured.trim()) {
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.set_query(None);
            url.to_string()
        }
        Err(_) => "an endpoint that is not a URL".to_string(),
    }
}

/// A count as a span attribute: OpenTelemetry integers are `i64`, and
/// `tracing-opentelemetry` exports a `u64` as a string.
pub fn count(n: impl Into<u64>) -> i64 {
    i64::try_from(n.into()).unwrap_or(i64::MAX)
}

fn provider() -> Option<&'static SdkTracerProvider> {
    PROVIDER.get()
}

#[cfg(test)]
mod tests {
    use super::forwardable;

    #[test]
    fn an_endpoint_with_credentials_is_not_handed_on() {
        let given = [
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "https://user:key@collector.example:4318",
            ),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "https://collector.example/v1/traces?key=1",
            ),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "3000"),
            ("OTEL_RESOURCE_ATTRIBUTES", "k8s.cluster.name=prod"),
        ]
        .map(|(n, v)| (n.to_string(), v.to_string()));
        let kept: Vec<String> = forwardable(given.into_iter())
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(
            kept,
            ["OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_RESOURCE_ATTRIBUTES"]
        );
        let plain = [(
            "OTEL_EXPORTER_OTLP_ENDPOINT".to_string(),
            "http://otel.observability.svc:4318".to_string(),
        )];
        assert_eq!(forwardable(plain.clone().into_iter()), plain);
    }
}
