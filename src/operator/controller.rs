//! The controller's I/O around the pure [`reconcile::decide`], in three
//! stages: [`observe`] (the Incident read afresh under its lock, its Policy
//! and owned objects from the watches' stores, the sidecar and the probe
//! where the phase needs them), decide, and apply (objects created, the
//! status written through the one [`StatusWriter`], calls into the engine).

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tracing::Instrument;

use super::backoff::Backoff;
use super::bounded::{API_TIMEOUT, ApiError, call};
use super::engine::{Engine, EngineError, PersonsAnswer};
use super::kube_backend::KubeBackend;
use super::metrics::Metrics;
use super::notify::deliver::Notifier;
use super::objects::{self, Settings};
use super::reconcile::{self, Create, EngineCall, JobView, Observed, PodView};
use super::session::Session;
use super::status_writer::{Change, StatusWriter};
use super::stores::{Stores, find};
use super::{recording, scorecard};
use crate::agent::driver::now_ms;
use crate::crd::conditions::{REASON_RECORDED, REASON_RECORDING_FAILED};
use crate::crd::{FIELD_MANAGER, Incident, IncidentPhase, Policy};
use crate::protocol::IncidentKey;
use crate::risk::DecidedBy;
use crate::scenario::Catalog;
use crate::trajectory::in_cluster;

pub struct Context {
    pub client: Client,
    pub settings: Settings,
    pub catalog: Catalog,
    pub engine: Arc<Engine>,
    pub backend: Arc<KubeBackend>,
    pub metrics: Arc<Metrics>,
    /// The one writer of Incident status (and its Events and metrics).
    pub writer: Arc<StatusWriter>,
    /// What the watches last saw (Incidents, Policies, owned objects): a
    /// reconcile observes from here, and a Policy's scorecard is computed
    /// from here, not from a LIST per reconcile.
    pub stores: Stores,
    pub backoff: Backoff<IncidentKey>,
    /// Policies by namespace and name.
    pub policy_backoff: Backoff<IncidentKey>,
    /// Sends the notices incidents owe their Policies' webhooks.
    pub notifier: Option<Arc<Notifier>>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("the operator's caches did not fill within {}s (can it list and watch?)", .0.as_secs())]
    CachesNotReady(Duration),
    #[error("{0}")]
    Engine(#[from] EngineError),
}

pub fn key_of(incident: &Incident) -> IncidentKey {
    IncidentKey {
        namespace: incident.namespace().unwrap_or_default(),
        name: incident.name_any(),
    }
}

fn pod_view(pod: &Pod) -> PodView {
    let status = pod.status.clone().unwrap_or_default();
    let ready = status
        .conditions
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    let terminated = status
        .container_statuses
        .unwrap_or_default()
        .into_iter()
        .find_map(|c| {
            let t = c.state?.terminated?;
            Some(format!(
                "container {} exited {} ({})",
                c.name,
                t.exit_code,
                t.reason.unwrap_or_default()
            ))
        });
    let failed = match status.phase.as_deref() {
        Some("Failed") => Some(status.message.unwrap_or_else(|| "the Pod failed".into())),
        _ => terminated,
    };
    PodView {
        ip: status.pod_ip,
        ready,
        failed,
    }
}

fn job_view(job: &Job) -> JobView {
    let failed = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|conditions| {
            conditions
                .iter()
                .find(|c| c.type_ == "Failed" && c.status == "True")
                .map(|c| c.message.clone().unwrap_or_else(|| "the Job failed".into()))
        });
    JobView { failed }
}

async fn create<K>(api: Api<K>, object: &K) -> Result<(), Error>
where
    K: Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match call(api.create(&PostParams::default(), object))
        .await
        .map_err(Error::from)
    {
        Ok(_) => Ok(()),
        // Created already (by a reconcile the watch has not shown yet).
        Err(Error::Api(ApiError::Kube(kube::Error::Api(e)))) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// How long a reconcile waits for the watches' first lists.
const CACHES_WAIT: Duration = Duration::from_secs(30);

/// Times one reconcile, however it ends.
struct ReconcileTimer<'a> {
    started: Instant,
    metrics: &'a Metrics,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics
            .reconcile_duration
            .observe(self.started.elapsed().as_secs_f64());
    }
}

