//! What the server holds: the environment incidents share, the one
//! fan-out that may run, the last report, the scorecard and the log.

use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::log::RunLog;
use crate::agent::confirm::Refuse;
use crate::eval::dashboard::completion_line;
use crate::eval::fanout::{self, RunState, Snapshot, Stop};
use crate::eval::params::{FanoutParams, parse_split};
use crate::eval::plot;
use crate::eval::report::{Report, RunInfo};
use crate::eval::scorecard::{self, Scorecard};
use crate::local::{Environment, Recorder};
use crate::policy::{self, Overrides, Paths};
use crate::trajectory;

pub struct AppState {
    env: Environment,
    paths: Paths,
    pub log: RunLog,
    /// The current (or last) fan-out's snapshot.
    pub live: watch::Sender<Snapshot>,
    /// Bumped whenever the scorecard changes.
    pub scorecard_version: watch::Sender<u64>,
    /// True once the server is stopping: event streams end.
    pub closing: watch::Sender<bool>,
    run: Mutex<RunSlot>,
    card: Mutex<CardSlot>,
}

#[derive(Default)]
struct RunSlot {
    active: Option<ActiveRun>,
    last: Option<Report>,
    started: u64,
}

struct ActiveRun {
    run_id: String,
    params: FanoutParams,
    stop: watch::Sender<Stop>,
    task: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct CardSlot {
    running: bool,
    last: Option<Scorecard>,
    svg: Option<Result<String, String>>,
    started: u64,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StartError {
    #[error("run {0} is still running: stop it first (POST /api/runs/stop)")]
    Busy(String),
    #[error("{0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct RunStatus {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<FanoutParams>,
    pub snapshot: Snapshot,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_report: Option<Report>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScorecardParams {
    pub split: Option<String>,
    pub repeats: Option<usize>,
    pub concurrency: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CardStatus {
    pub running: bool,
    pub version: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scorecard: Option<Scorecard>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plot_error: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl AppState {
    /// `env` without a recorder: each run records under its own id.
    pub fn new(env: Environment, paths: Paths) -> Arc<Self> {
        let (live, _) = watch::channel(idle_snapshot());
        let (scorecard_version, _) = watch::channel(0);
        let (closing, _) = watch::channel(false);
        Arc::new(Self {
            env,
            paths,
            log: RunLog::default(),
            live,
            scorecard_version,
            closing,
            run: Mutex::new(RunSlot::default()),
            card: Mutex::new(CardSlot::default()),
        })
    }

    fn recorded_env(&self, run_id: &str) -> Environment {
        let mut env = self.env.clone();
        env.recorder = Some(Recorder {
            artifacts_dir: self.paths.artifacts_dir.clone(),
            run_id: run_id.to_string(),
        });
        env
    }

    pub fn catalog(&self) -> &crate::scenario::Catalog {
        &self.env.catalog
    }

    pub fn status(&self) -> RunStatus {
        let slot = lock(&self.run);
        RunStatus {
            active: slot.active.is_some(),
            run_id: slot.active.as_ref().map(|a| a.run_id.clone()),
            params: slot.active.as_ref().map(|a| a.params.clone()),
            snapshot: self.live.borrow().clone(),
            last_report: slot.last.clone(),
        }
    }

    pub fn is_active(&self) -> bool {
        lock(&self.run).active.is_some()
    }

    pub fn last_report(&self) -> Option<Report> {
        lock(&self.run).last.clone()
    }

    /// Starts a fan-out; only the built-in policies by name.
    pub fn start_run(self: &Arc<Self>, params: FanoutParams) -> Result<String, StartError> {
        let mut slot = lock(&self.run);
        if let Some(active) = &slot.active {
            return Err(StartError::Busy(active.run_id.clone()));
        }
        if *self.closing.borrow() {
            return Err(StartError::Invalid("the server is stopping".into()));
        }
        if !matches!(params.policy.as_str(), "baseline" | "optimized") {
            return Err(StartError::Invalid(format!(
                "policy must be baseline or optimized, not `{}` (Policy files are for the command line)",
                params.policy
            )));
        }
        let policy = policy::resolve(&params.policy, &Overrides::default(), &self.paths)
            .map_err(|e| StartError::Invalid(e.to_string()))?;
        slot.started += 1;
        let run_id = format!("{}-web{}", trajectory::new_run_id(), slot.started);
        let file = trajectory::run_file(&self.paths.artifacts_dir, &run_id);
        let plan = params
            .plan(
                &self.env.catalog,
                policy,
                &run_id,
                Some(file.display().to_string()),
            )
            .map_err(|e| StartError::Invalid(e.to_string()))?;
        let (stop, stop_rx) = watch::channel(Stop::Run);
        self.live.send_replace(Snapshot::initial(
            plan.info.clone(),
            plan.arrivals.len(),
            plan.info.concurrency,
        ));
        self.log.push(format!(
            "run {run_id} started: {} of {} incidents, concurrency {}, policy {}, seed {}",
            plan.info.mode,
            plan.arrivals.len(),
            plan.info.concurrency,
            plan.info.policy,
            plan.info.seed
        ));
        let env = Arc::new(self.recorded_env(&run_id));
        let state = self.clone();
        let task = tokio::spawn(async move {
            let watcher = state.live.subscribe();
            let (finished, ()) = tokio::join!(
                fanout::run(plan, env, Arc::new(Refuse), stop_rx, &state.live),
                state.log_completions(watcher)
            );
            let r = &finished.report;
            state.log.push(format!(
                "run {} finished: {} generated, {} completed, {} fixed, {} failed, {} dropped{}",
                r.info.run_id,
                r.generated,
                r.completed,
                r.fixed,
                r.failed,
                r.dropped,
                r.stopped
                    .as_ref()
                    .map(|s| format!(" ({s})"))
                    .unwrap_or_default()
            ));
            let mut slot = lock(&state.run);
            slot.active = None;
            slot.last = Some(finished.report);
        });
        slot.active = Some(ActiveRun {
            run_id: run_id.clone(),
            params,
            stop,
            task: Some(task),
        });
        Ok(run_id)
    }

    /// Logs each completion as it lands, until the run is done.
    async fn log_completions(&self, mut watcher: watch::Receiver<Snapshot>) {
        let mut logged = 0usize;
        loop {
            let snapshot = watcher.borrow_and_update().clone();
            let completed = snapshot.report.completed;
            for record in snapshot
                .recent
                .iter()
                .take(completed.saturating_sub(logged))
                .rev()
            {
                self.log.push(completion_line(record));
            }
            logged = completed;
            if snapshot.state == RunState::Done || watcher.changed().await.is_err() {
                break;
            }
        }
    }

    /// Asks the running fan-out to drain or abort.
    pub fn stop_run(&self, level: Stop) -> Option<String> {
        let slot = lock(&self.run);
        let active = slot.active.as_ref()?;
        // Only ever forward: a drain never undoes an abort. (The borrow
        // must end before the send, which takes the write lock.)
        let current = *active.stop.borrow();
        active.stop.send_replace(level.max(current));
        self.log.push(format!(
            "run {}: {} requested",
            active.run_id,
            match level {
                Stop::Abort => "abort",
                _ => "drain",
            }
        ));
        Some(active.run_id.clone())
    }

    pub fn start_scorecard(self: &Arc<Self>, params: ScorecardParams) -> Result<u64, StartError> {
        let split_name = params.split.clone().unwrap_or_else(|| "train".into());
        let split = parse_split(&split_name).map_err(|e| StartError::Invalid(e.to_string()))?;
        let repeats = params.repeats.unwrap_or(1);
        if !(1..=20).contains(&repeats) {
            return Err(StartError::Invalid(format!(
                "repeats must be between 1 and 20, not {repeats}"
            )));
        }
        let concurrency = params.concurrency.unwrap_or(2);
        if !(1..=crate::eval::params::MAX_CONCURRENCY).contains(&concurrency) {
            return Err(StartError::Invalid(format!(
                "concurrency must be between 1 and {}, not {concurrency}",
                crate::eval::params::MAX_CONCURRENCY
            )));
        }
        let base = policy::resolve("baseline", &Overrides::default(), &self.paths)
            .map_err(|e| StartError::Invalid(e.to_string()))?;
        let mut card = lock(&self.card);
        if card.running {
            return Err(StartError::Busy("the scorecard".into()));
        }
        card.running = true;
        card.started += 1;
        let run_id = format!("{}-card{}", trajectory::new_run_id(), card.started);
        let request = scorecard::Request {
            run_id: run_id.clone(),
            split: split_name,
            scenarios: scorecard::scenarios(&self.env.catalog, split),
            repeats,
            concurrency,
            base,
            approaches: scorecard::approaches(&self.paths),
            trajectory_file: Some(trajectory::run_file(&self.paths.artifacts_dir, &run_id)),
        };
        self.log.push(format!(
            "scorecard {run_id} started: split {}, {} repeat(s)",
            request.split, repeats
        ));
        let env = Arc::new(self.recorded_env(&run_id));
        let state = self.clone();
        let version = card.started;
        tokio::spawn(async move {
            let result = scorecard::run(request, env).await;
            let svg = plot::svg(&result).map_err(|e| e.to_string());
            state
                .log
                .push(format!("scorecard {} finished", result.run_id));
            let mut card = lock(&state.card);
            card.running = false;
            card.svg = Some(svg);
            card.last = Some(result);
            drop(card);
            state.scorecard_version.send_replace(version);
        });
        self.scorecard_version.send_modify(|_| {});
        Ok(version)
    }

    pub fn scorecard(&self) -> CardStatus {
        let card = lock(&self.card);
        CardStatus {
            running: card.running,
            version: *self.scorecard_version.borrow(),
            scorecard: card.last.clone(),
            plot_error: card.svg.as_ref().and_then(|s| s.as_ref().err().cloned()),
        }
    }

    pub fn scorecard_running(&self) -> bool {
        lock(&self.card).running
    }

    pub fn plot_svg(&self) -> Option<Result<String, String>> {
        lock(&self.card).svg.clone()
    }

    /// Aborts a running fan-out and waits for it (services stop, roots go),
    /// then ends the event streams.
    pub async fn shutdown(&self) {
        self.closing.send_replace(true);
        let task = {
            let mut slot = lock(&self.run);
            slot.active.as_mut().and_then(|active| {
                let _ = active.stop.send(Stop::Abort);
                active.task.take()
            })
        };
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

fn idle_snapshot() -> Snapshot {
    let mut snapshot = Snapshot::initial(RunInfo::default(), 0, 0);
    snapshot.state = RunState::Done;
    snapshot
}
