//! A real model resolving incidents: Qwen2.5-Coder behind llama.cpp's
//! server (scripts/llm-server), the baseline, the hand-written and the
//! learned hint on every scenario of a split, each incident a real service
//! that really breaks, every step through the gate and the sandbox, the
//! outcome decided by the probe. Prints fix rate, mean steps, tokens and
//! wall time per incident.
//!
//! Run: `cargo build --release && cargo bench --bench llm_agent -- [OPTIONS]`
//!   --models qwen-0.5b,qwen-1.5b   which models (each its own server)
//!   --splits train,validation      which scenarios
//!   --hints baseline,manual,learned
//!   --max-steps 6                  each incident's step budget
//!   --learned FILE                 a Policy whose hint is "learned", or
//!   --learned M=FILE,M=FILE        one per model (GEPA learns per model)
//!                                  (default examples/policy-learned.yaml)
//!   --conversation transcript      or messages (llm.conversation)
//! The servers run one thread each, side by side (one model per core).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use remediator::agent::confirm::Refuse;
use remediator::agent::hint::ResolvedHint;
use remediator::agent::llm::LlmEnvironment;
use remediator::crd::{BrainKind, Conversation, IncidentPhase, LlmSpec, PolicySpec, TokenUsage};
use remediator::local::{self, Environment, LocalIncident};
use remediator::policy::ResolvedPolicy;
use remediator::scenario::{Catalog, Split};

#[path = "../e2e/common/llm_server.rs"]
mod llm_server;
#[path = "support.rs"]
mod support;
use llm_server::LlmServer;

struct Options {
    models: Vec<String>,
    splits: Vec<Split>,
    hints: Vec<String>,
    max_steps: u32,
    /// The learned Policy for every model, or per model.
    learned: Vec<(Option<String>, PathBuf)>,
    conversation: Conversation,
}

fn options() -> Options {
    let mut options = Options {
        models: vec!["qwen-0.5b".into(), "qwen-1.5b".into()],
        splits: vec![Split::Train, Split::Validation],
        hints: vec!["baseline".into(), "manual".into(), "learned".into()],
        max_steps: 6,
        learned: vec![(
            None,
            Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/policy-learned.yaml"),
        )],
        conversation: Conversation::Transcript,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let list = |value: &str| value.split(',').map(str::to_string).collect::<Vec<_>>();
    let mut pairs = args.iter().filter(|a| *a != "--bench");
    while let Some(flag) = pairs.next() {
        let Some(value) = pairs.next() else {
            eprintln!("{flag} needs a value");
            std::process::exit(2);
        };
        match flag.as_str() {
            "--models" => options.models = list(value),
            "--hints" => options.hints = list(value),
            "--max-steps" => options.max_steps = value.parse().expect("--max-steps N"),
            "--learned" => {
                options.learned = list(value)
                    .into_iter()
                    .map(|item| match item.split_once('=') {
                        Some((model, file)) => (Some(model.to_string()), file.into()),
                        None => (None, item.into()),
                    })
                    .collect()
            }
            "--conversation" => {
                options.conversation = match value.as_str() {
                    "messages" => Conversation::Messages,
                    "transcript" => Conversation::Transcript,
                    other => {
                        eprintln!("unknown conversation {other}: messages or transcript");
                        std::process::exit(2)
                    }
                }
            }
            "--splits" => {
                options.splits = list(value)
                    .iter()
                    .map(|s| match s.as_str() {
                        "train" => Split::Train,
                        "validation" => Split::Validation,
                        other => {
                            eprintln!("unknown split {other}: train or validation");
                            std::process::exit(2)
                        }
                    })
                    .collect()
            }
            other => {
                eprintln!("unknown option {other}");
                std::process::exit(2);
            }
        }
    }
    options
}

/// The learned Policy file for `model`: its own, else the one for all.
fn learned_for<'a>(model: &str, learned: &'a [(Option<String>, PathBuf)]) -> &'a Path {
    learned
        .iter()
        .find(|(m, _)| m.as_deref() == Some(model))
        .or_else(|| learned.iter().find(|(m, _)| m.is_none()))
        .map(|(_, file)| file.as_path())
        .unwrap_or_else(|| {
            eprintln!("no learned hint for {model}: --learned {model}=FILE");
            std::process::exit(2)
        })
}

fn hint(name: &str, model: &str, learned: &[(Option<String>, PathBuf)]) -> ResolvedHint {
    match name {
        "baseline" => ResolvedHint::baseline(),
        "manual" => ResolvedHint::manual(),
        "learned" => {
            let learned = learned_for(model, learned);
            let text = std::fs::read_to_string(learned)
                .unwrap_or_else(|e| panic!("{}: {e}", learned.display()));
            let policy: remediator::crd::Policy = serde_yaml::from_str(&text).expect("a Policy");
            ResolvedHint::inline(&policy.spec.hint.expect("the learned policy has a hint"))
        }
        other => {
            eprintln!("unknown hint {other}: baseline, manual or learned");
            std::process::exit(2);
        }
    }
}

