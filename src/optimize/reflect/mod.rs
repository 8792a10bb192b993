//! Reflection: a parent hint and the feedback of its rollouts on a
//! minibatch become a child hint. Two kinds: [`deterministic`] derives it
//! from the traces (which check found the fault, what came before it, what
//! the service said, what was refused); [`llm`] asks a model to read the
//! same feedback and write the hint.

pub mod deterministic;
pub mod llm;

use futures::future::BoxFuture;

use super::evaluate::Rollout;
use crate::crd::TokenUsage;

/// Who writes the child hints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReflectorKind {
    /// Derived from the traces by rules (offline, same traces same child).
    Deterministic,
    /// The LLM brain's model reads the traces and writes the hint.
    Llm,
}

impl ReflectorKind {
    pub fn label(self) -> &'static str {
        match self {
            Self::Deterministic => "deterministic",
            Self::Llm => "llm",
        }
    }
}

/// A proposed hint and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reflection {
    pub hint: String,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReflectError {
    /// The reflector could not be asked (an LLM endpoint down, ...).
    #[error("reflection failed: {0}")]
    Unavailable(String),
    /// It answered with something that is not a usable hint.
    #[error("reflection gave no usable hint: {0}")]
    Unusable(String),
}

pub trait Reflector: Send + Sync {
    fn name(&self) -> &'static str;

    /// A child of `parent` from its rollouts, or None when the traces
    /// teach nothing new.
    fn reflect<'a>(
        &'a self,
        parent: &'a str,
        rollouts: &'a [Rollout],
    ) -> BoxFuture<'a, Result<Option<Reflection>, ReflectError>>;

    /// Tokens spent reflecting so far.
    fn usage(&self) -> TokenUsage {
        TokenUsage::default()
    }
}
