//! Read-only commands with an option or operand that is not read-only:
//! `sort -o`, `uniq IN OUT`, `find -exec`, `ps e`, `getent shadow`...

use super::super::SecurityRisk::{High, Low, Unknown};
use super::super::context::{Access, Assessment, Ctx};
use super::super::expand::Field;
use super::super::flags::{self, Parsed, Spec};
use super::unknown_option;

fn low(why: &str) -> Assessment {
    Assessment::new(Low, why)
}

fn parse_or_unknown(name: &str, spec: &Spec, args: &[Field]) -> Result<Parsed, Assessment> {
    flags::parse(spec, args).map_err(|option| unknown_option(name, &option))
}

fn reads(ctx: &Ctx, files: &[Field], access: Access) -> Assessment {
    files
        .iter()
        .filter(|f| f.text != "-")
        .fold(low("read-only inspection"), |worst, f| {
            worst.max(ctx.read(f, access))
        })
}

const GREP: Spec = Spec::new(
    "abcEFGhHiIlLnoqrRsTUvwxyzZe:f:m:A:B:C:d:D:",
    "extended-regexp fixed-strings basic-regexp perl-regexp regexp= file= ignore-case \
     no-ignore-case word-regexp line-regexp null-data no-messages invert-match max-count= \
     byte-offset line-number line-buffered with-filename no-filename label= only-matching quiet \
     silent binary-files= text directories= devices= recursive dereference-recursive include= \
     exclude= exclude-from= exclude-dir= files-without-match files-with-matches count \
     initial-tab null before-context= after-context= context= color=? colour=? binary",
)
.numeric();

pub(super) fn grep(ctx: &Ctx, name: &str, args: &[Field]) -> Assessment {
    let parsed = match parse_or_unknown(name, &GREP, args) {
        Ok(p) => p,
        Err(why) => return why,
    };
    let mut files = parsed.operands.clone();
    if !parsed.has(&["e", "f", "regexp", "file"]) && !files.is_empty() {
        files.remove(0);
    }
    let recursive = parsed.has(&["r", "R", "recursive", "dereference-recursive"]);
    if recursive && files.is_empty() {
        files.push(Field::plain("."));
    }
    let pattern_files: Vec<Field> = parsed
        .values(&["f", "file", "exclude-from"])
        .cloned()
        .collect();
    let access = if recursive {
        Access::Tree
    } else {
        Access::Content
    };
    reads(ctx, &files, access).max(reads(ctx, &pattern_files, Access::Content))
}

const SORT: Spec = Spec::new(
    "bcCdfghiMmnrRsuVzk:t:o:S:T:",
    "ignore-leading-blanks dictionary-order ignore-case general-numeric-sort ignore-nonprinting \
     month-sort human-numeric-sort numeric-sort random-sort random-source= reverse sort= \
     version-sort check=? merge key= field-separator= output= stable unique zero-terminated \
     buffer-size= temporary-directory= parallel= debug compress-program= files0-from=",
);

pub(super) fn sort(ctx: &Ctx, args: &[Field]) -> Assessment {
    let parsed = match parse_or_unknown("sort", &SORT, args) {
        Ok(p) => p,
        Err(why) => return why,
    };
    if parsed.has(&["compress-program"]) {
        return Assessment::new(High, "sort --compress-program runs a program");
    }
    if parsed.has(&["files0-from"]) {
        return Assessment::new(Unknown, "sort reads file names it cannot see");
    }
    let mut worst = reads(ctx, &parsed.operands, Access::Content);
    for random in parsed.values(&["random-source"]) {
        worst = worst.max(ctx.read(random, Access::Content));
    }
    for out in parsed.values(&["o", "output", "T", "temporary-directory"]) {
        worst = worst.max(ctx.write(out));
    }
    worst
}

const UNIQ: Spec = Spec::new(
    "cdDiuzf:s:w:",
    "count repeated all-repeated=? ignore-case unique zero-terminated skip-fields= skip-chars= \
     check-chars= group=?",
);

