//! A conservative shell lexer: enough of POSIX sh to see which commands a
//! line runs and where it writes. Whatever it cannot see through (command
//! substitution, heredocs, unbalanced quotes) is reported, never guessed.

/// One simple command: its words (quotes removed), where it redirects,
/// and how it is joined to the next command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimpleCommand {
    pub words: Vec<Word>,
    pub redirects: Vec<Redirect>,
    /// Its output feeds the next command (`|`).
    pub piped_into_next: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    /// Contains `$NAME` or `${...}`: its value is not known before it runs.
    pub expands: bool,
    /// Contains an unquoted glob character.
    pub globs: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    pub op: String,
    pub target: Word,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub commands: Vec<SimpleCommand>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Opaque {
    #[error("unterminated quote")]
    UnterminatedQuote,
    #[error("command or process substitution")]
    Substitution,
    #[error("here-document")]
    HereDoc,
    #[error("redirection without a target")]
    DanglingRedirect,
}

#[derive(Debug, PartialEq)]
enum Token {
    Word(Word),
    /// `;`, `&&`, `||`, `&`, `(`, `)`, newline: a command ends.
    Separator,
    Pipe,
    Redirect(String),
}

/// Splits a command line into simple commands, or says why it cannot.
pub fn parse(line: &str) -> Result<Parsed, Opaque> {
    let tokens = lex(line)?;
    let mut commands = Vec::new();
    let mut current = SimpleCommand::default();
    let mut tokens = tokens.into_iter().peekable();
    while let Some(token) = tokens.next() {
        match token {
            Token::Word(word) => current.words.push(word),
            Token::Redirect(op) => match tokens.next() {
                Some(Token::Word(target)) => current.redirects.push(Redirect { op, target }),
                _ => return Err(Opaque::DanglingRedirect),
            },
            Token::Pipe | Token::Separator => {
                current.piped_into_next = token == Token::Pipe;
                if !current.words.is_empty() || !current.redirects.is_empty() {
                    commands.push(std::mem::take(&mut current));
                }
            }
        }
    }
    if !current.words.is_empty() || !current.redirects.is_empty() {
        commands.push(current);
    }
    Ok(Parsed { commands })
}

fn lex(line: &str) -> Result<Vec<Token>, Opaque> {
    let chars: Vec<char> = line.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let mut word: Option<Word> = None;
    let flush = |word: &mut Option<Word>, tokens: &mut Vec<Token>| {
        if let Some(w) = word.take() {
            tokens.push(Token::Word(w));
        }
    };
    let start = |word: &mut Option<Word>| {
        word.get_or_insert(Word {
            text: String::new(),
            expands: false,
            globs: false,
        });
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' => {
                flush(&mut word, &mut tokens);
                i += 1;
            }
            '\n' | ';' | '(' | ')' => {
                flush(&mut word, &mut tokens);
                tokens.push(Token::Separator);
                i += 1;
            }
            '#' if word.is_none() => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '&' => {
                flush(&mut word, &mut tokens);
                if chars.get(i + 1) == Some(&'>') {
                    let op = if chars.get(i + 2) == Some(&'>') {
                        "&>>"
                    } else {
                        "&>"
                    };
                    i += op.len();
                    tokens.push(Token::Redirect(op.into()));
                } else {
                    i += if chars.get(i + 1) == Some(&'&') { 2 } else { 1 };
                    tokens.push(Token::Separator);
                }
            }
            '|' => {
                flush(&mut word, &mut tokens);
                match chars.get(i + 1) {
                    Some('|') => {
                        tokens.push(Token::Separator);
                        i += 2;
                    }
                    Some('&') => {
                        tokens.push(Token::Pipe);
                        i += 2;
                    }
                    _ => {
                        tokens.push(Token::Pipe);
                        i += 1;
                    }
                }
            }
            '<' | '>' => {
                if chars.get(i + 1) == Some(&'(') {
                    return Err(Opaque::Substitution);
                }
                if c == '<' && chars.get(i + 1) == Some(&'<') {
                    return Err(Opaque::HereDoc);
                }
                // A word made only of digits right before is a file descriptor.
                let fd = match &word {
                    Some(w) if !w.text.is_empty() && w.text.chars().all(|d| d.is_ascii_digit()) => {
                        word.take().map(|w| w.text).unwrap_or_default()
                    }
                    _ => {
                        flush(&mut word, &mut tokens);
                        String::new()
                    }
                };
                let mut op = format!("{fd}{c}");
                i += 1;
                if c == '>' && matches!(chars.get(i), Some('>') | Some('|')) {
                    op.push(chars[i]);
                    i += 1;
                }
                if chars.get(i) == Some(&'&') {
                    // `2>&1`, `>&2`: duplicates a descriptor, writes no file.
                    op.push('&');
                    i += 1;
                }
                tokens.push(Token::Redirect(op));
            }
            '\'' => {
                start(&mut word);
                let end = chars[i + 1..]
                    .iter()
                    .position(|&q| q == '\'')
                    .ok_or(Opaque::UnterminatedQuote)?;
                let w = word.as_mut().expect("started");
                w.text.extend(&chars[i + 1..i + 1 + end]);
                i += end + 2;
            }
            '"' => {
                start(&mut word);
                i += 1;
                loop {
                    let Some(&d) = chars.get(i) else {
                        return Err(Opaque::UnterminatedQuote);
                    };
                    let w = word.as_mut().expect("started");
                    match d {
                        '"' => {
                            i += 1;
                            break;
                        }
                        '\\' if matches!(chars.get(i + 1), Some('"' | '\\' | '$' | '`')) => {
                            w.text.push(chars[i + 1]);
                            i += 2;
                        }
                        '`' => return Err(Opaque::Substitution),
                        '$' => {
                            if chars.get(i + 1) == Some(&'(') {
                                return Err(Opaque::Substitution);
                            }
                            w.expands |= is_expansion_start(chars.get(i + 1));
                            w.text.push(d);
                            i += 1;
                        }
                        _ => {
                            w.text.push(d);
                            i += 1;
                        }
                    }
                }
            }
            '\\' => {
                start(&mut word);
                match chars.get(i + 1) {
                    Some('\n') => {}
                    Some(&escaped) => word.as_mut().expect("started").text.push(escaped),
                    None => {}
                }
                i += 2;
            }
            '`' => return Err(Opaque::Substitution),
            '$' => {
                if chars.get(i + 1) == Some(&'(') {
                    return Err(Opaque::Substitution);
                }
                start(&mut word);
                let w = word.as_mut().expect("started");
                w.expands |= is_expansion_start(chars.get(i + 1));
                w.text.push('$');
                i += 1;
            }
            '*' | '?' | '[' => {
                start(&mut word);
                let w = word.as_mut().expect("started");
                w.globs = true;
                w.text.push(c);
                i += 1;
            }
            _ => {
                start(&mut word);
                word.as_mut().expect("started").text.push(c);
                i += 1;
            }
        }
    }
    flush(&mut word, &mut tokens);
    Ok(tokens)
}

