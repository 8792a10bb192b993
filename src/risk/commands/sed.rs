//! sed, with its script read command by command (GNU syntax): `e` and the
//! `s///e` flag run commands (High), `w`/`W` and `s///w` write files, `r`/`R`
//! read them (resolved like any other path), `-i` rewrites its operands. A
//! script it cannot read is High.

use super::super::SecurityRisk::{High, Low};
use super::super::context::{Access, Assessment, Ctx};
use super::super::expand::Field;
use super::super::flags::{self, Spec};
use super::unknown_option;

const SED: Spec = Spec::new(
    "nrsuEzl:e:f:i::",
    "quiet silent regexp-extended separate unbuffered null-data line-length= expression= file= \
     in-place=? posix debug sandbox follow-symlinks",
);

pub(super) fn assess(ctx: &Ctx, args: &[Field]) -> Assessment {
    let parsed = match flags::parse(&SED, args) {
        Ok(p) => p,
        Err(option) => return unknown_option("sed", &option),
    };
    if parsed.has(&["f", "file"]) {
        return Assessment::new(High, "sed -f runs a script it cannot see");
    }
    let mut files = parsed.operands.clone();
    let scripts: Vec<Field> = if parsed.has(&["e", "expression"]) {
        parsed.values(&["e", "expression"]).cloned().collect()
    } else if files.is_empty() {
        return Assessment::new(High, "sed without a script");
    } else {
        vec![files.remove(0)]
    };
    if scripts.iter().any(|s| !s.is_exact()) {
        return Assessment::new(High, "a sed script it cannot see");
    }
    let script = scripts
        .iter()
        .map(|s| s.text.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let effects = match effects(&script) {
        Ok(effects) => effects,
        Err(why) => return Assessment::new(High, format!("a sed script it cannot read: {why}")),
    };
    let mut worst = Assessment::new(Low, "prints edited text");
    for effect in effects {
        worst = worst.max(match effect {
            Effect::Exec => return Assessment::new(High, "the sed script runs commands (e)"),
            Effect::Write(path) => ctx.write(&Field::plain(&path)),
            Effect::Read(path) => ctx.read(&Field::plain(&path), Access::Content),
        });
    }
    let in_place = parsed
        .opts
        .iter()
        .find(|o| o.name == "i" || o.name == "in-place");
    if let Some(suffix) = in_place.and_then(|o| o.value.as_ref())
        && (suffix.text.contains('/') || !suffix.is_exact())
    {
        return Assessment::new(High, "sed -i backs up into another directory");
    }
    for file in files.iter().filter(|f| f.text != "-") {
        worst = worst.max(ctx.read(file, Access::Content));
        if in_place.is_some() {
            worst = worst.max(ctx.write(file));
        }
    }
    if in_place.is_some() && files.is_empty() {
        return Assessment::new(High, "sed -i without a file");
    }
    worst
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Effect {
    Exec,
    Write(String),
    Read(String),
}

/// Reads a GNU sed script and lists what its commands do beyond editing.
fn effects(script: &str) -> Result<Vec<Effect>, String> {
    let chars: Vec<char> = script.chars().collect();
    let mut p = Cursor { chars, at: 0 };
    let mut out = Vec::new();
    loop {
        p.skip(|c| c.is_whitespace() || c == ';');
        let Some(c) = p.peek() else {
            return Ok(out);
        };
        if c == '#' {
            p.rest_of_line();
            continue;
        }
        p.address()?;
        p.skip(|c| c == ' ' || c == '\t');
        if p.peek() == Some(',') {
            p.at += 1;
            p.skip(|c| c == ' ' || c == '\t');
            p.address()?;
        }
        p.skip(|c| c == ' ' || c == '\t' || c == '!');
        let Some(command) = p.next() else {
            return Err("an address without a command".into());
        };
        match command {
            '{' | '}' | '=' | 'd' | 'D' | 'g' | 'G' | 'h' | 'H' | 'n' | 'N' | 'p' | 'P' | 'x'
            | 'z' | 'F' => {}
            'l' | 'L' | 'q' | 'Q' => {
                p.skip(|c| c == ' ' || c == '\t');
                p.skip(|c| c.is_ascii_digit());
            }
            ':' | 'b' | 't' | 'T' | 'v' => {
                p.skip(|c| c != '\n' && c != ';');
            }
            'a' | 'i' | 'c' => p.text()?,
            'r' | 'R' => out.push(Effect::Read(p.file_name())),
            'w' | 'W' => out.push(Effect::Write(p.file_name())),
            'e' => {
                p.rest_of_line();
                out.push(Effect::Exec);
            }
            's' => {
                let delimiter = p.next().ok_or("s without a delimiter")?;
                if delimiter == '\n' || delimiter == '\\' {
                    return Err("a bad s delimiter".into());
                }
                p.delimited(delimiter)?;
                p.delimited(delimiter)?;
                while let Some(flag) = p.peek() {
                    match flag {
                        'g' | 'p' | 'i' | 'I' | 'm' | 'M' | '0'..='9' => p.at += 1,
                        'e' => {
                            p.at += 1;
                            out.push(Effect::Exec);
                        }
                        'w' => {
                            p.at += 1;
                            out.push(Effect::Write(p.file_name()));
                        }
                        _ => break,
                    }
                }
            }
            'y' => {
                let delimiter = p.next().ok_or("y without a delimiter")?;
                p.delimited(delimiter)?;
                p.delimited(delimiter)?;
            }
            other => return Err(format!("unknown command `{other}`")),
        }
        p.skip(|c| c == ' ' || c == '\t');
        match p.peek() {
            None | Some(';' | '\n' | '}' | '#') => {}
            Some(other) => return Err(format!("`{other}` after a command")),
        }
    }
}

struct Cursor {
    chars: Vec<char>,
    at: usize,
}

impl Cursor {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        self.at += usize::from(c.is_some());
        c
    }

    fn skip(&mut self, while_: impl Fn(char) -> bool) {
        while self.peek().is_some_and(&while_) {
            self.at += 1;
        }
    }

    fn rest_of_line(&mut self) -> String {
        let start = self.at;
        self.skip(|c| c != '\n');
        self.chars[start..self.at].iter().collect()
    }

    /// `5`, `$`, `1~2`, `+3`, `~4`, `/re/I`, `\%re%`.
    fn address(&mut self) -> Result<(), String> {
        match self.peek() {
            Some('$') => self.at += 1,
            Some('0'..='9' | '+' | '~') => {
                self.at += 1;
                self.skip(|c| c.is_ascii_digit() || c == '~');
            }
            Some('/') => {
                self.at += 1;
                self.delimited('/')?;
                self.skip(|c| c == 'I' || c == 'M');
            }
            Some('\\') => {
                self.at += 1;
                let delimiter = self.next().ok_or("an address without a delimiter")?;
                self.delimited(delimiter)?;
                self.skip(|c| c == 'I' || c == 'M');
            }
            _ => {}
        }
        Ok(())
    }

    /// Up to an unescaped delimiter (GNU does not treat brackets apart).
    fn delimited(&mut self, delimiter: char) -> Result<(), String> {
        loop {
            match self.next() {
                None => return Err("an unterminated expression".into()),
                Some('\\') => {
                    self.next();
                }
                Some(c) if c == delimiter => return Ok(()),
                Some(_) => {}
            }
        }
    }

    /// A file name runs to the end of the line (`;` is part of it).
    fn file_name(&mut self) -> String {
        self.skip(|c| c == ' ' || c == '\t');
        self.rest_of_line()
    }

    /// Text of a/i/c: the rest of the line, continued by a trailing `\`.
    fn text(&mut self) -> Result<(), String> {
        loop {
            let line = self.rest_of_line();
            let continued = line.chars().rev().take_while(|c| *c == '\\').count() % 2 == 1;
            if !continued {
                return Ok(());
            }
            if self.next().is_none() {
                return Err("text ends with a backslash".into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effects_of_scripts() {
        assert_eq!(effects("s/a/b/g; 1,5p").unwrap(), vec![]);
        assert_eq!(
            effects(r"s/^max_connections 256$/max_connections = 256/; s/^port = .*/port = 9000/")
                .unwrap(),
            vec![]
        );
        assert_eq!(effects("1e id").unwrap(), vec![Effect::Exec]);
        assert_eq!(effects("s/x/id/e").unwrap(), vec![Effect::Exec]);
        assert_eq!(effects("$!N;s/a/b/;e").unwrap(), vec![Effect::Exec]);
        assert_eq!(
            effects("/x/w /tmp/out; p").unwrap(),
            vec![Effect::Write("/tmp/out; p".into())]
        );
        assert_eq!(
            effects("s/a/b/w /etc/x").unwrap(),
            vec![Effect::Write("/etc/x".into())]
        );
        assert_eq!(
            effects("1r /etc/shadow").unwrap(),
            vec![Effect::Read("/etc/shadow".into())]
        );
        assert_eq!(effects("s|/|x|g;a\\\nhello").unwrap(), vec![]);
        assert_eq!(effects("\\%x%d").unwrap(), vec![]);
        assert!(effects("s/a/b").is_err());
        assert!(effects("k").is_err());
    }
}
