//! What each command the classifier knows can do. Low is an allowlist:
//! the read-only commands below, each with the options it may take; a
//! command or option not listed is Unknown. Commands that change files,
//! run code or reach the network have modules of their own.

mod awk;
mod files;
mod inspect;
mod net;
mod sed;
mod service;
mod wrap;

use super::SecurityRisk::{High, Low, Unknown};
use super::context::{Access, Assessment, Ctx};
use super::expand::Field;
use super::flags::{self, Spec};

/// Classifies one command with its expanded arguments.
pub(super) fn assess(ctx: &Ctx, name: &str, args: &[Field]) -> Assessment {
    if let Some(why) = always_high(name) {
        return Assessment::new(High, format!("`{name}` {why}"));
    }
    if INERT.contains(&name) {
        return Assessment::new(Low, format!("`{name}` only prints or tests"));
    }
    if let Some(reader) = READERS.iter().find(|r| r.names.contains(&name)) {
        return reader.assess(ctx, name, args);
    }
    match name {
        "grep" | "egrep" | "fgrep" => inspect::grep(ctx, name, args),
        "sort" => inspect::sort(ctx, args),
        "uniq" => inspect::uniq(ctx, args),
        "find" => inspect::find(ctx, args),
        "ps" => inspect::ps(args),
        "getent" => inspect::getent(args),
        "date" => inspect::date(ctx, args),
        "hostname" => inspect::hostname(args),
        "jq" => inspect::jq(ctx, args),
        "less" | "more" => inspect::pager(ctx, name, args),
        "printf" => inspect::printf(args),
        "set" => inspect::set(args),
        "umask" if args.is_empty() => Assessment::new(Low, "prints the umask"),
        "sed" => sed::assess(ctx, args),
        "awk" | "gawk" | "mawk" | "nawk" => awk::assess(ctx, name, args),
        "curl" => net::curl(ctx, args),
        "wget" => net::wget(ctx, args),
        "env" | "nice" | "timeout" | "stdbuf" | "ionice" | "time" => wrap::wrapper(ctx, name, args),
        "xargs" => wrap::xargs(ctx, args),
        "sh" | "bash" | "dash" => wrap::shell(ctx, name, args),
        "systemctl" | "service" | "journalctl" | "target-service" | "remediator" => {
            service::assess(ctx, name, args)
        }
        _ if files::WRITERS.contains(&name) => files::assess(ctx, name, args),
        _ => Assessment::new(Unknown, format!("unknown command `{name}`")),
    }
}

/// The name a command word runs: itself, or the last part of a path in a
/// system directory. A path anywhere else is a file the agent may have
/// written: `None`.
pub(super) fn resolve(word: &str) -> Option<String> {
    const SYSTEM_DIRS: &[&str] = &[
        "/bin",
        "/usr/bin",
        "/sbin",
        "/usr/sbin",
        "/usr/local/bin",
        "/usr/local/sbin",
    ];
    match word.rsplit_once('/') {
        None => Some(word.to_string()),
        Some((dir, name)) if SYSTEM_DIRS.contains(&dir) && is_known(name) => Some(name.to_string()),
        Some(_) => None,
    }
}

fn is_known(name: &str) -> bool {
    always_high(name).is_some()
        || INERT.contains(&name)
        || READERS.iter().any(|r| r.names.contains(&name))
        || files::WRITERS.contains(&name)
        || SPECIAL.contains(&name)
}

/// Commands with code of their own below (for `/usr/bin/NAME`).
const SPECIAL: &[&str] = &[
    "grep",
    "egrep",
    "fgrep",
    "sort",
    "uniq",
    "find",
    "ps",
    "getent",
    "date",
    "hostname",
    "jq",
    "less",
    "more",
    "printf",
    "set",
    "umask",
    "sed",
    "awk",
    "gawk",
    "mawk",
    "nawk",
    "curl",
    "wget",
    "env",
    "nice",
    "timeout",
    "stdbuf",
    "ionice",
    "time",
    "xargs",
    "sh",
    "bash",
    "dash",
    "systemctl",
    "service",
    "journalctl",
    "target-service",
    "remediator",
];

/// Print, compute or test, whatever their arguments.
const INERT: &[&str] = &[
    "echo", "true", "false", ":", "test", "[", "[[", "expr", "exit", "return", "break", "continue",
    "wait", "jobs", "times", "dirs", "sleep",
];

