//! `remediator sandbox`: the executor beside a service (a sidecar in the
//! scenario Pod, or a plain process locally). It uses the kernel sandbox
//! (through [`crate::workspace::Local`]) for every step; it is not part of
//! the containment itself. It runs only what the one
//! operator that holds its token sends, in the kernel sandbox, and
//! journals every step by number: a step sent again gets the recorded
//! answer and never runs twice. Redaction and snapshots live here too, on
//! a state directory the agent's commands cannot reach, so secret values
//! never leave this process.

mod state;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Path, State, rejection::JsonRejection};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tracing::Instrument;

use crate::protocol::{
    Feedback, NoteRequest, PreviewAnswer, PreviewRequest, StepAnswer, StepRequest, Turn,
    UndoAnswer, UndoRequest, WorkspaceError,
};
use crate::risk::Permit;
use crate::workspace::{Local, Workspace};
pub use state::StepState;

/// What the sidecar needs to serve one incident.
pub struct Config {
    pub incident_uid: String,
    pub token: String,
    pub listen: SocketAddr,
    pub state_dir: PathBuf,
}

struct Shared {
    config: Config,
    executor: Local,
    steps: StepState,
    /// Persists the redactor's handles after each step (their values are
    /// secrets: the file is the sidecar's alone).
    vault: Option<Vault>,
}

/// Where the redactor's handles are kept across restarts.
pub struct Vault {
    pub path: PathBuf,
    pub redactor: Arc<crate::redact::Redactor>,
}

impl Vault {
    fn save(&self) -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let (tag, values) = self.redactor.export();
        let partial = self.path.with_extension("partial");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)?;
        file.write_all(&serde_json::to_vec(&json!({"tag": tag, "values": values}))?)?;
        std::fs::rename(partial, &self.path)
    }

    /// The redactor saved at `path`, or a new one.
    pub fn load_or_new(path: PathBuf, secret_names: &[String]) -> Self {
        let saved = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok());
        let redactor = match saved {
            Some(saved) => crate::redact::Redactor::import(
                saved["tag"].as_str().unwrap_or_default().to_string(),
                serde_json::from_value(saved["values"].clone()).unwrap_or_default(),
                secret_names,
            ),
            None => crate::redact::Redactor::new(&[], secret_names),
        };
        Self {
            path,
            redactor: Arc::new(redactor),
        }
    }
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    config: Config,
    executor: Local,
    vault: Option<Vault>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let steps = StepState::open(&config.state_dir)?;
    let shared = Arc::new(Shared {
        config,
        executor,
        steps,
        vault,
    });
    axum::serve(listener, router(shared))
        .with_graceful_shutdown(shutdown)
        .await
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/steps/{step}", post(step))
        .route("/v1/notes/{step}", post(note))
        .route("/v1/history", get(history))
        .route("/v1/undo", post(undo))
        .route("/v1/preview", post(preview))
        .with_state(shared)
}

