//! What a person says to a running incident through annotations:
//! `remediator.dev/approve=<step>` and `reject=<step>` answer a waiting
//! action (`<step>:<hash>` answers it only if the waiting action's hash
//! starts with `<hash>`: the action the person saw); `max-risk=<LEVEL>`
//! may tighten the Policy for this incident, never loosen it;
//! `undo=<step>` puts the root back as before that step.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::crd::Approver;
use crate::risk::RiskLevel;

pub const APPROVE: &str = "remediator.dev/approve";
pub const REJECT: &str = "remediator.dev/reject";
pub const MAX_RISK: &str = "remediator.dev/max-risk";
pub const UNDO: &str = "remediator.dev/undo";
/// Who set the approve annotation and who set the reject annotation,
/// stamped by the API server's admission (the chart's
/// MutatingAdmissionPolicy) on the request that set it, never by a client.
pub const APPROVED_BY: &str = "remediator.dev/approved-by";
pub const REJECTED_BY: &str = "remediator.dev/rejected-by";

/// The shortest action hash prefix an answer may name.
pub const MIN_HASH_PREFIX: usize = 8;

/// An approve or reject annotation: the step it answers and, if given, the
/// start of the hash of the action it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepAnswer {
    pub step: u32,
    pub hash: Option<String>,
}

impl StepAnswer {
    fn parse(value: &str) -> Option<Self> {
        let (step, hash) = match value.trim().split_once(':') {
            Some((step, hash)) => (step, Some(hash.to_ascii_lowercase())),
            None => (value.trim(), None),
        };
        let step = step.parse::<u32>().ok().filter(|s| *s > 0)?;
        let hash_ok = hash.as_ref().is_none_or(|h| {
            (MIN_HASH_PREFIX..=64).contains(&h.len()) && h.chars().all(|c| c.is_ascii_hexdigit())
        });
        hash_ok.then_some(Self { step, hash })
    }
}

pub use crate::crd::answer_value;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives {
    pub approve: Option<StepAnswer>,
    pub reject: Option<StepAnswer>,
    pub max_risk: Option<RiskLevel>,
    pub undo: Option<u32>,
    /// Annotations that could not be read, each with why.
    pub problems: Vec<String>,
}

pub fn read(annotations: Option<&BTreeMap<String, String>>) -> Directives {
    let mut directives = Directives::default();
    let Some(annotations) = annotations else {
        return directives;
    };
    let step = |name: &str, problems: &mut Vec<String>| {
        annotations
            .get(name)
            .and_then(|value| match StepAnswer::parse(value) {
                Some(answer) => Some(answer),
                None => {
                    problems.push(format!(
                        "{name}={value:?} is not a step number (1, 2, ...), or a step and the start of the action's hash (3:ab12cd34)"
                    ));
                    None
                }
            })
    };
    directives.approve = step(APPROVE, &mut directives.problems);
    directives.reject = step(REJECT, &mut directives.problems);
    directives.undo = annotations
        .get(UNDO)
        .and_then(|value| match value.trim().parse::<u32>() {
            Ok(step) => Some(step),
            Err(_) => {
                directives.problems.push(format!(
                    "{UNDO}={value:?} is not a step number (0 for before any step)"
                ));
                None
            }
        });
    directives.max_risk = annotations.get(MAX_RISK).and_then(|value| {
        match value.trim().to_ascii_uppercase().as_str() {
            "LOW" => Some(RiskLevel::Low),
            "MEDIUM" => Some(RiskLevel::Medium),
            "HIGH" => Some(RiskLevel::High),
            _ => {
                directives
                    .problems
                    .push(format!("{MAX_RISK}={value:?} is not LOW, MEDIUM or HIGH"));
                None
            }
        }
    });
    directives
}

/// Who set an approve or reject annotation, and when, as far as the API
/// server's own record tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetBy {
    pub approver: Approver,
    /// When its field manager last wrote (`managedFields`, in seconds).
    pub at: Option<k8s_openapi::jiff::Timestamp>,
}

