//! A small seeded generator (SplitMix64): the same seed gives the same
//! fan-out arrivals and mix, and the same optimizer minibatches and parent
//! choices, on every machine and every version of every crate, which a
//! fixed-seed test and a reproducible benchmark need.

#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1), 53 bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// An exponential variate with the given rate (mean `1 / rate`).
    pub fn exponential(&mut self, rate: f64) -> f64 {
        // 1 - u is in (0, 1]: its logarithm is finite.
        -(1.0 - self.next_f64()).ln() / rate
    }

    /// An index drawn in proportion to `weights` (at least one positive).
    pub fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut pick = self.next_f64() * total;
        for (i, w) in weights.iter().enumerate() {
            if pick < *w {
                return i;
            }
            pick -= w;
        }
        weights.iter().rposition(|w| *w > 0.0).unwrap_or(0)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_sequence() {
        let a: Vec<u64> = (0..5)
            .scan(Rng::new(7), |r, _| Some(r.next_u64()))
            .collect();
        let b: Vec<u64> = (0..5)
            .scan(Rng::new(7), |r, _| Some(r.next_u64()))
            .collect();
        let c: Vec<u64> = (0..5)
            .scan(Rng::new(8), |r, _| Some(r.next_u64()))
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn exponential_variates_have_the_rate_asked_for() {
        let mut rng = Rng::new(42);
        let n = 100_000;
        let mean = (0..n).map(|_| rng.exponential(4.0)).sum::<f64>() / f64::from(n);
        assert!((mean - 0.25).abs() < 0.005, "mean {mean}");
    }

    #[test]
    fn weighted_choice_follows_the_weights_and_never_picks_zero() {
        let mut rng = Rng::new(3);
        let mut counts = [0u32; 3];
        for _ in 0..30_000 {
            counts[rng.weighted(&[1.0, 0.0, 3.0])] += 1;
        }
        assert_eq!(counts[1], 0);
        let share = f64::from(counts[2]) / 30_000.0;
        assert!((share - 0.75).abs() < 0.02, "{counts:?}");
    }

    #[test]
    fn the_same_seed_gives_the_same_shuffle_and_draws() {
        let draw = |seed| {
            let mut rng = Rng::new(seed);
            let mut v: Vec<usize> = (0..10).collect();
            rng.shuffle(&mut v);
            (v, rng.below(7))
        };
        assert_eq!(draw(3), draw(3));
        assert_ne!(draw(3), draw(4));
        let mut rng = Rng::new(1);
        assert!((0..1000).all(|_| rng.below(5) < 5));
    }
}
