//! Real fan-outs, and every number of their reports recomputed from the
//! trajectory JSONL they wrote (with this file's own arithmetic).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use remediator::agent::confirm::Refuse;
use remediator::agent::hint::ResolvedHint;
use remediator::crd::PolicySpec;
use remediator::eval::arrivals::{self, Pattern};
use remediator::eval::fanout::{self, Finished, Snapshot, Stop};
use remediator::eval::mix::{Weights, default_severities};
use remediator::eval::params::FanoutParams;
use remediator::policy::ResolvedPolicy;
use remediator::risk::{RiskLevel, SecurityRisk};
use remediator::scenario::Catalog;
use tokio::sync::watch;

use crate::{close, environment, nearest_rank, trajectory};

fn policy(name: &str, spec: PolicySpec) -> ResolvedPolicy {
    ResolvedPolicy {
        name: name.into(),
        spec,
        hint: ResolvedHint::manual(),
        generation: None,
    }
}

async fn fan_out(
    params: FanoutParams,
    policy: ResolvedPolicy,
) -> (
    Finished,
    Vec<remediator::trajectory::TrajectoryLine>,
    fanout::Plan,
) {
    let artifacts = tempfile::tempdir().unwrap().keep();
    let run_id = format!("test-{}", params.seed);
    let plan = params
        .plan(&Catalog::builtin(), policy, &run_id, None)
        .expect("valid parameters");
    let env = environment(&artifacts, &run_id).await;
    let (_stop, stop_rx) = watch::channel(Stop::Run);
    let (live, _) = watch::channel(Snapshot::initial(plan.info.clone(), 0, 1));
    let finished = fanout::run(plan.clone(), env, Arc::new(Refuse), stop_rx, &live).await;
    let lines = trajectory(&artifacts, &run_id);
    let _ = std::fs::remove_dir_all(&artifacts);
    (finished, lines, plan)
}

