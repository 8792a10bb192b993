//! 200 incidents through the fan-out at concurrency 8 leave nothing
//! behind: no process, no scratch directory, no port lease or listening
//! socket, no file descriptor. Its own test binary, so no other test's
//! processes or descriptors blur the counts.

use std::path::PathBuf;
use std::sync::Arc;

use remediator::agent::confirm::Refuse;
use remediator::agent::hint::ResolvedHint;
use remediator::crd::PolicySpec;
use remediator::eval::fanout::{self, Snapshot, Stop};
use remediator::eval::params::FanoutParams;
use remediator::local::{Environment, Recorder};
use remediator::policy::ResolvedPolicy;
use remediator::scenario::{Catalog, PortLease};
use tokio::sync::watch;

#[path = "../common/procs.rs"]
mod procs;

fn remediator_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_remediator"))
}

/// Ports on which something of ours listens (from the leases' range: any
/// loopback listener whose inode is one of our descriptors').
fn listening_sockets() -> usize {
    let mine: std::collections::HashSet<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().to_string();
            l.strip_prefix("socket:[")?
                .strip_suffix(']')
                .map(str::to_string)
        })
        .collect();
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|t| t.lines().skip(1).map(str::to_string).collect::<Vec<_>>())
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(3) == Some(&"0A") && f.get(9).is_some_and(|i| mine.contains(*i))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_incidents_leave_no_process_directory_port_or_descriptor() {
    let artifacts = tempfile::tempdir().unwrap();
    let mut env = Environment::local(remediator_bin(), Catalog::builtin()).await;
    env.recorder = Some(Recorder {
        artifacts_dir: artifacts.path().to_path_buf(),
        run_id: "scale".into(),
    });
    let env = Arc::new(env);
    let policy = ResolvedPolicy {
        name: "optimized".into(),
        spec: PolicySpec::default(),
        hint: ResolvedHint::manual(),
        generation: None,
    };
    let plan = |n: usize, seed: u64| {
        FanoutParams {
            incidents: Some(n),
            concurrency: 8,
            seed,
            // The split the hand-written hint fixes whole: this test is
            // about what 200 incidents leave behind.
            split: "train".into(),
            ..FanoutParams::default()
        }
        .plan(&Catalog::builtin(), policy.clone(), "scale", None)
        .unwrap()
    };
    let run = |plan: fanout::Plan| {
        let env = env.clone();
        async move {
            let (_stop, stop) = watch::channel(Stop::Run);
            let (live, _) = watch::channel(Snapshot::initial(plan.info.clone(), 0, 8));
            fanout::run(plan, env, Arc::new(Refuse), stop, &live).await
        }
    };
    // Warm up: whatever the runtime and the sandbox keep open once.
    let warm = run(plan(8, 1)).await;
    assert_eq!(warm.report.fixed, 8, "{}", warm.report.to_text());
    let fds = procs::open_fds();
    let finished = run(plan(200, 2)).await;
    let r = &finished.report;
    println!("{}", r.to_text());
    assert_eq!((r.completed, r.fixed), (200, 200), "{}", r.to_text());
    let lines = std::fs::read_to_string(artifacts.path().join("runs/scale.jsonl")).unwrap();
    assert_eq!(
        lines.lines().count(),
        208,
        "one trajectory line per incident"
    );
    procs::assert_no_process_or_scratch_left();
    assert_eq!(PortLease::outstanding(), 0, "port leases left");
    assert_eq!(listening_sockets(), 0, "listening sockets left");
    assert_eq!(procs::open_fds(), fds, "file descriptors leaked");
}
