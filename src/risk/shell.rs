//! The shell grammar the classifier reads commands with: brush-parser, a
//! bash-compatible parser. A command runs under `/bin/sh`, which is dash on
//! Debian and bash elsewhere, so every script is parsed twice, once as bash
//! reads it and once as a POSIX sh reads it (where `&>` is `&` then `>`),
//! and classified under both. Words are decoded here into pieces with their
//! quoting kept; whatever cannot be seen through is an [`Opaque`] error,
//! never a guess.

use std::panic::{AssertUnwindSafe, catch_unwind};

pub(super) use brush_parser::ast;
use brush_parser::word::{self, Parameter, ParameterExpr, SpecialParameter, TildeExpr, WordPiece};
use brush_parser::{Parser, ParserOptions};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Grammar {
    Bash,
    /// POSIX sh as dash reads it: no `&>`, `|&`, `<<<`, `[[`, arrays.
    Sh,
}

impl Grammar {
    fn options(self) -> ParserOptions {
        ParserOptions {
            // Off in a non-interactive bash, absent in dash.
            enable_extended_globbing: false,
            sh_mode: self == Grammar::Sh,
            ..ParserOptions::default()
        }
    }
}

/// What the classifier cannot see through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum Opaque {
    #[error("it does not parse as shell ({0})")]
    Syntax(String),
    #[error("command substitution runs a command it cannot see")]
    Substitution,
    #[error("`$'…'` and `$\"…\"` mean different things to bash and dash")]
    ShellsDisagree,
    #[error("parameter expansion `{0}` is not evaluated by the classifier")]
    ParameterOperator(String),
    #[error("arithmetic `{0}` can have side effects")]
    Arithmetic(String),
}

/// One piece of a word after quote removal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Piece {
    /// Literal text. Unquoted text is subject to globbing and brace
    /// expansion; quoted text is not.
    Text { text: String, quoted: bool },
    /// `$NAME`, `${NAME}`, `$1`; `$@` and `$*` are the name `@`.
    Var { name: String, quoted: bool },
    /// A value the text does not tell: `$$`, `$?`, `$#`, `$((1+2))`, `~+`.
    Unseen { quoted: bool },
    /// `~` or `~user`: somebody's home directory.
    Home,
}

/// Parses a script, or says why it cannot be read.
pub(super) fn parse(script: &str, grammar: Grammar) -> Result<ast::Program, Opaque> {
    if has_long_io_number(script) {
        // brush-parser 0.4 panics on an fd number that overflows (`99999999999>x`).
        return Err(Opaque::Syntax("descriptor number out of range".into()));
    }
    let options = grammar.options();
    let parsed = catch_unwind(AssertUnwindSafe(|| {
        Parser::new(std::io::Cursor::new(script.as_bytes()), &options).parse_program()
    }));
    match parsed {
        Ok(Ok(program)) => Ok(program),
        Ok(Err(e)) => Err(Opaque::Syntax(e.to_string())),
        Err(_) => Err(Opaque::Syntax("the parser failed".into())),
    }
}

fn has_long_io_number(script: &str) -> bool {
    let mut digits = 0;
    for c in script.chars() {
        match c {
            '0'..='9' => digits += 1,
            '<' | '>' if digits >= 10 => return true,
            _ => digits = 0,
        }
    }
    false
}

/// Decodes one word of the script into pieces.
pub(super) fn decode(raw: &str) -> Result<Vec<Piece>, Opaque> {
    let parsed = catch_unwind(|| word::parse(raw, &Grammar::Bash.options()));
    let pieces = match parsed {
        Ok(Ok(pieces)) => pieces,
        Ok(Err(e)) => return Err(Opaque::Syntax(e.to_string())),
        Err(_) => return Err(Opaque::Syntax("the word parser failed".into())),
    };
    let mut out = Vec::new();
    for (i, piece) in pieces.into_iter().enumerate() {
        push_piece(piece.piece, false, i == 0, &mut out)?;
    }
    Ok(out)
}

