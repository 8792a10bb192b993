//! Links from an incident to its trace: a template such as
//! `https://grafana.example/explore?traceKey={trace_key}` with the
//! placeholders `{run_id}`, `{incident_id}`, `{trace_key}` (=
//! `{run_id}:{incident_id}`) and `{trace_id}` (the incident's
//! OpenTelemetry trace, when it was exported). A template is checked once,
//! at start: an unknown placeholder is an error, never an empty string in
//! every link; an incident without a trace id gets no `{trace_id}` link.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    RunId,
    IncidentId,
    TraceKey,
    TraceId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceLinks {
    template: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "--trace-url-template: unknown placeholder `{{{0}}}` (known: {{run_id}}, {{incident_id}}, {{trace_key}}, {{trace_id}})"
    )]
    Unknown(String),
    #[error("--trace-url-template: `{{` at byte {0} is not closed by `}}`")]
    Unclosed(usize),
    #[error(
        "--trace-url-template: {{trace_id}} needs traces exported, and OTEL_EXPORTER_OTLP_ENDPOINT is not set (see docs/observability.md); or use {{trace_key}}"
    )]
    NoTraceIds,
}

/// What one incident's link is made of.
#[derive(Debug, Clone, Copy)]
pub struct LinkFields<'a> {
    pub run_id: &'a str,
    pub incident_id: &'a str,
    pub trace_id: Option<&'a str>,
}

impl TraceLinks {
    /// Parses `template`; `trace_ids` says whether incidents will have
    /// trace ids (this process exports traces, or a cluster's operator may).
    pub fn parse(template: &str, trace_ids: bool) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = template;
        let mut offset = 0;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or(TemplateError::Unclosed(offset + open))?;
            let name = &rest[open + 1..open + close];
            parts.push(match name {
                "run_id" => Part::RunId,
                "incident_id" => Part::IncidentId,
                "trace_key" => Part::TraceKey,
                "trace_id" if trace_ids => Part::TraceId,
                "trace_id" => return Err(TemplateError::NoTraceIds),
                other => return Err(TemplateError::Unknown(other.to_string())),
            });
            offset += open + close + 1;
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Self {
            template: template.to_string(),
            parts,
        })
    }

    pub fn template(&self) -> &str {
        &self.template
    }

    /// The link of one incident, values percent-encoded; none when the
    /// template needs a trace id the incident does not have.
    pub fn render(&self, fields: LinkFields<'_>) -> Option<String> {
        if fields.trace_id.is_none() && self.parts.contains(&Part::TraceId) {
            return None;
        }
        let trace_key = format!("{}:{}", fields.run_id, fields.incident_id);
        self.parts
            .iter()
            .map(|part| match part {
                Part::Text(text) => text.clone(),
                Part::RunId => encode(fields.run_id),
                Part::IncidentId => encode(fields.incident_id),
                Part::TraceKey => encode(&trace_key),
                Part::TraceId => encode(fields.trace_id.unwrap_or_default()),
            })
            .collect::<String>()
            .into()
    }
}

/// Percent-encodes all but RFC 3986 unreserved characters (and `:`,
/// which a trace key holds and a query value may carry as is).
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~' | b':') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIELDS: LinkFields<'static> = LinkFields {
        run_id: "run-1",
        incident_id: "fo-00003-port-mismatch",
        trace_id: None,
    };

    #[test]
    fn every_placeholder_is_filled() {
        let links =
            TraceLinks::parse("http://t/{run_id}/{incident_id}?k={trace_key}&x=1", false).unwrap();
        assert_eq!(
            links.render(FIELDS).unwrap(),
            "http://t/run-1/fo-00003-port-mismatch?k=run-1:fo-00003-port-mismatch&x=1"
        );
        let with_ids = TraceLinks::parse("http://t/trace/{trace_id}", true).unwrap();
        let fields = LinkFields {
            trace_id: Some("4bf92f35"),
            ..FIELDS
        };
        assert_eq!(with_ids.render(fields).unwrap(), "http://t/trace/4bf92f35");
        assert_eq!(with_ids.render(FIELDS), None, "no trace id, no link");
    }

    #[test]
    fn values_are_encoded() {
        let links = TraceLinks::parse("x?i={incident_id}", false).unwrap();
        let fields = LinkFields {
            incident_id: "a b&c",
            ..FIELDS
        };
        assert_eq!(links.render(fields).unwrap(), "x?i=a%20b%26c");
    }

    #[test]
    fn unknown_unclosed_and_unbacked_placeholders_are_errors() {
        assert_eq!(
            TraceLinks::parse("http://t/{incident}", false),
            Err(TemplateError::Unknown("incident".into()))
        );
        assert_eq!(
            TraceLinks::parse("http://t/{run_id", false),
            Err(TemplateError::Unclosed(9))
        );
        assert_eq!(
            TraceLinks::parse("http://t/{trace_id}", false),
            Err(TemplateError::NoTraceIds)
        );
        assert!(
            TemplateError::Unknown("x".into())
                .to_string()
                .contains("unknown placeholder `{x}`")
        );
    }
}
