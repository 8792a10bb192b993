//! `remediator mcp`: the MCP server for AI assistants, over stdio (the
//! default) or streamable HTTP (`--http ADDRESS`).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use rmcp::ServiceExt;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use crate::mcp::{McpServer, Shared};

#[derive(Debug, Args)]
pub struct McpArgs {
    /// Serve streamable HTTP at this address (path /mcp) instead of stdio.
    #[arg(long)]
    pub http: Option<SocketAddr>,
    /// Offer `approve` and `reject`, which act as the caller: over stdio
    /// with this process's kubeconfig, over HTTP with the caller's bearer
    /// token. Without it the server is read-only.
    #[arg(long)]
    pub allow_approvals: bool,
    /// The namespace tools default to (default: the kubeconfig's).
    #[arg(long, short)]
    pub namespace: Option<String>,
    /// Host names the HTTP server answers to besides localhost, 127.0.0.1
    /// and ::1 (e.g. its Service's DNS name): other Host headers are
    /// refused, against DNS rebinding.
    #[arg(long = "allowed-host")]
    pub allowed_hosts: Vec<String>,
    /// Over HTTP, let a call without a bearer token read as this server's
    /// own identity. Off: every call reads as its caller, so RBAC decides
    /// what each caller sees.
    #[arg(long)]
    pub anonymous_reads: bool,
}

pub async fn run(args: McpArgs) -> anyhow::Result<ExitCode> {
    let config = kube::Config::infer()
        .await
        .context("finding the cluster (in-cluster config or KUBECONFIG)")?;
    let client = kube::Client::try_from(config.clone()).context("connecting to the cluster")?;
    let shared = Arc::new(Shared {
        client,
        namespace: args
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone()),
        config,
        allow_approvals: args.allow_approvals,
        over_http: args.http.is_some(),
        anonymous_reads: args.anonymous_reads,
    });
    match args.http {
        None => {
            let running = McpServer::new(shared)
                .serve(rmcp::transport::stdio())
                .await
                .context("starting the MCP session on stdio")?;
            running.waiting().await?;
        }
        Some(address) => {
            let mut hosts = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
            hosts.extend(args.allowed_hosts.iter().cloned());
            let config = StreamableHttpServerConfig::default().with_allowed_hosts(hosts);
            let cancel = config.cancellation_token.clone();
            let service = StreamableHttpService::new(
                move || Ok(McpServer::new(shared.clone())),
                LocalSessionManager::default().into(),
                config,
            );
            let app = axum::Router::new()
                .route("/healthz", axum::routing::get(|| async { "ok" }))
                .nest_service("/mcp", service);
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("listening on {address}"))?;
            eprintln!(
                "MCP over streamable HTTP at http://{}/mcp ({})",
                listener.local_addr()?,
                match (args.allow_approvals, args.anonymous_reads) {
                    (true, _) => "every call acts as the caller's bearer token",
                    (false, false) => "read-only, reads as the caller's bearer token",
                    (false, true) => "read-only; calls without a token read as this server",
                }
            );
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    super::interrupted().await;
                    cancel.cancel();
                })
                .await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