fn push_piece(
    piece: WordPiece,
    quoted: bool,
    at_start: bool,
    out: &mut Vec<Piece>,
) -> Result<(), Opaque> {
    match piece {
        WordPiece::Text(text) if !quoted && at_start => split_assignment_tilde(&text, out),
        WordPiece::Text(text) => out.push(Piece::Text { text, quoted }),
        WordPiece::SingleQuotedText(text) => out.push(Piece::Text { text, quoted: true }),
        WordPiece::EscapeSequence(seq) => {
            let escaped: String = seq.chars().skip(1).collect();
            match escaped.as_str() {
                "\n" => {}
                // Inside double quotes only `$ ` " \` lose their backslash.
                _ if quoted && !matches!(escaped.as_str(), "$" | "`" | "\"" | "\\") => {
                    out.push(Piece::Text { text: seq, quoted })
                }
                _ => out.push(Piece::Text {
                    text: escaped,
                    quoted: true,
                }),
            }
        }
        WordPiece::DoubleQuotedSequence(inner) => {
            // `""` is an empty word, not no word.
            out.push(Piece::Text {
                text: String::new(),
                quoted: true,
            });
            for p in inner {
                push_piece(p.piece, true, false, out)?;
            }
        }
        WordPiece::AnsiCQuotedText(_) | WordPiece::GettextDoubleQuotedSequence(_) => {
            return Err(Opaque::ShellsDisagree);
        }
        WordPiece::TildeExpansion(TildeExpr::Home | TildeExpr::UserHome(_)) => {
            out.push(Piece::Home)
        }
        WordPiece::TildeExpansion(_) => out.push(Piece::Unseen { quoted }),
        WordPiece::ParameterExpansion(expr) => out.push(parameter(expr, quoted)?),
        WordPiece::CommandSubstitution(_) | WordPiece::BackquotedCommandSubstitution(_) => {
            return Err(Opaque::Substitution);
        }
        WordPiece::ArithmeticExpression(expr) => {
            if !arithmetic_is_inert(&expr.value) {
                return Err(Opaque::Arithmetic(expr.value));
            }
            out.push(Piece::Unseen { quoted });
        }
    }
    Ok(())
}

/// `of=~/x` as an argument: bash expands a tilde after the `=` of a word
/// that looks like an assignment.
fn split_assignment_tilde(text: &str, out: &mut Vec<Piece>) {
    if let Some((name, rest)) = text.split_once("=~")
        && is_name(name)
        && (rest.is_empty() || rest.starts_with('/'))
    {
        out.push(Piece::Text {
            text: format!("{name}="),
            quoted: false,
        });
        out.push(Piece::Home);
        out.push(Piece::Text {
            text: rest.to_string(),
            quoted: false,
        });
    } else {
        out.push(Piece::Text {
            text: text.to_string(),
            quoted: false,
        });
    }
}

fn parameter(expr: ParameterExpr, quoted: bool) -> Result<Piece, Opaque> {
    let ParameterExpr::Parameter {
        parameter,
        indirect: false,
    } = expr
    else {
        return Err(Opaque::ParameterOperator(format!("{expr:?}")));
    };
    Ok(match parameter {
        Parameter::Named(name) => Piece::Var { name, quoted },
        Parameter::Positional(n) => Piece::Var {
            name: n.to_string(),
            quoted,
        },
        Parameter::Special(SpecialParameter::AllPositionalParameters { .. }) => Piece::Var {
            name: "@".into(),
            quoted,
        },
        Parameter::Special(_) => Piece::Unseen { quoted },
        other => return Err(Opaque::ParameterOperator(other.to_string())),
    })
}

