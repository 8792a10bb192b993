//! Fan-out throughput on this machine: a batch of real incidents (runbook
//! brain, the manual hint, every scenario) at concurrency 1, 2, 4 and 8;
//! throughput, p95 latencies and the harness's peak RSS per level, next to
//! a bare target-service start, probe and stop (what every incident costs
//! before the agent does anything); then once the same batch on the
//! cluster's path (agent process, Action API, sidecar process).
//! Run: `cargo build --release && cargo bench --bench fanout [-- INCIDENTS]`.

use std::sync::Arc;
use std::time::Instant;

use remediator::agent::confirm::Refuse;
use remediator::agent::hint::ResolvedHint;
use remediator::crd::PolicySpec;
use remediator::eval::fanout::{self, Snapshot, Stop};
use remediator::eval::params::FanoutParams;
use remediator::local::Environment;
use remediator::policy::ResolvedPolicy;
use remediator::scenario::Catalog;
use tokio::sync::watch;

#[path = "../e2e/common/procs.rs"]
mod procs;
#[path = "fanout/sidecar_path.rs"]
mod sidecar_path;
#[path = "../e2e/common/sidecar_process.rs"]
mod sidecar_process;
#[path = "support.rs"]
mod support;

/// Peak resident set of this process since the last reset, in MiB.
fn peak_rss_mib() -> f64 {
    procs::status_kib("VmHWM:") as f64 / 1024.0
}

fn reset_peak_rss() {
    // "5" resets VmHWM to the current RSS (Linux >= 4.0).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// CPU seconds the whole machine was busy (all cores, from /proc/stat):
/// what incidents really cost on a machine that runs nothing else. The
/// children's own counters miss a process tree killed rather than waited
/// for (a warm sandbox's helpers), so they undercount.
fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    // user nice system idle iowait irq softirq steal ...: all but idle and iowait.
    let idle = ticks.get(3).copied().unwrap_or(0.0) + ticks.get(4).copied().unwrap_or(0.0);
    (ticks.iter().sum::<f64>() - idle) / 100.0
}

/// CPU seconds used by this process and by its reaped children.
fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rfind(')').map_or("", |i| &stat[i + 2..]);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    // utime, stime, cutime, cstime are fields 14-17 (11-14 after the name), in ticks.
    let tick = 100.0;
    let get = |i: usize| f.get(i).copied().unwrap_or(0.0) / tick;
    (get(11) + get(12), get(13) + get(14))
}

