//! `remediator optimize`: learn a better strategy hint from fresh (or
//! recorded, locally or by the operator in a cluster) rollouts with GEPA
//! or the iterative optimizer, write the run's result to
//! `artifacts/<optimizer>/last_run.json`, and with `--publish` put it in
//! use when it beats the current hint on validation.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use kube::ResourceExt;

use super::common::{self, Recording};
use crate::crd::BrainKind;
use crate::optimize::artifacts::BestHint;
use crate::optimize::progress::Stderr;
use crate::optimize::reflect::ReflectorKind;
use crate::optimize::{Optimizer, Outcome, Settings, learn, publish, to_cluster};
use crate::policy::{self, Overrides};
use crate::scenario::Split;
use crate::trajectory::{self, TrajectoryLine, in_cluster};

#[derive(Debug, Args)]
pub struct OptimizeArgs {
    #[arg(long, value_enum, default_value_t = OptimizerArg::Gepa)]
    pub optimizer: OptimizerArg,
    /// The brain the rollouts use; with llm the reflection is an LLM's too
    /// unless --reflection says otherwise.
    #[arg(long, value_enum, default_value_t = BrainKind::Runbook)]
    pub brain: BrainKind,
    /// Who writes new hints from the traces (default: llm with the llm
    /// brain, deterministic with the runbook brain).
    #[arg(long, value_enum)]
    pub reflection: Option<ReflectorKind>,
    /// Rollouts (incidents run) the whole optimization may use, validation included.
    #[arg(long, default_value_t = 60, value_name = "ROLLOUTS", value_parser = at_least_one)]
    pub budget: usize,
    /// Train scenarios per reflection.
    #[arg(long, default_value_t = 3, value_parser = at_least_one)]
    pub minibatch: usize,
    /// Seed of the minibatch and parent choices (the runbook brain then gives the same result).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Reuse recorded runs (artifacts/runs) instead of fresh rollouts where they match.
    #[arg(long, value_name = "DIR")]
    pub from_trajectories: Option<PathBuf>,
    /// Episodes run at once (default: the core count).
    #[arg(long, value_parser = at_least_one)]
    pub concurrency: Option<usize>,
    /// Put the result in use when its validation score beats the current hint's.
    #[arg(long)]
    pub publish: bool,
    /// The policy rollouts follow (baseline, optimized or a Policy file); its hint is the seed.
    #[arg(long, default_value = "optimized")]
    pub policy: String,
    /// A Policy in the cluster (KUBECONFIG or in-cluster) that sets
    /// followOptimizer: rollouts follow it, its hint is the seed, what the
    /// operator recorded of its Incidents (ConfigMap
    /// `<policy>-trajectories`) is reused, and a published hint replaces
    /// it (with hintVersion; ConfigMap `<policy>-hint` records it).
    /// Incidents already running keep theirs.
    #[arg(
        long,
        value_name = "POLICY",
        requires = "publish",
        conflicts_with = "policy"
    )]
    pub to_policy: Option<String>,
    /// With --to-policy: its namespace (default: the kubeconfig's).
    #[arg(long, requires = "to_policy")]
    pub namespace: Option<String>,
    /// LLM model (for --brain llm: rollouts and reflection).
    #[arg(long)]
    pub model: Option<String>,
    /// GEPA merges at most this many times.
    #[arg(long, default_value_t = 3)]
    pub max_merges: usize,
    /// Stop after this many proposals in a row bring no new hint.
    #[arg(long, default_value_t = crate::optimize::PATIENCE, value_parser = at_least_one)]
    pub patience: usize,
    #[command(flatten)]
    pub recording: Recording,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OptimizerArg {
    Gepa,
    Iterative,
}

fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("`{text}` is not a whole number: {e}")),
    }
}

