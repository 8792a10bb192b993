//! Many incidents in one process leave nothing behind: 20,000 port leases
//! and 500 sequential incidents, with memory flat and no file descriptor,
//! process, directory or port lease left over. Its own test binary, so no
//! other test's processes or descriptors blur the count.

use std::path::PathBuf;

use remediator::agent::confirm::Refuse;
use remediator::agent::hint::ResolvedHint;
use remediator::crd::{IncidentPhase, PolicySpec};
use remediator::local::{self, Environment, LocalIncident};
use remediator::policy::ResolvedPolicy;
use remediator::scenario::{Catalog, PortLease, Split};

#[path = "../common/procs.rs"]
mod procs;

fn remediator_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_remediator"))
}

/// One test, so nothing else in this process holds leases meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_and_incidents_leak_no_memory_descriptor_process_or_directory() {
    for _ in 0..20_000 {
        let lease = PortLease::acquire().expect("a free port pair");
        assert!(lease.port() > 0);
    }
    assert_eq!(PortLease::outstanding(), 0, "20,000 leases, all released");

    let catalog = Catalog::builtin();
    let scenarios = catalog.ids_in(Some(Split::Train));
    let env = Environment::local(remediator_bin(), catalog).await;
    let run = |i: usize| {
        let scenario = scenarios[i % scenarios.len()].clone();
        LocalIncident {
            name: format!("inc-{i}"),
            scenario,
            policy: ResolvedPolicy {
                name: "optimized".into(),
                spec: PolicySpec::default(),
                hint: ResolvedHint::manual(),
                generation: None,
            },
            classifier_off: false,
            keep: false,
        }
    };
    const WARM_UP: usize = 50;
    const TOTAL: usize = 500;
    let mut marks = Vec::new();
    for i in 0..TOTAL {
        let outcome = local::run(&run(i), &env, &Refuse).await;
        assert_eq!(
            outcome.status.phase,
            IncidentPhase::Resolved,
            "incident {i}: {:?}",
            outcome.status.message
        );
        if i + 1 == WARM_UP || i + 1 == TOTAL {
            marks.push((procs::status_kib("VmRSS:"), procs::open_fds()));
        }
    }
    let [(rss_warm, fds_warm), (rss_end, fds_end)] = marks[..] else {
        unreachable!()
    };
    println!(
        "after {WARM_UP}: RSS {rss_warm} KiB, {fds_warm} fds; after {TOTAL}: RSS {rss_end} KiB, {fds_end} fds"
    );
    assert!(
        rss_end <= rss_warm + 4 * 1024,
        "memory grew from {rss_warm} to {rss_end} KiB over {} incidents",
        TOTAL - WARM_UP
    );
    assert_eq!(fds_end, fds_warm, "file descriptors leaked");
    procs::assert_no_process_or_scratch_left();
    assert_eq!(PortLease::outstanding(), 0, "port leases left");
}
