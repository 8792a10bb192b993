//! Trajectories the operator records in a cluster: one line per finished
//! Incident in ConfigMap `<policy>-trajectories`, next to the Policy the
//! incident followed (owned by it, so it goes with it). The closed loop's
//! optimizer (`optimize --to-policy`) reads them back and reuses them
//! instead of spending fresh rollouts on the hint in use.
//!
//! A ConfigMap holds at most 1 MiB, so this one is a ring: keys start with
//! the incident's start time, and the oldest lines go first once there are
//! more than [`MAX_LINES`] or more than [`MAX_BYTES`].

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, PostParams};
use kube::{Client, Resource};

use super::{MAX_OBSERVATION_CHARS, TrajectoryLine, head_and_tail};
use crate::crd::Policy;

/// Lines kept per Policy.
pub const MAX_LINES: usize = 100;
/// Bytes of lines kept per Policy: well under a ConfigMap's 1 MiB, with
/// room for the object's metadata.
pub const MAX_BYTES: usize = 768 * 1024;
/// Attempts at a write that lost to a concurrent one (409).
const MAX_CONFLICTS: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{what} ConfigMap {name}: {source}")]
    Kube {
        what: &'static str,
        name: String,
        source: kube::Error,
    },
    #[error("ConfigMap {name} kept changing under {MAX_CONFLICTS} attempts to write it")]
    Contended { name: String },
    #[error("encoding the trajectory: {0}")]
    Encode(#[from] serde_json::Error),
}

pub fn config_map_name(policy: &str) -> String {
    format!("{policy}-trajectories")
}

/// An incident's key: its start (unix millis, zero-padded so keys sort by
/// time) and its name, cut to fit a ConfigMap key's 253 characters.
pub fn key_of(incident: &str, started_ms: u64) -> String {
    let name: String = incident.chars().take(200).collect();
    format!("{started_ms:013}-{name}.json")
}

/// `data` with `line` under `key` (replacing an earlier recording of the
/// same incident), then the oldest lines dropped until the ring fits.
pub fn with_line(
    mut data: BTreeMap<String, String>,
    key: &str,
    line: String,
) -> BTreeMap<String, String> {
    data.insert(key.to_string(), line);
    let mut bytes: usize = data.iter().map(|(k, v)| k.len() + v.len()).sum();
    while data.len() > MAX_LINES || (bytes > MAX_BYTES && data.len() > 1) {
        let Some((oldest, text)) = data.pop_first() else {
            break;
        };
        bytes -= oldest.len() + text.len();
    }
    data
}

/// The line as stored: JSON, its observations cut further when a very long
/// incident would not fit in the ring on its own.
pub fn encode(line: &TrajectoryLine) -> Result<String, serde_json::Error> {
    let text = serde_json::to_string(line)?;
    if text.len() <= MAX_BYTES / 4 {
        return Ok(text);
    }
    let mut short = line.clone();
    for step in &mut short.steps {
        step.observation = head_and_tail(&step.observation, MAX_OBSERVATION_CHARS / 8);
    }
    serde_json::to_string(&short)
}

/// Stores `line` under `key` in the Policy's ring; returns the
/// ConfigMap's name. A write that races another is read and tried again.
pub async fn record(
    client: &Client,
    namespace: &str,
    policy: &str,
    owner: Option<&Policy>,
    key: &str,
    line: &TrajectoryLine,
) -> Result<String, RecordError> {
    let name = config_map_name(policy);
    let text = encode(line)?;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let failed = |what: &'static str| {
        let name = name.clone();
        move |source| RecordError::Kube { what, name, source }
    };
    for _ in 0..MAX_CONFLICTS {
        let written = match api.get_opt(&name).await.map_err(failed("reading"))? {
            None => {
                let new = ConfigMap {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        labels: Some(labels(policy)),
                        owner_references: owner.and_then(|p| p.controller_owner_ref(&())).map(
                            |owner| {
                                vec![OwnerReference {
                                    controller: Some(false),
                                    ..owner
                                }]
                            },
                        ),
                        ..ObjectMeta::default()
                    },
                    data: Some(with_line(BTreeMap::new(), key, text.clone())),
                    ..ConfigMap::default()
                };
                api.create(&PostParams::default(), &new).await
            }
            Some(mut existing) => {
                // The read's resourceVersion stays set: the write fails with
                // 409 if anyone wrote in between, and is tried again.
                let data = existing.data.take().unwrap_or_default();
                existing.data = Some(with_line(data, key, text.clone()));
                api.replace(&name, &PostParams::default(), &existing).await
            }
        };
        match written {
            Ok(_) => return Ok(name),
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => return Err(failed("writing")(e)),
        }
    }
    Err(RecordError::Contended { name })
}

fn labels(policy: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), "remediator".into()),
        ("app.kubernetes.io/component".into(), "trajectories".into()),
        ("remediator.dev/policy".into(), policy.into()),
    ])
}

/// What a Policy's ring holds.
#[derive(Debug, Default)]
pub struct Recorded {
    /// Newest first.
    pub lines: Vec<TrajectoryLine>,
    /// Values that are not a trajectory line (edited by hand), skipped.
    pub malformed: usize,
}

/// The lines of `data`, newest first.
pub fn parse(data: &BTreeMap<String, String>) -> Recorded {
    let mut recorded = Recorded::default();
    for text in data.values().rev() {
        match serde_json::from_str(text) {
            Ok(line) => recorded.lines.push(line),
            Err(_) => recorded.malformed += 1,
        }
    }
    recorded
}