/// `uniq IN OUT` writes OUT.
pub(super) fn uniq(ctx: &Ctx, args: &[Field]) -> Assessment {
    let parsed = match parse_or_unknown("uniq", &UNIQ, args) {
        Ok(p) => p,
        Err(why) => return why,
    };
    match parsed.operands.as_slice() {
        [] => low("filters standard input"),
        [input] => reads(ctx, std::slice::from_ref(input), Access::Content),
        [input, output] => ctx.read(input, Access::Content).max(ctx.write(output)),
        _ => Assessment::new(Unknown, "uniq with more than two operands"),
    }
}

/// find tests and actions: name -> takes a value.
const FIND_PRIMARIES: &[(&str, bool)] = &[
    ("-print", false),
    ("-print0", false),
    ("-ls", false),
    ("-prune", false),
    ("-quit", false),
    ("-true", false),
    ("-false", false),
    ("-empty", false),
    ("-readable", false),
    ("-writable", false),
    ("-executable", false),
    ("-nouser", false),
    ("-nogroup", false),
    ("-depth", false),
    ("-xdev", false),
    ("-mount", false),
    ("-follow", false),
    ("-daystart", false),
    ("-noleaf", false),
    ("-ignore_readdir_race", false),
    ("-a", false),
    ("-and", false),
    ("-o", false),
    ("-or", false),
    ("-not", false),
    ("!", false),
    ("(", false),
    (")", false),
    (",", false),
    ("-name", true),
    ("-iname", true),
    ("-path", true),
    ("-ipath", true),
    ("-wholename", true),
    ("-iwholename", true),
    ("-regex", true),
    ("-iregex", true),
    ("-regextype", true),
    ("-lname", true),
    ("-ilname", true),
    ("-type", true),
    ("-xtype", true),
    ("-maxdepth", true),
    ("-mindepth", true),
    ("-mtime", true),
    ("-mmin", true),
    ("-atime", true),
    ("-amin", true),
    ("-ctime", true),
    ("-cmin", true),
    ("-used", true),
    ("-size", true),
    ("-perm", true),
    ("-user", true),
    ("-group", true),
    ("-uid", true),
    ("-gid", true),
    ("-links", true),
    ("-inum", true),
    ("-fstype", true),
    ("-printf", true),
    ("-newermt", true),
    ("-newer", true),
    ("-anewer", true),
    ("-cnewer", true),
    ("-samefile", true),
];

/// Run commands or write files.
const FIND_ACTIONS: &[&str] = &[
    "-exec", "-execdir", "-ok", "-okdir", "-delete", "-fprint", "-fprint0", "-fprintf", "-fls",
];

pub(super) fn find(ctx: &Ctx, args: &[Field]) -> Assessment {
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        match arg.text.as_str() {
            "-H" | "-L" | "-P" => i += 1,
            t if t.starts_with("-O") => i += 1,
            _ => break,
        }
    }
    let mut starts = Vec::new();
    while let Some(arg) = args.get(i) {
        let t = arg.text.as_str();
        if t.starts_with('-') || matches!(t, "(" | ")" | "!" | ",") {
            break;
        }
        starts.push(arg.clone());
        i += 1;
    }
    if starts.is_empty() {
        starts.push(Field::plain("."));
    }
    let mut worst = reads(ctx, &starts, Access::Meta);
    while let Some(arg) = args.get(i) {
        let t = arg.text.as_str();
        i += 1;
        if FIND_ACTIONS.contains(&t) {
            return Assessment::new(High, format!("find {t} runs commands or writes files"));
        }
        match FIND_PRIMARIES.iter().find(|(name, _)| *name == t) {
            Some((name, true)) => {
                let Some(value) = args.get(i) else {
                    return Assessment::new(Unknown, format!("find {name} without a value"));
                };
                i += 1;
                if matches!(*name, "-newer" | "-anewer" | "-cnewer" | "-samefile") {
                    worst = worst.max(ctx.read(value, Access::Meta));
                }
            }
            Some((_, false)) => {}
            None => return unknown_option("find", t),
        }
    }
    worst
}

