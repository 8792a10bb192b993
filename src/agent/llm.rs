//! The LLM brain: an OpenAI-compatible chat model with tool calling, via
//! async-openai. Each tool call declares a `security_risk`; the gate may
//! raise it but the model cannot lower it. 429, 5xx and connection errors
//! are retried with backoff (async-openai's retry layer); 401 and timeouts
//! fail at once with a clear reason.

use std::time::Duration;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::middleware::ReqwestService;
use async_openai::middleware::retry::OpenAIRetryLayer;
use async_openai::types::chat::{ChatCompletionMessageToolCalls, CreateChatCompletionRequest};
use futures::future::BoxFuture;
use serde_json::{Value, json};
use tower::Layer;

use super::{Brain, BrainError, Proposal, Task, Turn, feedback_text};
use crate::crd::{LlmSpec, TokenUsage};
use crate::risk::SecurityRisk;
use crate::workspace::Action;

pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
/// Invalid tool calls in a row before the brain gives up.
const MAX_INVALID_CALLS: usize = 3;

#[derive(Debug, Clone)]
pub struct LlmConfig {
    pub base_url: String,
    pub api_key: String,
    pub model: String,
    pub request_timeout: Duration,
    pub max_retries: u32,
    pub max_tokens: u32,
    pub max_observation_chars: usize,
}

impl LlmConfig {
    /// Reads the key from `OPENAI_API_KEY` and the endpoint from the
    /// policy, else `OPENAI_BASE_URL`, else OpenAI.
    pub fn from_env(spec: &LlmSpec) -> Result<Self, BrainError> {
        Self::resolve(spec, |name| std::env::var(name).ok())
    }

    /// Like [`Self::from_env`], with the environment given as a lookup.
    pub fn resolve(
        spec: &LlmSpec,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, BrainError> {
        let api_key = env("OPENAI_API_KEY")
            .filter(|k| !k.trim().is_empty())
            .ok_or_else(|| {
                BrainError::Unavailable(
                    "missing API key: set OPENAI_API_KEY for the llm brain (or use --allow-fallback)".into(),
                )
            })?;
        let base_url = spec
            .base_url
            .clone()
            .or_else(|| env("OPENAI_BASE_URL").filter(|u| !u.is_empty()))
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_string());
        Ok(Self {
            base_url,
            api_key,
            model: spec.model.clone(),
            request_timeout: Duration::from_secs(spec.request_timeout_seconds.into()),
            max_retries: spec.max_retries,
            max_tokens: spec.max_tokens,
            max_observation_chars: spec.max_observation_chars as usize,
        })
    }
}

pub struct LlmBrain {
    client: Client<OpenAIConfig>,
    config: LlmConfig,
    messages: Vec<Value>,
    /// The tool call whose result the next turn brings.
    awaiting: Option<String>,
    usage: TokenUsage,
}

impl LlmBrain {
    pub fn new(config: LlmConfig) -> Result<Self, BrainError> {
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .build()
            .map_err(|e| BrainError::Unavailable(format!("cannot build the HTTP client: {e}")))?;
        let service =
            OpenAIRetryLayer::new(config.max_retries as usize).layer(ReqwestService::new(http));
        let openai = OpenAIConfig::new()
            .with_api_base(config.base_url.trim_end_matches('/'))
            .with_api_key(config.api_key.clone());
        Ok(Self {
            client: Client::with_config(openai).with_http_service(service),
            config,
            messages: Vec::new(),
            awaiting: None,
            usage: TokenUsage::default(),
        })
    }

    async fn complete(&mut self) -> Result<Value, BrainError> {
        let request = json!({
            "model": self.config.model,
            "messages": self.messages,
            "tools": tools(),
            "tool_choice": "auto",
            "temperature": 0,
            "max_tokens": self.config.max_tokens,
        });
        let request: CreateChatCompletionRequest = serde_json::from_value(request)
            .map_err(|e| BrainError::Protocol(format!("building the request: {e}")))?;
        let response = self
            .client
            .chat()
            .create(request)
            .await
            .map_err(|e| self.describe(e))?;
        if let Some(usage) = &response.usage {
            self.usage.prompt += u64::from(usage.prompt_tokens);
            self.usage.completion += u64::from(usage.completion_tokens);
        }
        let choice = response
            .choices
            .into_iter()
            .next()
            .ok_or_else(|| BrainError::Protocol("the model returned no choices".into()))?;
        serde_json::to_value(choice.message).map_err(|e| BrainError::Protocol(e.to_string()))
    }

