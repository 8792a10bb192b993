//! Word expansion as far as the text allows: quotes decide what is glob
//! and brace active, variables assigned in the script are substituted with
//! every value they can have, and whatever comes from elsewhere (the
//! environment, `$$`, `~`) is marked unseen rather than guessed.

use std::collections::{BTreeMap, BTreeSet};

use super::shell::Piece;

/// Stands for a part of a field nobody can know from the text.
pub(super) const UNSEEN: char = '\u{1}';

/// One word after expansion, as a command receives it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct Field {
    /// The text; [`UNSEEN`] marks parts the text does not tell.
    pub text: String,
    /// The text as a glob pattern (inactive `*?[]\` escaped), if it globs.
    pub pattern: Option<String>,
    /// An unquoted brace expansion (`{a,b}`, `{1..3}`) is in it.
    pub brace: bool,
    /// Some part is unknown.
    pub unseen: bool,
    /// It starts at a home directory (`~`, `$HOME`).
    pub home: bool,
    /// Written out in the script: no expansion of any kind.
    pub literal: bool,
}

impl Field {
    pub(super) fn plain(text: &str) -> Self {
        Self {
            text: text.to_string(),
            pattern: None,
            brace: false,
            unseen: false,
            home: false,
            literal: true,
        }
    }

    /// A value nobody can know (what `xargs` feeds, `$@`).
    pub(super) fn unseen() -> Self {
        Self {
            text: UNSEEN.to_string(),
            unseen: true,
            literal: false,
            ..Self::plain("")
        }
    }

    /// Text that is exactly what the command receives.
    pub(super) fn is_exact(&self) -> bool {
        !self.unseen && self.pattern.is_none() && !self.brace
    }

    /// The same field with other text (a value cut out of an option).
    pub(super) fn with_text(&self, text: &str) -> Self {
        let pattern = self.pattern.as_ref().map(|_| text.to_string());
        Self {
            text: text.to_string(),
            pattern,
            ..self.clone()
        }
    }
}

/// Values of the variables a script assigned; a name absent here is
/// unknown (it may come from the environment).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Vars(BTreeMap<String, BTreeSet<Field>>);

/// At most this many combinations of variable values are tried per command.
const MAX_WORLDS: usize = 64;

impl Vars {
    pub(super) fn set(&mut self, name: &str, values: BTreeSet<Field>) {
        if values.is_empty() || values.iter().any(|v| v.unseen) {
            self.0.remove(name);
        } else {
            self.0.insert(name.to_string(), values);
        }
    }

    pub(super) fn forget(&mut self, name: &str) {
        self.0.remove(name);
    }

    pub(super) fn forget_all(&mut self) {
        self.0.clear();
    }

    /// Values from either branch; a name unknown on one side is unknown.
    pub(super) fn join(&mut self, other: &Vars) {
        self.0.retain(|name, _| other.0.contains_key(name));
        for (name, values) in &mut self.0 {
            values.extend(other.0[name].iter().cloned());
        }
    }

    /// Every combination of values of the known variables among `names`.
    pub(super) fn worlds(&self, names: &BTreeSet<String>) -> Option<Vec<World>> {
        let mut worlds = vec![World::default()];
        for name in names {
            let Some(values) = self.0.get(name) else {
                continue;
            };
            if worlds.len() * values.len() > MAX_WORLDS {
                return None;
            }
            worlds = worlds
                .into_iter()
                .flat_map(|w| {
                    values.iter().map(move |v| {
                        let mut w = w.clone();
                        w.0.insert(name.clone(), v.clone());
                        w
                    })
                })
                .collect();
        }
        Some(worlds)
    }
}

/// One value for each known variable.
#[derive(Debug, Clone, Default)]
pub(super) struct World(BTreeMap<String, Field>);

