//! The HTTP GET of health probes and of the agent's `http_get`: one
//! request on the HTTP client the rest of the tree uses, a capped body.

use std::net::SocketAddr;

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

/// One client for every probe and `http_get`: no proxy (the service is
/// local), no redirects (a service must not send the probe elsewhere), no
/// kept connections (a restarted service gets a fresh one).
fn client() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(0)
            .user_agent("remediator")
            .build()
            .expect("an HTTP client without TLS builds")
    })
}

/// `GET path` at `addr`: the status and at most `cap` characters of the
/// body (chunked or not); the rest is not read.
pub async fn http_get(addr: SocketAddr, path: &str, cap: usize) -> std::io::Result<HttpAnswer> {
    if !is_request_path(path) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("`{path}` is not a request path (it must start with `/`, without spaces)"),
        ));
    }
    let mut response = client()
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .map_err(io_error)?;
    let status = response.status().as_u16();
    // A character is at most 4 bytes: this many bytes hold `cap` of them.
    let byte_cap = cap.saturating_mul(4);
    let mut raw = Vec::new();
    while raw.len() < byte_cap {
        match response.chunk().await.map_err(io_error)? {
            Some(chunk) => raw.extend_from_slice(&chunk),
            None => break,
        }
    }
    raw.truncate(byte_cap);
    let body = String::from_utf8_lossy(&raw).chars().take(cap).collect();
    Ok(HttpAnswer { status, body })
}

fn io_error(error: reqwest::Error) -> std::io::Error {
    let kind = if error.is_connect() {
        std::io::ErrorKind::ConnectionRefused
    } else if error.is_timeout() {
        std::io::ErrorKind::TimedOut
    } else {
        std::io::ErrorKind::Other
    };
    // reqwest's own message hides the cause ("error sending request").
    let mut message = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message = format!("{message}: {cause}");
        source = cause.source();
    }
    std::io::Error::new(kind, message)
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
