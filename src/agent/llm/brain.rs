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
use crate::agent::runbook::{repeat_of, standing_note};
use crate::agent::{Brain, BrainError};
use crate::crd::TokenUsage;
use crate::protocol::{Proposal, Task, Turn};

/// Invalid tool calls in a row before the brain gives up.
const MAX_INVALID_CALLS: usize = 3;
/// Times a repeat of an unchanged step is sent back before it is taken
/// anyway: the model decides, it is only told what it would get.
const MAX_REPEATS_SENT_BACK: usize = 2;
/// Sampling after a correction, seeded so a server that honours seeds
/// answers the same conversation the same way.
const CORRECTION_TEMPERATURE: f32 = 0.7;
const CORRECTION_SEED: u64 = 7;

/// The correction for prose in answer to a step sent back.
const REPEAT_ANSWERED_IN_PROSE: &str =
    "the answer to a step sent back is another tool call, not prose";
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

    /// One reply. After a correction the model is sampled rather than
    /// greedy: at temperature 0 a small model given its own loop back
    /// answers with the same call again.
    async fn complete(
        &mut self,
        messages: &[serde_json::Value],
        corrected: bool,
    ) -> Result<serde_json::Value, BrainError> {
        let chat = Chat {
            messages,
            tools: Some(tools()),
            seed: corrected.then_some(CORRECTION_SEED),
            temperature: corrected.then_some(CORRECTION_TEMPERATURE),
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
            let mut repeats_sent_back = 0;
            for attempt in 1..=MAX_INVALID_CALLS + MAX_REPEATS_SENT_BACK {
                let message = self.complete(&messages, attempt > 1).await?;
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
                        None if history.is_empty()
                            && attempt - repeats_sent_back < MAX_INVALID_CALLS =>
                        {
                            (Err(NO_STEP_YET.to_string()), CallStyle::Content)
                        }
                        // Prose answering a step sent back is an argument,
                        // not a claim to be done: ask for the call.
                        None if repeats_sent_back > 0
                            && attempt - repeats_sent_back < MAX_INVALID_CALLS =>
                        {
                            (
                                Err(REPEAT_ANSWERED_IN_PROSE.to_string()),
                                CallStyle::Content,
                            )
                        }
                        // Prose is the model's claim to be done (the probe checks it).
                        None => return Ok(Proposal::Done { summary: text }),
                    },
                };
                let parsed = call.and_then(|call| parse_tool_call(&call));
                if let Ok(Proposal::Act { action, .. }) = &parsed
                    && repeats_sent_back < MAX_REPEATS_SENT_BACK
                    && let Some(step) = repeat_of(history, action)
                {
                    repeats_sent_back += 1;
                    let mut correction = format!(
                        "Step {step} already did exactly this and nothing has changed since, so it would answer the same. Take a different step."
                    );
                    if let Some(standing) = standing_note(history, task.expected_port) {
                        correction.push_str("\n\n");
                        correction.push_str(&standing);
                    }
                    push_correction(&mut messages, &native, &correction);
                    continue;
                }
                match parsed {
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
                        push_correction(&mut messages, &native, &correction);
                        if attempt - repeats_sent_back == MAX_INVALID_CALLS {
                            break;
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

/// What the brain says back to a call it does not take: as the answer to
/// each native call, or as the user's next message after a call in text.
fn push_correction(
    messages: &mut Vec<serde_json::Value>,
    native: &[serde_json::Value],
    correction: &str,
) {
    if native.is_empty() {
        messages.push(json!({"role": "user", "content": correction}));
    }
    for call in native {
        messages.push(json!({
            "role": "tool",
            "tool_call_id": call["id"],
            "content": correction,
        }));
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
