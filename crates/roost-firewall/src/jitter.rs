//! The small pseudo-random source of the sans-IO state machines (DHCPv6 transaction ids and
//! retransmission jitter, router advertisement timing): seeded by the caller, so tests drive
//! it; nothing secret depends on it.

use std::time::Duration;

/// xorshift64.
#[derive(Debug, Clone)]
pub(crate) struct Jitter(u64);

impl Jitter {
    /// From `seed` (any value; the state must not be 0).
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// The next value.
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A uniformly random duration in `lo..=hi`, at millisecond resolution.
    pub(crate) fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = u64::try_from((hi - lo).as_millis()).unwrap_or(u64::MAX);
        lo + Duration::from_millis(self.next() % (span + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_stay_within_bounds_and_a_seed_repeats() {
        let (lo, hi) = (Duration::from_millis(200), Duration::from_millis(300));
        let mut a = Jitter::new(7);
        let mut b = Jitter::new(7);
        for _ in 0..1000 {
            let d = a.between(lo, hi);
            assert!(lo <= d && d <= hi, "{d:?}");
            assert_eq!(d, b.between(lo, hi));
        }
        assert_ne!(Jitter::new(0).next(), 0);
    }
}
