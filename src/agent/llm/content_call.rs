//! Tool calls a model wrote in its reply's text instead of the API's
//! `tool_calls` field, as many local servers return them: Qwen's
//! `<tool_call>{…}</tool_call>`, a fenced or bare JSON object, and
//! llama-cpp-python's `functions.NAME:` followed by the arguments. Each is
//! turned into the same shape as a real tool call, so one parser reads
//! both; what is not a call at all is left alone (the reply is then the
//! model's claim to be done).

use serde_json::{Map, Value, json};

/// The id given to a call read from text (the API gives real calls one).
pub const CONTENT_CALL_ID: &str = "content_call";

/// `None` when the text holds no attempt at a tool call; otherwise the
/// call as a `tool_calls` entry, or what is wrong with the attempt.
pub fn tool_call_in_content(text: &str) -> Option<Result<Value, String>> {
    let text = text.trim();
    if let Some(rest) = text.strip_prefix("functions.") {
        return Some(llama_cpp_style(rest));
    }
    let body = tagged(text).or_else(|| fenced(text)).or_else(|| {
        let bare = text.starts_with('{') || text.starts_with('[');
        bare.then_some(text)
    })?;
    Some(call_object(body))
}

/// `functions.NAME:` then, optionally, the arguments as JSON.
fn llama_cpp_style(rest: &str) -> Result<Value, String> {
    let (name, arguments) = rest.split_once(':').unwrap_or((rest, ""));
    let name = name.trim();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("`functions.{name}` does not name a tool"));
    }
    let arguments = arguments.trim();
    let arguments = if arguments.is_empty() {
        json!({})
    } else {
        first_json(arguments).ok_or_else(|| format!("the arguments of {name} are not JSON"))?
    };
    Ok(as_tool_call(name, &arguments))
}

/// The text inside the first `<tool_call>` … `</tool_call>` (the closing
/// tag may be cut off by the token limit).
fn tagged(text: &str) -> Option<&str> {
    let start = text.find("<tool_call>")? + "<tool_call>".len();
    let inner = &text[start..];
    Some(
        inner
            .find("</tool_call>")
            .map_or(inner, |end| &inner[..end]),
    )
}

/// The first fenced block (```json … ```), when the reply starts with it.
fn fenced(text: &str) -> Option<&str> {
    let rest = text.strip_prefix("```")?;
    let rest = rest.split_once('\n').map_or(rest, |(_, body)| body);
    Some(rest.find("```").map_or(rest, |end| &rest[..end]))
}

/// The first JSON value in `text`; what follows it is ignored.
fn first_json(text: &str) -> Option<Value> {
    let start = text.find(['{', '[']).unwrap_or(0);
    serde_json::Deserializer::from_str(&text[start..])
        .into_iter::<Value>()
        .next()?
        .ok()
}

/// `{"name", "arguments"}` and the variants models write: `parameters` or
/// `args` for the arguments, `tool` for the name, the whole nested in
/// `function`, and the arguments as an object or as a JSON string.
fn call_object(body: &str) -> Result<Value, String> {
    let Some(value) = first_json(body) else {
        return unfinished_call(body)
            .ok_or_else(|| "the reply looks like a tool call but is not valid JSON".to_string());
    };
    let object = match &value {
        Value::Array(calls) => calls.first().and_then(Value::as_object),
        Value::Object(object) => Some(object),
        _ => None,
    }
    .ok_or("the reply's JSON is not a tool call object")?;
    let object = object
        .get("function")
        .and_then(Value::as_object)
        .unwrap_or(object);
    let name = ["name", "tool"]
        .iter()
        .find_map(|key| object.get(*key).and_then(Value::as_str))
        .ok_or("the reply's JSON names no tool (`name`)")?;
    let arguments = ["arguments", "parameters", "args"]
        .iter()
        .find_map(|key| object.get(*key))
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()));
    let arguments = match arguments {
        Value::String(text) => serde_json::from_str(&text)
            .map_err(|e| format!("the arguments of {name} are not valid JSON ({e})"))?,
        other => other,
    };
    Ok(as_tool_call(name, &arguments))
}

