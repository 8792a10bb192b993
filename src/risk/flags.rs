//! Options of the commands the classifier knows, parsed from small tables
//! written the way getopt spells them: `"nv"` are flags, `"n:"` takes a
//! value, `"w::"` takes one only when attached; long options are listed
//! with `=` when they take a value and `=?` when the value is optional.
//! Any option not in a table is unknown, and an unknown option is never Low.
//! Abbreviated long options are unknown too (GNU would expand `--out` to
//! `--output`): the table does not guess what they stand for.

use super::expand::Field;

#[derive(Debug, Clone, Copy)]
pub(super) struct Spec {
    pub short: &'static str,
    pub long: &'static str,
    /// `-5` means a count (head, tail, grep context).
    pub numeric: bool,
    /// Options may follow operands (GNU permutes); `false` stops at the first
    /// operand (wrappers, where the rest is a command).
    pub permute: bool,
}

impl Spec {
    pub(super) const fn new(short: &'static str, long: &'static str) -> Self {
        Self {
            short,
            long,
            numeric: false,
            permute: true,
        }
    }

    pub(super) const fn numeric(mut self) -> Self {
        self.numeric = true;
        self
    }

    pub(super) const fn in_order(mut self) -> Self {
        self.permute = false;
        self
    }

    fn short_arity(&self, c: char) -> Option<Arity> {
        let bytes = self.short.as_bytes();
        let i = self.short.find(c)?;
        if c == ':' {
            return None;
        }
        Some(match (bytes.get(i + 1), bytes.get(i + 2)) {
            (Some(b':'), Some(b':')) => Arity::Attached,
            (Some(b':'), _) => Arity::Value,
            _ => Arity::None,
        })
    }

    fn long_arity(&self, name: &str) -> Option<Arity> {
        self.long.split_whitespace().find_map(|entry| {
            let (n, arity) = if let Some(n) = entry.strip_suffix("=?") {
                (n, Arity::Attached)
            } else if let Some(n) = entry.strip_suffix('=') {
                (n, Arity::Value)
            } else {
                (entry, Arity::None)
            };
            (n == name).then_some(arity)
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arity {
    None,
    Value,
    Attached,
}

/// One option as given: `-n` is `"n"`, `--lines` is `"lines"`.
#[derive(Debug, Clone)]
pub(super) struct Opt {
    pub name: String,
    pub value: Option<Field>,
}

#[derive(Debug, Clone, Default)]
pub(super) struct Parsed {
    pub opts: Vec<Opt>,
    pub operands: Vec<Field>,
}

impl Parsed {
    pub(super) fn has(&self, names: &[&str]) -> bool {
        self.opts.iter().any(|o| names.contains(&o.name.as_str()))
    }

    pub(super) fn values<'a>(&'a self, names: &'a [&str]) -> impl Iterator<Item = &'a Field> {
        self.opts
            .iter()
            .filter(move |o| names.contains(&o.name.as_str()))
            .filter_map(|o| o.value.as_ref())
    }
}

/// Parses `args`; the error names the option the table does not know.
pub(super) fn parse(spec: &Spec, args: &[Field]) -> Result<Parsed, String> {
    let mut parsed = Parsed::default();
    let mut i = 0;
    let mut options_done = false;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        let text = arg.text.as_str();
        if options_done || !text.starts_with('-') || text == "-" {
            parsed.operands.push(arg.clone());
            if !spec.permute {
                options_done = true;
            }
            continue;
        }
        if text == "--" {
            options_done = true;
            continue;
        }
        if spec.numeric && text[1..].chars().all(|c| c.is_ascii_digit()) {
            parsed.opts.push(Opt {
                name: "#".into(),
                value: Some(arg.with_text(&text[1..])),
            });
            continue;
        }
        if let Some(long) = text.strip_prefix("--") {
            let (name, attached) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (long, None),
            };
            let arity = spec.long_arity(name).ok_or_else(|| format!("--{name}"))?;
            let value = match (arity, attached) {
                (Arity::None, Some(_)) => return Err(format!("--{name}=")),
                (Arity::None, None) | (Arity::Attached, None) => None,
                (_, Some(v)) => Some(arg.with_text(v)),
                (Arity::Value, None) => {
                    let v = args
                        .get(i)
                        .ok_or_else(|| format!("--{name} without a value"))?;
                    i += 1;
                    Some(v.clone())
                }
            };
            parsed.opts.push(Opt {
                name: name.into(),
                value,
            });
            continue;
        }
        let cluster: Vec<char> = text[1..].chars().collect();
        let mut j = 0;
        while j < cluster.len() {
            let c = cluster[j];
            let arity = spec.short_arity(c).ok_or_else(|| format!("-{c}"))?;
            j += 1;
            let rest: String = cluster[j..].iter().collect();
            let value = match arity {
                Arity::None => None,
                Arity::Attached if rest.is_empty() => None,
                Arity::Value if rest.is_empty() => {
                    let v = args.get(i).ok_or_else(|| format!("-{c} without a value"))?;
                    i += 1;
                    Some(v.clone())
                }
                _ => {
                    j = cluster.len();
                    Some(arg.with_text(&rest))
                }
            };
            parsed.opts.push(Opt {
                name: c.to_string(),
                value,
            });
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<Field> {
        words.iter().map(|w| Field::plain(w)).collect()
    }

    #[test]
    fn clusters_values_and_long_options() {
        let spec = Spec::new("nk:t:w::", "numeric key= color=? output=").numeric();
        let p = parse(
            &spec,
            &args(&[
                "-nk2", "-t", ":", "a", "--key=3", "--color", "-w", "-5", "--", "-x",
            ]),
        )
        .unwrap();
        let names: Vec<&str> = p.opts.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["n", "k", "t", "key", "color", "w", "#"]);
        assert_eq!(p.opts[1].value.as_ref().unwrap().text, "2");
        assert_eq!(p.opts[2].value.as_ref().unwrap().text, ":");
        assert!(p.opts[5].value.is_none());
        let operands: Vec<&str> = p.operands.iter().map(|f| f.text.as_str()).collect();
        assert_eq!(operands, ["a", "-x"]);
    }

    #[test]
    fn unknown_and_abbreviated_options_are_errors() {
        let spec = Spec::new("n", "output=");
        assert_eq!(parse(&spec, &args(&["-z"])).unwrap_err(), "-z");
        assert_eq!(parse(&spec, &args(&["--out=x"])).unwrap_err(), "--out");
        assert!(parse(&spec, &args(&["--output"])).is_err());
    }

    #[test]
    fn in_order_stops_at_the_first_operand() {
        let spec = Spec::new("n:", "").in_order();
        let p = parse(&spec, &args(&["-n", "5", "rm", "-rf", "/"])).unwrap();
        assert_eq!(p.operands.len(), 3);
    }
}