/// Every line recorded for `policy` (none when nothing was recorded yet).
pub async fn read(client: &Client, namespace: &str, policy: &str) -> kube::Result<Recorded> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    Ok(api
        .get_opt(&config_map_name(policy))
        .await?
        .and_then(|c| c.data)
        .map(|data| parse(&data))
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trajectory::StepTrace;

    fn line(incident: &str, observation_chars: usize) -> TrajectoryLine {
        TrajectoryLine {
            scenario_id: "port_mismatch".into(),
            tool_actions: vec!["cat service.conf".into()],
            step_count: 1,
            latency_s: 1.5,
            service_up: true,
            trace_key: format!("ns:{incident}"),
            strategy_hint: "look at the port".into(),
            policy: "learner".into(),
            brain: "runbook".into(),
            phase: "Resolved".into(),
            reason: None,
            message: None,
            incident: incident.into(),
            symptom: "down".into(),
            hint_source: Some("inline".into()),
            steps: vec![StepTrace {
                step: 1,
                kind: "exec".into(),
                action: "cat service.conf".into(),
                risk: "LOW".into(),
                decision: "Allowed".into(),
                decided_by: "gate".into(),
                exit_code: Some(0),
                http_status: None,
                observation: "x".repeat(observation_chars),
            }],
        }
    }

    #[test]
    fn keys_sort_by_start_and_fit_a_config_map_key() {
        assert!(key_of("b", 999) < key_of("a", 1000));
        let long = key_of(&"n".repeat(300), u64::MAX);
        assert!(long.len() <= 253, "{}", long.len());
        assert!(
            long.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
        );
    }

    #[test]
    fn the_ring_keeps_the_newest_lines_within_its_count() {
        let mut data = BTreeMap::new();
        for i in 0..MAX_LINES as u64 + 5 {
            data = with_line(data, &key_of("i", i), format!("{i}"));
        }
        assert_eq!(data.len(), MAX_LINES);
        assert_eq!(data.keys().next().unwrap(), &key_of("i", 5));
        // The same incident again replaces its line.
        let again = with_line(data.clone(), &key_of("i", 50), "new".into());
        assert_eq!(again.len(), MAX_LINES);
        assert_eq!(again[&key_of("i", 50)], "new");
    }

    #[test]
    fn the_ring_keeps_within_its_bytes_and_never_drops_the_newest() {
        let big = "y".repeat(MAX_BYTES / 3);
        let mut data = BTreeMap::new();
        for i in 0..5 {
            data = with_line(data, &key_of("i", i), big.clone());
        }
        let bytes: usize = data.iter().map(|(k, v)| k.len() + v.len()).sum();
        assert!(bytes <= MAX_BYTES, "{bytes}");
        assert!(data.contains_key(&key_of("i", 4)));
        let huge = with_line(BTreeMap::new(), "k", "z".repeat(2 * MAX_BYTES));
        assert_eq!(huge.len(), 1, "a line alone is kept");
    }

    #[test]
    fn a_very_long_incident_is_stored_with_shorter_observations() {
        let mut long = line("long", MAX_OBSERVATION_CHARS);
        long.steps = (0..400).map(|_| long.steps[0].clone()).collect();
        let text = encode(&long).unwrap();
        assert!(text.len() <= MAX_BYTES / 2, "{}", text.len());
        let back: TrajectoryLine = serde_json::from_str(&text).unwrap();
        assert_eq!(back.steps.len(), 400, "every step is kept");
        let short = line("short", 100);
        assert_eq!(
            encode(&short).unwrap(),
            serde_json::to_string(&short).unwrap()
        );
    }

    /// Review: `record` returns Ok (condition `Recorded`) whatever
    /// `with_line` kept. The ring orders by start time, so an incident that
    /// started before the ring's 100 lines (it waited for an approval, or
    /// had no `startedAt`) is inserted and evicted in the same write.
    #[test]
    fn a_line_that_finished_last_is_kept_even_if_it_started_first() {
        let mut data = BTreeMap::new();
        for i in 0..MAX_LINES as u64 {
            data = with_line(data, &key_of("quick", 1_000 + i), format!("{i}"));
        }
        let slow = key_of("waited-for-approval", 5);
        let data = with_line(data, &slow, "finished last".into());
        assert!(
            data.contains_key(&slow),
            "the line just recorded was evicted by its own write"
        );
    }

    /// Review: a value under a key that sorts after the digits (hand edit,
    /// another tool) is never evicted: the ring drops every real line,
    /// the new one included, and keeps the foreign value.
    #[test]
    fn a_foreign_key_cannot_starve_the_ring() {
        let mut data = BTreeMap::from([("notes".to_string(), "n".repeat(MAX_BYTES - 1000))]);
        data = with_line(data, &key_of("a", 1), "x".repeat(10_000));
        assert!(
            data.contains_key(&key_of("a", 1)),
            "kept only {:?}",
            data.keys().collect::<Vec<_>>()
        );
    }

    #[test]
    fn lines_read_back_newest_first_and_hand_edits_are_counted() {
        let mut data = BTreeMap::new();
        for (i, name) in ["first", "second"].iter().enumerate() {
            data = with_line(
                data,
                &key_of(name, i as u64),
                encode(&line(name, 10)).unwrap(),
            );
        }
        data.insert(key_of("edited", 5), "{not json".into());
        let recorded = parse(&data);
        let names: Vec<&str> = recorded.lines.iter().map(|l| l.incident.as_str()).collect();
        assert_eq!(names, ["second", "first"]);
        assert_eq!(recorded.malformed, 1);
    }
}
