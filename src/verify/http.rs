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

/// `GET path` at `addr`: the status and the body's first `cap` bytes
/// (chunked or not, cut at a character boundary); the rest is not read. A
/// body that breaks off keeps what came and the status.
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
    let mut raw = Vec::new();
    while raw.len() < cap {
        match response.chunk().await {
            Ok(Some(chunk)) => raw.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    raw.truncate(cap);
    Ok(HttpAnswer {
        status,
        body: text_of(raw),
    })
}

/// The bytes as text, without a character the cap cut in two.
fn text_of(mut raw: Vec<u8>) -> String {
    if let Err(e) = std::str::from_utf8(&raw)
        && e.error_len().is_none()
    {
        raw.truncate(e.valid_up_to());
    }
    String::from_utf8_lossy(&raw).into_owned()
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
    fn a_cut_character_is_dropped_and_bad_bytes_are_replaced() {
        assert_eq!(text_of("héllo".as_bytes()[..2].to_vec()), "h");
        assert_eq!(text_of(b"ok\xffok".to_vec()), "ok\u{fffd}ok");
        assert_eq!(text_of(b"plain".to_vec()), "plain");
    }

    #[test]
    fn only_plain_paths_are_requested() {
        assert!(is_request_path("/health"));
        assert!(is_request_path("/a?b=c"));
        for bad in ["health", "//evil/x", "/a b", "/a\r\nHost: x", "http://x/"] {
            assert!(!is_request_path(bad), "{bad}");
        }
    }
}
