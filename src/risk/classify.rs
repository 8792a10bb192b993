//! The deterministic risk classifier: what an action could do, judged from
//! the action alone. Read-only inspection is Low; targeted changes inside
//! the service root and restarts are Medium; anything destructive, broad,
//! outside the root or leaving the machine is High; anything not understood
//! is Unknown (which the gate treats as High).

use std::path::{Component, Path, PathBuf};

use super::SecurityRisk::{self, High, Low, Medium, Unknown};
use super::shell::{self, SimpleCommand, Word};
use crate::action::Action;

/// Classifies actions for one service root.
#[derive(Debug, Clone)]
pub struct Classifier {
    root: PathBuf,
}

/// A risk and the reason for it, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    pub risk: SecurityRisk,
    pub why: String,
}

fn assess(risk: SecurityRisk, why: impl Into<String>) -> Assessment {
    Assessment {
        risk,
        why: why.into(),
    }
}

const READ_ONLY: &[&str] = &[
    "ls",
    "cat",
    "head",
    "tail",
    "grep",
    "egrep",
    "fgrep",
    "rg",
    "wc",
    "ps",
    "ss",
    "netstat",
    "printenv",
    "echo",
    "printf",
    "pwd",
    "id",
    "whoami",
    "date",
    "uptime",
    "df",
    "du",
    "stat",
    "file",
    "which",
    "type",
    "hostname",
    "uname",
    "lsof",
    "sort",
    "uniq",
    "cut",
    "tr",
    "diff",
    "cmp",
    "md5sum",
    "sha256sum",
    "true",
    "false",
    "test",
    "[",
    "[[",
    "]",
    "]]",
    "jq",
    "less",
    "more",
    "tree",
    "readlink",
    "realpath",
    "basename",
    "dirname",
    "free",
    "pgrep",
    "pidof",
    "nproc",
    "column",
    "nl",
    "tac",
    "od",
    "xxd",
    "hexdump",
    "strings",
    "seq",
    "expr",
    "cd",
    "sleep",
    "journalctl",
    "dmesg",
    "getent",
    "ldd",
    "col",
    "fold",
    "fmt",
    "paste",
    "join",
    "comm",
    "cksum",
    "sum",
    "base64",
    "tty",
    "groups",
    "locale",
    "export",
    "set",
    "unset",
    "exit",
    "return",
    "wait",
    "jobs",
    "history",
    "alias",
];

/// Shell keywords: the commands inside them are classified on their own.
const KEYWORDS: &[&str] = &[
    "if", "then", "else", "elif", "fi", "do", "done", "while", "until", "for", "in", "case",
    "esac", "{", "}", "!", "time", "select", "function",
];

/// Commands that run the rest of their words as a command.
const WRAPPERS: &[&str] = &["nice", "ionice", "stdbuf", "command", "builtin", "busybox"];

/// Changes files named by their arguments.
const FILE_WRITERS: &[&str] = &[
    "rm", "rmdir", "touch", "mkdir", "cp", "mv", "ln", "chmod", "truncate", "tee", "install",
    "unlink", "chown", "chgrp", "sed", "shred",
];

/// Read files named by their arguments: reading outside the service root
/// (other services' data, secrets) is not plain inspection.
const FILE_READERS: &[&str] = &[
    "cat",
    "head",
    "tail",
    "less",
    "more",
    "grep",
    "egrep",
    "fgrep",
    "rg",
    "wc",
    "stat",
    "file",
    "ls",
    "tree",
    "du",
    "od",
    "xxd",
    "hexdump",
    "strings",
    "tac",
    "nl",
    "md5sum",
    "sha256sum",
    "diff",
    "cmp",
    "sort",
    "uniq",
    "cut",
    "column",
    "base64",
    "find",
];

