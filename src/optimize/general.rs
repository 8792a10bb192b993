//! A learned hint must stay general: it may choose and order checks and
//! rules, never name a scenario or carry a scenario's answer. This guard
//! refuses a hint that names a scenario id or a fault-specific token of the
//! catalog (a file a scenario creates or removes, a variable it unsets, a
//! config key or line it writes, a file or name its checks require). The
//! service's own two files (`service.conf`, `service.env`), which every
//! scenario shares, are not fault-specific.

use std::collections::BTreeSet;

use target_service::catalog::{Condition, SetupStep};

use crate::scenario::Catalog;

const SHARED_FILES: [&str; 2] = ["service.conf", "service.env"];

/// A token is specific when it could only be an answer: it has a `_`, `.`
/// or `/` in it, or spaces (a whole line a scenario writes).
fn specific(token: &str) -> bool {
    let token = token.trim();
    token.len() >= 3
        && token.contains(['_', '.', '/', ' '])
        && !SHARED_FILES.contains(&token.trim_end_matches('/'))
}

/// What no learned hint may mention for this catalog.
pub fn forbidden(catalog: &Catalog) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for scenario in &catalog.scenarios {
        out.insert(scenario.id.clone());
        out.insert(scenario.id.replace('_', "-"));
        let mut tokens: Vec<&str> = Vec::new();
        for step in &scenario.setup {
            match step {
                SetupStep::WriteFile { path, .. } | SetupStep::Mkdir { path, .. } => {
                    tokens.push(path)
                }
                SetupStep::Chmod { path, .. } | SetupStep::RemoveFile(path) => tokens.push(path),
                SetupStep::AppendLine { path, line } => tokens.extend([path.as_str(), line]),
                SetupStep::SetConfig { key, .. } => tokens.push(key),
                SetupStep::SetEnv { name, .. } | SetupStep::UnsetEnv(name) => tokens.push(name),
            }
        }
        for check in &scenario.checks {
            match &check.require {
                Condition::FileAbsent(path)
                | Condition::FilePresent(path)
                | Condition::DirWritable(path) => tokens.push(path),
                Condition::EnvSet(name) => tokens.push(name),
                Condition::ConfigEquals { key, .. } => tokens.push(key),
            }
        }
        out.extend(
            tokens
                .into_iter()
                .filter(|t| {
                    specific(t) || t.chars().any(|c| c.is_ascii_uppercase()) && t.len() >= 4
                })
                .map(|t| t.trim().to_string()),
        );
    }
    out
}

/// Ok, or which forbidden names the hint uses.
pub fn check(hint: &str, forbidden: &BTreeSet<String>) -> Result<(), String> {
    let lower = hint.to_lowercase();
    let found: Vec<&str> = forbidden
        .iter()
        .filter(|token| {
            let token = token.to_lowercase();
            lower.match_indices(&token).any(|(at, _)| {
                let before = lower[..at].chars().next_back();
                let after = lower[at + token.len()..].chars().next();
                let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
                !word(before) && !word(after)
            })
        })
        .map(String::as_str)
        .collect();
    if found.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the hint is not general: it names {} (a scenario id or a scenario's own file, variable or key)",
            found.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optimize::strategy::Strategy;

    #[test]
    fn the_manual_and_every_rendered_hint_are_general_answers_are_not() {
        let catalog = crate::scenario::load_catalog(None).unwrap();
        let forbidden = forbidden(&catalog);
        for token in [
            "stale_lockfile",
            "service.lock",
            "REQUIRED_API_KEY",
            "maintenance_mode",
            "run/worker.lock",
            "max_connections 256",
        ] {
            assert!(forbidden.contains(token), "{token} in {forbidden:?}");
        }
        assert!(!forbidden.contains("service.conf") && !forbidden.contains("port"));
        check(crate::agent::hint::MANUAL_HINT, &forbidden).unwrap();
        let mut s = Strategy::of_hint(crate::agent::hint::MANUAL_HINT);
        s.targeted = true;
        s.direct = true;
        check(&s.hint(), &forbidden).unwrap();
        check("Edit service.conf and restart.", &forbidden).unwrap();
        for bad in [
            "First remove service.lock.",
            "This looks like stale_lockfile: fix it.",
            "Set REQUIRED_API_KEY=local-dev-key in the env file.",
            "set maintenance_mode back",
        ] {
            let err = check(bad, &forbidden).unwrap_err();
            assert!(err.contains("not general"), "{bad}: {err}");
        }
        // Part of a longer word is not a mention.
        check("the lockfile_checker_x tool", &forbidden).unwrap();
    }
}
