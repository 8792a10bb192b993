//! Commands that change files. Every destination is resolved, in the
//! directory `cd` left the shell in: inside the root Medium, anywhere else
//! (or unresolvable, or all of the root) High. Recursive deletes, links
//! that point out of the root and copies of secrets are High too.

use super::super::SecurityRisk::{High, Low, Medium, Unknown};
use super::super::context::{Access, Assessment, Ctx};
use super::super::expand::Field;
use super::super::flags::{self, Parsed, Spec};
use super::super::paths::{self, Scope};
use super::unknown_option;

pub(super) const WRITERS: &[&str] = &[
    "rm", "rmdir", "unlink", "touch", "mkdir", "tee", "truncate", "cp", "mv", "ln", "install",
    "chmod", "dd", "tar",
];

pub(super) fn assess(ctx: &Ctx, name: &str, args: &[Field]) -> Assessment {
    match name {
        "cp" | "mv" | "ln" | "install" => copy(ctx, name, args),
        "chmod" => chmod(ctx, args),
        "dd" => dd(ctx, args),
        "tar" => tar(ctx, args),
        _ => simple(ctx, name, args),
    }
}

fn spec(name: &str) -> Spec {
    match name {
        "rm" => Spec::new(
            "dfiIrRv",
            "force interactive=? one-file-system no-preserve-root preserve-root=? recursive dir verbose",
        ),
        "rmdir" => Spec::new("pv", "ignore-fail-on-non-empty parents verbose"),
        "touch" => Spec::new(
            "acfhmd:r:t:",
            "no-create date= reference= no-dereference time=",
        ),
        "mkdir" => Spec::new("pvZm:", "parents verbose mode= context"),
        "tee" => Spec::new("aip", "append ignore-interrupts output-error=?"),
        "truncate" => Spec::new("cos:r:", "no-create io-blocks size= reference="),
        "cp" => Spec::new(
            "abdfHilLnPpRrsTuvxZS:t:",
            "archive attributes-only backup=? copy-contents dereference force interactive link \
             no-dereference no-clobber preserve=? no-preserve= parents recursive reflink=? \
             remove-destination sparse= strip-trailing-slashes suffix= symbolic-link \
             target-directory= no-target-directory update=? verbose one-file-system",
        ),
        "mv" => Spec::new(
            "bfinTuvZS:t:",
            "backup=? force interactive no-clobber no-copy strip-trailing-slashes suffix= \
             target-directory= no-target-directory update=? verbose exchange context",
        ),
        "ln" => Spec::new(
            "bdfFinLPrsTvS:t:",
            "backup=? directory force interactive logical no-dereference physical relative \
             symbolic suffix= target-directory= no-target-directory verbose",
        ),
        "install" => Spec::new(
            "bcCdDpsTvZg:m:o:S:t:",
            "backup=? compare directory preserve-timestamps strip strip-program= suffix= \
             target-directory= no-target-directory verbose mode= owner= group= context",
        ),
        "chmod" => Spec::new(
            "cfvR",
            "changes silent quiet verbose recursive reference= no-preserve-root preserve-root",
        ),
        _ => Spec::new("", ""),
    }
}

fn parse(name: &str, args: &[Field]) -> Result<Parsed, Assessment> {
    flags::parse(&spec(name), args).map_err(|option| unknown_option(name, &option))
}

fn writes(ctx: &Ctx, name: &str, targets: &[Field]) -> Assessment {
    if targets.is_empty() {
        return Assessment::new(Unknown, format!("`{name}` without a target"));
    }
    targets
        .iter()
        .fold(Assessment::new(Low, "no target"), |worst, t| {
            let judged = match name {
                "rm" | "rmdir" | "unlink" | "chmod" => ctx.change_existing(t),
                _ => ctx.write(t),
            };
            worst.max(judged)
        })
}

