//! curl and wget: Low only for a GET to the incident service's own port on
//! loopback, writing nowhere but standard output or /dev/null. A proxy, a
//! resolver override, a socket, a config file, another host, port or
//! scheme is High; sending data to the service is Medium.

use super::super::SecurityRisk::{High, Low, Medium};
use super::super::context::{Access, Assessment, Ctx};
use super::super::expand::{Field, UNSEEN};
use super::super::flags::{self, Parsed, Spec};
use super::unknown_option;

const CURL: Spec = Spec::new(
    "sSfiIvLkN46GgqjOo:w:m:H:A:X:e:u:r:b:c:D:d:F:T:C:y:Y:",
    "silent show-error fail fail-with-body include head verbose location insecure compressed \
     ipv4 ipv6 no-buffer http1.0 http1.1 http2 get globoff disable progress-bar \
     no-progress-meter raw tr-encoding no-keepalive fail-early path-as-is junk-session-cookies \
     tcp-nodelay no-sessionid remote-name output= write-out= max-time= connect-timeout= header= \
     user-agent= request= referer= user= retry= retry-delay= retry-max-time= max-filesize= \
     range= cookie= cookie-jar= dump-header= stderr= trace= trace-ascii= url= limit-rate= \
     speed-limit= speed-time= keepalive-time= max-redirs= continue-at= noproxy= \
     data= data-raw= data-binary= data-urlencode= data-ascii= json= form= form-string= \
     upload-file= \
     proxy= preproxy= socks4= socks4a= socks5= socks5-hostname= proxy-user= proxytunnel \
     resolve= connect-to= unix-socket= abstract-unix-socket= config= doh-url= dns-servers= \
     interface= variable= next netrc netrc-optional netrc-file=",
);

/// Options that send the request somewhere other than where the URL says,
/// or read options from elsewhere.
const CURL_REDIRECTING: &[&str] = &[
    "x",
    "K",
    "n",
    "proxy",
    "preproxy",
    "socks4",
    "socks4a",
    "socks5",
    "socks5-hostname",
    "proxy-user",
    "proxytunnel",
    "resolve",
    "connect-to",
    "unix-socket",
    "abstract-unix-socket",
    "config",
    "doh-url",
    "dns-servers",
    "interface",
    "variable",
    "next",
    "netrc",
    "netrc-optional",
    "netrc-file",
];

const CURL_DATA: &[&str] = &[
    "d",
    "F",
    "data",
    "data-raw",
    "data-binary",
    "data-urlencode",
    "data-ascii",
    "json",
    "form",
    "form-string",
];

pub(super) fn curl(ctx: &Ctx, args: &[Field]) -> Assessment {
    // `-x` and `-K` are not in the short table on purpose: say why.
    if let Some(a) = args.iter().find(|a| {
        a.text.starts_with('-') && !a.text.starts_with("--") && a.text.contains(['x', 'K', 'n'])
    }) && flags::parse(&CURL, std::slice::from_ref(a)).is_err()
    {
        return Assessment::new(High, "curl with a proxy, a config file or .netrc");
    }
    let parsed = match flags::parse(&CURL, args) {
        Ok(p) => p,
        Err(option) => return unknown_option("curl", &option),
    };
    if let Some(opt) = parsed
        .opts
        .iter()
        .find(|o| CURL_REDIRECTING.contains(&o.name.as_str()))
    {
        return Assessment::new(
            High,
            format!(
                "curl --{} sends the request elsewhere or reads options",
                opt.name
            ),
        );
    }
    let urls: Vec<&Field> = parsed
        .operands
        .iter()
        .chain(parsed.values(&["url"]))
        .collect();
    let mut worst = urls_risk(ctx, "curl", &urls);
    if worst.risk > Low {
        return worst;
    }
    for format in parsed.values(&["w", "write-out"]) {
        if format.text.contains("%output{") || !format.is_exact() {
            return Assessment::new(High, "curl --write-out writes a file");
        }
        if let Some(file) = format.text.strip_prefix('@') {
            worst = worst.max(ctx.read(&format.with_text(file), Access::Content));
        }
    }
    for out in parsed.values(&[
        "o",
        "output",
        "c",
        "cookie-jar",
        "D",
        "dump-header",
        "stderr",
        "trace",
        "trace-ascii",
    ]) {
        if out.text != "-" {
            worst = worst.max(ctx.write(out));
        }
    }
    if parsed.has(&["O", "remote-name"]) {
        for url in &urls {
            let name = url_path(&url.text).rsplit('/').next().unwrap_or_default();
            worst = worst.max(ctx.write(&url.with_text(if name.is_empty() { "." } else { name })));
        }
    }
    for header in parsed.values(&["H", "header"]) {
        if let Some(file) = header.text.strip_prefix('@') {
            worst = worst.max(ctx.read(&header.with_text(file), Access::Content));
        }
    }
    for jar in parsed
        .values(&["b", "cookie"])
        .filter(|c| !c.text.contains('='))
    {
        worst = worst.max(ctx.read(jar, Access::Content));
    }
    worst.max(uploads(ctx, &parsed))
}

/// Data for the service changes its state (Medium); data from a file reads it.
fn uploads(ctx: &Ctx, parsed: &Parsed) -> Assessment {
    let mut worst = Assessment::new(Low, "curl reads from the service");
    let method = parsed.values(&["X", "request"]).last();
    if method.is_some_and(|m| {
        !m.text.eq_ignore_ascii_case("GET") && !m.text.eq_ignore_ascii_case("HEAD")
    }) {
        worst = Assessment::new(Medium, "curl changes state on the service");
    }
    for data in parsed.values(CURL_DATA) {
        worst = worst.max(Assessment::new(Medium, "curl sends data to the service"));
        let text = data.text.as_str();
        let file = text
            .split_once(['@', '<'])
            .map(|(_, f)| f)
            .filter(|f| !f.is_empty() && *f != "-");
        if let Some(file) = file {
            let file = file.split(';').next().unwrap_or(file);
            worst = worst.max(ctx.read(&data.with_text(file), Access::Content));
        }
    }
    for file in parsed.values(&["T", "upload-file"]) {
        worst = worst.max(Assessment::new(Medium, "curl uploads to the service"));
        if file.text != "-" {
            worst = worst.max(ctx.read(file, Access::Content));
        }
    }
    worst
}

