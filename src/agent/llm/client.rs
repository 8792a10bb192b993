//! The one chat client every model call goes through (the brain's tool
//! calls and the optimizer's reflection): async-openai over reqwest, with
//! its retry layer (429, 5xx and connection errors retried with backoff),
//! the request timeout, token counting, and errors that say what to check.

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::middleware::ReqwestService;
use async_openai::middleware::retry::OpenAIRetryLayer;
use async_openai::types::chat::CreateChatCompletionRequest;
use serde_json::{Value, json};
use tower::Layer;
use tracing::Instrument;
use tracing::field::Empty;

use super::LlmConfig;
use crate::agent::BrainError;
use crate::crd::TokenUsage;

/// One chat completion request.
#[derive(Debug, Clone, Default)]
pub struct Chat<'a> {
    pub messages: &'a [Value],
    /// The tools the model may call (the brain's), if any.
    pub tools: Option<Value>,
    /// Asks the server for repeatable sampling where it supports it.
    pub seed: Option<u64>,
    /// Sampling temperature; 0 (greedy) unless set.
    pub temperature: Option<f32>,
}

pub struct ChatClient {
    client: Client<OpenAIConfig>,
    config: LlmConfig,
}

impl ChatClient {
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
        })
    }

    pub fn model(&self) -> &str {
        &self.config.model
    }

    pub fn config(&self) -> &LlmConfig {
        &self.config
    }

    /// The model's reply message (as JSON: content and tool calls) and the
    /// tokens it took.
    pub async fn chat(&self, chat: Chat<'_>) -> Result<(Value, TokenUsage), BrainError> {
        // OpenTelemetry's GenAI conventions; never the prompt or the reply.
        let span = tracing::info_span!(
            "chat",
            otel.name = %format!("chat {}", self.config.model),
            otel.kind = "client",
            gen_ai.operation.name = "chat",
            gen_ai.request.model = %self.config.model,
            server.address = %server_address(&self.config.base_url),
            gen_ai.response.model = Empty,
            gen_ai.usage.input_tokens = Empty,
            gen_ai.usage.output_tokens = Empty,
            gen_ai.response.finish_reasons = Empty,
            gen_ai.tool.name = Empty,
            "error.type" = Empty,
            otel.status_code = Empty,
        );
        let answered = self.chat_in(chat, &span).instrument(span.clone()).await;
        // Its kind only: the message names the full endpoint and may quote
        // the response body; the incident's status has it.
        if let Err(e) = &answered {
            span.record("otel.status_code", "ERROR");
            span.record("error.type", e.kind());
        }
        answered
    }

    async fn chat_in(
        &self,
        chat: Chat<'_>,
        span: &tracing::Span,
    ) -> Result<(Value, TokenUsage), BrainError> {
        let mut request = json!({
            "model": self.config.model,
            "messages": chat.messages,
            "temperature": chat.temperature.unwrap_or(0.0),
            "max_tokens": self.config.max_tokens,
        });
        if let Some(tools) = chat.tools {
            request["tools"] = tools;
            request["tool_choice"] = json!("auto");
        }
        if let Some(seed) = chat.seed {
            request["seed"] = json!(seed);
        }
        let request: CreateChatCompletionRequest = serde_json::from_value(request)
            .map_err(|e| BrainError::Protocol(format!("building the request: {e}")))?;
        let started = std::time::Instant::now();
        let response = self
            .client
            .chat()
            .create(request)
            .await
            .map_err(|e| describe(&self.config, e))?;
        let mut usage = response
            .usage
            .as_ref()
            .map(|u| TokenUsage {
                prompt: u64::from(u.prompt_tokens),
                completion: u64::from(u.completion_tokens),
                ..TokenUsage::default()
            })
            .unwrap_or_default();
        usage.requests = 1;
        usage.model_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        span.record("gen_ai.response.model", response.model.as_str());
        span.record(
            "gen_ai.usage.input_tokens",
            crate::telemetry::count(usage.prompt),
        );
        span.record(
            "gen_ai.usage.output_tokens",
            crate::telemetry::count(usage.completion),
        );
        let choice = response
            .choices
            .into_iter()
            .next()
            .ok_or_else(|| BrainError::Protocol("the model returned no choices".into()))?;
        if let Some(reason) = &choice.finish_reason {
            span.record(
                "gen_ai.response.finish_reasons",
                tracing::field::debug(reason),
            );
        }
        let message = serde_json::to_value(choice.message)
            .map_err(|e| BrainError::Protocol(e.to_string()))?;
        if let Some(tool) = message["tool_calls"][0]["function"]["name"].as_str() {
            span.record("gen_ai.tool.name", tool);
        }
        Ok((message, usage))
    }

    /// A plain completion without tools: the reply's text and the tokens
    /// it took (what the optimizer's reflection asks a model).
    pub async fn complete(
        &self,
        messages: &[Value],
        seed: Option<u64>,
    ) -> Result<(String, TokenUsage), BrainError> {
        let chat = Chat {
            messages,
            tools: None,
            seed,
            temperature: None,
        };
        let (message, usage) = self.chat(chat).await?;
        let text = message["content"]
            .as_str()
            .ok_or_else(|| BrainError::Protocol("the model returned no text".into()))?;
        Ok((text.to_string(), usage))
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

/// The endpoint's host (and port) alone: a base URL may carry credentials
/// in its user part or its query.
fn server_address(base_url: &str) -> String {
    match reqwest::Url::parse(base_url) {
        Ok(url) => match (url.host_str(), url.port_or_known_default()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_string(),
            (None, _) => String::new(),
        },
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::server_address;

    #[test]
    fn the_server_address_keeps_no_credentials() {
        assert_eq!(
            server_address("https://user:s3cret@llm.example/v1?api-key=s3cret"),
            "llm.example:443"
        );
        assert_eq!(server_address("http://127.0.0.1:8080/v1"), "127.0.0.1:8080");
        assert_eq!(server_address("not a url"), "");
    }
}
