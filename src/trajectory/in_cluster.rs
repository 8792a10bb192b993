//! Trajectories the operator records in a cluster: one line per finished
//! Incident in ConfigMap `<policy>-trajectories`, next to the Policy the
//! incident followed (owned by it, so it goes with it). The closed loop's
//! optimizer (`optimize --to-policy`) reads them back and reuses them
//! instead of spending fresh rollouts on the hint in use.
//!
//! A ConfigMap holds at most 1 MiB, so this one is a ring: keys start with
//! the time the incident finished, and once there are more than
//! [`MAX_LINES`] or more than [`MAX_BYTES`] the oldest lines go first
//! (anything under a key of another shape before them), never the line
//! just written.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, PostParams};
use kube::{Client, Resource, ResourceExt};

use super::{MAX_OBSERVATION_CHARS, TrajectoryLine, head_and_tail};
use crate::crd::Policy;
use crate::crd::derived;

/// Lines kept per Policy.
pub const MAX_LINES: usize = 100;
/// Bytes of lines kept per Policy: well under a ConfigMap's 1 MiB, with
/// room for the object's metadata.
pub const MAX_BYTES: usize = 768 * 1024;
/// Bytes one line may take: no incident crowds out the others.
pub const MAX_LINE_BYTES: usize = MAX_BYTES / 16;
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
    #[error(
        "the trajectory takes {0} bytes even without what came back; at most {MAX_LINE_BYTES} fit"
    )]
    TooLarge(usize),
}

/// `<policy>-trajectories`.
pub fn config_map_name(policy: &str) -> String {
    derived::object_name(policy, "-trajectories")
}

/// An incident's key: when it finished (unix millis, zero-padded so keys
/// sort by time) and its name, cut to fit a ConfigMap key's 253
/// characters.
pub fn key_of(incident: &str, finished_ms: u64) -> String {
    let name: String = incident.chars().take(200).collect();
    format!("{finished_ms:013}-{name}.json")
}

/// A key this ring wrote (`key_of`'s shape).
fn is_ours(key: &str) -> bool {
    key.len() > 19
        && key.as_bytes()[..13].iter().all(u8::is_ascii_digit)
        && key.as_bytes()[13] == b'-'
        && key.ends_with(".json")
}

/// `data` with `line` under `key` (replacing an earlier recording of the
/// same incident), then other keys dropped until the ring fits: keys of
/// another shape first, then the oldest lines; never `key` itself.
pub fn with_line(
    mut data: BTreeMap<String, String>,
    key: &str,
    line: String,
) -> BTreeMap<String, String> {
    data.insert(key.to_string(), line);
    let mut bytes: usize = data.iter().map(|(k, v)| k.len() + v.len()).sum();
    let mut victims: Vec<String> = data.keys().filter(|k| *k != key).cloned().collect();
    // Stable: foreign keys first, each group oldest first.
    victims.sort_by_key(|k| is_ours(k));
    for victim in victims {
        if data.len() <= MAX_LINES && bytes <= MAX_BYTES {
            break;
        }
        if let Some(text) = data.remove(&victim) {
            bytes -= victim.len() + text.len();
        }
    }
    data
}

/// The line as stored: JSON within [`MAX_LINE_BYTES`]. What came back is
/// cut further, then left out, before the line is refused.
pub fn encode(line: &TrajectoryLine) -> Result<String, RecordError> {
    let text = serde_json::to_string(line)?;
    if text.len() <= MAX_LINE_BYTES {
        return Ok(text);
    }
    let mut short = line.clone();
    for step in &mut short.steps {
        step.observation = head_and_tail(&step.observation, MAX_OBSERVATION_CHARS / 8);
    }
    let text = serde_json::to_string(&short)?;
    if text.len() <= MAX_LINE_BYTES {
        return Ok(text);
    }
    for step in &mut short.steps {
        step.observation = "[left out: the line was too large]".into();
    }
    let text = serde_json::to_string(&short)?;
    if text.len() <= MAX_LINE_BYTES {
        return Ok(text);
    }
    for step in &mut short.steps {
        step.action = head_and_tail(&step.action, 200);
    }
    for action in &mut short.tool_actions {
        *action = head_and_tail(action, 200);
    }
    short.strategy_hint = head_and_tail(&short.strategy_hint, 4000);
    let text = serde_json::to_string(&short)?;
    if text.len() <= MAX_LINE_BYTES {
        return Ok(text);
    }
    Err(RecordError::TooLarge(text.len()))
}

/// Stores `line` under `key` in `policy`'s ring, which the Policy owns
/// (a ring an older version left without an owner gains it); returns the
/// ConfigMap's name. A write that races another is read and tried again.
pub async fn record(
    client: &Client,
    namespace: &str,
    policy: &Policy,
    key: &str,
    line: &TrajectoryLine,
) -> Result<String, RecordError> {
    let policy_name = policy.name_any();
    let name = config_map_name(&policy_name);
    // Not the controller: deleting the Policy takes the ring with it, and
    // nothing else claims to manage it.
    let owner = policy
        .controller_owner_ref(&())
        .map(|owner| OwnerReference {
            controller: Some(false),
            ..owner
        });
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
                        labels: Some(derived::labels(&policy_name, "trajectories")),
                        owner_references: owner.clone().map(|owner| vec![owner]),
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
                if let Some(owner) = &owner {
                    let owners = existing.metadata.owner_references.get_or_insert_default();
                    if !owners.iter().any(|o| o.uid == owner.uid) {
                        owners.push(owner.clone());
                    }
                }
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
            model: None,
            tokens: None,
            policy_generation: None,
            settings: None,
            scenario_id: "port_mismatch".into(),
            tool_actions: vec!["cat service.conf".into()],
            step_count: 1,
            latency_s: 1.5,
            service_up: true,
            trace_key: format!("ns:{incident}"),
            trace_id: None,
            strategy_hint: "look at the port".into(),
            policy: "learner".into(),
            brain: "runbook".into(),
            phase: crate::crd::IncidentPhase::Resolved,
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
    fn a_very_long_incident_is_stored_with_shorter_observations_and_actions() {
        let mut long = line("long", MAX_OBSERVATION_CHARS);
        long.steps = (0..50).map(|_| long.steps[0].clone()).collect();
        let text = encode(&long).unwrap();
        assert!(text.len() <= MAX_LINE_BYTES, "{}", text.len());
        let back: TrajectoryLine = serde_json::from_str(&text).unwrap();
        assert_eq!(back.steps.len(), 50, "every step is kept");
        assert!(!back.steps[0].observation.is_empty());
        // Escaped bytes and long commands as well: still one bounded line.
        let mut hostile = line("hostile", 0);
        hostile.steps = (0..50)
            .map(|_| StepTrace {
                action: "x".repeat(4000),
                observation: "\u{1}".repeat(MAX_OBSERVATION_CHARS),
                ..hostile.steps[0].clone()
            })
            .collect();
        hostile.tool_actions = vec!["y".repeat(4000); 50];
        let text = encode(&hostile).unwrap();
        assert!(text.len() <= MAX_LINE_BYTES, "{}", text.len());
        let back: TrajectoryLine = serde_json::from_str(&text).unwrap();
        assert_eq!((back.steps.len(), back.tool_actions.len()), (50, 50));
        let short = line("short", 100);
        assert_eq!(
            encode(&short).unwrap(),
            serde_json::to_string(&short).unwrap()
        );
    }

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
