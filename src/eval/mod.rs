//! Evaluation at scale: the scorecard (every approach on the same
//! scenarios, side by side, and its plot), fan-out (many incidents at once,
//! batch or Poisson arrivals, a severity-ordered bounded queue, workers
//! that refill) with its report, trace links, and the terminal dashboard.

pub mod arrivals;
pub mod dashboard;
pub mod fanout;
pub mod kube;
pub mod mix;
pub mod params;
pub mod plot;
pub mod queue;
pub mod report;
pub mod scorecard;
pub mod stats;
pub mod trace;
