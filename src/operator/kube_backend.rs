//! Sessions kept where a cluster keeps state: the running episode in the
//! Incident's status (through the one [`StatusWriter`]), tokens in the
//! Secrets the Incident owns, the sandbox at its Pod's address.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::{Client, ResourceExt};

use super::bounded::call;
use super::engine::{Access, Backend, BackendError};
use super::objects::{self, Settings, TOKEN_KEY};
use super::session::Session;
use super::status_writer::{Change, StatusWriter};
use super::stores::{Stores, find};
use crate::crd::{ActionRecord, Incident};
use crate::protocol::IncidentKey;
use crate::workspace::Remote;

/// How long a step waits for the operator's caches after a start.
const CACHES_WAIT: Duration = Duration::from_secs(5);

/// How long one sandbox request may take: the longest command plus grace.
const SANDBOX_TIMEOUT: Duration = Duration::from_secs(60);

pub struct KubeBackend {
    client: Client,
    settings: Settings,
    writer: Arc<StatusWriter>,
    /// Pods and Secrets as the watches saw them: a step reads no object
    /// from the API but its Incident.
    stores: Stores,
}

fn unavailable(e: impl std::fmt::Display) -> BackendError {
    BackendError::Unavailable(e.to_string())
}

/// `ip:port`, with an IPv6 address in brackets.
fn pod_address(ip: &str, port: u16) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(ip) => std::net::SocketAddr::new(ip, port).to_string(),
        Err(_) => format!("{ip}:{port}"),
    }
}

/// The token a Secret holds, if it holds one.
fn token_of(secret: &Secret) -> Option<String> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(TOKEN_KEY))
        .map(|bytes| String::from_utf8_lossy(&bytes.0).into_owned())
}

impl KubeBackend {
    pub fn new(
        client: Client,
        settings: Settings,
        writer: Arc<StatusWriter>,
        stores: Stores,
    ) -> Self {
        Self {
            client,
            settings,
            writer,
            stores,
        }
    }

    async fn incident(&self, key: &IncidentKey) -> Result<Option<Incident>, BackendError> {
        let api: Api<Incident> = Api::namespaced(self.client.clone(), &key.namespace);
        call(api.get_opt(&key.name)).await.map_err(unavailable)
    }

    async fn caches_ready(&self) -> Result<(), BackendError> {
        if self.stores.ready_within(CACHES_WAIT).await {
            Ok(())
        } else {
            Err(unavailable(
                "the operator is still reading the cluster; try again",
            ))
        }
    }

    /// The sandbox beside the incident's service.
    pub fn remote(&self, key: &IncidentKey, uid: &str) -> Result<Remote, BackendError> {
        let pod = find(
            &self.stores.pods,
            &key.namespace,
            &objects::pod_name(&key.name),
        )
        .ok_or_else(|| unavailable(format!("the scenario Pod of {key} is gone")))?;
        let ip = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .ok_or_else(|| unavailable(format!("the scenario Pod of {key} has no address yet")))?;
        let token = find(
            &self.stores.secrets,
            &key.namespace,
            &objects::sandbox_secret_name(&key.name),
        )
        .and_then(|secret| token_of(&secret))
        .ok_or_else(|| unavailable(format!("the sandbox token of {key} is gone")))?;
        Ok(Remote::new(
            format!("http://{}", pod_address(&ip, self.settings.sandbox_port)),
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
            self.caches_ready().await?;
            let Some(incident) = self.incident(key).await? else {
                return Ok(None);
            };
            let Some(session) = incident.status.as_ref().and_then(|s| s.session.clone()) else {
                return Ok(None);
            };
            let session: Session = serde_json::from_value(session)
                .map_err(|e| unavailable(format!("the session of {key} is unreadable: {e}")))?;
            let uid = incident.metadata.uid.clone().unwrap_or_default();
            Ok(Some((session, self.remote(key, &uid)?)))
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
            self.caches_ready().await?;
            let own = find(
                &self.stores.secrets,
                &key.namespace,
                &objects::agent_secret_name(&key.name),
            )
            .and_then(|secret| token_of(&secret));
            if own
                .as_deref()
                .is_some_and(|t| crate::tokens::equal(t, presented))
            {
                return Ok(Access::Granted);
            }
            // Another incident's agent token (in this namespace): forbidden
            // rather than unknown.
            let foreign = self.stores.secrets.state().iter().any(|secret| {
                secret.metadata.namespace.as_deref() == Some(key.namespace.as_str())
                    && secret
                        .labels()
                        .get(objects::ROLE_LABEL)
                        .is_some_and(|role| role == "agent")
                    && token_of(secret).is_some_and(|t| crate::tokens::equal(&t, presented))
            });
            Ok(match (foreign, own.is_some()) {
                (true, _) => Access::OtherIncident,
                (false, false) => Access::NoIncident,
                (false, true) => Access::Unknown,
            })
        })
    }
}
