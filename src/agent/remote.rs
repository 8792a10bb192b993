//! The agent process (`remediator agent`): runs the brain and nothing
//! else. It holds no cluster rights and cannot execute anything: it
//! proposes each step to the operator's Action API with its incident's
//! token and learns what came of it. Steps are idempotent on the
//! operator's side, so a lost answer is simply asked again, and a
//! restarted agent resumes from the history the operator hands back.

use std::time::{Duration, Instant};

use tracing::Instrument;

use super::driver::brains_for;
use super::llm::LlmEnvironment;
use crate::crd::TokenUsage;
use crate::protocol::{AgentSession, EpisodeEnd, IncidentKey, Next, Offer, StepReply, Submission};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("the Action API at {url} refused: {status} {body}")]
    Refused {
        url: String,
        status: u16,
        body: String,
    },
    #[error("the Action API at {url} stayed unreachable for {waited:?}: {last}")]
    Unreachable {
        url: String,
        waited: Duration,
        last: String,
    },
    #[error("the Action API's answer is not understood: {0}")]
    Protocol(String),
}

/// The agent's line to the operator.
pub struct Connection {
    client: reqwest::Client,
    base: String,
    key: IncidentKey,
    token: String,
    /// How long to keep retrying while the operator is away.
    patience: Duration,
}

/// How long a poll waits on the operator's side.
const POLL_WAIT: Duration = Duration::from_secs(20);

impl Connection {
    pub fn new(base: &str, key: IncidentKey, token: String, patience: Duration) -> Self {
        Self {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(600))
                .build()
                .unwrap_or_default(),
            base: base.trim_end_matches('/').to_string(),
            key,
            token,
            patience,
        }
    }

    fn url(&self, tail: &str) -> String {
        format!(
            "{}/v1/incidents/{}/{}/{tail}",
            self.base, self.key.namespace, self.key.name
        )
    }

    /// Sends `request`, retrying transport errors and 503s with backoff
    /// until `patience` runs out; other errors come back at once.
    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        url: String,
        body: Option<Vec<u8>>,
    ) -> Result<T, AgentError> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(100);
        loop {
            let request = match &body {
                Some(body) => self
                    .client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone()),
                None => self.client.get(&url),
            };
            let request = crate::telemetry::propagate(request);
            let last = match request.bearer_auth(&self.token).send().await {
                Ok(response) if response.status().is_success() => {
                    let bytes = response
                        .bytes()
                        .await
                        .map_err(|e| AgentError::Protocol(e.to_string()))?;
                    return serde_json::from_slice(&bytes)
                        .map_err(|e| AgentError::Protocol(format!("{e}")));
                }
                Ok(response) if response.status().as_u16() == 503 => {
                    format!("503 {}", response.text().await.unwrap_or_default())
                }
                Ok(response) => {
                    return Err(AgentError::Refused {
                        url,
                        status: response.status().as_u16(),
                        body: response.text().await.unwrap_or_default(),
                    });
                }
                Err(e) => e.to_string(),
            };
            if started.elapsed() > self.patience {
                return Err(AgentError::Unreachable {
                    url,
                    waited: started.elapsed(),
                    last,
                });
            }
            // Backing off while the operator restarts or a leader takes over.
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }

    pub async fn session(&self) -> Result<AgentSession, AgentError> {
        self.send(self.url("session"), None).await
    }

    pub async fn submit(
        &self,
        step: u32,
        submission: &Submission,
    ) -> Result<StepReply, AgentError> {
        let body =
            serde_json::to_vec(submission).map_err(|e| AgentError::Protocol(e.to_string()))?;
        self.send(self.url(&format!("steps/{step}")), Some(body))
            .await
    }

    pub async fn poll(&self, step: u32) -> Result<StepReply, AgentError> {
        let url = self.url(&format!("steps/{step}?wait_ms={}", POLL_WAIT.as_millis()));
        self.send(url, None).await
    }
}

/// Runs the incident's episode from the agent's side to its end.
pub async fn run(connection: &Connection, env: &LlmEnvironment) -> Result<EpisodeEnd, AgentError> {
    let AgentSession {
        task,
        brain,
        mut history,
        mut next,
    } = connection.session().await?;
    // A brain that cannot be built is reported as that brain failing; the
    // operator's step machine decides whether the fallback takes over.
    let (mut brains, _) =
        brains_for(brain.kind, brain.llm.as_ref(), true, env).unwrap_or_else(|_| {
            (
                super::driver::Brains {
                    primary: None,
                    fallback: None,
                },
                None,
            )
        });
    if !brain.allow_fallback {
        brains.fallback = None;
    }
    loop {
        let reply = match next {
            Next::Done { end } => return Ok(end),
            Next::Wait { step, .. } => {
                let span = tracing::info_span!("wait", step = crate::telemetry::count(step));
                connection.poll(step).instrument(span).await?
            }
            Next::Propose { step, role } => {
                let span = super::step_span::open(step);
                let (offer, usage) = match brains.for_role(role) {
                    None => (
                        Offer::BrainFailed(
                            format!("no {role:?} brain could be built").to_lowercase(),
                        ),
                        TokenUsage::default(),
                    ),
                    Some(brain) => {
                        let before = brain.usage();
                        let propose = tracing::info_span!(parent: &span, "propose", brain = brain.name(), role = ?role);
                        let proposed = async { brain.propose(&task, &history).await }
                            .instrument(propose)
                            .await;
                        let after = brain.usage();
                        let usage = after.since(before);
                        match proposed {
                            Ok(proposal) => (Offer::Proposal(proposal), usage),
                            Err(e) => (Offer::BrainFailed(e.to_string()), usage),
                        }
                    }
                };
                connection
                    .submit(step, &Submission { offer, usage })
                    .instrument(span)
                    .await?
            }
        };
        if let Some(turn) = reply.turn
            && !history.iter().any(|t| t.step == turn.step)
        {
            history.push(turn);
        }
        next = reply.next;
    }
}
