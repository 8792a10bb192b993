//! The agent's action vocabulary: what a brain may propose, what the gate
//! judges, what a workspace executes, and the wire format of the Action API.
//! The catalog's oracle fixes are written in it too.

use serde::{Deserialize, Serialize};

/// One thing an agent does to a service's workspace. Paths are relative to
/// the service root unless absolute.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// A shell command run with the service root as working directory.
    Exec(String),
    ReadFile(String),
    WriteFile {
        path: String,
        content: String,
    },
    /// GET a path on the service's expected address.
    HttpGet(String),
    /// Ask the supervisor to restart the service (rereads env and config).
    RestartService,
}

/// Longest action text kept in status and logs.
const MAX_TEXT: usize = 500;

impl Action {
    /// The kind as status and trajectories name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Exec(_) => "exec",
            Action::ReadFile(_) => "read_file",
            Action::WriteFile { .. } => "write_file",
            Action::HttpGet(_) => "http_get",
            Action::RestartService => "restart_service",
        }
    }

    /// The SHA-256 of the whole action (a write's content included), in
    /// hex: what an approval link is bound to.
    pub fn digest(&self) -> String {
        let text = serde_json::to_string(self).unwrap_or_default();
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
        digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The action as one bounded line for status and logs (file contents
    /// elided).
    pub fn summary(&self) -> String {
        let text = match self {
            Action::Exec(command) => command.clone(),
            Action::ReadFile(path) => path.clone(),
            Action::WriteFile { path, content } => format!("{path} ({} bytes)", content.len()),
            Action::HttpGet(path) => format!("GET {path}"),
            Action::RestartService => "restart".to_string(),
        };
        truncate_chars(&text, MAX_TEXT)
    }

    /// Whether it may change the workspace (a snapshot and a regression
    /// check follow such actions).
    pub fn may_mutate(&self) -> bool {
        !matches!(self, Action::ReadFile(_) | Action::HttpGet(_))
    }
}

/// `text` cut to at most `max` characters, with an ellipsis when cut.
/// `text` with every character that could hide or reorder what a person
/// reads (controls other than newline and tab, bidirectional overrides and
/// isolates, zero-width characters) written out as `\u{XXXX}`, so what is
/// shown for approval is what would run.
pub fn visible(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        // Controls, format characters (bidi marks and overrides, zero-width
        // joiners, invisible operators, tags), line and paragraph
        // separators, variation selectors and blank fillers.
        let hidden = (c.is_control() && c != '\n' && c != '\t')
            || matches!(c as u32,
                0x00AD | 0x034F | 0x061C | 0x115F | 0x1160 | 0x17B4 | 0x17B5
                | 0x180B..=0x180F | 0x200B..=0x200F | 0x2028..=0x202E
                | 0x2060..=0x206F | 0x3164 | 0xFE00..=0xFE0F | 0xFEFF | 0xFFA0
                | 0xFFF0..=0xFFFB | 0x1D173..=0x1D17A | 0xE0000..=0xE0FFF);
        if hidden {
            out.push_str(&format!("\\u{{{:04X}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

pub fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_characters_are_made_visible() {
        assert_eq!(
            visible("rm x\u{202E}txt.\u{200B}\r\n\tok"),
            "rm x\\u{202E}txt.\\u{200B}\\u{000D}\n\tok"
        );
        assert_eq!(visible("plain text é"), "plain text é");
    }

    #[test]
    fn the_wire_format_is_one_key_per_action() {
        let actions = vec![
            Action::Exec("ls".into()),
            Action::WriteFile {
                path: "a".into(),
                content: "b".into(),
            },
            Action::RestartService,
        ];
        let json = serde_json::to_string(&actions).unwrap();
        assert_eq!(
            json,
            r#"[{"exec":"ls"},{"write_file":{"path":"a","content":"b"}},"restart_service"]"#
        );
        let back: Vec<Action> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, actions);
        assert!(serde_json::from_str::<Action>(r#"{"exec":"ls","extra":1}"#).is_err());
    }

    #[test]
    fn summaries_are_bounded_and_elide_contents() {
        let long = Action::Exec("x".repeat(2000));
        assert_eq!(long.summary().chars().count(), MAX_TEXT + 1);
        let write = Action::WriteFile {
            path: "service.env".into(),
            content: "SECRET=1".into(),
        };
        assert_eq!(write.summary(), "service.env (8 bytes)");
        assert_eq!(truncate_chars("héllo", 2), "hé…");
    }
}
