//! The closed loop's last step in a cluster: a hint that [`super::publish`]
//! put in use is recorded in a ConfigMap (`<policy>-hint`: the hint, its
//! version and the scores that earned it, owned by the Policy) and set on
//! a Policy that follows the optimizer, with its `hintVersion`. The edit is
//! a new Policy generation: Incidents created from then on follow it, those
//! already running keep the Policy they pinned when they started.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};

use super::artifacts::BestHint;
use crate::crd::Policy;
use crate::crd::derived;

/// The field manager of everything the optimizer writes.
pub const FIELD_MANAGER: &str = "remediator-optimizer";

#[derive(Debug, thiserror::Error)]
pub enum ToClusterError {
    #[error("reading Policy {namespace}/{name}: {source}")]
    Read {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error(
        "there is no Policy {name} in namespace {namespace} (kubectl get policies -n {namespace})"
    )]
    Missing { namespace: String, name: String },
    #[error(
        "Policy {namespace}/{name} does not follow the optimizer (spec.followOptimizer is false), so its hint stays as it is"
    )]
    NotFollowing { namespace: String, name: String },
    #[error("writing {what} in namespace {namespace}: {source}")]
    Write {
        what: String,
        namespace: String,
        source: kube::Error,
    },
}

/// The ConfigMap that records what was published to `policy`.
pub fn config_map_name(policy: &str) -> String {
    derived::object_name(policy, "-hint")
}

/// A published hint's version: the optimizer and the run's timestamp.
pub fn version_of(result: &BestHint) -> String {
    format!("{}-{}", result.optimizer.as_str(), result.timestamp)
}

/// The Policy the loop publishes to, checked before any rollout is spent:
/// it exists and follows the optimizer.
pub async fn following_policy(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Policy, ToClusterError> {
    let api: Api<Policy> = Api::namespaced(client.clone(), namespace);
    let policy = api
        .get_opt(name)
        .await
        .map_err(|source| ToClusterError::Read {
            namespace: namespace.into(),
            name: name.into(),
            source,
        })?
        .ok_or_else(|| ToClusterError::Missing {
            namespace: namespace.into(),
            name: name.into(),
        })?;
    if !policy.spec.follow_optimizer {
        return Err(ToClusterError::NotFollowing {
            namespace: namespace.into(),
            name: name.into(),
        });
    }
    Ok(policy)
}

/// Writes the ConfigMap and sets the Policy's hint and `hintVersion`;
/// returns the version.
pub async fn publish_to_policy(
    client: &Client,
    policy: &Policy,
    result: &BestHint,
) -> Result<String, ToClusterError> {
    let namespace = policy.namespace().unwrap_or_default();
    let name = policy.name_any();
    let version = version_of(result);
    let score = |s: Option<f64>| s.map_or_else(|| "none".into(), |s| format!("{s:.4}"));
    let record = ConfigMap {
        metadata: ObjectMeta {
            name: Some(config_map_name(&name)),
            labels: Some(derived::labels(&name, "optimizer")),
            owner_references: policy.controller_owner_ref(&()).map(|owner| {
                vec![OwnerReference {
                    controller: Some(false),
                    ..owner
                }]
            }),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([
            ("hint".into(), result.hint.clone()),
            ("version".into(), version.clone()),
            ("optimizer".into(), result.optimizer.as_str().into()),
            ("brain".into(), result.brain.clone()),
            ("runId".into(), result.run_id.clone()),
            ("validationScore".into(), score(result.validation_score)),
            (
                "previousValidationScore".into(),
                score(result.seed_validation_score),
            ),
        ])),
        ..ConfigMap::default()
    };
    let write = |what: String| {
        let namespace = namespace.clone();
        move |source| ToClusterError::Write {
            what,
            namespace,
            source,
        }
    };
    let apply = PatchParams::apply(FIELD_MANAGER).force();
    Api::<ConfigMap>::namespaced(client.clone(), &namespace)
        .patch(&config_map_name(&name), &apply, &Patch::Apply(&record))
        .await
        .map_err(write(format!("ConfigMap {}", config_map_name(&name))))?;
    // A merge patch of the two fields, not an apply: the Policy belongs to
    // whoever wrote it, and the rest of its spec stays theirs.
    let edit = serde_json::json!({"spec": {"hint": result.hint, "hintVersion": version}});
    Api::<Policy>::namespaced(client.clone(), &namespace)
        .patch(
            &name,
            &PatchParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..PatchParams::default()
            },
            &Patch::Merge(&edit),
        )
        .await
        .map_err(write(format!("Policy {name}")))?;
    Ok(version)
}
