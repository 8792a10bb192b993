//! The one way a path or a value enters a shell command the runbook
//! builds: single-quoted, so nothing in it is expanded, split or globbed
//! (spaces, quotes, `$`, `*`, unicode and newlines included), and placed
//! after `--`, so a leading dash is never an option.

/// `text` as one single-quoted shell word: `'` becomes `'\''`.
pub fn shell_word(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// A relative path as one shell word. `--` stops options, but some tools
/// still read a lone `-` as standard input or output (`touch -` touches
/// stdout), so that name becomes `./-`.
pub fn path_word(path: &str) -> String {
    if path == "-" || path.starts_with("-/") {
        shell_word(&format!("./{path}"))
    } else {
        shell_word(path)
    }
}

/// `text` as the replacement of a sed `s/…/…/` command: the characters
/// sed treats specially there (`\`, `&`, the `/` delimiter, a newline)
/// escaped, so the line written is exactly `text`.
pub fn sed_replacement(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | '&' | '/' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            _ => out.push(c),
        }
    }
    out
}

/// A plain config key or variable name: safe in a regex and in a shell
/// word without escaping (letters, digits and `_`).
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_single_quoted_with_quotes_closed_and_reopened() {
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word("$(id)"), "'$(id)'");
        assert_eq!(shell_word("-rf"), "'-rf'");
        assert_eq!(path_word("-"), "'./-'");
        assert_eq!(path_word("-/x"), "'./-/x'");
        assert_eq!(path_word("run/-"), "'run/-'");
    }

    #[test]
    fn sed_replacements_escape_what_sed_reads() {
        assert_eq!(sed_replacement(r"a/b&c\d"), r"a\/b\&c\\d");
        assert!(is_plain_name("max_connections") && !is_plain_name("a.b") && !is_plain_name(""));
    }
}
