//! What containment costs per command: the same commands run plainly
//! (`sh -c` with a scrubbed environment, as before the sandbox) and in the
//! sandbox with Landlock only, with every layer on the cold path (a helper
//! per command) and with every layer in a warm sandbox (one helper per
//! incident, a fresh process per command forked by its op stage), side by side.
//! Run: `cargo build --release && cargo bench --bench sandbox_cost [-- N]`.

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::resource::{UsageWho, getrusage};
use remediator::sandbox::{HelperProgram, Job, Layer, Op, Outcome, Sandbox, WarmSandbox};

#[path = "support.rs"]
mod support;

/// Between two commands, as between two agent steps.
const PAUSE: Duration = Duration::from_millis(20);

const COMMANDS: [&str; 3] = [
    "true",
    "cat service.conf",
    "ls -la; grep -c port service.conf",
];

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// The largest resident set of any child waited for so far, KiB.
fn children_max_rss_kib() -> i64 {
    getrusage(UsageWho::RUSAGE_CHILDREN).map_or(0, |u| u.max_rss())
}

async fn plain(root: &Path, command: &str) {
    let status = tokio::process::Command::new("/bin/sh")
        .args(["-c", command])
        .current_dir(root)
        .env_clear()
        .env("PATH", remediator::sandbox::SAFE_PATH)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .output()
        .await
        .expect("sh runs");
    assert!(status.status.success(), "{command}: {status:?}");
}

/// Where a contained command runs.
enum Contained<'a> {
    Cold(&'a Sandbox),
    Warm(&'a WarmSandbox),
}

async fn contained(how: Contained<'_>, root: &Path, command: &str) {
    let job = Job {
        root,
        service: "127.0.0.1:9".parse().unwrap(),
        env: vec![("PATH".into(), remediator::sandbox::SAFE_PATH.into())],
        timeout: Duration::from_secs(30),
        max_output_bytes: 16 * 1024,
    };
    let op = Op::Exec {
        command: command.into(),
    };
    let outcome = match how {
        Contained::Cold(sandbox) => sandbox.run(job, op).await,
        Contained::Warm(warm) => warm.run(job, op).await,
    }
    .expect("the sandbox runs it");
    assert!(
        matches!(
            outcome,
            Outcome::Finished {
                exit_code: Some(0),
                ..
            }
        ),
        "{command}: {outcome:?}"
    );
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200);
    let helper = HelperProgram {
        program: support::release_binary("remediator"),
        prefix_args: Vec::new(),
    };
    let full = Sandbox::new(helper.clone()).await;
    println!("this machine: {}", full.containment().summary());
    let landlock_only = Sandbox::with_layers(
        helper,
        vec![Layer::LandlockFs, Layer::LandlockNet, Layer::LandlockScope],
    );
    let scratch = remediator::scratch::ScratchDir::create(full.identity()).unwrap();
    let root = scratch.root();
    std::fs::write(root.join("service.conf"), "port = 8080\nlog_level = info\n").unwrap();
    if let Some(id) = full.identity() {
        nix::unistd::chown(
            &root.join("service.conf"),
            Some(nix::unistd::Uid::from_raw(id.uid)),
            Some(nix::unistd::Gid::from_raw(id.gid)),
        )
        .unwrap();
    }
    assert!(
        full.containment().is_full(),
        "the warm sandbox needs every layer"
    );
    let warm = full.warm(&root, "127.0.0.1:9".parse().unwrap());
    println!(
        "{rounds} runs of each command, {} ms apart; wall time per command, and the largest child RSS",
        PAUSE.as_millis()
    );
    println!(
        "{:<42} {:>9} {:>9} {:>9} {:>9} {:>11} {:>12}",
        "command / how", "median", "p95", "mean", "x plain", "over plain", "max RSS KiB"
    );
    for command in COMMANDS {
        let mut plain_median = None;
        for how in [
            "plain",
            "landlock only",
            "all layers, cold",
            "all layers, warm",
        ] {
            let rss_before = children_max_rss_kib();
            let mut times = Vec::with_capacity(rounds);
            for _ in 0..rounds {
                // Steps come apart (the model, the gate): each command
                // starts after a pause, on every path alike, not timed.
                tokio::time::sleep(PAUSE).await;
                let started = Instant::now();
                match how {
                    "plain" => plain(&root, command).await,
                    "landlock only" => {
                        contained(Contained::Cold(&landlock_only), &root, command).await
                    }
                    "all layers, cold" => contained(Contained::Cold(&full), &root, command).await,
                    _ => contained(Contained::Warm(&warm), &root, command).await,
                }
                times.push(started.elapsed());
            }
            let rss = children_max_rss_kib().max(rss_before);
            let mean = times.iter().sum::<Duration>() / rounds as u32;
            times.sort();
            let median = percentile(&times, 0.5);
            let base = *plain_median.get_or_insert(median);
            println!(
                "{:<42} {:>7.2}ms {:>7.2}ms {:>7.2}ms {:>8.1}x {:>9.2}ms {:>12}",
                format!("{command} / {how}"),
                median.as_secs_f64() * 1e3,
                percentile(&times, 0.95).as_secs_f64() * 1e3,
                mean.as_secs_f64() * 1e3,
                median.as_secs_f64() / base.as_secs_f64(),
                (median.as_secs_f64() - base.as_secs_f64()) * 1e3,
                rss
            );
        }
    }
    drop(warm);
    scratch.remove().await;
}
