//! When incidents arrive and what they are, as a pure function of the
//! pattern, the mix and the seed: a batch (all at once) or Poisson
//! arrivals (exponential gaps at rate R for S seconds).

use serde::{Deserialize, Serialize};

use super::mix::{Severity, Weights, severity_named};
use crate::rng::Rng;

/// Most arrivals one run may schedule.
pub const MAX_ARRIVALS: usize = 1_000_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arrival {
    /// 0, 1, 2, ... in arrival order; names the incident.
    pub seq: u64,
    /// Seconds after the run starts.
    pub at_s: f64,
    pub scenario: String,
    pub severity: Severity,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pattern {
    /// `incidents` arrive at once.
    Batch { incidents: usize },
    /// Arrivals at `rate_per_s` for `duration_s`, at most `cap` of them.
    Poisson {
        rate_per_s: f64,
        duration_s: f64,
        cap: Option<usize>,
    },
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PatternError {
    #[error("--incidents must be at least 1")]
    NoIncidents,
    #[error("--incidents {0} is more than the {MAX_ARRIVALS} one run may schedule")]
    TooMany(usize),
    #[error("--arrival-rate must be a finite number > 0 per second, not {0}")]
    Rate(f64),
    #[error("--duration-s must be a finite number > 0, not {0}")]
    Duration(f64),
    #[error(
        "--arrival-rate {rate} for --duration-s {duration} expects {expected:.0} arrivals, more than the {MAX_ARRIVALS} one run may schedule"
    )]
    Expected {
        rate: f64,
        duration: f64,
        expected: f64,
    },
}

impl Pattern {
    pub fn batch(incidents: usize) -> Result<Self, PatternError> {
        match incidents {
            0 => Err(PatternError::NoIncidents),
            n if n > MAX_ARRIVALS => Err(PatternError::TooMany(n)),
            n => Ok(Self::Batch { incidents: n }),
        }
    }

