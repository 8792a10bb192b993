use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::action::truncate_chars;
use crate::risk::SecurityRisk;

/// Most actions kept in status; older ones are counted in `actionsOmitted`.
pub const MAX_STATUS_ACTIONS: usize = 50;

/// One broken service to resolve: which scenario (or workload) and the
/// Policy the agent follows.
// kube-derive takes one `printcolumn(...)` per column; clippy reads the
// repeated `type_ = "string"` as a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "remediator.dev",
    version = "v1alpha1",
    kind = "Incident",
    namespaced,
    status = "IncidentStatus",
    shortname = "inc",
    derive = "PartialEq",
    doc = "A service incident that the operator resolves with a gated agent and verifies itself.",
    printcolumn(name = "Scenario", type_ = "string", json_path = ".spec.scenario"),
    printcolumn(name = "Policy", type_ = "string", json_path = ".spec.policyRef.name"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Steps", type_ = "integer", json_path = ".status.steps"),
    printcolumn(
        name = "Healthy",
        type_ = "boolean",
        json_path = ".status.verified.healthy"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct IncidentSpec {
    /// Scenario id from the catalog (`remediator scenario list`): lowercase
    /// letters, digits and `_`.
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9_]+$"))]
    pub scenario: String,
    /// The Policy (same namespace) the agent follows.
    pub policy_ref: PolicyRef,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PolicyRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum IncidentPhase {
    #[default]
    Pending,
    Provisioning,
    Remediating,
    AwaitingApproval,
    Verifying,
    Resolved,
    Failed,
}

impl IncidentPhase {
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Resolved | Self::Failed)
    }

    /// The name status and records show (as serialized).
    pub fn name(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Provisioning => "Provisioning",
            Self::Remediating => "Remediating",
            Self::AwaitingApproval => "AwaitingApproval",
            Self::Verifying => "Verifying",
            Self::Resolved => "Resolved",
            Self::Failed => "Failed",
        }
    }
}

impl std::fmt::Display for IncidentPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The audit trail of an incident, written only by the operator.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IncidentStatus {
    #[serde(default)]
    pub phase: IncidentPhase,
    /// Machine-readable cause of a Failed phase (a conditions reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Actions the agent proposed (allowed or not).
    #[serde(default)]
    pub steps: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_STATUS_ACTIONS))]
    pub actions: Vec<ActionRecord>,
    /// What was dropped from the front of `actions` to keep status small.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions_omitted: Option<OmittedActions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_risk_seen: Option<SecurityRisk>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_approval: Option<PendingApproval>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<Verification>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentInfo>,
    /// What was restored after the incident (`onFailure: Undo`, or an
    /// undo request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undone: Option<UndoReport>,
    /// The kernel containment commands ran under, e.g.
    /// `landlock-fs, landlock-net, ..., no-netns (why)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// The running episode's state (the operator's, opaque to users): the
    /// step machine, the Policy as it was when the incident started, the
    /// task. It lets a restarted operator continue without repeating a step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "opaque_object")]
    pub session: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_resolve_seconds: Option<f64>,
    /// The incident's OpenTelemetry trace (32 hex digits), when traces are
    /// exported: every span of the operator, the agent and the sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Notices delivered (or given up on) to the Policy's webhooks: one per
    /// event and webhook, also across operator restarts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_NOTICE_RECORDS))]
    pub notices: Vec<NoticeRecord>,
}

/// Most notices about steps an incident sends (and keeps in status);
/// its end is always announced, to each webhook, on top of these.
pub const MAX_STATUS_NOTICES: usize = 100;
/// Room in status for the step notices and each webhook's (at most ten)
/// notices of the end.
pub const MAX_NOTICE_RECORDS: usize = MAX_STATUS_NOTICES + 20;

/// One notice to one webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NoticeRecord {
    /// The notice's id, also sent to the receiver to drop a repeat.
    pub id: String,
    /// The Policy's `notify[].name`.
    pub webhook: String,
    pub event: super::NoticeEvent,
    /// The step it is about (approvals, rollbacks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u32>,
    pub delivered: bool,
    pub attempts: u32,
    pub at: Time,
    /// Why it could not be delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Who answered a waiting action, and through what.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Approver {
    /// `link` (a signed approve/reject link), `annotation`, or `mcp`.
    pub via: String,
    /// The user, where something vouches for it: the API server's own
    /// record of the request (an admission policy's stamp), never a name a
    /// client could choose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// For a link: the webhook (channel) it was sent to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// For a link: its id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_id: Option<String>,
    /// For an annotation: the field manager the API server recorded for
    /// it (chosen by the client: it names the tool, not the person).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_manager: Option<String>,
}

