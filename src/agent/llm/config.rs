//! Where the LLM brain's endpoint, key and limits come from: the Policy's
//! `llm` spec, the process environment, and Secrets mounted as files.

use std::time::Duration;

use crate::agent::BrainError;
use crate::crd::{Conversation, LlmSpec};

pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
#[derive(Debug, Clone)]
pub struct LlmConfig {
    pub base_url: String,
    pub api_key: String,
    pub model: String,
    pub request_timeout: Duration,
    pub max_retries: u32,
    pub max_tokens: u32,
    pub max_observation_chars: usize,
    pub max_prompt_tokens: usize,
    pub conversation: Conversation,
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
            max_prompt_tokens: spec.max_prompt_tokens as usize,
            conversation: spec.conversation,
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
