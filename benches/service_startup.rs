//! How fast a scenario's service comes up and how much memory it holds, for
//! the standalone `target-service` binary and `remediator target-service`,
//! side by side. Run: `cargo bench --bench service_startup [-- N]`.

use std::time::{Duration, Instant};

#[path = "support.rs"]
mod support;

use remediator::scenario::{Catalog, ChildProgram, Launch};
use remediator::verify::http_get;

/// A `/proc` memory figure in KiB: RSS counts shared library and binary
/// pages in full; PSS shares them out, so it is what N services really cost.
fn proc_kib(pid: u32, file: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn memory_kib(pids: &[u32]) -> (u64, u64) {
    let n = pids.len().max(1) as u64;
    let rss: u64 = pids.iter().map(|p| proc_kib(*p, "status", "VmRSS:")).sum();
    let pss: u64 = pids
        .iter()
        .map(|p| proc_kib(*p, "smaps_rollup", "Pss:"))
        .sum();
    (rss / n, pss / n)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

struct Row {
    name: &'static str,
    median: Duration,
    p95: Duration,
    /// (RSS, PSS) of one supervisor and one service process, mean.
    supervisor: (u64, u64),
    service: (u64, u64),
}

fn measure(
    name: &'static str,
    program: ChildProgram,
    count: usize,
    rt: &tokio::runtime::Runtime,
) -> Row {
    let catalog = Catalog::builtin();
    let launch = Launch::with_program(program);
    let mut times = Vec::new();
    let mut services = Vec::new();
    for _ in 0..count {
        let started = Instant::now();
        let service = rt
            .block_on(launch.start(&catalog, "stale_lockfile"))
            .expect("service starts");
        let answer = rt
            .block_on(http_get(service.address, "/", 4096))
            .expect("first request served");
        assert_eq!(answer.status, 500, "the fault is in place");
        times.push(started.elapsed());
        services.push(service);
    }
    times.sort();
    let supervisors: Vec<u32> = services.iter().filter_map(|s| s.supervisor_pid()).collect();
    let children: Vec<u32> = services.iter().filter_map(|s| s.first_state.pid).collect();
    let memory = (memory_kib(&supervisors), memory_kib(&children));
    rt.block_on(futures::future::join_all(
        services.into_iter().map(|s| s.stop()),
    ));
    Row {
        name,
        median: percentile(&times, 0.5),
        p95: percentile(&times, 0.95),
        supervisor: memory.0,
        service: memory.1,
    }
}

fn main() {
    let count: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100);
    let standalone = support::release_binary("target-service");
    let remediator = support::release_binary("remediator");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let rows = [
        measure(
            "target-service",
            ChildProgram {
                program: standalone,
                prefix_args: vec![],
            },
            count,
            &rt,
        ),
        measure(
            "remediator target-service",
            ChildProgram {
                program: remediator,
                prefix_args: vec!["target-service".into()],
            },
            count,
            &rt,
        ),
    ];
    println!(
        "{count} services of stale_lockfile kept running at once; spawn to first served request:"
    );
    println!(
        "{:<26} {:>8} {:>8}  {:>22}  {:>22}",
        "binary", "median", "p95", "supervisor RSS/PSS KiB", "service RSS/PSS KiB"
    );
    for r in &rows {
        println!(
            "{:<26} {:>6.1}ms {:>6.1}ms  {:>22}  {:>22}",
            r.name,
            r.median.as_secs_f64() * 1e3,
            r.p95.as_secs_f64() * 1e3,
            format!("{} / {}", r.supervisor.0, r.supervisor.1),
            format!("{} / {}", r.service.0, r.service.1),
        );
    }
    let (a, b) = (&rows[0], &rows[1]);
    let pss = |r: &Row| (r.supervisor.1 + r.service.1) as f64;
    println!(
        "ratio remediator/standalone: startup {:.2}x, PSS per service {:.2}x",
        b.median.as_secs_f64() / a.median.as_secs_f64(),
        pss(b) / pss(a)
    );
}
