//! awk is Low only for a program in a small subset that can compute and
//! print to standard output and nothing else: no `system`, no `getline`,
//! no pipes, no output redirection, no `ARGV` (which names the files it
//! reads), no functions and no gawk `@` directives. Anything else is High.

use super::super::SecurityRisk::{High, Low};
use super::super::context::{Access, Assessment, Ctx};
use super::super::expand::Field;
use super::super::flags::{self, Spec};
use super::unknown_option;

pub(super) fn assess(ctx: &Ctx, name: &str, args: &[Field]) -> Assessment {
    let parsed = match flags::parse(&Spec::new("F:v:", "field-separator= assign="), args) {
        Ok(p) => p,
        Err(option) => return unknown_option(name, &option),
    };
    let Some((program, operands)) = parsed.operands.split_first() else {
        return Assessment::new(High, format!("{name} without a program it can see"));
    };
    if !program.is_exact() {
        return Assessment::new(High, format!("an {name} program it cannot see"));
    }
    if let Err(why) = check(&program.text) {
        return Assessment::new(High, format!("the {name} program {why}"));
    }
    let mut worst = Assessment::new(Low, "awk prints computed text");
    for operand in operands {
        let assignment = operand
            .text
            .split_once('=')
            .is_some_and(|(n, _)| super::super::shell::is_name(n));
        if !assignment && operand.text != "-" {
            worst = worst.max(ctx.read(operand, Access::Content));
        }
    }
    worst
}

const BANNED: &[&str] = &[
    "system", "getline", "ARGV", "ARGC", "function", "func", "close", "fflush", "PROCINFO",
];

/// Checks a program against the safe subset.
fn check(program: &str) -> Result<(), String> {
    let chars: Vec<char> = program.chars().collect();
    let mut i = 0;
    // In `print ... > f` the `>` is a redirection; elsewhere a comparison.
    let mut in_print = false;
    let mut parens = 0i32;
    let mut print_parens = 0i32;
    // Whether a `/` here would start a regex rather than divide.
    let mut regex_can_start = true;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' => {
                i = skip_quoted(&chars, i, '"').ok_or("has an unterminated string")?;
                regex_can_start = false;
                continue;
            }
            '/' if regex_can_start => {
                i = skip_regex(&chars, i).ok_or("has an unterminated regex")?;
                regex_can_start = false;
                continue;
            }
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            '@' => return Err("uses a gawk directive or indirect call".into()),
            '|' if chars.get(i + 1) == Some(&'|') => i += 1,
            '|' => return Err("pipes to or from a command".into()),
            '>' if in_print && parens == print_parens => {
                return Err("redirects output to a file".into());
            }
            '(' => parens += 1,
            ')' => parens -= 1,
            ';' | '\n' | '{' | '}' => in_print = false,
            '\\' if chars.get(i + 1) == Some(&'\n') => i += 1,
            '\\' => return Err("has a stray backslash".into()),
            _ if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if BANNED.contains(&word.as_str()) {
                    return Err(format!("uses `{word}`"));
                }
                if word == "print" || word == "printf" {
                    in_print = true;
                    print_parens = parens;
                }
                regex_can_start = false;
                continue;
            }
            _ => {}
        }
        if !c.is_whitespace() {
            regex_can_start = !(c.is_ascii_alphanumeric() || matches!(c, ')' | ']' | '$' | '.'));
        }
        i += 1;
    }
    Ok(())
}

fn skip_quoted(chars: &[char], start: usize, quote: char) -> Option<usize> {
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            c if c == quote => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

fn skip_regex(chars: &[char], start: usize) -> Option<usize> {
    let mut i = start + 1;
    let mut in_class = false;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '[' if !in_class => {
                in_class = true;
                i += 1;
                // `[]...]` and `[^]...]` take a leading `]` literally.
                if chars.get(i) == Some(&'^') {
                    i += 1;
                }
                if chars.get(i) == Some(&']') {
                    i += 1;
                }
            }
            ']' if in_class => {
                in_class = false;
                i += 1;
            }
            '/' if !in_class => return Some(i + 1),
            '\n' => return None,
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn the_safe_subset() {
        for ok in [
            "{print $1}",
            "$3 > 100 {print $1, $3}",
            "NR==1,/end/ {n++} END {print n}",
            "{ if ($2 > 5) print $0 }",
            "/ERROR|WARN/ {c[$1]++} END {for (k in c) print k, c[k]}",
            "{ print ($1 > 3) }",
            "BEGIN { FS=\":\" } { print ($1 || $2) }",
            "{ s += $2 / 2 } END { printf \"%d\\n\", s }",
            "{ gsub(/a\\/b/, \"x\"); print }",
            "/[/]/ { print }",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
        for bad in [
            "BEGIN{system(\"rm -rf /\")}",
            "{print > \"/etc/passwd\"}",
            "{print $1 >> \"out\"}",
            "{printf(\"%s\", $0) > \"f\"}",
            "{print | \"sh\"}",
            "BEGIN{\"id\" | getline x; print x}",
            "BEGIN{getline < \"/etc/shadow\"}",
            "BEGIN{ARGV[1]=\"/etc/shadow\"} {print}",
            "@load \"x\"",
            "function f() { }",
            "{ print x > 3 ? \"a\" : \"b\" }",
            "{print |& \"cmd\"}",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
    }
}
