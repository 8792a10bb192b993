//! Where a path lands, judged from its text: in the service root, the root
//! itself, outside it, or somewhere the text does not tell; and whether it
//! is a secret, a device, or a startup file another program will obey.
//! Lexical only: `a/..` after a name is not resolved (the name may be a
//! symlink), and pre-existing symlinks are the sandbox's business.

use std::path::{Component, Path, PathBuf};

use super::expand::{Field, UNSEEN};

/// A working directory: known, or not known from the text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Cwd {
    Known(PathBuf),
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    Inside,
    /// The root itself, or a glob over all of it.
    Root,
    Outside,
    /// Depends on something the text does not tell.
    Unseen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Device {
    /// Not under /dev.
    No,
    Null,
    /// `/dev/zero`, `/dev/urandom`, `/dev/random`: endless harmless bytes.
    Source,
    /// `/dev/stdout`, `/dev/stderr`, `/dev/stdin`, `/dev/fd/0..2`: the
    /// command's own descriptors, like `>&2`.
    Stdio,
    /// bash's `/dev/tcp/HOST/PORT` and `/dev/udp/...`.
    Network,
    Other,
}

/// Everything the classifier knows about one path.
#[derive(Debug, Clone)]
pub(super) struct Place {
    pub shown: String,
    pub scope: Scope,
    pub secret: bool,
    /// A secret path lies below it (it is `/`, `/etc`, `/var/run`...).
    pub covers_secret: bool,
    pub device: Device,
    /// A file that shells, curl, wget, ssh... read at startup.
    pub startup: bool,
    /// Its last name starts with `-`: a later glob would pass it as an option.
    pub option_like: bool,
}

/// Paths whose contents are secrets (a component `*` is any one name).
const SECRETS: &[&str] = &[
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/etc/ssh",
    "/etc/ssl/private",
    "/etc/security/opasswd",
    "/etc/kubernetes",
    "/root",
    "/home",
    "/var/run/secrets",
    "/run/secrets",
    "/var/lib/kubelet",
    "/proc/*/environ",
    "/proc/*/mem",
    "/proc/*/root",
    "/proc/*/cwd",
    "/proc/*/fd",
    "/proc/*/map_files",
    "/proc/*/task",
    "/proc/kcore",
    "/dev/mem",
    "/dev/kmem",
    "/dev/port",
];

/// Names that hold secrets wherever they are outside the root.
const SECRET_NAMES: &[&str] = &[
    ".ssh",
    ".gnupg",
    ".aws",
    ".kube",
    ".docker",
    ".netrc",
    ".pgpass",
    ".git-credentials",
    "authorized_keys",
    ".bash_history",
    "id_rsa",
    "id_dsa",
    "id_ecdsa",
    "id_ed25519",
    "*.key",
    "*.pem",
    "*.p12",
    "*.pfx",
    "*.jks",
];