const WGET: Spec = Spec::new(
    "qvSc46NO:o:a:P:T:t:U:",
    "quiet verbose no-verbose server-response spider timeout= tries= header= user-agent= \
     no-check-certificate max-redirect= connect-timeout= read-timeout= dns-timeout= \
     retry-connrefused waitretry= content-on-error no-cache no-cookies inet4-only inet6-only \
     continue timestamping no-clobber output-document= output-file= append-output= \
     directory-prefix= no-config",
);

pub(super) fn wget(ctx: &Ctx, args: &[Field]) -> Assessment {
    // wget spells --no-verbose and --no-clobber `-nv` and `-nc`.
    let args: Vec<Field> = args
        .iter()
        .map(|a| match a.text.as_str() {
            "-nv" => a.with_text("--no-verbose"),
            "-nc" => a.with_text("--no-clobber"),
            "-nd" => a.with_text("--no-directories"),
            _ => a.clone(),
        })
        .collect();
    if args.iter().any(|a| {
        let t = a.text.as_str();
        t == "-e"
            || t.starts_with("--execute")
            || t.starts_with("--config")
            || t == "-i"
            || t.starts_with("--input-file")
            || t.starts_with("-Y")
            || t.contains("proxy")
    }) {
        return Assessment::new(
            High,
            "wget runs wgetrc commands, reads URLs or uses a proxy",
        );
    }
    let parsed = match flags::parse(&WGET, &args) {
        Ok(p) => p,
        Err(option) => return unknown_option("wget", &option),
    };
    let urls: Vec<&Field> = parsed.operands.iter().collect();
    let mut worst = urls_risk(ctx, "wget", &urls);
    if worst.risk > Low {
        return worst;
    }
    for log in parsed.values(&["o", "output-file", "a", "append-output"]) {
        worst = worst.max(ctx.write(log));
    }
    let document = parsed.values(&["O", "output-document"]).last();
    match document {
        Some(doc) if doc.text == "-" => {}
        Some(doc) => worst = worst.max(ctx.write(doc)),
        None if parsed.has(&["spider"]) => {}
        None => {
            let dir = parsed
                .values(&["P", "directory-prefix"])
                .last()
                .map_or(String::new(), |d| {
                    format!("{}/", d.text.trim_end_matches('/'))
                });
            for url in &urls {
                let name = url_path(&url.text).rsplit('/').next().unwrap_or_default();
                let name = if name.is_empty() { "index.html" } else { name };
                worst = worst.max(ctx.write(&url.with_text(&format!("{dir}{name}"))));
            }
        }
    }
    worst
}

fn urls_risk(ctx: &Ctx, name: &str, urls: &[&Field]) -> Assessment {
    if urls.is_empty() {
        return Assessment::new(High, format!("{name} without a URL it can see"));
    }
    for url in urls {
        if !url.is_exact() || !is_service_url(&url.text, ctx.port) {
            let shown = url.text.replace(UNSEEN, "…");
            return Assessment::new(
                High,
                format!(
                    "{name} reaches {shown}: only the service's port {} on loopback is allowed",
                    ctx.port
                ),
            );
        }
    }
    Assessment::new(Low, format!("{name} reads from the service"))
}

/// `[http[s]://]HOST:PORT[/...]` with HOST loopback and PORT the service's.
pub(super) fn is_service_url(url: &str, port: u16) -> bool {
    if url
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
    {
        return false;
    }
    let rest = match url.split_once("://") {
        Some((scheme, rest)) if scheme == "http" || scheme == "https" => rest,
        Some(_) => return false,
        None => url,
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let (host, port_text) = if let Some(v6) = authority.strip_prefix("[::1]") {
        ("::1", v6.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let loopback = host == "::1" || host == "127.0.0.1" || host.eq_ignore_ascii_case("localhost");
    let port_ok = port_text.is_some_and(|p| {
        !p.is_empty()
            && p.chars().all(|c| c.is_ascii_digit())
            && p.parse::<u32>() == Ok(u32::from(port))
    });
    loopback && port_ok
}

fn url_path(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    path.split(['?', '#']).next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::is_service_url;

    #[test]
    fn only_the_service_port_on_loopback() {
        for ok in [
            "http://127.0.0.1:8080/health",
            "127.0.0.1:8080",
            "https://localhost:8080/x?y=1#z",
            "http://[::1]:8080/",
            "http://LOCALHOST:8080",
        ] {
            assert!(is_service_url(ok, 8080), "{ok}");
        }
        for bad in [
            "http://127.0.0.1/health",
            "http://127.0.0.1:22/",
            "http://127.0.0.1:8080@evil.example/",
            "http://evil.example#@127.0.0.1:8080",
            "http://127.0.0.1:8080.evil.example/",
            "file:///etc/shadow",
            "gopher://127.0.0.1:8080/",
            "http://{127.0.0.1:8080,evil.example}/",
            "http://127.1:8080/",
            "http://0.0.0.0:8080/",
            "http://[::1]:22/",
            "http://example.com:8080/",
        ] {
            assert!(!is_service_url(bad, 8080), "{bad}");
        }
    }
}