/// Digits and operators only. With no names there is nothing to assign
/// to and no variable whose value bash would evaluate as an expression
/// (`a[$(cmd)]` included).
pub(super) fn arithmetic_is_inert(expr: &str) -> bool {
    expr.chars().all(|c| {
        c.is_ascii_digit()
            || c.is_whitespace()
            || matches!(
                c,
                '+' | '-'
                    | '*'
                    | '/'
                    | '%'
                    | '('
                    | ')'
                    | '<'
                    | '>'
                    | '='
                    | '!'
                    | '&'
                    | '|'
                    | '^'
                    | '~'
            )
    })
}

/// Checks a here-document body that the shell expands.
pub(super) fn check_heredoc(doc: &str) -> Result<(), Opaque> {
    let pieces = word::parse_heredoc(doc, &Grammar::Bash.options())
        .map_err(|e| Opaque::Syntax(e.to_string()))?;
    let mut sink = Vec::new();
    for piece in pieces {
        push_piece(piece.piece, true, false, &mut sink)?;
    }
    Ok(())
}

pub(super) fn is_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(pieces: &[Piece]) -> String {
        pieces
            .iter()
            .map(|p| match p {
                Piece::Text { text, .. } => text.clone(),
                Piece::Var { name, .. } => format!("${name}"),
                Piece::Unseen { .. } => "?".into(),
                Piece::Home => "~".into(),
            })
            .collect()
    }

    #[test]
    fn quotes_and_escapes_are_removed_as_the_shell_does() {
        assert_eq!(text(&decode(r#"'r'm"#).unwrap()), "rm");
        assert_eq!(text(&decode(r#"\r\m"#).unwrap()), "rm");
        assert_eq!(text(&decode(r#""a\$b\c""#).unwrap()), r"a$b\c");
        assert_eq!(text(&decode("a\\\nb").unwrap()), "ab");
        let star = decode("'*'").unwrap();
        assert_eq!(
            star.last(),
            Some(&Piece::Text {
                text: "*".into(),
                quoted: true
            })
        );
    }

    #[test]
    fn expansions_are_pieces() {
        assert_eq!(
            decode("$HOME/x").unwrap()[0],
            Piece::Var {
                name: "HOME".into(),
                quoted: false
            }
        );
        assert_eq!(decode("~/x").unwrap()[0], Piece::Home);
        assert_eq!(text(&decode("of=~/.bashrc").unwrap()), "of=~/.bashrc");
        assert!(decode("of=~/.bashrc").unwrap().contains(&Piece::Home));
    }

    #[test]
    fn what_cannot_be_seen_through_is_opaque() {
        assert_eq!(decode("$(id)"), Err(Opaque::Substitution));
        assert_eq!(decode("`id`"), Err(Opaque::Substitution));
        assert_eq!(decode("\"a$(id)\""), Err(Opaque::Substitution));
        assert_eq!(decode("$'\\x72m'"), Err(Opaque::ShellsDisagree));
        assert_eq!(decode("$\"rm\""), Err(Opaque::ShellsDisagree));
        assert!(matches!(
            decode("${X:-/etc}"),
            Err(Opaque::ParameterOperator(_))
        ));
        assert!(matches!(decode("$((x=1))"), Err(Opaque::Arithmetic(_))));
        assert!(decode("$((1+2))").is_ok());
        assert!(parse("echo hi 99999999999999999999>x", Grammar::Bash).is_err());
        assert!(parse("echo 'x", Grammar::Bash).is_err());
    }

    #[test]
    fn sh_reads_ampersand_redirect_as_background() {
        let bash = parse("ls &>o", Grammar::Bash).unwrap();
        let sh = parse("ls &>o", Grammar::Sh).unwrap();
        assert_eq!(bash.complete_commands[0].0.len(), 1);
        assert_eq!(sh.complete_commands[0].0.len(), 2);
    }

    #[test]
    fn inert_arithmetic_has_no_names_or_assignments() {
        assert!(arithmetic_is_inert("1 + 2 * (3 - 1) >= 2 == 1"));
        assert!(!arithmetic_is_inert("i"));
        assert!(!arithmetic_is_inert("x=1"));
        assert!(!arithmetic_is_inert("a[$(id)]"));
    }
}
