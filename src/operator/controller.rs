//! The controller's I/O around the pure [`decide`]: it gathers what the
//! cluster and the incident's own processes say, reconciles, and carries
//! the plan out (objects, status, events, calls into the engine). Under
//! the incident's lock the Incident is read afresh, so a status the engine
//! just wrote is never overwritten with an older one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use super::engine::{Engine, EngineError};
use super::kube_backend::KubeBackend;
use super::metrics::Metrics;
use super::objects::{self, Settings};
use super::reconcile::{self, Create, EngineCall, JobView, Observed, PodView};
use super::session::Session;
use super::status_writer::{Change, StatusWriter};
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
    /// Every Incident the operator watches, as its watch last saw them:
    /// a Policy's scorecard is computed from here, not from a LIST per
    /// reconcile.
    pub incidents: Store<Incident>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
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

async fn create<K>(api: Api<K>, object: &K) -> Result<(), kube::Error>
where
    K: Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.create(&PostParams::default(), object).await {
        Ok(_) => Ok(()),
        // Created already (by a reconcile the watch has not shown yet).
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

pub async fn reconcile(incident: Arc<Incident>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let key = key_of(&incident);
    let result = reconcile_locked(&key, &ctx).await;
    ctx.metrics
        .reconcile_duration
        .observe(started.elapsed().as_secs_f64());
    result
}

async fn reconcile_locked(key: &IncidentKey, ctx: &Context) -> Result<Action, Error> {
    let client = &ctx.client;
    let ns = &key.namespace;
    let incidents: Api<Incident> = Api::namespaced(client.clone(), ns);
    let (plan, incident, session, policy) = {
        let _exclusive = ctx.engine.exclusive(key).await;
        let Some(incident) = incidents.get_opt(&key.name).await? else {
            ctx.engine.forget(key);
            return Ok(Action::await_change());
        };
        let policies: Api<Policy> = Api::namespaced(client.clone(), ns);
        let policy = policies.get_opt(&incident.spec.policy_ref.name).await?;
        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        let pod = pods
            .get_opt(&objects::pod_name(&key.name))
            .await?
            .map(|p| pod_view(&p));
        let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
        let job = jobs
            .get_opt(&objects::job_name(&key.name))
            .await?
            .map(|j| job_view(&j));
        let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
        let has_agent_secret = secrets
            .get_opt(&objects::agent_secret_name(&key.name))
            .await?
            .is_some();
        let has_sandbox_secret = secrets
            .get_opt(&objects::sandbox_secret_name(&key.name))
            .await?
            .is_some();
        let session: Option<Session> = incident
            .status
            .as_ref()
            .and_then(|s| s.session.clone())
            .and_then(|v| serde_json::from_value(v).ok());
        let phase = incident
            .status
            .as_ref()
            .map(|s| s.phase)
            .unwrap_or_default();
        let ready = pod.as_ref().is_some_and(|p| p.ready && p.ip.is_some());
        let containment = if phase == IncidentPhase::Provisioning && ready {
            let uid = incident.metadata.uid.clone().unwrap_or_default();
            match ctx.backend.remote(key, &uid).await {
                Ok(remote) => remote.containment().await.ok(),
                Err(_) => None,
            }
        } else {
            None
        };
        let probe = match reconcile::needs_probe(&incident, session.as_ref(), pod.as_ref()) {
            Some(consecutive) => {
                let ip = pod.as_ref().and_then(|p| p.ip.clone()).unwrap_or_default();
                let path = ctx
                    .catalog
                    .get(&incident.spec.scenario)
                    .map(|s| s.verify.path.clone())
                    .unwrap_or_else(|_| "/health".into());
                match format!("{ip}:{}", ctx.settings.service_port).parse() {
                    Ok(address) => Some(crate::verify::probe(address, &path, consecutive).await),
                    Err(_) => None,
                }
            }
            None => None,
        };
        let now_ms = now_ms();
        let observed = Observed {
            incident: &incident,
            policy: policy.as_ref(),
            catalog: &ctx.catalog,
            pod: pod.as_ref(),
            job: job.as_ref(),
            has_agent_secret,
            has_sandbox_secret,
            session: session.as_ref(),
            probe: probe.as_ref(),
            containment: containment.as_ref(),
            now: Time(k8s_openapi::jiff::Timestamp::now()),
            now_ms,
        };
        let plan = reconcile::decide(&observed);
        let pinned = plan.engine.iter().find_map(|call| match call {
            EngineCall::Start(session) => Some(session.as_ref().clone()),
            _ => None,
        });
        // Objects follow the Policy the incident pinned when it started
        // (now, or earlier), never an edit made since.
        let spec = pinned
            .as_ref()
            .or(session.as_ref())
            .map(|s| s.policy.clone())
            .or_else(|| policy.as_ref().map(|p| p.spec.clone()))
            .unwrap_or_default();
        for object in &plan.create {
            match object {
                Create::AgentSecret => {
                    let secret = objects::token_secret(
                        &incident,
                        objects::agent_secret_name(&key.name),
                        "agent",
                        &crate::tokens::generate(),
                    );
                    create(secrets.clone(), &secret).await?;
                }
                Create::SandboxSecret => {
                    let secret = objects::token_secret(
                        &incident,
                        objects::sandbox_secret_name(&key.name),
                        "sandbox",
                        &crate::tokens::generate(),
                    );
                    create(secrets.clone(), &secret).await?;
                }
                Create::ScenarioPod => {
                    create(
                        pods.clone(),
                        &objects::scenario_pod(&incident, &spec, &ctx.settings),
                    )
                    .await?;
                }
                Create::AgentJob => {
                    create(
                        jobs.clone(),
                        &objects::agent_job(&incident, &spec, &ctx.settings),
                    )
                    .await?;
                }
            }
        }
        let change = Change::Planned {
            status: plan.status.clone().map(Box::new),
            pinned: pinned.as_ref(),
            events: plan.events.clone(),
        };
        ctx.writer.write(&incident, change).await?;
        (plan, incident, session, policy)
    };
    for call in &plan.engine {
        match call {
            EngineCall::Start(_) => {}
            EngineCall::Answer { step, approved } => {
                ctx.engine
                    .answer(key, *step, *approved, DecidedBy::Annotation)
                    .await?;
            }
            EngineCall::Tick => ctx.engine.tick(key).await?,
            EngineCall::Tighten(level) => {
                ctx.engine.tighten(key, *level).await?;
            }
            EngineCall::Undo(step) => undo(ctx, key, *step).await?,
        }
    }
    if let (true, Some(session)) = (plan.record, &session) {
        record(ctx, key, &incident, session, policy.as_ref()).await?;
    }
    Ok(match plan.requeue {
        Some(after) => Action::requeue(after),
        None => Action::requeue(Duration::from_secs(300)),
    })
}

/// Restores the root through the sandbox and records what was restored.
async fn undo(ctx: &Context, key: &IncidentKey, step: u32) -> Result<(), Error> {
    let answer = ctx.engine.undo(key, step).await;
    let _exclusive = ctx.engine.exclusive(key).await;
    let incidents: Api<Incident> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let Some(incident) = incidents.get_opt(&key.name).await? else {
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
    let history = match ctx.backend.remote(key, &uid).await {
        Ok(remote) => remote
            .with_timeout(HISTORY_TIMEOUT)
            .history()
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let line = recording::line_of(incident, session, history.as_deref().unwrap_or_default());
    let recorded = in_cluster::record(
        &ctx.client,
        &key.namespace,
        &session.policy_name,
        policy.filter(|p| p.name_any() == session.policy_name),
        &recording::key_of(incident),
        &line,
    )
    .await;
    let (ok, reason, message) = match (&recorded, &history) {
        (Ok(name), Ok(_)) => (true, REASON_RECORDED, format!("in ConfigMap {name}")),
        (Ok(name), Err(why)) => (
            true,
            REASON_RECORDED,
            format!("in ConfigMap {name}, without what came back (the sandbox's journal: {why})"),
        ),
        (Err(e), _) => (false, REASON_RECORDING_FAILED, e.to_string()),
    };
    let _exclusive = ctx.engine.exclusive(key).await;
    let incidents: Api<Incident> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let Some(fresh) = incidents.get_opt(&key.name).await? else {
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

pub fn error_policy(_: Arc<Incident>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_errors.inc();
    eprintln!("reconcile failed: {error}");
    Action::requeue(Duration::from_secs(5))
}

/// Keeps a Policy's status a scorecard of the incidents that follow it.
pub async fn reconcile_policy(policy: Arc<Policy>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = policy.namespace().unwrap_or_default();
    let name = policy.name_any();
    let following: Vec<Incident> = ctx
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
        policies
            .patch_status(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await?;
    }
    Ok(Action::requeue(Duration::from_secs(300)))
}

pub fn policy_error_policy(_: Arc<Policy>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_errors.inc();
    eprintln!("policy reconcile failed: {error}");
    Action::requeue(Duration::from_secs(10))
}

#[cfg(test)]
mod tests;
