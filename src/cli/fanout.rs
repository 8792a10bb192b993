//! `remediator fanout`: many incidents at once (a batch, or Poisson
//! arrivals for a while), a report of what they came to, one trajectory
//! line per incident. The first Ctrl-C drains (running incidents finish,
//! nothing new starts), a second aborts them; the report covers what ran.
//! With `--kube` the incidents are Incidents in a namespace, resolved by
//! the operator there, and the report is read from their status.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, ValueEnum};
use tokio::sync::watch;

use super::common::{self, Recording};
use super::run::PolicyArgs;
use crate::agent::confirm::Refuse;
use crate::crd::BrainKind;
use crate::eval::dashboard::{self, View};
use crate::eval::fanout::{self, LocalRunner, Plan, Runner, Snapshot, Stop};
use crate::eval::kube::KubeRunner;
use crate::eval::params::FanoutParams;
use crate::policy::{self, Overrides};
use crate::trajectory;

#[derive(Debug, Args)]
pub struct FanoutArgs {
    /// Batch: incidents to run (default 20). Continuous: at most this many arrive.
    #[arg(long)]
    pub incidents: Option<usize>,
    /// Workers running incidents at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// baseline, optimized or a Policy file; with --kube, the name of a
    /// Policy in the namespace.
    #[arg(long, default_value = "optimized")]
    pub policy: String,
    /// Create the incidents as Incidents in a cluster (KUBECONFIG or
    /// in-cluster) and read their outcome from their status.
    #[arg(long)]
    pub kube: bool,
    /// With --kube: the namespace (default: the kubeconfig's).
    #[arg(long, requires = "kube")]
    pub namespace: Option<String>,
    /// With --kube: longest wait for one Incident to end; then it is
    /// deleted and counted as failed (FanoutTimeout).
    #[arg(long, default_value_t = 600.0, requires = "kube")]
    pub incident_timeout_s: f64,
    #[command(flatten)]
    pub brain: PolicyArgs,
    /// Confirm every action the policy wants confirmed (nobody is asked).
    #[arg(long)]
    pub auto_confirm: bool,
    /// Scenario weights, `stale_lockfile=3,port_mismatch=1` (default: the split, evenly).
    #[arg(long)]
    pub scenario_mix: Option<String>,
    /// Scenarios drawn from when there is no mix: train, validation or all.
    #[arg(long, default_value = "all")]
    pub split: String,
    /// Severity weights, `sev1=1,sev2=2,sev3=4,sev4=3` (the default); sev1 is served first.
    #[arg(long)]
    pub severity_mix: Option<String>,
    /// Seeds the arrivals, the mix and the severities.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Poisson arrivals at --arrival-rate for --duration-s instead of a batch.
    #[arg(long)]
    pub continuous: bool,
    #[arg(long, allow_negative_numbers = true)]
    pub duration_s: Option<f64>,
    /// Mean arrivals per second.
    #[arg(long, allow_negative_numbers = true)]
    pub arrival_rate: Option<f64>,
    /// Continuous mode: most incidents waiting; beyond it the least severe are dropped.
    #[arg(long, default_value_t = 100)]
    pub queue_limit: usize,
    /// Link per incident: {run_id}, {incident_id}, {trace_key}, {trace_id}.
    #[arg(long)]
    pub trace_url_template: Option<String>,
    /// After Ctrl-C, how long running incidents may take before they are aborted.
    #[arg(long, default_value_t = 10.0, allow_negative_numbers = true)]
    pub drain_timeout_s: f64,
    /// A full-screen view (plain lines when stdout is not a terminal).
    #[arg(long)]
    pub dashboard: bool,
    #[arg(short, long, value_enum, default_value_t = FanoutFormat::Table)]
    pub output: FanoutFormat,
    /// JSON only: include every incident's record.
    #[arg(long)]
    pub records: bool,
    #[command(flatten)]
    pub recording: Recording,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FanoutFormat {
    Table,
    Json,
}

impl FanoutArgs {
    fn params(&self) -> FanoutParams {
        FanoutParams {
            incidents: self.incidents,
            concurrency: self.concurrency,
            policy: self.policy.clone(),
            scenario_mix: self.scenario_mix.clone(),
            split: self.split.clone(),
            severity_mix: self.severity_mix.clone(),
            seed: self.seed,
            continuous: self.continuous,
            duration_s: self.duration_s,
            arrival_rate: self.arrival_rate,
            queue_limit: self.queue_limit,
            trace_url_template: self.trace_url_template.clone(),
            drain_timeout_s: self.drain_timeout_s,
        }
    }
}

pub async fn fanout(catalog_path: Option<PathBuf>, args: FanoutArgs) -> anyhow::Result<ExitCode> {
    let (plan, runner) = if args.kube {
        kube_plan(catalog_path.as_deref(), &args).await?
    } else {
        local_plan(catalog_path.as_deref(), &args).await?
    };
    run_plan(plan, runner, &args).await
}

/// Incidents on this machine, each recording its trajectory line.
async fn local_plan(
    catalog_path: Option<&std::path::Path>,
    args: &FanoutArgs,
) -> anyhow::Result<(Plan, Arc<dyn Runner>)> {
    let paths = args.recording.paths()?;
    let recorder = args.recording.recorder(&paths);
    let overrides = Overrides {
        auto_confirm: args.auto_confirm,
        ..args.brain.to_overrides()
    };
    // Everything a user can get wrong is checked before anything starts.
    let catalog = crate::scenario::load_catalog(catalog_path)?;
    let policy = policy::resolve(&args.policy, &overrides, &paths)?;
    let file = trajectory::run_file(&recorder.artifacts_dir, &recorder.run_id);
    let plan = args.params().plan(
        &catalog,
        policy,
        &recorder.run_id,
        Some(file.display().to_string()),
    )?;
    let env = Arc::new(common::environment(catalog_path, Some(recorder)).await?);
    // An LLM brain that cannot be built would fail every incident alike.
    let spec = &plan.policy.spec;
    if spec.brain == BrainKind::Llm && !spec.allow_fallback {
        crate::agent::llm::LlmConfig::resolve(&spec.llm.clone().unwrap_or_default(), &env.llm)
            .map_err(|e| {
                anyhow::anyhow!("{e} (or let the runbook brain take over: --allow-fallback)")
            })?;
    }
    let runner = Arc::new(LocalRunner {
        policy: plan.policy.clone(),
        env,
        confirmer: Arc::new(Refuse),
    });
    Ok((plan, runner))
}

/// Incidents in a cluster under a Policy that is there; nothing is
/// recorded here (the operator keeps the status).
async fn kube_plan(
    catalog_path: Option<&std::path::Path>,
    args: &FanoutArgs,
) -> anyhow::Result<(Plan, Arc<dyn Runner>)> {
    let local_only = [
        (args.brain.brain.is_some(), "--brain"),
        (args.brain.allow_fallback, "--allow-fallback"),
        (args.brain.model.is_some(), "--model"),
        (args.auto_confirm, "--auto-confirm"),
    ];
    if let Some((_, flag)) = local_only.iter().find(|(given, _)| *given) {
        anyhow::bail!(
            "{flag} is for local incidents; with --kube the Policy `{}` decides (edit it with kubectl)",
            args.policy
        );
    }
    if !(args.incident_timeout_s.is_finite() && args.incident_timeout_s > 0.0) {
        anyhow::bail!(
            "--incident-timeout-s must be a positive number of seconds, not {}",
            args.incident_timeout_s
        );
    }
    let catalog = crate::scenario::load_catalog(catalog_path)?;
    let client = kube::Client::try_default()
        .await
        .context("connecting to the Kubernetes API (KUBECONFIG or in-cluster)")?;
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    let policies: kube::Api<crate::crd::Policy> = kube::Api::namespaced(client.clone(), &namespace);
    let found = policies
        .get_opt(&args.policy)
        .await
        .with_context(|| format!("reading Policy {namespace}/{}", args.policy))?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "there is no Policy `{}` in namespace {namespace}: kubectl apply -n {namespace} -f examples/ (or name one that is there with --policy)",
                args.policy
            )
        })?;
    let nowhere = policy::Paths {
        artifacts_dir: "/nonexistent/artifacts".into(),
        skill_file: "/nonexistent/SKILL.md".into(),
    };
    let mut resolved =
        policy::from_spec(&args.policy, &found.spec, &Overrides::default(), &nowhere)?;
    resolved.generation = found.metadata.generation;
    let run_id = args
        .recording
        .run_id
        .clone()
        .unwrap_or_else(trajectory::new_run_id);
    let plan = args.params().plan(&catalog, resolved, &run_id, None)?;
    let runner = Arc::new(KubeRunner {
        api: kube::Api::namespaced(client, &namespace),
        policy: args.policy.clone(),
        run_id,
        timeout: std::time::Duration::from_secs_f64(args.incident_timeout_s),
    });
    Ok((plan, runner))
}

