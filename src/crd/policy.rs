use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::risk::{GatePolicy, OnRiskExceeded, RiskLevel};

/// How the agent works on an incident: its brain, the strategy it follows,
/// what it may do and how long it may take.
// kube-derive takes one `printcolumn(...)` per column; clippy reads the
// repeated `type_ = "string"` as a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "remediator.dev",
    version = "v1alpha1",
    kind = "Policy",
    plural = "policies",
    namespaced,
    status = "PolicyStatus",
    shortname = "rpol",
    derive = "PartialEq",
    doc = "How the remediation agent works: brain, strategy hint or skill, risk limits, budgets.",
    printcolumn(name = "Brain", type_ = "string", json_path = ".spec.brain"),
    printcolumn(name = "Fix Rate", type_ = "number", json_path = ".status.fixRate"),
    printcolumn(name = "Mean Steps", type_ = "number", json_path = ".status.meanSteps"),
    printcolumn(name = "Resolved", type_ = "integer", json_path = ".status.resolved"),
    printcolumn(name = "Failed", type_ = "integer", json_path = ".status.failed"),
    printcolumn(
        name = "P95 TTR",
        type_ = "number",
        json_path = ".status.p95TimeToResolveSeconds"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
// Settings that contradict each other are refused by the API server itself.
// Defaults apply before these rules run, so `maxRisk` and `autoConfirm` are set.
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.requireConfirmationFor) || {'LOW': 1, 'MEDIUM': 2, 'HIGH': 3}[self.requireConfirmationFor] <= {'LOW': 1, 'MEDIUM': 2, 'HIGH': 3}[self.maxRisk]",
        "message": "requireConfirmationFor must not be above maxRisk: actions above maxRisk are denied, so they could never be confirmed",
        "fieldPath": ".requireConfirmationFor",
        "reason": "FieldValueInvalid"
    },
    {
        "rule": "!self.autoConfirm || has(self.requireConfirmationFor)",
        "message": "autoConfirm needs requireConfirmationFor: without it no action waits for confirmation, so autoConfirm would change nothing",
        "fieldPath": ".autoConfirm",
        "reason": "FieldValueInvalid"
    }
]))]
pub struct PolicySpec {
    /// Which brain proposes actions.
    #[serde(default)]
    pub brain: BrainKind,
    /// Settings of the `llm` brain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<LlmSpec>,
    /// Strategy hint the agent follows. Without hint or skill the agent gets
    /// the baseline hint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Which published hint `hint` is: set with it by `remediator optimize
    /// --publish --to-policy` and named in each Incident's
    /// `status.agent.hintVersion`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint_version: Option<String>,
    /// Let `remediator optimize --publish --to-policy` replace `hint` with
    /// a learned one that validates better. Incidents already running keep
    /// the hint they started with.
    #[serde(default)]
    pub follow_optimizer: bool,
    /// A SKILL.md runbook; it wins over the hint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skill: Option<String>,
    /// Most actions the agent may take.
    #[serde(default = "default_max_steps")]
    #[schemars(range(min = 1, max = 500))]
    pub max_steps: u32,
    /// Wall-clock budget for the whole episode.
    #[serde(default = "default_timeout_seconds")]
    #[schemars(range(min = 1, max = 86400))]
    pub timeout_seconds: u32,
    /// Highest risk an action may have.
    #[serde(default)]
    pub max_risk: RiskLevel,
    /// Actions at or above this risk wait for confirmation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_confirmation_for: Option<RiskLevel>,
    /// Confirm such actions without asking.
    #[serde(default)]
    pub auto_confirm: bool,
    /// What an action above `maxRisk` does to the incident.
    #[serde(default)]
    pub on_risk_exceeded: OnRiskExceeded,
    /// How long an action may wait for an approve/reject annotation
    /// (never past `timeoutSeconds`); then the incident fails with
    /// ApprovalTimeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub approval_timeout_seconds: Option<u32>,
    /// Run actions above LOW even when the kernel sandbox lacks some
    /// layer (reported in status). Off by default: without full
    /// containment only read-only actions run.
    #[serde(default)]
    pub accept_weak_containment: bool,
    /// When the LLM brain fails, let the runbook brain finish (recorded in
    /// status); otherwise the incident fails.
    #[serde(default)]
    pub allow_fallback: bool,
    /// What a Failed incident leaves behind: `Undo` (the default) puts the
    /// root back as the incident found it; `Keep` leaves the agent's
    /// changes for a person to inspect.
    #[serde(default)]
    pub on_failure: OnFailure,
    /// Most bytes one snapshot may copy before a step; a step whose
    /// snapshot would be larger is refused (it could not be undone).
    #[serde(default = "default_max_snapshot_bytes")]
    #[schemars(range(min = 1024, max = 1073741824))]
    pub max_snapshot_bytes: u64,
    /// Extra names (globs such as `*_DSN`) whose values are secret and
    /// never shown to the brain, besides `*KEY*`, `*TOKEN*`, `*SECRET*`,
    /// `*PASSWORD*` and known token shapes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_names: Vec<String>,
    /// Consecutive healthy answers the controller's probe needs.
    #[serde(default = "default_verify_consecutive")]
    #[schemars(range(min = 1, max = 100))]
    pub verify_consecutive_ok: u32,
    /// Where notices go when an action waits for approval or an incident
    /// ends: webhooks whose URLs live in Secrets (never inline).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub notify: Vec<NotifySpec>,
}

