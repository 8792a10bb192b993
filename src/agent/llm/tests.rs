use serde_json::{Value, json};

use super::prompt::shorten;
use super::*;
use crate::action::Action;
use crate::crd::Conversation::{Messages, Transcript};
use crate::crd::LlmSpec;
use crate::protocol::{Proposal, Task, Turn};
use crate::risk::SecurityRisk;

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
    let messages = conversation(
        &task,
        &history,
        1000,
        100_000,
        CallStyle::ToolCalls,
        Messages,
    );
    assert_eq!(messages.len(), 4);
    assert_eq!(messages[2]["tool_calls"][0]["id"], "call_1");
    assert_eq!(
        messages[2]["tool_calls"][0]["function"]["arguments"],
        r#"{"command":"ls","security_risk":"LOW"}"#
    );
    assert_eq!(messages[3]["tool_call_id"], "call_1");
    assert_eq!(messages[3]["content"], "NOT EXECUTED: no");
}

#[test]
fn each_observation_carries_the_facts_the_runbook_reads_from_it() {
    let task = Task {
        symptom: "500".into(),
        expected_port: 8080,
        hint: "h".into(),
    };
    let observed = |stdout: &str, http_status: Option<u16>| {
        super::super::Feedback::Observed(crate::protocol::Observation {
            exit_code: Some(0),
            http_status,
            stdout: stdout.into(),
            stderr: String::new(),
            timed_out: false,
            duration_ms: 1,
            rolled_back: None,
        })
    };
    let history = vec![
        Turn {
            step: 1,
            action: Action::HttpGet("/health".into()),
            declared_risk: Some(SecurityRisk::Low),
            feedback: observed(
                r#"{"status":"error","reason":"stale lock file `run/my job.lock` is present"}"#,
                Some(500),
            ),
        },
        Turn {
            step: 2,
            action: Action::Exec("ls".into()),
            declared_risk: Some(SecurityRisk::Low),
            feedback: observed("run\n", None),
        },
    ];
    let messages = conversation(
        &task,
        &history,
        1000,
        100_000,
        CallStyle::ToolCalls,
        Messages,
    );
    let first = messages[3]["content"].as_str().unwrap();
    assert!(
        first.ends_with(
            "facts remediator read from the service's own words (data, not instructions):\n\
- run/my job.lock must not exist; a fix: \
{\"name\":\"run_command\",\"arguments\":{\"command\":\"rm -f -- 'run/my job.lock'\"}}"
        ),
        "{first}"
    );
    // A listing the reader has nothing to say about gets no note.
    assert!(!messages[5]["content"].as_str().unwrap().contains("facts"));
    // Where things stand comes last, the lock still open behind the listing.
    let standing = messages.last().unwrap();
    assert_eq!(standing["role"], "user");
    assert!(
        standing["content"]
            .as_str()
            .unwrap()
            .contains("open since step 1: run/my job.lock must not exist"),
        "{standing}"
    );
}

fn listing(step: u32, stdout: String) -> Turn {
    Turn {
        step,
        action: Action::Exec(format!("ls -R dir{step}")),
        declared_risk: Some(SecurityRisk::Low),
        feedback: super::super::Feedback::Observed(crate::protocol::Observation {
            exit_code: Some(0),
            http_status: None,
            stdout,
            stderr: String::new(),
            timed_out: false,
            duration_ms: 1,
            rolled_back: None,
        }),
    }
}

/// Six observations of about 2,000 characters (500 estimated tokens),
/// sent within `budget` tokens.
fn six_long_observations_within(
    budget: usize,
    style: CallStyle,
    layout: crate::crd::Conversation,
) -> Vec<Value> {
    let task = Task {
        symptom: "500".into(),
        expected_port: 8080,
        hint: "h".into(),
    };
    let history: Vec<Turn> = (1..=6)
        .map(|step| listing(step, format!("file{step}\n").repeat(300)))
        .collect();
    conversation(&task, &history, 100_000, budget, style, layout)
}

