//! Sessions kept in memory: the operator without a cluster (local runs and
//! tests). Each incident has its session, its sandbox and its agent token.

use std::collections::HashMap;
use std::sync::Mutex;

use futures::future::BoxFuture;

use super::engine::{Access, Backend, BackendError};
use super::session::Session;
use crate::crd::ActionRecord;
use crate::protocol::IncidentKey;
use crate::workspace::Remote;

struct Entry {
    session: Session,
    remote: Remote,
    agent_token: String,
    records: Vec<ActionRecord>,
}

#[derive(Default)]
pub struct MemoryBackend {
    incidents: Mutex<HashMap<IncidentKey, Entry>>,
}

impl MemoryBackend {
    fn incidents(&self) -> std::sync::MutexGuard<'_, HashMap<IncidentKey, Entry>> {
        self.incidents.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn insert(&self, key: IncidentKey, session: Session, remote: Remote, agent_token: String) {
        self.incidents().insert(
            key,
            Entry {
                session,
                remote,
                agent_token,
                records: Vec::new(),
            },
        );
    }

    pub fn session(&self, key: &IncidentKey) -> Option<Session> {
        self.incidents().get(key).map(|e| e.session.clone())
    }

    /// Every step's record, oldest first.
    pub fn records(&self, key: &IncidentKey) -> Vec<ActionRecord> {
        self.incidents()
            .get(key)
            .map(|e| e.records.clone())
            .unwrap_or_default()
    }
}

impl Backend for MemoryBackend {
    fn load<'a>(
        &'a self,
        key: &'a IncidentKey,
    ) -> BoxFuture<'a, Result<Option<(Session, Remote)>, BackendError>> {
        let found = self
            .incidents()
            .get(key)
            .map(|e| (e.session.clone(), e.remote.clone()));
        Box::pin(async move { Ok(found) })
    }

    fn save<'a>(
        &'a self,
        key: &'a IncidentKey,
        session: &'a Session,
        records: &'a [ActionRecord],
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        let saved = match self.incidents().get_mut(key) {
            Some(entry) => {
                entry.session = session.clone();
                entry.records.extend_from_slice(records);
                Ok(())
            }
            None => Err(BackendError::NotFound(key.to_string())),
        };
        Box::pin(async move { saved })
    }

    fn authenticate<'a>(
        &'a self,
        key: &'a IncidentKey,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Access, BackendError>> {
        let incidents = self.incidents();
        let access = match incidents.get(key) {
            Some(entry) if crate::tokens::equal(token, &entry.agent_token) => Access::Granted,
            _ if incidents
                .values()
                .any(|e| crate::tokens::equal(token, &e.agent_token)) =>
            {
                Access::OtherIncident
            }
            None => Access::NoIncident,
            Some(_) => Access::Unknown,
        };
        Box::pin(async move { Ok(access) })
    }
}