fn problem(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

fn presented_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// The caller must hold this sidecar's token and name its incident; the
/// refusal otherwise.
fn refusal(shared: &Shared, headers: &HeaderMap, incident: Option<&str>) -> Option<Response> {
    let presented = presented_token(headers);
    let known = presented.is_some_and(|token| crate::tokens::equal(token, &shared.config.token));
    if !known {
        let why = if presented.is_none() {
            "a bearer token is required"
        } else {
            "the token is not this sandbox's"
        };
        return Some(problem(StatusCode::UNAUTHORIZED, why));
    }
    match incident {
        Some(uid) if uid != shared.config.incident_uid => Some(problem(
            StatusCode::FORBIDDEN,
            format!(
                "this sandbox serves incident {}, not {uid}",
                shared.config.incident_uid
            ),
        )),
        _ => None,
    }
}

/// A request that names the incident it is for.
trait ForIncident {
    fn incident(&self) -> &str;
}

macro_rules! for_incident {
    ($($request:ty),*) => {
        $(impl ForIncident for $request {
            fn incident(&self) -> &str {
                &self.incident
            }
        })*
    };
}
for_incident!(StepRequest, NoteRequest, UndoRequest, PreviewRequest);

/// The request's body, if it parses and the caller holds this sidecar's
/// token and names its incident; the refusal otherwise.
fn for_this_incident<T: ForIncident>(
    shared: &Shared,
    headers: &HeaderMap,
    body: Result<Json<T>, JsonRejection>,
) -> Result<T, Box<Response>> {
    let Json(request) = body.map_err(|e| Box::new(problem(e.status(), e.body_text())))?;
    match refusal(shared, headers, Some(request.incident())) {
        Some(denied) => Err(Box::new(denied)),
        None => Ok(request),
    }
}

async fn step(
    State(shared): State<Arc<Shared>>,
    Path(step): Path<u32>,
    headers: HeaderMap,
    body: Result<Json<StepRequest>, JsonRejection>,
) -> Response {
    if let Some(denied) = refusal(&shared, &headers, None) {
        return denied;
    }
    let request = match for_this_incident(&shared, &headers, body) {
        Ok(request) => request,
        Err(refused) => return *refused,
    };
    let _one_at_a_time = shared.steps.lock().await;
    match shared.steps.recorded(step) {
        Ok(Some(turn)) if turn.action != request.action => {
            return problem(
                StatusCode::CONFLICT,
                format!(
                    "step {step} already ran another action: {}",
                    turn.action.summary()
                ),
            );
        }
        Ok(Some(turn)) => return Json(answer_of(&turn)).into_response(),
        Ok(None) => {}
        Err(e) => return problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
    // The refusal check above passed, so the token matches; the permit is
    // built from it all the same, so no path executes without one.
    let Some(permit) = Permit::relayed(
        presented_token(&headers).unwrap_or_default(),
        &shared.config.token,
        step,
        request.action.clone(),
        request.risk,
    ) else {
        return problem(StatusCode::UNAUTHORIZED, "the token is not this sandbox's");
    };
    // In the trace of the operator's step that sent it (its token checked).
    let span = tracing::info_span!(
        "sidecar",
        otel.kind = "server",
        step = crate::telemetry::count(step)
    );
    crate::telemetry::adopt_request(&span, &headers);
    let result = async { shared.executor.run(&permit).await }
        .instrument(span)
        .await;
    let feedback = match &result {
        Ok(observation) => Feedback::Observed(observation.clone()),
        Err(error) => Feedback::Failed {
            reason: error.to_string(),
        },
    };
    let turn = Turn {
        step,
        action: request.action,
        declared_risk: request.declared_risk,
        feedback,
    };
    if let Some(vault) = &shared.vault
        && let Err(e) = vault.save()
    {
        return problem(StatusCode::INTERNAL_SERVER_ERROR, format!("vault: {e}"));
    }
    // A sandbox refusal is not journalled: nothing ran, it may be retried.
    if result.is_ok()
        && let Err(e) = shared.steps.record(&turn)
    {
        return problem(StatusCode::INTERNAL_SERVER_ERROR, format!("journal: {e}"));
    }
    let answer = match result {
        Ok(observation) => StepAnswer::Observed(observation),
        Err(error) => StepAnswer::Refused(error),
    };
    Json(answer).into_response()
}

fn answer_of(turn: &Turn) -> StepAnswer {
    match &turn.feedback {
        Feedback::Observed(observation) => StepAnswer::Observed(observation.clone()),
        Feedback::Failed { reason }
        | Feedback::Denied { reason }
        | Feedback::Rejected { reason } => {
            StepAnswer::Refused(WorkspaceError::Sandbox(reason.clone()))
        }
    }
}

/// Alive, and the containment commands get here.
async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.executor.containment()).into_response()
}

async fn note(
    State(shared): State<Arc<Shared>>,
    Path(step): Path<u32>,
    headers: HeaderMap,
    body: Result<Json<NoteRequest>, JsonRejection>,
) -> Response {
    let request = match for_this_incident(&shared, &headers, body) {
        Ok(request) => request,
        Err(refused) => return *refused,
    };
    if request.turn.step != step || !request.turn.feedback.is_refusal() {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "a note records a refused step under its own number",
        );
    }
    let _one_at_a_time = shared.steps.lock().await;
    match shared.steps.record(&request.turn) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn history(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Some(denied) = refusal(&shared, &headers, None) {
        return denied;
    }
    match shared.steps.history() {
        Ok(turns) => Json(turns).into_response(),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn undo(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Json<UndoRequest>, JsonRejection>,
) -> Response {
    let request = match for_this_incident(&shared, &headers, body) {
        Ok(request) => request,
        Err(refused) => return *refused,
    };
    let _one_at_a_time = shared.steps.lock().await;
    match shared.executor.undo(request.before_step).await {
        Ok(restored) => Json(UndoAnswer {
            before_step: request.before_step,
            written: restored.written,
            removed: restored.removed,
        })
        .into_response(),
        Err(e) => problem(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
    }
}

/// What a waiting write would change: a redacted diff against the file as
/// it is, read beneath the root without following a symlink.
async fn preview(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Json<PreviewRequest>, JsonRejection>,
) -> Response {
    let request = match for_this_incident(&shared, &headers, body) {
        Ok(request) => request,
        Err(refused) => return *refused,
    };
    match shared
        .executor
        .preview_write(&request.path, &request.content)
    {
        Ok(diff) => Json(PreviewAnswer { diff }).into_response(),
        Err(e) => problem(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
    }
}
