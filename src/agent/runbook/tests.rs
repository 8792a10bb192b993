use super::plan::DEFAULT_ORDER;
use super::*;
use crate::protocol::Observation;

fn task(hint: &str) -> Task {
    Task {
        symptom: "GET / returns 500".into(),
        expected_port: 8080,
        hint: hint.into(),
    }
}

#[test]
fn the_seed_baseline_hint_is_vague_and_explores() {
    let plan = Plan::from_hint("Fix the bug.");
    assert!(plan.explore);
    assert_eq!(plan.checks, DEFAULT_ORDER.to_vec());
}

#[test]
fn the_manual_hint_names_kinds_of_checks_in_order() {
    let plan = Plan::from_hint(crate::agent::hint::MANUAL_HINT);
    assert!(!plan.explore);
    assert_eq!(plan.checks, Check::ALL.to_vec());
    for file in [
        "service.lock",
        "ready.flag",
        "run/",
        "service.env",
        "service.conf",
    ] {
        assert!(
            !crate::agent::hint::MANUAL_HINT.contains(file),
            "the manual hint names the catalog's file {file}"
        );
    }
}

#[test]
fn a_reordered_hint_reorders_checks_and_can_target() {
    let plan = Plan::from_hint(
        "1) read the log. 2) check permissions of data dirs. 3) look for lock files. Skip checks the evidence rules out.",
    );
    assert_eq!(
        plan.checks,
        vec![Check::Log, Check::Permissions, Check::Locks]
    );
    assert!(plan.targeted);
}

fn observed(stdout: &str, http_status: Option<u16>) -> Feedback {
    Feedback::Observed(Observation {
        http_status,
        ..Observation::succeeded(stdout, 1)
    })
}

/// Plays the runbook against scripted answers; returns its proposals.
fn play(hint: &str, answers: &[(Action, Feedback)]) -> Vec<Proposal> {
    let task = task(hint);
    let mut history = Vec::new();
    let mut proposals = Vec::new();
    for (step, (expected, feedback)) in answers.iter().enumerate() {
        let proposal = Runbook::replay(&task, &history).propose();
        proposals.push(proposal.clone());
        let Proposal::Act { action, .. } = proposal else {
            return proposals;
        };
        assert_eq!(&action, expected, "step {}", step + 1);
        history.push(Turn {
            step: step as u32 + 1,
            action,
            declared_risk: None,
            feedback: feedback.clone(),
        });
    }
    proposals.push(Runbook::replay(&task, &history).propose());
    proposals
}

#[test]
fn replay_reaches_the_same_decisions_and_a_refused_fix_is_reported() {
    let lock = r#"{"status":"error","reason":"stale lock file app.lck is present"}"#;
    let proposals = play(
        "1) GET /health. 2) look for lock files.",
        &[
            (Action::HttpGet("/health".into()), observed(lock, Some(500))),
            (
                Check::Locks.probe(),
                observed("./app.lck\n./service.conf\n", None),
            ),
            (
                Action::Exec("rm -f -- 'app.lck'".into()),
                Feedback::Denied {
                    reason: "risk MEDIUM exceeds LOW".into(),
                },
            ),
        ],
    );
    let Some(Proposal::Done { summary }) = proposals.last() else {
        panic!("{proposals:?}")
    };
    assert!(summary.contains("rm -f -- 'app.lck'"), "{summary}");
}

