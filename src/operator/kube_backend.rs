//! Sessions kept where a cluster keeps state: the running episode in the
//! Incident's status (written with server-side apply under the operator's
//! one field manager), tokens in the Secrets the Incident owns, the
//! sandbox at its Pod's address.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource};
use serde_json::json;

use super::engine::{Access, Backend, BackendError};
use super::metrics::Metrics;
use super::objects::{self, Settings, TOKEN_KEY};
use super::session::Session;
use crate::agent::episode::Waiting;
use crate::crd::{ActionRecord, FIELD_MANAGER, Incident, IncidentStatus};
use crate::protocol::IncidentKey;
use crate::status::{self, Facts};
use crate::workspace::Remote;

/// How long one sandbox request may take: the longest command plus grace.
const SANDBOX_TIMEOUT: Duration = Duration::from_secs(60);

pub struct KubeBackend {
    client: Client,
    settings: Settings,
    metrics: Arc<Metrics>,
    recorder: Recorder,
}

fn unavailable(e: impl std::fmt::Display) -> BackendError {
    BackendError::Unavailable(e.to_string())
}

/// Writes `status` with server-side apply under the operator's field
/// manager (forced: the operator owns the status).
pub async fn write_status(
    client: &Client,
    key: &IncidentKey,
    status: &IncidentStatus,
) -> kube::Result<Incident> {
    let api: Api<Incident> = Api::namespaced(client.clone(), &key.namespace);
    let patch = json!({
        "apiVersion": Incident::api_version(&()),
        "kind": Incident::kind(&()),
        "metadata": {"name": key.name},
        "status": status,
    });
    api.patch_status(
        &key.name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
}

/// The token in a Secret the Incident owns, if it exists.
pub async fn token(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Option<String>, BackendError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = api.get_opt(name).await.map_err(unavailable)?;
    Ok(secret
        .and_then(|s| s.data)
        .and_then(|mut d| d.remove(TOKEN_KEY))
        .map(|bytes| String::from_utf8_lossy(&bytes.0).into_owned()))
}

impl KubeBackend {
    pub fn new(client: Client, settings: Settings, metrics: Arc<Metrics>) -> Self {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: FIELD_MANAGER.into(),
                instance: std::env::var("POD_NAME").ok(),
            },
        );
        Self {
            client,
            settings,
            metrics,
            recorder,
        }
    }

    async fn incident(&self, key: &IncidentKey) -> Result<Option<Incident>, BackendError> {
        let api: Api<Incident> = Api::namespaced(self.client.clone(), &key.namespace);
        api.get_opt(&key.name).await.map_err(unavailable)
    }

    /// The sandbox beside the incident's service.
    pub async fn remote(&self, key: &IncidentKey, uid: &str) -> Result<Remote, BackendError> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &key.namespace);
        let pod = pods
            .get_opt(&objects::pod_name(&key.name))
            .await
            .map_err(unavailable)?
            .ok_or_else(|| unavailable(format!("the scenario Pod of {key} is gone")))?;
        let ip = pod
            .status
            .and_then(|s| s.pod_ip)
            .ok_or_else(|| unavailable(format!("the scenario Pod of {key} has no address yet")))?;
        let token = token(
            &self.client,
            &key.namespace,
            &objects::sandbox_secret_name(&key.name),
        )
        .await?
        .ok_or_else(|| unavailable(format!("the sandbox token of {key} is gone")))?;
        Ok(Remote::new(
            format!("http://{ip}:{}", self.settings.sandbox_port),
            token,
            uid,
            SANDBOX_TIMEOUT,
        ))
    }
}

