//! The LLM brain: an OpenAI-compatible chat model with tool calling, via
//! async-openai. Each tool call declares a `security_risk`; the gate may
//! raise it but the model cannot lower it. 429, 5xx and connection errors
//! are retried with backoff (async-openai's retry layer); 401 and timeouts
//! fail at once with a clear reason. The conversation is rebuilt from the
//! recorded history on every call, so a restarted agent continues it.

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

use super::{Brain, BrainError, feedback_text};
use crate::action::Action;
use crate::crd::{LlmSpec, TokenUsage};
use crate::protocol::{Proposal, Task, Turn};
use crate::risk::SecurityRisk;

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

/// Where the LLM brain's key and endpoint come from, read once at the edge
/// of the program (the process environment, mounted Secrets), never deep
/// inside.
#[derive(Debug, Clone, Default)]
pub struct LlmEnvironment {
    /// `OPENAI_API_KEY`.
    pub api_key: Option<String>,
    /// `OPENAI_BASE_URL`.
    pub base_url: Option<String>,
    /// Where Secrets are mounted as files: `<dir>/<name>/<key>`
    /// (`REMEDIATOR_SECRETS_DIR`; in a Pod, the Secret volume's parent).
    pub secrets_dir: Option<std::path::PathBuf>,
}

impl LlmEnvironment {
    pub fn from_process() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Self {
            api_key: var("OPENAI_API_KEY"),
            base_url: var("OPENAI_BASE_URL"),
            secrets_dir: var("REMEDIATOR_SECRETS_DIR").map(Into::into),
        }
    }
}

/// Largest key file read from a mounted Secret.
const MAX_KEY_BYTES: u64 = 16 * 1024;