/// Files (and directories) another program reads when it starts: writing
/// one is persistence even inside the root, where `HOME` may point.
const STARTUP: &[&str] = &[
    ".bashrc",
    ".bash_profile",
    ".bash_login",
    ".bash_logout",
    ".bash_aliases",
    ".profile",
    ".zshrc",
    ".zshenv",
    ".zprofile",
    ".kshrc",
    ".mkshrc",
    ".inputrc",
    ".curlrc",
    ".wgetrc",
    ".netrc",
    ".gitconfig",
    ".npmrc",
    ".pypirc",
    ".lesskey",
    ".lessfilter",
    ".jq",
    ".vimrc",
    ".exrc",
    ".nanorc",
    ".selected_editor",
    ".pam_environment",
    ".rhosts",
    ".shosts",
    ".forward",
    ".ssh",
    ".config",
    ".local",
    ".gnupg",
    ".docker",
    ".kube",
    "authorized_keys",
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Name {
    Literal(String),
    /// A glob pattern over one name.
    Glob(String),
    /// Any number of unknown names.
    Unseen,
}

impl Name {
    fn matches(&self, pattern: &str) -> bool {
        match self {
            Name::Literal(name) => glob_match(pattern, name),
            Name::Glob(glob) => globs_meet(glob, pattern),
            Name::Unseen => true,
        }
    }

    fn is(&self, literal: &str) -> bool {
        matches!(self, Name::Literal(n) if n == literal)
    }
}

/// Resolves a field against a working directory and the service root.
pub(super) fn locate(field: &Field, cwd: &Cwd, root: &Path) -> Place {
    let shown = field.text.replace(UNSEEN, "…");
    let option_like = field
        .text
        .rsplit('/')
        .next()
        .is_some_and(|last| last.starts_with('-'));
    let mut unseen = field.unseen && field.text.starts_with(UNSEEN) || field.home;
    let mut names: Vec<Name> = Vec::new();
    let text = field.pattern.as_deref().unwrap_or(&field.text);
    if !text.starts_with('/') {
        match cwd {
            Cwd::Known(dir) => names.extend(literal_names(dir)),
            Cwd::Unknown => {
                unseen = true;
                names.push(Name::Unseen);
            }
        }
    }
    if field.home {
        names = vec![Name::Literal("home".into()), Name::Unseen];
    }
    let mut from_text = 0usize;
    for part in text.split('/') {
        let is_glob = field.pattern.is_some() && is_active_glob(part);
        let plain = if field.pattern.is_some() {
            unescape(part)
        } else {
            part.to_string()
        };
        match plain.as_str() {
            "" | "." if !is_glob => {}
            ".." if !is_glob => {
                if from_text > 0 {
                    // `name/..`: where it lands depends on whether name is a symlink.
                    unseen = true;
                    names.push(Name::Unseen);
                } else if names.last() == Some(&Name::Unseen) {
                } else {
                    names.pop();
                }
            }
            _ if plain.contains(UNSEEN) => {
                unseen = true;
                names.push(Name::Unseen);
                from_text += 1;
            }
            _ if is_glob => {
                if could_be_dot_dot(part) {
                    unseen = true;
                    names.push(Name::Unseen);
                } else {
                    names.push(Name::Glob(part.to_string()));
                }
                from_text += 1;
            }
            _ => {
                names.push(Name::Literal(plain));
                from_text += 1;
            }
        }
    }
    let root_names = literal_names(root);
    let scope = if unseen || names.contains(&Name::Unseen) {
        Scope::Unseen
    } else if names.len() >= root_names.len() && names[..root_names.len()] == root_names[..] {
        let below = &names[root_names.len()..];
        if below.is_empty() || below.iter().all(is_wildcard) {
            Scope::Root
        } else {
            Scope::Inside
        }
    } else {
        Scope::Outside
    };
    let device = device(&names);
    let secret =
        field.home || (scope != Scope::Inside && scope != Scope::Root && is_secret(&names));
    let covers_secret = scope != Scope::Inside && scope != Scope::Root && holds_secret(&names);
    let startup = names
        .iter()
        .skip(root_names.len().min(names.len()))
        .any(|n| STARTUP.iter().any(|s| n.matches(s)));
    Place {
        shown,
        scope,
        secret,
        covers_secret,
        device,
        startup,
        option_like,
    }
}

/// Where `cd` (logical, as bash's default `-L`) takes a shell.
pub(super) fn change_dir(field: &Field, cwd: &Cwd) -> Cwd {
    if !field.is_exact() || field.home {
        return Cwd::Unknown;
    }
    let path = Path::new(&field.text);
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        match cwd {
            Cwd::Known(dir) => dir.join(path),
            Cwd::Unknown => return Cwd::Unknown,
        }
    };
    let mut normal = PathBuf::from("/");
    for component in joined.components() {
        match component {
            Component::ParentDir => {
                normal.pop();
            }
            Component::Normal(name) => normal.push(name),
            _ => {}
        }
    }
    Cwd::Known(normal)
}

fn literal_names(path: &Path) -> Vec<Name> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(Name::Literal(n.to_string_lossy().into_owned())),
            _ => None,
        })
        .collect()
}

fn is_wildcard(name: &Name) -> bool {
    matches!(name, Name::Glob(g) if g.chars().all(|c| matches!(c, '*' | '?' | '.')))
}

fn device(names: &[Name]) -> Device {
    if names.first().is_none_or(|n| !n.is("dev")) {
        return Device::No;
    }
    let rest: Vec<Option<&str>> = names[1..]
        .iter()
        .map(|n| match n {
            Name::Literal(s) => Some(s.as_str()),
            _ => None,
        })
        .collect();
    match rest.as_slice() {
        [Some("null")] => Device::Null,
        [Some("zero" | "urandom" | "random")] => Device::Source,
        [Some("stdin" | "stdout" | "stderr")] | [Some("fd"), Some("0" | "1" | "2")] => {
            Device::Stdio
        }
        [Some("tcp" | "udp"), ..] => Device::Network,
        _ => Device::Other,
    }
}

