//! Per-client query rate limit, sans-IO: a token bucket per source address (`rate` queries a
//! second, bursts of twice that). The table is bounded; when it is full, idle buckets are
//! dropped, and if none are idle a new client is let through uncounted (failing open keeps a
//! flood of spoofed sources from locking real clients out of the table).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

/// Most clients tracked at once.
pub const MAX_CLIENTS: usize = 65_536;

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// The limiter.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: HashMap<IpAddr, Bucket>,
}

impl RateLimiter {
    /// `rate` queries a second per client; 0 turns limiting off.
    pub fn new(rate: u32) -> Self {
        Self {
            rate: f64::from(rate),
            burst: f64::from(rate) * 2.0,
            buckets: HashMap::new(),
        }
    }

    /// Whether `client` may be answered at `now` (and takes a token if so).
    pub fn allow(&mut self, client: IpAddr, now: Instant) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        if !self.buckets.contains_key(&client) && self.buckets.len() >= MAX_CLIENTS {
            let full_after = self.burst / self.rate;
            self.buckets
                .retain(|_, b| now.saturating_duration_since(b.last).as_secs_f64() < full_after);
            if self.buckets.len() >= MAX_CLIENTS {
                return true;
            }
        }
        let (rate, burst) = (self.rate, self.burst);
        let b = self.buckets.entry(client).or_insert(Bucket {
            tokens: burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_client_gets_its_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(10);
        let c: IpAddr = "192.168.1.50".parse().unwrap();
        let allowed = (0..100).filter(|_| rl.allow(c, t0)).count();
        assert_eq!(allowed, 20);
        let later = t0 + Duration::from_millis(500);
        let allowed = (0..100).filter(|_| rl.allow(c, later)).count();
        assert_eq!(allowed, 5);
        // Another client is not affected.
        assert!(rl.allow("192.168.1.51".parse().unwrap(), later));
    }

    #[test]
    fn zero_rate_means_no_limit() {
        let mut rl = RateLimiter::new(0);
        let c: IpAddr = "192.168.1.50".parse().unwrap();
        assert!((0..10_000).all(|_| rl.allow(c, Instant::now())));
    }
}
