//! What an Incident owns goes with it: the real kube-controller-manager's
//! garbage collector deletes the scenario Pod and the agent Job once the
//! Incident is deleted. There is no scheduler or kubelet, so the Pod stays
//! Pending and the Job starts nothing; ownership is all that is tested.

use std::fmt::Debug;
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Client, Resource};
use remediator::crd::Incident;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::control_plane::control_plane;

/// The collector notices a new CRD at its next discovery sync (every 30 s).
const GC_DEADLINE: Duration = Duration::from_secs(120);

async fn poll_until<F, Fut>(what: &str, deadline: Duration, mut done: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !done().await {
        assert!(start.elapsed() < deadline, "{what} within {deadline:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    start.elapsed()
}

async fn exists<K>(api: &Api<K>, name: &str) -> bool
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    api.get_opt(name).await.unwrap().is_some()
}

/// Creates an Incident with a Pod and a Job it controls; returns their names.
async fn incident_with_workload(
    client: &Client,
    ns: &str,
    name: &str,
) -> (Incident, String, String) {
    let incidents = Api::<Incident>::namespaced(client.clone(), ns);
    let incident: Incident = serde_json::from_value(json!({
        "apiVersion": "remediator.dev/v1alpha1", "kind": "Incident",
        "metadata": {"name": name},
        "spec": {"scenario": "stale_lockfile", "policyRef": {"name": "optimized"}}
    }))
    .unwrap();
    let incident = incidents
        .create(&PostParams::default(), &incident)
        .await
        .unwrap();
    let mut owner = incident.controller_owner_ref(&()).unwrap();
    // Foreground deletion of the Incident waits for what it blocks.
    owner.block_owner_deletion = Some(true);
    let pod_spec = |container: &str| {
        json!({"automountServiceAccountToken": false, "restartPolicy": "Never",
               "containers": [{"name": container, "image": "remediator.invalid/test:never-pulled"}]})
    };
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": format!("{name}-scenario"), "ownerReferences": [owner]},
        "spec": pod_spec("service")
    }))
    .unwrap();
    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": format!("{name}-agent"), "ownerReferences": [owner]},
        "spec": {"backoffLimit": 0, "template": {"spec": pod_spec("agent")}}
    }))
    .unwrap();
    let pod = Api::<Pod>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
    let job = Api::<Job>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &job)
        .await
        .unwrap();
    (
        incident,
        pod.metadata.name.unwrap(),
        job.metadata.name.unwrap(),
    )
}

#[tokio::test]
async fn deleting_an_incident_deletes_the_pod_and_job_it_owns() {
    let Some(cp) = control_plane() else { return };
    let client = cp.client().await;
    let ns = cp.namespace(&client, "ownership").await;
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), &ns);
    // Pods are admitted once the controller-manager made the namespace's default account.
    poll_until(
        "the default ServiceAccount",
        Duration::from_secs(60),
        || exists(&accounts, "default"),
    )
    .await;

    let incidents = Api::<Incident>::namespaced(client.clone(), &ns);
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    let jobs = Api::<Job>::namespaced(client.clone(), &ns);
    for (name, propagation) in [
        ("foreground", DeleteParams::foreground()),
        ("background", DeleteParams::background()),
    ] {
        let (incident, pod, job) = incident_with_workload(&client, &ns, name).await;
        assert!(exists(&pods, &pod).await && exists(&jobs, &job).await);
        incidents
            .delete(incident.metadata.name.as_deref().unwrap(), &propagation)
            .await
            .unwrap();
        let took = poll_until(
            &format!("{name} deletion of the incident, its Pod and its Job"),
            GC_DEADLINE,
            || async {
                !exists(&incidents, name).await
                    && !exists(&pods, &pod).await
                    && !exists(&jobs, &job).await
            },
        )
        .await;
        println!("{name} propagation: owned Pod and Job collected in {took:.1?}");
    }
}
