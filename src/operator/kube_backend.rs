//! Sessions kept where a cluster keeps state: the running episode in the
//! Incident's status (through the one [`StatusWriter`]), tokens in the
//! Secrets the Incident owns, the sandbox at its Pod's address.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Client;
use kube::api::{Api, ListParams};

use super::engine::{Access, Backend, BackendError};
use super::objects::{self, Settings, TOKEN_KEY};
use super::session::Session;
use super::status_writer::{Change, StatusWriter};
use crate::crd::{ActionRecord, Incident};
use crate::protocol::IncidentKey;
use crate::workspace::Remote;

/// How long one sandbox request may take: the longest command plus grace.
const SANDBOX_TIMEOUT: Duration = Duration::from_secs(60);

pub struct KubeBackend {
    client: Client,
    settings: Settings,
    writer: Arc<StatusWriter>,
}

fn unavailable(e: impl std::fmt::Display) -> BackendError {
    BackendError::Unavailable(e.to_string())
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
    pub fn new(client: Client, settings: Settings, writer: Arc<StatusWriter>) -> Self {
        Self {
            client,
            settings,
            writer,
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
            self.writer
                .write(&incident, Change::Steps { session, records })
                .await
                .map_err(unavailable)
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
