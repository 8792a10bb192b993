//! `remediator operator`: the controllers, the Action API and the metrics,
//! behind leader election: every replica serves `/healthz` and `/metrics`,
//! only the leader reconciles and answers agents (`/readyz` says which, so
//! the Service routes agents to the leader). Losing the lease stops the
//! process; SIGTERM finishes in-flight work first.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use super::backoff::Backoff;
use super::controller::{self, Context};
use super::engine::Engine;
use super::kube_backend::KubeBackend;
use super::metrics::Metrics;
use super::notify;
use super::notify::deliver::{LinkSigner, Notifier, Retry};
use super::notify::links::LinkKey;
use super::notify::server::LinkPages;
use super::objects::Settings;
use super::status_writer::StatusWriter;
use super::stores::{Keep, Stores};
use super::waiting_for_policy::incidents_waiting_for;
use crate::crd::{FIELD_MANAGER, Incident, Policy};
use crate::scenario::Catalog;

pub struct OperatorConfig {
    pub api_listen: SocketAddr,
    pub metrics_listen: SocketAddr,
    /// Watch one namespace, or all.
    pub namespace: Option<String>,
    /// Where the leader Lease lives; None: no leader election (one replica).
    pub lease_namespace: Option<String>,
    pub lease_name: String,
    pub concurrent_reconciles: u16,
    pub settings: Settings,
    pub catalog: Catalog,
    /// Signed approve/reject links in notices; None: notices carry the
    /// kubectl commands only.
    pub links: Option<LinksConfig>,
    /// Notices may go to webhooks on loopback addresses (local development).
    pub webhook_allow_loopback: bool,
}

/// Where approve/reject links are served and what signs them.
pub struct LinksConfig {
    pub listen: SocketAddr,
    /// The URL people reach `listen` at, e.g. `https://remediator.example.com`.
    pub base_url: String,
    /// The signing key's file (the chart mounts its Secret there): read
    /// once, at start, and never through the API.
    pub key_file: std::path::PathBuf,
}

