//! Which strategy the agent follows, and where it came from. For the
//! optimized policy: a skill file, else the learned hint, else the manual
//! hint; the baseline policy always gets the seed's "Fix the bug.".
//!
//! The learned hint is the published one of `artifacts/gepa/best_hint.json`
//! and `artifacts/iterative/best_hint.json` with the higher validation
//! score (GEPA's on a tie; one without a validation score ranks last).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use target_service::input::{MAX_INPUT_BYTES, read_bounded};

pub const BASELINE_HINT: &str = "Fix the bug.";
pub const MANUAL_HINT: &str = include_str!("../../training_data/manual_hint.txt");
pub const DEFAULT_SKILL_FILE: &str = "skills/sre_incident_runbook/SKILL.md";
pub const LEARNED_HINT_FILE: &str = "gepa/best_hint.json";
pub const ITERATIVE_HINT_FILE: &str = "iterative/best_hint.json";

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
    #[serde(default)]
    validation_score: Option<f64>,
}

/// A skill's path, with the `version:` of its front matter when it has one.
pub fn read_skill(path: &Path) -> Result<ResolvedHint, HintError> {
    let text = read_bounded(path, MAX_INPUT_BYTES).map_err(|error| HintError::Skill {
        path: path.to_path_buf(),
        error,
    })?;
    let version = front_matter_version(&text).map_or_else(
        || path.display().to_string(),
        |v| format!("{} ({v})", path.display()),
    );
    Ok(ResolvedHint {
        text: text.trim().to_string(),
        source: HintSource::Skill,
        version: Some(version),
    })
}

fn front_matter_version(text: &str) -> Option<String> {
    let body = text.trim_start().strip_prefix("---")?;
    body.lines()
        .skip(1)
        .take_while(|line| line.trim_end() != "---")
        .find_map(|line| line.strip_prefix("version:"))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn read_learned(path: &Path) -> Result<LearnedHint, HintError> {
    let error = |message: String| HintError::Learned {
        path: path.to_path_buf(),
        message,
    };
    let text = read_bounded(path, MAX_INPUT_BYTES).map_err(|e| error(e.to_string()))?;
    let parsed: LearnedHint = serde_json::from_str(&text).map_err(|e| error(e.to_string()))?;
    if parsed.hint.trim().is_empty() {
        return Err(error("its hint is empty".into()));
    }
    Ok(parsed)
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
    let mut best: Option<(&str, LearnedHint)> = None;
    for file in [LEARNED_HINT_FILE, ITERATIVE_HINT_FILE] {
        let path = artifacts_dir.join(file);
        if !path.exists() {
            continue;
        }
        let learned = read_learned(&path)?;
        let rank = |l: &LearnedHint| l.validation_score.unwrap_or(f64::NEG_INFINITY);
        if best.as_ref().is_none_or(|(_, b)| rank(&learned) > rank(b)) {
            best = Some((file, learned));
        }
    }
    if let Some((file, learned)) = best {
        return Ok(ResolvedHint {
            text: learned.hint.trim().to_string(),
            source: HintSource::Learned,
            version: Some(match learned.timestamp {
                Some(t) => format!("{file} {t}"),
                None => file.to_string(),
            }),
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
        assert_eq!(got.version.as_deref(), Some("gepa/best_hint.json t1"));

        // A better validated iterative result wins over GEPA's.
        std::fs::create_dir_all(artifacts.join("iterative")).unwrap();
        std::fs::write(
            artifacts.join(ITERATIVE_HINT_FILE),
            r#"{"hint":"check locks first","validation_score":0.8,"timestamp":"t2"}"#,
        )
        .unwrap();
        let got = resolve(&skill, &artifacts, ResolvedHint::manual()).unwrap();
        assert_eq!(got.text, "check locks first");
        assert_eq!(got.version.as_deref(), Some("iterative/best_hint.json t2"));
        std::fs::write(
            artifacts.join(LEARNED_HINT_FILE),
            r#"{"hint":"read the log first","validation_score":0.8,"timestamp":"t3"}"#,
        )
        .unwrap();
        let got = resolve(&skill, &artifacts, ResolvedHint::manual()).unwrap();
        assert_eq!(got.text, "read the log first", "GEPA's on a tie");

        std::fs::write(
            &skill,
            "---\nname: r\nversion: v9\n---\n# Runbook\ncheck locks\n",
        )
        .unwrap();
        let got = resolve(&skill, &artifacts, ResolvedHint::manual()).unwrap();
        assert_eq!(got.source, HintSource::Skill);
        assert_eq!(got.version, Some(format!("{} (v9)", skill.display())));
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
