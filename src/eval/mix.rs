//! What a fan-out draws incidents from: a scenario mix (`a=3,b=1`, every
//! name checked against the catalog) and severities. Severity says how
//! much an incident hurts, not what broke, so it is drawn per incident
//! (default 10% SEV1, 20% SEV2, 40% SEV3, 30% SEV4); SEV1 is served first.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Sev1,
    Sev2,
    Sev3,
    Sev4,
}

impl Severity {
    pub const ALL: [Severity; 4] = [Self::Sev1, Self::Sev2, Self::Sev3, Self::Sev4];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sev1 => "sev1",
            Self::Sev2 => "sev2",
            Self::Sev3 => "sev3",
            Self::Sev4 => "sev4",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MixError {
    #[error("{what}: `{entry}` is not NAME=WEIGHT")]
    Syntax { what: &'static str, entry: String },
    #[error("{what}: weight of `{name}` must be a finite number >= 0, not `{weight}`")]
    Weight {
        what: &'static str,
        name: String,
        weight: String,
    },
    #[error("{what}: unknown {kind} `{name}` (known: {known})")]
    Unknown {
        what: &'static str,
        kind: &'static str,
        name: String,
        known: String,
    },
    #[error("{what}: `{name}` is named twice")]
    Duplicate { what: &'static str, name: String },
    #[error("{what}: every weight is zero")]
    AllZero { what: &'static str },
    #[error("{what}: nothing to draw from")]
    Empty { what: &'static str },
}

/// Names with their weights, in the order given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Weights {
    pub names: Vec<String>,
    pub weights: Vec<f64>,
}

impl Weights {
    pub fn uniform(names: &[String]) -> Result<Self, MixError> {
        if names.is_empty() {
            return Err(MixError::Empty { what: "mix" });
        }
        Ok(Self {
            names: names.to_vec(),
            weights: vec![1.0; names.len()],
        })
    }

    /// Parses `a=3,b=1` (a bare `a` weighs 1), every name one of `known`.
    pub fn parse(
        text: &str,
        known: &[String],
        what: &'static str,
        kind: &'static str,
    ) -> Result<Self, MixError> {
        let mut names = Vec::new();
        let mut weights = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, weight) = match entry.split_once('=') {
                Some((name, weight)) => (name.trim(), weight.trim()),
                None => (entry, "1"),
            };
            if name.is_empty() {
                return Err(MixError::Syntax {
                    what,
                    entry: entry.into(),
                });
            }
            let value: f64 = weight
                .parse()
                .ok()
                .filter(|w: &f64| w.is_finite() && *w >= 0.0)
                .ok_or_else(|| MixError::Weight {
                    what,
                    name: name.into(),
                    weight: weight.into(),
                })?;
            if !known.iter().any(|k| k == name) {
                return Err(MixError::Unknown {
                    what,
                    kind,
                    name: name.into(),
                    known: known.join(", "),
                });
            }
            if names.iter().any(|n| n == name) {
                return Err(MixError::Duplicate {
                    what,
                    name: name.into(),
                });
            }
            names.push(name.to_string());
            weights.push(value);
        }
        if names.is_empty() {
            return Err(MixError::Empty { what });
        }
        if weights.iter().all(|w| *w == 0.0) {
            return Err(MixError::AllZero { what });
        }
        Ok(Self { names, weights })
    }
}

/// The default severity weights: 10% SEV1, 20% SEV2, 40% SEV3, 30% SEV4.
pub fn default_severities() -> Weights {
    Weights {
        names: Severity::ALL
            .iter()
            .map(|s| s.as_str().to_string())
            .collect(),
        weights: vec![1.0, 2.0, 4.0, 3.0],
    }
}

pub fn parse_severities(text: &str) -> Result<Weights, MixError> {
    let known: Vec<String> = Severity::ALL.iter().map(|s| s.as_str().into()).collect();
    Weights::parse(text, &known, "--severity-mix", "severity")
}

pub fn severity_named(name: &str) -> Option<Severity> {
    Severity::ALL.into_iter().find(|s| s.as_str() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Vec<String> {
        vec!["a".into(), "b".into(), "c".into()]
    }

    #[test]
    fn a_mix_parses_with_weights_and_bare_names() {
        let w = Weights::parse("a=3, b", &known(), "--scenario-mix", "scenario").unwrap();
        assert_eq!(w.names, ["a", "b"]);
        assert_eq!(w.weights, [3.0, 1.0]);
    }

    #[test]
    fn bad_mixes_say_what_is_wrong() {
        let parse = |t: &str| {
            Weights::parse(t, &known(), "--scenario-mix", "scenario")
                .unwrap_err()
                .to_string()
        };
        assert!(parse("nope=1").contains("unknown scenario `nope` (known: a, b, c)"));
        assert!(parse("a=-1").contains("weight of `a`"));
        assert!(parse("a=NaN").contains("weight of `a`"));
        assert!(parse("a=0").contains("every weight is zero"));
        assert!(parse("a,a").contains("named twice"));
        assert!(parse(" , ").contains("nothing to draw from"));
        assert!(parse("=2").contains("not NAME=WEIGHT"));
        assert!(
            parse_severities("sev5=1")
                .unwrap_err()
                .to_string()
                .contains("unknown severity `sev5`")
        );
    }
}