fn is_expansion_start(next: Option<&char>) -> bool {
    matches!(next, Some(c) if c.is_ascii_alphanumeric() || matches!(c, '_' | '{' | '@' | '*' | '#' | '?' | '!' | '-' | '$'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<Vec<String>> {
        parse(line)
            .unwrap()
            .commands
            .into_iter()
            .map(|c| c.words.into_iter().map(|w| w.text).collect())
            .collect()
    }

    #[test]
    fn quotes_and_escapes_are_removed() {
        assert_eq!(words(r#"'r'm -"r"f \/"#), vec![vec!["rm", "-rf", "/"]]);
        assert_eq!(words("r''m   x"), vec![vec!["rm", "x"]]);
    }

    #[test]
    fn operators_split_commands() {
        assert_eq!(
            words("ls; cat a && rm b || echo c | sh & (touch d)\nid"),
            vec![
                vec!["ls"],
                vec!["cat", "a"],
                vec!["rm", "b"],
                vec!["echo", "c"],
                vec!["sh"],
                vec!["touch", "d"],
                vec!["id"]
            ]
        );
        let parsed = parse("curl x | sh").unwrap();
        assert!(parsed.commands[0].piped_into_next);
    }

    #[test]
    fn redirections_are_seen_with_their_targets() {
        let parsed = parse("echo hi >> /etc/hosts 2>&1").unwrap();
        let r = &parsed.commands[0].redirects;
        assert_eq!(r[0].op, ">>");
        assert_eq!(r[0].target.text, "/etc/hosts");
        assert_eq!(r[1].op, "2>&");
        assert_eq!(r[1].target.text, "1");
        assert_eq!(parsed.commands[0].words.len(), 2);
    }

    #[test]
    fn what_cannot_be_seen_through_is_opaque() {
        assert_eq!(parse("echo $(id)"), Err(Opaque::Substitution));
        assert_eq!(parse("echo `id`"), Err(Opaque::Substitution));
        assert_eq!(parse("diff <(ls) x"), Err(Opaque::Substitution));
        assert_eq!(parse("cat <<EOF"), Err(Opaque::HereDoc));
        assert_eq!(parse("echo 'x"), Err(Opaque::UnterminatedQuote));
        assert_eq!(parse("echo >"), Err(Opaque::DanglingRedirect));
    }

    #[test]
    fn expansions_and_globs_are_flagged() {
        let parsed = parse("rm $DIR run/*.lock '*'").unwrap();
        let w = &parsed.commands[0].words;
        assert!(w[1].expands);
        assert!(w[2].globs);
        assert!(!w[3].globs, "a quoted star is literal");
    }
}