/// One webhook a Policy's notices go to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotifySpec {
    /// Names the channel in status and in who approved through its links.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// The Secret key (same namespace) holding the webhook's URL.
    pub url_secret_ref: SecretKeyRef,
    /// `slack` (incoming-webhook blocks) or `generic` (documented JSON).
    #[serde(default)]
    pub format: NoticeFormat,
    /// The events this webhook wants; all of them when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<NoticeEvent>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NoticeFormat {
    Slack,
    #[default]
    Generic,
}

/// What a notice is about.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum NoticeEvent {
    /// An action waits for a person.
    ApprovalRequested,
    /// Nobody answered a waiting action in time.
    ApprovalTimedOut,
    /// A step made the service worse and was undone, or a Failed
    /// incident's root was put back.
    RolledBack,
    Resolved,
    Failed,
}

impl NoticeEvent {
    pub const ALL: [NoticeEvent; 5] = [
        Self::ApprovalRequested,
        Self::ApprovalTimedOut,
        Self::RolledBack,
        Self::Resolved,
        Self::Failed,
    ];

    /// The name status and notices use (as serialized).
    pub fn name(self) -> &'static str {
        match self {
            Self::ApprovalRequested => "ApprovalRequested",
            Self::ApprovalTimedOut => "ApprovalTimedOut",
            Self::RolledBack => "RolledBack",
            Self::Resolved => "Resolved",
            Self::Failed => "Failed",
        }
    }
}

impl NotifySpec {
    pub fn wants(&self, event: NoticeEvent) -> bool {
        self.events.is_empty() || self.events.contains(&event)
    }
}

/// The defaults a Policy manifest gets for every field it leaves out.
impl Default for PolicySpec {
    fn default() -> Self {
        serde_json::from_value(serde_json::json!({})).expect("every PolicySpec field has a default")
    }
}

impl Default for LlmSpec {
    fn default() -> Self {
        serde_json::from_value(serde_json::json!({})).expect("every LlmSpec field has a default")
    }
}

impl PolicySpec {
    /// A fingerprint of what, besides the hint, decides how an incident
    /// goes under this spec: the brain, its model and endpoint, budgets,
    /// risk limits. A recorded trajectory stands in for a rollout only
    /// under the same fingerprint (a line recorded with 20 steps says
    /// nothing of 6).
    pub fn settings_fingerprint(&self) -> String {
        let without_hint = PolicySpec {
            hint: None,
            hint_version: None,
            skill: None,
            follow_optimizer: false,
            ..self.clone()
        };
        let text = serde_json::to_string(&without_hint).unwrap_or_default();
        format!("{:016x}", super::derived::fnv1a(text.as_bytes()))
    }

