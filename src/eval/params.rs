//! The parameters of a fan-out, as the command line and the web API take
//! them, checked in one place: a bad value is an error that names it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::arrivals::{self, Pattern, PatternError};
use super::fanout::Plan;
use super::mix::{self, MixError, Weights};
use super::report::RunInfo;
use super::trace::{TemplateError, TraceLinks};
use crate::policy::ResolvedPolicy;
use crate::scenario::{Catalog, Split};

/// Most workers one run may have.
pub const MAX_CONCURRENCY: usize = 256;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FanoutParams {
    /// Batch: how many incidents (default 20). Continuous: at most this many.
    pub incidents: Option<usize>,
    pub concurrency: usize,
    /// `baseline`, `optimized` (or, on the command line, a Policy file).
    pub policy: String,
    /// `a=3,b=1`; default: every scenario of `split`, equally likely.
    pub scenario_mix: Option<String>,
    /// `train`, `validation` or `all` (when there is no mix).
    pub split: String,
    pub severity_mix: Option<String>,
    pub seed: u64,
    pub continuous: bool,
    pub duration_s: Option<f64>,
    pub arrival_rate: Option<f64>,
    /// Continuous mode: most incidents waiting at once.
    pub queue_limit: usize,
    pub trace_url_template: Option<String>,
    /// After a stop, how long running incidents may take to finish.
    pub drain_timeout_s: f64,
}

impl Default for FanoutParams {
    fn default() -> Self {
        Self {
            incidents: None,
            concurrency: 4,
            policy: "optimized".into(),
            scenario_mix: None,
            split: "all".into(),
            severity_mix: None,
            seed: 1,
            continuous: false,
            duration_s: None,
            arrival_rate: None,
            queue_limit: 100,
            trace_url_template: None,
            drain_timeout_s: 10.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamError {
    #[error("--concurrency must be between 1 and {MAX_CONCURRENCY}, not {0}")]
    Concurrency(usize),
    #[error("--split must be train, validation or all, not `{0}`")]
    Split(String),
    #[error("--continuous needs --duration-s and --arrival-rate")]
    Continuous,
    #[error("--duration-s and --arrival-rate only apply with --continuous")]
    NotContinuous,
    #[error("--drain-timeout-s must be a finite number >= 0, not {0}")]
    DrainTimeout(f64),
    #[error(transparent)]
    Pattern(#[from] PatternError),
    #[error(transparent)]
    Mix(#[from] MixError),
    #[error(transparent)]
    Template(#[from] TemplateError),
}

pub fn parse_split(text: &str) -> Result<Option<Split>, ParamError> {
    match text {
        "train" => Ok(Some(Split::Train)),
        "validation" => Ok(Some(Split::Validation)),
        "all" => Ok(None),
        other => Err(ParamError::Split(other.into())),
    }
}

impl FanoutParams {
    /// The plan these parameters describe, with `policy` resolved by the caller.
    pub fn plan(
        &self,
        catalog: &Catalog,
        policy: ResolvedPolicy,
        run_id: &str,
        trajectory_file: Option<String>,
    ) -> Result<Plan, ParamError> {
        if self.concurrency == 0 || self.concurrency > MAX_CONCURRENCY {
            return Err(ParamError::Concurrency(self.concurrency));
        }
        if !(self.drain_timeout_s.is_finite() && self.drain_timeout_s >= 0.0) {
            return Err(ParamError::DrainTimeout(self.drain_timeout_s));
        }
        let pattern = match (self.continuous, self.duration_s, self.arrival_rate) {
            (true, Some(duration), Some(rate)) => Pattern::poisson(rate, duration, self.incidents)?,
            (true, _, _) => return Err(ParamError::Continuous),
            (false, None, None) => Pattern::batch(self.incidents.unwrap_or(20))?,
            (false, _, _) => return Err(ParamError::NotContinuous),
        };
        let split = parse_split(&self.split)?;
        let known: Vec<String> = catalog.ids().iter().map(|s| s.to_string()).collect();
        let scenarios = match &self.scenario_mix {
            Some(text) => Weights::parse(text, &known, "--scenario-mix", "scenario")?,
            None => Weights::uniform(&super::scorecard::scenarios(catalog, split))?,
        };
        let severities = match &self.severity_mix {
            Some(text) => mix::parse_severities(text)?,
            None => mix::default_severities(),
        };
        let links = self
            .trace_url_template
            .as_deref()
            .map(|t| TraceLinks::parse(t, crate::telemetry::enabled()))
            .transpose()?;
        let queue_limit = self.continuous.then_some(self.queue_limit);
        Ok(Plan {
            info: RunInfo {
                run_id: run_id.to_string(),
                mode: pattern.name().to_string(),
                policy: policy.name.clone(),
                concurrency: self.concurrency,
                seed: self.seed,
                queue_limit,
                trajectory_file,
            },
            arrivals: arrivals::schedule(pattern, &scenarios, &severities, self.seed),
            policy,
            links,
            drain_timeout: Duration::from_secs_f64(self.drain_timeout_s),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::hint::ResolvedHint;
    use crate::crd::PolicySpec;

    fn policy() -> ResolvedPolicy {
        ResolvedPolicy {
            name: "optimized".into(),
            spec: PolicySpec::default(),
            hint: ResolvedHint::manual(),
            generation: None,
        }
    }

    fn plan(params: FanoutParams) -> Result<Plan, String> {
        params
            .plan(&Catalog::builtin(), policy(), "r", None)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn bad_parameters_name_themselves() {
        let base = FanoutParams::default();
        let cases: [(FanoutParams, &str); 8] = [
            (
                FanoutParams {
                    concurrency: 0,
                    ..base.clone()
                },
                "--concurrency must be between 1",
            ),
            (
                FanoutParams {
                    incidents: Some(0),
                    ..base.clone()
                },
                "--incidents must be at least 1",
            ),
            (
                FanoutParams {
                    scenario_mix: Some("nope=1".into()),
                    ..base.clone()
                },
                "unknown scenario `nope`",
            ),
            (
                FanoutParams {
                    continuous: true,
                    duration_s: Some(5.0),
                    arrival_rate: Some(-2.0),
                    ..base.clone()
                },
                "--arrival-rate must be a finite number > 0",
            ),
            (
                FanoutParams {
                    continuous: true,
                    ..base.clone()
                },
                "--continuous needs",
            ),
            (
                FanoutParams {
                    arrival_rate: Some(1.0),
                    ..base.clone()
                },
                "only apply with --continuous",
            ),
            (
                FanoutParams {
                    trace_url_template: Some("x/{nope}".into()),
                    ..base.clone()
                },
                "unknown placeholder `{nope}`",
            ),
            (
                FanoutParams {
                    split: "test".into(),
                    ..base.clone()
                },
                "--split must be",
            ),
        ];
        for (params, expected) in cases {
            let err = plan(params).err().unwrap_or_default();
            assert!(
                err.contains(expected),
                "{err:?} should contain {expected:?}"
            );
        }
    }

    #[test]
    fn a_batch_draws_from_the_split_and_names_the_run() {
        let plan = plan(FanoutParams {
            incidents: Some(30),
            split: "validation".into(),
            ..FanoutParams::default()
        })
        .unwrap();
        assert_eq!(plan.arrivals.len(), 30);
        let catalog = Catalog::builtin();
        assert!(
            plan.arrivals
                .iter()
                .all(|a| catalog.get(&a.scenario).unwrap().split == Split::Validation)
        );
        assert_eq!(plan.info.mode, "batch");
        assert_eq!(plan.info.queue_limit, None);
    }
}