/// Who set `annotation`: the field manager of its newest write in
/// `managedFields`. The client picks that name (`kubectl annotate` sends
/// `kubectl-annotate`), so it names a tool, not a person. The user is
/// known only where an admission policy stamps it (`stamped`: the chart's
/// `approvals.recordUser`), in [`APPROVED_BY`] or [`REJECTED_BY`], which
/// no client can set.
pub fn set_by(metadata: &ObjectMeta, annotation: &str, stamped: bool) -> SetBy {
    let field = format!("f:{annotation}");
    let newest = metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|entry| {
            entry
                .fields_v1
                .as_ref()
                .and_then(|fields| fields.0.get("f:metadata"))
                .and_then(|meta| meta.get("f:annotations"))
                .is_some_and(|annotations| annotations.get(&field).is_some())
        })
        .max_by_key(|entry| entry.time.as_ref().map(|t| t.0));
    let stamp = match annotation {
        APPROVE => Some(APPROVED_BY),
        REJECT => Some(REJECTED_BY),
        _ => None,
    };
    let user = stamp
        .filter(|_| stamped)
        .and_then(|stamp| metadata.annotations.as_ref()?.get(stamp).cloned());
    SetBy {
        approver: Approver {
            via: "annotation".into(),
            field_manager: newest.and_then(|entry| entry.manager.clone()),
            user,
            ..Approver::default()
        },
        at: newest.and_then(|entry| entry.time.as_ref()).map(|t| t.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_approver_is_the_newest_manager_of_that_annotation() {
        let metadata: ObjectMeta = serde_json::from_value(serde_json::json!({
            "name": "x",
            "managedFields": [
                {"manager": "kubectl-client-side-apply", "operation": "Update",
                 "time": "2026-12-07T00:00:00Z",
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}},
                {"manager": "kubectl-annotate", "operation": "Update",
                 "time": "2026-12-07T00:01:00Z", "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:metadata": {"f:annotations": {".": {}, "f:remediator.dev/approve": {}}}}},
                {"manager": "remediator-mcp", "operation": "Update",
                 "time": "2026-12-07T00:02:00Z", "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:metadata": {"f:annotations": {"f:remediator.dev/reject": {}}}}}
            ]
        }))
        .unwrap();
        let approve = set_by(&metadata, APPROVE, false);
        assert_eq!(
            approve.approver.field_manager.as_deref(),
            Some("kubectl-annotate")
        );
        assert_eq!(
            (approve.approver.via.as_str(), approve.approver.user),
            ("annotation", None)
        );
        assert_eq!(approve.at, Some("2026-12-07T00:01:00Z".parse().unwrap()));
        assert_eq!(
            set_by(&metadata, REJECT, false)
                .approver
                .field_manager
                .as_deref(),
            Some("remediator-mcp")
        );
        assert_eq!(set_by(&metadata, UNDO, false).approver.field_manager, None);
    }

    #[test]
    fn the_user_is_read_only_where_admission_stamps_it_and_per_answer() {
        let metadata: ObjectMeta = serde_json::from_value(serde_json::json!({
            "name": "x",
            "annotations": {APPROVE: "2", REJECT: "2", APPROVED_BY: "alice", REJECTED_BY: "bob"},
        }))
        .unwrap();
        assert_eq!(set_by(&metadata, APPROVE, false).approver.user, None);
        assert_eq!(
            set_by(&metadata, APPROVE, true).approver.user.as_deref(),
            Some("alice")
        );
        assert_eq!(
            set_by(&metadata, REJECT, true).approver.user.as_deref(),
            Some("bob")
        );
    }

    fn of(pairs: &[(&str, &str)]) -> Directives {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        read(Some(&map))
    }

    #[test]
    fn steps_levels_and_mistakes_are_read() {
        let d = of(&[(APPROVE, "3"), (MAX_RISK, "low"), (UNDO, "0")]);
        assert_eq!(
            (d.approve, d.max_risk, d.undo),
            (
                Some(StepAnswer {
                    step: 3,
                    hash: None
                }),
                Some(RiskLevel::Low),
                Some(0)
            )
        );
        let d = of(&[(APPROVE, "4:AB12cd34ef")]);
        assert_eq!(
            d.approve,
            Some(StepAnswer {
                step: 4,
                hash: Some("ab12cd34ef".into())
            })
        );
        let d = of(&[(REJECT, "x"), (MAX_RISK, "EXTREME"), (APPROVE, "0")]);
        assert_eq!((d.reject, d.max_risk, d.approve), (None, None, None));
        assert_eq!(d.problems.len(), 3, "{:?}", d.problems);
        for bad in ["3:", "3:ab12", "3:zz12cd34", "3:ab12cd34:x"] {
            assert_eq!(of(&[(APPROVE, bad)]).approve, None, "{bad}");
        }
        assert_eq!(answer_value(3, &"ab".repeat(32)), "3:abababababababab");
        assert_eq!(read(None), Directives::default());
    }
}
