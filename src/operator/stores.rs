//! What the operator's watches last saw: the Incidents, the Policies and
//! the objects Incidents own (Pods, Jobs, Secrets). A reconcile observes
//! from here instead of asking the API server; only the Incident itself
//! is read afresh, under its lock, because its status is what gets
//! written back.

use std::sync::Arc;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Resource;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher;

use crate::crd::{Incident, Policy};

#[derive(Clone)]
pub struct Stores {
    pub incidents: Store<Incident>,
    pub policies: Store<Policy>,
    pub pods: Store<Pod>,
    pub jobs: Store<Job>,
    pub secrets: Store<Secret>,
}

/// The object `name` in `namespace`, as the watch last saw it.
pub fn find<K>(store: &Store<K>, namespace: &str, name: &str) -> Option<Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store.get(&ObjectRef::new(name).within(namespace))
}

impl Stores {
    /// Stores that already hold these objects (tests and benchmarks: as a
    /// watch's first list would fill them).
    pub fn holding(
        incidents: Vec<Incident>,
        policies: Vec<Policy>,
        pods: Vec<Pod>,
        jobs: Vec<Job>,
        secrets: Vec<Secret>,
    ) -> Self {
        Self {
            incidents: filled(incidents),
            policies: filled(policies),
            pods: filled(pods),
            jobs: filled(jobs),
            secrets: filled(secrets),
        }
    }

    /// Whether every watch has listed once: before that an absent object
    /// may only not have been seen yet.
    pub async fn wait_until_ready(&self) -> Result<(), reflector::store::WriterDropped> {
        self.incidents.wait_until_ready().await?;
        self.policies.wait_until_ready().await?;
        self.pods.wait_until_ready().await?;
        self.jobs.wait_until_ready().await?;
        self.secrets.wait_until_ready().await
    }
}

impl Stores {
    /// Whether every watch has listed once within `wait`.
    pub async fn ready_within(&self, wait: std::time::Duration) -> bool {
        matches!(
            tokio::time::timeout(wait, self.wait_until_ready()).await,
            Ok(Ok(()))
        )
    }
}

/// What a store keeps of an object: what a reconcile reads, nothing else
/// (a Pod's or Job's spec is the operator's own and never read back; the
/// server's field bookkeeping is never read at all). A thousand incidents'
/// objects then cost a fraction of their full size.
pub trait Keep {
    fn keep_what_is_read(&mut self);
}

/// The Incident store serves the Policy scorecards and the approval
/// gauges; a reconcile reads its Incident afresh, so the episode and the
/// action records (most of a status) are not kept here.
impl Keep for Incident {
    fn keep_what_is_read(&mut self) {
        self.metadata.managed_fields = None;
        if let Some(status) = &mut self.status {
            status.session = None;
            status.actions = Vec::new();
        }
    }
}

impl Keep for Policy {
    fn keep_what_is_read(&mut self) {
        self.metadata.managed_fields = None;
    }
}

impl Keep for Pod {
    fn keep_what_is_read(&mut self) {
        self.metadata.managed_fields = None;
        self.spec = None;
    }
}

impl Keep for Job {
    fn keep_what_is_read(&mut self) {
        self.metadata.managed_fields = None;
        self.spec = None;
    }
}

impl Keep for Secret {
    fn keep_what_is_read(&mut self) {
        self.metadata.managed_fields = None;
        self.string_data = None;
        if let Some(data) = &mut self.data {
            data.retain(|key, _| key == super::objects::TOKEN_KEY);
        }
    }
}

fn filled<K>(objects: Vec<K>) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + Keep + 'static,
{
    let (store, mut writer) = reflector::store();
    writer.apply_watcher_event(&watcher::Event::Init);
    for mut object in objects {
        object.keep_what_is_read();
        writer.apply_watcher_event(&watcher::Event::InitApply(object));
    }
    writer.apply_watcher_event(&watcher::Event::InitDone);
    store
}
