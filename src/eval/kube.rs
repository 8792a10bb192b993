//! Fan-out against a cluster: each arrival becomes an Incident in one
//! namespace under a Policy that is already there; the operator resolves
//! it, and its status, read as soon as it is Resolved or Failed, is what
//! the report counts. Nothing runs on this machine but the harness.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::wait::{Condition, await_condition};

use super::fanout::{Runner, incident_name};
use crate::crd::{Incident, IncidentSpec, IncidentStatus, PolicyRef};
use crate::local::Outcome;

/// The label every Incident of one fan-out carries: `kubectl get incidents
/// -l remediator.dev/fanout-run=<run id>`.
pub const RUN_LABEL: &str = "remediator.dev/fanout-run";
/// Why an incident counts as failed when it did not end in time.
pub const REASON_NOT_FINISHED: &str = "FanoutTimeout";

pub struct KubeRunner {
    pub api: Api<Incident>,
    /// The Policy every Incident follows (`spec.policyRef.name`).
    pub policy: String,
    pub run_id: String,
    /// Longest wait for one Incident to end; then it is deleted and counted
    /// as failed (`FanoutTimeout`).
    pub timeout: Duration,
}

/// A name the API server takes: the run id and the arrival, lowercase,
/// only letters, digits and `-`, at most 63 characters.
pub fn kube_name(run_id: &str, seq: u64, scenario: &str) -> String {
    let raw = format!("{run_id}-{}", incident_name(seq, scenario)).to_lowercase();
    let mut name: String = raw
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    if name.len() > 63 {
        // Keep the arrival's own part, which is unique within the run.
        let tail = incident_name(seq, scenario).replace('_', "-");
        let head: String = name.chars().take(62 - tail.len().min(61)).collect();
        name = format!("{}-{tail}", head.trim_end_matches('-'));
    }
    name.trim_matches('-').to_string()
}

fn finished() -> impl Condition<Incident> {
    |incident: Option<&Incident>| {
        incident
            .and_then(|i| i.status.as_ref())
            .is_some_and(|s| s.phase.is_terminal())
    }
}

/// Deletes the Incident if the harness drops it before it ends (an abort):
/// best effort, as the process may be on its way out.
struct DeleteUnlessDone {
    api: Api<Incident>,
    name: String,
    done: bool,
}

impl Drop for DeleteUnlessDone {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let (api, name) = (self.api.clone(), self.name.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = api.delete(&name, &DeleteParams::background()).await;
            });
        }
    }
}

fn failed(reason: &str, message: String, last: Option<IncidentStatus>) -> Outcome {
    let mut status = last.unwrap_or_default();
    status.reason = Some(reason.to_string());
    status.message = Some(message);
    Outcome {
        status,
        kept: None,
        trajectory: None,
        record_error: None,
    }
}

impl Runner for KubeRunner {
    fn name(&self, seq: u64, scenario: &str) -> String {
        kube_name(&self.run_id, seq, scenario)
    }

    fn run(&self, name: String, scenario: String) -> BoxFuture<'static, Outcome> {
        let (api, policy, run_id, timeout) = (
            self.api.clone(),
            self.policy.clone(),
            self.run_id.clone(),
            self.timeout,
        );
        Box::pin(async move {
            let incident = Incident {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    labels: Some(BTreeMap::from([(RUN_LABEL.to_string(), run_id)])),
                    ..ObjectMeta::default()
                },
                spec: IncidentSpec {
                    scenario,
                    policy_ref: PolicyRef { name: policy },
                },
                status: None,
            };
            if let Err(e) = api.create(&PostParams::default(), &incident).await {
                return failed("NotCreated", format!("creating Incident {name}: {e}"), None);
            }
            let mut guard = DeleteUnlessDone {
                api: api.clone(),
                name: name.clone(),
                done: false,
            };
            let ended =
                tokio::time::timeout(timeout, await_condition(api.clone(), &name, finished()))
                    .await;
            match ended {
                Ok(Ok(Some(incident))) => {
                    guard.done = true;
                    Outcome {
                        status: incident.status.unwrap_or_default(),
                        kept: None,
                        trajectory: None,
                        record_error: None,
                    }
                }
                Ok(Ok(None)) => {
                    guard.done = true;
                    failed("Deleted", format!("Incident {name} was deleted"), None)
                }
                Ok(Err(e)) => failed("WatchFailed", format!("watching {name}: {e}"), None),
                Err(_) => {
                    let last = api.get_opt(&name).await.ok().flatten();
                    // Awaited here, not left to the guard: the run may end
                    // (and its runtime with it) right after this incident.
                    let deleted = api.delete(&name, &DeleteParams::background()).await;
                    guard.done = deleted.is_ok();
                    failed(
                        REASON_NOT_FINISHED,
                        match deleted {
                            Ok(_) => format!("{name} did not end within {timeout:?}; deleted"),
                            Err(e) => format!(
                                "{name} did not end within {timeout:?}; deleting it failed: {e}"
                            ),
                        },
                        last.and_then(|i| i.status),
                    )
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_ones_the_api_server_takes() {
        assert_eq!(
            kube_name("run-1764163200000-4242", 42, "port_mismatch"),
            "run-1764163200000-4242-fo-00042-port-mismatch"
        );
        assert_eq!(
            kube_name("Nightly_Run.2", 1, "stale_lockfile"),
            "nightly-run-2-fo-00001-stale-lockfile"
        );
        let long = kube_name(&"x".repeat(100), 7, "cache_dir_not_writable");
        assert!(long.len() <= 63, "{long}");
        assert!(long.ends_with("-fo-00007-cache-dir-not-writable"), "{long}");
        let dns = regex::Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$").unwrap();
        for name in [long, kube_name("-a-", 3, "b")] {
            assert!(dns.is_match(&name), "{name}");
        }
    }
}
