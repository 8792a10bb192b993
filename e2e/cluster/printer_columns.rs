//! `kubectl get incidents` and `kubectl get policies` show the columns the
//! CRDs promise, filled from spec and from a status the operator would write.

use kube::api::{Api, Patch, PatchParams};
use remediator::crd::{FIELD_MANAGER, Incident, Policy};
use serde_json::json;

use crate::control_plane::{control_plane, path_str, repo};

/// kubectl's table, cut at the columns where the header's cells start: a
/// missing value is blank, and a header such as `FIX RATE` has a space in it.
fn table(output: &str) -> Vec<Vec<String>> {
    let header = output.lines().next().unwrap_or_default();
    let cell = regex::Regex::new(r"\S+( \S+)*").unwrap();
    let starts: Vec<usize> = cell.find_iter(header).map(|m| m.start()).collect();
    output
        .lines()
        .map(|line| {
            let cut = |i: usize| starts.get(i).map_or(line.len(), |&s| s.min(line.len()));
            (0..starts.len())
                .map(|i| line[cut(i)..cut(i + 1)].trim().to_string())
                .collect()
        })
        .collect()
}

fn row<'a>(table: &'a [Vec<String>], name: &str) -> &'a [String] {
    table
        .iter()
        .find(|r| r[0] == name)
        .unwrap_or_else(|| panic!("no row {name} in {table:?}"))
}

#[tokio::test]
async fn kubectl_get_shows_the_printer_columns() {
    let Some(cp) = control_plane() else { return };
    let client = cp.client().await;
    let ns = cp.namespace(&client, "columns").await;
    let kubectl = cp.kubectl();
    let applied = kubectl
        .run(
            &["apply", "-n", &ns, "-f", path_str(&repo().join("examples"))],
            "",
        )
        .await;
    assert_eq!(applied.code, Some(0), "{applied}");

    let operator = PatchParams::apply(FIELD_MANAGER);
    Api::<Incident>::namespaced(client.clone(), &ns)
        .patch_status(
            "stale-lockfile",
            &operator,
            &Patch::Apply(json!({
                "apiVersion": "remediator.dev/v1alpha1", "kind": "Incident", "metadata": {"name": "stale-lockfile"},
                "status": {"phase": "Resolved", "steps": 3,
                           "verified": {"healthy": true, "httpStatus": 200, "checkedAt": "2026-01-02T03:04:05Z"}}
            })),
        )
        .await
        .unwrap();
    Api::<Policy>::namespaced(client.clone(), &ns)
        .patch_status(
            "optimized",
            &operator,
            &Patch::Apply(json!({
                "apiVersion": "remediator.dev/v1alpha1", "kind": "Policy", "metadata": {"name": "optimized"},
                "status": {"resolved": 3, "failed": 1, "fixRate": 0.75, "meanSteps": 4.5}
            })),
        )
        .await
        .unwrap();

    for resource in ["incidents", "inc"] {
        let ran = kubectl.run(&["get", resource, "-n", &ns], "").await;
        assert_eq!(ran.code, Some(0), "{ran}");
        let rows = table(&ran.stdout);
        assert_eq!(
            rows[0],
            [
                "NAME", "SCENARIO", "POLICY", "PHASE", "STEPS", "HEALTHY", "AGE"
            ],
            "{ran}"
        );
        let resolved = row(&rows, "stale-lockfile");
        assert_eq!(
            resolved[..6],
            [
                "stale-lockfile",
                "stale_lockfile",
                "optimized",
                "Resolved",
                "3",
                "true"
            ],
            "{ran}"
        );
        let untouched = row(&rows, "port-mismatch");
        assert_eq!(
            untouched[..6],
            ["port-mismatch", "port_mismatch", "optimized", "", "", ""],
            "{ran}"
        );
        assert!(
            untouched[6].ends_with('s') || untouched[6].ends_with('m'),
            "age: {ran}"
        );
    }

    for resource in ["policies", "rpol"] {
        let ran = kubectl.run(&["get", resource, "-n", &ns], "").await;
        assert_eq!(ran.code, Some(0), "{ran}");
        let rows = table(&ran.stdout);
        assert_eq!(
            rows[0],
            [
                "NAME",
                "BRAIN",
                "FIX RATE",
                "MEAN STEPS",
                "RESOLVED",
                "FAILED",
                "P95 TTR",
                "AGE"
            ],
            "{ran}"
        );
        assert_eq!(
            row(&rows, "optimized")[..7],
            ["optimized", "runbook", "0.75", "4.5", "3", "1", ""],
            "{ran}"
        );
        assert_eq!(
            row(&rows, "llm")[..7],
            ["llm", "llm", "", "", "", "", ""],
            "{ran}"
        );
    }
}
