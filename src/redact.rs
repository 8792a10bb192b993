//! Secrets never reach a brain. Every observation passes a [`Redactor`]
//! first: the values of variables and keys whose names mark them secret,
//! known token shapes, and the operator's own secrets become per-incident
//! handles (`<secret:TAG:N>`). A brain may use a handle in an action; only
//! the executor turns it back into the value, inside the sandbox. A handle
//! of another incident (another tag) is refused, never guessed.

use std::sync::{LazyLock, Mutex};

use regex::Regex;

/// Values shorter than this are redacted where they are assigned, but not
/// replaced everywhere else (`KEY=1` must not turn every `1` into a handle).
const MIN_GLOBAL_LEN: usize = 8;

/// Names that mark a value secret (case-insensitive substrings).
const SECRET_NAME_PARTS: &str =
    "key|token|secret|passw(?:or)?d|passwd|credential|auth|private|cookie|session";

static ASSIGNMENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r#"(?i)\b([A-Za-z0-9_.\-]*(?:{SECRET_NAME_PARTS})[A-Za-z0-9_.\-]*)["']?[ \t]*([:=])[ \t]*["']?([^\s"',;\x00]+)"#
    ))
    .expect("static pattern")
});

/// Well-known token shapes, wherever they appear.
static TOKEN_SHAPES: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    [
        r"\bAKIA[0-9A-Z]{16}\b",
        r"\bgh[pousr]_[A-Za-z0-9]{30,}\b",
        r"\bsk-[A-Za-z0-9_\-]{16,}",
        r"\bxox[abprs]-[A-Za-z0-9\-]{10,}",
        r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
        r"(?i)\bbearer\s+([A-Za-z0-9._~+/=\-]{16,})",
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
    ]
    .iter()
    .map(|p| Regex::new(p).expect("static pattern"))
    .collect()
});

/// How tools report a failed system call: `<path>: <strerror>`. A file
/// named like a secret (`/run/secrets/token: Permission denied`) is not an
/// assignment, and the message must reach the brain: it is often the
/// diagnosis.
const ERROR_MESSAGES: [&str; 22] = [
    "Permission denied",
    "No such file or directory",
    "Not a directory",
    "Is a directory",
    "Operation not permitted",
    "Read-only file system",
    "File exists",
    "Directory not empty",
    "Connection refused",
    "Connection reset by peer",
    "Device or resource busy",
    "Resource temporarily unavailable",
    "Invalid argument",
    "No space left on device",
    "Too many open files",
    "Text file busy",
    "Bad file descriptor",
    "Input/output error",
    "No such process",
    "cannot open",
    "cannot access",
    "command not found",
];

/// `rest` (what follows a `name:`) is a tool's error message, as libc
/// prints it or in lower case as Go and others do.
fn is_error_message(rest: &str) -> bool {
    ERROR_MESSAGES.iter().any(|m| {
        rest.get(..m.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(m))
    })
}

/// An ASSIGNMENT match that really assigns (not `<file>: <error>`).
fn assigns(caps: &regex::Captures<'_>, text: &str) -> bool {
    let value = caps.get(3).expect("value");
    !(&caps[2] == ":" && is_error_message(&text[value.start()..]))
}

static HANDLE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"<secret:([0-9a-f]{4}):(\d+)>").expect("static pattern"));

/// The secret values one incident has seen, and the handles that stand
/// for them.
#[derive(Debug)]
pub struct Redactor {
    tag: String,
    values: Mutex<Vec<String>>,
    /// Extra name patterns (from the Policy), as regexes.
    extra_names: Vec<Regex>,
}

impl Redactor {
    /// `operator_secrets`: values the operator holds (its LLM key, mounted
    /// Secrets); `extra_names`: name globs (`*_DSN`) the Policy adds.
    pub fn new(operator_secrets: &[String], extra_names: &[String]) -> Self {
        let redactor = Self {
            tag: format!("{:04x}", rand_tag()),
            values: Mutex::new(Vec::new()),
            extra_names: extra_names.iter().filter_map(|g| glob_regex(g)).collect(),
        };
        for secret in operator_secrets {
            redactor.register(secret);
        }
        redactor
    }

    /// The tag and the values behind its handles, to persist (the values
    /// are secrets: keep them where only the executor reads).
    pub fn export(&self) -> (String, Vec<String>) {
        (self.tag.clone(), self.values().clone())
    }

    /// A redactor that continues an exported one: its handles stay valid.
    pub fn import(tag: String, values: Vec<String>, extra_names: &[String]) -> Self {
        Self {
            tag,
            values: Mutex::new(values),
            extra_names: extra_names.iter().filter_map(|g| glob_regex(g)).collect(),
        }
    }