pub async fn reconcile(incident: Arc<Incident>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ReconcileTimer {
        started: Instant::now(),
        metrics: &ctx.metrics,
    };
    let key = key_of(&incident);
    let phase = incident
        .status
        .as_ref()
        .map(|s| s.phase)
        .unwrap_or_default();
    // A finished incident's reconciles change nothing: a debug span, which
    // is logged at debug level and never exported (see cli::logging).
    let span = if phase.is_terminal() {
        tracing::debug_span!("reconcile", incident = %key, phase = %phase)
    } else {
        tracing::info_span!(
            "reconcile",
            incident = %key,
            policy = %incident.spec.policy_ref.name,
            phase = %phase,
        )
    };
    if let Some(uid) = incident.metadata.uid.as_deref() {
        crate::telemetry::adopt_incident(&span, uid);
    }
    // Decide nothing on a partial view: a Pod the watch has not listed yet
    // is not a Pod gone.
    if !ctx.stores.ready_within(CACHES_WAIT).await {
        return Err(Error::CachesNotReady(CACHES_WAIT));
    }
    let result = reconcile_locked(&key, &ctx).instrument(span).await;
    if result.is_ok() {
        ctx.backoff.succeeded(&key);
    }
    result
}

/// What one reconcile saw: the Incident read afresh, everything else from
/// the watches' stores, and what the incident's own processes answered.
struct Observation {
    policy: Option<Arc<Policy>>,
    pod: Option<PodView>,
    job: Option<JobView>,
    has_agent_secret: bool,
    has_sandbox_secret: bool,
    session: Option<Session>,
    probe: Option<(crate::crd::Verification, String)>,
    containment: Option<crate::sandbox::Containment>,
    now: Time,
    now_ms: u64,
}

impl Observation {
    fn observed<'a>(
        &'a self,
        incident: &'a Incident,
        catalog: &'a Catalog,
        settings: &Settings,
    ) -> Observed<'a> {
        Observed {
            incident,
            policy: self.policy.as_deref(),
            catalog,
            pod: self.pod.as_ref(),
            job: self.job.as_ref(),
            has_agent_secret: self.has_agent_secret,
            has_sandbox_secret: self.has_sandbox_secret,
            session: self.session.as_ref(),
            probe: self.probe.as_ref(),
            containment: self.containment.as_ref(),
            approver_from_admission: settings.approver_from_admission,
            now: self.now.clone(),
            now_ms: self.now_ms,
        }
    }
}

