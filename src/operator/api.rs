//! The Action API: where an agent's proposals meet the gate. Every request
//! carries the incident's bearer token; the answer is the step's turn (its
//! observation, or why it did not run) and what the agent does next.
//!
//! - `GET  /v1/incidents/{ns}/{name}/session`: task, brain settings,
//!   history, next step (an agent starting or restarting)
//! - `POST /v1/incidents/{ns}/{name}/steps/{n}`: an offer for step n
//! - `GET  /v1/incidents/{ns}/{name}/steps/{n}?wait_ms=M`: the step's state,
//!   waiting up to M ms for it to change (an approval, an execution)

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tracing::Instrument;

use super::engine::{Access, Engine, EngineError};
use crate::protocol::{IncidentKey, MAX_BODY_BYTES, Submission};

/// Longest an agent's poll may wait for a change.
const MAX_WAIT: Duration = Duration::from_secs(30);

pub fn router(engine: Arc<Engine>) -> Router {
    Router::new()
        .route("/v1/incidents/{namespace}/{name}/session", get(session))
        .route(
            "/v1/incidents/{namespace}/{name}/steps/{step}",
            post(submit).get(poll),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(engine)
}

fn problem(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

fn engine_problem(error: EngineError) -> Response {
    let status = match error {
        EngineError::NotFound(_) => StatusCode::NOT_FOUND,
        EngineError::Conflict(_) => StatusCode::CONFLICT,
        EngineError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    problem(status, error.to_string())
}

/// The refusal for a request without this incident's token, if any.
async fn refusal(engine: &Engine, key: &IncidentKey, headers: &HeaderMap) -> Option<Response> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(token) = token else {
        return Some(problem(
            StatusCode::UNAUTHORIZED,
            "a bearer token is required",
        ));
    };
    match engine.backend().authenticate(key, token).await {
        Ok(Access::Granted) => None,
        Ok(Access::Unknown) => Some(problem(StatusCode::UNAUTHORIZED, "the token is unknown")),
        Ok(Access::OtherIncident) => Some(problem(
            StatusCode::FORBIDDEN,
            format!("the token belongs to another incident, not {key}"),
        )),
        Ok(Access::NoIncident) => {
            Some(problem(StatusCode::NOT_FOUND, format!("no incident {key}")))
        }
        Err(e) => Some(problem(StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
    }
}

fn key(namespace: String, name: String) -> IncidentKey {
    IncidentKey { namespace, name }
}

/// The span of one authenticated Action API request, in the trace its
/// `traceparent` names (the agent's step). Only an agent holding the
/// incident's token gets here, so at worst it misfiles its own steps.
fn request_span(name: &'static str, key: &IncidentKey, headers: &HeaderMap) -> tracing::Span {
    let span = tracing::info_span!(
        "action_api",
        otel.name = name,
        otel.kind = "server",
        incident = %key,
    );
    crate::telemetry::adopt_request(&span, headers);
    span
}

async fn session(
    State(engine): State<Arc<Engine>>,
    Path((namespace, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let key = key(namespace, name);
    if let Some(refused) = refusal(&engine, &key, &headers).await {
        return refused;
    }
    let span = request_span("GET session", &key, &headers);
    match engine.agent_session(&key).instrument(span).await {
        Ok(session) => Json(session).into_response(),
        Err(e) => engine_problem(e),
    }
}

async fn submit(
    State(engine): State<Arc<Engine>>,
    Path((namespace, name, step)): Path<(String, String, u32)>,
    headers: HeaderMap,
    body: Result<Json<Submission>, JsonRejection>,
) -> Response {
    let key = key(namespace, name);
    if let Some(refused) = refusal(&engine, &key, &headers).await {
        return refused;
    }
    let Json(submission) = match body {
        Ok(body) => body,
        Err(e) => return problem(e.status(), e.body_text()),
    };
    // On its own task: an agent that hangs up must not cancel a step
    // halfway (it asks again and gets the recorded answer).
    let span = request_span("POST step", &key, &headers);
    let work =
        tokio::spawn(async move { engine.submit(&key, step, submission).await }.instrument(span));
    match work.await {
        Ok(Ok(reply)) => Json(reply).into_response(),
        Ok(Err(e)) => engine_problem(e),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[derive(Debug, Deserialize)]
struct Wait {
    #[serde(default)]
    wait_ms: u64,
}

async fn poll(
    State(engine): State<Arc<Engine>>,
    Path((namespace, name, step)): Path<(String, String, u32)>,
    Query(wait): Query<Wait>,
    headers: HeaderMap,
) -> Response {
    let key = key(namespace, name);
    if let Some(refused) = refusal(&engine, &key, &headers).await {
        return refused;
    }
    let wait = Duration::from_millis(wait.wait_ms).min(MAX_WAIT);
    let span = request_span("GET step", &key, &headers);
    match engine.poll(&key, step, wait).instrument(span).await {
        Ok(reply) => Json(reply).into_response(),
        Err(e) => engine_problem(e),
    }
}
