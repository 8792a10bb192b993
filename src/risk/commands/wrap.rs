//! Commands that run another command: the wrapped command is classified
//! (in the directory `env -C` gives it, with the variables `env` gives it);
//! `xargs` feeds it arguments nobody can see; `sh -c`/`bash -c` scripts are
//! parsed and walked like the top-level one.

use super::super::SecurityRisk::{High, Low, Unknown};
use super::super::context::{Access, Assessment, Ctx};
use super::super::expand::Field;
use super::super::flags::{self, Spec};
use super::super::{paths, walk};
use super::{EnvName, assess, env_name, resolve, unknown_option};

/// Classifies `words` as a command line: the first word is the command.
fn run(ctx: &Ctx, words: &[Field]) -> Assessment {
    let Some((first, args)) = words.split_first() else {
        return Assessment::new(Low, "runs nothing");
    };
    if !first.is_exact() {
        return Assessment::new(High, "runs a command named by an expansion");
    }
    match resolve(&first.text) {
        Some(name) if name == "cd" => Assessment::new(Unknown, "cd outside a shell"),
        Some(name) => assess(ctx, &name, args),
        None => Assessment::new(High, format!("runs `{}`, a file by path", first.text)),
    }
}

pub(super) fn wrapper(ctx: &Ctx, name: &str, args: &[Field]) -> Assessment {
    let spec = match name {
        "env" => Spec::new(
            "0ivu:C:S:",
            "ignore-environment null unset= chdir= split-string= debug",
        ),
        "nice" => Spec::new("n:", "adjustment=").numeric(),
        "timeout" => Spec::new(
            "vk:s:",
            "kill-after= signal= foreground preserve-status verbose",
        ),
        "stdbuf" => Spec::new("i:o:e:", "input= output= error="),
        "ionice" => Spec::new("tc:n:", "class= classdata= ignore"),
        _ => Spec::new(
            "apqvf:o:",
            "append format= output= portability quiet verbose",
        ),
    }
    .in_order();
    let parsed = match flags::parse(&spec, args) {
        Ok(p) => p,
        Err(option) => return unknown_option(name, &option),
    };
    if parsed.has(&["S", "split-string"]) {
        return Assessment::new(High, "env -S splits a string into a command it cannot see");
    }
    let mut worst = Assessment::new(Low, format!("`{name}` runs a command"));
    let mut cwd = ctx.cwd.clone();
    for dir in parsed.values(&["C", "chdir"]) {
        cwd = paths::change_dir(dir, &cwd);
    }
    let inner = ctx.in_dir(cwd);
    for out in parsed.values(&["o", "output"]) {
        worst = worst.max(ctx.write(out));
    }
    let mut command = parsed.operands.as_slice();
    if name == "timeout" {
        let Some((_, rest)) = command.split_first() else {
            return Assessment::new(Unknown, "timeout without a duration");
        };
        command = rest;
    }
    if name == "env" {
        while let Some((assignment, rest)) = command.split_first() {
            let Some((var, _)) = assignment.text.split_once('=') else {
                break;
            };
            worst = worst.max(match env_name(var) {
                EnvName::Safe => Assessment::new(Low, "sets a harmless variable"),
                EnvName::Dangerous => {
                    return Assessment::new(
                        High,
                        format!("env gives {var}, which changes how programs run"),
                    );
                }
                EnvName::Unknown => Assessment::new(
                    Unknown,
                    format!("env gives {var}, a variable it does not know"),
                ),
            });
            command = rest;
        }
        if command.is_empty() {
            return worst.max(Assessment::new(Low, "prints the environment"));
        }
    }
    if command.is_empty() {
        return match name {
            "nice" => Assessment::new(Low, "prints the niceness"),
            _ => Assessment::new(Unknown, format!("`{name}` without a command")),
        };
    }
    worst.max(run(&inner, command))
}

