//! The root span of an incident's trace in a cluster: it covers the
//! incident from creation to its end, so it can only be sent when the
//! incident ends; every span sent before names it as parent by its id
//! (see [`super::IncidentTrace`]).

use std::time::SystemTime;

use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, SpanKind, Status, Tracer as _, TracerProvider as _};

use super::IncidentTrace;

/// What the root span says about the incident.
#[derive(Debug, Clone)]
pub struct RootSpan {
    pub name: String,
    pub start: SystemTime,
    pub end: SystemTime,
    pub attributes: Vec<(&'static str, String)>,
    /// The incident ended Failed: the span's status is an error.
    pub failure: Option<String>,
}

/// Sends the root span of `trace`; nothing when not exporting.
pub fn emit_root(trace: &IncidentTrace, root: RootSpan) {
    let Some(provider) = super::provider() else {
        return;
    };
    let tracer = provider.tracer("remediator");
    let attributes: Vec<KeyValue> = root
        .attributes
        .into_iter()
        .map(|(key, value)| KeyValue::new(key, value))
        .collect();
    let builder = tracer
        .span_builder(root.name)
        .with_kind(SpanKind::Internal)
        .with_start_time(root.start)
        .with_attributes(attributes);
    let mut span = super::ids::with_chosen((trace.trace_id, trace.root_span_id), || {
        tracer.build_with_context(builder, &opentelemetry::Context::new())
    });
    if let Some(reason) = root.failure {
        span.set_status(Status::error(reason));
    }
    span.end_with_timestamp(root.end);
}