    fn values(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.values.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The handle for `value`, registering it if new.
    fn register(&self, value: &str) -> String {
        let mut values = self.values();
        let index = match values.iter().position(|v| v == value) {
            Some(index) => index,
            None => {
                values.push(value.to_string());
                values.len() - 1
            }
        };
        format!("<secret:{}:{}>", self.tag, index + 1)
    }

    fn is_secret_name(&self, name: &str) -> bool {
        self.extra_names.iter().any(|r| r.is_match(name))
    }

    /// `text` with every secret value replaced by its handle.
    pub fn redact(&self, text: &str) -> String {
        // Learn every secret the text assigns or shows...
        for caps in ASSIGNMENT.captures_iter(text) {
            let value = &caps[3];
            if value.len() >= MIN_GLOBAL_LEN && !HANDLE.is_match(value) && assigns(&caps, text) {
                self.register(value);
            }
        }
        for line in text.split(['\n', '\0']) {
            if let Some((name, value)) = line.split_once(['=', ':']) {
                let value = value.trim().trim_matches(['"', '\'']);
                if self.is_secret_name(name.trim()) && !value.is_empty() && !is_error_message(value)
                {
                    self.register(value);
                }
            }
        }
        for shape in TOKEN_SHAPES.iter() {
            for caps in shape.captures_iter(text) {
                let found = caps.get(1).unwrap_or_else(|| caps.get(0).expect("a match"));
                self.register(found.as_str());
            }
        }
        // ...hide assigned values in place, whatever their length...
        let assigned = ASSIGNMENT.replace_all(text, |caps: &regex::Captures<'_>| {
            let (whole, value) = (caps.get(0).expect("match"), caps.get(3).expect("value"));
            if HANDLE.is_match(value.as_str()) || !assigns(caps, text) {
                return whole.as_str().to_string();
            }
            let handle = self.register(value.as_str());
            let (start, end) = (value.start() - whole.start(), value.end() - whole.start());
            format!(
                "{}{handle}{}",
                &whole.as_str()[..start],
                &whole.as_str()[end..]
            )
        });
        // ...then every known value everywhere else, longest first, never
        // inside a handle.
        let mut known: Vec<(usize, String)> = self
            .values()
            .iter()
            .cloned()
            .enumerate()
            .filter(|(_, v)| v.len() >= MIN_GLOBAL_LEN)
            .collect();
        known.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
        let mut out = String::with_capacity(assigned.len());
        let mut rest = assigned.as_ref();
        while !rest.is_empty() {
            let (plain, handle, after) = match HANDLE.find(rest) {
                Some(m) => (&rest[..m.start()], m.as_str(), &rest[m.end()..]),
                None => (rest, "", ""),
            };
            let mut plain = plain.to_string();
            for (index, value) in &known {
                plain = plain.replace(
                    value.as_str(),
                    &format!("<secret:{}:{}>", self.tag, index + 1),
                );
            }
            out.push_str(&plain);
            out.push_str(handle);
            rest = after;
        }
        out
    }

    /// `text` with this incident's handles turned back into their values;
    /// a handle of another incident or an unknown one is an error.
    pub fn reveal(&self, text: &str) -> Result<String, String> {
        let values = self.values();
        let mut problem = None;
        let out = HANDLE.replace_all(text, |caps: &regex::Captures<'_>| {
            let index: usize = caps[2].parse().unwrap_or(0);
            match values.get(index.wrapping_sub(1)) {
                Some(value) if caps[1] == self.tag => value.clone(),
                _ => {
                    problem = Some(format!("{} is not a secret of this incident", &caps[0]));
                    caps[0].to_string()
                }
            }
        });
        match problem {
            Some(problem) => Err(problem),
            None => Ok(out.into_owned()),
        }
    }

    /// Like [`reveal`](Self::reveal), for a shell command: a value is
    /// spliced in only if it holds no character a shell would interpret,
    /// so a secret can never rewrite the command the gate judged.
    pub fn reveal_in_command(&self, command: &str) -> Result<String, String> {
        let revealed = self.reveal(command)?;
        let values = self.values();
        for caps in HANDLE.captures_iter(command) {
            let index: usize = caps[2].parse().unwrap_or(0);
            if let Some(value) = values.get(index.wrapping_sub(1))
                && !value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._~+/=:@%-".contains(c))
            {
                return Err(format!(
                    "{} holds characters a shell would interpret; use write_file to place it",
                    &caps[0]
                ));
            }
        }
        Ok(revealed)
    }
}

/// `*_DSN`-style globs, case-insensitive, matching a whole name.
fn glob_regex(glob: &str) -> Option<Regex> {
    let pattern = regex::escape(glob).replace(r"\*", ".*").replace(r"\?", ".");
    Regex::new(&format!("(?i)^{pattern}$")).ok()
}