/// Runs the plan with its runner, shows it, prints the report.
async fn run_plan(
    plan: Plan,
    runner: Arc<dyn Runner>,
    args: &FanoutArgs,
) -> anyhow::Result<ExitCode> {
    let (stop_tx, stop) = watch::channel(Stop::Run);
    let (live, watcher) = watch::channel(Snapshot::initial(
        plan.info.clone(),
        plan.arrivals.len(),
        plan.info.concurrency,
    ));
    let view = View::choose(args.dashboard, args.output == FanoutFormat::Json);
    let signals = tokio::spawn(stop_on_signals(stop_tx));
    let shown = tokio::spawn(dashboard::follow(watcher, view));
    let finished = fanout::run_with(plan, runner, stop, &live).await;
    signals.abort();
    shown.await.context("the dashboard task failed")?;
    for record in finished.records.iter().filter(|r| r.record_error.is_some()) {
        eprintln!(
            "warning: {}: {}",
            record.incident,
            record.record_error.as_deref().unwrap_or_default()
        );
    }
    match args.output {
        FanoutFormat::Table => print!("{}", finished.report.to_text()),
        FanoutFormat::Json => {
            let mut value = serde_json::to_value(&finished.report)?;
            if args.records {
                value["records"] = serde_json::to_value(&finished.records)?;
            }
            println!("{}", serde_json::to_string_pretty(&value)?);
        }
    }
    Ok(if finished.report.stopped.is_some() {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}

/// First SIGINT/SIGTERM: drain; second: abort.
async fn stop_on_signals(stop: watch::Sender<Stop>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    for level in [Stop::Drain, Stop::Abort] {
        tokio::select! {
            _ = int.recv() => {},
            _ = term.recv() => {},
        }
        eprintln!(
            "\n{}",
            match level {
                Stop::Drain =>
                    "stopping: running incidents finish, nothing new starts (Ctrl-C again aborts them)",
                _ => "aborting running incidents: their services stop and their roots are removed",
            }
        );
        let _ = stop.send(level);
    }
}