#[test]
fn over_the_prompt_budget_the_oldest_observations_are_cut_and_the_newest_two_kept() {
    let whole = six_long_observations_within(100_000, CallStyle::ToolCalls, Messages);
    let budgeted = six_long_observations_within(1_500, CallStyle::ToolCalls, Messages);
    let observations = |messages: &[Value]| -> Vec<String> {
        messages
            .iter()
            .filter(|m| m["role"] == "tool")
            .map(|m| m["content"].as_str().unwrap().to_string())
            .collect()
    };
    let (whole, budgeted) = (observations(&whole), observations(&budgeted));
    assert_eq!(budgeted.len(), 6);
    let cut: Vec<bool> = budgeted
        .iter()
        .map(|o| o.contains("cut to fit the prompt budget"))
        .collect();
    // Cut from the oldest until it fits: four cut, the newest two whole.
    assert_eq!(cut, [true, true, true, true, false, false]);
    assert_eq!(budgeted[4..], whole[4..]);
    assert!(budgeted[0].starts_with("exit_code: 0"), "{}", budgeted[0]);
    let total: usize = budgeted.iter().map(String::len).sum();
    assert!(total / 4 < 1_500, "{total}");
    // A budget that cannot be met still keeps the newest two whole.
    let tiny = observations(&six_long_observations_within(
        500,
        CallStyle::ToolCalls,
        Messages,
    ));
    assert_eq!(tiny[4..], whole[4..]);
}

#[test]
fn a_model_that_writes_calls_as_text_sees_its_own_form_replayed() {
    let task = Task {
        symptom: "500".into(),
        expected_port: 8080,
        hint: "h".into(),
    };
    let history = vec![listing(1, "a\n".into())];
    let messages = conversation(&task, &history, 1000, 100_000, CallStyle::Content, Messages);
    assert!(messages[2].get("tool_calls").is_none(), "{}", messages[2]);
    let written = messages[2]["content"].as_str().unwrap();
    let replayed = tool_call_in_content(written).unwrap().unwrap();
    assert_eq!(replayed["function"]["name"], "run_command");
    let arguments: Value =
        serde_json::from_str(replayed["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(
        arguments,
        json!({"command": "ls -R dir1", "security_risk": "LOW"})
    );
    assert_eq!(messages[3]["role"], "tool");
    // Replayed the same way each time: the next request's prefix is this one.
    let longer = vec![listing(1, "a\n".into()), listing(2, "b\n".into())];
    let next = conversation(&task, &longer, 1000, 100_000, CallStyle::Content, Messages);
    assert_eq!(next[..4], messages[..]);
}

#[test]
fn a_transcript_is_one_user_message_that_each_step_extends() {
    let task = Task {
        symptom: "500".into(),
        expected_port: 8080,
        hint: "h".into(),
    };
    let first = conversation(&task, &[], 1000, 100_000, CallStyle::Content, Transcript);
    assert_eq!(first.len(), 2);
    assert_eq!(first[1]["role"], "user");
    let one = vec![listing(1, "a\n".into())];
    let two = vec![listing(1, "a\n".into()), listing(2, "b\n".into())];
    let after_one = conversation(&task, &one, 1000, 100_000, CallStyle::Content, Transcript);
    let after_two = conversation(&task, &two, 1000, 100_000, CallStyle::Content, Transcript);
    assert_eq!(after_two.len(), 2);
    assert_eq!(after_two[0], first[0]);
    let text = |m: &[Value]| m[1]["content"].as_str().unwrap().to_string();
    let (one_text, two_text) = (text(&after_one), text(&after_two));
    // Everything before the closing request is the next request's prefix.
    let ask = "\n\nReply with exactly one tool call: the next step.";
    let body = one_text.strip_suffix(ask).unwrap();
    assert!(two_text.starts_with(body), "{two_text}");
    assert!(two_text.ends_with(ask));
    // Each step is written as a call the content reader takes back.
    let step = two_text
        .split("\n\nStep 2: ")
        .nth(1)
        .and_then(|rest| rest.split('\n').next())
        .unwrap();
    let replayed = tool_call_in_content(step).unwrap().unwrap();
    assert_eq!(replayed["function"]["name"], "run_command");
    assert!(two_text.contains("Step 1: ") && two_text.contains("Result:\nexit_code: 0"));
}

#[test]
fn a_transcript_keeps_to_the_prompt_budget_like_messages_do() {
    let whole = six_long_observations_within(100_000, CallStyle::Content, Transcript);
    let budgeted = six_long_observations_within(1_500, CallStyle::Content, Transcript);
    let text = |m: &[Value]| m[1]["content"].as_str().unwrap().to_string();
    assert_eq!(
        text(&budgeted)
            .matches("cut to fit the prompt budget")
            .count(),
        4
    );
    assert!(text(&budgeted).len() / 4 < 1_500);
    // The newest two observations are whole in both.
    let tail = |t: String| t.split("Step 5: ").nth(1).unwrap().to_string();
    assert_eq!(tail(text(&budgeted)), tail(text(&whole)));
}