/// Every number of the report, from the JSONL and the harness's records.
fn check_against_trajectory(
    finished: &Finished,
    lines: &[remediator::trajectory::TrajectoryLine],
    plan: &fanout::Plan,
) {
    let r = &finished.report;
    let run_id = &r.info.run_id;
    assert_eq!(lines.len(), r.completed, "one line per completed incident");
    assert_eq!(finished.records.len(), r.completed);
    let names: HashSet<&str> = lines.iter().map(|l| l.incident.as_str()).collect();
    assert_eq!(names.len(), lines.len(), "every incident has a unique name");
    for line in lines {
        assert_eq!(line.trace_key, format!("{run_id}:{}", line.incident));
    }
    let fixed = lines
        .iter()
        .filter(|l| l.phase == remediator::crd::IncidentPhase::Resolved && l.service_up)
        .count();
    assert_eq!(r.fixed, fixed);
    assert_eq!(r.failed, lines.len() - fixed);
    assert!(close(
        r.fix_rate,
        (!lines.is_empty()).then(|| fixed as f64 / lines.len() as f64)
    ));
    let steps: Vec<f64> = lines.iter().map(|l| f64::from(l.step_count)).collect();
    let mean = (!steps.is_empty()).then(|| steps.iter().sum::<f64>() / steps.len() as f64);
    assert!(close(r.mean_steps, mean), "{:?} vs {mean:?}", r.mean_steps);
    let refused: u32 = lines
        .iter()
        .flat_map(|l| &l.steps)
        .filter(|s| s.decision == "Denied" || s.decision == "Rejected")
        .count() as u32;
    assert_eq!(r.refused_actions, refused);
    let confirmations = lines
        .iter()
        .filter(|l| l.steps.iter().any(|s| s.decided_by != "gate"))
        .count();
    assert_eq!(r.confirmations_required, confirmations);
    assert_eq!(
        r.fallback_used,
        lines.iter().filter(|l| l.brain.contains('+')).count()
    );
    // Service time is the incident's own latency_s; latency adds the wait.
    let service: Vec<f64> = lines.iter().map(|l| l.latency_s).collect();
    for p in [50.0, 95.0] {
        let got = if p == 50.0 {
            r.service_s.p50
        } else {
            r.service_s.p95
        };
        assert!(close(got, nearest_rank(&service, p)), "service p{p}");
    }
    let mut latency = Vec::new();
    for record in &finished.records {
        let line = lines
            .iter()
            .find(|l| l.incident == record.incident)
            .unwrap_or_else(|| panic!("{} has no trajectory line", record.incident));
        assert_eq!(record.scenario, line.scenario_id);
        assert_eq!(record.steps, line.step_count);
        assert!(close(Some(record.service_s), Some(line.latency_s)));
        assert!(record.wait_s >= 0.0 && record.started_s >= record.arrival_s);
        assert!(close(
            Some(record.wait_s),
            Some(record.started_s - record.arrival_s)
        ));
        latency.push(record.wait_s + line.latency_s);
        let arrival = &plan.arrivals[record.seq as usize];
        assert_eq!(
            (&arrival.scenario, arrival.severity),
            (&record.scenario, record.severity)
        );
        assert!(
            record.arrival_s + 1e-3 >= arrival.at_s,
            "arrived before its time"
        );
    }
    assert!(close(r.latency_s.p50, nearest_rank(&latency, 50.0)));
    assert!(close(r.latency_s.p95, nearest_rank(&latency, 95.0)));
    assert!(
        r.latency_s.p95 >= r.service_s.p95.map(|s| s - 1e-9),
        "latency includes service"
    );
    // Throughput is completions over the wall time to the last one.
    if r.completed > 0 {
        assert!(close(
            r.throughput_per_s,
            Some(r.completed as f64 / r.wall_s)
        ));
    }
    // The mix is what was drawn, dropped arrivals included.
    let mut drawn: BTreeMap<String, usize> = BTreeMap::new();
    for a in plan.arrivals.iter().take(r.generated) {
        *drawn.entry(a.scenario.clone()).or_default() += 1;
    }
    assert_eq!(r.mix, drawn);
    assert_eq!(
        r.generated,
        r.completed + r.dropped + r.cancelled + r.aborted
    );
    for row in &r.per_scenario {
        let mine: Vec<_> = lines
            .iter()
            .filter(|l| l.scenario_id == row.scenario)
            .collect();
        assert_eq!(row.completed, mine.len(), "{}", row.scenario);
        assert_eq!(
            row.fixed,
            mine.iter()
                .filter(|l| l.phase == remediator::crd::IncidentPhase::Resolved)
                .count(),
            "{}",
            row.scenario
        );
        let risk = mine
            .iter()
            .flat_map(|l| &l.steps)
            .map(|s| serde_json::from_value::<SecurityRisk>(serde_json::json!(s.risk)).unwrap())
            .max();
        assert_eq!(row.max_risk, risk, "{}", row.scenario);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_report_matches_its_trajectory_line_for_line() {
    let (finished, lines, plan) = fan_out(
        FanoutParams {
            incidents: Some(12),
            concurrency: 3,
            seed: 21,
            // The hand-written hint fixes every train scenario; validation
            // has faults four deep that may outrun its 20 steps.
            split: "train".into(),
            ..FanoutParams::default()
        },
        policy("optimized", PolicySpec::default()),
    )
    .await;
    let r = &finished.report;
    assert_eq!(
        (r.generated, r.completed, r.fixed),
        (12, 12, 12),
        "{}",
        r.to_text()
    );
    check_against_trajectory(&finished, &lines, &plan);
    // The most severe waiting incident was always served first: in a batch,
    // start order is severity order.
    let mut started = finished.records.clone();
    started.sort_by(|a, b| a.started_s.total_cmp(&b.started_s));
    assert!(
        started.windows(2).all(|w| w[0].severity <= w[1].severity),
        "{:?}",
        started
            .iter()
            .map(|r| (r.seq, r.severity))
            .collect::<Vec<_>>()
    );
    assert!(finished.records.iter().all(|r| r.worker < 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_and_confirmations_are_counted_as_the_trajectory_shows() {
    // Every MEDIUM action (the fixes) needs a confirmation nobody gives.
    let spec = PolicySpec {
        require_confirmation_for: Some(RiskLevel::Medium),
        ..PolicySpec::default()
    };
    let (finished, lines, plan) = fan_out(
        FanoutParams {
            incidents: Some(6),
            concurrency: 2,
            seed: 4,
            scenario_mix: Some("stale_lockfile=1,bad_env_config=1,port_mismatch=1".into()),
            ..FanoutParams::default()
        },
        policy("confirm-medium", spec),
    )
    .await;
    let r = &finished.report;
    assert!(
        r.failed > 0 && r.refused_actions > 0 && r.confirmations_required > 0,
        "{}",
        r.to_text()
    );
    check_against_trajectory(&finished, &lines, &plan);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuous_arrivals_follow_the_seeded_schedule_and_a_full_queue_drops() {
    let params = FanoutParams {
        continuous: true,
        arrival_rate: Some(40.0),
        duration_s: Some(1.0),
        concurrency: 1,
        queue_limit: 2,
        seed: 7,
        scenario_mix: Some("stale_lockfile=2,readiness_probe_fail=1".into()),
        ..FanoutParams::default()
    };
    // The plan holds exactly the schedule the pure function gives.
    let catalog = Catalog::builtin();
    let known: Vec<String> = catalog.ids().iter().map(|s| s.to_string()).collect();
    let expected = arrivals::schedule(
        Pattern::poisson(40.0, 1.0, None).unwrap(),
        &Weights::parse(
            "stale_lockfile=2,readiness_probe_fail=1",
            &known,
            "mix",
            "scenario",
        )
        .unwrap(),
        &default_severities(),
        7,
    );
    let (finished, lines, plan) = fan_out(params, policy("optimized", PolicySpec::default())).await;
    assert_eq!(plan.arrivals, expected);
    let r = &finished.report;
    assert_eq!(r.generated, expected.len(), "every arrival came");
    // 40 a second for one worker whose incidents take tens of milliseconds
    // at best: the queue of two overflows.
    assert!(r.dropped > 0, "{}", r.to_text());
    assert_eq!(r.completed + r.dropped, r.generated);
    check_against_trajectory(&finished, &lines, &plan);
    let ran: HashSet<u64> = finished.records.iter().map(|r| r.seq).collect();
    for (seq, _, _) in &finished.unfinished.dropped {
        assert!(!ran.contains(seq), "a dropped incident ran");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_queue_free_workers_still_take_arrivals() {
    let (finished, lines, plan) = fan_out(
        FanoutParams {
            continuous: true,
            arrival_rate: Some(30.0),
            duration_s: Some(1.0),
            concurrency: 2,
            queue_limit: 0,
            seed: 9,
            ..FanoutParams::default()
        },
        policy("optimized", PolicySpec::default()),
    )
    .await;
    let r = &finished.report;
    assert!(r.completed >= 2 && r.dropped > 0, "{}", r.to_text());
    assert_eq!(r.completed + r.dropped, r.generated);
    // Nothing ever waited: every incident started the moment it arrived.
    assert!(
        finished.records.iter().all(|rec| rec.wait_s < 0.05),
        "{:?}",
        finished.records
    );
    check_against_trajectory(&finished, &lines, &plan);
}
