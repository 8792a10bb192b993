//! The optimizer end to end: the real binary learning on real incidents,
//! the same result for the same seed, publishing without regression, a
//! learned hint on a catalog whose names and values all changed, and the
//! LLM reflection over real HTTP with the exact request it sends.

use std::sync::Arc;

use serde_json::{Value, json};

use remediator::agent::confirm::Refuse;
use remediator::agent::hint::{MANUAL_HINT, ResolvedHint};
use remediator::agent::llm::{ChatClient, LlmConfig};
use remediator::agent::runbook::Check;
use remediator::crd::{IncidentPhase, PolicySpec};
use remediator::local::{self, Environment, LocalIncident};
use remediator::optimize::evaluate::Rollout;
use remediator::optimize::feedback;
use remediator::optimize::general;
use remediator::optimize::reflect::llm::{LlmReflector, SYSTEM_PROMPT};
use remediator::optimize::reflect::{ReflectError, Reflector};
use remediator::optimize::strategy::Strategy;
use remediator::policy::ResolvedPolicy;
use remediator::scenario::{self, Catalog};
use remediator::trajectory::{StepTrace, TrajectoryLine};
use target_service::catalog::Split;

use crate::cli::{Ran, remediator};
use crate::scripted_llm::{Reply, ScriptedLlm};
use crate::{launch, sandbox};

