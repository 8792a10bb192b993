//! The workspace of a service on this machine: commands and file
//! operations run in the kernel sandbox, `http_get` goes to the service's
//! address, restarts go to its supervisor.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use futures::future::BoxFuture;
use tracing::field::Empty;
use tracing::{Instrument, Span};

use super::guard::{Checked, Guard};
use super::journal::{JournalError, Restored};
use super::{Limits, Workspace};
use crate::action::Action;
use crate::protocol::{Observation, WorkspaceError};
use crate::redact::Redactor;
use crate::risk::{Permit, SecurityRisk};
use crate::sandbox::{Job, Op, Outcome, Sandbox, SandboxError, WarmSandbox};
use crate::verify::http_get;

/// Where a local service lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalService {
    pub root: PathBuf,
    /// Where health probes (and the agent's `http_get`) reach it.
    pub address: SocketAddr,
}

#[derive(Debug, Clone)]
pub struct Local {
    service: LocalService,
    sandbox: Arc<Sandbox>,
    /// The incident's warm sandbox, where every layer holds.
    warm: Option<Arc<WarmSandbox>>,
    limits: Limits,
    guard: Option<Guard>,
    redactor: Option<Arc<Redactor>>,
}

impl Local {
    pub fn new(service: LocalService, sandbox: Arc<Sandbox>) -> Self {
        let warm = sandbox
            .containment()
            .is_full()
            .then(|| Arc::new(sandbox.warm(&service.root, service.address)));
        Self {
            service,
            sandbox,
            warm,
            limits: Limits::default(),
            guard: None,
            redactor: None,
        }
    }

    /// Snapshots before every mutating step and rolls back a step that
    /// makes the service worse.
    pub fn with_guard(mut self, guard: Guard) -> Self {
        self.guard = Some(guard);
        self
    }

    /// Secrets in observations become handles; handles in actions become
    /// values only here, at execution.
    pub fn with_redactor(mut self, redactor: Arc<Redactor>) -> Self {
        self.redactor = Some(redactor);
        self
    }

    /// Puts the root back as it was before `step` (0: as the incident found
    /// it) and restarts the service.
    pub async fn undo(&self, step: u32) -> Result<Restored, JournalError> {
        let guard = self.guard.as_ref().ok_or(JournalError::NoSnapshot(step))?;
        guard
            .undo(step, || async { self.restart().await.is_success() })
            .await
    }

    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The containment this executor's commands run under.
    pub fn containment(&self) -> &crate::sandbox::Containment {
        self.sandbox.containment()
    }

    pub fn service(&self) -> &LocalService {
        &self.service
    }

    /// The whole environment a command sees: an allowlist, nothing of the
    /// caller's (API keys, tokens).
    fn env(&self) -> Vec<(String, String)> {
        let root = self.service.root.display().to_string();
        vec![
            ("PATH".into(), crate::sandbox::SAFE_PATH.into()),
            ("HOME".into(), root.clone()),
            ("LANG".into(), "C.UTF-8".into()),
            ("TERM".into(), "dumb".into()),
            ("TMPDIR".into(), "/tmp".into()),
            ("SERVICE_ROOT".into(), root),
            (
                "SERVICE_PORT".into(),
                self.service.address.port().to_string(),
            ),
        ]
    }

    async fn contained(&self, op: Op) -> Result<Observation, WorkspaceError> {
        let started = Instant::now();
        let job = Job {
            root: &self.service.root,
            service: self.service.address,
            env: self.env(),
            timeout: self.limits.exec_timeout,
            max_output_bytes: self.limits.max_output_bytes,
        };
        let outcome = match &self.warm {
            Some(warm) => warm.run(job, op).await,
            None => self.sandbox.run(job, op).await,
        };
        let outcome = outcome.map_err(|e| match e {
            SandboxError::Spawn { .. } | SandboxError::Setup { .. } => {
                WorkspaceError::Sandbox(e.to_string())
            }
            SandboxError::Protocol(_) | SandboxError::Hung(_) => {
                WorkspaceError::Unreachable(e.to_string())
            }
        })?;
        let duration_ms = elapsed_ms(started);
        Ok(match outcome {
            Outcome::Finished {
                exit_code,
                stdout,
                stderr,
                timed_out,
            } => Observation {
                exit_code,
                http_status: None,
                stdout,
                stderr,
                timed_out,
                duration_ms,
                rolled_back: None,
            },
            Outcome::Refused { message } => Observation::failed(message, duration_ms),
            Outcome::SetupFailed { message, .. } => return Err(WorkspaceError::Sandbox(message)),
            Outcome::Probed { .. } => {
                return Err(WorkspaceError::Unreachable(
                    "the sandbox answered a probe".into(),
                ));
            }
        })
    }

