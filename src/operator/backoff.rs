//! Per-object exponential backoff for failed reconciles: the first retry
//! comes soon, each further failure of the same object doubles the wait up
//! to a ceiling, and a success forgets the object. One object failing over
//! and over never delays another.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

pub struct Backoff<K> {
    failures: Mutex<HashMap<K, u32>>,
    first: Duration,
    ceiling: Duration,
}

impl<K: Hash + Eq + Clone> Backoff<K> {
    pub fn new(first: Duration, ceiling: Duration) -> Self {
        Self {
            failures: Mutex::new(HashMap::new()),
            first,
            ceiling,
        }
    }

    /// Counts a failure of `key`; how long to wait before trying it again.
    pub fn failed(&self, key: &K) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let count = failures.entry(key.clone()).or_insert(0);
        *count = count.saturating_add(1);
        let doublings = (*count - 1).min(16);
        self.first
            .saturating_mul(1u32 << doublings)
            .min(self.ceiling)
    }

    pub fn succeeded(&self, key: &K) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

impl<K: Hash + Eq + Clone> Default for Backoff<K> {
    /// 5 s, doubling up to 5 minutes.
    fn default() -> Self {
        Self::new(Duration::from_secs(5), Duration::from_secs(300))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_object_backs_off_on_its_own_and_a_success_resets_it() {
        let backoff = Backoff::default();
        let waits: Vec<u64> = (0..9).map(|_| backoff.failed(&"a").as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(backoff.failed(&"b"), Duration::from_secs(5), "b is not a");
        backoff.succeeded(&"a");
        assert_eq!(backoff.failed(&"a"), Duration::from_secs(5));
    }

    #[test]
    fn endless_failures_do_not_overflow() {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        for _ in 0..100 {
            assert!(backoff.failed(&1) <= Duration::from_secs(60));
        }
    }
}
