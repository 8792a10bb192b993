//! Many incidents at once: arrivals go into a severity-ordered queue, C
//! workers take the most severe waiting incident and refill as each one
//! finishes. Every incident is real: on this machine an `local::run`
//! (its own scratch root, leased port and sandboxed commands) that records
//! its trajectory line, or in a cluster an Incident the operator resolves
//! (`super::kube`); the harness adds only its clock (arrival, start,
//! wait). A stop asks to drain (no new starts, running incidents finish)
//! or to abort (running incidents are dropped, which stops their services
//! and removes their roots, or deletes their Incidents); the report covers
//! what ran either way.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::arrivals::Arrival;
use super::mix::Severity;
use super::queue::Queue;
use super::report::{IncidentRecord, LineFacts, Report, RunInfo, Unfinished};
use super::trace::{LinkFields, TraceLinks};
use crate::agent::confirm::Confirmer;
use crate::local::{self, Environment, LocalIncident, Outcome};
use crate::policy::ResolvedPolicy;

/// Recent completions a snapshot keeps.
pub const RECENT: usize = 20;
/// Waiting incidents a snapshot lists (the queue's length is always given).
pub const QUEUE_SHOWN: usize = 20;

/// A fan-out to run.
#[derive(Clone)]
pub struct Plan {
    pub info: RunInfo,
    /// In arrival order (`at_s` not decreasing).
    pub arrivals: Vec<Arrival>,
    pub policy: ResolvedPolicy,
    pub links: Option<TraceLinks>,
    /// How long running incidents may take to finish after a drain request.
    pub drain_timeout: Duration,
}

/// What the run is asked to do; only ever moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stop {
    Run,
    /// No new arrivals or starts; running incidents finish.
    Drain,
    /// Running incidents are dropped.
    Abort,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Running,
    Draining,
    Done,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Active {
    pub seq: u64,
    pub incident: String,
    pub scenario: String,
    pub severity: Severity,
    pub started_s: f64,
}

/// The run as it stands, for a dashboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub state: RunState,
    pub elapsed_s: f64,
    /// Arrivals the plan holds (a drain ends it before all arrive).
    pub planned: usize,
    pub workers: Vec<Option<Active>>,
    pub queue_len: usize,
    /// The first waiting incidents, in the order they will be served.
    pub queue: Vec<Arrival>,
    /// Newest first.
    pub recent: Vec<IncidentRecord>,
    /// The KPIs over what has finished so far.
    pub report: Report,
}

impl Snapshot {
    pub fn initial(info: RunInfo, planned: usize, concurrency: usize) -> Self {
        Self {
            state: RunState::Running,
            elapsed_s: 0.0,
            planned,
            workers: vec![None; concurrency],
            queue_len: 0,
            queue: Vec::new(),
            recent: Vec::new(),
            report: Report::build(info, &[], &[], &Unfinished::default(), 0.0, None),
        }
    }
}

/// A finished run: its report and the record of every incident that ran.
#[derive(Debug, Clone)]
pub struct Finished {
    pub report: Report,
    pub records: Vec<IncidentRecord>,
    pub unfinished: Unfinished,
}

/// The unique name of arrival `seq`: `fo-00042-port-mismatch`.
pub fn incident_name(seq: u64, scenario: &str) -> String {
    format!("fo-{seq:05}-{}", scenario.replace('_', "-"))
}

/// Runs one arrived incident to its end and says what it came to. Dropping
/// the future aborts the incident.
pub trait Runner: Send + Sync + 'static {
    /// The incident's name for arrival `seq`.
    fn name(&self, seq: u64, scenario: &str) -> String {
        incident_name(seq, scenario)
    }
    fn run(&self, name: String, scenario: String) -> BoxFuture<'static, Outcome>;
}

/// Incidents on this machine: `local::run` under the plan's policy.
pub struct LocalRunner {
    pub policy: ResolvedPolicy,
    pub env: Arc<Environment>,
    pub confirmer: Arc<dyn Confirmer>,
}

impl Runner for LocalRunner {
    fn run(&self, name: String, scenario: String) -> BoxFuture<'static, Outcome> {
        let incident = LocalIncident {
            name,
            scenario,
            policy: self.policy.clone(),
            classifier_off: false,
            keep: false,
        };
        let (env, confirmer) = (self.env.clone(), self.confirmer.clone());
        Box::pin(async move { local::run(&incident, &env, confirmer.as_ref()).await })
    }
}

struct Running {
    worker: usize,
    name: String,
    arrival: Arrival,
    arrival_s: f64,
    started_s: f64,
}