/// Gathers what the incident needs decided on: its owned objects from
/// the stores, its Policy (read afresh until the episode pins it: a Policy
/// tightened a moment ago must not be pinned as it was), the sidecar's
/// containment while provisioning, and the service's health when the phase
/// asks for a probe.
async fn observe(
    ctx: &Context,
    key: &IncidentKey,
    incident: &Incident,
) -> Result<Observation, Error> {
    let stores = &ctx.stores;
    let ns = &key.namespace;
    let session: Option<Session> = incident
        .status
        .as_ref()
        .and_then(|s| s.session.clone())
        .and_then(|v| serde_json::from_value(v).ok());
    let policy_name = &incident.spec.policy_ref.name;
    let policy = match &session {
        Some(_) => find(&stores.policies, ns, policy_name),
        None => {
            let policies: Api<Policy> = Api::namespaced(ctx.client.clone(), ns);
            call(policies.get_opt(policy_name)).await?.map(Arc::new)
        }
    };
    let pod = find(&stores.pods, ns, &objects::pod_name(&key.name)).map(|p| pod_view(&p));
    let job = find(&stores.jobs, ns, &objects::job_name(&key.name)).map(|j| job_view(&j));
    let has_agent_secret =
        find(&stores.secrets, ns, &objects::agent_secret_name(&key.name)).is_some();
    let has_sandbox_secret = find(
        &stores.secrets,
        ns,
        &objects::sandbox_secret_name(&key.name),
    )
    .is_some();
    let phase = incident
        .status
        .as_ref()
        .map(|s| s.phase)
        .unwrap_or_default();
    let ready = pod.as_ref().is_some_and(|p| p.ready && p.ip.is_some());
    let containment = if phase == IncidentPhase::Provisioning && ready {
        let uid = incident.metadata.uid.clone().unwrap_or_default();
        match ctx.backend.remote(key, &uid) {
            Ok(remote) => remote.containment().await.ok(),
            Err(_) => None,
        }
    } else {
        None
    };
    let probe = match reconcile::needs_probe(incident, session.as_ref(), pod.as_ref()) {
        Some(consecutive) => {
            let ip = pod.as_ref().and_then(|p| p.ip.clone()).unwrap_or_default();
            let path = ctx
                .catalog
                .get(&incident.spec.scenario)
                .map(|s| s.verify.path.clone())
                .unwrap_or_else(|_| "/health".into());
            match ip.parse::<std::net::IpAddr>() {
                Ok(ip) => {
                    let address = std::net::SocketAddr::new(ip, ctx.settings.service_port);
                    Some(crate::verify::probe(address, &path, consecutive).await)
                }
                Err(_) => None,
            }
        }
        None => None,
    };
    Ok(Observation {
        policy,
        pod,
        job,
        has_agent_secret,
        has_sandbox_secret,
        session,
        probe,
        containment,
        now: Time(k8s_openapi::jiff::Timestamp::now()),
        now_ms: now_ms(),
    })
}

async fn reconcile_locked(key: &IncidentKey, ctx: &Context) -> Result<Action, Error> {
    let incidents: Api<Incident> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let (plan, incident, observation) = {
        let _exclusive = ctx.engine.exclusive(key).await;
        // Read afresh: a status the engine just wrote is never overwritten
        // with an older one from the store.
        let Some(incident) = call(incidents.get_opt(&key.name)).await? else {
            ctx.engine.forget(key);
            if let Some(notifier) = &ctx.notifier {
                notifier.forget(key);
            }
            return Ok(Action::await_change());
        };
        let observation = observe(ctx, key, &incident).await?;
        let plan = reconcile::decide(&observation.observed(&incident, &ctx.catalog, &ctx.settings));
        apply_objects(ctx, key, &incident, &plan, &observation).await?;
        let pinned = pinned(&plan);
        let change = Change::Planned {
            status: plan.status.clone().map(Box::new),
            pinned: pinned.as_ref(),
            events: plan.events.clone(),
        };
        ctx.writer.write(&incident, change).await?;
        (plan, incident, observation)
    };
    if let Some(notifier) = &ctx.notifier {
        // The Policy as the incident pinned it, like everything else; one
        // that never started (it failed before) follows the Policy as it
        // is, but only while it has not ended: webhooks added to a Policy
        // later are not sent its old failures.
        let ended_before = incident
            .status
            .as_ref()
            .is_some_and(|s| s.phase.is_terminal());
        let spec = observation
            .session
            .as_ref()
            .map(|s| &s.policy)
            .or(observation
                .policy
                .as_ref()
                .filter(|_| !ended_before)
                .map(|p| &p.spec));
        if let Some(spec) = spec {
            let mut current = incident.clone();
            if let Some(status) = &plan.status {
                current.status = Some(status.clone());
            }
            notifier.dispatch(&current, &spec.notify);
        }
    }
    apply_engine_calls(ctx, key, &plan).await?;
    if let (true, Some(session)) = (plan.record, &observation.session) {
        record(ctx, key, &incident, session, observation.policy.as_deref()).await?;
    }
    Ok(match plan.requeue {
        Some(after) => Action::requeue(after),
        None => Action::requeue(Duration::from_secs(300)),
    })
}

