//! A minimal HTTP/1.1 GET, enough for health probes and the agent's
//! `http_get`: one request, `Connection: close`, a capped body.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    pub status: u16,
    pub body: String,
}

/// Whether `path` is a plain request path: no scheme, host, spaces or
/// control characters that would let it rewrite the request.
pub fn is_request_path(path: &str) -> bool {
    path.starts_with('/')
        && path.len() <= 2048
        && !path.starts_with("//")
        && path.chars().all(|c| c.is_ascii_graphic())
}

pub async fn http_get(addr: SocketAddr, path: &str, cap: usize) -> std::io::Result<HttpAnswer> {
    if !is_request_path(path) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("`{path}` is not a request path (it must start with `/`, without spaces)"),
        ));
    }
    let mut stream = TcpStream::connect(addr).await?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: remediator\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    stream
        .take((cap + 4096) as u64)
        .read_to_end(&mut raw)
        .await?;
    let response = String::from_utf8_lossy(&raw);
    let status = response
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other("response has no HTTP status line"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.chars().take(cap).collect())
        .unwrap_or_default();
    Ok(HttpAnswer { status, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_paths_are_requested() {
        assert!(is_request_path("/health"));
        assert!(is_request_path("/a?b=c"));
        for bad in ["health", "//evil/x", "/a b", "/a\r\nHost: x", "http://x/"] {
            assert!(!is_request_path(bad), "{bad}");
        }
    }
}