/// rm, rmdir, unlink, touch, mkdir, tee, truncate: every operand is written.
fn simple(ctx: &Ctx, name: &str, args: &[Field]) -> Assessment {
    let parsed = match parse(name, args) {
        Ok(p) => p,
        Err(why) => return why,
    };
    if name == "rm" && parsed.has(&["r", "R", "recursive"]) {
        return Assessment::new(High, "recursive rm");
    }
    if parsed.has(&["no-preserve-root"]) {
        return Assessment::new(High, "--no-preserve-root");
    }
    if let Some(mode) = parsed.values(&["m", "mode"]).next()
        && too_wide(mode)
    {
        return Assessment::new(High, format!("mode {} widens access too far", mode.text));
    }
    if name == "tee" && parsed.operands.is_empty() {
        return Assessment::new(Low, "tee to standard output only");
    }
    let mut worst = writes(ctx, name, &parsed.operands);
    for reference in parsed.values(&["r", "reference"]) {
        worst = worst.max(ctx.read(reference, Access::Meta));
    }
    worst
}

/// cp, mv, ln, install: sources are read (moved, linked), the destination
/// is written.
fn copy(ctx: &Ctx, name: &str, args: &[Field]) -> Assessment {
    let parsed = match parse(name, args) {
        Ok(p) => p,
        Err(why) => return why,
    };
    if name == "cp" && parsed.has(&["a", "r", "R", "archive", "recursive"]) {
        return Assessment::new(High, "recursive cp");
    }
    if name == "install" && parsed.has(&["o", "g", "owner", "group", "s", "strip", "strip-program"])
    {
        return Assessment::new(High, "install changes ownership or runs strip");
    }
    if parsed
        .values(&["S", "suffix"])
        .any(|s| s.text.contains('/') || !s.is_exact())
    {
        return Assessment::new(High, "a backup suffix that names another directory");
    }
    if let Some(mode) = parsed.values(&["m", "mode"]).next()
        && too_wide(mode)
    {
        return Assessment::new(High, format!("mode {} widens access too far", mode.text));
    }
    if name == "install" && parsed.has(&["d", "directory"]) {
        return writes(ctx, name, &parsed.operands);
    }
    let mut sources = parsed.operands.clone();
    let (dest, into_dir) = match parsed.values(&["t", "target-directory"]).last() {
        Some(dir) => (dir.clone(), true),
        None if name == "ln" && sources.len() == 1 => (Field::plain("."), true),
        None => match sources.pop() {
            Some(dest) if !sources.is_empty() => {
                let dir = sources.len() > 1 || dest.text.ends_with('/');
                (dest, dir)
            }
            _ => return Assessment::new(Unknown, format!("`{name}` without a destination")),
        },
    };
    // Into the root itself is fine; what lands there is checked by name.
    let dest_place = ctx.locate(&dest);
    let mut worst = if dest_place.scope == Scope::Root {
        Assessment::new(Medium, "writes into the service root")
    } else {
        ctx.write(&dest)
    };
    for source in &sources {
        if into_dir || dest_place.scope == Scope::Root {
            let base = source
                .text
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or_default();
            let landed = dest.with_text(&format!("{}/{base}", dest.text.trim_end_matches('/')));
            worst = worst.max(ctx.write(&landed));
        }
    }
    let symbolic = parsed.has(&["s", "symbolic", "symbolic-link"]);
    let hard = name == "ln" && !symbolic || parsed.has(&["l", "link"]);
    for source in &sources {
        let this = if symbolic {
            symlink_target(ctx, source, &dest, into_dir)
        } else if hard {
            match ctx.locate(source).scope {
                Scope::Inside => Assessment::new(Medium, "links a file in the root"),
                _ => Assessment::new(
                    High,
                    format!("hard-links {}, outside the service root", source.text),
                ),
            }
        } else if name == "mv" {
            ctx.write(source)
        } else {
            ctx.read(source, Access::Content)
        };
        worst = worst.max(this);
    }
    worst
}

