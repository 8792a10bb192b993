//! Condition types and reasons written into Incident status, and the
//! reasons of the Events the operator publishes. Logic uses these
//! constants, never string literals.

/// The fault was observed before the agent started.
pub const FAULT_PRESENT: &str = "FaultPresent";
/// An action waits for an approve/reject annotation.
pub const AWAITING_APPROVAL: &str = "AwaitingApproval";
/// The controller's own probe found the service healthy.
pub const VERIFIED_HEALTHY: &str = "VerifiedHealthy";
/// Commands run with full kernel containment.
pub const CONTAINED: &str = "Contained";
/// The Policy the incident names exists.
pub const POLICY_READY: &str = "PolicyReady";
/// The finished incident's trajectory is in its Policy's ring, where the
/// closed loop's optimizer reads it.
pub const TRAJECTORY_RECORDED: &str = "TrajectoryRecorded";
/// Every notice to the Policy's webhooks was delivered (False: one was
/// given up on; the incident goes on regardless).
pub const NOTICES_DELIVERED: &str = "NoticesDelivered";

pub const REASON_FAULT_OBSERVED: &str = "FaultObserved";
pub const REASON_HEALTHY_BEFORE_AGENT: &str = "ServiceHealthyBeforeAgent";
pub const REASON_RESOLVED: &str = "Resolved";
pub const REASON_RISK_LIMIT_EXCEEDED: &str = "RiskLimitExceeded";
pub const REASON_CONFIRMATION_REFUSED: &str = "ConfirmationRefused";
pub const REASON_APPROVAL_TIMEOUT: &str = "ApprovalTimeout";
pub const REASON_APPROVAL_REQUESTED: &str = "ApprovalRequested";
pub const REASON_BUDGET_EXHAUSTED: &str = "BudgetExhausted";
/// The agent claimed success; the probe disagrees.
pub const REASON_CLAIM_NOT_VERIFIED: &str = "ClaimNotVerified";
pub const REASON_LLM_UNAVAILABLE: &str = "LlmUnavailable";
pub const REASON_SANDBOX_UNAVAILABLE: &str = "SandboxUnavailable";
pub const REASON_UNKNOWN_SCENARIO: &str = "UnknownScenario";
pub const REASON_INVALID_POLICY: &str = "InvalidPolicy";
pub const REASON_PROVISIONING_FAILED: &str = "ProvisioningFailed";
pub const REASON_FULL_CONTAINMENT: &str = "FullContainment";
pub const REASON_WEAK_CONTAINMENT: &str = "WeakContainment";
pub const REASON_INTERRUPTED: &str = "Interrupted";
pub const REASON_POLICY_NOT_FOUND: &str = "PolicyNotFound";
/// The agent Job gave up (its retries or its deadline ran out).
pub const REASON_AGENT_FAILED: &str = "AgentFailed";
pub const REASON_RECORDED: &str = "Recorded";
pub const REASON_RECORDING_FAILED: &str = "RecordingFailed";
pub const REASON_NOTICES_DELIVERED: &str = "Delivered";
pub const REASON_NOTICE_FAILED: &str = "NoticeFailed";

// Event reasons that are not also condition reasons (those above serve
// both: `ApprovalRequested`, `Resolved`, `WeakContainment`, ...).
pub const EVENT_PROVISIONING: &str = "Provisioning";
pub const EVENT_REMEDIATING: &str = "Remediating";
pub const EVENT_APPROVED: &str = "Approved";
pub const EVENT_REJECTED: &str = "Rejected";
pub const EVENT_RISK_TIGHTENED: &str = "RiskTightened";
/// An annotation that could not be honoured (malformed, or loosening).
pub const EVENT_ANNOTATION_IGNORED: &str = "AnnotationIgnored";
pub const EVENT_FAILED: &str = "Failed";
pub const EVENT_UNDO_REQUESTED: &str = "UndoRequested";
