//! The LLM brain: an OpenAI-compatible chat model with tool calling, via
//! async-openai. Each tool call declares a `security_risk`; the gate may
//! raise it but the model cannot lower it. 429, 5xx and connection errors
//! are retried with backoff (async-openai's retry layer); 401 and timeouts
//! fail at once with a clear reason. The conversation is rebuilt from the
//! recorded history on every call, so a restarted agent continues it.
//!
//! Local servers often return a tool call as JSON in the reply's text;
//! [`content_call`] reads those, the status says which form came back, and
//! the conversation is then replayed in that same form.
//!
//! [`config`] resolves the endpoint and key, [`client`] is the one chat
//! client, [`prompt`] and [`tools`] are what the model sees and may call,
//! [`brain`] puts them together.

mod brain;
mod client;
mod config;
mod content_call;
mod prompt;
mod tools;

pub use brain::LlmBrain;
pub use client::{Chat, ChatClient};
pub use config::{DEFAULT_BASE_URL, LlmConfig, LlmEnvironment};
pub use content_call::tool_call_in_content;
pub use prompt::{CallStyle, conversation};
pub use tools::{parse_tool_call, tools};

#[cfg(test)]
mod tests;