impl Backend for KubeBackend {
    fn load<'a>(
        &'a self,
        key: &'a IncidentKey,
    ) -> BoxFuture<'a, Result<Option<(Session, Remote)>, BackendError>> {
        Box::pin(async move {
            let Some(incident) = self.incident(key).await? else {
                return Ok(None);
            };
            let Some(session) = incident.status.as_ref().and_then(|s| s.session.clone()) else {
                return Ok(None);
            };
            let session: Session = serde_json::from_value(session)
                .map_err(|e| unavailable(format!("the session of {key} is unreadable: {e}")))?;
            let uid = incident.metadata.uid.clone().unwrap_or_default();
            Ok(Some((session, self.remote(key, &uid).await?)))
        })
    }

    fn save<'a>(
        &'a self,
        key: &'a IncidentKey,
        session: &'a Session,
        records: &'a [ActionRecord],
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            let incident = self
                .incident(key)
                .await?
                .ok_or_else(|| BackendError::NotFound(key.to_string()))?;
            let previous = incident.status.clone().unwrap_or_default();
            let mut all: Vec<ActionRecord> = previous.actions.clone();
            all.extend_from_slice(records);
            let facts = Facts {
                generation: incident.metadata.generation,
                now: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::now(),
                ),
                started_at: previous
                    .started_at
                    .clone()
                    .unwrap_or_else(|| status::time_from_ms(session.episode.started_at_ms)),
                fault: None,
                episode: Some(&session.episode),
                records: &all,
                verification: None,
                failure: None,
                agent: previous.agent.clone().unwrap_or_default(),
                containment: Some(&session.containment),
                undone: previous.undone.as_ref(),
            };
            let mut status = status::build(&previous, &facts);
            status.actions_omitted = merge_omitted(
                previous.actions_omitted.as_ref(),
                status.actions_omitted.take(),
            );
            status.session = Some(serde_json::to_value(session).map_err(unavailable)?);
            write_status(&self.client, key, &status)
                .await
                .map_err(unavailable)?;
            self.metrics.record_actions(&session.policy_name, records);
            let newly_waiting = match &session.episode.waiting {
                Waiting::Approval(approval) => previous
                    .pending_approval
                    .as_ref()
                    .is_none_or(|p| p.step != approval.step)
                    .then_some(approval),
                _ => None,
            };
            if let Some(approval) = newly_waiting {
                let event = Event {
                    type_: EventType::Normal,
                    reason: "ApprovalRequested".into(),
                    note: Some(format!(
                        "step {} `{}` [{}] waits: kubectl annotate incident {} {}={} (or {}={})",
                        approval.step,
                        approval.action.summary(),
                        approval.risk,
                        key.name,
                        super::annotations::APPROVE,
                        approval.step,
                        super::annotations::REJECT,
                        approval.step
                    )),
                    action: "Remediating".into(),
                    secondary: None,
                };
                let _ = self
                    .recorder
                    .publish(&event, &incident.object_ref(&()))
                    .await;
            }
            Ok(())
        })
    }

    fn authenticate<'a>(
        &'a self,
        key: &'a IncidentKey,
        presented: &'a str,
    ) -> BoxFuture<'a, Result<Access, BackendError>> {
        Box::pin(async move {
            let own = token(
                &self.client,
                &key.namespace,
                &objects::agent_secret_name(&key.name),
            )
            .await?;
            if own
                .as_deref()
                .is_some_and(|t| crate::tokens::equal(t, presented))
            {
                return Ok(Access::Granted);
            }
            // Another incident's agent token (in this namespace): forbidden
            // rather than unknown.
            let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &key.namespace);
            let agents = secrets
                .list(&ListParams::default().labels(&format!("{}=agent", objects::ROLE_LABEL)))
                .await
                .map_err(unavailable)?;
            let foreign = agents.items.iter().any(|s| {
                s.data
                    .as_ref()
                    .and_then(|d| d.get(TOKEN_KEY))
                    .is_some_and(|t| {
                        crate::tokens::equal(&String::from_utf8_lossy(&t.0), presented)
                    })
            });
            Ok(match (foreign, own.is_some()) {
                (true, _) => Access::OtherIncident,
                (false, false) => Access::NoIncident,
                (false, true) => Access::Unknown,
            })
        })
    }
}

/// The older summary of dropped actions combined with the newer one.
pub fn merge_omitted(
    older: Option<&crate::crd::OmittedActions>,
    newer: Option<crate::crd::OmittedActions>,
) -> Option<crate::crd::OmittedActions> {
    match (older, newer) {
        (None, newer) => newer,
        (Some(older), None) => Some(older.clone()),
        (Some(older), Some(newer)) => Some(crate::crd::OmittedActions {
            count: older.count + newer.count,
            first_step: older.first_step.min(newer.first_step),
            last_step: older.last_step.max(newer.last_step),
            denied: older.denied + newer.denied,
            rejected: older.rejected + newer.rejected,
            max_risk: older.max_risk.max(newer.max_risk),
        }),
    }
}
