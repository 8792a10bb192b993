//! `remediator mcp`: the operator's Incidents, Policies, scorecard and
//! pending approvals for AI assistants, over the Model Context Protocol
//! (stdio or streamable HTTP). Read-only unless started with
//! `--allow-approvals`; then `approve` and `reject` act as the caller, never
//! as the server: over stdio with the kubeconfig of whoever runs it, over
//! HTTP with the caller's own Kubernetes token (`Authorization: Bearer`),
//! so the API server's RBAC decides and its records say who it was.

pub mod view;

use std::sync::Arc;

use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, Config};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, ContentBlock, Implementation, ListResourceTemplatesResult, ListResourcesResult,
    PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult,
    Resource, ResourceContents, ResourceTemplate, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::crd::{Incident, Policy};

/// The field manager an approval made through MCP is recorded under.
pub const FIELD_MANAGER: &str = "remediator-mcp";

/// What every session of the server shares.
pub struct Shared {
    /// The server's own identity: reads (and, over stdio, the caller's).
    pub client: Client,
    /// The cluster as the server's config reaches it, for a caller's token.
    pub config: Config,
    /// Namespace the tools default to.
    pub namespace: String,
    pub allow_approvals: bool,
    /// Over HTTP: every call acts as the caller's own token.
    pub over_http: bool,
    /// Over HTTP, a call without a token reads as the server's identity.
    pub anonymous_reads: bool,
}

#[derive(Clone)]
pub struct McpServer {
    shared: Arc<Shared>,
    tool_router: ToolRouter<Self>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct NamespaceArgs {
    /// The namespace (default: the server's).
    #[serde(default)]
    pub namespace: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct IncidentArgs {
    /// The Incident's name.
    pub name: String,
    /// Its namespace (default: the server's).
    #[serde(default)]
    pub namespace: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct DecisionArgs {
    /// The Incident's name.
    pub name: String,
    /// Its namespace (default: the server's).
    #[serde(default)]
    pub namespace: Option<String>,
    /// The step waiting for the answer (as `pending_approval` shows).
    pub step: u32,
    /// The action's hash as `pending_approval` showed it (`actionHash`,
    /// or its first 8 or more hex digits): the answer holds only for that
    /// very action.
    pub action_hash: String,
}

fn json_result(value: Value) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(
        serde_json::to_string_pretty(&value).unwrap_or_default(),
    )])
}

fn tool_error(message: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message.into())])
}

#[tool_router(router = read_tools)]
impl McpServer {
    #[tool(
        description = "List Incidents: scenario, policy, phase, steps, verified health and the step waiting for approval, if any.",
        annotations(read_only_hint = true)
    )]
    async fn list_incidents(
        &self,
        Parameters(args): Parameters<NamespaceArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        match self.incidents(&context, args.namespace.as_deref()).await {
            Ok(list) => json_result(json!({
                "incidents": list.iter().map(view::incident_row).collect::<Vec<_>>()
            })),
            Err(e) => tool_error(e),
        }
    }

    #[tool(
        description = "One Incident's status: phase, conditions, actions with risk, decision and who decided, verification, notices.",
        annotations(read_only_hint = true)
    )]
    async fn get_incident(
        &self,
        Parameters(args): Parameters<IncidentArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        self.show_incident(&context, &args, view::incident_detail)
            .await
    }

    #[tool(
        description = "The action an Incident waits on for approval: kind, command or path, risk, the classifier's reason, what a write would put, and how to answer.",
        annotations(read_only_hint = true)
    )]
    async fn pending_approval(
        &self,
        Parameters(args): Parameters<IncidentArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        self.show_incident(&context, &args, |incident| {
            view::pending(incident).unwrap_or_else(|| {
                json!({"waiting": false, "phase": incident.status.as_ref().map(|s| s.phase.name())})
            })
        })
        .await
    }

    #[tool(
        description = "One Incident's trajectory: every action kept in its status, in order, with the gate's decision, who decided, exit code and duration.",
        annotations(read_only_hint = true)
    )]
    async fn trajectory(
        &self,
        Parameters(args): Parameters<IncidentArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        self.show_incident(&context, &args, view::trajectory).await
    }

    #[tool(
        description = "List Policies: brain, model, hint version, risk limits, webhooks, and their scorecard status.",
        annotations(read_only_hint = true)
    )]
    async fn list_policies(
        &self,
        Parameters(args): Parameters<NamespaceArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        self.show_policies(
            &context,
            &args,
            |list| json!({"policies": list.iter().map(view::policy_row).collect::<Vec<_>>()}),
        )
        .await
    }

    #[tool(
        description = "The scorecard: per Policy, incidents resolved and failed, fix rate, mean steps and p95 time to resolve.",
        annotations(read_only_hint = true)
    )]
    async fn scorecard(
        &self,
        Parameters(args): Parameters<NamespaceArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        self.show_policies(&context, &args, view::scorecard).await
    }
}

