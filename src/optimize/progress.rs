//! How an optimization shows where it is: a bar on a terminal (rollouts
//! used of the budget, best train and validation score), plain lines
//! otherwise; notes (warnings, accepted candidates) on lines of their own.

use std::io::{IsTerminal, Write};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Snapshot {
    pub used: usize,
    pub budget: usize,
    pub best_train: f64,
    pub best_validation: Option<f64>,
    pub candidates: usize,
}

pub trait Progress: Send {
    fn update(&mut self, snapshot: &Snapshot);
    fn note(&mut self, text: &str);
}

/// Progress on stderr: a redrawn bar on a terminal, lines elsewhere.
pub struct Stderr {
    tty: bool,
    drawn: bool,
    last: Option<Snapshot>,
}

impl Stderr {
    pub fn new() -> Self {
        Self {
            tty: std::io::stderr().is_terminal(),
            drawn: false,
            last: None,
        }
    }
}

impl Default for Stderr {
    fn default() -> Self {
        Self::new()
    }
}

pub fn render(s: &Snapshot, width: usize) -> String {
    let filled = (s.used * width)
        .checked_div(s.budget)
        .unwrap_or(0)
        .min(width);
    format!(
        "[{}{}] {}/{} rollouts  best train {:.3}  validation {}  candidates {}",
        "#".repeat(filled),
        "-".repeat(width - filled),
        s.used,
        s.budget,
        s.best_train,
        s.best_validation
            .map_or("-".to_string(), |v| format!("{v:.3}")),
        s.candidates
    )
}

impl Progress for Stderr {
    fn update(&mut self, snapshot: &Snapshot) {
        if self.last.as_ref() == Some(snapshot) {
            return;
        }
        self.last = Some(*snapshot);
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{}", render(snapshot, 30));
            self.drawn = true;
        } else {
            let _ = writeln!(err, "progress: {}", render(snapshot, 20));
        }
        let _ = err.flush();
    }

    fn note(&mut self, text: &str) {
        let mut err = std::io::stderr().lock();
        if self.drawn {
            let _ = write!(err, "\r\x1b[2K");
            self.drawn = false;
        }
        let _ = writeln!(err, "{text}");
        if self.tty
            && let Some(last) = self.last
        {
            let _ = write!(err, "{}", render(&last, 30));
            self.drawn = true;
        }
        let _ = err.flush();
    }
}

impl Drop for Stderr {
    fn drop(&mut self) {
        if self.drawn {
            let _ = writeln!(std::io::stderr());
        }
    }
}

/// Keeps everything, for tests and library callers.
#[derive(Debug, Default)]
pub struct Recorded {
    pub snapshots: Vec<Snapshot>,
    pub notes: Vec<String>,
}

impl Progress for Recorded {
    fn update(&mut self, snapshot: &Snapshot) {
        self.snapshots.push(*snapshot);
    }
    fn note(&mut self, text: &str) {
        self.notes.push(text.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_shows_the_budget_and_the_best_scores() {
        let s = Snapshot {
            used: 5,
            budget: 10,
            best_train: 0.5,
            best_validation: None,
            candidates: 2,
        };
        assert_eq!(
            render(&s, 10),
            "[#####-----] 5/10 rollouts  best train 0.500  validation -  candidates 2"
        );
    }
}