const ALWAYS_HIGH: &[&str] = &[
    "sudo",
    "su",
    "doas",
    "dd",
    "mkfs",
    "fdisk",
    "sfdisk",
    "parted",
    "wipefs",
    "shutdown",
    "reboot",
    "halt",
    "poweroff",
    "init",
    "telinit",
    "kill",
    "pkill",
    "killall",
    "apt",
    "apt-get",
    "aptitude",
    "dpkg",
    "yum",
    "dnf",
    "rpm",
    "apk",
    "pip",
    "pip3",
    "pipx",
    "npm",
    "npx",
    "yarn",
    "gem",
    "cargo",
    "go",
    "brew",
    "snap",
    "flatpak",
    "eval",
    "source",
    ".",
    "crontab",
    "at",
    "batch",
    "iptables",
    "ip6tables",
    "nft",
    "ufw",
    "mount",
    "umount",
    "swapoff",
    "useradd",
    "userdel",
    "usermod",
    "passwd",
    "chpasswd",
    "visudo",
    "ssh",
    "scp",
    "sftp",
    "rsync",
    "nc",
    "ncat",
    "netcat",
    "socat",
    "telnet",
    "ftp",
    "nohup",
    "setsid",
    "disown",
    "chroot",
    "nsenter",
    "unshare",
    "insmod",
    "rmmod",
    "modprobe",
    "sysctl",
    "python",
    "python2",
    "python3",
    "perl",
    "ruby",
    "node",
    "php",
    "lua",
    "tclsh",
    "systemd-run",
    "trap",
    "ulimit",
    "exec",
];

const SHELLS: &[&str] = &["sh", "bash", "dash", "zsh", "ksh", "ash", "fish"];

impl Classifier {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn classify(&self, action: &Action) -> Assessment {
        match action {
            Action::Exec(command) => self.command(command, 0),
            Action::ReadFile(path) => match self.path_scope(path) {
                Scope::Inside => assess(Low, "reads a file in the service root"),
                _ => assess(Medium, format!("reads {path}, outside the service root")),
            },
            Action::WriteFile { path, .. } => match self.path_scope(path) {
                Scope::Inside => assess(Medium, format!("writes {path} in the service root")),
                _ => assess(High, format!("writes {path}, outside the service root")),
            },
            Action::HttpGet(_) => assess(Low, "GET on the service's own port"),
            Action::RestartService => assess(Medium, "restarts the service"),
        }
    }

    /// `depth` bounds how far `sh -c '...'` is followed.
    fn command(&self, line: &str, depth: usize) -> Assessment {
        if line.trim().is_empty() {
            return assess(Unknown, "empty command");
        }
        let parsed = match shell::parse(line) {
            Ok(parsed) => parsed,
            Err(opaque) => return assess(High, format!("cannot see through: {opaque}")),
        };
        let mut worst = assess(Low, "read-only inspection");
        for command in &parsed.commands {
            let this = self.simple(command, depth);
            if this.risk > worst.risk {
                worst = this;
            }
        }
        worst
    }

    fn simple(&self, command: &SimpleCommand, depth: usize) -> Assessment {
        let mut risk = assess(Low, "read-only inspection");
        for redirect in &command.redirects {
            let this = self.redirect(&redirect.op, &redirect.target);
            if this.risk > risk.risk {
                risk = this;
            }
        }
        let words = strip_prefixes(&command.words);
        let this = self.words(words, depth);
        if this.risk > risk.risk {
            risk = this;
        }
        risk
    }

    fn redirect(&self, op: &str, target: &Word) -> Assessment {
        if op.ends_with('&') || !op.contains('>') {
            return assess(Low, "reads or duplicates a descriptor");
        }
        if matches!(
            target.text.as_str(),
            "/dev/null" | "/dev/stdout" | "/dev/stderr"
        ) {
            return assess(Low, "discards output");
        }
        match self.word_scope(target) {
            Scope::Inside => assess(
                Medium,
                format!("writes {} in the service root", target.text),
            ),
            Scope::Outside => assess(
                High,
                format!("writes {}, outside the service root", target.text),
            ),
            Scope::Unseen => assess(
                High,
                format!("writes to `{}`, which it cannot resolve", target.text),
            ),
            Scope::Broad => assess(High, format!("writes to `{}`, too broad", target.text)),
        }
    }