fn last_run(dir: &std::path::Path, optimizer: &str) -> Value {
    let path = dir.join(format!("artifacts/{optimizer}/last_run.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// What a run decided, without the fields that name when and where.
fn decisions(mut result: Value) -> Value {
    for volatile in ["timestamp", "run_id"] {
        result.as_object_mut().unwrap().remove(volatile);
    }
    result
}

async fn optimize(dir: &std::path::Path, args: &[&str]) -> Ran {
    let mut all = vec!["optimize"];
    all.extend_from_slice(args);
    let ran = remediator(dir, &all, &[]).await;
    assert_eq!(ran.code, Some(0), "{}\n{}", ran.stdout, ran.stderr);
    assert!(!ran.stderr.contains("panicked"), "{}", ran.stderr);
    ran
}

#[tokio::test]
async fn a_fixed_seed_gives_identical_results_on_the_runbook_brain() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let args = ["--budget", "100", "--seed", "5", "--concurrency", "2"];
    optimize(a.path(), &args).await;
    optimize(b.path(), &args).await;
    let (ra, rb) = (last_run(a.path(), "gepa"), last_run(b.path(), "gepa"));
    assert_eq!(decisions(ra.clone()), decisions(rb));
    assert!(ra["rollouts_used"].as_u64().unwrap() <= 100);
    assert_eq!(ra["seed"], 5);
    assert!(ra["score_formula"].as_str().unwrap().contains("shortest"));
    // It learned: the chosen hint beats the seed on train.
    let history = ra["history"].as_array().unwrap();
    assert!(history.len() > 1, "{ra:#}");
    assert!(ra["score"].as_f64().unwrap() > history[0]["train_score"].as_f64().unwrap());
}

#[tokio::test]
async fn publishing_never_regresses_and_run_then_follows_the_skill() {
    let dir = tempfile::tempdir().unwrap();
    let first = optimize(dir.path(), &["--budget", "60", "--seed", "1", "--publish"]).await;
    assert!(
        first.stdout.contains("published: validation"),
        "{}",
        first.stdout
    );
    assert!(
        first.stdout.contains("validation before: score"),
        "{}",
        first.stdout
    );
    let best = dir.path().join("artifacts/gepa/best_hint.json");
    let skill = dir.path().join("skills/sre_incident_runbook/SKILL.md");
    let published = std::fs::read(&best).unwrap();
    let published_skill = std::fs::read_to_string(&skill).unwrap();
    assert!(published_skill.starts_with("---\nname: sre_incident_runbook\n"));

    // Whatever a second run finds, what is in use never gets worse: a run
    // whose best only ties keeps the published files as they were.
    let second = optimize(dir.path(), &["--budget", "30", "--seed", "2", "--publish"]).await;
    assert!(second.stdout.contains("not published"), "{}", second.stdout);
    assert_eq!(std::fs::read(&best).unwrap(), published);
    assert_eq!(std::fs::read_to_string(&skill).unwrap(), published_skill);

    // `run` and the optimized policy pick the skill up, and say so.
    let ran = remediator(
        dir.path(),
        &["run", "--scenario", "stale_worker_lock", "-o", "json"],
        &[],
    )
    .await;
    let status = ran.status();
    assert_eq!(status["phase"], "Resolved", "{}", ran.stderr);
    assert_eq!(status["agent"]["hintSource"], "skill");
    assert!(
        status["agent"]["hintVersion"]
            .as_str()
            .unwrap()
            .contains("SKILL.md ("),
        "{status}"
    );
    // The skill's first step is the log; the fix is the file it names
    // (listed first, unless the skill says to act at once), then a check.
    let actions = status["actions"].as_array().unwrap();
    assert_eq!(
        actions[0]["command"], "tail -n 30 service.log | cut -c1-400",
        "{status}"
    );
    assert!(
        actions
            .iter()
            .any(|a| a["command"] == "rm -f -- 'run/worker.lock'"),
        "{status}"
    );
    assert!(
        status["steps"].as_u64().unwrap() <= 4,
        "log, (list), fix, check: {status}"
    );

    // Distilling again from all recorded runs gives a runbook that parses.
    let out = dir.path().join("distilled/SKILL.md");
    let ran = remediator(
        dir.path(),
        &[
            "skill",
            "distill",
            "--from",
            "artifacts/runs",
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("source_runs: [optimize-gepa-"), "{text}");
    assert!(!Strategy::of_hint(&text).checks.is_empty());
}

#[tokio::test]
async fn bad_input_gets_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let expect = |ran: Ran, text: &str| {
        assert!(ran.code.is_some_and(|c| c != 0), "{}", ran.stderr);
        assert!(!ran.stderr.contains("panicked"), "{}", ran.stderr);
        assert!(ran.stderr.contains(text), "lacks `{text}`: {}", ran.stderr);
    };
    let d = dir.path();
    expect(
        remediator(d, &["optimize", "--budget", "0"], &[]).await,
        "must be at least 1",
    );
    expect(
        remediator(d, &["optimize", "--minibatch", "0"], &[]).await,
        "must be at least 1",
    );
    expect(
        remediator(d, &["optimize", "--from-trajectories", "no/such/dir"], &[]).await,
        "cannot read recorded runs in no/such/dir",
    );
    expect(
        remediator(d, &["skill", "distill", "--from", "no/such/dir"], &[]).await,
        "cannot read recorded runs in no/such/dir",
    );
    std::fs::create_dir_all(d.join("empty")).unwrap();
    expect(
        remediator(d, &["skill", "distill", "--from", "empty"], &[]).await,
        "no recorded runs in empty",
    );
    std::fs::write(d.join("empty/r.jsonl"), "{not json\n").unwrap();
    expect(
        remediator(d, &["skill", "distill", "--from", "empty"], &[]).await,
        "no recorded runs",
    );
    std::fs::create_dir_all(d.join("artifacts/gepa")).unwrap();
    std::fs::write(d.join("artifacts/gepa/best_hint.json"), "{broken").unwrap();
    expect(
        remediator(d, &["optimize", "--budget", "5"], &[]).await,
        "best_hint.json is unreadable",
    );
    // No LLM key for --brain llm: said before any rollout.
    std::fs::remove_file(d.join("artifacts/gepa/best_hint.json")).unwrap();
    expect(
        remediator(d, &["optimize", "--brain", "llm", "--budget", "5"], &[]).await,
        "missing API key",
    );
}

#[tokio::test]
async fn a_tiny_budget_warns_and_still_writes_a_result() {
    let dir = tempfile::tempdir().unwrap();
    let ran = optimize(dir.path(), &["--budget", "3"]).await;
    assert!(
        ran.stderr
            .contains("cannot cover one pass over the train set"),
        "{}",
        ran.stderr
    );
    let result = last_run(dir.path(), "gepa");
    assert_eq!(result["rollouts_used"], 3);
    assert_eq!(result["validation_score"], Value::Null);
}

/// The built-in catalog with every file, directory, variable, key, value
/// and id renamed.
fn renamed_catalog() -> String {
    let mut text = target_service::catalog::BUILTIN_CATALOG.to_string();
    for (from, to) in [
        ("REQUIRED_API_KEY", "UPSTREAM_REGION"),
        ("local-dev-key", "eu-west-9"),
        ("DATABASE_URL", "QUEUE_ENDPOINT"),
        (
            "postgres://db.internal:5432/app",
            "amqp://mq.internal:5672/jobs",
        ),
        ("LOG_FORMAT=text", "OUTPUT_STYLE=plain"),
        ("LOG_FORMAT", "OUTPUT_STYLE"),
        ("text or json", "plain or rich"),
        ("maintenance_mode", "drain_mode"),
        ("maintenance mode", "drain mode"),
        ("max_connections 256", "worker_slots 64"),
        ("max_connections = 256", "worker_slots = 64"),
        ("max_connections", "worker_slots"),
        ("= 128", "= 48"),
        ("value: \"128\"", "value: \"48\""),
        ("log_level = info", "verbosity = normal"),
        ("request_timeout_ms: 500", "idle_timeout_s: 30"),
        ("request_timeout_ms = 500", "idle_timeout_s = 30"),
        ("service.lock", "instance.lck"),
        ("ready.flag", "warm.marker"),
        ("run/service.pid", "pids/daemon.pid"),
        ("run/worker.lock", "pids/consumer.lock"),
        ("run/migrate.lck", "pids/schema.lck"),
        ("{ path: run,", "{ path: pids,"),
        ("state/bootstrap.done", "init/firstboot.ok"),
        ("{ path: state,", "{ path: init,"),
        ("data directory data/", "storage directory storage/"),
        ("{ path: data,", "{ path: storage,"),
        ("dir_writable: data }", "dir_writable: storage }"),
        ("chmod u+w data", "chmod u+w storage"),
        ("var/cache", "spool/index"),
        ("index.tmp", "probe.tmp"),
        ("- id: ", "- id: renamed_"),
    ] {
        assert!(text.contains(from), "the catalog no longer has `{from}`");
        text = text.replace(from, to);
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learned_hint_still_resolves_a_catalog_with_every_name_changed() {
    let text = renamed_catalog();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("renamed.yaml");
    std::fs::write(&path, &text).unwrap();
    let catalog: Catalog = scenario::load_catalog(Some(&path)).unwrap();
    assert_eq!(catalog.scenarios.len(), Catalog::builtin().scenarios.len());
    let builtin = Catalog::builtin();
    for old in [
        "service.lock",
        "REQUIRED_API_KEY",
        "maintenance_mode",
        "ready.flag",
        "var/cache",
    ] {
        assert!(!text.contains(old), "{old} survived the renaming");
        assert!(general::forbidden(&builtin).contains(old));
    }
    let mut launch = launch();
    launch.catalog_text = Some(text);
    let env = Environment {
        catalog: catalog.clone(),
        launch,
        sandbox: sandbox().await,
        llm: Default::default(),
        recorder: None,
        operator_secrets: Vec::new(),
    };
    // What the optimizer learns on the built-in catalog (see the README).
    let learned = Strategy {
        checks: vec![
            Check::Log,
            Check::Config,
            Check::Locks,
            Check::Env,
            Check::Ready,
            Check::Permissions,
        ],
        targeted: true,
        direct: true,
    }
    .hint();
    general::check(&learned, &general::forbidden(&builtin)).unwrap();
    let env = Arc::new(env);
    let runs = catalog.scenarios.iter().map(|s| {
        let env = env.clone();
        let learned = learned.clone();
        let id = s.id.clone();
        async move {
            let incident = LocalIncident {
                name: id.replace('_', "-"),
                scenario: id.clone(),
                policy: ResolvedPolicy {
                    name: "learned".into(),
                    spec: PolicySpec::default(),
                    hint: ResolvedHint::inline(&learned),
                    generation: None,
                },
                classifier_off: false,
                keep: false,
            };
            let outcome = local::run(&incident, &env, &Refuse).await;
            // The renamed fault really was there before the agent acted.
            let fault = outcome
                .status
                .conditions
                .iter()
                .find(|c| c.type_ == remediator::crd::conditions::FAULT_PRESENT)
                .map(|c| c.status.clone());
            assert_eq!(
                fault.as_deref(),
                Some("True"),
                "{id}: {:?}",
                outcome.status.conditions
            );
            (id, outcome.status.phase, outcome.status.steps)
        }
    });
    let results = futures::future::join_all(runs).await;
    let unresolved: Vec<_> = results
        .iter()
        .filter(|(_, phase, _)| *phase != IncidentPhase::Resolved)
        .collect();
    assert!(unresolved.is_empty(), "{unresolved:?} of {results:?}");
    let steps: u32 = results.iter().map(|(_, _, s)| s).sum();
    assert!(steps as usize <= 5 * results.len(), "{results:?}");
}

fn trace() -> TrajectoryLine {
    let step = |n: u32, kind: &str, action: &str, risk: &str, observation: &str| StepTrace {
        step: n,
        kind: kind.into(),
        action: action.into(),
        risk: risk.into(),
        decision: "Allowed".into(),
        decided_by: "gate".into(),
        exit_code: Some(0),
        http_status: None,
        observation: observation.into(),
    };
    TrajectoryLine {
        model: None,
        tokens: None,
        policy_generation: None,
        settings: None,
        scenario_id: "stale_worker_lock".into(),
        tool_actions: vec![],
        step_count: 4,
        latency_s: 0.1,
        service_up: true,
        trace_key: "r:i".into(),
        trace_id: None,
        strategy_hint: MANUAL_HINT.into(),
        policy: "optimized".into(),
        brain: "llm".into(),
        phase: remediator::crd::IncidentPhase::Resolved,
        reason: None,
        message: None,
        incident: "i".into(),
        symptom: "GET / returns HTTP 500 \"internal error\" after a worker crashed.".into(),
        hint_source: None,
        steps: vec![
            step(
                1,
                "http_get",
                "GET /health",
                "LOW",
                "http_status: 500\nstdout:\n{\"reason\":\"internal error\",\"status\":\"error\"}",
            ),
            step(
                2,
                "exec",
                "tail -n 30 service.log",
                "LOW",
                "stdout:\n2026-01-01T00:00:00Z ERROR health check failed: stale lock file run/worker.lock is present\n",
            ),
            step(3, "exec", "rm -f run/worker.lock", "MEDIUM", ""),
            step(4, "http_get", "GET /health", "LOW", "http_status: 200"),
        ],
    }
}

fn reflector(server: &ScriptedLlm, seed: u64) -> LlmReflector {
    let config = LlmConfig {
        base_url: server.base_url.clone(),
        api_key: "test-key".into(),
        model: "reflector-model".into(),
        request_timeout: std::time::Duration::from_secs(10),
        max_retries: 0,
        max_tokens: 300,
        max_observation_chars: 1000,
        max_prompt_tokens: 6000,
        conversation: remediator::crd::Conversation::Messages,
    };
    let forbidden = general::forbidden(&Catalog::builtin());
    LlmReflector::new(
        ChatClient::new(config).unwrap(),
        remediator::crd::BrainKind::Runbook,
        forbidden,
        seed,
    )
}

#[tokio::test]
async fn llm_reflection_sends_the_traces_and_takes_the_fenced_hint() {
    let server = ScriptedLlm::start(vec![
        Reply::Text("Improved:\n```\n1) Read the service log first. 2) Look for lock files. Fix what the error names at once.\n```"),
        Reply::Text("```\nRemove run/worker.lock and check the log.\n```"),
        Reply::Status(500, json!({"error": {"message": "overloaded", "type": "server_error"}})),
    ])
    .await;
    let reflector = reflector(&server, 42);
    let line = trace();
    let rollouts = vec![Rollout {
        scenario: line.scenario_id.clone(),
        score: 0.75,
        analysis: feedback::analyze(&line, 3),
        line,
        reused: false,
    }];
    let got = reflector
        .reflect(MANUAL_HINT, &rollouts)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got.hint,
        "1) Read the service log first. 2) Look for lock files. Fix what the error names at once."
    );
    let plan = Strategy::of_hint(&got.hint);
    assert_eq!(plan.checks, vec![Check::Log, Check::Locks]);
    assert!(plan.direct);

    // The exact request: a plain chat completion, no tools.
    let requests = server.requests();
    let request = &requests[0];
    let mut keys: Vec<&str> = request
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["max_tokens", "messages", "model", "seed", "temperature"]
    );
    assert_eq!(request["model"], "reflector-model");
    assert_eq!(request["temperature"].as_f64(), Some(0.0));
    assert_eq!(request["max_tokens"], 300);
    assert_eq!(request["seed"], 42);
    let messages = request["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(
        messages[0],
        json!({"role": "system", "content": SYSTEM_PROMPT})
    );
    assert_eq!(messages[1]["role"], "user");
    let user = messages[1]["content"].as_str().unwrap();
    assert!(
        user.starts_with(&format!("Current hint:\n```\n{}\n```", MANUAL_HINT.trim())),
        "{user}"
    );
    for expected in [
        "### Incident 1",
        "The service's own reason first showed at step 2 (log): \"stale lock file run/worker.lock is present\"",
        "found by the locks check",
        "Wasted looks: step 1 GET /health",
        "Go straight to the check the error names",
        "between ``` fences",
    ] {
        assert!(user.contains(expected), "lacks `{expected}`:\n{user}");
    }
    assert!(
        !user.contains("stale_worker_lock"),
        "no scenario id reaches the model"
    );
    assert_eq!(reflector.usage().prompt, 100);

    // A hint that names a scenario's own file is refused.
    let err = reflector.reflect(MANUAL_HINT, &rollouts).await.unwrap_err();
    assert!(
        matches!(&err, ReflectError::Unusable(m) if m.contains("run/worker.lock")),
        "{err}"
    );
    // An endpoint failure is said as such.
    let err = reflector.reflect(MANUAL_HINT, &rollouts).await.unwrap_err();
    assert!(
        matches!(&err, ReflectError::Unavailable(m) if m.contains("overloaded")),
        "{err}"
    );
}

#[tokio::test]
async fn the_demo_learns_hints_that_beat_the_manual_one_on_unseen_scenarios() {
    let dir = tempfile::tempdir().unwrap();
    let demo = remediator(dir.path(), &["demo"], &[]).await;
    assert_eq!(demo.code, Some(0), "{}\n{}", demo.stdout, demo.stderr);
    let (_, card) = demo
        .stdout
        .split_once("the validation scenarios, which no optimizer trained on:")
        .expect("the demo prints the learned scorecard");
    assert!(!card.contains("not trained yet"), "{card}");
    let validation = Catalog::builtin()
        .scenarios
        .iter()
        .filter(|s| s.split == Split::Validation)
        .count()
        .to_string();
    // approach, scenarios, runs, fix rate, mean steps, ...
    // The learned rows must fix every scenario; the baseline and the
    // hand-written hint are measured (several faults may outrun them).
    let steps_of = |approach: &str| -> f64 {
        let row = card
            .lines()
            .find(|l| l.split_whitespace().next() == Some(approach))
            .unwrap_or_else(|| panic!("no {approach} row:\n{card}"));
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols[1..3], ["all", &validation], "{row}");
        if approach.starts_with("optimized-") && approach != "optimized-manual" {
            assert_eq!(cols[3], "100.0%", "{row}");
        }
        cols[4].parse().unwrap()
    };
    let baseline = steps_of("baseline");
    let manual = steps_of("optimized-manual");
    for learned in ["optimized-gepa", "optimized-iterative"] {
        let steps = steps_of(learned);
        assert!(
            steps < manual && manual < baseline,
            "{learned} {steps} vs manual {manual} vs baseline {baseline}:\n{card}"
        );
    }
    // What the demo learned stays in its own directory: the hints the
    // user's policies resolve are untouched.
    assert!(!dir.path().join("artifacts/gepa").exists());
    assert!(!dir.path().join("skills").exists());
    let runs: Vec<_> = std::fs::read_dir(dir.path().join("artifacts/demo"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(runs.len(), 1);
    for file in [
        "gepa/best_hint.json",
        "iterative/best_hint.json",
        "SKILL.md",
    ] {
        assert!(runs[0].path().join(file).is_file(), "{file} published");
    }
}

#[tokio::test]
async fn recorded_runs_stand_in_for_fresh_rollouts() {
    let dir = tempfile::tempdir().unwrap();
    // demo records the baseline and the manual hint on every scenario.
    let demo = remediator(
        dir.path(),
        &["demo", "--split", "all", "--learn-budget", "0"],
        &[],
    )
    .await;
    assert_eq!(demo.code, Some(0), "{}", demo.stderr);
    let ran = optimize(
        dir.path(),
        &[
            "--budget",
            "60",
            "--seed",
            "1",
            "--from-trajectories",
            "artifacts/runs",
        ],
    )
    .await;
    assert!(
        ran.stdout
            .contains("more hints recorded on every train scenario join the pool"),
        "{}",
        ran.stdout
    );
    let result = last_run(dir.path(), "gepa");
    // The seed (the manual hint) on train and validation came from the
    // recordings, so the whole budget went to learning.
    assert!(
        result["rollouts_reused"].as_u64().unwrap() >= 13,
        "{result:#}"
    );
    let history = result["history"].as_array().unwrap();
    assert_eq!(
        history[1]["origin"], "recorded",
        "the baseline joined the pool: {result:#}"
    );
    assert!(
        history.len() > 2,
        "something was learned within 60 fresh rollouts: {result:#}"
    );
    assert!(result["rollouts_used"].as_u64().unwrap() <= 60);
}

#[tokio::test]
async fn the_llm_brain_follows_a_distilled_skill_file() {
    let dir = tempfile::tempdir().unwrap();
    let skill = dir.path().join("SKILL.md");
    std::fs::write(
        &skill,
        "---\nname: sre_incident_runbook\nversion: v1\n---\n# SRE incident runbook\n\n## Steps\n\n1) Read the service log for the exact reason.\n",
    )
    .unwrap();
    let server = ScriptedLlm::start(vec![crate::scripted_llm::call(
        "finish",
        json!({"summary": "nothing to do"}),
    )])
    .await;
    let ran = remediator(
        dir.path(),
        &[
            "run",
            "--scenario",
            "stale_lockfile",
            "--brain",
            "llm",
            "--skill-file",
            skill.to_str().unwrap(),
            "-o",
            "json",
        ],
        &[
            ("OPENAI_API_KEY", "k"),
            ("OPENAI_BASE_URL", &server.base_url),
        ],
    )
    .await;
    let status = ran.status();
    assert_eq!(status["agent"]["hintSource"], "skill");
    assert!(
        status["agent"]["hintVersion"]
            .as_str()
            .unwrap()
            .ends_with("SKILL.md (v1)")
    );
    let system = server.requests()[0]["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        system.contains("Strategy: ---\nname: sre_incident_runbook")
            && system.contains("1) Read the service log for the exact reason."),
        "{system}"
    );
}
