//! The LLM brain: the conversation rebuilt from the recorded history on
//! every call, the model asked for one tool call, its call parsed into a
//! proposal; invalid calls are explained back to the model a few times.

use futures::future::BoxFuture;
use serde_json::json;

use super::LlmConfig;
use super::client::{Chat, ChatClient};
use super::content_call::tool_call_in_content;
use super::prompt::{CallStyle, assistant_echo, conversation};
use super::tools::{parse_tool_call, tools};
use crate::agent::{Brain, BrainError};
use crate::crd::TokenUsage;
use crate::protocol::{Proposal, Task, Turn};

/// Invalid tool calls in a row before the brain gives up.
const MAX_INVALID_CALLS: usize = 3;

/// The correction for prose before any step was taken.
const NO_STEP_YET: &str = "no step has been taken yet, so nothing is resolved: call one tool to look at or fix the service";

pub struct LlmBrain {
    client: ChatClient,
    usage: TokenUsage,
    /// How the model writes its calls, learned from its first one, so the
    /// replayed conversation shows it its own form.
    style: CallStyle,
}

impl LlmBrain {
    pub fn new(config: LlmConfig) -> Result<Self, BrainError> {
        Ok(Self {
            client: ChatClient::new(config)?,
            usage: TokenUsage::default(),
            style: CallStyle::ToolCalls,
        })
    }

    async fn complete(
        &mut self,
        messages: &[serde_json::Value],
    ) -> Result<serde_json::Value, BrainError> {
        let chat = Chat {
            messages,
            tools: Some(tools()),
            seed: None,
        };
        let (message, usage) = self.client.chat(chat).await?;
        self.usage.add(usage);
        Ok(message)
    }
}

impl Brain for LlmBrain {
    fn name(&self) -> &'static str {
        "llm"
    }

    fn model(&self) -> Option<String> {
        Some(self.client.model().to_string())
    }

    fn usage(&self) -> TokenUsage {
        self.usage
    }

    fn propose<'a>(
        &'a mut self,
        task: &'a Task,
        history: &'a [Turn],
    ) -> BoxFuture<'a, Result<Proposal, BrainError>> {
        Box::pin(async move {
            let config = self.client.config();
            let mut messages = conversation(
                task,
                history,
                config.max_observation_chars,
                config.max_prompt_tokens,
                self.style,
                config.conversation,
            );
            let mut last_problem = String::new();
            for attempt in 1..=MAX_INVALID_CALLS {
                let message = self.complete(&messages).await?;
                messages.push(assistant_echo(&message));
                let native = message["tool_calls"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let text = message["content"].as_str().unwrap_or("").trim().to_string();
                let (call, style) = match native.first() {
                    Some(first) => (Ok(first.clone()), CallStyle::ToolCalls),
                    None if text.is_empty() => {
                        (Err("the reply was empty".to_string()), CallStyle::ToolCalls)
                    }
                    None => match tool_call_in_content(&text) {
                        Some(call) => (call, CallStyle::Content),
                        // Before any step a claim cannot be true; small
                        // models often answer the incident with the step
                        // they mean ("GET /health"). Ask again; a model that
                        // insists has its claim checked like any other.
                        None if history.is_empty() && attempt < MAX_INVALID_CALLS => {
                            (Err(NO_STEP_YET.to_string()), CallStyle::Content)
                        }
                        // Prose is the model's claim to be done (the probe checks it).
                        None => return Ok(Proposal::Done { summary: text }),
                    },
                };
                match call.and_then(|call| parse_tool_call(&call)) {
                    Ok(proposal) => {
                        self.style = style;
                        match style {
                            CallStyle::ToolCalls => self.usage.native_tool_calls += 1,
                            CallStyle::Content => self.usage.content_tool_calls += 1,
                        }
                        return Ok(proposal);
                    }
                    Err(problem) => {
                        last_problem = format!("{problem}; it wrote: {}", excerpt(&message));
                        let correction = format!(
                            "ERROR: {problem}. Call one tool again with valid JSON arguments."
                        );
                        if native.is_empty() {
                            messages.push(json!({"role": "user", "content": correction}));
                        }
                        for call in &native {
                            messages.push(json!({
                                "role": "tool",
                                "tool_call_id": call["id"],
                                "content": correction,
                            }));
                        }
                    }
                }
            }
            Err(BrainError::Protocol(format!(
                "the model sent {MAX_INVALID_CALLS} invalid tool calls in a row (the last: {last_problem})"
            )))
        })
    }
}

/// The start of what the model wrote, for a reason in status.
fn excerpt(message: &serde_json::Value) -> String {
    let written = match message["tool_calls"].as_array().filter(|c| !c.is_empty()) {
        Some(calls) => serde_json::Value::Array(calls.clone()).to_string(),
        None => message["content"].as_str().unwrap_or("").to_string(),
    };
    let mut text: String = written.chars().take(160).collect();
    if text.len() < written.len() {
        text.push('…');
    }
    text
}