/// xargs runs a command with arguments read from its input: Low only when
/// that command stays Low with an argument nobody can see.
pub(super) fn xargs(ctx: &Ctx, args: &[Field]) -> Assessment {
    const XARGS: Spec = Spec::new(
        "0prtxa:d:E:I:L:n:P:s:e::i::l::",
        "null arg-file= delimiter= eof=? replace=? max-lines=? max-args= max-procs= interactive \
         verbose exit no-run-if-empty show-limits max-chars=",
    );
    let parsed = match flags::parse(&XARGS.in_order(), args) {
        Ok(p) => p,
        Err(option) => return unknown_option("xargs", &option),
    };
    let mut worst = Assessment::new(Low, "xargs");
    for file in parsed.values(&["a", "arg-file"]) {
        worst = worst.max(ctx.read(file, Access::Content));
    }
    let replace: Option<String> = parsed
        .opts
        .iter()
        .filter(|o| matches!(o.name.as_str(), "I" | "i" | "replace"))
        .map(|o| {
            o.value
                .as_ref()
                .map_or("{}".to_string(), |v| v.text.clone())
        })
        .next_back();
    let mut command: Vec<Field> = if parsed.operands.is_empty() {
        vec![Field::plain("echo")]
    } else {
        parsed.operands.clone()
    };
    match &replace {
        Some(r) => {
            for word in command.iter_mut().skip(1) {
                if word.text.contains(r.as_str()) {
                    *word = Field::unseen();
                }
            }
        }
        None => command.push(Field::unseen()),
    }
    let inner = run(ctx, &command);
    if inner.risk > Low {
        return Assessment::new(
            High,
            format!(
                "xargs feeds unseen arguments to a command that is not Low ({})",
                inner.why
            ),
        );
    }
    worst.max(inner)
}

/// `sh -c SCRIPT [NAME ARGS...]` is followed; a shell reading a file or
/// its input runs code nobody can see.
pub(super) fn shell(ctx: &Ctx, name: &str, args: &[Field]) -> Assessment {
    const SAFE_SET_OPTIONS: &[&str] = &[
        "errexit", "nounset", "pipefail", "xtrace", "verbose", "noglob",
    ];
    let mut i = 0;
    let mut script = None;
    while let Some(arg) = args.get(i) {
        i += 1;
        let text = arg.text.as_str();
        if !arg.is_exact() {
            return Assessment::new(High, format!("{name} with options it cannot see"));
        }
        match text {
            "--norc" | "--noprofile" | "--posix" => continue,
            "-o" | "+o" => {
                let option = args.get(i).map(|a| a.text.as_str());
                i += 1;
                if option.is_some_and(|o| SAFE_SET_OPTIONS.contains(&o)) {
                    continue;
                }
                return Assessment::new(High, format!("{name} -o with an option it does not know"));
            }
            _ => {}
        }
        let Some(letters) = text.strip_prefix('-').or_else(|| text.strip_prefix('+')) else {
            break;
        };
        if letters.is_empty() || letters == "-" {
            break;
        }
        for c in letters.chars() {
            match c {
                'e' | 'u' | 'x' | 'v' | 'f' | 'C' | 'E' | 'h' | 'B' | 'P' => {}
                'c' if text.starts_with('-') => script = Some(i),
                _ => {
                    return Assessment::new(
                        High,
                        format!("{name} -{c} reads startup files or input it cannot see"),
                    );
                }
            }
        }
        if script.is_some() {
            break;
        }
    }
    let Some(at) = script else {
        return Assessment::new(High, format!("{name} runs a script or input it cannot see"));
    };
    let Some(text) = args.get(at) else {
        return Assessment::new(High, format!("{name} -c without a script"));
    };
    if !text.is_exact() {
        return Assessment::new(High, format!("a {name} -c script it cannot see"));
    }
    let deeper = Ctx {
        depth: ctx.depth + 1,
        ..ctx.clone()
    };
    walk::script(&deeper, &text.text, &args[at + 1..])
}