/// Names of the variables a word refers to.
pub(super) fn names(pieces: &[Piece], into: &mut BTreeSet<String>) {
    for piece in pieces {
        if let Piece::Var { name, .. } = piece {
            into.insert(name.clone());
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Char {
    c: char,
    glob: bool,
    brace: bool,
}

#[derive(Default)]
struct Builder {
    chars: Vec<Char>,
    quoted: bool,
    unseen: bool,
    home: bool,
    literal: bool,
}

impl Builder {
    fn push(&mut self, text: &str, glob: bool, brace: bool) {
        self.chars
            .extend(text.chars().map(|c| Char { c, glob, brace }));
    }

    fn finish(self) -> Option<Field> {
        if self.chars.is_empty() && !self.quoted && !self.unseen {
            return None;
        }
        let text: String = self.chars.iter().map(|c| c.c).collect();
        let globs = has_glob(&self.chars);
        let pattern = globs.then(|| {
            self.chars
                .iter()
                .flat_map(|c| {
                    let escape = !c.glob && matches!(c.c, '*' | '?' | '[' | ']' | '\\');
                    escape.then_some('\\').into_iter().chain([c.c])
                })
                .collect()
        });
        Some(Field {
            text,
            pattern,
            brace: has_brace(&self.chars),
            unseen: self.unseen,
            home: self.home,
            literal: self.literal,
        })
    }
}

/// Expands a word into the fields a command receives (splitting unquoted
/// variable values on blanks, as the default `IFS` does).
pub(super) fn expand(pieces: &[Piece], world: &World) -> Vec<Field> {
    let mut fields = Vec::new();
    let mut current = Builder {
        literal: true,
        ..Builder::default()
    };
    for piece in pieces {
        match piece {
            Piece::Text { text, quoted } => {
                current.quoted |= quoted;
                current.push(text, !quoted, !quoted);
            }
            Piece::Var { name, quoted } => {
                current.literal = false;
                let Some(value) = world.0.get(name) else {
                    current.unseen = true;
                    current.home |= name == "HOME";
                    current.push(&UNSEEN.to_string(), false, false);
                    continue;
                };
                current.unseen |= value.unseen;
                current.home |= value.home;
                let from_pattern = value.pattern.is_some();
                if *quoted {
                    current.quoted = true;
                    current.push(&value.text, from_pattern, false);
                    continue;
                }
                let mut parts = value.text.split([' ', '\t', '\n']).peekable();
                while let Some(part) = parts.next() {
                    current.push(part, true, false);
                    if parts.peek().is_some() {
                        let done = std::mem::take(&mut current);
                        fields.extend(done.finish());
                        current.literal = false;
                    }
                }
            }
            Piece::Unseen { .. } => {
                current.literal = false;
                current.unseen = true;
                current.push(&UNSEEN.to_string(), false, false);
            }
            Piece::Home => {
                current.literal = false;
                current.unseen = true;
                current.home = true;
                current.push(&UNSEEN.to_string(), false, false);
            }
        }
    }
    fields.extend(current.finish());
    fields
}

fn has_glob(chars: &[Char]) -> bool {
    chars.iter().enumerate().any(|(i, c)| {
        c.glob
            && (matches!(c.c, '*' | '?')
                || (c.c == '[' && chars[i + 1..].iter().any(|d| d.glob && d.c == ']')))
    })
}

/// `{a,b}` or `{x..y}` with active braces: bash expands it, dash does not.
fn has_brace(chars: &[Char]) -> bool {
    let active = |c: &Char, want: char| c.brace && c.c == want;
    chars.iter().enumerate().any(|(i, open)| {
        if !active(open, '{') {
            return false;
        }
        let rest = &chars[i + 1..];
        let Some(close) = rest.iter().position(|c| active(c, '}')) else {
            return false;
        };
        let inside = &rest[..close];
        inside.iter().any(|c| active(c, ','))
            || inside
                .windows(2)
                .any(|w| active(&w[0], '.') && active(&w[1], '.'))
    })
}

#[cfg(test)]
mod tests {
    use super::super::shell::decode;
    use super::*;

    fn fields(word: &str, vars: &[(&str, &str)]) -> Vec<Field> {
        let mut world = World::default();
        for (name, value) in vars {
            world.0.insert(name.to_string(), Field::plain(value));
        }
        expand(&decode(word).unwrap(), &world)
    }

    #[test]
    fn quoting_decides_globs_and_braces() {
        assert!(fields("*.lock", &[])[0].pattern.is_some());
        assert!(fields("'*'.lock", &[])[0].pattern.is_none());
        assert_eq!(
            fields("run/'*'*", &[])[0].pattern.as_deref(),
            Some(r"run/\**")
        );
        assert!(fields("{a,b}", &[])[0].brace);
        assert!(fields("{a..c}", &[])[0].brace);
        assert!(!fields("'{a,b}'", &[])[0].brace);
        assert!(!fields("{}", &[])[0].brace);
        assert!(fields("a[bc]", &[])[0].pattern.is_some());
        assert!(fields("[", &[])[0].pattern.is_none());
    }

    #[test]
    fn known_variables_are_substituted_and_split() {
        let f = fields("$F", &[("F", "/etc/shadow x")]);
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].text, "/etc/shadow");
        assert!(!f[0].literal);
        let f = fields("\"$F\"", &[("F", "/etc/shadow x")]);
        assert_eq!(f[0].text, "/etc/shadow x");
        assert!(fields("$F", &[("F", "")]).is_empty());
        assert_eq!(fields("\"\"", &[]).len(), 1);
    }

    #[test]
    fn unknown_values_are_unseen() {
        let f = fields("/proc/$PPID/environ", &[]);
        assert!(f[0].unseen);
        assert_eq!(f[0].text, format!("/proc/{UNSEEN}/environ"));
        assert!(fields("$HOME/.ssh", &[])[0].home);
        assert!(fields("~/.ssh", &[])[0].home);
    }
}