/// The signing key from its file.
fn link_key(links: &LinksConfig) -> anyhow::Result<LinkKey> {
    let path = &links.key_file;
    let key = std::fs::read(path)
        .with_context(|| format!("reading the links signing key {}", path.display()))?;
    LinkKey::new(&key).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Whether this replica leads, shared with the HTTP endpoints.
#[derive(Clone, Default)]
struct Leadership(Arc<AtomicBool>);

impl Leadership {
    fn is_leader(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
    fn set(&self, leading: bool) {
        self.0.store(leading, Ordering::SeqCst)
    }
}

/// The label every object the operator creates carries.
const OWNED: &str = "app.kubernetes.io/name=remediator";

/// The objects of one owned kind: the watch fills `store` and triggers the
/// Incident reconcile (one watch per kind serves both).
fn owned_objects<K>(
    store: reflector::store::Writer<K>,
    api: Api<K>,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: kube::Resource<DynamicType = ()>
        + Keep
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let owned = watcher::Config::default().labels(OWNED);
    let watched = watcher(api, owned).modify(Keep::keep_what_is_read);
    reflector::reflector(store, watched).touched_objects()
}

/// Keeps `store` filled from a watch of every object of its kind, until
/// aborted; a failing watch backs off.
async fn cached<K>(store: reflector::store::Writer<K>, api: Api<K>)
where
    K: kube::Resource<DynamicType = ()>
        + Keep
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let watched = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(Keep::keep_what_is_read);
    reflector::reflector(store, watched)
        .for_each(|_| async {})
        .await;
}

fn api_for<K>(client: &Client, namespace: &Option<String>) -> Api<K>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

pub async fn run(
    config: OperatorConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let client = Client::try_default()
        .await
        .context("connecting to the Kubernetes API (in-cluster config or KUBECONFIG)")?;
    let metrics = Arc::new(Metrics::new());
    let writer = Arc::new(StatusWriter::new(client.clone(), metrics.clone()));
    // What the watches see, once this replica leads and starts them.
    let (incident_cache, incident_writer) = reflector::store::<Incident>();
    let (policy_cache, policy_writer) = reflector::store::<Policy>();
    let (pod_cache, pod_writer) = reflector::store::<Pod>();
    let (job_cache, job_writer) = reflector::store::<Job>();
    let (secret_cache, secret_writer) = reflector::store::<Secret>();
    let stores = Stores {
        incidents: incident_cache.clone(),
        policies: policy_cache,
        pods: pod_cache,
        jobs: job_cache,
        secrets: secret_cache,
    };
    let backend = Arc::new(KubeBackend::new(
        client.clone(),
        config.settings.clone(),
        writer.clone(),
        stores.clone(),
    ));
    let engine = Arc::new(Engine::new(backend.clone()));
    let leadership = Leadership::default();
    // A missing or short key turns links off, not the operator: notices
    // then carry the kubectl commands only, and the pages say links are off.
    let key = config
        .links
        .as_ref()
        .and_then(|links| match link_key(links) {
            Ok(key) => Some(key),
            Err(e) => {
                tracing::error!("approval links are off: {e:#}");
                None
            }
        });
    let signer = match (&config.links, &key) {
        (Some(links), Some(key)) => Some(LinkSigner {
            key: key.clone(),
            base_url: links.base_url.trim_end_matches('/').to_string(),
        }),
        _ => None,
    };
    let notifier = Arc::new(Notifier::new(
        client.clone(),
        writer.clone(),
        engine.clone(),
        metrics.clone(),
        signer,
        Retry::default(),
        config.webhook_allow_loopback,
    )?);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = {
        let rx = stop_rx.clone();
        move || {
            let mut rx = rx.clone();
            async move {
                let _ = rx.wait_for(|stop| *stop).await;
            }
        }
    };

    // The Incidents the leader watches, once it leads: the approval gauges
    // are read from them at each scrape.
    let seen: Seen = Arc::default();
    let ops = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(Ops {
            leadership: leadership.clone(),
            metrics: metrics.clone(),
            seen: seen.clone(),
        });
    let ops_listener = tokio::net::TcpListener::bind(config.metrics_listen)
        .await
        .with_context(|| format!("listening on {}", config.metrics_listen))?;
    let ops_server = tokio::spawn(
        axum::serve(ops_listener, ops)
            .with_graceful_shutdown(stopped())
            .into_future(),
    );

    let api = super::api::router(engine.clone()).layer(axum::middleware::from_fn_with_state(
        leadership.clone(),
        leader_only,
    ));
    let api_listener = tokio::net::TcpListener::bind(config.api_listen)
        .await
        .with_context(|| format!("listening on {}", config.api_listen))?;
    let api_server = tokio::spawn(
        axum::serve(api_listener, api)
            .with_graceful_shutdown(stopped())
            .into_future(),
    );
    tracing::info!(
        api = %config.api_listen,
        metrics = %config.metrics_listen,
        "Action API and metrics listening"
    );
    let links_server = match &config.links {
        Some(links) => {
            let pages = Arc::new(LinkPages {
                key: key.clone(),
                client: client.clone(),
                engine: engine.clone(),
                metrics: metrics.clone(),
            });
            let router = notify::server::router(pages).layer(axum::middleware::from_fn_with_state(
                leadership.clone(),
                leader_only,
            ));
            let listener = tokio::net::TcpListener::bind(links.listen)
                .await
                .with_context(|| format!("listening on {}", links.listen))?;
            tracing::info!(listen = %links.listen, base_url = %links.base_url, "approval links served");
            Some(tokio::spawn(
                axum::serve(listener, router)
                    .with_graceful_shutdown(stopped())
                    .into_future(),
            ))
        }
        None => None,
    };

    let forward = tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });

    // Leadership: without election this replica leads at once.
    let mut lease_task = None;
    match &config.lease_namespace {
        None => leadership.set(true),
        Some(namespace) => {
            let identity = std::env::var("POD_NAME")
                .unwrap_or_else(|_| format!("remediator-{}", std::process::id()));
            let manager =
                kube_lease_manager::LeaseManagerBuilder::new(client.clone(), &config.lease_name)
                    .with_namespace(namespace)
                    .with_identity(&identity)
                    .with_duration(15)
                    .with_grace(5)
                    .with_field_manager(FIELD_MANAGER)
                    .build()
                    .await
                    .context("setting up leader election")?;
            let (mut leading, task) = manager.watch().await;
            tracing::info!(
                %identity,
                lease = %format!("{namespace}/{}", config.lease_name),
                "waiting to lead"
            );
            let mut stop = stop_rx.clone();
            let won = tokio::select! {
                _ = leading.wait_for(|l| *l) => true,
                _ = stop.wait_for(|s| *s) => false,
            };
            if !won {
                drop(leading);
                let _ = task.await;
                return finish(ops_server, api_server, links_server, forward).await;
            }
            tracing::info!(%identity, "leading");
            leadership.set(true);
            let lost = leadership.clone();
            let mut stop = stop_rx.clone();
            lease_task = Some(tokio::spawn(async move {
                tokio::select! {
                    _ = leading.wait_for(|l| !*l) => {
                        tracing::error!("lost the lease; stopping");
                        lost.set(false);
                        // A replica that no longer leads must not act: exit,
                        // to be restarted as a follower, with the spans it
                        // holds (an ended incident's root among them) sent.
                        crate::telemetry::shutdown(std::time::Duration::from_secs(2));
                        std::process::exit(1);
                    }
                    _ = stop.wait_for(|s| *s) => {}
                }
                drop(leading);
                let _ = task.await;
            }));
        }
    }

    // The Incident and Policy caches reconciles read; a reconcile waits
    // until every cache has listed once, so nothing is decided on a
    // partial view (a Pod not yet seen is not a Pod gone).
    let _ = seen.set(incident_cache.clone());
    let incidents: Api<Incident> = api_for(&client, &config.namespace);
    let policies: Api<Policy> = api_for(&client, &config.namespace);
    let reflect_incidents = tokio::spawn(cached(incident_writer, incidents.clone()));
    let reflect_policies = tokio::spawn(cached(policy_writer, policies.clone()));
    let ctx = Arc::new(Context {
        client: client.clone(),
        settings: config.settings.clone(),
        catalog: config.catalog.clone(),
        engine,
        backend,
        metrics,
        writer,
        stores,
        backoff: Backoff::default(),
        policy_backoff: Backoff::default(),
        notifier: Some(notifier),
    });
    let waiting_cache = incident_cache.clone();
    let incident_controller = Controller::new(incidents.clone(), watcher::Config::default())
        .with_config(
            kube::runtime::controller::Config::default().concurrency(config.concurrent_reconciles),
        )
        .owns_stream(owned_objects(
            pod_writer,
            api_for::<Pod>(&client, &config.namespace),
        ))
        .owns_stream(owned_objects(
            job_writer,
            api_for::<Job>(&client, &config.namespace),
        ))
        .owns_stream(owned_objects(
            secret_writer,
            api_for::<Secret>(&client, &config.namespace),
        ))
        .watches(
            policies.clone(),
            watcher::Config::default(),
            move |policy| {
                let incidents = waiting_cache.state();
                incidents_waiting_for(&policy, incidents.iter().map(|i| i.as_ref()))
            },
        )
        .graceful_shutdown_on(stopped())
        .run(controller::reconcile, controller::error_policy, ctx.clone())
        .for_each(|_| async {});
    let policy_controller = Controller::new(policies, watcher::Config::default())
        .watches(
            api_for::<Incident>(&client, &config.namespace),
            watcher::Config::default(),
            move |incident| {
                let policy = ObjectRef::<Policy>::new(&incident.spec.policy_ref.name)
                    .within(&incident.namespace().unwrap_or_default());
                std::iter::once(policy)
            },
        )
        .graceful_shutdown_on(stopped())
        .run(
            controller::reconcile_policy,
            controller::policy_error_policy,
            ctx,
        )
        .for_each(|_| async {});
    let policy_controller = async move {
        if incident_cache.wait_until_ready().await.is_ok() {
            policy_controller.await;
        }
    };
    tokio::join!(incident_controller, policy_controller);
    reflect_incidents.abort();
    reflect_policies.abort();
    if let Some(task) = lease_task {
        let _ = task.await;
    }
    finish(ops_server, api_server, links_server, forward).await
}

