//! What doing no harm costs, against doing without: a snapshot before a
//! mutating step (first and incremental), a restore, and redacting one
//! observation. Run: `cargo bench --bench no_harm_cost [-- N]`.

use std::time::{Duration, Instant};

use remediator::redact::Redactor;
use remediator::workspace::journal::{DEFAULT_MAX_SNAPSHOT_BYTES, Journal};

fn timed(rounds: usize, mut work: impl FnMut(usize)) -> Duration {
    let started = Instant::now();
    for i in 0..rounds {
        work(i);
    }
    started.elapsed() / rounds as u32
}

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(500);
    // A scenario root as the catalog lays it out, plus a log of 64 KiB.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let catalog = target_service::Catalog::builtin();
    target_service::root::prepare(
        &root,
        &catalog,
        catalog.get("stale_lockfile").unwrap(),
        8080,
    )
    .unwrap();
    std::fs::write(root.join("service.log"), "x".repeat(64 * 1024)).unwrap();
    let size: u64 = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    let mut journal = Journal::open(
        &dir.path().join("journal"),
        &root,
        DEFAULT_MAX_SNAPSHOT_BYTES,
    )
    .unwrap();
    let first = timed(1, |_| {
        journal.take(0).unwrap();
    });
    let unchanged = timed(rounds, |i| {
        journal.take(i as u32 + 1).unwrap();
    });
    let one_change = timed(rounds, |i| {
        std::fs::write(root.join("service.conf"), format!("port = {i}\n")).unwrap();
        journal.take((rounds + i) as u32 + 1).unwrap();
    });
    let restore = timed(rounds.min(200), |_| {
        journal.restore(0).unwrap();
    });
    println!(
        "root: {size} bytes in {} entries",
        std::fs::read_dir(&root).unwrap().count()
    );
    println!("{:<44} {:>12}", "per mutating step", "time");
    println!("{:<44} {:>10.1}us", "no snapshot (before do-no-harm)", 0.0);
    println!(
        "{:<44} {:>10.1}us",
        "first snapshot (copies everything)",
        first.as_secs_f64() * 1e6
    );
    println!(
        "{:<44} {:>10.1}us",
        "snapshot, nothing changed (reuses copies)",
        unchanged.as_secs_f64() * 1e6
    );
    println!(
        "{:<44} {:>10.1}us",
        "snapshot, one file changed",
        one_change.as_secs_f64() * 1e6
    );
    println!(
        "{:<44} {:>10.1}us",
        "restore to the first snapshot",
        restore.as_secs_f64() * 1e6
    );

    let observation: String = (0..400)
        .map(|i| format!("line {i}: status=ok latency_ms={i} path=/health\n"))
        .chain([
            "REQUIRED_API_KEY=local-dev-key\nAuthorization: Bearer abcdefghijklmnopqrstuvwx\n"
                .to_string(),
        ])
        .collect();
    let redactor = Redactor::new(&["sk-operator-0123456789abcdef".to_string()], &[]);
    let plain = timed(rounds, |_| {
        std::hint::black_box(observation.clone());
    });
    let redacted = timed(rounds, |_| {
        std::hint::black_box(redactor.redact(&observation));
    });
    println!();
    println!("per observation of {} bytes", observation.len());
    println!(
        "{:<44} {:>10.1}us",
        "as is (copy)",
        plain.as_secs_f64() * 1e6
    );
    println!(
        "{:<44} {:>10.1}us  ({:.0}x)",
        "redacted",
        redacted.as_secs_f64() * 1e6,
        redacted.as_secs_f64() / plain.as_secs_f64()
    );
}
