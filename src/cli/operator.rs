//! `remediator operator`: reconcile Incidents and Policies, gate every
//! agent's action, verify, write status and metrics.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::operator::objects::Settings;
use crate::operator::run::{self, LinksConfig, OperatorConfig};

#[derive(Debug, Args)]
pub struct OperatorArgs {
    /// Where agents reach the Action API.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub api_listen: SocketAddr,
    /// Where /metrics, /healthz and /readyz are served.
    #[arg(long, default_value = "0.0.0.0:9090")]
    pub metrics_listen: SocketAddr,
    /// Watch only this namespace (default: all).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Elect a leader through a Lease in this namespace (default: the
    /// operator's own, from POD_NAMESPACE); --no-leader-election runs alone.
    #[arg(long, env = "POD_NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    #[arg(long)]
    pub no_leader_election: bool,
    #[arg(long, default_value = "remediator-operator")]
    pub lease_name: String,
    /// Incidents reconciled at once. Bounded so a restart over thousands of
    /// Incidents does not send them all to the API server together
    /// (`cargo bench --bench reconciler` measures the trade-off).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrent_reconciles: u16,
    /// The operator/agent/sandbox image the scenario Pods' sidecars and
    /// agent Jobs run.
    #[arg(long, env = "REMEDIATOR_IMAGE", default_value = "remediator:dev")]
    pub image: String,
    /// The target service image.
    #[arg(
        long,
        env = "REMEDIATOR_TARGET_IMAGE",
        default_value = "remediator-target-service:dev"
    )]
    pub target_image: String,
    /// The Action API's URL as agent Pods reach it (the operator's Service).
    #[arg(long, env = "REMEDIATOR_ACTION_API_URL")]
    pub action_api_url: String,
    /// The service account agent Jobs run as; it must exist in every
    /// namespace with Incidents. Unset: the namespace's `default`. No token
    /// is mounted either way, so it needs (and gets) no rights.
    #[arg(long)]
    pub agent_service_account: Option<String>,
    /// The seccomp profile of scenario Pods and agents: RuntimeDefault, or
    /// Localhost:<profile> for one that lets the sandbox create namespaces.
    #[arg(long, default_value = "RuntimeDefault")]
    pub seccomp_profile: String,
    #[arg(long, default_value_t = 65532)]
    pub run_as_user: i64,
    /// false: scenario Pods and agents run in a user namespace of their own
    /// (`hostUsers: false`, Kubernetes 1.33+ where the runtime supports it).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub host_users: bool,
    /// Unmasked: the sandbox container of scenario Pods gets `procMount:
    /// Unmasked`, so the sandbox can give each command a /proc of its own
    /// (needs --host-users=false; Kubernetes refuses it otherwise).
    #[arg(long, value_enum, ignore_case = true, default_value_t = ProcMount::Default)]
    pub proc_mount: ProcMount,
    /// The URL people reach --links-listen at (e.g.
    /// https://remediator.example.com). Set, notices carry signed
    /// approve/reject links; unset, only the kubectl commands.
    #[arg(long, env = "REMEDIATOR_LINKS_BASE_URL")]
    pub links_base_url: Option<String>,
    /// Where approve/reject links are served (with --links-base-url).
    #[arg(long, default_value = "0.0.0.0:8082")]
    pub links_listen: SocketAddr,
    /// The file holding the key (32 bytes or more) that signs the links;
    /// the chart mounts it from a Secret it creates.
    #[arg(long, default_value = "/var/run/remediator/links/key")]
    pub links_key_file: PathBuf,
    /// Record the user in remediator.dev/decided-by as who approved or
    /// rejected through an annotation. Only with the chart's admission
    /// policies (approvals.recordUser), which stamp it and refuse any
    /// other change to it; without them anyone could write it.
    #[arg(long)]
    pub approver_from_admission: bool,
    /// Let notices go to webhooks on loopback addresses (a receiver on this
    /// machine, in development). Link-local addresses (cloud metadata)
    /// are never allowed.
    #[arg(long)]
    pub webhook_allow_loopback: bool,
}

/// Spelt as Kubernetes spells `procMount`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProcMount {
    #[value(name = "Default")]
    Default,
    #[value(name = "Unmasked")]
    Unmasked,
}

pub async fn run(catalog: Option<PathBuf>, args: OperatorArgs) -> anyhow::Result<ExitCode> {
    if args.proc_mount == ProcMount::Unmasked && args.host_users {
        anyhow::bail!(
            "--proc-mount=Unmasked needs --host-users=false: Kubernetes accepts an unmasked /proc only in a Pod with a user namespace of its own"
        );
    }
    let catalog = crate::scenario::load_catalog(catalog.as_deref())?;
    let lease_namespace = if args.no_leader_election {
        None
    } else {
        Some(args.leader_election_namespace.clone().ok_or_else(|| {
            anyhow::anyhow!(
                "leader election needs a namespace for its Lease: set POD_NAMESPACE, --leader-election-namespace, or --no-leader-election"
            )
        })?)
    };
    let links = match &args.links_base_url {
        None => None,
        Some(base_url) => {
            let url = reqwest::Url::parse(base_url)
                .map_err(|e| anyhow::anyhow!("--links-base-url {base_url:?}: {e}"))?;
            if !matches!(url.scheme(), "http" | "https") || url.query().is_some() {
                anyhow::bail!(
                    "--links-base-url must be an http(s) URL without a query: {base_url}"
                );
            }
            Some(LinksConfig {
                listen: args.links_listen,
                base_url: base_url.clone(),
                key_file: args.links_key_file.clone(),
            })
        }
    };
    let config = OperatorConfig {
        api_listen: args.api_listen,
        metrics_listen: args.metrics_listen,
        namespace: args.namespace,
        lease_namespace,
        lease_name: args.lease_name,
        concurrent_reconciles: args.concurrent_reconciles,
        settings: Settings {
            operator_image: args.image,
            target_image: args.target_image,
            action_api_url: args.action_api_url,
            agent_service_account: args.agent_service_account,
            seccomp_profile: args.seccomp_profile,
            run_as_user: args.run_as_user,
            host_users: args.host_users,
            unmasked_proc: args.proc_mount == ProcMount::Unmasked,
            telemetry: crate::telemetry::forwarded_env(),
            approver_from_admission: args.approver_from_admission,
            ..Settings::default()
        },
        catalog,
        links,
        webhook_allow_loopback: args.webhook_allow_loopback,
    };
    run::run(config, async {
        use tokio::signal::unix::{SignalKind, signal};
        if let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        tracing::info!("stopping; finishing what is in flight");
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}