async fn finish(
    ops: tokio::task::JoinHandle<std::io::Result<()>>,
    api: tokio::task::JoinHandle<std::io::Result<()>>,
    links: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    forward: tokio::task::JoinHandle<()>,
) -> anyhow::Result<()> {
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        let _ = ops.await;
        let _ = api.await;
        if let Some(links) = links {
            let _ = links.await;
        }
    })
    .await;
    forward.abort();
    Ok(())
}

type Seen = Arc<std::sync::OnceLock<kube::runtime::reflector::Store<Incident>>>;

/// What the health and metrics endpoints read.
#[derive(Clone)]
struct Ops {
    leadership: Leadership,
    metrics: Arc<Metrics>,
    seen: Seen,
}

async fn readyz(State(ops): State<Ops>) -> Response {
    if ops.leadership.is_leader() {
        (StatusCode::OK, "leading").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "following: not serving agents",
        )
            .into_response()
    }
}

async fn metrics_text(State(ops): State<Ops>) -> Response {
    if let Some(store) = ops.seen.get() {
        let incidents = store.state();
        ops.metrics.observe_pending(
            incidents.iter().map(|i| i.as_ref()),
            k8s_openapi::jiff::Timestamp::now(),
        );
    }
    (
        [("content-type", "text/plain; version=0.0.4")],
        ops.metrics.render(),
    )
        .into_response()
}

/// Only the leader answers agents: its engine is the one that acts.
async fn leader_only(
    State(leadership): State<Leadership>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if leadership.is_leader() {
        next.run(request).await
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"error": "this replica does not lead; retry"})),
        )
            .into_response()
    }
}