/// A symlink's target is resolved from the directory the link is in; one
/// that points out of the root lets a later write through it escape.
fn symlink_target(ctx: &Ctx, target: &Field, link: &Field, link_is_dir: bool) -> Assessment {
    let dir = if link_is_dir {
        link.clone()
    } else {
        match link.text.rsplit_once('/') {
            Some((parent, _)) if !parent.is_empty() => link.with_text(parent),
            Some(_) => link.with_text("/"),
            None => link.with_text("."),
        }
    };
    let link_dir = paths::change_dir(&dir, &ctx.cwd);
    let place = paths::locate(target, &link_dir, ctx.root);
    match place.scope {
        Scope::Inside | Scope::Root => Assessment::new(Medium, "links inside the service root"),
        _ => Assessment::new(
            High,
            format!("a symlink to {}, outside the service root", place.shown),
        ),
    }
}

/// `chmod -w f` is a mode, not an option.
fn chmod(ctx: &Ctx, args: &[Field]) -> Assessment {
    let is_mode = |t: &str| {
        t != "--"
            && t.len() > 1
            && t.starts_with(['-', '+', '='])
            && t[1..].chars().all(|c| "rwxXstugo+-=,".contains(c))
            && !t[1..].chars().all(|c| "cfvR".contains(c))
    };
    // A symbolic mode such as `-w` looks like an option; only before `--`
    // is it one. After `--` every word is a file.
    let options_end = args
        .iter()
        .position(|a| a.text == "--")
        .unwrap_or(args.len());
    let mode_at = args[..options_end].iter().position(|a| is_mode(&a.text));
    let mut mode = mode_at.map(|i| args[i].clone());
    let rest: Vec<Field> = args
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != mode_at)
        .map(|(_, a)| a.clone())
        .collect();
    let parsed = match parse("chmod", &rest) {
        Ok(p) => p,
        Err(why) => return why,
    };
    if parsed.has(&["R", "recursive"]) {
        return Assessment::new(High, "recursive chmod");
    }
    let mut targets = parsed.operands.clone();
    let mut worst = Assessment::new(Low, "changes modes");
    if let Some(reference) = parsed.values(&["reference"]).next() {
        worst = ctx.read(reference, Access::Meta);
    } else if mode.is_none() && !targets.is_empty() {
        mode = Some(targets.remove(0));
    }
    if let Some(mode) = &mode
        && too_wide(mode)
    {
        return Assessment::new(High, format!("chmod {} widens access too far", mode.text));
    }
    worst.max(writes(ctx, "chmod", &targets))
}

/// Set-id or sticky bits, or write access for others.
fn too_wide(mode: &Field) -> bool {
    let mode = mode.text.as_str();
    if !mode.is_empty() && mode.chars().all(|c| c.is_ascii_digit()) {
        let digits: Vec<u32> = mode.chars().filter_map(|c| c.to_digit(8)).collect();
        if digits.len() != mode.len() || digits.len() > 4 {
            return true;
        }
        let special = digits.len() == 4 && digits[0] != 0;
        let others_write = digits.last().is_some_and(|d| d & 0o2 != 0);
        return special || others_write;
    }
    mode.split(',').any(|clause| {
        let Some(i) = clause.find(['+', '=', '-']) else {
            return true;
        };
        let (who, perms) = clause.split_at(i);
        let for_others = who.is_empty() || who.contains('o') || who.contains('a');
        let adds = !perms.starts_with('-');
        !who.chars().all(|c| "ugoa".contains(c))
            || perms.contains('s')
            || perms.contains('t')
            || (for_others && adds && perms.contains('w'))
    })
}

