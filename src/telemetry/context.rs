//! Trace context across processes: W3C `traceparent`
//! (`00-<32 hex trace id>-<16 hex parent span id>-<2 hex flags>`), and the
//! ids an incident's trace gets in a cluster.

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// A parsed `traceparent`: where a span in another process hangs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub sampled: bool,
}

impl TraceParent {
    /// Parses a version-00 header; anything else (another version, a zero
    /// id, wrong lengths, upper-case hex) is no parent at all.
    pub fn parse(header: &str) -> Option<Self> {
        let mut parts = header.trim().split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || version != "00" {
            return None;
        }
        let lower_hex = |s: &str, len: usize| {
            s.len() == len
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if !lower_hex(trace, 32) || !lower_hex(span, 16) || !lower_hex(flags, 2) {
            return None;
        }
        let trace_id = TraceId::from_hex(trace).ok()?;
        let span_id = SpanId::from_hex(span).ok()?;
        if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
            return None;
        }
        let flags = u8::from_str_radix(flags, 16).ok()?;
        Some(Self {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
        })
    }

    pub fn header(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            self.trace_id,
            self.span_id,
            u8::from(self.sampled)
        )
    }

    fn remote_context(&self) -> opentelemetry::Context {
        let flags = if self.sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        opentelemetry::Context::new().with_remote_span_context(SpanContext::new(
            self.trace_id,
            self.span_id,
            flags,
            true,
            TraceState::default(),
        ))
    }
}

/// An incident's trace in a cluster: its id and its root span's id follow
/// from the incident's UID, so any replica, before or after a restart,
/// joins the same trace and hangs its spans under the same root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncidentTrace {
    pub trace_id: TraceId,
    pub root_span_id: SpanId,
}

impl IncidentTrace {
    /// A UUID (what the API server assigns) is the trace id itself, so the
    /// trace is found by the UID; any other string is hashed.
    pub fn of_uid(uid: &str) -> Self {
        let hex: String = uid.chars().filter(|c| *c != '-').collect();
        let trace_id = match (hex.len(), u128::from_str_radix(&hex, 16)) {
            (32, Ok(id)) if id != 0 => TraceId::from(id),
            _ => TraceId::from(u128::from(hash64(uid, 1)) << 64 | u128::from(hash64(uid, 2))),
        };
        Self {
            trace_id,
            root_span_id: SpanId::from(hash64(uid, 3)),
        }
    }

    pub fn root(&self) -> TraceParent {
        TraceParent {
            trace_id: self.trace_id,
            span_id: self.root_span_id,
            sampled: true,
        }
    }

    pub fn trace_id_hex(&self) -> String {
        self.trace_id.to_string()
    }
}

/// FNV-1a over the text and a salt, never zero (a zero id is invalid).
fn hash64(text: &str, salt: u8) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes().chain(std::iter::once(salt)) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash.max(1)
}

/// Makes `span` a child of the span `parent` names (in another process).
/// Call it before the span is first entered. Does nothing when not
/// exporting.
pub fn adopt(span: &tracing::Span, parent: &TraceParent) {
    if super::enabled() {
        let _ = span.set_parent(parent.remote_context());
    }
}

/// [`adopt`] for a `traceparent` as it arrived (a request header, the
/// environment); a missing or malformed one leaves `span` where it is.
pub fn adopt_header(span: &tracing::Span, traceparent: Option<&str>) {
    if let Some(parent) = traceparent.and_then(TraceParent::parse) {
        adopt(span, &parent);
    }
}

/// The W3C header that carries a trace across a request.
const TRACEPARENT_HEADER: &str = "traceparent";

/// [`adopt_header`] for the `traceparent` of a request this process
/// serves (call it only once the request is authenticated).
pub fn adopt_request(span: &tracing::Span, headers: &reqwest::header::HeaderMap) {
    let parent = headers
        .get(TRACEPARENT_HEADER)
        .and_then(|v| v.to_str().ok());
    adopt_header(span, parent);
}

/// `request` carrying the current span's `traceparent`, when traces are
/// exported, so the server's spans join it.
pub fn propagate(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    match traceparent_of(&tracing::Span::current()) {
        Some(parent) => request.header(TRACEPARENT_HEADER, parent),
        None => request,
    }
}

/// Makes `span` a child of the incident's root span.
pub fn adopt_incident(span: &tracing::Span, uid: &str) {
    adopt(span, &IncidentTrace::of_uid(uid).root());
}

/// The `traceparent` naming `span`, for a request or process it starts.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    if !super::enabled() {
        return None;
    }
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then(|| {
        TraceParent {
            trace_id: span_context.trace_id(),
            span_id: span_context.span_id(),
            sampled: span_context.is_sampled(),
        }
        .header()
    })
}

/// The trace id `span` belongs to, in the 32-hex form backends show.
pub fn trace_id_of(span: &tracing::Span) -> Option<String> {
    if !super::enabled() {
        return None;
    }
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_round_trips() {
        let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parent = TraceParent::parse(header).unwrap();
        assert!(parent.sampled);
        assert_eq!(parent.header(), header);
        let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        assert!(!TraceParent::parse(unsampled).unwrap().sampled);
    }

    #[test]
    fn a_malformed_traceparent_is_no_parent() {
        for bad in [
            "",
            "00",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn an_incident_uid_gives_the_same_trace_every_time() {
        let uid = "6b1f3c2e-9d4a-4e7b-8c1d-2f3a4b5c6d7e";
        let trace = IncidentTrace::of_uid(uid);
        assert_eq!(trace.trace_id_hex(), "6b1f3c2e9d4a4e7b8c1d2f3a4b5c6d7e");
        assert_eq!(trace, IncidentTrace::of_uid(uid));
        let other = IncidentTrace::of_uid("6b1f3c2e-9d4a-4e7b-8c1d-2f3a4b5c6d7f");
        assert_ne!(trace.root_span_id, other.root_span_id);
        // Not a UUID (a test's uid): hashed, still valid and stable.
        let hashed = IncidentTrace::of_uid("uid-1");
        assert_ne!(hashed.trace_id, TraceId::INVALID);
        assert_ne!(hashed.root_span_id, SpanId::INVALID);
        assert_eq!(hashed, IncidentTrace::of_uid("uid-1"));
        assert!(TraceParent::parse(&hashed.root().header()).is_some());
    }
}