    async fn http_get(&self, path: &str) -> Observation {
        let started = Instant::now();
        let address = self.service.address;
        let fetched = tokio::time::timeout(
            self.limits.http_timeout,
            http_get(address, path, self.limits.max_output_bytes),
        )
        .await;
        let duration_ms = elapsed_ms(started);
        match fetched {
            Ok(Ok(answer)) => self.redacted(Observation {
                exit_code: Some(if answer.status < 400 { 0 } else { 1 }),
                http_status: Some(answer.status),
                stdout: answer.body,
                duration_ms,
                ..Observation::default()
            }),
            Ok(Err(e)) => Observation::failed(
                format!("GET http://{address}{path} failed: {e}"),
                duration_ms,
            ),
            Err(_) => Observation {
                timed_out: true,
                ..Observation::failed(format!("GET http://{address}{path} timed out"), duration_ms)
            },
        }
    }

    async fn restart(&self) -> Observation {
        let started = Instant::now();
        let root = self.service.root.clone();
        let result =
            tokio::task::spawn_blocking(move || target_service::control::restart(&root)).await;
        let duration_ms = elapsed_ms(started);
        match result {
            Ok(Ok(state)) => {
                let text = serde_json::to_string(&state).unwrap_or_default();
                if state.running {
                    Observation::succeeded(format!("service restarted: {text}"), duration_ms)
                } else {
                    Observation::failed(format!("service did not come up: {text}"), duration_ms)
                }
            }
            Ok(Err(e)) => Observation::failed(format!("restart failed: {e}"), duration_ms),
            Err(e) => Observation::failed(format!("restart failed: {e}"), duration_ms),
        }
    }
}

impl Local {
    /// Ends the incident's warm sandbox and waits until its processes are
    /// gone.
    pub async fn close(&self) {
        if let Some(warm) = &self.warm {
            warm.close().await;
        }
    }

    /// What writing `content` to `path` would change, as a redacted diff
    /// ([`super::preview`]): for a person asked to approve the write.
    pub fn preview_write(&self, path: &str, content: &str) -> Result<String, WorkspaceError> {
        // The path as the agent wrote it: a handle in it is not turned into
        // its secret value here, so no message can carry one.
        let root = &self.service.root;
        let relative = Path::new(path)
            .strip_prefix(root)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| path.to_string());
        let old = super::preview::read_beneath(root, &relative).map_err(WorkspaceError::Sandbox)?;
        // The file's text is redacted like anything the agent sees; the
        // new content is the agent's own (secrets in it are handles), shown
        // as it would be written.
        let old = old.map(|text| match &self.redactor {
            Some(redactor) => redactor.redact(&text),
            None => text,
        });
        Ok(super::preview::unified(path, old.as_deref(), content))
    }

    /// The action with handles turned back into secret values; an error
    /// (a foreign handle, a value unsafe in a shell) means it must not run.
    fn reveal(&self, action: &Action) -> Result<Action, String> {
        let Some(redactor) = &self.redactor else {
            return Ok(action.clone());
        };
        Ok(match action {
            Action::Exec(command) => Action::Exec(redactor.reveal_in_command(command)?),
            Action::ReadFile(path) => Action::ReadFile(redactor.reveal(path)?),
            Action::WriteFile { path, content } => Action::WriteFile {
                path: redactor.reveal(path)?,
                content: redactor.reveal(content)?,
            },
            other => other.clone(),
        })
    }

    async fn execute_plain(&self, action: Action) -> Result<Observation, WorkspaceError> {
        match action {
            Action::Exec(command) => self.contained(Op::Exec { command }).await,
            Action::ReadFile(path) => self.contained(Op::Read { path }).await,
            Action::WriteFile { path, content } => {
                self.contained(Op::Write { path, content }).await
            }
            Action::HttpGet(path) => Ok(self.http_get(&path).await),
            Action::RestartService => Ok(self.restart().await),
        }
    }

    fn redacted(&self, mut observation: Observation) -> Observation {
        if let Some(redactor) = &self.redactor {
            observation.stdout = redactor.redact(&observation.stdout);
            observation.stderr = redactor.redact(&observation.stderr);
        }
        observation
    }
}

