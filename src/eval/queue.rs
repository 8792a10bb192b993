//! Incidents waiting for a worker: the most severe first, then the
//! earliest. Bounded: when it is full, an arrival more severe than the
//! least severe waiting incident takes its place (that one is dropped);
//! otherwise the arrival itself is dropped. Either way the drop is counted.

use std::collections::BTreeMap;

use super::arrivals::Arrival;
use super::mix::Severity;

#[derive(Debug, Default)]
pub struct Queue {
    waiting: BTreeMap<(Severity, u64), Arrival>,
    limit: Option<usize>,
}

impl Queue {
    /// `limit`: at most this many waiting (None: no bound).
    pub fn new(limit: Option<usize>) -> Self {
        Self {
            waiting: BTreeMap::new(),
            limit,
        }
    }

    /// Queues `arrival`; returns the incident dropped to keep the bound.
    pub fn push(&mut self, arrival: Arrival) -> Option<Arrival> {
        self.push_with_room(arrival, 0)
    }

    /// As [`push`](Self::push), when `room` free workers will take the
    /// first `room` incidents at once: those never wait, so they do not
    /// count against the bound.
    pub fn push_with_room(&mut self, arrival: Arrival, room: usize) -> Option<Arrival> {
        let key = (arrival.severity, arrival.seq);
        match self.limit.map(|l| l.saturating_add(room)) {
            Some(limit) if self.waiting.len() >= limit => {
                let least = self.waiting.last_key_value().map(|(k, _)| *k);
                match least {
                    Some(least) if key < least => {
                        let evicted = self.waiting.remove(&least);
                        self.waiting.insert(key, arrival);
                        evicted
                    }
                    _ => Some(arrival),
                }
            }
            _ => {
                self.waiting.insert(key, arrival);
                None
            }
        }
    }

    pub fn pop(&mut self) -> Option<Arrival> {
        self.waiting.pop_first().map(|(_, a)| a)
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Waiting incidents in the order they will be served.
    pub fn iter(&self) -> impl Iterator<Item = &Arrival> {
        self.waiting.values()
    }

    /// Takes every waiting incident out (a stop).
    pub fn clear(&mut self) -> Vec<Arrival> {
        std::mem::take(&mut self.waiting).into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrival(seq: u64, severity: Severity) -> Arrival {
        Arrival {
            seq,
            at_s: seq as f64,
            scenario: "s".into(),
            severity,
        }
    }

    #[test]
    fn the_most_severe_is_served_first_then_the_earliest() {
        let mut q = Queue::new(None);
        for (seq, sev) in [
            (0, Severity::Sev3),
            (1, Severity::Sev1),
            (2, Severity::Sev3),
            (3, Severity::Sev2),
            (4, Severity::Sev1),
        ] {
            assert!(q.push(arrival(seq, sev)).is_none());
        }
        let order: Vec<u64> = std::iter::from_fn(|| q.pop()).map(|a| a.seq).collect();
        assert_eq!(order, [1, 4, 3, 0, 2]);
    }

    #[test]
    fn a_full_queue_drops_the_least_severe() {
        let mut q = Queue::new(Some(2));
        assert!(q.push(arrival(0, Severity::Sev3)).is_none());
        assert!(q.push(arrival(1, Severity::Sev2)).is_none());
        // As severe as the least severe waiting: the arrival is dropped.
        assert_eq!(q.push(arrival(2, Severity::Sev3)).map(|a| a.seq), Some(2));
        // More severe: it takes the place of the least severe.
        assert_eq!(q.push(arrival(3, Severity::Sev1)).map(|a| a.seq), Some(0));
        assert_eq!(q.len(), 2);
        assert_eq!(q.iter().map(|a| a.seq).collect::<Vec<_>>(), [3, 1]);
        assert_eq!(q.clear().len(), 2);
        assert!(q.is_empty());
    }

    #[test]
    fn a_zero_limit_drops_what_no_free_worker_takes() {
        let mut q = Queue::new(Some(0));
        assert_eq!(q.push(arrival(0, Severity::Sev1)).map(|a| a.seq), Some(0));
        assert!(q.is_empty());
        // Two free workers: two arrivals are taken at once, a third waits
        // for nobody and is dropped (the least severe of the three).
        assert!(q.push_with_room(arrival(1, Severity::Sev3), 2).is_none());
        assert!(q.push_with_room(arrival(2, Severity::Sev2), 2).is_none());
        assert_eq!(
            q.push_with_room(arrival(3, Severity::Sev1), 2)
                .map(|a| a.seq),
            Some(1)
        );
        assert_eq!(q.iter().map(|a| a.seq).collect::<Vec<_>>(), [3, 2]);
    }
}