impl LlmConfig {
    /// The key comes from the Policy's `apiKeySecretRef` when it names one
    /// (read from `<secrets_dir>/<name>/<key>`), else from `OPENAI_API_KEY`;
    /// the endpoint from the Policy, else `OPENAI_BASE_URL`, else OpenAI.
    pub fn resolve(spec: &LlmSpec, env: &LlmEnvironment) -> Result<Self, BrainError> {
        let api_key = match &spec.api_key_secret_ref {
            Some(reference) => read_secret_key(env, &reference.name, &reference.key)?,
            None => env.api_key.clone().ok_or_else(|| {
                BrainError::Unavailable(
                    "missing API key: set OPENAI_API_KEY for the llm brain, or name a Secret in the Policy's llm.apiKeySecretRef".into(),
                )
            })?,
        };
        let base_url = spec
            .base_url
            .clone()
            .or_else(|| env.base_url.clone())
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

fn read_secret_key(env: &LlmEnvironment, name: &str, key: &str) -> Result<String, BrainError> {
    use std::io::Read;
    let plain = |part: &str| !part.is_empty() && part != "." && part != ".." && !part.contains('/');
    if !plain(name) || !plain(key) {
        return Err(BrainError::Unavailable(format!(
            "apiKeySecretRef {name}/{key} is not a plain Secret name and key"
        )));
    }
    let Some(dir) = &env.secrets_dir else {
        return Err(BrainError::Unavailable(format!(
            "the Policy reads its API key from Secret {name} key {key}: set REMEDIATOR_SECRETS_DIR to the directory holding {name}/{key} (in a cluster the Secret is mounted there)"
        )));
    };
    let path = dir.join(name).join(key);
    let unreadable = |e: std::io::Error| {
        BrainError::Unavailable(format!(
            "cannot read the API key from {}: {e}",
            path.display()
        ))
    };
    let file = std::fs::File::open(&path).map_err(unreadable)?;
    if !file.metadata().map_err(unreadable)?.is_file() {
        return Err(BrainError::Unavailable(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    let mut text = String::new();
    file.take(MAX_KEY_BYTES)
        .read_to_string(&mut text)
        .map_err(unreadable)?;
    let key = text.trim().to_string();
    if key.is_empty() {
        return Err(BrainError::Unavailable(format!(
            "{} is empty",
            path.display()
        )));
    }
    Ok(key)
}

pub struct LlmBrain {
    client: Client<OpenAIConfig>,
    config: LlmConfig,
    usage: TokenUsage,
}

/// The OpenAI client with async-openai's retry layer (429, 5xx and
/// connection errors retried with backoff) and the request timeout.
fn openai_client(config: &LlmConfig) -> Result<Client<OpenAIConfig>, BrainError> {
    let http = reqwest::Client::builder()
        .timeout(config.request_timeout)
        .build()
        .map_err(|e| BrainError::Unavailable(format!("cannot build the HTTP client: {e}")))?;
    let service =
        OpenAIRetryLayer::new(config.max_retries as usize).layer(ReqwestService::new(http));
    let openai = OpenAIConfig::new()
        .with_api_base(config.base_url.trim_end_matches('/'))
        .with_api_key(config.api_key.clone());
    Ok(Client::with_config(openai).with_http_service(service))
}

impl LlmBrain {
    pub fn new(config: LlmConfig) -> Result<Self, BrainError> {
        Ok(Self {
            client: openai_client(&config)?,
            config,
            usage: TokenUsage::default(),
        })
    }

    async fn complete(&mut self, messages: &[Value]) -> Result<Value, BrainError> {
        let request = json!({
            "model": self.config.model,
            "messages": messages,
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
            .map_err(|e| describe(&self.config, e))?;
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
}

/// An API error in words that say what to check.
fn describe(config: &LlmConfig, error: OpenAIError) -> BrainError {
    let endpoint = &config.base_url;
    let message = match &error {
        OpenAIError::ApiError(api) if api.status_code.as_u16() == 401 => {
            format!(
                "the LLM endpoint {endpoint} rejected the API key (401 Unauthorized): check OPENAI_API_KEY"
            )
        }
        OpenAIError::ApiError(api) => format!("the LLM endpoint {endpoint} answered {api}"),
        OpenAIError::Reqwest(e) if e.is_timeout() => format!(
            "the LLM endpoint {endpoint} did not answer within {}s",
            config.request_timeout.as_secs()
        ),
        OpenAIError::Reqwest(e) if e.is_connect() => {
            format!(
                "cannot reach the LLM endpoint {endpoint} (after {} retries): {e}",
                config.max_retries
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

/// A plain chat completion, no tools, with the brain's configuration and
/// key resolution: what the optimizer's reflection asks a model.
pub struct ChatClient {
    client: Client<OpenAIConfig>,
    config: LlmConfig,
}

impl ChatClient {
    pub fn new(config: LlmConfig) -> Result<Self, BrainError> {
        Ok(Self {
            client: openai_client(&config)?,
            config,
        })
    }

    pub fn model(&self) -> &str {
        &self.config.model
    }

    /// The reply's text and the tokens it took. `seed` asks the server for
    /// repeatable sampling where it supports it.
    pub async fn complete(
        &self,
        messages: &[Value],
        seed: Option<u64>,
    ) -> Result<(String, TokenUsage), BrainError> {
        let mut request = json!({
            "model": self.config.model,
            "messages": messages,
            "temperature": 0,
            "max_tokens": self.config.max_tokens,
        });
        if let Some(seed) = seed {
            request["seed"] = json!(seed);
        }
        let request: CreateChatCompletionRequest = serde_json::from_value(request)
            .map_err(|e| BrainError::Protocol(format!("building the request: {e}")))?;
        let response = self
            .client
            .chat()
            .create(request)
            .await
            .map_err(|e| describe(&self.config, e))?;
        let usage = response
            .usage
            .as_ref()
            .map(|u| TokenUsage {
                prompt: u64::from(u.prompt_tokens),
                completion: u64::from(u.completion_tokens),
            })
            .unwrap_or_default();
        let text = response
            .choices
            .into_iter()
            .next()
            .and_then(|choice| choice.message.content)
            .ok_or_else(|| BrainError::Protocol("the model returned no text".into()))?;
        Ok((text, usage))
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
            let mut messages = conversation(task, history, self.config.max_observation_chars);
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

/// The whole conversation so far, rebuilt from the task and the recorded
/// history: each step becomes the tool call that proposed it and the
/// observation (or refusal) it got.
pub fn conversation(task: &Task, history: &[Turn], max_observation_chars: usize) -> Vec<Value> {
    let mut messages = vec![
        json!({"role": "system", "content": system_prompt(task)}),
        json!({"role": "user", "content": user_prompt(task)}),
    ];
    for turn in history {
        let id = format!("call_{}", turn.step);
        let (name, mut arguments) = tool_call_of(&turn.action);
        if let Some(risk) = turn.declared_risk {
            arguments["security_risk"] = json!(risk.to_string());
        }
        messages.push(json!({
            "role": "assistant",
            "content": "",
            "tool_calls": [{
                "id": id,
                "type": "function",
                "function": {"name": name, "arguments": arguments.to_string()},
            }],
        }));
        messages.push(json!({
            "role": "tool",
            "tool_call_id": id,
            "content": shorten(&feedback_text(&turn.feedback), max_observation_chars),
        }));
    }
    messages
}

/// The tool and arguments that propose `action`.
fn tool_call_of(action: &Action) -> (&'static str, Value) {
    match action {
        Action::Exec(command) => ("run_command", json!({"command": command})),
        Action::ReadFile(path) => ("read_file", json!({"path": path})),
        Action::WriteFile { path, content } => {
            ("write_file", json!({"path": path, "content": content}))
        }
        Action::HttpGet(path) => ("http_get", json!({"path": path})),
        Action::RestartService => ("restart_service", json!({})),
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
        let err = LlmConfig::resolve(&spec, &LlmEnvironment::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing API key"), "{err}");
        let env = LlmEnvironment {
            api_key: Some("k".into()),
            base_url: Some("http://127.0.0.1:9/v1".into()),
            secrets_dir: None,
        };
        let config = LlmConfig::resolve(&spec, &env).unwrap();
        assert_eq!(config.base_url, "http://127.0.0.1:9/v1");
        assert_eq!(config.model, "gpt-4.1-mini");
    }

    #[test]
    fn a_secret_ref_reads_the_mounted_key_file_or_says_where_it_looked() {
        let dir = tempfile::tempdir().unwrap();
        let spec = LlmSpec {
            api_key_secret_ref: Some(crate::crd::SecretKeyRef {
                name: "llm".into(),
                key: "apiKey".into(),
            }),
            ..LlmSpec::default()
        };
        let env = LlmEnvironment {
            api_key: Some("from-env".into()),
            secrets_dir: Some(dir.path().to_path_buf()),
            ..LlmEnvironment::default()
        };
        let err = LlmConfig::resolve(&spec, &env).unwrap_err().to_string();
        assert!(err.contains("llm/apiKey"), "{err}");
        std::fs::create_dir(dir.path().join("llm")).unwrap();
        std::fs::write(dir.path().join("llm/apiKey"), "sk-mounted\n").unwrap();
        assert_eq!(
            LlmConfig::resolve(&spec, &env).unwrap().api_key,
            "sk-mounted"
        );
        let no_dir = LlmEnvironment {
            secrets_dir: None,
            ..env
        };
        let err = LlmConfig::resolve(&spec, &no_dir).unwrap_err().to_string();
        assert!(err.contains("REMEDIATOR_SECRETS_DIR"), "{err}");
    }

    #[test]
    fn the_conversation_is_rebuilt_from_history() {
        let task = Task {
            symptom: "500".into(),
            expected_port: 8080,
            hint: "h".into(),
        };
        let history = vec![Turn {
            step: 1,
            action: Action::Exec("ls".into()),
            declared_risk: Some(SecurityRisk::Low),
            feedback: super::super::Feedback::Denied {
                reason: "no".into(),
            },
        }];
        let messages = conversation(&task, &history, 1000);
        assert_eq!(messages.len(), 4);
        assert_eq!(messages[2]["tool_calls"][0]["id"], "call_1");
        assert_eq!(
            messages[2]["tool_calls"][0]["function"]["arguments"],
            r#"{"command":"ls","security_risk":"LOW"}"#
        );
        assert_eq!(messages[3]["tool_call_id"], "call_1");
        assert_eq!(messages[3]["content"], "NOT EXECUTED: no");
    }
}
