//! The controller's own health probe. Only this decides Resolved: the
//! agent's claims are recorded, never trusted.

use std::net::SocketAddr;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::crd::Verification;

mod http;

pub use http::{HttpAnswer, http_get};

/// How long one probe request may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What counts as healthy, for the probe and for any agent that checks:
/// HTTP 200 with a JSON body whose `status` is `ok`.
pub fn is_healthy_answer(status: u16, body: &str) -> bool {
    status == 200
        && serde_json::from_str::<serde_json::Value>(body).is_ok_and(|b| b["status"] == "ok")
}

/// How well the service answers, worst first: a step that lowers it made
/// things worse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Health {
    /// Nothing answers (the failure is at startup).
    Down,
    /// It answers, but not 200 status ok (the failure is on the request path).
    Failing,
    Healthy,
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Health::Down => "no answer",
            Health::Failing => "answering with an error",
            Health::Healthy => "healthy",
        })
    }
}

/// One look at the service.
pub async fn look(address: SocketAddr, path: &str) -> Health {
    match tokio::time::timeout(PROBE_TIMEOUT, http_get(address, path, 4096)).await {
        Ok(Ok(answer)) if is_healthy_answer(answer.status, &answer.body) => Health::Healthy,
        Ok(Ok(_)) => Health::Failing,
        _ => Health::Down,
    }
}

/// Probes `GET path` at `address` `consecutive` times in a row; healthy
/// only if every answer is 200 with `"status": "ok"`.
#[tracing::instrument(
    name = "verify",
    skip_all,
    fields(
        address = %address,
        path = %path,
        consecutive = crate::telemetry::count(consecutive),
        healthy = tracing::field::Empty,
        http_status = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        otel.status_message = tracing::field::Empty,
    )
)]
pub async fn probe(address: SocketAddr, path: &str, consecutive: u32) -> (Verification, String) {
    let mut last_status = None;
    let mut failure = None;
    for attempt in 1..=consecutive {
        let answer = tokio::time::timeout(PROBE_TIMEOUT, http_get(address, path, 4096)).await;
        let problem = match answer {
            Ok(Ok(answer)) => {
                last_status = Some(answer.status);
                (!is_healthy_answer(answer.status, &answer.body))
                    .then(|| format!("HTTP {} {}", answer.status, answer.body.trim()))
            }
            Ok(Err(e)) => Some(format!("no answer at {address}: {e}")),
            Err(_) => Some(format!(
                "no answer at {address} within {}s",
                PROBE_TIMEOUT.as_secs()
            )),
        };
        if let Some(problem) = problem {
            failure = Some(format!("probe {attempt}/{consecutive}: {problem}"));
            break;
        }
    }
    let healthy = consecutive > 0 && failure.is_none();
    let detail = failure.unwrap_or_else(|| {
        format!("{consecutive} consecutive 200 status ok from GET {path} at {address}")
    });
    let span = tracing::Span::current();
    span.record("healthy", healthy);
    if let Some(status) = last_status {
        span.record("http_status", crate::telemetry::count(status));
    }
    // Not the detail: it quotes the service's reply, which is the broken
    // service's own text.
    if !healthy {
        span.record("otel.status_code", "ERROR");
        let why = match last_status {
            Some(_) => "not a healthy answer",
            None => "no answer",
        };
        span.record("otel.status_message", why);
    }
    let verification = Verification {
        healthy,
        http_status: last_status,
        checked_at: Time(Timestamp::now()),
    };
    (verification, detail)
}