/// The session the plan starts the episode with, if it starts it now.
fn pinned(plan: &reconcile::Plan) -> Option<Session> {
    plan.engine.iter().find_map(|call| match call {
        EngineCall::Start(session) => Some(session.as_ref().clone()),
        _ => None,
    })
}

/// Creates the objects the plan asks for. They follow the Policy the
/// incident pinned when it started (now, or earlier), never an edit made
/// since.
async fn apply_objects(
    ctx: &Context,
    key: &IncidentKey,
    incident: &Incident,
    plan: &reconcile::Plan,
    observation: &Observation,
) -> Result<(), Error> {
    let ns = &key.namespace;
    let spec = pinned(plan)
        .as_ref()
        .or(observation.session.as_ref())
        .map(|s| s.policy.clone())
        .or_else(|| observation.policy.as_ref().map(|p| p.spec.clone()))
        .unwrap_or_default();
    for object in &plan.create {
        match object {
            Create::AgentSecret | Create::SandboxSecret => {
                let (name, role) = if *object == Create::AgentSecret {
                    (objects::agent_secret_name(&key.name), "agent")
                } else {
                    (objects::sandbox_secret_name(&key.name), "sandbox")
                };
                let secret =
                    objects::token_secret(incident, name, role, &crate::tokens::generate());
                create(Api::<Secret>::namespaced(ctx.client.clone(), ns), &secret).await?;
            }
            Create::ScenarioPod => {
                let pod = objects::scenario_pod(incident, &spec, &ctx.settings);
                create(Api::<Pod>::namespaced(ctx.client.clone(), ns), &pod).await?;
            }
            Create::AgentJob => {
                let job = objects::agent_job(incident, &spec, &ctx.settings);
                create(Api::<Job>::namespaced(ctx.client.clone(), ns), &job).await?;
            }
        }
    }
    Ok(())
}

async fn apply_engine_calls(
    ctx: &Context,
    key: &IncidentKey,
    plan: &reconcile::Plan,
) -> Result<(), Error> {
    for call in &plan.engine {
        match call {
            EngineCall::Start(_) => {}
            EngineCall::Answer {
                step,
                approved,
                approver,
            } => {
                let answer = PersonsAnswer {
                    step: *step,
                    approved: *approved,
                    by: DecidedBy::Annotation,
                    approver: Some(approver.clone()),
                    action_hash: None,
                };
                ctx.engine.answer(key, answer).await?;
            }
            EngineCall::Tick => ctx.engine.tick(key).await?,
            EngineCall::Tighten(level) => {
                ctx.engine.tighten(key, *level).await?;
            }
            EngineCall::Undo(step) => undo(ctx, key, *step).await?,
        }
    }
    Ok(())
}

/// Restores the root through the sandbox and records what was restored.
async fn undo(ctx: &Context, key: &IncidentKey, step: u32) -> Result<(), Error> {
    let answer = ctx.engine.undo(key, step).await;
    let _exclusive = ctx.engine.exclusive(key).await;
    let incidents: Api<Incident> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let Some(incident) = call(incidents.get_opt(&key.name)).await? else {
        return Ok(());
    };
    let change = Change::Undone {
        before_step: step,
        answer: answer.map_err(|e| e.to_string()),
    };
    ctx.writer.write(&incident, change).await?;
    Ok(())
}

/// How long a finished incident's sandbox may take to hand over its journal.
const HISTORY_TIMEOUT: Duration = Duration::from_secs(5);