/// A tag that differs between incidents (not a secret itself).
fn rand_tag() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    hasher.finish() as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_named_values_become_handles_everywhere() {
        let r = Redactor::new(&[], &[]);
        let env = "REQUIRED_API_KEY=local-dev-key\nLOG_FORMAT=text\n";
        let shown = r.redact(env);
        assert!(!shown.contains("local-dev-key"), "{shown}");
        assert!(shown.contains("LOG_FORMAT=text"), "{shown}");
        // The same value elsewhere, later, is the same handle.
        let later = r.redact("connecting with local-dev-key");
        assert!(!later.contains("local-dev-key"));
        let handle = HANDLE.find(&shown).unwrap().as_str().to_string();
        assert!(later.contains(&handle), "{later}");
        assert_eq!(
            r.reveal(&format!("REQUIRED_API_KEY={handle}")).unwrap(),
            "REQUIRED_API_KEY=local-dev-key"
        );
    }

    #[test]
    fn shapes_json_environ_and_operator_secrets_are_caught() {
        let operator = "sk-live-0123456789abcdefghij".to_string();
        let r = Redactor::new(std::slice::from_ref(&operator), &["*_DSN".into()]);
        for text in [
            format!("key in use: {operator}"),
            "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE".into(),
            r#"{"password": "hunter2hunter2", "user": "bob"}"#.into(),
            "PATH=/bin\0AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG\0HOME=/".into(),
            "Authorization: Bearer abcdefghijklmnop.qrstuvwx".into(),
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----".into(),
            "APP_DSN=postgres://u:pw@db/app".into(),
            "token: ghp_abcdefghijklmnopqrstuvwxyz0123456789".into(),
        ] {
            let shown = r.redact(&text);
            for secret in [
                operator.as_str(),
                "AKIAIOSFODNN7EXAMPLE",
                "hunter2hunter2",
                "wJalrXUtnFEMI/K7MDENG",
                "abcdefghijklmnop.qrstuvwx",
                "MIIEow",
                "postgres://u:pw@db/app",
                "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
            ] {
                assert!(!shown.contains(secret), "{text:?} -> {shown:?}");
            }
        }
        assert!(r.redact("user: bob").contains("bob"));
    }

    #[test]
    fn a_file_named_like_a_secret_with_an_error_is_not_an_assignment() {
        let r = Redactor::new(&[], &["*.pem".into()]);
        let errors = "cat: /var/run/secrets/token: Permission denied\n\
                      ls: cannot access 'session.db': No such file or directory\n\
                      bash: auth-helper: command not found\n\
                      server.pem: Is a directory";
        assert_eq!(r.redact(errors), errors);
        assert_eq!(
            r.redact("mkdir: data: Permission denied"),
            "mkdir: data: Permission denied",
            "nothing was learned from the errors"
        );
        // An assignment that looks like an error is still an assignment.
        let assigned = r.redact("PASSWORD=Permission-denied-42 and token: s3cr3t-value");
        assert!(
            !assigned.contains("Permission-denied-42") && !assigned.contains("s3cr3t-value"),
            "{assigned}"
        );
    }

    /// Review: Go (and many other) programs print strerror in lower case
    /// (`open /run/secrets/token: permission denied`). The exemption only
    /// knows libc's capitalised text, so `permission` is learned as a
    /// secret and hidden in every later observation.
    #[test]
    fn a_lower_case_error_is_not_learned_as_a_secret_either() {
        let r = Redactor::new(&[], &[]);
        let error = "open /run/secrets/token: permission denied";
        assert_eq!(r.redact(error), error);
        let later = "chmod: changing permissions of 'service.conf'";
        assert_eq!(r.redact(later), later);
    }

    #[test]
    fn handles_of_another_incident_or_unknown_are_refused() {
        let a = Redactor::new(&["secret-value-a".into()], &[]);
        let b = Redactor::new(&["secret-value-b".into()], &[]);
        let handle_a = a.redact("x secret-value-a");
        let handle_a = HANDLE.find(&handle_a).unwrap().as_str().to_string();
        if a.tag != b.tag {
            assert!(b.reveal(&handle_a).is_err());
        }
        assert!(a.reveal(&format!("<secret:{}:99>", a.tag)).is_err());
    }

    #[test]
    fn a_secret_cannot_rewrite_a_shell_command() {
        let r = Redactor::new(&["x; rm -rf / #".into(), "plain-token-123".into()], &[]);
        let nasty = HANDLE
            .find(&r.redact("v=x; rm -rf / #"))
            .map(|m| m.as_str().to_string());
        if let Some(nasty) = nasty {
            assert!(r.reveal_in_command(&format!("echo {nasty}")).is_err());
        }
        let plain = r.redact("plain-token-123");
        assert_eq!(
            r.reveal_in_command(&format!("echo {plain}")).unwrap(),
            "echo plain-token-123"
        );
    }
}