/// `ps`: BSD `e` (and `-o` formats naming the environment) print other
/// processes' environments.
pub(super) fn ps(args: &[Field]) -> Assessment {
    const DASH_FLAGS: &str = "AaCdefFHjlLmMNTwxyZ";
    const DASH_VALUED: &str = "opqtuUgGCsO";
    const BSD_FLAGS: &str = "auxwfjlsvrTchnSmHLZX";
    const BSD_VALUED: &str = "oOptU";
    const LONG: &[&str] = &[
        "--forest",
        "--no-headers",
        "--headers",
        "--cumulative",
        "--deselect",
    ];
    const LONG_VALUED: &[&str] = &[
        "--sort",
        "--format",
        "--pid",
        "--ppid",
        "--user",
        "--cols",
        "--columns",
        "--width",
        "--lines",
        "--rows",
        "--group",
    ];
    let mut i = 0;
    let shows_env = |format: &Field| format.text.to_ascii_lowercase().contains("env");
    while let Some(arg) = args.get(i) {
        i += 1;
        let text = arg.text.as_str();
        if !arg.is_exact() {
            return Assessment::new(Unknown, "ps with options it cannot see");
        }
        if let Some(long) = text.strip_prefix("--") {
            let (name, value) = match long.split_once('=') {
                Some((n, v)) => (format!("--{n}"), Some(arg.with_text(v))),
                None => (format!("--{long}"), None),
            };
            if LONG.contains(&name.as_str()) {
                continue;
            }
            if !LONG_VALUED.contains(&name.as_str()) {
                return unknown_option("ps", &name);
            }
            let value = match value {
                Some(v) => v,
                None => {
                    i += 1;
                    args.get(i - 1).cloned().unwrap_or_else(|| Field::plain(""))
                }
            };
            if name == "--format" && shows_env(&value) {
                return Assessment::new(High, "ps prints process environments");
            }
            continue;
        }
        let (letters, flags, valued) = match text.strip_prefix('-') {
            Some(rest) => (rest, DASH_FLAGS, DASH_VALUED),
            None if text.chars().all(|c| c.is_ascii_digit()) => continue,
            None => (text, BSD_FLAGS, BSD_VALUED),
        };
        if flags == BSD_FLAGS && letters.contains('e') {
            return Assessment::new(High, "ps e prints process environments");
        }
        for (j, c) in letters.char_indices() {
            if valued.contains(c) {
                let rest = &letters[j + c.len_utf8()..];
                let value = if rest.is_empty() {
                    i += 1;
                    args.get(i - 1).cloned().unwrap_or_else(|| Field::plain(""))
                } else {
                    arg.with_text(rest)
                };
                if matches!(c, 'o' | 'O') && shows_env(&value) {
                    return Assessment::new(High, "ps prints process environments");
                }
                break;
            }
            if !flags.contains(c) {
                return unknown_option(
                    "ps",
                    &format!("{}{c}", if flags == BSD_FLAGS { "" } else { "-" }),
                );
            }
        }
    }
    low("lists processes")
}

pub(super) fn getent(args: &[Field]) -> Assessment {
    const READABLE: &[&str] = &[
        "passwd",
        "group",
        "hosts",
        "ahosts",
        "ahostsv4",
        "ahostsv6",
        "services",
        "protocols",
        "networks",
        "netgroup",
        "rpc",
        "ethers",
        "aliases",
        "initgroups",
    ];
    let parsed = match parse_or_unknown("getent", &Spec::new("s:i:A", "service= no-idn"), args) {
        Ok(p) => p,
        Err(why) => return why,
    };
    match parsed.operands.first().map(|f| f.text.as_str()) {
        Some("shadow" | "gshadow") => Assessment::new(High, "getent reads password hashes"),
        Some(db) if READABLE.contains(&db) && parsed.operands[0].is_exact() => {
            low("reads a name service database")
        }
        _ => Assessment::new(Unknown, "getent on a database it does not know"),
    }
}

pub(super) fn date(ctx: &Ctx, args: &[Field]) -> Assessment {
    const DATE: Spec = Spec::new(
        "uRI::d:r:",
        "utc universal iso-8601=? rfc-3339= rfc-email date= reference= debug",
    );
    let parsed = match parse_or_unknown("date", &DATE, args) {
        Ok(p) => p,
        Err(why) => return why,
    };
    if parsed.operands.iter().any(|o| !o.text.starts_with('+')) {
        return Assessment::new(Unknown, "date with an operand that sets the clock");
    }
    parsed
        .values(&["r", "reference"])
        .fold(low("prints the date"), |w, f| {
            w.max(ctx.read(f, Access::Meta))
        })
}