    fn words(&self, words: &[Word], depth: usize) -> Assessment {
        let Some(first) = words.first() else {
            return assess(Low, "assignment or keyword only");
        };
        if first.expands || first.globs {
            return assess(
                High,
                format!("runs `{}`, which it cannot resolve", first.text),
            );
        }
        let name = Path::new(&first.text)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let args = &words[1..];
        let name = name.as_str();
        if name.starts_with("mkfs") {
            return assess(High, "formats a filesystem");
        }
        if SHELLS.contains(&name) {
            return self.shell(args, depth);
        }
        if ALWAYS_HIGH.contains(&name) {
            return assess(
                High,
                format!(
                    "`{name}` is destructive, privileged, runs opaque code or leaves the machine"
                ),
            );
        }
        if WRAPPERS.contains(&name) {
            return self.words(args, depth);
        }
        match name {
            "env" => {
                let rest = skip_env_args(args);
                if rest.is_empty() {
                    assess(Low, "prints the environment")
                } else {
                    self.words(rest, depth)
                }
            }
            "timeout" => {
                let rest = args
                    .iter()
                    .position(|w| !w.text.starts_with('-'))
                    .map_or(&args[args.len()..], |i| &args[(i + 1).min(args.len())..]);
                self.words(rest, depth)
            }
            "xargs" => {
                let inner = args
                    .iter()
                    .position(|w| !w.text.starts_with('-'))
                    .map_or(&args[args.len()..], |i| &args[i..]);
                let assessed = self.words(inner, depth);
                match assessed.risk {
                    Low => assessed,
                    _ => assess(
                        High,
                        "xargs feeds unseen arguments to a command that changes things",
                    ),
                }
            }
            "find" => {
                let searched = find(args);
                match searched.risk {
                    Low => self.reader(name, args),
                    _ => searched,
                }
            }
            "awk" | "gawk" | "mawk" => awk(args),
            "curl" | "wget" => self.http_client(name, args),
            "target-service" | "remediator" => service_control(name, args),
            "systemctl" | "service" => match args
                .iter()
                .find(|a| !a.text.starts_with('-'))
                .map(|a| a.text.as_str())
            {
                Some("status" | "is-active" | "show" | "list-units") => {
                    assess(Low, "reads service state")
                }
                Some("restart" | "reload" | "start") => assess(Medium, "restarts a service"),
                _ => assess(High, format!("`{name}` can stop or change services")),
            },
            "sed" if !args.iter().any(|a| is_inplace_flag(&a.text)) => {
                assess(Low, "prints edited text")
            }
            _ if FILE_WRITERS.contains(&name) => self.file_writer(name, args),
            _ if FILE_READERS.contains(&name) => self.reader(name, args),
            _ if READ_ONLY.contains(&name) => assess(Low, "read-only inspection"),
            _ => assess(Unknown, format!("unknown command `{name}`")),
        }
    }

    fn reader(&self, name: &str, args: &[Word]) -> Assessment {
        let outside = args
            .iter()
            .filter(|w| !w.text.starts_with('-'))
            .filter(|w| w.text.contains('/') || w.text.starts_with('~') || w.text == "..")
            .find(|w| matches!(self.word_scope(w), Scope::Outside | Scope::Unseen));
        match outside {
            Some(word) => assess(
                Medium,
                format!("`{name}` reads {}, outside the service root", word.text),
            ),
            None => assess(Low, "read-only inspection"),
        }
    }

    fn shell(&self, args: &[Word], depth: usize) -> Assessment {
        let script = args
            .iter()
            .position(|w| w.text == "-c")
            .and_then(|i| args.get(i + 1));
        match script {
            Some(script) if !script.expands && depth < 3 => self.command(&script.text, depth + 1),
            _ => assess(High, "runs a shell on input it cannot see"),
        }
    }