fn always_high(name: &str) -> Option<&'static str> {
    if name.starts_with("mkfs") {
        return Some("formats a filesystem");
    }
    ALWAYS_HIGH
        .iter()
        .find(|(_, names)| names.contains(&name))
        .map(|(why, _)| *why)
}

const ALWAYS_HIGH: &[(&str, &[&str])] = &[
    (
        "runs code the classifier cannot see",
        &[
            "eval",
            "source",
            ".",
            "exec",
            "trap",
            "alias",
            "hash",
            "enable",
            "let",
            "coproc",
            "python",
            "python2",
            "python3",
            "perl",
            "ruby",
            "node",
            "nodejs",
            "php",
            "lua",
            "luajit",
            "tclsh",
            "wish",
            "expect",
            "java",
            "jshell",
            "Rscript",
            "deno",
            "bun",
            "pwsh",
            "zsh",
            "ksh",
            "mksh",
            "ash",
            "fish",
            "csh",
            "tcsh",
            "yash",
            "busybox",
            "make",
            "gdb",
            "strace",
            "ltrace",
            "ldd",
            "script",
            "screen",
            "tmux",
            "watch",
            "flock",
            "declare",
            "typeset",
            "local",
            "readonly",
            "read",
            "mapfile",
            "readarray",
            "getopts",
            "fc",
            "bind",
            "complete",
            "compgen",
        ],
    ),
    (
        "is an editor or tool with shell escapes",
        &[
            "vi", "vim", "view", "nvim", "ed", "ex", "nano", "emacs", "pico", "joe", "man",
        ],
    ),
    (
        "runs with other privileges or outside the service",
        &[
            "sudo",
            "su",
            "doas",
            "pkexec",
            "runuser",
            "setpriv",
            "capsh",
            "chroot",
            "nsenter",
            "unshare",
            "setsid",
            "nohup",
            "disown",
            "systemd-run",
            "machinectl",
        ],
    ),
    (
        "destroys data or stops processes or the system",
        &[
            "fdisk", "sfdisk", "parted", "wipefs", "shred", "shutdown", "reboot", "halt",
            "poweroff", "init", "telinit", "kill", "pkill", "killall", "swapoff", "swapon",
            "mount", "umount", "losetup", "mknod",
        ],
    ),
    (
        "changes system configuration or ownership",
        &[
            "iptables",
            "ip6tables",
            "nft",
            "ufw",
            "sysctl",
            "insmod",
            "rmmod",
            "modprobe",
            "useradd",
            "userdel",
            "usermod",
            "groupadd",
            "groupdel",
            "passwd",
            "chpasswd",
            "visudo",
            "chown",
            "chgrp",
            "chattr",
            "setfacl",
            "chcon",
            "update-alternatives",
            "ldconfig",
        ],
    ),
    (
        "installs software",
        &[
            "apt", "apt-get", "aptitude", "dpkg", "yum", "dnf", "rpm", "apk", "pip", "pip3",
            "pipx", "npm", "npx", "yarn", "pnpm", "gem", "cargo", "go", "brew", "snap", "flatpak",
            "conda",
        ],
    ),
    (
        "schedules commands to run later",
        &["crontab", "at", "batch"],
    ),
    (
        "reaches the network",
        &[
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
            "tftp",
            "openssl",
            "dig",
            "nslookup",
            "host",
            "ping",
            "ping6",
            "traceroute",
            "tracepath",
            "whois",
            "mail",
            "mailx",
            "sendmail",
            "mutt",
            "aria2c",
            "lftp",
        ],
    ),
];

/// How a variable given to a command (`NAME=v cmd`, `env NAME=v`,
/// `export NAME`) can change what it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EnvName {
    Safe,
    /// Makes the shell or a program load, run or reach something else.
    Dangerous,
    Unknown,
}

const ENV_SAFE: &[&str] = &[
    "LANG",
    "LANGUAGE",
    "TZ",
    "COLUMNS",
    "LINES",
    "TERM",
    "NO_COLOR",
    "TIME_STYLE",
    "LS_COLORS",
    "GREP_COLOR",
    "GREP_COLORS",
    "SYSTEMD_COLORS",
    "QUOTING_STYLE",
    "POSIXLY_CORRECT",
];