/// Steps the guard snapshots and checks: anything the gate rates above
/// LOW, and every restart.
fn mutates(risk: SecurityRisk, action: &Action) -> bool {
    risk > SecurityRisk::Low || matches!(action, Action::RestartService)
}

impl Local {
    /// Executes one permitted action: handles revealed, snapshot and
    /// regression check around a mutating step, the observation redacted.
    /// Only [`Workspace::run`] reaches it, with a permit the gate issued or
    /// the sidecar rebuilt from a checked request ([`Permit::relayed`]).
    async fn execute(&self, permit: &Permit) -> Result<Observation, WorkspaceError> {
        let (step, risk, action) = (permit.step(), permit.risk(), permit.action());
        let action = match self.reveal(action) {
            Ok(action) => action,
            Err(problem) => return Ok(Observation::failed(format!("not run: {problem}"), 0)),
        };
        let guard = self.guard.as_ref().filter(|_| mutates(risk, &action));
        let Some(guard) = guard else {
            return self.execute_plain(action).await.map(|o| self.redacted(o));
        };
        let address = self.service.address;
        let before = match guard.before(step, address).await {
            Ok(health) => health,
            Err(e) => return Ok(Observation::failed(format!("not run: {e}"), 0)),
        };
        let was_restart = matches!(action, Action::RestartService);
        let mut observation = self.execute_plain(action).await?;
        let checked = guard
            .after(step, was_restart, before, address, || async {
                self.restart().await.is_success()
            })
            .await;
        if let Checked::RolledBack(evidence) = checked {
            observation.rolled_back = Some(evidence);
        }
        Ok(self.redacted(observation))
    }
}

impl Workspace for Local {
    fn run<'a>(&'a self, permit: &'a Permit) -> BoxFuture<'a, Result<Observation, WorkspaceError>> {
        let span = tracing::info_span!(
            "sandbox.run",
            step = crate::telemetry::count(permit.step()),
            action.kind = permit.action().kind(),
            risk = %permit.risk(),
            containment = %self.containment().summary(),
            warm = self.warm.is_some(),
            exit_code = Empty,
            http_status = Empty,
            timed_out = Empty,
            rolled_back = Empty,
            duration_ms = Empty,
            "error.type" = Empty,
            otel.status_code = Empty,
        );
        Box::pin(
            async move {
                let result = self.execute(permit).await;
                record_outcome(&Span::current(), &result);
                result
            }
            .instrument(span),
        )
    }
}

/// What the sandbox run's span keeps: the outcome, never the output.
fn record_outcome(span: &Span, result: &Result<Observation, WorkspaceError>) {
    match result {
        Ok(observation) => {
            if let Some(code) = observation.exit_code {
                span.record("exit_code", code);
            }
            if let Some(status) = observation.http_status {
                span.record("http_status", crate::telemetry::count(status));
            }
            span.record("timed_out", observation.timed_out);
            span.record("rolled_back", observation.rolled_back.is_some());
            span.record(
                "duration_ms",
                crate::telemetry::count(observation.duration_ms),
            );
        }
        // Its kind only: the text can quote what the sandbox answered.
        Err(e) => {
            span.record("otel.status_code", "ERROR");
            span.record("error.type", e.kind());
        }
    }
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}
