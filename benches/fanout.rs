//! Fan-out throughput on this machine: a batch of real incidents (runbook
//! brain, the manual hint, every scenario) at concurrency 1, 2, 4 and 8;
//! throughput, p95 latencies and the harness's peak RSS per level, next to
//! a bare target-service start, probe and stop (what every incident costs
//! before the agent does anything).
//! Run: `cargo build --release && cargo bench --bench fanout [-- INCIDENTS]`.

use std::sync::Arc;
use std::time::Instant;

use remediator::agent::confirm::Refuse;
use remediator::agent::hint::ResolvedHint;
use remediator::agent::llm::LlmEnvironment;
use remediator::crd::PolicySpec;
use remediator::eval::fanout::{self, Snapshot, Stop};
use remediator::eval::params::FanoutParams;
use remediator::incident::Environment;
use remediator::policy::ResolvedPolicy;
use remediator::sandbox::{HelperProgram, Sandbox};
use remediator::scenario::{Catalog, ChildProgram, Launch};
use tokio::sync::watch;

#[path = "support.rs"]
mod support;

/// Peak resident set of this process since the last reset, in MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

fn reset_peak_rss() {
    // "5" resets VmHWM to the current RSS (Linux >= 4.0).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

#[tokio::main]
async fn main() {
    let incidents: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(104);
    let program = support::release_binary("remediator");
    let env = Arc::new(Environment {
        catalog: Catalog::builtin(),
        launch: Launch::with_program(ChildProgram {
            program: program.clone(),
            prefix_args: vec!["target-service".into()],
        }),
        sandbox: Arc::new(
            Sandbox::new(HelperProgram {
                program,
                prefix_args: Vec::new(),
            })
            .await,
        ),
        llm: LlmEnvironment::default(),
        recorder: None,
        operator_secrets: Vec::new(),
    });
    println!("sandbox: {}", env.sandbox.containment().summary());
    println!(
        "{} cores; {incidents} incidents per level (every scenario, runbook brain, manual hint)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // What every incident pays before its agent acts: start, probe, stop.
    let catalog = env.catalog.clone();
    let ids: Vec<String> = catalog.scenarios.iter().map(|s| s.id.clone()).collect();
    let bare_rounds = 52;
    let started = Instant::now();
    for i in 0..bare_rounds {
        let scenario = catalog.get(&ids[i % ids.len()]).unwrap();
        let service = env
            .launch
            .start(&catalog, &scenario.id)
            .await
            .expect("service starts");
        let _ = remediator::verify::probe(service.address, &scenario.verify.path, 1).await;
        service.stop().await;
    }
    let bare_ms = started.elapsed().as_secs_f64() * 1e3 / bare_rounds as f64;

    let policy = ResolvedPolicy {
        name: "optimized".into(),
        spec: PolicySpec::default(),
        hint: ResolvedHint::manual(),
        generation: None,
    };
    println!(
        "{:>11} {:>12} {:>9} {:>13} {:>13} {:>10} {:>14}",
        "concurrency",
        "incidents/s",
        "fixed",
        "p95 latency",
        "p95 service",
        "mean ms",
        "peak RSS MiB"
    );
    let mut single_ms = 0.0;
    let mut failures = 0;
    for concurrency in [1, 2, 4, 8] {
        let plan = FanoutParams {
            incidents: Some(incidents),
            concurrency,
            seed: 17,
            ..FanoutParams::default()
        }
        .plan(&catalog, policy.clone(), "bench", None)
        .expect("a valid plan");
        reset_peak_rss();
        let (_stop, stop) = watch::channel(Stop::Run);
        let (live, _) = watch::channel(Snapshot::initial(plan.info.clone(), 0, concurrency));
        let finished = fanout::run(plan, env.clone(), Arc::new(Refuse), stop, &live).await;
        let r = &finished.report;
        failures += r.failed;
        let mean_ms = r.wall_s * 1e3 / r.completed.max(1) as f64;
        if concurrency == 1 {
            single_ms = mean_ms;
        }
        println!(
            "{:>11} {:>12.1} {:>9} {:>11.1}ms {:>11.1}ms {:>10.1} {:>14.1}",
            concurrency,
            r.throughput_per_s.unwrap_or(0.0),
            format!("{}/{}", r.fixed, r.completed),
            r.latency_s.p95.unwrap_or(0.0) * 1e3,
            r.service_s.p95.unwrap_or(0.0) * 1e3,
            mean_ms,
            peak_rss_mib()
        );
    }
    println!(
        "bare target-service start + probe + stop: {bare_ms:.1} ms; one incident at concurrency 1: {single_ms:.1} ms ({:.2}x; the rest is the agent's steps in the sandbox, verification and recording)",
        single_ms / bare_ms
    );
    println!(
        "p95 latency is from arrival: in a batch every incident arrives at t=0, so it includes the wait for a worker"
    );
    if failures > 0 {
        eprintln!("{failures} incidents were not resolved");
        std::process::exit(1);
    }
}
