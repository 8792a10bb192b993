//! Condition types and reasons written into Incident status. Logic uses
//! these constants, never string literals.

/// The fault was observed before the agent started.
pub const FAULT_PRESENT: &str = "FaultPresent";
/// An action waits for an approve/reject annotation.
pub const AWAITING_APPROVAL: &str = "AwaitingApproval";
/// The controller's own probe found the service healthy.
pub const VERIFIED_HEALTHY: &str = "VerifiedHealthy";

pub const REASON_RESOLVED: &str = "Resolved";
pub const REASON_RISK_LIMIT_EXCEEDED: &str = "RiskLimitExceeded";
pub const REASON_CONFIRMATION_REFUSED: &str = "ConfirmationRefused";
pub const REASON_BUDGET_EXHAUSTED: &str = "BudgetExhausted";
pub const REASON_VERIFICATION_FAILED: &str = "VerificationFailed";
pub const REASON_LLM_UNAVAILABLE: &str = "LlmUnavailable";
pub const REASON_UNKNOWN_SCENARIO: &str = "UnknownScenario";
pub const REASON_INVALID_POLICY: &str = "InvalidPolicy";
pub const REASON_PROVISIONING_FAILED: &str = "ProvisioningFailed";