const ENV_DANGEROUS: &[&str] = &[
    "BASH_ENV",
    "ENV",
    "PS0",
    "PS1",
    "PS2",
    "PS3",
    "PS4",
    "PROMPT_COMMAND",
    "IFS",
    "SHELLOPTS",
    "BASHOPTS",
    "PATH",
    "HOME",
    "CDPATH",
    "GLOBIGNORE",
    "BASH_XTRACEFD",
    "HISTFILE",
    "PAGER",
    "MANPAGER",
    "SYSTEMD_PAGER",
    "EDITOR",
    "VISUAL",
    "SYSTEMD_EDITOR",
    "SHELL",
    "BROWSER",
    "TMPDIR",
    "LOCPATH",
    "NLSPATH",
    "TAR_OPTIONS",
    "GREP_OPTIONS",
    "GZIP",
    "AWKPATH",
    "AWKLIBPATH",
    "INPUTRC",
    "SUDO_ASKPASS",
    "SSH_ASKPASS",
    "OPENSSL_CONF",
    "SSLKEYLOGFILE",
    "PS_FORMAT",
    "OLDPWD",
    "PWD",
];

const ENV_DANGEROUS_PREFIXES: &[&str] = &[
    "LD_",
    "DYLD_",
    "BASH_FUNC_",
    "GIT_",
    "PYTHON",
    "PERL",
    "RUBY",
    "NODE_",
    "LESS",
    "XDG_",
    "MALLOC_",
    "GLIBC_",
    "GCONV",
    "SSL_",
    "CURL",
    "WGET",
    "JAVA_",
    "_JAVA",
    "JQ_",
];

pub(super) fn env_name(name: &str) -> EnvName {
    let upper = name.to_ascii_uppercase();
    if ENV_DANGEROUS.contains(&name)
        || ENV_DANGEROUS_PREFIXES.iter().any(|p| upper.starts_with(p))
        || upper.ends_with("_PROXY")
    {
        EnvName::Dangerous
    } else if ENV_SAFE.contains(&name) || name.starts_with("LC_") {
        EnvName::Safe
    } else {
        EnvName::Unknown
    }
}

/// What the operands of a read-only command are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operands {
    /// Files whose bytes it reads.
    Content,
    /// Paths whose names, sizes or modes it shows.
    Meta,
    /// Not paths (users, numbers, filters).
    Data,
}

/// A read-only command and the options it may take.
struct Reader {
    names: &'static [&'static str],
    spec: Spec,
    operands: Operands,
    /// Options whose value is a file it reads.
    reads: &'static [&'static str],
    /// Options that make it read the operands' whole trees.
    recursive: &'static [&'static str],
}

const fn reader(names: &'static [&'static str], spec: Spec, operands: Operands) -> Reader {
    Reader {
        names,
        spec,
        operands,
        reads: &[],
        recursive: &[],
    }
}

impl Reader {
    const fn reading(mut self, options: &'static [&'static str]) -> Self {
        self.reads = options;
        self
    }

    const fn recursive_with(mut self, options: &'static [&'static str]) -> Self {
        self.recursive = options;
        self
    }

    fn assess(&self, ctx: &Ctx, name: &str, args: &[Field]) -> Assessment {
        let parsed = match flags::parse(&self.spec, args) {
            Ok(parsed) => parsed,
            Err(option) => return unknown_option(name, &option),
        };
        let mut worst = Assessment::new(Low, "read-only inspection");
        for file in parsed.values(self.reads) {
            worst = worst.max(ctx.read(file, Access::Content));
        }
        let access = match self.operands {
            Operands::Content if parsed.has(self.recursive) => Access::Tree,
            Operands::Content => Access::Content,
            Operands::Meta => Access::Meta,
            Operands::Data => return worst,
        };
        for operand in parsed.operands.iter().filter(|o| o.text != "-") {
            worst = worst.max(ctx.read(operand, access));
        }
        // ls, du, tree with no operand show the working directory.
        if parsed.operands.is_empty() && access == Access::Meta {
            worst = worst.max(ctx.read(&Field::plain("."), access));
        }
        worst
    }
}

pub(super) fn unknown_option(name: &str, option: &str) -> Assessment {
    Assessment::new(
        Unknown,
        format!("`{name}` option `{option}` is not known to be safe"),
    )
}

use Operands::{Content, Data, Meta};

