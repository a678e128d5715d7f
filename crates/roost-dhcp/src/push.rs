//! Lease names → roost-dns: the full set of `<hostname>` → address, `PUT` to the dns
//! daemon's `/local-names` (`DhcpView.dns_peer`: URL and token file), off the packet path.
//!
//! The engine thread only sets a flag and wakes this task ([`Shared`](crate::server::Shared)
//! notifies it when a lease with a name changed); the task then waits [`Timing::coalesce`] so a
//! burst of changes makes one push, reads the set from the core once and pushes it. A failed
//! push is retried with exponential backoff ([`Timing::retry_min`] doubling up to
//! [`Timing::retry_max`]) whatever happens meanwhile; each retry sends the set as it is then.
//! roost-dns keeps lease names in memory only, so the full set is pushed again every
//! [`Timing::repush`] even when nothing changed: a restarted dns daemon has its names back
//! within that time (at once, when it was down long enough for a push to fail). Lease expiry
//! changes the set without a packet: the task wakes at the next expiry of a named lease.
//!
//! [`Schedule`] is the sans-IO part (when to push), unit-tested with explicit time; [`run`]
//! is the IO loop; [`put_names`] calls roost-control's peer client.

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use roost_config::views::PeerView;
use serde::Serialize;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The name → address set, sorted by name.
pub type Names = Vec<(String, Ipv4Addr)>;

/// How the pusher paces itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Changes within this long of the first are pushed together.
    pub coalesce: Duration,
    /// First retry after a failed push.
    pub retry_min: Duration,
    /// Longest wait between retries.
    pub retry_max: Duration,
    /// The full set is pushed again this long after the last successful push.
    pub repush: Duration,
    /// One push (connect, send, answer) may take this long.
    pub timeout: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            coalesce: Duration::from_millis(200),
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(30),
            repush: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
        }
    }
}

/// When to push: the sans-IO half of the pusher.
#[derive(Debug, Clone)]
pub struct Schedule {
    timing: Timing,
    /// The set dns last accepted.
    pushed: Option<Names>,
    /// A change was noticed: look at the set at this time.
    due: Option<Instant>,
    /// The last push failed: push again at this time.
    retry_at: Option<Instant>,
    failures: u32,
    last_ok: Option<Instant>,
}

impl Schedule {
    /// A schedule whose first push is due at `now` (dns may hold names from before).
    pub fn new(timing: Timing, now: Instant) -> Self {
        Self {
            timing,
            pushed: None,
            due: Some(now),
            retry_at: None,
            failures: 0,
            last_ok: None,
        }
    }

    /// The set may have changed at `now`; the first change of a burst starts the coalescing
    /// window, later ones ride along.
    pub fn notice(&mut self, now: Instant) {
        if self.due.is_none() {
            self.due = Some(now + self.timing.coalesce);
        }
    }

    /// Whether the set should be read now (a deadline has passed).
    pub fn wants_names(&self, now: Instant) -> bool {
        match self.retry_at {
            Some(at) => at <= now,
            None => {
                self.due.is_some_and(|d| d <= now)
                    || self.last_ok.is_some_and(|t| t + self.timing.repush <= now)
            }
        }
    }

    /// Given the set as it is at `now`, whether to push it: always on a retry or a re-push,
    /// otherwise only when it differs from what dns has.
    pub fn should_push(&mut self, now: Instant, names: &Names) -> bool {
        if !self.wants_names(now) {
            return false;
        }
        let retry = self.retry_at.is_some();
        let repush = self.last_ok.is_some_and(|t| t + self.timing.repush <= now);
        self.due = None;
        retry || repush || self.pushed.as_ref() != Some(names)
    }