/// One proposed action and what the gate and the workspace made of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionRecord {
    pub step: u32,
    /// exec, read_file, write_file, http_get or restart_service.
    pub kind: String,
    /// The command, path or URL, as proposed.
    pub command: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared_risk: Option<SecurityRisk>,
    /// max(declared, classified); what the gate decided on.
    pub risk: SecurityRisk,
    pub decision: Decision,
    /// gate, policy, terminal, no-terminal, annotation, link or timeout.
    pub decided_by: String,
    /// Why it was denied, refused or could not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// It made the service worse and was undone at once: the evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back: Option<String>,
    /// Who confirmed or refused it, for a decision a person made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver: Option<Approver>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub duration_ms: u64,
}

fn opaque_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// Longest reason kept on one action.
const MAX_REASON: usize = 300;

impl ActionRecord {
    pub fn with_reason(mut self, reason: &str) -> Self {
        self.reason = Some(truncate_chars(reason, MAX_REASON));
        self
    }
}

/// The root put back as it was before a step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UndoReport {
    /// Restored to the state before this step (0: before any step).
    pub before_step: u32,
    /// Files written back and removed.
    pub written: u32,
    pub removed: u32,
    /// Why, or what went wrong.
    pub message: String,
}

/// A summary of the actions dropped from status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OmittedActions {
    pub count: u32,
    pub first_step: u32,
    pub last_step: u32,
    pub denied: u32,
    pub rejected: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_risk: Option<SecurityRisk>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Decision {
    Allowed,
    Confirmed,
    Denied,
    Rejected,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingApproval {
    pub step: u32,
    /// The action's kind and text, as in `actions`.
    pub kind: String,
    pub command: String,
    pub risk: SecurityRisk,
    /// Why the gate wants a person.
    pub reason: String,
    pub requested_at: Time,
    /// When the wait ends (the Policy's approvalTimeoutSeconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Time>,
    /// The SHA-256 of the whole action (a write's content included): an
    /// approve link is bound to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_hash: Option<String>,
    /// What a write would put in the file (bounded), as the agent wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// What a write would change: a redacted unified diff against the file
    /// as it is (bounded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

/// The controller's own probe, independent of what the agent claims.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    pub healthy: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    pub checked_at: Time,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentInfo {
    pub brain: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// The Policy generation the incident runs under (edits to the Policy
    /// do not change a running incident).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_generation: Option<i64>,
    /// skill, learned, manual, inline or baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint_source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Tokens, requests and time the model took for this incident.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<TokenUsage>,
    /// How the model wrote its tool calls: `toolCalls` (the API's field),
    /// `content` (JSON in the reply's text, as many local servers do), or
    /// `mixed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_format: Option<String>,
    #[serde(default)]
    pub fallback_used: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenUsage {
    pub prompt: u64,
    pub completion: u64,
    /// Model requests made.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub requests: u64,
    /// Milliseconds spent waiting for the model.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub model_ms: u64,
    /// Tool calls the model wrote as JSON in its reply's text instead of
    /// real `tool_calls` (what many local servers do).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub content_tool_calls: u64,
    /// Tool calls that came back as real `tool_calls`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub native_tool_calls: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl TokenUsage {
    /// What was used between two readings of a running total.
    pub fn since(self, before: TokenUsage) -> TokenUsage {
        TokenUsage {
            prompt: self.prompt.saturating_sub(before.prompt),
            completion: self.completion.saturating_sub(before.completion),
            requests: self.requests.saturating_sub(before.requests),
            model_ms: self.model_ms.saturating_sub(before.model_ms),
            content_tool_calls: self
                .content_tool_calls
                .saturating_sub(before.content_tool_calls),
            native_tool_calls: self
                .native_tool_calls
                .saturating_sub(before.native_tool_calls),
        }
    }

    pub fn add(&mut self, other: TokenUsage) {
        self.prompt += other.prompt;
        self.completion += other.completion;
        self.requests += other.requests;
        self.model_ms += other.model_ms;
        self.content_tool_calls += other.content_tool_calls;
        self.native_tool_calls += other.native_tool_calls;
    }

    /// How the model wrote its tool calls: `toolCalls`, `content`, or
    /// `mixed`; `None` before any call.
    pub fn tool_call_format(&self) -> Option<&'static str> {
        match (self.native_tool_calls, self.content_tool_calls) {
            (0, 0) => None,
            (_, 0) => Some("toolCalls"),
            (0, _) => Some("content"),
            _ => Some("mixed"),
        }
    }
}
