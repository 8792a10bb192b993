//! What exporting traces costs: whole `remediator run` processes without an
//! exporter, exporting to a real Jaeger, and pointed at a collector that is
//! not there, interleaved so drift hits each alike (median, p90, ratio to
//! no exporter); then `remediator fanout` throughput with and without
//! traces.
//! Run: `cargo build --release && scripts/jaeger install &&
//! cargo bench --bench tracing [-- RUNS [INCIDENTS]]`.

use std::path::Path;
use std::time::{Duration, Instant};

#[path = "../e2e/common/jaeger.rs"]
mod jaeger;
#[path = "support.rs"]
mod support;

const SCENARIO: &str = "stale_lockfile";

fn remediator(dir: &Path, args: &[&str], endpoint: Option<&str>) -> (Duration, String) {
    let mut command = std::process::Command::new(support::release_binary("remediator"));
    command
        .args(args)
        .current_dir(dir)
        .env("REMEDIATOR_ARTIFACTS", dir.join("artifacts"))
        .env("TMPDIR", dir)
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env_remove("OPENAI_API_KEY");
    if let Some(endpoint) = endpoint {
        command.env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint);
    }
    let started = Instant::now();
    let out = command.output().expect("remediator runs");
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        eprintln!(
            "remediator {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::process::exit(1);
    }
    (took, stdout)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(15);
    let incidents: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(40);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(jaeger) = rt.block_on(jaeger::Jaeger::start()) else {
        eprintln!("Jaeger is not installed: scripts/jaeger install");
        std::process::exit(1);
    };
    // A port nothing listens on: the export fails at every batch.
    let nowhere = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let configs: [(&str, Option<&str>); 3] = [
        ("no exporter", None),
        ("exporting to Jaeger", Some(jaeger.otlp.as_str())),
        ("collector unreachable", Some(nowhere.as_str())),
    ];
    let dir = tempfile::tempdir().unwrap();
    let run_args = ["run", "--scenario", SCENARIO, "-o", "json"];
    // One warm-up each (page cache, the sandbox probe's first run).
    for (_, endpoint) in &configs {
        remediator(dir.path(), &run_args, *endpoint);
    }
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); configs.len()];
    let mut traced = 0;
    let mut last_trace = String::new();
    for _ in 0..runs {
        for (i, (_, endpoint)) in configs.iter().enumerate() {
            let (took, stdout) = remediator(dir.path(), &run_args, *endpoint);
            times[i].push(took);
            let status: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_default();
            assert_eq!(status["status"]["phase"], "Resolved", "{stdout}");
            if let (1, Some(id)) = (i, status["status"]["traceId"].as_str()) {
                traced += 1;
                last_trace = id.to_string();
            }
        }
    }
    assert_eq!(traced, runs, "every exported run has a trace id");
    println!(
        "`remediator run --scenario {SCENARIO}` (runbook brain), {runs} whole-process runs each, interleaved:"
    );
    println!("| exporter | median | p90 | median vs none |");
    println!("|---|---|---|---|");
    let base = {
        let mut t = times[0].clone();
        t.sort();
        percentile(&t, 0.5)
    };
    for ((name, _), mut t) in configs.iter().zip(times) {
        t.sort();
        let median = percentile(&t, 0.5);
        println!(
            "| {name} | {:.1} ms | {:.1} ms | {:.3}x |",
            ms(median),
            ms(percentile(&t, 0.9)),
            median.as_secs_f64() / base.as_secs_f64()
        );
    }

    // What the instrumentation costs when nothing is exported: no
    // subscriber is installed, so a span is a disabled callsite.
    let trace = rt.block_on(jaeger.trace(&last_trace, |t| {
        jaeger::spans(t).iter().any(|s| s.parent.is_none())
    }));
    let spans_per_incident = jaeger::spans(&trace).len();
    let rounds: u32 = 1_000_000;
    let started = Instant::now();
    for step in 0..rounds {
        let span = tracing::info_span!("step", step, risk = tracing::field::Empty);
        let _entered = std::hint::black_box(&span).enter();
    }
    let per_span = started.elapsed() / rounds;
    println!();
    println!(
        "Without an exporter: {:.1} ns per span (opened and entered, no subscriber, {rounds} spans); \
         an incident opens {spans_per_incident} (its trace in Jaeger), so {:.2} µs per incident",
        per_span.as_secs_f64() * 1e9,
        per_span.as_secs_f64() * 1e6 * spans_per_incident as f64
    );

    let incidents_arg = incidents.to_string();
    let fanout_args = [
        "fanout",
        "--incidents",
        &incidents_arg,
        "--concurrency",
        "4",
        "-o",
        "json",
    ];
    println!();
    println!("`remediator fanout --incidents {incidents} --concurrency 4`, alternating:");
    println!("| exporter | incidents/s (each run) | fixed |");
    println!("|---|---|---|");
    let mut rows: Vec<(&str, Vec<f64>, Vec<u64>)> = vec![
        ("no exporter", Vec::new(), Vec::new()),
        ("exporting to Jaeger", Vec::new(), Vec::new()),
    ];
    for _ in 0..3 {
        for (i, endpoint) in [None, Some(jaeger.otlp.as_str())].into_iter().enumerate() {
            let (_, stdout) = remediator(dir.path(), &fanout_args, endpoint);
            let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
            rows[i]
                .1
                .push(report["throughput_per_s"].as_f64().unwrap_or(0.0));
            rows[i].2.push(report["fixed"].as_u64().unwrap_or(0));
        }
    }
    for (name, rates, fixed) in &rows {
        let rates: Vec<String> = rates.iter().map(|r| format!("{r:.1}")).collect();
        let fixed: Vec<String> = fixed.iter().map(u64::to_string).collect();
        println!(
            "| {name} | {} | {} of {incidents} |",
            rates.join(", "),
            fixed.join(", ")
        );
    }
}