#[tool_router(router = approval_tools)]
impl McpServer {
    #[tool(
        description = "Approve the action an Incident waits on, as you: the Kubernetes API checks that you may annotate Incidents, and the Incident's status records the answer.",
        annotations(destructive_hint = true, idempotent_hint = true)
    )]
    async fn approve(
        &self,
        Parameters(args): Parameters<DecisionArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        self.decide(args, true, &context).await
    }

    #[tool(
        description = "Reject the action an Incident waits on, as you (the Policy then decides whether the incident fails).",
        annotations(destructive_hint = true, idempotent_hint = true)
    )]
    async fn reject(
        &self,
        Parameters(args): Parameters<DecisionArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        self.decide(args, false, &context).await
    }
}

impl McpServer {
    pub fn new(shared: Arc<Shared>) -> Self {
        let mut tool_router = Self::read_tools();
        if shared.allow_approvals {
            tool_router += Self::approval_tools();
        }
        Self {
            shared,
            tool_router,
        }
    }

    /// One Incident, read as the caller, shown by `render`.
    async fn show_incident(
        &self,
        context: &RequestContext<RoleServer>,
        args: &IncidentArgs,
        render: impl FnOnce(&Incident) -> Value,
    ) -> CallToolResult {
        match self
            .incident(context, args.namespace.as_deref(), &args.name)
            .await
        {
            Ok(incident) => json_result(render(&incident)),
            Err(e) => tool_error(e),
        }
    }

    /// The namespace's Policies, read as the caller, shown by `render`.
    async fn show_policies(
        &self,
        context: &RequestContext<RoleServer>,
        args: &NamespaceArgs,
        render: impl FnOnce(&[Policy]) -> Value,
    ) -> CallToolResult {
        match self.policies(context, args.namespace.as_deref()).await {
            Ok(list) => json_result(render(&list)),
            Err(e) => tool_error(e),
        }
    }

    fn namespace<'a>(&'a self, namespace: Option<&'a str>) -> &'a str {
        namespace
            .filter(|n| !n.is_empty())
            .unwrap_or(&self.shared.namespace)
    }

    async fn incidents(
        &self,
        context: &RequestContext<RoleServer>,
        namespace: Option<&str>,
    ) -> Result<Vec<Incident>, String> {
        let api: Api<Incident> = Api::namespaced(self.reader(context)?, self.namespace(namespace));
        api.list(&ListParams::default())
            .await
            .map(|l| l.items)
            .map_err(describe)
    }

