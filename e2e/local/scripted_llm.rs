//! A scripted OpenAI-compatible server on loopback: real HTTP, replies
//! from a script, every request body kept for assertions.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub enum Reply {
    ToolCall {
        name: &'static str,
        arguments: String,
    },
    Text(&'static str),
    Status(u16, Value),
    /// Answers only after the delay (a slow model).
    Slow(Duration, Box<Reply>),
    /// Decides from the request it answers (a model that uses what it saw).
    Dynamic(Box<dyn Fn(&Value) -> Reply + Send>),
}

pub fn call(name: &'static str, arguments: Value) -> Reply {
    Reply::ToolCall {
        name,
        arguments: arguments.to_string(),
    }
}

pub struct ScriptedLlm {
    pub base_url: String,
    requests: Arc<Mutex<Vec<Value>>>,
}

impl ScriptedLlm {
    pub async fn start(script: Vec<Reply>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let seen = Arc::clone(&requests);
        tokio::spawn(async move {
            let mut served = 0u32;
            while let Ok((mut stream, _)) = listener.accept().await {
                let Some(body) = read_request(&mut stream).await else {
                    continue;
                };
                seen.lock().unwrap().push(body.clone());
                served += 1;
                let reply = match script.lock().unwrap().pop_front() {
                    Some(Reply::Dynamic(decide)) => Some(decide(&body)),
                    other => other,
                };
                let script_done =
                    json!({"error": {"message": "script exhausted", "type": "server_error"}});
                let reply = reply.unwrap_or(Reply::Status(500, script_done));
                let id = served;
                tokio::spawn(async move {
                    let (status, body) = render(reply, id).await;
                    let response = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                });
            }
        });
        Self { base_url, requests }
    }

    pub fn requests(&self) -> Vec<Value> {
        self.requests.lock().unwrap().clone()
    }
}

async fn render(reply: Reply, id: u32) -> (u16, String) {
    let mut reply = reply;
    while let Reply::Slow(delay, inner) = reply {
        tokio::time::sleep(delay).await;
        reply = *inner;
    }
    let message = match reply {
        Reply::Status(status, body) => return (status, body.to_string()),
        Reply::Text(text) => json!({"role": "assistant", "content": text}),
        Reply::ToolCall { name, arguments } => json!({
            "role": "assistant",
            "content": null,
            "tool_calls": [{"id": format!("call_{id}"), "type": "function",
                            "function": {"name": name, "arguments": arguments}}]
        }),
        Reply::Slow(..) | Reply::Dynamic(_) => unreachable!("resolved before rendering"),
    };
    let body = json!({
        "id": format!("chatcmpl-{id}"),
        "object": "chat.completion",
        "created": 0,
        "model": "scripted",
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}
    });
    (200, body.to_string())
}

async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<Value> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    serde_json::from_slice(&buf[head_end..head_end + length]).ok()
}