    pub fn poisson(
        rate_per_s: f64,
        duration_s: f64,
        cap: Option<usize>,
    ) -> Result<Self, PatternError> {
        if !(rate_per_s.is_finite() && rate_per_s > 0.0) {
            return Err(PatternError::Rate(rate_per_s));
        }
        if !(duration_s.is_finite() && duration_s > 0.0) {
            return Err(PatternError::Duration(duration_s));
        }
        match cap {
            Some(0) => return Err(PatternError::NoIncidents),
            Some(n) if n > MAX_ARRIVALS => return Err(PatternError::TooMany(n)),
            Some(_) => {}
            None if rate_per_s * duration_s > MAX_ARRIVALS as f64 / 2.0 => {
                return Err(PatternError::Expected {
                    rate: rate_per_s,
                    duration: duration_s,
                    expected: rate_per_s * duration_s,
                });
            }
            None => {}
        }
        Ok(Self::Poisson {
            rate_per_s,
            duration_s,
            cap,
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Batch { .. } => "batch",
            Self::Poisson { .. } => "continuous",
        }
    }
}

/// Every arrival of a run. Each arrival draws, in this order, its gap
/// (Poisson only), its scenario and its severity from one generator
/// seeded with `seed`, so a seed fixes the whole run.
pub fn schedule(
    pattern: Pattern,
    scenarios: &Weights,
    severities: &Weights,
    seed: u64,
) -> Vec<Arrival> {
    let mut rng = Rng::new(seed);
    let mut arrivals = Vec::new();
    let draw = |rng: &mut Rng, at_s: f64, seq: u64| Arrival {
        seq,
        at_s,
        scenario: scenarios.names[rng.weighted(&scenarios.weights)].clone(),
        severity: severity_named(&severities.names[rng.weighted(&severities.weights)])
            .unwrap_or(Severity::Sev3),
    };
    match pattern {
        Pattern::Batch { incidents } => {
            for seq in 0..incidents as u64 {
                arrivals.push(draw(&mut rng, 0.0, seq));
            }
        }
        Pattern::Poisson {
            rate_per_s,
            duration_s,
            cap,
        } => {
            let cap = cap.unwrap_or(MAX_ARRIVALS);
            let mut at_s = 0.0;
            loop {
                at_s += rng.exponential(rate_per_s);
                if at_s >= duration_s || arrivals.len() >= cap {
                    break;
                }
                let seq = arrivals.len() as u64;
                arrivals.push(draw(&mut rng, at_s, seq));
            }
        }
    }
    arrivals
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::mix::default_severities;

    fn mix() -> Weights {
        Weights {
            names: vec!["a".into(), "b".into()],
            weights: vec![3.0, 1.0],
        }
    }

    #[test]
    fn a_fixed_seed_gives_the_same_schedule_and_another_seed_another() {
        let pattern = Pattern::poisson(5.0, 10.0, None).unwrap();
        let one = schedule(pattern, &mix(), &default_severities(), 11);
        assert_eq!(one, schedule(pattern, &mix(), &default_severities(), 11));
        assert_ne!(one, schedule(pattern, &mix(), &default_severities(), 12));
    }

    #[test]
    fn poisson_arrivals_are_exactly_the_seeded_exponential_gaps() {
        // The schedule, recomputed by hand from the generator it documents:
        // per arrival a gap, then the scenario, then the severity.
        let pattern = Pattern::poisson(2.0, 3.0, None).unwrap();
        let got = schedule(pattern, &mix(), &default_severities(), 99);
        let mut rng = Rng::new(99);
        let mut at = 0.0;
        let mut expected = Vec::new();
        loop {
            at += rng.exponential(2.0);
            if at >= 3.0 {
                break;
            }
            let scenario = ["a", "b"][rng.weighted(&[3.0, 1.0])];
            let severity = Severity::ALL[rng.weighted(&[1.0, 2.0, 4.0, 3.0])];
            expected.push((at, scenario.to_string(), severity));
        }
        assert!(!expected.is_empty());
        let got: Vec<_> = got
            .into_iter()
            .map(|a| (a.at_s, a.scenario, a.severity))
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn poisson_arrivals_have_the_rate_and_stay_in_the_window() {
        let pattern = Pattern::poisson(20.0, 500.0, None).unwrap();
        let arrivals = schedule(pattern, &mix(), &default_severities(), 5);
        let n = arrivals.len() as f64;
        // 10,000 expected; a Poisson count's sd is 100.
        assert!((n - 10_000.0).abs() < 400.0, "{n} arrivals");
        assert!(arrivals.windows(2).all(|w| w[0].at_s < w[1].at_s));
        assert!(arrivals.iter().all(|a| a.at_s > 0.0 && a.at_s < 500.0));
        assert!(arrivals.iter().enumerate().all(|(i, a)| a.seq == i as u64));
        // Gaps are exponential: their sd equals their mean (1/20 s).
        let gaps: Vec<f64> = arrivals.windows(2).map(|w| w[1].at_s - w[0].at_s).collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let sd = (gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64).sqrt();
        assert!(
            (mean - 0.05).abs() < 0.003 && (sd - 0.05).abs() < 0.004,
            "{mean} {sd}"
        );
        let a_share = arrivals.iter().filter(|a| a.scenario == "a").count() as f64 / n;
        assert!((a_share - 0.75).abs() < 0.02, "{a_share}");
    }

    #[test]
    fn a_cap_bounds_poisson_arrivals_and_a_batch_arrives_at_once() {
        let capped = schedule(
            Pattern::poisson(100.0, 100.0, Some(7)).unwrap(),
            &mix(),
            &default_severities(),
            1,
        );
        assert_eq!(capped.len(), 7);
        let batch = schedule(Pattern::batch(5).unwrap(), &mix(), &default_severities(), 1);
        assert_eq!(batch.len(), 5);
        assert!(batch.iter().all(|a| a.at_s == 0.0));
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert_eq!(Pattern::batch(0), Err(PatternError::NoIncidents));
        assert!(matches!(
            Pattern::poisson(-1.0, 5.0, None),
            Err(PatternError::Rate(_))
        ));
        assert!(matches!(
            Pattern::poisson(f64::NAN, 5.0, None),
            Err(PatternError::Rate(_))
        ));
        assert!(matches!(
            Pattern::poisson(1.0, 0.0, None),
            Err(PatternError::Duration(_))
        ));
        assert!(matches!(
            Pattern::poisson(1e6, 1e6, None),
            Err(PatternError::Expected { .. })
        ));
    }
}