#[tokio::main]
async fn main() {
    let incidents: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(104);
    let env = Arc::new(
        Environment::local(support::release_binary("remediator"), Catalog::builtin()).await,
    );
    println!("sandbox: {}", env.sandbox.containment().summary());
    // Every incident creates and removes some thirty files there; on a
    // disk filesystem that costs more than on a tmpfs (set TMPDIR).
    let scratch = std::env::temp_dir();
    println!(
        "scratch: {} on {}",
        scratch.display(),
        support::filesystem_of(&scratch)
    );
    println!(
        "{} cores; {incidents} incidents per level (every scenario, runbook brain, manual hint, at most 32 steps)",
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

    // Room for every scenario: the four-fault one takes 28 steps with the
    // manual hint, past the default 20, and a throughput counts fixes.
    let policy = ResolvedPolicy {
        name: "optimized".into(),
        spec: PolicySpec {
            max_steps: 32,
            ..PolicySpec::default()
        },
        hint: ResolvedHint::manual(),
        generation: None,
    };
    println!(
        "{:>11} {:>11} {:>8} {:>12} {:>12} {:>8} {:>13} {:>13} {:>12} {:>10}",
        "concurrency",
        "incidents/s",
        "fixed",
        "p95 latency",
        "p95 service",
        "wall ms",
        "harness CPU",
        "machine CPU",
        "harness RSS",
        "tree RSS"
    );
    let mut single_ms = 0.0;
    let mut cpu = (0.0, 0.0);
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
        // Sample the whole process tree's RSS while the level runs.
        let (done_tx, mut done_rx) = watch::channel(false);
        let sampler = tokio::spawn(async move {
            let mut peak = 0f64;
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(50));
            loop {
                tokio::select! {
                    _ = tick.tick() => peak = peak.max(procs::tree_rss_mib()),
                    _ = done_rx.changed() => return peak,
                }
            }
        });
        let cpu_before = cpu_seconds();
        let busy_before = machine_busy_seconds();
        let finished = fanout::run(plan, env.clone(), Arc::new(Refuse), stop, &live).await;
        let cpu_after = cpu_seconds();
        let busy_after = machine_busy_seconds();
        let _ = done_tx.send(true);
        let tree_peak = sampler.await.unwrap_or(0.0);
        let r = &finished.report;
        failures += r.failed;
        let mean_ms = r.wall_s * 1e3 / r.completed.max(1) as f64;
        if concurrency == 1 {
            single_ms = mean_ms;
        }
        let n = r.completed.max(1) as f64;
        let harness_cpu_ms = (cpu_after.0 - cpu_before.0) * 1e3 / n;
        let machine_cpu_ms = (busy_after - busy_before) * 1e3 / n;
        if concurrency == 1 {
            cpu = (harness_cpu_ms, machine_cpu_ms);
        }
        println!(
            "{:>11} {:>11.1} {:>8} {:>10.1}ms {:>10.1}ms {:>8.1} {:>10.1}ms {:>11.1}ms {:>8.1} MiB {:>6.1} MiB",
            concurrency,
            r.throughput_per_s.unwrap_or(0.0),
            format!("{}/{}", r.fixed, r.completed),
            r.latency_s.p95.unwrap_or(0.0) * 1e3,
            r.service_s.p95.unwrap_or(0.0) * 1e3,
            mean_ms,
            harness_cpu_ms,
            machine_cpu_ms,
            peak_rss_mib(),
            tree_peak
        );
    }
    println!(
        "bare target-service start + probe + stop: {bare_ms:.1} ms; one incident at concurrency 1: {single_ms:.1} ms ({:.2}x; the rest is the agent's steps in the sandbox, verification and recording)",
        single_ms / bare_ms
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    println!(
        "CPU per incident at concurrency 1: harness {:.1} ms, the whole machine {:.1} ms: at most {:.1} incidents/s on {cores} cores if nothing else ran",
        cpu.0,
        cpu.1,
        cores * 1e3 / cpu.1.max(1e-9)
    );
    println!(
        "wall ms: wall time per completed incident; CPU: per completed incident (machine: every core's busy time during the level, whatever ran)"
    );
    println!(
        "p95 latency is from arrival: in a batch every incident arrives at t=0, so it includes the wait for a worker"
    );

    // Once, for comparison: the path an incident takes in a cluster.
    let concurrency = 8;
    let scenarios: Vec<String> = FanoutParams {
        incidents: Some(incidents),
        concurrency,
        seed: 17,
        ..FanoutParams::default()
    }
    .plan(&catalog, policy.clone(), "bench", None)
    .expect("a valid plan")
    .arrivals
    .into_iter()
    .map(|arrival| arrival.scenario)
    .collect();
    let busy_before = machine_busy_seconds();
    let batch = sidecar_path::run(
        &env,
        &support::release_binary("remediator"),
        &policy.spec,
        &scenarios,
        concurrency,
    )
    .await;
    let busy = machine_busy_seconds() - busy_before;
    failures += batch.incidents - batch.fixed;
    println!(
        "agent process -> Action API -> sidecar process, concurrency {concurrency}: {:.1} incidents/s, {}/{} fixed, machine CPU {:.1} ms per incident",
        batch.incidents as f64 / batch.wall_s.max(1e-9),
        batch.fixed,
        batch.incidents,
        busy * 1e3 / batch.incidents.max(1) as f64
    );
    if failures > 0 {
        eprintln!("{failures} incidents were not resolved");
        std::process::exit(1);
    }
}