    /// The push of `names` finished at `now`.
    pub fn pushed(&mut self, names: Names, ok: bool, now: Instant) {
        if ok {
            self.pushed = Some(names);
            self.last_ok = Some(now);
            self.failures = 0;
            self.retry_at = None;
        } else {
            self.failures = self.failures.saturating_add(1);
            let exp = self.failures.saturating_sub(1).min(16);
            let wait = self
                .timing
                .retry_min
                .saturating_mul(1 << exp)
                .min(self.timing.retry_max);
            self.retry_at = Some(now + wait);
        }
        self.due = None;
    }

    /// When the next deadline falls, if any.
    pub fn next_wake(&self) -> Option<Instant> {
        match self.retry_at {
            Some(at) => Some(at),
            None => {
                let repush = self.last_ok.map(|t| t + self.timing.repush);
                [self.due, repush].into_iter().flatten().min()
            }
        }
    }

    /// Failed pushes in a row.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct PushStats {
    /// Pushes dns accepted.
    pub ok: AtomicU64,
    /// Pushes that failed (dns down, refused, timed out, token unreadable).
    pub failed: AtomicU64,
    /// Failed pushes in a row (0 when the last one worked).
    pub failing: AtomicU64,
    /// Names in the last accepted push.
    pub names: AtomicU64,
}

/// A push did not reach dns or was not accepted.
pub type PushError = roost_control::peer::PeerError;

#[derive(Serialize)]
struct Body<'a> {
    names: Vec<Entry<'a>>,
}

#[derive(Serialize)]
struct Entry<'a> {
    name: &'a str,
    address: Ipv4Addr,
}

