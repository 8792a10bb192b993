//! The tools the model may call (one per action, each declaring its
//! `security_risk`) and the parsing of a call into a proposal.

use async_openai::types::chat::ChatCompletionMessageToolCalls;
use serde_json::{Value, json};

use crate::action::Action;
use crate::protocol::Proposal;
use crate::risk::SecurityRisk;

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