const READERS: &[Reader] = &[
    reader(
        &["cat"],
        Spec::new("AbeEnstTuv", "show-all number-nonblank show-ends number squeeze-blank show-tabs show-nonprinting"),
        Content,
    ),
    reader(
        &["head"],
        Spec::new("c:n:qvz", "bytes= lines= quiet silent verbose zero-terminated").numeric(),
        Content,
    ),
    reader(
        &["tail"],
        Spec::new(
            "c:n:fFqs:vz",
            "bytes= lines= follow=? retry quiet silent verbose sleep-interval= pid= zero-terminated",
        )
        .numeric(),
        Content,
    ),
    reader(
        &["wc"],
        Spec::new("clmwL", "bytes chars lines words max-line-length total="),
        Content,
    ),
    reader(
        &["cut"],
        Spec::new("b:c:d:f:nsz", "bytes= characters= delimiter= fields= complement only-delimited output-delimiter= zero-terminated"),
        Content,
    ),
    reader(&["tr"], Spec::new("cCdst", "complement delete squeeze-repeats truncate-set1"), Data),
    reader(&["nl"], Spec::new("b:d:f:h:i:l:n:ps:v:w:", ""), Content),
    reader(&["tac"], Spec::new("brs:", "before regex separator="), Content),
    reader(&["rev"], Spec::new("", ""), Content),
    reader(&["od"], Spec::new("A:j:N:t:vw::bcdfiloxs", "address-radix= skip-bytes= read-bytes= format= output-duplicates width=?"), Content),
    reader(&["hexdump"], Spec::new("bcCdovxe:f:n:s:", ""), Content).reading(&["f"]),
    reader(&["strings"], Spec::new("afn:t:e:w", "all bytes= radix= encoding="), Content),
    reader(&["base64", "base32"], Spec::new("diw:", "decode ignore-garbage wrap="), Content),
    reader(
        &["md5sum", "sha1sum", "sha224sum", "sha256sum", "sha384sum", "sha512sum", "b2sum", "cksum", "sum"],
        Spec::new("btz", "binary text tag zero"),
        Content,
    ),
    reader(&["column"], Spec::new("ts:o:nxc:", "table separator= output-separator= fillrows"), Content),
    reader(&["fold"], Spec::new("bsw:", "bytes spaces width="), Content),
    reader(&["fmt"], Spec::new("cstuw:p:", "width= prefix="), Content),
    reader(&["expand", "unexpand"], Spec::new("it:a", "initial tabs= all"), Content),
    reader(
        &["diff"],
        Spec::new(
            "aBbdEiNqrstTuwyc C:U:x:X:",
            "brief report-identical-files unified=? context=? recursive new-file text \
             ignore-case ignore-all-space ignore-space-change ignore-blank-lines side-by-side \
             color=? no-dereference exclude= exclude-from= width= label= from-file= to-file= \
             strip-trailing-cr suppress-common-lines minimal normal expand-tabs initial-tab",
        ),
        Content,
    )
    .reading(&["X", "exclude-from", "from-file", "to-file"])
    .recursive_with(&["r", "recursive"]),
    reader(&["cmp"], Spec::new("blsn:i:", "print-bytes verbose quiet silent bytes= ignore-initial="), Content),
    reader(&["comm"], Spec::new("123z", "check-order nocheck-order output-delimiter= total zero-terminated"), Content),
    reader(&["join"], Spec::new("a:e:i1:2:j:o:t:v:z", "ignore-case check-order nocheck-order header zero-terminated"), Content),
    reader(&["paste"], Spec::new("d:sz", "delimiters= serial zero-terminated"), Content),
    reader(
        &["ls"],
        Spec::new(
            "aAbBcCdfFgGhHiklLmnNopqQrRsStuUvxXZ1I:T:w:",
            "all almost-all author escape block-size= ignore-backups color=? directory classify=? \
             file-type format= full-time group-directories-first no-group human-readable si \
             dereference-command-line hide= hyperlink=? indicator-style= inode ignore= kibibytes \
             dereference literal numeric-uid-gid hide-control-chars show-control-chars quote-name \
             quoting-style= reverse recursive size sort= time= time-style= tabsize= width= context zero",
        ),
        Meta,
    ),
    reader(&["stat"], Spec::new("LfctZc:", "dereference file-system format= printf= terse cached="), Meta),
    reader(
        &["file"],
        Spec::new("bcEhiLNnprsSvz0", "brief mime mime-type mime-encoding dereference no-dereference no-pad uncompress keep-going raw special-files"),
        Meta,
    ),
    reader(
        &["du"],
        Spec::new(
            "0abcDhHklLmPsSxd:B:t:X:",
            "all apparent-size block-size= bytes total dereference-args human-readable inodes \
             dereference count-links max-depth= null no-dereference separate-dirs si summarize \
             threshold= time=? time-style= exclude= exclude-from= one-file-system",
        ),
        Meta,
    )
    .reading(&["X", "exclude-from"]),
    reader(
        &["df"],
        Spec::new("ahHiklPTvxt:B:", "all block-size= human-readable si inodes local output=? portability print-type total type= exclude-type= sync no-sync"),
        Data,
    ),
    reader(&["tree"], Spec::new("adfgilpsuhDFqNrtvxCAL:I:P:", "noreport dirsfirst du charset= filelimit= timefmt= sort="), Meta),
    reader(&["readlink"], Spec::new("efmnqsvz", "canonicalize canonicalize-existing canonicalize-missing no-newline quiet silent verbose zero"), Meta),
    reader(&["realpath"], Spec::new("eLmPqsz", "relative-to= relative-base= canonicalize-existing canonicalize-missing logical physical quiet strip no-symlinks zero"), Meta),
    reader(&["lsof"], Spec::new("abhlnPRtUVwi::p:u:c:s::d:g::", ""), Meta),
    reader(&["basename"], Spec::new("as:z", "multiple suffix= zero"), Data),
    reader(&["dirname"], Spec::new("z", "zero"), Data),
    reader(&["pwd"], Spec::new("LP", ""), Data),
    reader(&["seq"], Spec::new("f:s:w", "format= separator= equal-width").numeric(), Data),
    reader(&["id"], Spec::new("agGnruzZ", "group groups name real user zero context"), Data),
    reader(&["whoami", "groups", "tty", "arch", "nproc", "logname"], Spec::new("s", "all"), Data),
    reader(
        &["uname"],
        Spec::new("asnrvmpio", "all kernel-name nodename kernel-release kernel-version machine processor hardware-platform operating-system"),
        Data,
    ),
    reader(&["uptime"], Spec::new("ps", "pretty since"), Data),
    reader(
        &["free"],
        Spec::new("bkmgthlwvs:c:", "bytes kilo mega giga tera peta kibi mebi gibi tebi pebi human wide total lohi seconds= count= si"),
        Data,
    ),
    reader(&["locale"], Spec::new("akcmv", ""), Data),
    reader(&["printenv", "which"], Spec::new("0a", "null"), Data),
    reader(&["type"], Spec::new("aftpP", ""), Data),
    reader(
        &["ss"],
        Spec::new(
            "hnrapmloeistuwx46HOEZzbf:A:",
            "numeric resolve all listening options extended memory processes info summary tcp \
             udp unix raw no-header oneline family= query= ipv4 ipv6 tos cgroup threads",
        ),
        Data,
    ),
    reader(&["netstat"], Spec::new("tulnpaeorisWcgMvNA:", ""), Data),
    reader(
        &["pgrep", "pidof"],
        Spec::new("adflnovwxcsu:U:g:G:P:t:F:", "list-name list-full full newest oldest count exact delimiter= euid= uid= parent= terminal= inverse ignore-case"),
        Data,
    ),
    reader(&["dmesg"], Spec::new("TtHkuxdLwl:f:s:", "ctime human kernel userspace decode level= facility= since= until= time-format= nopager notime color=?"), Data),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_names() {
        assert_eq!(env_name("LC_ALL"), EnvName::Safe);
        assert_eq!(env_name("LD_PRELOAD"), EnvName::Dangerous);
        assert_eq!(env_name("https_proxy"), EnvName::Dangerous);
        assert_eq!(env_name("BASH_ENV"), EnvName::Dangerous);
        assert_eq!(env_name("LESSOPEN"), EnvName::Dangerous);
        assert_eq!(env_name("FOO"), EnvName::Unknown);
    }

    #[test]
    fn command_paths() {
        assert_eq!(resolve("/usr/bin/cat").as_deref(), Some("cat"));
        assert_eq!(resolve("cat").as_deref(), Some("cat"));
        assert_eq!(resolve("./cat"), None);
        assert_eq!(resolve("/tmp/cat"), None);
        assert_eq!(resolve("/usr/bin/frobnicate"), None);
    }
}