    async fn incident(
        &self,
        context: &RequestContext<RoleServer>,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Incident, String> {
        let namespace = self.namespace(namespace);
        let api: Api<Incident> = Api::namespaced(self.reader(context)?, namespace);
        api.get_opt(name)
            .await
            .map_err(describe)?
            .ok_or_else(|| format!("no Incident {namespace}/{name}"))
    }

    async fn policies(
        &self,
        context: &RequestContext<RoleServer>,
        namespace: Option<&str>,
    ) -> Result<Vec<Policy>, String> {
        let api: Api<Policy> = Api::namespaced(self.reader(context)?, self.namespace(namespace));
        api.list(&ListParams::default())
            .await
            .map(|l| l.items)
            .map_err(describe)
    }

    /// The client reads go through: the caller's where there is one (over
    /// HTTP with a token, or over stdio, where the server runs as the
    /// caller); the server's own only with --anonymous-reads.
    fn reader(&self, context: &RequestContext<RoleServer>) -> Result<Client, String> {
        match (self.shared.over_http, bearer(context)) {
            (false, _) => Ok(self.shared.client.clone()),
            (true, Some(_)) => self.callers_client(context),
            (true, None) if self.shared.anonymous_reads => Ok(self.shared.client.clone()),
            (true, None) => Err(
                "this server reads as you: send your Kubernetes token as `Authorization: Bearer <token>`"
                    .into(),
            ),
        }
    }

    /// The client that acts as the caller: over HTTP one with their bearer
    /// token, over stdio the server's own (it runs as the caller).
    fn callers_client(&self, context: &RequestContext<RoleServer>) -> Result<Client, String> {
        if !self.shared.over_http {
            return Ok(self.shared.client.clone());
        }
        let token = bearer(context).ok_or(
            "approving over HTTP acts as you: send your Kubernetes token as `Authorization: Bearer <token>`",
        )?;
        let mut config = self.shared.config.clone();
        config.auth_info = serde_json::from_value(json!({ "token": token }))
            .map_err(|e| format!("the token cannot be used: {e}"))?;
        Client::try_from(config).map_err(|e| format!("cannot reach the cluster as you: {e}"))
    }

    async fn decide(
        &self,
        args: DecisionArgs,
        approve: bool,
        context: &RequestContext<RoleServer>,
    ) -> CallToolResult {
        let client = match self.callers_client(context) {
            Ok(client) => client,
            Err(e) => return tool_error(e),
        };
        let namespace = self.namespace(args.namespace.as_deref()).to_string();
        // Read as the caller too: what they may not see, they may not answer.
        let api: Api<Incident> = Api::namespaced(client, &namespace);
        let incident = match api.get_opt(&args.name).await {
            Ok(Some(incident)) => incident,
            Ok(None) => return tool_error(format!("no Incident {namespace}/{}", args.name)),
            Err(e) => return tool_error(describe(e)),
        };
        let Some(pending) = view::pending(&incident) else {
            return tool_error(format!(
                "Incident {namespace}/{} waits for no approval",
                args.name
            ));
        };
        if pending["step"] != json!(args.step) {
            return tool_error(format!(
                "Incident {namespace}/{} waits at step {}, not {}",
                args.name, pending["step"], args.step
            ));
        }
        let waiting_hash = pending["actionHash"].as_str().unwrap_or_default();
        if args.action_hash.len() < crate::operator::annotations::MIN_HASH_PREFIX
            || !waiting_hash.starts_with(&args.action_hash.to_ascii_lowercase())
        {
            return tool_error(
                "the waiting action is not the one you saw (its hash differs): read pending_approval again",
            );
        }
        let annotation = if approve {
            crate::operator::annotations::APPROVE
        } else {
            crate::operator::annotations::REJECT
        };
        // The value names the action's hash, so the answer holds for that
        // action alone; the UID rides along, so a namesake created
        // meanwhile refuses the patch (a UID never changes).
        let value = crate::operator::annotations::answer_value(args.step, waiting_hash);
        let patch = json!({"metadata": {
            "uid": incident.metadata.uid,
            "annotations": {annotation: value},
        }});
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        match api.patch(&args.name, &params, &Patch::Merge(&patch)).await {
            Ok(_) => json_result(json!({
                "answered": if approve { "approved" } else { "rejected" },
                "namespace": namespace,
                "name": args.name,
                "step": args.step,
                "as": format!("{annotation}={value}"),
            })),
            Err(e) => tool_error(describe(e)),
        }
    }
}

/// The caller's bearer token, over HTTP.
fn bearer(context: &RequestContext<RoleServer>) -> Option<String> {
    context
        .extensions
        .get::<axum::http::request::Parts>()
        .and_then(|parts| parts.headers.get(axum::http::header::AUTHORIZATION))
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .map(str::to_string)
}

/// An API error as the caller should read it: a refusal names who was
/// refused what.
fn describe(error: kube::Error) -> String {
    match error {
        kube::Error::Api(status) if status.code == 403 => {
            format!("forbidden by the cluster's RBAC: {}", status.message)
        }
        kube::Error::Api(status) if status.code == 401 => {
            "the cluster did not accept the credentials (401)".to_string()
        }
        other => format!("the Kubernetes API: {other}"),
    }
}

const INCIDENT_URI: &str = "remediator://incidents/";
const POLICY_URI: &str = "remediator://policies/";
const SCORECARD_URI: &str = "remediator://scorecard";

#[tool_handler(router = self.tool_router)]
impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        let mode = if self.shared.allow_approvals {
            "approve and reject act as the caller (RBAC decides)"
        } else {
            "read-only: approve and reject are not offered (start with --allow-approvals)"
        };
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
        .with_server_info(Implementation::new("remediator", env!("CARGO_PKG_VERSION")))
        .with_instructions(format!(
            "remediator's Incidents (broken services an agent fixes through a risk gate), Policies and their scorecard, and actions waiting for a person's approval. {mode}."
        ))
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let incidents = self
            .incidents(&context, None)
            .await
            .map_err(|e| ErrorData::internal_error(e, None))?;
        let policies = self
            .policies(&context, None)
            .await
            .map_err(|e| ErrorData::internal_error(e, None))?;
        let mut resources = vec![
            Resource::new(SCORECARD_URI, "scorecard")
                .with_description("Each Policy's outcomes")
                .with_mime_type("application/json"),
        ];
        for incident in &incidents {
            let (ns, name) = (
                incident.metadata.namespace.clone().unwrap_or_default(),
                incident.metadata.name.clone().unwrap_or_default(),
            );
            resources.push(
                Resource::new(
                    format!("{INCIDENT_URI}{ns}/{name}"),
                    format!("incident {ns}/{name}"),
                )
                .with_mime_type("application/json"),
            );
        }
        for policy in &policies {
            let (ns, name) = (
                policy.metadata.namespace.clone().unwrap_or_default(),
                policy.metadata.name.clone().unwrap_or_default(),
            );
            resources.push(
                Resource::new(
                    format!("{POLICY_URI}{ns}/{name}"),
                    format!("policy {ns}/{name}"),
                )
                .with_mime_type("application/json"),
            );
        }
        Ok(ListResourcesResult::with_all_items(resources))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(vec![
            ResourceTemplate::new(format!("{INCIDENT_URI}{{namespace}}/{{name}}"), "incident")
                .with_mime_type("application/json"),
            ResourceTemplate::new(format!("{POLICY_URI}{{namespace}}/{{name}}"), "policy")
                .with_mime_type("application/json"),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let uri = request.uri.clone();
        let not_found = |why: String| ErrorData::resource_not_found(why, Some(json!({"uri": uri})));
        let value = if uri == SCORECARD_URI {
            let policies = self.policies(&context, None).await.map_err(not_found)?;
            view::scorecard(&policies)
        } else if let Some(rest) = uri.strip_prefix(INCIDENT_URI) {
            let (ns, name) = rest.split_once('/').ok_or_else(|| {
                not_found(format!("{uri}: expected {INCIDENT_URI}<namespace>/<name>"))
            })?;
            view::incident_detail(
                &self
                    .incident(&context, Some(ns), name)
                    .await
                    .map_err(not_found)?,
            )
        } else if let Some(rest) = uri.strip_prefix(POLICY_URI) {
            let (ns, name) = rest.split_once('/').ok_or_else(|| {
                not_found(format!("{uri}: expected {POLICY_URI}<namespace>/<name>"))
            })?;
            let api: Api<Policy> = Api::namespaced(self.reader(&context).map_err(not_found)?, ns);
            let policy = api
                .get_opt(name)
                .await
                .map_err(|e| not_found(describe(e)))?
                .ok_or_else(|| not_found(format!("no Policy {ns}/{name}")))?;
            json!({"spec": policy.spec, "status": policy.status, "row": view::policy_row(&policy)})
        } else {
            return Err(not_found(format!("unknown resource {uri}")));
        };
        let text = serde_json::to_string_pretty(&value).unwrap_or_default();
        Ok(ReadResourceResult::new(vec![
            ResourceContents::text(text, request.uri.clone()).with_mime_type("application/json"),
        ])
        .into())
    }
}