    fn describe(&self, error: OpenAIError) -> BrainError {
        let endpoint = &self.config.base_url;
        let message = match &error {
            OpenAIError::ApiError(api) if api.status_code.as_u16() == 401 => {
                format!(
                    "the LLM endpoint {endpoint} rejected the API key (401 Unauthorized): check OPENAI_API_KEY"
                )
            }
            OpenAIError::ApiError(api) => format!("the LLM endpoint {endpoint} answered {api}"),
            OpenAIError::Reqwest(e) if e.is_timeout() => format!(
                "the LLM endpoint {endpoint} did not answer within {}s",
                self.config.request_timeout.as_secs()
            ),
            OpenAIError::Reqwest(e) if e.is_connect() => {
                format!(
                    "cannot reach the LLM endpoint {endpoint} (after {} retries): {e}",
                    self.config.max_retries
                )
            }
            OpenAIError::JSONDeserialize(e, body) => {
                let body: String = body.chars().take(200).collect();
                format!(
                    "the LLM endpoint {endpoint} sent a response that is not a chat completion ({e}): {body}"
                )
            }
            other => format!("LLM request to {endpoint} failed: {other}"),
        };
        BrainError::Unavailable(message)
    }
}

impl Brain for LlmBrain {
    fn name(&self) -> &'static str {
        "llm"
    }

    fn model(&self) -> Option<String> {
        Some(self.config.model.clone())
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
            if self.messages.is_empty() {
                self.messages
                    .push(json!({"role": "system", "content": system_prompt(task)}));
                self.messages
                    .push(json!({"role": "user", "content": user_prompt(task)}));
            }
            if let (Some(id), Some(last)) = (self.awaiting.take(), history.last()) {
                self.messages.push(json!({
                    "role": "tool",
                    "tool_call_id": id,
                    "content": shorten(&feedback_text(&last.feedback), self.config.max_observation_chars),
                }));
            }
            for _ in 0..MAX_INVALID_CALLS {
                let message = self.complete().await?;
                self.messages.push(assistant_echo(&message));
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
                for extra in &calls[1..] {
                    self.messages.push(json!({
                        "role": "tool",
                        "tool_call_id": extra["id"],
                        "content": "NOT EXECUTED: propose one action at a time",
                    }));
                }
                let id = first["id"].as_str().unwrap_or_default().to_string();
                match parse_tool_call(first) {
                    Ok(proposal) => {
                        if matches!(proposal, Proposal::Act { .. }) {
                            self.awaiting = Some(id);
                        }
                        return Ok(proposal);
                    }
                    Err(problem) => self.messages.push(json!({
                        "role": "tool",
                        "tool_call_id": id,
                        "content": format!("ERROR: {problem}. Call a tool again with valid JSON arguments."),
                    })),
                }
            }
            Err(BrainError::Protocol(format!(
                "the model sent {MAX_INVALID_CALLS} invalid tool calls in a row"
            )))
        })
    }
}

/// The assistant message as it must be sent back in the next request.
/// Keeps the head and the tail of a long observation (errors are often
/// at the end) and says how much was cut.
fn shorten(text: &str, max_chars: usize) -> String {
    let count = text.chars().count();
    if count <= max_chars {
        return text.to_string();
    }
    let half = max_chars / 2;
    let head: String = text.chars().take(half).collect();
    let tail: String = text.chars().skip(count - half).collect();
    format!(
        "{head}\n[... {} characters cut ...]\n{tail}",
        count - 2 * half
    )
}

/// Content is always a string: some servers' chat templates (llama.cpp's
/// chatml-function-calling) fail on an assistant message without one.
fn assistant_echo(message: &Value) -> Value {
    let content = message["content"].as_str().unwrap_or("");
    let mut echo = json!({"role": "assistant", "content": content});
    if let Some(calls) = message["tool_calls"].as_array().filter(|c| !c.is_empty()) {
        echo["tool_calls"] = Value::Array(calls.clone());
    }
    echo
}

fn system_prompt(task: &Task) -> String {
    format!(
        "You are an SRE agent fixing a broken service. You act only through the tools. \
The service lives in your working directory (service.conf, service.env, service.log, ...); \
commands run there. Health probes expect it on port {port}. A restart rereads service.env \
and service.conf. Every tool call must declare security_risk: LOW for read-only inspection, \
MEDIUM for targeted changes and restarts, HIGH for anything destructive or broad. A risk gate \
checks every action; denied actions are not executed. Make one tool call at a time. When \
GET /health answers 200 with status ok, call finish.\n\nStrategy: {hint}",
        port = task.expected_port,
        hint = task.hint
    )
}

fn user_prompt(task: &Task) -> String {
    format!("Incident: {}", task.symptom.trim())
}

fn risk_property() -> Value {
    json!({"type": "string", "enum": ["LOW", "MEDIUM", "HIGH"], "description": "Your assessment of the action's risk."})
}

fn tool(name: &str, description: &str, properties: Value, required: &[&str]) -> Value {
    json!({
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": properties, "required": required},
        }
    })
}

/// The tools the model may call; one per workspace action, plus finish.
pub fn tools() -> Value {
    let risk = risk_property();
    json!([
        tool(
            "run_command",
            "Run a shell command in the service directory.",
            json!({"command": {"type": "string"}, "security_risk": risk}),
            &["command", "security_risk"]
        ),
        tool(
            "read_file",
            "Read a file (relative to the service directory).",
            json!({"path": {"type": "string"}, "security_risk": risk}),
            &["path", "security_risk"]
        ),
        tool(
            "write_file",
            "Replace a file's content.",
            json!({"path": {"type": "string"}, "content": {"type": "string"}, "security_risk": risk}),
            &["path", "content", "security_risk"]
        ),
        tool(
            "http_get",
            "GET a path on the service's expected port, e.g. /health.",
            json!({"path": {"type": "string"}, "security_risk": risk}),
            &["path", "security_risk"]
        ),
        tool(
            "restart_service",
            "Restart the service so it rereads service.env and service.conf.",
            json!({"security_risk": risk}),
            &["security_risk"]
        ),
        tool(
            "finish",
            "Say the incident is resolved.",
            json!({"summary": {"type": "string"}}),
            &["summary"]
        ),
    ])
}