pub(super) fn hostname(args: &[Field]) -> Assessment {
    const HOSTNAME: Spec = Spec::new(
        "aAdfiIsy",
        "alias all-fqdns domain fqdn long ip-address all-ip-addresses short yp nis",
    );
    match flags::parse(&HOSTNAME, args) {
        Ok(p) if p.operands.is_empty() => low("prints the host name"),
        Ok(_) => Assessment::new(High, "hostname NAME changes the host name"),
        Err(option) => unknown_option("hostname", &option),
    }
}

/// jq computes and prints; `--arg NAME VALUE` takes two words, and
/// `--rawfile`/`--slurpfile NAME FILE` read a file.
pub(super) fn jq(ctx: &Ctx, args: &[Field]) -> Assessment {
    const FLAGS: &str = "acCeMnrRjsSh";
    const LONG: &[&str] = &[
        "--raw-output",
        "--join-output",
        "--compact-output",
        "--ascii-output",
        "--exit-status",
        "--slurp",
        "--null-input",
        "--raw-input",
        "--sort-keys",
        "--color-output",
        "--monochrome-output",
        "--tab",
        "--seq",
        "--stream",
        "--raw-output0",
    ];
    let mut worst = low("filters JSON");
    let mut operands = Vec::new();
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        let text = arg.text.as_str();
        i += 1;
        match text {
            "--arg" | "--argjson" => i += 2,
            "--indent" => i += 1,
            "--rawfile" | "--slurpfile" => {
                if let Some(file) = args.get(i + 1) {
                    worst = worst.max(ctx.read(file, Access::Content));
                }
                i += 2;
            }
            _ if LONG.contains(&text) => {}
            _ if text.starts_with("--") => return unknown_option("jq", text),
            _ if text.starts_with('-') && text.len() > 1 => {
                if let Some(c) = text[1..].chars().find(|c| !FLAGS.contains(*c)) {
                    return unknown_option("jq", &format!("-{c}"));
                }
            }
            _ => operands.push(arg.clone()),
        }
    }
    let Some((filter, files)) = operands.split_first() else {
        return worst;
    };
    if !filter.is_exact() || filter.text.contains("import") || filter.text.contains("include") {
        return Assessment::new(Unknown, "jq filter loads modules or cannot be seen");
    }
    worst.max(reads(ctx, files, Access::Content))
}

/// Pagers read files like cat; `+cmd` runs a pager command first.
pub(super) fn pager(ctx: &Ctx, name: &str, args: &[Field]) -> Assessment {
    if args.iter().any(|a| a.text.starts_with('+')) {
        return Assessment::new(High, format!("{name} +command runs pager commands"));
    }
    match flags::parse(&Spec::new("NSRFXrn", ""), args) {
        Ok(p) => reads(ctx, &p.operands, Access::Content),
        Err(option) => unknown_option(name, &option),
    }
}

pub(super) fn printf(args: &[Field]) -> Assessment {
    match args.first().map(|a| a.text.as_str()) {
        Some("-v") => Assessment::new(Unknown, "printf -v assigns a variable"),
        _ => low("prints"),
    }
}

/// `set` with shell options that only make the script stricter or louder.
pub(super) fn set(args: &[Field]) -> Assessment {
    const OPTIONS: &[&str] = &[
        "errexit",
        "nounset",
        "pipefail",
        "xtrace",
        "verbose",
        "noglob",
        "noclobber",
    ];
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        i += 1;
        let text = arg.text.as_str();
        let letters = text.strip_prefix('-').or_else(|| text.strip_prefix('+'));
        let Some(letters) = letters.filter(|l| !l.is_empty()) else {
            return Assessment::new(Unknown, "set changes the positional parameters");
        };
        for c in letters.chars() {
            match c {
                'e' | 'u' | 'x' | 'v' | 'f' | 'C' => {}
                'o' => {
                    let name = args.get(i).map(|a| a.text.as_str());
                    i += 1;
                    if !name.is_some_and(|n| OPTIONS.contains(&n)) {
                        return Assessment::new(Unknown, "set -o with an option it does not know");
                    }
                }
                _ => return unknown_option("set", &format!("-{c}")),
            }
        }
    }
    low("sets shell options")
}
