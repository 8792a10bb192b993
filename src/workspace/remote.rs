//! A workspace in another process: the sandbox sidecar beside a service in
//! its Pod (or a `remediator sandbox` process locally), over HTTP with its
//! token. A permit's step and action go over the wire; the sidecar
//! journals steps, so resending one after a lost answer is safe. A sidecar
//! that cannot be reached is a transport error (retried), never a failed
//! command.

use std::time::Duration;

use futures::future::BoxFuture;
use serde::Serialize;

use super::Workspace;
use crate::protocol::{
    NoteRequest, Observation, PreviewAnswer, PreviewRequest, StepAnswer, StepRequest, Turn,
    UndoAnswer, UndoRequest, WorkspaceError,
};
use crate::risk::Permit;

fn client_with(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .unwrap_or_default()
}

#[derive(Debug, Clone)]
pub struct Remote {
    client: reqwest::Client,
    /// `http://<pod-ip>:<port>`
    base: String,
    token: String,
    incident_uid: String,
}

impl Remote {
    /// `timeout` bounds each request; a step's own time limit comes first.
    pub fn new(
        base: impl Into<String>,
        token: impl Into<String>,
        incident_uid: impl Into<String>,
        timeout: Duration,
    ) -> Self {
        Self {
            client: client_with(timeout),
            base: base.into().trim_end_matches('/').to_string(),
            token: token.into(),
            incident_uid: incident_uid.into(),
        }
    }

    /// The same sidecar with another bound on each request.
    pub fn with_timeout(self, timeout: Duration) -> Self {
        Self {
            client: client_with(timeout),
            ..self
        }
    }

    async fn post<T: Serialize>(
        &self,
        path: &str,
        body: &T,
    ) -> Result<reqwest::Response, WorkspaceError> {
        let text = serde_json::to_vec(body).map_err(|e| WorkspaceError::Sandbox(e.to_string()))?;
        let request = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(text);
        // The sidecar's spans join the step's.
        let response = crate::telemetry::propagate(request)
            .send()
            .await
            .map_err(|e| WorkspaceError::Unreachable(format!("sandbox at {}: {e}", self.base)))?;
        let status = response.status();
        if status.is_server_error() {
            return Err(WorkspaceError::Unreachable(format!(
                "sandbox at {} answered {status}: {}",
                self.base,
                response.text().await.unwrap_or_default()
            )));
        }
        if !status.is_success() {
            return Err(WorkspaceError::Sandbox(format!(
                "sandbox at {} refused ({status}): {}",
                self.base,
                response.text().await.unwrap_or_default()
            )));
        }
        Ok(response)
    }

    async fn json<T: serde::de::DeserializeOwned>(
        response: reqwest::Response,
    ) -> Result<T, WorkspaceError> {
        let bytes = response.bytes().await.map_err(|e| {
            WorkspaceError::Unreachable(format!("reading the sandbox's answer: {e}"))
        })?;
        serde_json::from_slice(&bytes).map_err(|e| {
            WorkspaceError::Unreachable(format!("the sandbox's answer is not understood: {e}"))
        })
    }

    /// Records a step that did not run, so the history is complete.
    pub async fn note(&self, turn: &Turn) -> Result<(), WorkspaceError> {
        let request = NoteRequest {
            incident: self.incident_uid.clone(),
            turn: turn.clone(),
        };
        self.post(&format!("/v1/notes/{}", turn.step), &request)
            .await
            .map(|_| ())
    }

    /// Every step so far, as the brain needs it to resume.
    pub async fn history(&self) -> Result<Vec<Turn>, WorkspaceError> {
        let response = self
            .client
            .get(format!("{}/v1/history", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| WorkspaceError::Unreachable(format!("sandbox at {}: {e}", self.base)))?;
        if !response.status().is_success() {
            return Err(WorkspaceError::Unreachable(format!(
                "history: {}",
                response.status()
            )));
        }
        Self::json(response).await
    }

    /// The containment the sidecar's commands run under (its health
    /// answer).
    pub async fn containment(&self) -> Result<crate::sandbox::Containment, WorkspaceError> {
        let response = self
            .client
            .get(format!("{}/healthz", self.base))
            .send()
            .await
            .map_err(|e| WorkspaceError::Unreachable(format!("sandbox at {}: {e}", self.base)))?;
        if !response.status().is_success() {
            return Err(WorkspaceError::Unreachable(format!(
                "healthz: {}",
                response.status()
            )));
        }
        Self::json(response).await
    }

    /// What writing `content` to `path` would change (a redacted diff).
    pub async fn preview(&self, path: &str, content: &str) -> Result<String, WorkspaceError> {
        let request = PreviewRequest {
            incident: self.incident_uid.clone(),
            path: path.to_string(),
            content: content.to_string(),
        };
        let answer: PreviewAnswer = Self::json(self.post("/v1/preview", &request).await?).await?;
        Ok(answer.diff)
    }

    /// Puts the root back as it was before `step`.
    pub async fn undo(&self, before_step: u32) -> Result<UndoAnswer, WorkspaceError> {
        let request = UndoRequest {
            incident: self.incident_uid.clone(),
            before_step,
        };
        Self::json(self.post("/v1/undo", &request).await?).await
    }
}

impl Workspace for Remote {
    fn run<'a>(&'a self, permit: &'a Permit) -> BoxFuture<'a, Result<Observation, WorkspaceError>> {
        Box::pin(async move {
            let request = StepRequest {
                incident: self.incident_uid.clone(),
                action: permit.action().clone(),
                risk: permit.risk(),
                declared_risk: None,
            };
            let response = self
                .post(&format!("/v1/steps/{}", permit.step()), &request)
                .await?;
            match Self::json::<StepAnswer>(response).await? {
                StepAnswer::Observed(observation) => Ok(observation),
                StepAnswer::Refused(error) => Err(error),
            }
        })
    }
}
