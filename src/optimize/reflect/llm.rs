//! The LLM reflector: the parent hint, the language the runbook reads and
//! the minibatch's feedback go to a chat model (our OpenAI-compatible
//! client, same configuration and key as the LLM brain); its reply, between
//! ``` fences, is the child hint, refused when it is not general.

use std::collections::BTreeSet;
use std::sync::Mutex;

use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::{ReflectError, Reflection, Reflector};
use crate::agent::llm::ChatClient;
use crate::crd::TokenUsage;
use crate::optimize::evaluate::Rollout;
use crate::optimize::general;
use crate::optimize::strategy::{DIRECT_RULE, TARGETED_RULE};

/// Longest hint taken from a reply.
pub const MAX_HINT_CHARS: usize = 2000;

pub struct LlmReflector {
    client: ChatClient,
    forbidden: BTreeSet<String>,
    seed: u64,
    usage: Mutex<TokenUsage>,
}

impl LlmReflector {
    /// `forbidden`: what a general hint may not name (see `general`).
    pub fn new(client: ChatClient, forbidden: BTreeSet<String>, seed: u64) -> Self {
        Self {
            client,
            forbidden,
            seed,
            usage: Mutex::new(TokenUsage::default()),
        }
    }
}

pub const SYSTEM_PROMPT: &str = "You improve the strategy hint an SRE agent follows when it fixes a broken service. \
You read what happened when the agent followed the current hint and write a better hint: one that still resolves \
every incident, with fewer wasted steps and no refused or risky actions. A hint must stay general: it may choose \
and order checks and rules, and must never name a specific file, variable, config key, value or incident.";

/// The user message: the current hint, the language, the feedback.
pub fn prompt(parent: &str, rollouts: &[Rollout]) -> String {
    let mut text = format!(
        "Current hint:\n```\n{}\n```\n\n\
The agent's runbook reads these checks, in the order the hint names them: health (GET /health), \
log (read the service log), locks (stale lock or pid files), env (the environment file and its example), \
config (the config file and its documented defaults), ready (marker files), permissions (writable directories). \
It also understands two rules: \"{TARGETED_RULE}\" and \"{DIRECT_RULE}\"\n\n\
What happened on {} incidents:\n",
        parent.trim(),
        rollouts.len()
    );
    for (i, rollout) in rollouts.iter().enumerate() {
        text.push_str(&format!("\n### Incident {}\n{}", i + 1, rollout.feedback()));
    }
    text.push_str("\nWrite the improved hint. Reply with the hint only, between ``` fences.");
    text
}

/// The hint in a reply: the first fenced block, else the whole text.
pub fn extract(reply: &str) -> Option<String> {
    let fenced = reply.split("```").nth(1).map(|block| {
        // A language tag on the fence line is not part of the hint.
        match block.split_once('\n') {
            Some((first, rest)) if !first.trim().contains(' ') && !rest.trim().is_empty() => rest,
            _ => block,
        }
    });
    let hint = fenced.unwrap_or(reply).trim();
    (!hint.is_empty()).then(|| hint.chars().take(MAX_HINT_CHARS).collect())
}

impl Reflector for LlmReflector {
    fn name(&self) -> &'static str {
        "llm"
    }

    fn reflect<'a>(
        &'a self,
        parent: &'a str,
        rollouts: &'a [Rollout],
    ) -> BoxFuture<'a, Result<Option<Reflection>, ReflectError>> {
        Box::pin(async move {
            let messages: Vec<Value> = vec![
                json!({"role": "system", "content": SYSTEM_PROMPT}),
                json!({"role": "user", "content": prompt(parent, rollouts)}),
            ];
            let (reply, usage) = self
                .client
                .complete(&messages, Some(self.seed))
                .await
                .map_err(|e| ReflectError::Unavailable(e.to_string()))?;
            if let Ok(mut total) = self.usage.lock() {
                total.prompt += usage.prompt;
                total.completion += usage.completion;
            }
            let hint = extract(&reply).ok_or_else(|| {
                ReflectError::Unusable(format!(
                    "the model ({}) replied with no text",
                    self.client.model()
                ))
            })?;
            general::check(&hint, &self.forbidden).map_err(ReflectError::Unusable)?;
            if crate::optimize::evaluate::normalized(&hint)
                == crate::optimize::evaluate::normalized(parent)
            {
                return Ok(None);
            }
            Ok(Some(Reflection {
                hint,
                notes: vec![format!("written by {}", self.client.model())],
            }))
        })
    }

    fn usage(&self) -> TokenUsage {
        self.usage.lock().map(|u| *u).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hint_is_the_fenced_block_without_its_language_tag() {
        assert_eq!(
            extract("Here you go:\n```text\n1) Read the log.\n```\nthanks").as_deref(),
            Some("1) Read the log.")
        );
        assert_eq!(
            extract("```\nRead the log first. Then the config.\n```").as_deref(),
            Some("Read the log first. Then the config.")
        );
        assert_eq!(
            extract("Just read the log.").as_deref(),
            Some("Just read the log.")
        );
        assert_eq!(extract("  \n"), None);
        assert_eq!(extract(&"x".repeat(5000)).unwrap().len(), MAX_HINT_CHARS);
    }
}