pub async fn optimize(
    catalog_path: Option<PathBuf>,
    args: OptimizeArgs,
) -> anyhow::Result<ExitCode> {
    let learned = learn(catalog_path, &args).await?;
    if args.publish {
        let published = learned.publish()?;
        println!(
            "\nbefore (the hint in use) / after (the learned one):\n{}",
            published.table
        );
        println!("{}", published.reason);
        for path in &published.written {
            println!("wrote {}", path.display());
        }
        if let Some((client, found)) = &learned.to_policy {
            let at = format!(
                "{}/{}",
                found.namespace().unwrap_or_default(),
                found.name_any()
            );
            if published.published {
                let version = to_cluster::publish_to_policy(client, found, &learned.result).await?;
                println!(
                    "published to Policy {at} as hintVersion {version} (ConfigMap {}); new Incidents follow it",
                    to_cluster::config_map_name(&found.name_any())
                );
            } else {
                println!("Policy {at} left as it is");
            }
        }
    } else {
        println!(
            "not published (use --publish: it is put in use only if its validation score beats the current hint's)"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// One optimization's result, written to `last_run.json` and not yet in use.
pub struct Learned {
    pub result: BestHint,
    /// Every trajectory the optimization ran or reused: what a skill is
    /// distilled from when the result is published.
    pub episodes: Vec<TrajectoryLine>,
    pub paths: policy::Paths,
    /// The cluster Policy it learned for (`--to-policy`), and a client.
    pub to_policy: Option<(kube::Client, crate::crd::Policy)>,
}

impl Learned {
    /// Puts the result in use if it validates better than the hint in use.
    pub fn publish(&self) -> anyhow::Result<publish::Published> {
        Ok(publish::publish(
            &self.result,
            &self.episodes,
            &self.paths.artifacts_dir,
            &self.paths.skill_file,
        )?)
    }
}

/// Gathers what the arguments name (the policy, recorded runs, the cluster
/// Policy and its recordings), runs [`learn::learn`] and prints what it
/// found; publishing is the caller's choice.
pub async fn learn(catalog_path: Option<PathBuf>, args: &OptimizeArgs) -> anyhow::Result<Learned> {
    let optimizer = match args.optimizer {
        OptimizerArg::Gepa => Optimizer::Gepa,
        OptimizerArg::Iterative => Optimizer::Iterative,
    };
    let paths = args.recording.paths()?;
    let overrides = Overrides {
        brain: Some(args.brain),
        model: args.model.clone(),
        ..Overrides::default()
    };
    let target = match &args.to_policy {
        Some(name) => Some(cluster_policy(name, args.namespace.as_deref()).await?),
        None => None,
    };
    let policy = match &target {
        Some((_, found)) => policy::from_spec(&found.name_any(), &found.spec, &overrides, &paths),
        None => policy::resolve(&args.policy, &overrides, &paths),
    }
    .context("resolving the policy whose hint is the seed")?;
    let mut recorded = match &args.from_trajectories {
        Some(dir) => recorded_in(dir)?,
        None => Vec::new(),
    };
    let mut notes = Vec::new();
    let mut cluster_lines = Vec::new();
    if let Some((client, found)) = &target {
        let (lines, said) = recorded_in_cluster(client, found).await;
        notes.push(said);
        cluster_lines = lines;
    }
    let mut recorder = args.recording.recorder(&paths);
    if args.recording.run_id.is_none() {
        recorder.run_id = format!(
            "optimize-{}-{}",
            optimizer.as_str(),
            trajectory::new_run_id()
        );
    }
    let env = common::environment(catalog_path.as_deref(), Some(recorder.clone())).await?;
    let train = env.catalog.ids_in(Some(Split::Train));
    recorded.extend(usable_from_cluster(cluster_lines, &train));
    let request = learn::Request {
        settings: Settings {
            optimizer,
            budget: args.budget,
            minibatch: args.minibatch,
            seed: args.seed,
            max_merges: args.max_merges,
            patience: args.patience,
            dedupe_by_strategy: args.brain == BrainKind::Runbook,
        },
        brain: args.brain,
        reflector: args.reflection.unwrap_or(match args.brain {
            BrainKind::Runbook => ReflectorKind::Deterministic,
            BrainKind::Llm => ReflectorKind::Llm,
        }),
        policy,
        concurrency: args
            .concurrency
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
        recorded,
        notes,
        catalog_origin: catalog_path
            .as_ref()
            .map_or("(built-in)".to_string(), |p| p.display().to_string()),
        run_id: recorder.run_id.clone(),
        artifacts_dir: paths.artifacts_dir.clone(),
    };
    let mut progress = Stderr::new();
    let learned = learn::learn(env, request, &mut progress, &mut |line| println!("{line}")).await;
    drop(progress);
    let learned = learned?;
    print!("{}", summary(&learned.outcome, &learned.result));
    let usage = learned.reflection;
    if usage.prompt + usage.completion > 0 {
        println!(
            "reflection tokens: {} prompt + {} completion",
            usage.prompt, usage.completion
        );
    }
    println!("result: {}", learned.last_run.display());
    println!(
        "trajectories: {}",
        trajectory::run_file(&recorder.artifacts_dir, &recorder.run_id).display()
    );
    Ok(Learned {
        result: learned.result,
        episodes: learned.episodes,
        paths,
        to_policy: target,
    })
}

/// The runs recorded under `dir`, with a warning for what was skipped.
fn recorded_in(dir: &std::path::Path) -> anyhow::Result<Vec<TrajectoryLine>> {
    let (lines, malformed) = trajectory::read_runs(dir)
        .with_context(|| format!("cannot read recorded runs in {}", dir.display()))?;
    if malformed > 0 {
        eprintln!(
            "warning: {malformed} malformed lines in {} were skipped",
            dir.display()
        );
    }
    if lines.is_empty() {
        eprintln!(
            "warning: no recorded trajectories in {}; every rollout will be fresh",
            dir.display()
        );
    }
    Ok(lines)
}

/// The cluster Policy `--to-policy` names, checked before any rollout.
async fn cluster_policy(
    name: &str,
    namespace: Option<&str>,
) -> anyhow::Result<(kube::Client, crate::crd::Policy)> {
    let client = kube::Client::try_default()
        .await
        .context("connecting to the Kubernetes API for --to-policy (KUBECONFIG or in-cluster)")?;
    let namespace = namespace.map_or_else(|| client.default_namespace().to_string(), String::from);
    let policy = to_cluster::following_policy(&client, &namespace, name).await?;
    Ok((client, policy))
}

/// What the operator recorded of the Policy's Incidents (newest first)
/// and a line that says so; none, with a warning, when the ring cannot be
/// read: the rollouts are then all fresh.
async fn recorded_in_cluster(
    client: &kube::Client,
    policy: &crate::crd::Policy,
) -> (Vec<TrajectoryLine>, String) {
    let namespace = policy.namespace().unwrap_or_default();
    let name = in_cluster::config_map_name(&policy.name_any());
    match in_cluster::read(client, &namespace, &policy.name_any()).await {
        Ok(recorded) => {
            if recorded.malformed > 0 {
                eprintln!(
                    "warning: {} values in ConfigMap {namespace}/{name} are not trajectory lines and were skipped",
                    recorded.malformed
                );
            }
            let said = format!(
                "  recorded in the cluster: {} trajectories of Policy {} (ConfigMap {namespace}/{name})",
                recorded.lines.len(),
                policy.name_any()
            );
            (recorded.lines, said)
        }
        Err(e) => {
            let said = format!(
                "  warning: cannot read the recorded trajectories in ConfigMap {namespace}/{name}: {e}; every rollout will be fresh"
            );
            (Vec::new(), said)
        }
    }
}

/// The cluster's recordings the optimization may reuse: train scenarios
/// only, so whatever is published won on fresh validation rollouts (a
/// ConfigMap is easier to write than a Policy), and no episode a person
/// steered (an approval or rejection by annotation, link or terminal, a
/// timeout), which a rollout here
/// cannot repeat.
fn usable_from_cluster(lines: Vec<TrajectoryLine>, train: &[String]) -> Vec<TrajectoryLine> {
    lines
        .into_iter()
        .filter(|line| train.contains(&line.scenario_id))
        .filter(|line| {
            !line
                .steps
                .iter()
                .any(|s| crate::risk::DecidedBy::steered_by_person(&s.decided_by))
        })
        .collect()
}

fn summary(outcome: &Outcome, result: &BestHint) -> String {
    let mut out = format!(
        "\n{} rollouts used of {} ({} reused from recordings); {} proposals evaluated, {} kept ({} merges)\n",
        outcome.rollouts_used,
        outcome.budget,
        outcome.rollouts_reused,
        outcome.proposals,
        outcome.accepted,
        outcome.merges
    );
    out.push_str(&format!(
        "{:>4} {:<10} {:>7} {:>10}  strategy\n",
        "id", "origin", "train", "validation"
    ));
    for entry in &result.history {
        out.push_str(&format!(
            "{:>4} {:<10} {:>7.3} {:>10}  {}{}\n",
            entry.id,
            format!("{:?}", entry.origin).to_lowercase(),
            entry.train_score,
            entry
                .validation_score
                .map_or("-".to_string(), |v| format!("{v:.3}")),
            entry.strategy,
            if entry.id == result.candidate {
                "  <- chosen"
            } else {
                ""
            }
        ));
    }
    out.push_str(&format!(
        "chosen: candidate {} train {:.3} validation {}\nhint: {}\n",
        result.candidate,
        result.score,
        result
            .validation_score
            .map_or("-".to_string(), |v| format!("{v:.3}")),
        result.hint
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optimize::score::tests::{line, step};

    #[test]
    fn cluster_recordings_serve_train_scenarios_only_and_never_a_persons_decision() {
        let train = vec!["port_mismatch".to_string()];
        let mut approved = step(1, "exec", "rm lock", "MEDIUM", "Confirmed");
        approved.decided_by = "annotation".into();
        let mut timed_out = step(1, "exec", "rm lock", "MEDIUM", "Rejected");
        timed_out.decided_by = "timeout".into();
        let mut linked = step(1, "exec", "rm lock", "MEDIUM", "Confirmed");
        linked.decided_by = "link".into();
        let lines = vec![
            line(
                "port_mismatch",
                true,
                vec![step(1, "exec", "ls", "LOW", "Allowed")],
            ),
            line("stale_lockfile_validation", true, vec![]),
            line("port_mismatch", true, vec![approved]),
            line("port_mismatch", false, vec![timed_out]),
            line("port_mismatch", true, vec![linked]),
        ];
        let usable = usable_from_cluster(lines.clone(), &train);
        assert_eq!(usable, vec![lines[0].clone()]);
    }
}