fn dd(ctx: &Ctx, args: &[Field]) -> Assessment {
    const VALUES: &[&str] = &[
        "bs", "ibs", "obs", "cbs", "count", "skip", "seek", "iseek", "oseek", "conv", "status",
        "iflag", "oflag",
    ];
    let mut worst = Assessment::new(Low, "copies standard input to standard output");
    for arg in args {
        let Some((key, value)) = arg.text.split_once('=') else {
            return unknown_option("dd", &arg.text);
        };
        let value = arg.with_text(value);
        let this = match key {
            "if" => ctx.read(&value, Access::Content),
            "of" => ctx.write(&value),
            _ if VALUES.contains(&key) => continue,
            _ => return unknown_option("dd", key),
        };
        worst = worst.max(this);
    }
    worst
}

/// tar: the archive and `-C` are resolved; members being extracted are
/// not known, so extracting is Medium at best.
fn tar(ctx: &Ctx, args: &[Field]) -> Assessment {
    const TAR: Spec = Spec::new(
        "cxtruAzjJavpkmOwhSWf:C:X:b:g:K:N:V:",
        "create extract get list append update concatenate file= directory= verbose gzip gunzip \
         bzip2 xz zstd auto-compress preserve-permissions same-permissions keep-old-files \
         skip-old-files overwrite no-same-owner no-same-permissions strip-components= exclude= \
         exclude-from= wildcards no-wildcards totals warning= one-file-system dereference",
    );
    // Old style: `tar xzf a.tgz` bundles letters without a dash.
    let mut args = args.to_vec();
    if let Some(first) = args.first()
        && !first.text.starts_with('-')
    {
        let letters = first.text.clone();
        let mut rebuilt = Vec::new();
        let mut values = args[1..].iter();
        for c in letters.chars() {
            rebuilt.push(first.with_text(&format!("-{c}")));
            if "fCXbgKNV".contains(c)
                && let Some(v) = values.next()
            {
                rebuilt.push(v.clone());
            }
        }
        rebuilt.extend(values.cloned());
        args = rebuilt;
    }
    let parsed = match flags::parse(&TAR, &args) {
        Ok(p) => p,
        Err(option) => return unknown_option("tar", &option),
    };
    let archive = parsed.values(&["f", "file"]).last().cloned();
    let archive_is_stdio = archive.as_ref().is_none_or(|a| a.text == "-");
    let mut worst = Assessment::new(Low, "lists an archive");
    for exclude in parsed.values(&["X", "exclude-from"]) {
        worst = worst.max(ctx.read(exclude, Access::Content));
    }
    if parsed.has(&[
        "c",
        "create",
        "r",
        "append",
        "u",
        "update",
        "A",
        "concatenate",
    ]) {
        if let Some(archive) = archive.as_ref().filter(|_| !archive_is_stdio) {
            worst = worst.max(ctx.write(archive));
        }
        let base = parsed
            .values(&["C", "directory"])
            .last()
            .map(|d| paths::change_dir(d, &ctx.cwd));
        let reader = match base {
            Some(dir) => ctx.in_dir(dir),
            None => ctx.clone(),
        };
        // tar archives a directory member with everything below it.
        for member in &parsed.operands {
            worst = worst.max(reader.read(member, Access::Tree));
        }
        return worst;
    }
    if let Some(archive) = archive.as_ref().filter(|_| !archive_is_stdio) {
        worst = worst.max(ctx.read(archive, Access::Content));
    }
    if parsed.has(&["x", "extract", "get"]) {
        let dir = parsed
            .values(&["C", "directory"])
            .last()
            .cloned()
            .unwrap_or_else(|| Field::plain("."));
        let place = ctx.locate(&dir);
        worst = worst.max(match place.scope {
            Scope::Inside | Scope::Root => {
                Assessment::new(Medium, "extracts an archive into the service root")
            }
            _ => Assessment::new(
                High,
                format!(
                    "extracts an archive into {}, outside the service root",
                    place.shown
                ),
            ),
        });
    } else if !parsed.has(&["t", "list"]) {
        return Assessment::new(Unknown, "tar without a mode it knows");
    }
    worst
}