    fn file_writer(&self, name: &str, args: &[Word]) -> Assessment {
        let options: Vec<&str> = args
            .iter()
            .map(|w| w.text.as_str())
            .take_while(|t| *t != "--")
            .filter(|t| t.starts_with('-') && t.len() > 1)
            .collect();
        let recursive = options.iter().any(|o| {
            *o == "--recursive" || (!o.starts_with("--") && (o.contains('r') || o.contains('R')))
        });
        if recursive && matches!(name, "rm" | "chmod" | "chown" | "chgrp" | "cp" | "shred") {
            return assess(High, format!("recursive `{name}`"));
        }
        if matches!(name, "chown" | "chgrp" | "shred") {
            return assess(High, format!("`{name}` changes ownership or destroys data"));
        }
        let mut operands: Vec<&Word> = args
            .iter()
            .filter(|w| !(w.text.starts_with('-') && w.text.len() > 1))
            .collect();
        match name {
            "chmod" => {
                let Some(mode) = operands.first() else {
                    return assess(Unknown, "chmod without a mode");
                };
                if mode.expands || chmod_too_wide(&mode.text) {
                    return assess(High, format!("chmod {} widens access too far", mode.text));
                }
                operands.remove(0);
            }
            // The first operand is the script, unless -e/-f gave it.
            "sed"
                if !args.iter().any(|a| {
                    a.text == "-e" || a.text == "-f" || a.text.starts_with("--expression")
                }) && !operands.is_empty() =>
            {
                operands.remove(0);
            }
            _ => {}
        }
        if operands.is_empty() {
            return assess(Unknown, format!("`{name}` without a target"));
        }
        for word in operands {
            match self.word_scope(word) {
                Scope::Inside => {}
                Scope::Outside => {
                    return assess(
                        High,
                        format!("`{name}` touches {}, outside the service root", word.text),
                    );
                }
                Scope::Unseen => {
                    return assess(
                        High,
                        format!("`{name}` touches `{}`, which it cannot resolve", word.text),
                    );
                }
                Scope::Broad => {
                    return assess(High, format!("`{name}` on `{}` is too broad", word.text));
                }
            }
        }
        assess(
            Medium,
            format!("`{name}` changes files in the service root"),
        )
    }

    fn http_client(&self, name: &str, args: &[Word]) -> Assessment {
        let mut writes_file = name == "wget";
        let mut sends_data = false;
        let mut urls = Vec::new();
        let mut iter = args.iter().peekable();
        while let Some(word) = iter.next() {
            let text = word.text.as_str();
            match text {
                "-o" | "--output" if name == "curl" => {
                    let target = iter.next();
                    if let Some(target) = target.filter(|t| t.text != "-" && t.text != "/dev/null")
                    {
                        if self.word_scope(target) != Scope::Inside {
                            return assess(
                                High,
                                format!("{name} writes {}, outside the service root", target.text),
                            );
                        }
                        writes_file = true;
                    }
                }
                "-O" if name == "curl" => writes_file = true,
                "-O" | "--output-document" if name == "wget" => {
                    writes_file = iter.next().is_none_or(|t| t.text != "-");
                }
                "-qO-" | "-O-" if name == "wget" => writes_file = false,
                "-X" | "--request" => {
                    if iter.next().is_some_and(|m| {
                        !m.text.eq_ignore_ascii_case("GET") && !m.text.eq_ignore_ascii_case("HEAD")
                    }) {
                        sends_data = true;
                    }
                }
                "-d" | "--data" | "--data-raw" | "--data-binary" | "-F" | "--form" | "-T"
                | "--upload-file" | "--post-data" | "--post-file" => {
                    sends_data = true;
                    iter.next();
                }
                _ if text.starts_with('-') => {}
                _ => urls.push(word),
            }
        }
        for url in &urls {
            if url.expands || !is_local_url(&url.text) {
                return assess(
                    High,
                    format!("{name} reaches {} (network egress)", url.text),
                );
            }
        }
        if sends_data || writes_file {
            assess(
                Medium,
                format!("{name} changes state on the local service or writes a file"),
            )
        } else {
            assess(Low, format!("{name} reads from the local service"))
        }
    }

    fn word_scope(&self, word: &Word) -> Scope {
        if word.expands || word.text.starts_with('~') {
            return Scope::Unseen;
        }
        if word.globs
            && word
                .text
                .trim_start_matches("./")
                .split('/')
                .all(|part| part.chars().all(|c| matches!(c, '*' | '?' | '.')))
        {
            return Scope::Broad;
        }
        self.path_scope(&word.text)
    }