#[test]
fn a_second_fault_after_a_fix_gets_the_checks_again() {
    let lock = r#"{"status":"error","reason":"stale lock file a.lock is present"}"#;
    let marker = r#"{"status":"error","reason":"marker state/ok is missing"}"#;
    let proposals = play(
        "1) GET /health. 2) look for lock files. 3) check that marker files exist.",
        &[
            (Action::HttpGet("/health".into()), observed(lock, Some(500))),
            (Check::Locks.probe(), observed("./a.lock\n", None)),
            (Action::Exec("rm -f -- 'a.lock'".into()), observed("", None)),
            (
                Action::HttpGet("/health".into()),
                observed(marker, Some(500)),
            ),
            // Locks and markers share their listing: it runs once.
            (Check::Locks.probe(), observed("./service.conf\n", None)),
            (
                Action::Exec("mkdir -p -- 'state' && touch -- 'state/ok'".into()),
                observed("", None),
            ),
            (
                Action::HttpGet("/health".into()),
                observed(r#"{"status":"ok"}"#, Some(200)),
            ),
        ],
    );
    assert_eq!(
        proposals.last(),
        Some(&Proposal::Done {
            summary: "the service answers 200 status ok".into()
        })
    );
}

#[test]
fn direct_and_front_matter_are_read_from_the_hint() {
    let plan = Plan::from_hint(
        "---\nname: x\ndescription: checks config and env\n---\n1) Read the service log. 2) look for lock files. Fix what the error names at once.",
    );
    assert_eq!(plan.checks, vec![Check::Log, Check::Locks]);
    assert!(plan.direct && !plan.targeted);
    let manual = Plan::from_hint(crate::agent::hint::MANUAL_HINT);
    assert!(!manual.direct && !manual.targeted);
    assert_eq!(
        super::plan::without_front_matter("---\nno end"),
        "---\nno end"
    );
}

#[test]
fn targeted_goes_first_to_what_the_error_names_and_a_fact_back_after_its_fix_ends_it() {
    let log =
        "2026-01-01T00:00:00Z ERROR health check failed: bootstrap marker state/ok is missing\n";
    let listing = "./service.conf\n";
    let proposals = play(
        "1) Read the service log. 2) look for lock files. 3) check the environment. 4) check that marker files exist. Skip checks the evidence rules out.",
        &[
            (Check::Log.probe(), observed(log, None)),
            // Ready is the one implicated: it comes before locks and env.
            (Check::Ready.probe(), observed(listing, None)),
            (
                Action::Exec("mkdir -p -- 'state' && touch -- 'state/ok'".into()),
                observed("", None),
            ),
            // Still failing for the same reason: the next operator (a
            // directory by that name), then no fix is left.
            (
                Action::HttpGet("/health".into()),
                observed(
                    r#"{"status":"error","reason":"bootstrap marker state/ok is missing"}"#,
                    Some(500),
                ),
            ),
            (Check::Ready.probe(), observed(listing, None)),
            (
                Action::Exec(
                    "test ! -s 'state/ok' && rm -f -- 'state/ok' && mkdir -p -- 'state/ok'".into(),
                ),
                observed("", None),
            ),
            (
                Action::HttpGet("/health".into()),
                observed(
                    r#"{"status":"error","reason":"bootstrap marker state/ok is missing"}"#,
                    Some(500),
                ),
            ),
        ],
    );
    let Some(Proposal::Done { summary }) = proposals.last() else {
        panic!("{proposals:?}")
    };
    assert!(summary.contains("state/ok must exist still"), "{summary}");
    assert!(summary.contains("did not hold"), "{summary}");
}

#[test]
fn direct_fixes_what_the_log_names_and_restarts_a_service_that_is_down() {
    let log = "2026-01-01T00:00:00Z ERROR startup failed: pid file run/x.pid exists\n\
2026-01-01T00:00:00Z ERROR supervisor: service generation 1 is down: pid file run/x.pid exists\n";
    let proposals = play(
        "1) Read the service log. 2) look for lock files. Fix what the error names at once.",
        &[
            (Check::Log.probe(), observed(log, None)),
            (
                Action::Exec("rm -f -- 'run/x.pid'".into()),
                observed("", None),
            ),
            (Action::RestartService, observed("restarted", None)),
            (
                Action::HttpGet("/health".into()),
                observed(r#"{"status":"ok"}"#, Some(200)),
            ),
        ],
    );
    assert_eq!(
        proposals.last(),
        Some(&Proposal::Done {
            summary: "the service answers 200 status ok".into()
        })
    );
}

#[test]
fn without_direct_the_same_log_costs_a_listing_first() {
    let log = "2026-01-01T00:00:00Z ERROR health check failed: stale lock file a.lock is present\n";
    let proposals = play(
        "1) Read the service log. 2) look for lock files.",
        &[
            (Check::Log.probe(), observed(log, None)),
            (Check::Locks.probe(), observed("./a.lock\n", None)),
            (Action::Exec("rm -f -- 'a.lock'".into()), observed("", None)),
        ],
    );
    assert!(matches!(proposals.last(), Some(Proposal::Act { .. })));
}