/// A call whose object never closed because the model wrote on (small
/// models go on to invent the tool's response): its `name` and its
/// complete `arguments` object are still the call it meant.
fn unfinished_call(body: &str) -> Option<Value> {
    let name = value_after(body, "\"name\"")?;
    let arguments = value_after(body, "\"arguments\"")?;
    (name.is_string() && arguments.is_object())
        .then(|| as_tool_call(name.as_str().unwrap_or_default(), &arguments))
}

/// The complete JSON value after the first `key:` in `body`.
fn value_after(body: &str, key: &str) -> Option<Value> {
    let rest = &body[body.find(key)? + key.len()..];
    let value = rest.trim_start().strip_prefix(':')?.trim_start();
    serde_json::Deserializer::from_str(value)
        .into_iter::<Value>()
        .next()?
        .ok()
}

fn as_tool_call(name: &str, arguments: &Value) -> Value {
    json!({
        "id": CONTENT_CALL_ID,
        "type": "function",
        "function": {"name": name, "arguments": arguments.to_string()},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(text: &str) -> (String, Value) {
        let call = tool_call_in_content(text).expect("a call").expect("valid");
        let arguments = call["function"]["arguments"].as_str().unwrap();
        (
            call["function"]["name"].as_str().unwrap().to_string(),
            serde_json::from_str(arguments).unwrap(),
        )
    }

    #[test]
    fn every_written_form_of_a_call_reads_the_same() {
        let expected = (
            "run_command".to_string(),
            json!({"command": "rm service.lock"}),
        );
        for text in [
            r#"{"name": "run_command", "arguments": {"command": "rm service.lock"}}"#,
            "<tool_call>\n{\"name\": \"run_command\", \"arguments\": {\"command\": \"rm service.lock\"}}\n</tool_call>",
            "I will remove the lock.\n<tool_call>\n{\"name\": \"run_command\", \"arguments\": {\"command\": \"rm service.lock\"}}",
            "```json\n{\"name\": \"run_command\", \"arguments\": {\"command\": \"rm service.lock\"}}\n```",
            r#"{"name": "run_command", "arguments": "{\"command\": \"rm service.lock\"}"}"#,
            r#"{"function": {"name": "run_command", "parameters": {"command": "rm service.lock"}}}"#,
            r#"[{"tool": "run_command", "args": {"command": "rm service.lock"}}]"#,
            "functions.run_command:\n{\"command\": \"rm service.lock\"}",
            // Written on past the call, inventing the response.
            r#"{"name":"run_command","arguments":{"command":"rm service.lock"},"response": {"exit_code":0,"stdout":"#,
        ] {
            assert_eq!(call(text), expected, "{text}");
        }
        assert_eq!(call("functions.finish:"), ("finish".into(), json!({})));
    }

    #[test]
    fn prose_is_not_a_call() {
        for text in [
            "",
            "The service is healthy now.",
            "Fixed: the config had {port} wrong",
        ] {
            assert!(tool_call_in_content(text).is_none(), "{text}");
        }
    }

    #[test]
    fn a_broken_attempt_says_what_is_wrong() {
        for (text, says) in [
            (
                "{\"name\": \"run_command\", \"arguments\": {\"command\": ",
                "not valid JSON",
            ),
            ("{\"command\": \"ls\"}", "names no tool"),
            ("<tool_call>\n42\n</tool_call>", "not a tool call object"),
            (r#"{"name": "x", "arguments": "{oops"}"#, "arguments of x"),
            ("functions.run command:", "does not name a tool"),
            ("functions.run_command: {oops", "not JSON"),
        ] {
            let problem = tool_call_in_content(text).expect("an attempt").unwrap_err();
            assert!(problem.contains(says), "{text}: {problem}");
        }
    }
}