struct State {
    info: RunInfo,
    start: Instant,
    planned: usize,
    queue: Queue,
    workers: Vec<Option<Active>>,
    arrived_at: HashMap<u64, f64>,
    generated: Vec<(String, Severity)>,
    records: Vec<IncidentRecord>,
    recent: VecDeque<IncidentRecord>,
    unfinished: Unfinished,
    stopped: Option<String>,
    state: RunState,
    last_done_s: f64,
}

impl State {
    fn elapsed_s(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    fn report(&self) -> Report {
        Report::build(
            self.info.clone(),
            &self.generated,
            &self.records,
            &self.unfinished,
            self.last_done_s,
            self.stopped.clone(),
        )
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            state: self.state,
            elapsed_s: self.elapsed_s(),
            planned: self.planned,
            workers: self.workers.clone(),
            queue_len: self.queue.len(),
            queue: self.queue.iter().take(QUEUE_SHOWN).cloned().collect(),
            recent: self.recent.iter().cloned().collect(),
            report: self.report(),
        }
    }

    fn arrive(&mut self, arrival: Arrival) {
        self.generated
            .push((arrival.scenario.clone(), arrival.severity));
        self.arrived_at.insert(arrival.seq, self.elapsed_s());
        // Free workers take incidents at once: those never wait.
        let free = self.workers.iter().filter(|w| w.is_none()).count();
        if let Some(dropped) = self.queue.push_with_room(arrival, free) {
            self.arrived_at.remove(&dropped.seq);
            self.unfinished
                .dropped
                .push((dropped.seq, dropped.scenario, dropped.severity));
        }
    }
}

/// Runs the plan on this machine to its end (or to a stop) and returns
/// what ran. `live` gets a snapshot after every arrival, start and
/// completion.
pub async fn run(
    plan: Plan,
    env: Arc<Environment>,
    confirmer: Arc<dyn Confirmer>,
    stop: watch::Receiver<Stop>,
    live: &watch::Sender<Snapshot>,
) -> Finished {
    let runner = Arc::new(LocalRunner {
        policy: plan.policy.clone(),
        env,
        confirmer,
    });
    run_with(plan, runner, stop, live).await
}

/// Runs the plan with `runner` doing each incident.
pub async fn run_with(
    plan: Plan,
    runner: Arc<dyn Runner>,
    mut stop: watch::Receiver<Stop>,
    live: &watch::Sender<Snapshot>,
) -> Finished {
    let concurrency = plan.info.concurrency.max(1);
    let run_id = plan.info.run_id.clone();
    let mut state = State {
        info: plan.info.clone(),
        start: Instant::now(),
        planned: plan.arrivals.len(),
        queue: Queue::new(plan.info.queue_limit),
        workers: vec![None; concurrency],
        arrived_at: HashMap::new(),
        generated: Vec::new(),
        records: Vec::new(),
        recent: VecDeque::new(),
        unfinished: Unfinished::default(),
        stopped: None,
        state: RunState::Running,
        last_done_s: 0.0,
    };
    let mut pending: VecDeque<Arrival> = plan.arrivals.into();
    let mut tasks: JoinSet<Outcome> = JoinSet::new();
    let mut running: HashMap<tokio::task::Id, Running> = HashMap::new();
    let mut stop_open = true;
    let mut drain_deadline: Option<Instant> = None;
    let mut level = Stop::Run;
    // A stop asked for before the run began counts like any other.
    let asked = *stop.borrow_and_update();
    if asked > level {
        level = asked;
        on_stop(&mut state, &mut pending, level);
    }
    loop {
        // Everything due has arrived (a batch arrives at once).
        if level == Stop::Run {
            while pending
                .front()
                .is_some_and(|a| state.start + secs(a.at_s) <= Instant::now())
            {
                let arrival = pending.pop_front().expect("front exists");
                state.arrive(arrival);
            }
            // Free workers take the most severe waiting incidents.
            while let Some(worker) = state.workers.iter().position(Option::is_none) {
                let Some(arrival) = state.queue.pop() else {
                    break;
                };
                let name = runner.name(arrival.seq, &arrival.scenario);
                let started_s = state.elapsed_s();
                let arrival_s = state.arrived_at.remove(&arrival.seq).unwrap_or(started_s);
                state.workers[worker] = Some(Active {
                    seq: arrival.seq,
                    incident: name.clone(),
                    scenario: arrival.scenario.clone(),
                    severity: arrival.severity,
                    started_s,
                });
                let handle = tasks.spawn(runner.run(name.clone(), arrival.scenario.clone()));
                running.insert(
                    handle.id(),
                    Running {
                        worker,
                        name,
                        arrival,
                        arrival_s,
                        started_s,
                    },
                );
            }
        }
        live.send_replace(state.snapshot());
        if running.is_empty()
            && (level != Stop::Run || (pending.is_empty() && state.queue.is_empty()))
        {
            break;
        }
        let next_arrival = pending
            .front()
            .filter(|_| level == Stop::Run)
            .map(|a| state.start + secs(a.at_s));
        tokio::select! {
            joined = tasks.join_next_with_id(), if !tasks.is_empty() => {
                let Some(joined) = joined else { continue };
                let (id, outcome) = match joined {
                    Ok((id, outcome)) => (id, Some(outcome)),
                    Err(e) => (e.id(), None),
                };
                let Some(done) = running.remove(&id) else { continue };
                state.workers[done.worker] = None;
                match outcome {
                    Some(outcome) => {
                        let finished_s = state.elapsed_s();
                        let record = record_of(&done, &outcome, &run_id, plan.links.as_ref(), finished_s);
                        state.last_done_s = state.elapsed_s();
                        state.recent.push_front(record.clone());
                        state.recent.truncate(RECENT);
                        state.records.push(record);
                    }
                    None => state.unfinished.aborted.push((
                        done.arrival.seq,
                        done.arrival.scenario,
                        done.arrival.severity,
                    )),
                }
            }
            _ = sleep_until_opt(next_arrival), if next_arrival.is_some() => {}
            changed = stop.changed(), if stop_open => {
                if changed.is_err() {
                    stop_open = false;
                    continue;
                }
                let asked = *stop.borrow_and_update();
                if asked > level {
                    level = asked;
                    on_stop(&mut state, &mut pending, level);
                    if level == Stop::Abort {
                        tasks.abort_all();
                    } else {
                        drain_deadline = Some(Instant::now() + plan.drain_timeout);
                    }
                }
            }
            _ = sleep_until_opt(drain_deadline), if drain_deadline.is_some() && level == Stop::Drain => {
                level = Stop::Abort;
                state.stopped = Some(format!(
                    "{} (running incidents aborted after the {:?} drain timeout)",
                    state.stopped.as_deref().unwrap_or("stop requested"),
                    plan.drain_timeout
                ));
                tasks.abort_all();
            }
        }
    }
    // Aborted tasks are dropped by now: their services stopped and roots removed.
    state.state = RunState::Done;
    if state.last_done_s == 0.0 {
        state.last_done_s = state.elapsed_s();
    }
    live.send_replace(state.snapshot());
    Finished {
        report: state.report(),
        records: state.records,
        unfinished: state.unfinished,
    }
}

