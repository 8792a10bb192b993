//! Which strategy the agent follows, and where it came from. For the
//! optimized policy: a skill file, else the learned hint, else the manual
//! hint; the baseline policy always gets the seed's "Fix the bug.".

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use target_service::input::{MAX_INPUT_BYTES, read_bounded};

pub const BASELINE_HINT: &str = "Fix the bug.";
pub const MANUAL_HINT: &str = include_str!("../../training_data/manual_hint.txt");
pub const DEFAULT_SKILL_FILE: &str = "skills/sre_incident_runbook/SKILL.md";
pub const LEARNED_HINT_FILE: &str = "gepa/best_hint.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HintSource {
    /// A SKILL.md runbook.
    Skill,
    /// The optimizer's best hint (artifacts/gepa/best_hint.json).
    Learned,
    /// The hand-written hint in training_data/.
    Manual,
    /// Given on the command line or in the Policy.
    Inline,
    Baseline,
}

impl HintSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Skill => "skill",
            Self::Learned => "learned",
            Self::Manual => "manual",
            Self::Inline => "inline",
            Self::Baseline => "baseline",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedHint {
    pub text: String,
    pub source: HintSource,
    /// Where it came from, or the learned hint's timestamp.
    pub version: Option<String>,
}

impl ResolvedHint {
    pub fn baseline() -> Self {
        Self {
            text: BASELINE_HINT.to_string(),
            source: HintSource::Baseline,
            version: None,
        }
    }

    pub fn manual() -> Self {
        Self {
            text: MANUAL_HINT.trim().to_string(),
            source: HintSource::Manual,
            version: Some("training_data/manual_hint.txt".into()),
        }
    }

    pub fn inline(text: &str) -> Self {
        Self {
            text: text.trim().to_string(),
            source: HintSource::Inline,
            version: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HintError {
    #[error("cannot read skill file {path}: {error}")]
    Skill {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("learned hint {path} is unreadable: {message}")]
    Learned { path: PathBuf, message: String },
}

/// The fields of `best_hint.json` this reader needs.
#[derive(Debug, Deserialize)]
struct LearnedHint {
    hint: String,
    #[serde(default)]
    timestamp: Option<String>,
}

pub fn read_skill(path: &Path) -> Result<ResolvedHint, HintError> {
    let text = read_bounded(path, MAX_INPUT_BYTES).map_err(|error| HintError::Skill {
        path: path.to_path_buf(),
        error,
    })?;
    Ok(ResolvedHint {
        text: text.trim().to_string(),
        source: HintSource::Skill,
        version: Some(path.display().to_string()),
    })
}

/// Skill file, then learned hint, then `otherwise`. Files that do not
/// exist are skipped; files that exist but cannot be read are errors, so a
/// broken artifact is never silently replaced.
pub fn resolve(
    skill_file: &Path,
    artifacts_dir: &Path,
    otherwise: ResolvedHint,
) -> Result<ResolvedHint, HintError> {
    if skill_file.exists() {
        return read_skill(skill_file);
    }
    let learned = artifacts_dir.join(LEARNED_HINT_FILE);
    if learned.exists() {
        let error = |message: String| HintError::Learned {
            path: learned.clone(),
            message,
        };
        let text = read_bounded(&learned, MAX_INPUT_BYTES).map_err(|e| error(e.to_string()))?;
        let parsed: LearnedHint = serde_json::from_str(&text).map_err(|e| error(e.to_string()))?;
        if parsed.hint.trim().is_empty() {
            return Err(error("its hint is empty".into()));
        }
        return Ok(ResolvedHint {
            text: parsed.hint.trim().to_string(),
            source: HintSource::Learned,
            version: parsed.timestamp,
        });
    }
    Ok(otherwise)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skill_wins_then_learned_then_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let skill = dir.path().join("SKILL.md");
        let artifacts = dir.path().join("artifacts");
        let got = resolve(&skill, &artifacts, ResolvedHint::manual()).unwrap();
        assert_eq!(got.source, HintSource::Manual);

        std::fs::create_dir_all(artifacts.join("gepa")).unwrap();
        std::fs::write(
            artifacts.join(LEARNED_HINT_FILE),
            r#"{"hint":"read the log first","score":0.9,"timestamp":"t1"}"#,
        )
        .unwrap();
        let got = resolve(&skill, &artifacts, ResolvedHint::manual()).unwrap();
        assert_eq!(
            (got.source, got.text.as_str()),
            (HintSource::Learned, "read the log first")
        );
        assert_eq!(got.version.as_deref(), Some("t1"));

        std::fs::write(&skill, "# Runbook\ncheck locks\n").unwrap();
        let got = resolve(&skill, &artifacts, ResolvedHint::manual()).unwrap();
        assert_eq!(got.source, HintSource::Skill);
    }

    #[test]
    fn a_broken_learned_hint_is_an_error_not_a_silent_fallback() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("gepa")).unwrap();
        std::fs::write(dir.path().join(LEARNED_HINT_FILE), "{not json").unwrap();
        let err = resolve(
            &dir.path().join("none"),
            dir.path(),
            ResolvedHint::baseline(),
        );
        assert!(matches!(err, Err(HintError::Learned { .. })), "{err:?}");
    }
}
