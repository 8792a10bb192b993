//! The routes: the page and its assets, and the JSON API under `/api` that
//! the page uses and a user can script. Every error is JSON with a 4xx or
//! 5xx status: `{"error": "..."}`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::Stream;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::state::{AppState, ScorecardParams, StartError};
use crate::eval::fanout::Stop;
use crate::eval::params::FanoutParams;

const INDEX: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/style.css");

/// Largest request body read.
const MAX_BODY: usize = 64 * 1024;

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { asset(INDEX, "text/html; charset=utf-8") }),
        )
        .route(
            "/app.js",
            get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/style.css",
            get(|| async { asset(STYLE, "text/css; charset=utf-8") }),
        )
        .route("/api/status", get(status))
        .route("/api/scenarios", get(scenarios))
        .route("/api/runs", post(start_run))
        .route("/api/runs/stop", post(stop_run))
        .route("/api/runs/last", get(last_report))
        .route("/api/events", get(events))
        .route("/api/log", get(log))
        .route("/api/scorecard", get(scorecard).post(start_scorecard))
        .route("/api/scorecard/plot.svg", get(plot))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such page or API route") })
        .method_not_allowed_fallback(|| async {
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this route",
            )
        })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// A JSON body (an empty one is `{}`), with a 400 that says what is wrong.
fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, Box<Response>> {
    let text = if bytes.iter().all(u8::is_ascii_whitespace) {
        &b"{}"[..]
    } else {
        &bytes[..]
    };
    serde_json::from_slice(text).map_err(|e| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            format!("invalid JSON body: {e}"),
        ))
    })
}

async fn status(State(state): State<Arc<AppState>>) -> Response {
    Json(state.status()).into_response()
}

async fn scenarios(State(state): State<Arc<AppState>>) -> Response {
    let list: Vec<_> = state
        .catalog()
        .scenarios
        .iter()
        .map(|s| json!({ "id": s.id, "split": s.split }))
        .collect();
    Json(list).into_response()
}

async fn start_run(State(state): State<Arc<AppState>>, bytes: Bytes) -> Response {
    let params: FanoutParams = match body(&bytes) {
        Ok(params) => params,
        Err(response) => return *response,
    };
    match state.start_run(params) {
        Ok(run_id) => (StatusCode::CREATED, Json(json!({ "run_id": run_id }))).into_response(),
        Err(e @ StartError::Busy(_)) => error(StatusCode::CONFLICT, e.to_string()),
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct StopParams {
    /// `drain` (default) or `abort`.
    mode: Option<String>,
}

async fn stop_run(State(state): State<Arc<AppState>>, bytes: Bytes) -> Response {
    let params: StopParams = match body(&bytes) {
        Ok(params) => params,
        Err(response) => return *response,
    };
    let level = match params.mode.as_deref() {
        None | Some("drain") => Stop::Drain,
        Some("abort") => Stop::Abort,
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("mode must be drain or abort, not `{other}`"),
            );
        }
    };
    match state.stop_run(level) {
        Some(run_id) => Json(json!({ "run_id": run_id, "stopping": true })).into_response(),
        None => error(StatusCode::CONFLICT, "no run is active"),
    }
}

async fn last_report(State(state): State<Arc<AppState>>) -> Response {
    match state.last_report() {
        Some(report) => Json(report).into_response(),
        None => error(StatusCode::NOT_FOUND, "no run has finished yet"),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Since {
    since: u64,
}

async fn log(
    State(state): State<Arc<AppState>>,
    query: Result<Query<Since>, axum::extract::rejection::QueryRejection>,
) -> Response {
    match query {
        Ok(Query(Since { since })) => Json(state.log.since(since)).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, format!("bad query: {e}")),
    }
}

async fn scorecard(State(state): State<Arc<AppState>>) -> Response {
    Json(state.scorecard()).into_response()
}

async fn start_scorecard(State(state): State<Arc<AppState>>, bytes: Bytes) -> Response {
    let params: ScorecardParams = match body(&bytes) {
        Ok(params) => params,
        Err(response) => return *response,
    };
    match state.start_scorecard(params) {
        Ok(version) => (StatusCode::ACCEPTED, Json(json!({ "started": version }))).into_response(),
        Err(e @ StartError::Busy(_)) => error(StatusCode::CONFLICT, format!("{e}")),
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

async fn plot(State(state): State<Arc<AppState>>) -> Response {
    match state.plot_svg() {
        Some(Ok(svg)) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("image/svg+xml"),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            ],
            svg,
        )
            .into_response(),
        Some(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        None => error(
            StatusCode::NOT_FOUND,
            "no scorecard yet: POST /api/scorecard",
        ),
    }
}

/// Server-sent events: a `state` event at once and whenever the run, the
/// log or the scorecard changes (at most ten a second), until the server
/// stops. Each carries the run's status and the log lines not yet sent.
async fn events(
    State(state): State<Arc<AppState>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    struct Cursor {
        state: Arc<AppState>,
        live: tokio::sync::watch::Receiver<crate::eval::fanout::Snapshot>,
        card: tokio::sync::watch::Receiver<u64>,
        closing: tokio::sync::watch::Receiver<bool>,
        log: tokio::sync::watch::Receiver<u64>,
        log_seq: u64,
        first: bool,
    }
    let cursor = Cursor {
        live: state.live.subscribe(),
        card: state.scorecard_version.subscribe(),
        closing: state.closing.subscribe(),
        log: state.log.subscribe(),
        state,
        log_seq: 0,
        first: true,
    };
    let stream = futures::stream::unfold(cursor, |mut c| async move {
        if !c.first {
            // Coalesce bursts: at most one event per 100 ms.
            tokio::time::sleep(Duration::from_millis(100)).await;
            tokio::select! {
                _ = c.live.changed() => {},
                _ = c.card.changed() => {},
                _ = c.log.changed() => {},
                _ = c.closing.changed() => {},
            }
        }
        c.first = false;
        if *c.closing.borrow() {
            return None;
        }
        c.live.borrow_and_update();
        c.card.borrow_and_update();
        c.log.borrow_and_update();
        let log = c.state.log.since(c.log_seq);
        c.log_seq = c.state.log.next_seq();
        let payload = json!({
            "status": c.state.status(),
            "log": log,
            "scorecard": {
                "running": c.state.scorecard_running(),
                "version": *c.card.borrow(),
            },
        });
        let event = Event::default().event("state").data(payload.to_string());
        Some((Ok(event), c))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