fn on_stop(state: &mut State, pending: &mut VecDeque<Arrival>, level: Stop) {
    state.state = RunState::Draining;
    let not_arrived = pending.len();
    pending.clear();
    state.arrived_at.clear();
    for waiting in state.queue.clear() {
        state
            .unfinished
            .cancelled
            .push((waiting.seq, waiting.scenario, waiting.severity));
    }
    let what = match level {
        Stop::Abort => "stop: running incidents aborted",
        _ => "stop: running incidents finished, no new ones started",
    };
    state.stopped = Some(format!(
        "{what}; {} waiting cancelled, {not_arrived} planned arrivals not generated",
        state.unfinished.cancelled.len()
    ));
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// What one incident came to. Without a trajectory line (a cluster's
/// incident, or one whose line could not be made) the facts come from its
/// status, and its service time is its time to resolve, else the harness's
/// clock from start to end.
fn record_of(
    done: &Running,
    outcome: &Outcome,
    run_id: &str,
    links: Option<&TraceLinks>,
    finished_s: f64,
) -> IncidentRecord {
    let name = done.name.clone();
    let status = &outcome.status;
    let (facts, service_s, trace_key) = match &outcome.trajectory {
        Some(line) => (LineFacts::of(line), line.latency_s, line.trace_key.clone()),
        None => (
            LineFacts::of_status(status),
            status
                .time_to_resolve_seconds
                .unwrap_or((finished_s - done.started_s).max(0.0)),
            format!("{run_id}:{name}"),
        ),
    };
    let wait_s = (done.started_s - done.arrival_s).max(0.0);
    IncidentRecord {
        seq: done.arrival.seq,
        trace_url: links.and_then(|l| {
            l.render(LinkFields {
                run_id,
                incident_id: &name,
                trace_id: status.trace_id.as_deref(),
            })
        }),
        incident: name,
        scenario: done.arrival.scenario.clone(),
        severity: done.arrival.severity,
        worker: done.worker,
        arrival_s: done.arrival_s,
        started_s: done.started_s,
        wait_s,
        service_s,
        latency_s: wait_s + service_s,
        phase: status.phase,
        fixed: facts.fixed,
        steps: facts.steps,
        max_risk: facts.max_risk,
        refused: facts.refused,
        confirmations: facts.confirmations,
        fallback_used: facts.fallback_used,
        reason: status.reason.clone(),
        trace_key,
        record_error: outcome.record_error.clone(),
    }
}