/// Records the finished incident's trajectory in its Policy's ring, with
/// what came back from the sandbox's journal while the sandbox is there,
/// and says in a condition whether it worked.
async fn record(
    ctx: &Context,
    key: &IncidentKey,
    incident: &Incident,
    session: &Session,
    policy: Option<&Policy>,
) -> Result<(), Error> {
    let uid = incident.metadata.uid.clone().unwrap_or_default();
    // Briefly: a sandbox that does not answer must not hold a reconcile
    // worker; the line is then kept without what came back.
    let history = match ctx.backend.remote(key, &uid) {
        Ok(remote) => remote
            .with_timeout(HISTORY_TIMEOUT)
            .history()
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let line = recording::line_of(incident, session, history.as_deref().unwrap_or_default());
    let ring_key = recording::key_of(incident);
    // The ring belongs to the Policy and goes with it: with the Policy
    // gone there is nothing to keep the line beside (and no optimizer
    // that would read it).
    let recorded = match policy.filter(|p| p.name_any() == session.policy_name) {
        None => Err(format!(
            "Policy {} no longer exists: its trajectory ring goes with it",
            session.policy_name
        )),
        Some(policy) => {
            let recording =
                in_cluster::record(&ctx.client, &key.namespace, policy, &ring_key, &line);
            // A read and a replace, retried on conflicts: a few API calls' worth.
            match tokio::time::timeout(4 * API_TIMEOUT, recording).await {
                Ok(recorded) => recorded.map_err(|e| e.to_string()),
                Err(_) => Err(format!(
                    "the Kubernetes API did not answer within {}s",
                    (4 * API_TIMEOUT).as_secs()
                )),
            }
        }
    };
    let (ok, reason, message) = match (&recorded, &history) {
        (Ok(name), Ok(_)) => (true, REASON_RECORDED, format!("in ConfigMap {name}")),
        (Ok(name), Err(why)) => (
            true,
            REASON_RECORDED,
            format!("in ConfigMap {name}, without what came back (the sandbox's journal: {why})"),
        ),
        (Err(e), _) => (false, REASON_RECORDING_FAILED, e.clone()),
    };
    let _exclusive = ctx.engine.exclusive(key).await;
    let incidents: Api<Incident> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let Some(fresh) = call(incidents.get_opt(&key.name)).await? else {
        return Ok(());
    };
    let change = Change::Recorded {
        ok,
        reason,
        message,
    };
    ctx.writer.write(&fresh, change).await?;
    Ok(())
}

/// A failed reconcile is retried after its own incident's backoff.
pub fn error_policy(incident: Arc<Incident>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_errors.inc();
    let key = key_of(&incident);
    let retry = ctx.backoff.failed(&key);
    tracing::warn!(incident = %key, retry_s = retry.as_secs(), "reconcile failed: {error}");
    Action::requeue(retry)
}

/// Keeps a Policy's status a scorecard of the incidents that follow it.
pub async fn reconcile_policy(policy: Arc<Policy>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = policy.namespace().unwrap_or_default();
    let name = policy.name_any();
    let following: Vec<Incident> = ctx
        .stores
        .incidents
        .state()
        .iter()
        .filter(|i| i.namespace().as_deref() == Some(ns.as_str()) && i.spec.policy_ref.name == name)
        .map(|i| i.as_ref().clone())
        .collect();
    let status = scorecard::policy_status(policy.metadata.generation, &following);
    if policy.status.as_ref() != Some(&status) {
        let policies: Api<Policy> = Api::namespaced(ctx.client.clone(), &ns);
        let patch = json!({
            "apiVersion": Policy::api_version(&()),
            "kind": Policy::kind(&()),
            "metadata": {"name": name},
            "status": status,
        });
        call(policies.patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        ))
        .await?;
    }
    ctx.policy_backoff.succeeded(&policy_key(&policy));
    Ok(Action::requeue(Duration::from_secs(300)))
}

fn policy_key(policy: &Policy) -> IncidentKey {
    IncidentKey {
        namespace: policy.namespace().unwrap_or_default(),
        name: policy.name_any(),
    }
}

pub fn policy_error_policy(policy: Arc<Policy>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_errors.inc();
    let key = policy_key(&policy);
    let retry = ctx.policy_backoff.failed(&key);
    tracing::warn!(policy = %key, retry_s = retry.as_secs(), "policy reconcile failed: {error}");
    Action::requeue(retry)
}

#[cfg(test)]
mod tests;
