//! The LLM brain: the conversation rebuilt from the recorded history on
//! every call, the model asked for one tool call, its call parsed into a
//! proposal; invalid calls are explained back to the model a few times.

use futures::future::BoxFuture;
use serde_json::json;

use super::LlmConfig;
use super::client::{Chat, ChatClient};
use super::prompt::{assistant_echo, conversation};
use super::tools::{parse_tool_call, tools};
use crate::agent::{Brain, BrainError};
use crate::crd::TokenUsage;
use crate::protocol::{Proposal, Task, Turn};

/// Invalid tool calls in a row before the brain gives up.
const MAX_INVALID_CALLS: usize = 3;

pub struct LlmBrain {
    client: ChatClient,
    usage: TokenUsage,
}

impl LlmBrain {
    pub fn new(config: LlmConfig) -> Result<Self, BrainError> {
        Ok(Self {
            client: ChatClient::new(config)?,
            usage: TokenUsage::default(),
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
        self.usage.prompt += usage.prompt;
        self.usage.completion += usage.completion;
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
            let mut messages =
                conversation(task, history, self.client.config().max_observation_chars);
            for _ in 0..MAX_INVALID_CALLS {
                let message = self.complete(&messages).await?;
                messages.push(assistant_echo(&message));
                let calls = message["tool_calls"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let Some(first) = calls.first() else {
                    let text = message["content"].as_str().unwrap_or("").trim().to_string();
                    return Ok(Proposal::Done {
                        summary: if text.is_empty() {
                            "the model stopped without a tool call".into()
                        } else {
                            text
                        },
                    });
                };
                match parse_tool_call(first) {
                    Ok(proposal) => return Ok(proposal),
                    Err(problem) => {
                        for call in &calls {
                            messages.push(json!({
                                "role": "tool",
                                "tool_call_id": call["id"],
                                "content": format!("ERROR: {problem}. Call one tool again with valid JSON arguments."),
                            }));
                        }
                    }
                }
            }
            Err(BrainError::Protocol(format!(
                "the model sent {MAX_INVALID_CALLS} invalid tool calls in a row"
            )))
        })
    }
}