async fn start_server(model: &str) -> LlmServer {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/llm-server");
    llm_server::start(&script, model, Duration::from_secs(600)).await
}

#[derive(Default)]
struct Row {
    runs: usize,
    fixed: usize,
    steps_fixed: u64,
    tokens: TokenUsage,
    seconds: f64,
    content_calls: u64,
    native_calls: u64,
}

/// Every chosen scenario with every hint on one model; one line per
/// incident as it finishes, then the summary rows.
async fn measure(model: String, options: &Options) -> Vec<String> {
    let server = start_server(&model).await;
    let mut env =
        Environment::local(support::release_binary("remediator"), Catalog::builtin()).await;
    env.llm = LlmEnvironment {
        api_key: Some("local".into()),
        base_url: Some(server.base_url.clone()),
        secrets_dir: None,
    };
    let mut summary = Vec::new();
    for split in &options.splits {
        let scenarios: Vec<String> = env
            .catalog
            .scenarios
            .iter()
            .filter(|s| s.split == *split)
            .map(|s| s.id.clone())
            .collect();
        for name in &options.hints {
            let hint = hint(name, &model, &options.learned);
            let mut row = Row::default();
            for scenario in &scenarios {
                let spec = PolicySpec {
                    brain: BrainKind::Llm,
                    llm: Some(LlmSpec {
                        model: model.clone(),
                        base_url: None,
                        api_key_secret_ref: None,
                        request_timeout_seconds: 300,
                        max_retries: 0,
                        max_tokens: 200,
                        max_observation_chars: 800,
                        max_prompt_tokens: 3000,
                        conversation: options.conversation,
                    }),
                    max_steps: options.max_steps,
                    timeout_seconds: 900,
                    ..PolicySpec::default()
                };
                let incident = LocalIncident {
                    name: scenario.replace('_', "-"),
                    scenario: scenario.clone(),
                    policy: ResolvedPolicy {
                        name: name.clone(),
                        spec,
                        hint: hint.clone(),
                        generation: None,
                    },
                    classifier_off: false,
                    keep: false,
                };
                let started = Instant::now();
                let outcome = local::run(&incident, &env, &Refuse).await;
                let seconds = started.elapsed().as_secs_f64();
                let status = outcome.status;
                let fixed = status.phase == IncidentPhase::Resolved;
                let tokens = status
                    .agent
                    .as_ref()
                    .and_then(|a| a.tokens)
                    .unwrap_or_default();
                row.runs += 1;
                row.seconds += seconds;
                row.tokens.add(tokens);
                row.content_calls += tokens.content_tool_calls;
                row.native_calls += tokens.native_tool_calls;
                if fixed {
                    row.fixed += 1;
                    row.steps_fixed += u64::from(status.steps);
                }
                println!(
                    "{model:<10} {:<10} {name:<9} {scenario:<34} {:<8} steps={:<2} tokens={}+{} {:>5.1}s {}",
                    split_name(*split),
                    format!("{:?}", status.phase),
                    status.steps,
                    tokens.prompt,
                    tokens.completion,
                    seconds,
                    if fixed {
                        String::new()
                    } else {
                        status.reason.clone().unwrap_or_default()
                    }
                );
            }
            let n = row.runs.max(1) as f64;
            summary.push(format!(
                "| {model} | {} | {name} | {}/{} | {} | {:.0} | {:.0} | {:.1} | {} |",
                split_name(*split),
                row.fixed,
                row.runs,
                if row.fixed > 0 {
                    format!("{:.2}", row.steps_fixed as f64 / row.fixed as f64)
                } else {
                    "-".into()
                },
                row.tokens.prompt as f64 / n,
                row.tokens.completion as f64 / n,
                row.seconds / n,
                match (row.native_calls, row.content_calls) {
                    (0, 0) => "none",
                    (_, 0) => "toolCalls",
                    (0, _) => "content",
                    _ => "mixed",
                },
            ));
        }
    }
    summary
}

fn split_name(split: Split) -> &'static str {
    match split {
        Split::Train => "train",
        Split::Validation => "validation",
    }
}

#[tokio::main]
async fn main() {
    let options = options();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/llm-server");
    for model in &options.models {
        let installed = std::process::Command::new(&script)
            .args(["install", "--model", model])
            .status()
            .expect("scripts/llm-server runs");
        assert!(
            installed.success(),
            "scripts/llm-server install --model {model}"
        );
    }
    println!(
        "llm brain, {} steps per incident, one run per cell; time is wall clock per incident incl. service start and verification",
        options.max_steps
    );
    // One model per core, side by side.
    let runs = options
        .models
        .iter()
        .map(|model| measure(model.clone(), &options));
    let summaries = futures::future::join_all(runs).await;
    println!(
        "\n| model | split | hint | fixed | mean steps (fixed) | prompt tokens / incident | completion tokens / incident | s / incident | call format |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for line in summaries.into_iter().flatten() {
        println!("{line}");
    }
}
