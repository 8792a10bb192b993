//! The run log the page shows: bounded, numbered lines.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;
use tokio::sync::watch;

/// Lines kept.
const KEEP: usize = 500;

#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    pub seq: u64,
    /// Seconds since the Unix epoch.
    pub at: f64,
    pub text: String,
}

#[derive(Debug)]
pub struct RunLog {
    lines: Mutex<(u64, VecDeque<LogLine>)>,
    /// The next line's number, for whoever waits for new lines.
    changes: watch::Sender<u64>,
}

impl Default for RunLog {
    fn default() -> Self {
        Self {
            lines: Mutex::default(),
            changes: watch::channel(0).0,
        }
    }
}

impl RunLog {
    pub fn push(&self, text: impl Into<String>) {
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        let mut guard = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        let (next, lines) = &mut *guard;
        lines.push_back(LogLine {
            seq: *next,
            at,
            text: text.into(),
        });
        *next += 1;
        while lines.len() > KEEP {
            lines.pop_front();
        }
        self.changes.send_replace(*next);
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Lines numbered `since` and after.
    pub fn since(&self, since: u64) -> Vec<LogLine> {
        let guard = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        guard.1.iter().filter(|l| l.seq >= since).cloned().collect()
    }

    /// The number the next line will get.
    pub fn next_seq(&self) -> u64 {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_is_bounded_and_numbered() {
        let log = RunLog::default();
        for i in 0..(KEEP + 10) {
            log.push(format!("line {i}"));
        }
        assert_eq!(log.next_seq(), (KEEP + 10) as u64);
        let all = log.since(0);
        assert_eq!(all.len(), KEEP);
        assert_eq!(all[0].text, "line 10");
        assert_eq!(log.since((KEEP + 8) as u64).len(), 2);
    }
}