fn is_secret(names: &[Name]) -> bool {
    let by_path = SECRETS.iter().any(|secret| {
        let parts: Vec<&str> = secret.split('/').skip(1).collect();
        let mut i = 0;
        for name in names {
            if *name == Name::Unseen {
                return true;
            }
            let Some(part) = parts.get(i) else {
                return true;
            };
            if !name.matches(part) {
                return false;
            }
            i += 1;
        }
        i >= parts.len()
    });
    let other_cmdline = names.len() == 3
        && names[0].is("proc")
        && names[2].matches("cmdline")
        && !names[1].is("self")
        && !names[1].is("thread-self");
    by_path
        || other_cmdline
        || names
            .iter()
            .any(|n| *n != Name::Unseen && SECRET_NAMES.iter().any(|s| n.matches(s)))
}

/// A secret path (of [`SECRETS`]) lies strictly below `names`.
fn holds_secret(names: &[Name]) -> bool {
    SECRETS.iter().any(|secret| {
        let parts: Vec<&str> = secret.split('/').skip(1).collect();
        names.len() < parts.len()
            && names
                .iter()
                .zip(&parts)
                .all(|(name, part)| name.matches(part))
    })
}

fn is_active_glob(part: &str) -> bool {
    let mut chars = part.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

/// A leading dot must be matched by a literal dot, so only `.` followed by
/// something that matches `.` can match `..` (dash's `.*` does).
fn could_be_dot_dot(glob: &str) -> bool {
    glob.strip_prefix('.')
        .or_else(|| glob.strip_prefix("\\."))
        .is_some_and(|rest| glob_match(rest, ".") || glob_match(rest, ""))
}

fn unescape(glob: &str) -> String {
    let mut out = String::new();
    let mut chars = glob.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            _ => out.push(c),
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Char(char),
    Any,
    Star,
    /// A bracket expression: ranges, negated.
    Class(Vec<(char, char)>, bool),
}

fn tokens(pattern: &str) -> Vec<Token> {
    let p: Vec<char> = pattern.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '*' => out.push(Token::Star),
            '?' => out.push(Token::Any),
            '[' => {
                if let Some((set, negated, used)) = class(&p[i + 1..]) {
                    out.push(Token::Class(set, negated));
                    i += 1 + used;
                    continue;
                }
                out.push(Token::Char('['));
            }
            '\\' if i + 1 < p.len() => {
                i += 1;
                out.push(Token::Char(p[i]));
            }
            c => out.push(Token::Char(c)),
        }
        i += 1;
    }
    out
}

/// Whether some name matches both glob patterns.
fn globs_meet(a: &str, b: &str) -> bool {
    let (a, b) = (tokens(a), tokens(b));
    let mut memo = vec![vec![None; b.len() + 1]; a.len() + 1];
    meet(&a, &b, 0, 0, &mut memo)
}

fn meet(a: &[Token], b: &[Token], i: usize, j: usize, memo: &mut Vec<Vec<Option<bool>>>) -> bool {
    if let Some(known) = memo[i][j] {
        return known;
    }
    let result = match (a.get(i), b.get(j)) {
        (None, None) => true,
        (Some(Token::Star), _) => {
            meet(a, b, i + 1, j, memo) || (j < b.len() && meet(a, b, i, j + 1, memo))
        }
        (_, Some(Token::Star)) => {
            meet(a, b, i, j + 1, memo) || (i < a.len() && meet(a, b, i + 1, j, memo))
        }
        (Some(x), Some(y)) => one_char_meets(x, y) && meet(a, b, i + 1, j + 1, memo),
        _ => false,
    };
    memo[i][j] = Some(result);
    result
}

fn one_char_meets(x: &Token, y: &Token) -> bool {
    let in_class = |set: &[(char, char)], negated: bool, c: char| {
        set.iter().any(|(lo, hi)| *lo <= c && c <= *hi) != negated
    };
    match (x, y) {
        (Token::Char(c), Token::Char(d)) => c == d,
        (Token::Char(c), Token::Class(set, neg)) | (Token::Class(set, neg), Token::Char(c)) => {
            in_class(set, *neg, *c)
        }
        // Two classes, or `?` against anything: assume some character fits both.
        _ => true,
    }
}

/// fnmatch without special rules for dots: `*`, `?`, `[...]`, `\x`.
pub(super) fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    matches_from(&p, &t)
}

fn matches_from(p: &[char], t: &[char]) -> bool {
    match p.first() {
        None => t.is_empty(),
        Some('*') => (0..=t.len()).any(|i| matches_from(&p[1..], &t[i..])),
        Some('?') => !t.is_empty() && matches_from(&p[1..], &t[1..]),
        Some('[') => match class(&p[1..]) {
            Some((set, negated, used)) => t.first().is_some_and(|c| {
                (set.iter().any(|(lo, hi)| lo <= c && c <= hi) != negated)
                    && matches_from(&p[1 + used..], &t[1..])
            }),
            None => t.first() == Some(&'[') && matches_from(&p[1..], &t[1..]),
        },
        Some('\\') if p.len() > 1 => t.first() == Some(&p[1]) && matches_from(&p[2..], &t[1..]),
        Some(c) => t.first() == Some(c) && matches_from(&p[1..], &t[1..]),
    }
}

