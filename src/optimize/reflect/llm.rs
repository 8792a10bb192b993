//! The LLM reflector: the parent hint, who reads it (the runbook's check
//! language, or a model's tools) and the minibatch's feedback go to a chat
//! model (our OpenAI-compatible client, same configuration and key as the
//! LLM brain); from its reply, between ``` fences, comes the child hint,
//! refused when it is not general.

use std::collections::BTreeSet;
use std::sync::Mutex;

use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::{ReflectError, Reflection, Reflector};
use crate::agent::llm::ChatClient;
use crate::crd::{BrainKind, TokenUsage};
use crate::optimize::evaluate::Rollout;
use crate::optimize::general;
use crate::optimize::strategy::{DIRECT_RULE, TARGETED_RULE};

/// Longest hint taken from a reply.
pub const MAX_HINT_CHARS: usize = 2000;

pub struct LlmReflector {
    client: ChatClient,
    /// The brain that follows the hints: what the prompt says reads them.
    reader: BrainKind,
    forbidden: BTreeSet<String>,
    seed: u64,
    usage: Mutex<TokenUsage>,
}

impl LlmReflector {
    /// `forbidden`: what a general hint may not name (see `general`).
    pub fn new(
        client: ChatClient,
        reader: BrainKind,
        forbidden: BTreeSet<String>,
        seed: u64,
    ) -> Self {
        Self {
            client,
            reader,
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

/// The user message: the current hint, who reads it, the feedback, and
/// what to write (a whole hint for the runbook, new rules for a model).
pub fn prompt(parent: &str, reader: BrainKind, rollouts: &[Rollout]) -> String {
    let (who_reads, ask) = match reader {
        BrainKind::Runbook => (
            format!(
                "The agent's runbook reads these checks, in the order the hint names them: health (GET /health), \
log (read the service log), locks (stale lock or pid files), env (the environment file and its example), \
config (the config file and its documented defaults), ready (marker files), permissions (writable directories). \
It also understands two rules: \"{TARGETED_RULE}\" and \"{DIRECT_RULE}\""
            ),
            "Write the improved hint. Reply with the hint only, between ``` fences.",
        ),
        BrainKind::Llm => (
            "The agent is a language model. It reads the hint with the incident and takes one step \
at a time by calling a tool: run_command (a shell command in the service directory), read_file, write_file \
(replaces the whole file), http_get, restart_service, finish. Write rules it can follow step by step, drawn \
from what went wrong in the traces below."
                .to_string(),
            "What should the agent do differently? Write one to three new rules for the hint, \
one per line, each a short instruction drawn from the mistakes above and not already in the hint. \
Reply with the new rules only, between ``` fences.",
        ),
    };
    let mut text = format!(
        "Current hint:\n```\n{}\n```\n\n{who_reads}\n\nWhat happened on {} incidents:\n",
        parent.trim(),
        rollouts.len()
    );
    for (i, rollout) in rollouts.iter().enumerate() {
        text.push_str(&format!("\n### Incident {}\n{}", i + 1, rollout.feedback()));
    }
    text.push('\n');
    text.push_str(ask);
    text
}

/// The child hint from a reply: for the runbook the reply is the whole
/// hint; for a model, the reply's new rules are added to the parent.
/// Small models asked to rewrite a hint copy it back unchanged; asked only
/// for what to add, they write what the traces taught.
pub fn child_hint(parent: &str, reader: BrainKind, reply: &str) -> Option<String> {
    let written = extract(reply)?;
    match reader {
        BrainKind::Runbook => Some(written),
        BrainKind::Llm => {
            let known = crate::optimize::evaluate::normalized(parent);
            let rules: Vec<&str> = written
                .lines()
                .map(str::trim)
                .filter(|line| {
                    let line = crate::optimize::evaluate::normalized(line);
                    !line.is_empty() && !known.contains(&line)
                })
                .collect();
            let child = format!("{}\n{}", parent.trim(), rules.join("\n"));
            Some(child.chars().take(MAX_HINT_CHARS).collect())
        }
    }
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
                json!({"role": "user", "content": prompt(parent, self.reader, rollouts)}),
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
            let hint = child_hint(parent, self.reader, &reply).ok_or_else(|| {
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

    #[test]
    fn the_prompt_describes_the_brain_that_will_read_the_hint() {
        let for_model = prompt("Read the log.", BrainKind::Llm, &[]);
        assert!(for_model.contains("run_command"), "{for_model}");
        assert!(for_model.contains("write_file"), "{for_model}");
        assert!(!for_model.contains(TARGETED_RULE), "{for_model}");
        let for_runbook = prompt("Read the log.", BrainKind::Runbook, &[]);
        assert!(for_runbook.contains(TARGETED_RULE), "{for_runbook}");
        assert!(!for_runbook.contains("run_command"), "{for_runbook}");
    }

    #[test]
    fn a_model_reader_gets_the_new_rules_added_and_copies_are_dropped() {
        let parent = "Read the log first.\nRestart after a config change.";
        let reply = "```\nRead the log first.\nUse paths relative to the service directory.\n```";
        assert_eq!(
            child_hint(parent, BrainKind::Llm, reply).as_deref(),
            Some(
                "Read the log first.\nRestart after a config change.\nUse paths relative to the service directory."
            )
        );
        // A reply that only copies the hint adds nothing: the child is the parent.
        let copy = format!("```\n{parent}\n```");
        assert_eq!(
            crate::optimize::evaluate::normalized(
                &child_hint(parent, BrainKind::Llm, &copy).unwrap()
            ),
            crate::optimize::evaluate::normalized(parent)
        );
        assert_eq!(
            child_hint(parent, BrainKind::Runbook, reply).as_deref(),
            Some("Read the log first.\nUse paths relative to the service directory.")
        );
    }
}