/// Turns one tool call into a proposal, or says what is wrong with it.
pub fn parse_tool_call(call: &Value) -> Result<Proposal, String> {
    let parsed: Result<ChatCompletionMessageToolCalls, _> = serde_json::from_value(call.clone());
    let function = match parsed {
        Ok(ChatCompletionMessageToolCalls::Function(f)) => f.function,
        Ok(ChatCompletionMessageToolCalls::Custom(_)) => {
            return Err("custom tools are not supported".into());
        }
        Err(e) => return Err(format!("malformed tool call: {e}")),
    };
    let args: Value = if function.arguments.trim().is_empty() {
        json!({})
    } else {
        serde_json::from_str(&function.arguments)
            .map_err(|e| format!("arguments of {} are not valid JSON ({e})", function.name))?
    };
    let text = |key: &str| {
        args[key]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("{} needs a string `{key}`", function.name))
    };
    let declared_risk = args
        .get("security_risk")
        .and_then(Value::as_str)
        .map(|raw| match raw.to_ascii_uppercase().as_str() {
            "LOW" => SecurityRisk::Low,
            "MEDIUM" => SecurityRisk::Medium,
            "HIGH" => SecurityRisk::High,
            _ => SecurityRisk::Unknown,
        });
    let action = match function.name.as_str() {
        "run_command" => Action::Exec(text("command")?),
        "read_file" => Action::ReadFile(text("path")?),
        "write_file" => Action::WriteFile {
            path: text("path")?,
            content: text("content")?,
        },
        "http_get" => Action::HttpGet(text("path")?),
        "restart_service" => Action::RestartService,
        "finish" => {
            return Ok(Proposal::Done {
                summary: args["summary"].as_str().unwrap_or("").to_string(),
            });
        }
        other => return Err(format!("unknown tool `{other}`")),
    };
    Ok(Proposal::Act {
        action,
        declared_risk,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, arguments: &str) -> Value {
        json!({"id": "c1", "type": "function", "function": {"name": name, "arguments": arguments}})
    }

    #[test]
    fn tool_calls_become_actions_with_declared_risk() {
        let p = parse_tool_call(&call(
            "run_command",
            r#"{"command":"rm -rf /","security_risk":"LOW"}"#,
        ))
        .unwrap();
        assert_eq!(
            p,
            Proposal::Act {
                action: Action::Exec("rm -rf /".into()),
                declared_risk: Some(SecurityRisk::Low)
            }
        );
        let p = parse_tool_call(&call("restart_service", r#"{"security_risk":"bogus"}"#)).unwrap();
        assert_eq!(
            p,
            Proposal::Act {
                action: Action::RestartService,
                declared_risk: Some(SecurityRisk::Unknown)
            }
        );
        let done = parse_tool_call(&call("finish", r#"{"summary":"fixed"}"#)).unwrap();
        assert_eq!(
            done,
            Proposal::Done {
                summary: "fixed".into()
            }
        );
    }

    #[test]
    fn long_observations_keep_head_and_tail() {
        let text = format!("{}{}", "a".repeat(5000), "z".repeat(5000));
        let short = shorten(&text, 1000);
        assert!(short.starts_with(&"a".repeat(500)) && short.ends_with(&"z".repeat(500)));
        assert!(
            short.contains("[... 9000 characters cut ...]"),
            "{}",
            &short[490..560]
        );
        assert_eq!(shorten("small", 1000), "small");
    }

    #[test]
    fn bad_calls_are_explained() {
        let err = parse_tool_call(&call("run_command", "{not json")).unwrap_err();
        assert!(err.contains("not valid JSON"), "{err}");
        let err = parse_tool_call(&call("run_command", r#"{"cmd":"ls"}"#)).unwrap_err();
        assert!(err.contains("needs a string `command`"), "{err}");
        let err = parse_tool_call(&call("format_disk", "{}")).unwrap_err();
        assert!(err.contains("unknown tool"), "{err}");
    }

    #[test]
    fn a_missing_key_is_a_clear_error_and_the_endpoint_is_resolved() {
        let spec = LlmSpec::default();
        let err = LlmConfig::resolve(&spec, |_| None).unwrap_err().to_string();
        assert!(err.contains("missing API key"), "{err}");
        let config = LlmConfig::resolve(&spec, |name| match name {
            "OPENAI_API_KEY" => Some("k".into()),
            "OPENAI_BASE_URL" => Some("http://127.0.0.1:9/v1".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(config.base_url, "http://127.0.0.1:9/v1");
        assert_eq!(config.model, "gpt-4.1-mini");
    }
}