    fn path_scope(&self, text: &str) -> Scope {
        let path = Path::new(text);
        let absolute = if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.root.join(path)
        };
        let mut normal = PathBuf::new();
        for component in absolute.components() {
            match component {
                Component::ParentDir => {
                    normal.pop();
                }
                Component::CurDir => {}
                other => normal.push(other),
            }
        }
        if normal == self.root {
            Scope::Broad
        } else if normal.starts_with(&self.root) {
            Scope::Inside
        } else {
            Scope::Outside
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Scope {
    Inside,
    Outside,
    /// The root itself or a glob over all of it.
    Broad,
    /// Depends on a variable or `~`.
    Unseen,
}

/// Drops leading `NAME=value` assignments and shell keywords.
fn strip_prefixes(words: &[Word]) -> &[Word] {
    let skip = words
        .iter()
        .take_while(|w| is_assignment(&w.text) || KEYWORDS.contains(&w.text.as_str()))
        .count();
    let rest = &words[skip..];
    // `for x in a b`, `case x in`: the loop header runs nothing itself.
    if skip > 0
        && matches!(
            words[skip - 1].text.as_str(),
            "for" | "case" | "select" | "in"
        )
    {
        return &[];
    }
    rest
}

fn is_assignment(text: &str) -> bool {
    text.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit())
    })
}

fn skip_env_args(args: &[Word]) -> &[Word] {
    let skip = args
        .iter()
        .take_while(|w| w.text.starts_with('-') || is_assignment(&w.text))
        .count();
    &args[skip..]
}

fn is_inplace_flag(text: &str) -> bool {
    text.starts_with("--in-place")
        || (text.starts_with('-') && !text.starts_with("--") && text.contains('i'))
}

/// Set-id or sticky bits, or write access for others, from a chmod mode.
fn chmod_too_wide(mode: &str) -> bool {
    if mode.chars().all(|c| c.is_ascii_digit()) {
        let digits: Vec<u32> = mode.chars().filter_map(|c| c.to_digit(8)).collect();
        if digits.len() != mode.len() || digits.is_empty() || digits.len() > 4 {
            return true;
        }
        let special = digits.len() == 4 && digits[0] != 0;
        let others_write = digits.last().is_some_and(|d| d & 0o2 != 0);
        return special || others_write;
    }
    mode.split(',').any(|clause| {
        let (who, perms) = match clause.find(['+', '=', '-']) {
            Some(i) => (&clause[..i], &clause[i..]),
            None => return true,
        };
        let for_others = who.is_empty() || who.contains('o') || who.contains('a');
        let adds = !perms.starts_with('-');
        perms.contains('s') || perms.contains('t') || (for_others && adds && perms.contains('w'))
    })
}

fn find(args: &[Word]) -> Assessment {
    let dangerous = [
        "-delete", "-exec", "-execdir", "-ok", "-okdir", "-fprint", "-fprintf", "-fls",
    ];
    match args.iter().find(|w| dangerous.contains(&w.text.as_str())) {
        Some(flag) => assess(
            High,
            format!("find {} changes or runs things over many files", flag.text),
        ),
        None => assess(Low, "searches files"),
    }
}

fn awk(args: &[Word]) -> Assessment {
    let program = args.iter().find(|w| !w.text.starts_with('-'));
    match program {
        Some(p)
            if p.text.contains("system")
                || p.text.contains('>')
                || p.text.contains('|')
                || p.text.contains("getline") =>
        {
            assess(High, "awk program runs commands or writes files")
        }
        _ => assess(Low, "awk reads text"),
    }
}

fn service_control(name: &str, args: &[Word]) -> Assessment {
    let mut words = args
        .iter()
        .map(|w| w.text.as_str())
        .filter(|t| !t.starts_with('-'));
    let sub = if name == "remediator" {
        match words.next() {
            Some("target-service") => words.next(),
            _ => return assess(Unknown, "remediator subcommand"),
        }
    } else {
        words.next()
    };
    match sub {
        Some("status") => assess(Low, "reads the service state"),
        Some("restart") => assess(Medium, "restarts the service"),
        _ => assess(Unknown, format!("{name} {}", sub.unwrap_or(""))),
    }
}

fn is_local_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let host_port = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = host_port.rsplit_once('@').map_or(host_port, |(_, h)| h);
    let host = if let Some(stripped) = host_port.strip_prefix('[') {
        stripped.split(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    matches!(host, "127.0.0.1" | "localhost" | "::1" | "0.0.0.0")
}