/// The JSON body of `PUT /local-names` for `names`.
pub fn body(names: &Names) -> Vec<u8> {
    let body = Body {
        names: names
            .iter()
            .map(|(name, address)| Entry {
                name,
                address: *address,
            })
            .collect(),
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

/// `PUT {url}/local-names` with `body` and the bearer token read from `token_file`.
pub async fn put_names(
    url: &str,
    token_file: &Path,
    body: &[u8],
    timeout: Duration,
) -> Result<(), PushError> {
    roost_control::peer::put_json(url, "/local-names", token_file, body, timeout).await
}

/// Pushes names until the runtime stops. `names()` reads the set and the next expiry (Unix
/// seconds) of a named lease; `wake` is notified when a lease with a name changed.
pub async fn run(
    peer: PeerView,
    timing: Timing,
    names: impl Fn() -> (Names, Option<u64>),
    wake: Arc<Notify>,
    stats: Arc<PushStats>,
) {
    let mut schedule = Schedule::new(timing, Instant::now());
    let mut expiry: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if expiry.is_some_and(|e| e <= now) {
            expiry = None;
            schedule.notice(now);
        }
        if schedule.wants_names(now) {
            let (set, next_expiry) = names();
            expiry = next_expiry.map(|at| {
                let secs = at.saturating_sub(crate::server::unix_now());
                now + Duration::from_secs(secs)
            });
            if schedule.should_push(now, &set) {
                let result =
                    put_names(&peer.url, &peer.token_file, &body(&set), timing.timeout).await;
                let ok = result.is_ok();
                match result {
                    Ok(()) => {
                        if schedule.failures() > 0 {
                            tracing::info!(url = %peer.url, names = set.len(), "dns reachable again; names pushed");
                        } else {
                            tracing::debug!(url = %peer.url, names = set.len(), "names pushed to dns");
                        }
                        stats.ok.fetch_add(1, Ordering::Relaxed);
                        stats.names.store(set.len() as u64, Ordering::Relaxed);
                    }
                    Err(e) => {
                        // Once per outage at warn; the retries at debug.
                        if schedule.failures() == 0 {
                            tracing::warn!(url = %peer.url, error = %e, "cannot push names to dns; retrying with backoff");
                        } else {
                            tracing::debug!(url = %peer.url, error = %e, "name push failed again");
                        }
                        stats.failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                schedule.pushed(set, ok, Instant::now());
                stats
                    .failing
                    .store(u64::from(schedule.failures()), Ordering::Relaxed);
                continue;
            }
        }
        let wake_at = [schedule.next_wake(), expiry].into_iter().flatten().min();
        match wake_at {
            Some(at) => {
                tokio::select! {
                    () = wake.notified() => schedule.notice(Instant::now()),
                    () = tokio::time::sleep_until(at) => {}
                }
            }
            None => {
                wake.notified().await;
                schedule.notice(Instant::now());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing() -> Timing {
        Timing {
            coalesce: Duration::from_millis(200),
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(8),
            repush: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
        }
    }

    fn set(n: u8) -> Names {
        (0..n)
            .map(|i| (format!("host{i}"), Ipv4Addr::new(192, 168, 1, 100 + i)))
            .collect()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn first_push_is_due_at_start_even_for_an_empty_set() {
        let t0 = Instant::now();
        let mut s = Schedule::new(timing(), t0);
        assert!(s.should_push(t0, &Vec::new()));
        s.pushed(Vec::new(), true, t0);
        assert!(!s.wants_names(t0 + ms(1)));
    }

    #[test]
    fn a_burst_of_changes_makes_one_push_after_the_coalescing_window() {
        let t0 = Instant::now();
        let mut s = Schedule::new(timing(), t0);
        s.pushed(set(0), true, t0);
        for i in 0..50 {
            s.notice(t0 + ms(i));
        }
        assert_eq!(
            s.next_wake(),
            Some(t0 + ms(200)),
            "window starts at the first change"
        );
        assert!(!s.wants_names(t0 + ms(199)));
        assert!(s.should_push(t0 + ms(200), &set(3)));
        s.pushed(set(3), true, t0 + ms(210));
        assert!(!s.wants_names(t0 + ms(300)), "one push for the burst");
    }

    #[test]
    fn unchanged_set_is_not_pushed_on_a_change_notice() {
        let t0 = Instant::now();
        let mut s = Schedule::new(timing(), t0);
        s.pushed(set(2), true, t0);
        s.notice(t0 + ms(10));
        assert!(!s.should_push(t0 + ms(300), &set(2)));
        assert!(!s.wants_names(t0 + ms(400)), "the notice is consumed");
    }

    #[test]
    fn failed_pushes_are_retried_with_doubling_backoff_up_to_the_cap() {
        let t0 = Instant::now();
        let mut s = Schedule::new(timing(), t0);
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..6 {
            assert!(s.should_push(now, &set(1)));
            s.pushed(set(1), false, now);
            let next = s.next_wake().unwrap();
            waits.push((next - now).as_secs());
            // Changes do not hurry a retry.
            s.notice(now + ms(1));
            assert!(!s.wants_names(now + ms(500)));
            now = next;
        }
        assert_eq!(waits, vec![1, 2, 4, 8, 8, 8]);
        assert_eq!(s.failures(), 6);
        // The retry pushes even the set dns had before; success resets the backoff.
        assert!(s.should_push(now, &set(1)));
        s.pushed(set(1), true, now);
        assert_eq!(s.failures(), 0);
        assert_eq!(s.next_wake(), Some(now + Duration::from_secs(30)));
    }

    #[test]
    fn full_set_is_pushed_again_after_the_repush_interval_for_a_restarted_dns() {
        let t0 = Instant::now();
        let mut s = Schedule::new(timing(), t0);
        s.pushed(set(2), true, t0);
        assert!(!s.wants_names(t0 + Duration::from_secs(29)));
        let t = t0 + Duration::from_secs(30);
        assert!(s.should_push(t, &set(2)), "same set, pushed again");
    }

    #[test]
    fn body_is_the_dns_local_names_json() {
        let b = body(&vec![("laptop".into(), Ipv4Addr::new(192, 168, 1, 50))]);
        assert_eq!(
            String::from_utf8(b).unwrap(),
            r#"{"names":[{"name":"laptop","address":"192.168.1.50"}]}"#
        );
    }
}
