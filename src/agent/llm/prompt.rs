//! What the model is told: a compact system prompt with the task and the
//! hint, and the whole conversation rebuilt from the recorded history
//! (each step as the tool call that proposed it and what came of it).

use serde_json::{Value, json};

use crate::action::Action;
use crate::agent::feedback_text;
use crate::agent::runbook::{facts_note, standing_note};
use crate::crd::Conversation;
use crate::protocol::{Task, Turn};

/// How the model's earlier calls are replayed to it: as the API's
/// `tool_calls`, or as the `<tool_call>` JSON text it wrote itself (a model
/// served without a tool-call parser sees its own form, and each request
/// keeps the previous one's text as its prefix, which the server reuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallStyle {
    ToolCalls,
    Content,
}

/// Characters per token, for the prompt budget's estimate.
const CHARS_PER_TOKEN: usize = 4;
/// The newest observations never cut down for the budget.
const KEPT_WHOLE: usize = 2;

/// The whole conversation so far, rebuilt from the task and the recorded
/// history: each step becomes the tool call that proposed it and the
/// observation (or refusal) it got, as messages or as one transcript.
/// Over `max_prompt_tokens`, the oldest observations are cut down to their
/// first line and what the runbook's reader found in them.
pub fn conversation(
    task: &Task,
    history: &[Turn],
    max_observation_chars: usize,
    max_prompt_tokens: usize,
    style: CallStyle,
    layout: Conversation,
) -> Vec<Value> {
    let head = [
        json!({"role": "system", "content": system_prompt(task)}),
        json!({"role": "user", "content": user_prompt(task)}),
    ];
    let mut observations: Vec<(String, String)> = history
        .iter()
        .map(|turn| observation_of(turn, task, max_observation_chars))
        .collect();
    let calls: Vec<(String, Value)> = history.iter().map(call_of).collect();
    let standing = standing_note(history, task.expected_port);
    let size = |observations: &[(String, String)]| {
        let fixed: usize = standing.as_ref().map_or(0, String::len)
            + head
                .iter()
                .map(|m| m["content"].as_str().map_or(0, str::len))
                .sum::<usize>()
            + calls
                .iter()
                .map(|(_, c)| c.to_string().len())
                .sum::<usize>();
        fixed
            + observations
                .iter()
                .map(|(whole, _)| whole.len())
                .sum::<usize>()
    };
    let budget = max_prompt_tokens.saturating_mul(CHARS_PER_TOKEN);
    let cuttable = observations.len().saturating_sub(KEPT_WHOLE);
    for index in 0..cuttable {
        if size(&observations) <= budget {
            break;
        }
        let (whole, short) = &mut observations[index];
        *whole = std::mem::take(short);
    }
    if layout == Conversation::Transcript {
        let steps = calls.into_iter().zip(observations);
        return vec![head[0].clone(), transcript(task, steps, standing)];
    }
    let mut messages = head.to_vec();
    for (turn, ((name, arguments), (observation, _))) in
        history.iter().zip(calls.into_iter().zip(observations))
    {
        let id = format!("call_{}", turn.step);
        messages.push(match style {
            CallStyle::ToolCalls => json!({
                "role": "assistant",
                "content": "",
                "tool_calls": [{
                    "id": id,
                    "type": "function",
                    "function": {"name": name, "arguments": arguments.to_string()},
                }],
            }),
            CallStyle::Content => json!({
                "role": "assistant",
                "content": format!(
                    "<tool_call>\n{}\n</tool_call>",
                    json!({"name": name, "arguments": arguments})
                ),
            }),
        });
        messages.push(json!({
            "role": "tool",
            "tool_call_id": id,
            "content": observation,
        }));
    }
    if let Some(standing) = standing {
        messages.push(json!({"role": "user", "content": standing}));
    }
    messages
}

/// The task and every step so far in one user message, each step the call
/// as the model writes it and what came of it, then where things stand.
/// Each step appends, so the previous request's text up to the standing
/// note stays the prefix of the next.
fn transcript(
    task: &Task,
    steps: impl Iterator<Item = ((String, Value), (String, String))>,
    standing: Option<String>,
) -> Value {
    let mut text = user_prompt(task);
    for (number, ((name, arguments), (observation, _))) in steps.enumerate() {
        text.push_str(&format!(
            "\n\nStep {}: {}\nResult:\n{}",
            number + 1,
            json!({"name": name, "arguments": arguments}),
            observation.trim_end()
        ));
    }
    if let Some(standing) = standing {
        text.push_str("\n\n");
        text.push_str(&standing);
    }
    text.push_str("\n\nReply with exactly one tool call: the next step.");
    json!({"role": "user", "content": text})
}

/// The tool call that proposed a turn's action, with its declared risk.
fn call_of(turn: &Turn) -> (String, Value) {
    let (name, mut arguments) = tool_call_of(&turn.action);
    if let Some(risk) = turn.declared_risk {
        arguments["security_risk"] = json!(risk.to_string());
    }
    (name.to_string(), arguments)
}

/// What a turn's observation says to the model: whole (shortened to
/// `max_chars`), and cut down to its first line and the facts read from it.
fn observation_of(turn: &Turn, task: &Task, max_chars: usize) -> (String, String) {
    let text = feedback_text(&turn.feedback);
    // The runbook's reader, so a small model need not parse logs itself.
    let note = turn
        .feedback
        .observation()
        .and_then(|observation| facts_note(&turn.action, observation, task.expected_port));
    let mut whole = shorten(&text, max_chars);
    let first_line = text.lines().next().unwrap_or("");
    let mut short = format!("{first_line}\n[earlier output cut to fit the prompt budget]");
    if let Some(note) = note {
        for text in [&mut whole, &mut short] {
            text.push('\n');
            text.push_str(&note);
        }
    }
    (whole, short)
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
pub(super) fn shorten(text: &str, max_chars: usize) -> String {
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
pub(super) fn assistant_echo(message: &Value) -> Value {
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