type Class = (Vec<(char, char)>, bool, usize);

/// A bracket expression after its `[`: ranges, negation, chars used.
fn class(p: &[char]) -> Option<Class> {
    let mut i = 0;
    let negated = matches!(p.first(), Some('!' | '^'));
    if negated {
        i += 1;
    }
    let mut set = Vec::new();
    let start = i;
    while i < p.len() {
        let c = p[i];
        if c == ']' && i > start {
            return Some((set, negated, i + 1));
        }
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            set.push((c, p[i + 2]));
            i += 3;
        } else {
            set.push((c, c));
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::expand::{World, expand};
    use super::super::shell::decode;
    use super::*;

    const ROOT: &str = "/srv/root";

    fn place(word: &str) -> Place {
        let field = expand(&decode(word).unwrap(), &World::default()).remove(0);
        locate(&field, &Cwd::Known(ROOT.into()), Path::new(ROOT))
    }

    #[test]
    fn scopes() {
        assert_eq!(place("service.conf").scope, Scope::Inside);
        assert_eq!(place("./run/x.pid").scope, Scope::Inside);
        assert_eq!(place("run/*.lock").scope, Scope::Inside);
        assert_eq!(place("*").scope, Scope::Root);
        assert_eq!(place(".").scope, Scope::Root);
        assert_eq!(place("/srv/root").scope, Scope::Root);
        assert_eq!(place("../x").scope, Scope::Outside);
        assert_eq!(place("/etc/hosts").scope, Scope::Outside);
        assert_eq!(place("data/../x").scope, Scope::Unseen);
        assert_eq!(place(".*/x").scope, Scope::Unseen);
        assert_eq!(place("$X").scope, Scope::Unseen);
        assert_eq!(place("~/x").scope, Scope::Unseen);
    }

    #[test]
    fn secrets_with_globs_and_unseen_parts() {
        for secret in [
            "/etc/shadow",
            "/etc/sha*",
            "/e?c/shadow",
            "/etc/*",
            "/proc/$PPID/environ",
            "/proc/1/cmdline",
            "/home/x/.ssh/id_rsa",
            "/opt/tls.key",
            "/opt/x*",
            "../x.pem",
            "~/notes",
            "/etc/$X",
        ] {
            assert!(place(secret).secret, "{secret}");
        }
        for plain in [
            "/etc/passwd",
            "/etc/*.conf",
            "/proc/self/cmdline",
            "/var/log/syslog",
            "tls.key",
        ] {
            assert!(!place(plain).secret, "{plain}");
        }
    }

    #[test]
    fn devices_and_startup_files() {
        assert_eq!(place("/dev/null").device, Device::Null);
        assert_eq!(place("/dev/stderr").device, Device::Stdio);
        assert_eq!(place("/dev/tcp/1.2.3.4/80").device, Device::Network);
        assert_eq!(place("/dev/sda").device, Device::Other);
        assert_eq!(place("/dev/zero").device, Device::Source);
        assert!(place(".curlrc").startup);
        assert!(place(".ssh/authorized_keys").startup);
        assert!(!place("service.env").startup);
        assert!(place("-rf").option_like);
    }

    #[test]
    fn cd_is_logical() {
        let root = Cwd::Known(ROOT.into());
        let to = |w: &str| change_dir(&Field::plain(w), &root);
        assert_eq!(to("data"), Cwd::Known("/srv/root/data".into()));
        assert_eq!(to(".."), Cwd::Known("/srv".into()));
        assert_eq!(to("/etc"), Cwd::Known("/etc".into()));
    }

    #[test]
    fn glob_matching() {
        assert!(glob_match("*.lock", "service.lock"));
        assert!(glob_match("sha[a-z]ow", "shadow"));
        assert!(!glob_match("sha[!d]ow", "shadow"));
        assert!(glob_match(r"\*", "*"));
        assert!(!glob_match(r"\*", "x"));
        assert!(globs_meet("tls.pe[m]", "*.pem"));
        assert!(globs_meet("x*", "*.key"));
        assert!(globs_meet("*", ".ssh"));
        assert!(!globs_meet("*.log", "*.key"));
        assert!(!globs_meet("*.conf", "shadow"));
    }
}