    /// The same contradictions the CRD's CEL rules refuse on the API server,
    /// checked locally (`remediator run -f` has no server).
    pub fn contradictions(&self) -> Vec<String> {
        let mut found = Vec::new();
        if self
            .require_confirmation_for
            .is_some_and(|c| c > self.max_risk)
        {
            found.push("spec.requireConfirmationFor: must not be above maxRisk: actions above maxRisk are denied, so they could never be confirmed".to_string());
        }
        if self.auto_confirm && self.require_confirmation_for.is_none() {
            found.push("spec.autoConfirm: needs requireConfirmationFor: without it no action waits for confirmation, so autoConfirm would change nothing".to_string());
        }
        found
    }
}

impl From<&PolicySpec> for GatePolicy {
    fn from(spec: &PolicySpec) -> Self {
        Self {
            max_risk: spec.max_risk,
            require_confirmation_for: spec.require_confirmation_for,
            auto_confirm: spec.auto_confirm,
            on_risk_exceeded: spec.on_risk_exceeded,
        }
    }
}

fn default_max_snapshot_bytes() -> u64 {
    64 << 20
}

fn default_max_steps() -> u32 {
    20
}
fn default_timeout_seconds() -> u32 {
    300
}
fn default_verify_consecutive() -> u32 {
    3
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum BrainKind {
    /// Deterministic, offline: follows the checks its hint or skill names.
    #[default]
    Runbook,
    /// An OpenAI-compatible chat model with tool calling.
    Llm,
}

impl BrainKind {
    /// The name records and metrics use (as serialized).
    pub fn label(self) -> &'static str {
        match self {
            Self::Runbook => "runbook",
            Self::Llm => "llm",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum OnFailure {
    /// Restore the root to its state before the first step.
    #[default]
    Undo,
    /// Leave the agent's changes in place.
    Keep,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LlmSpec {
    #[serde(default = "default_model")]
    #[schemars(length(min = 1))]
    pub model: String,
    /// OpenAI-compatible endpoint; defaults to OPENAI_BASE_URL or OpenAI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Secret key holding the API key (in a cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_secret_ref: Option<SecretKeyRef>,
    #[serde(default = "default_request_timeout")]
    #[schemars(range(min = 1, max = 600))]
    pub request_timeout_seconds: u32,
    #[serde(default = "default_max_retries")]
    #[schemars(range(max = 10))]
    pub max_retries: u32,
    /// Most tokens the model may generate per reply.
    #[serde(default = "default_max_tokens")]
    #[schemars(range(min = 16, max = 32768))]
    pub max_tokens: u32,
    /// Characters of each observation the model sees (head and tail are
    /// kept), so long episodes fit the model's context.
    #[serde(default = "default_max_observation_chars")]
    #[schemars(range(min = 200, max = 1000000))]
    pub max_observation_chars: u32,
    /// About how many tokens the conversation may take (estimated at four
    /// characters a token): over it, the oldest observations are cut down
    /// to what was read from them, the newest two always kept whole.
    #[serde(default = "default_max_prompt_tokens")]
    #[schemars(range(min = 500, max = 10000000))]
    pub max_prompt_tokens: u32,
    /// How the history is sent: `messages` (each step an assistant call
    /// and a tool message, as the API intends), or `transcript` (the
    /// whole history in one user message, for small local models that
    /// lose their way across tool messages).
    #[serde(default)]
    pub conversation: Conversation,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Conversation {
    #[default]
    Messages,
    Transcript,
}

fn default_model() -> String {
    "gpt-4.1-mini".to_string()
}
fn default_request_timeout() -> u32 {
    60
}
fn default_max_retries() -> u32 {
    3
}
fn default_max_tokens() -> u32 {
    512
}
fn default_max_observation_chars() -> u32 {
    4000
}
fn default_max_prompt_tokens() -> u32 {
    6000
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SecretKeyRef {
    #[schemars(length(min = 1))]
    pub name: String,
    #[schemars(length(min = 1))]
    pub key: String,
}

/// Outcomes of the incidents that used this policy: `kubectl get policies`
/// reads as a scorecard.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    pub resolved: u32,
    #[serde(default)]
    pub failed: u32,
    /// resolved / (resolved + failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix_rate: Option<f64>,
    /// Mean steps of resolved incidents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_steps: Option<f64>,
    /// The 95th percentile of time to resolve, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95_time_to_resolve_seconds: Option<f64>,
    /// Incidents still running under this Policy.
    #[serde(default)]
    pub running: u32,
}
