//! Sessions and login throttling: sans-IO, every decision takes `now`.
//!
//! A session is a random 256-bit id in a cookie (`Secure; HttpOnly; SameSite=Strict`) plus a
//! random CSRF token every state change must echo (form field `csrf` or header `x-csrf-token`).
//! Sessions end after `idle` without a request and `max` after login, whatever happens; they
//! live in memory only, so a restart of the web VM logs everyone out.
//!
//! Login throttling is per client address: after [`LoginGuard::MAX_FAILURES`] wrong passwords
//! within [`LoginGuard::WINDOW`] the address is locked out for [`LoginGuard::LOCKOUT`]; each
//! lockout doubles the next one, up to a day.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq as _;

/// Most sessions at once; logging in beyond it ends the oldest (a bound on memory).
pub const MAX_SESSIONS: usize = 64;

/// A message shown once on the next page (after a redirect).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    /// Whether it reports a failure.
    pub error: bool,
    /// What to say.
    pub text: String,
}

/// One logged-in session.
#[derive(Debug, Clone)]
pub struct Session {
    /// The token forms and API calls must echo.
    pub csrf: String,
    /// The user's name.
    pub user: String,
    created: Instant,
    last_seen: Instant,
    /// What to show on the next page.
    pub flash: Option<Flash>,
}

/// The sessions of the web UI.
#[derive(Debug)]
pub struct Sessions {
    idle: Duration,
    max: Duration,
    by_id: HashMap<String, Session>,
}

fn random_token() -> String {
    // rand's thread generator is a CSPRNG seeded from the OS.
    hex::encode(rand::random::<[u8; 32]>())
}

impl Sessions {
    /// Sessions ending after `idle` without a request and `max` after login.
    pub fn new(idle: Duration, max: Duration) -> Self {
        Self {
            idle,
            max,
            by_id: HashMap::new(),
        }
    }

    /// Changes the expiry (after a settings change); running sessions follow at once.
    pub fn set_expiry(&mut self, idle: Duration, max: Duration) {
        self.idle = idle;
        self.max = max;
    }

    /// Starts a session for `user`; returns its id (the cookie value).
    pub fn login(&mut self, user: &str, now: Instant) -> String {
        self.expire(now);
        if self.by_id.len() >= MAX_SESSIONS
            && let Some(oldest) = self
                .by_id
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(id, _)| id.clone())
        {
            self.by_id.remove(&oldest);
        }
        let id = random_token();
        self.by_id.insert(
            id.clone(),
            Session {
                csrf: random_token(),
                user: user.to_owned(),
                created: now,
                last_seen: now,
                flash: None,
            },
        );
        id
    }

    /// The live session with cookie value `id`, its idle timer restarted; `None` when there is
    /// none or it has expired (then it is gone).
    pub fn touch(&mut self, id: &str, now: Instant) -> Option<&mut Session> {
        let live = self.by_id.get(id).is_some_and(|s| self.is_live(s, now));
        if !live {
            self.by_id.remove(id);
            return None;
        }
        let session = self.by_id.get_mut(id)?;
        session.last_seen = now;
        Some(session)
    }

    /// Ends the session `id`.
    pub fn logout(&mut self, id: &str) {
        self.by_id.remove(id);
    }

    /// Ends every session (after the password changed).
    pub fn logout_all(&mut self) {
        self.by_id.clear();
    }

    /// How many sessions are live.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether no session is live.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    fn is_live(&self, s: &Session, now: Instant) -> bool {
        now.saturating_duration_since(s.last_seen) < self.idle
            && now.saturating_duration_since(s.created) < self.max
    }

    fn expire(&mut self, now: Instant) {
        let (idle, max) = (self.idle, self.max);
        self.by_id.retain(|_, s| {
            now.saturating_duration_since(s.last_seen) < idle
                && now.saturating_duration_since(s.created) < max
        });
    }
}

/// Whether `presented` is the session's CSRF token, compared in constant time.
pub fn csrf_matches(session: &Session, presented: &str) -> bool {
    bool::from(session.csrf.as_bytes().ct_eq(presented.as_bytes()))
}

#[derive(Debug, Clone, Copy)]
struct Attempts {
    failures: u32,
    window_start: Instant,
    locked_until: Option<Instant>,
    lockouts: u32,
}

/// Login attempts per client address.
#[derive(Debug, Default)]
pub struct LoginGuard {
    by_client: HashMap<IpAddr, Attempts>,
}

/// Why a login attempt may not even be checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockedOut {
    /// How long until the client may try again.
    pub retry_after: Duration,
}

impl LoginGuard {
    /// Wrong passwords allowed within [`Self::WINDOW`] before a lockout.
    pub const MAX_FAILURES: u32 = 5;
    /// The window failures are counted in.
    pub const WINDOW: Duration = Duration::from_secs(15 * 60);
    /// The first lockout; each further one doubles, up to [`Self::MAX_LOCKOUT`].
    pub const LOCKOUT: Duration = Duration::from_secs(5 * 60);
    /// The longest lockout.
    pub const MAX_LOCKOUT: Duration = Duration::from_secs(24 * 3600);
    /// Clients tracked at once; beyond it the stalest unlocked entries are forgotten.
    pub const MAX_CLIENTS: usize = 4096;

    /// `Err` when `client` is locked out now; call before checking a password.
    pub fn check(&self, client: IpAddr, now: Instant) -> Result<(), LockedOut> {
        match self.by_client.get(&client).and_then(|a| a.locked_until) {
            Some(until) if until > now => Err(LockedOut {
                retry_after: until - now,
            }),
            _ => Ok(()),
        }
    }

    /// Records a wrong password from `client`.
    pub fn failed(&mut self, client: IpAddr, now: Instant) {
        if self.by_client.len() >= Self::MAX_CLIENTS && !self.by_client.contains_key(&client) {
            self.by_client
                .retain(|_, a| a.locked_until.is_some_and(|u| u > now));
        }
        let a = self.by_client.entry(client).or_insert(Attempts {
            failures: 0,
            window_start: now,
            locked_until: None,
            lockouts: 0,
        });
        if now.saturating_duration_since(a.window_start) >= Self::WINDOW {
            a.failures = 0;
            a.window_start = now;
        }
        a.failures += 1;
        if a.failures >= Self::MAX_FAILURES {
            let lockout = Self::LOCKOUT
                .saturating_mul(1 << a.lockouts.min(16))
                .min(Self::MAX_LOCKOUT);
            a.locked_until = Some(now + lockout);
            a.lockouts += 1;
            a.failures = 0;
            a.window_start = now;
        }
    }

    /// Records a right password from `client`: its count starts again.
    pub fn succeeded(&mut self, client: IpAddr) {
        self.by_client.remove(&client);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(600);
    const MAX: Duration = Duration::from_secs(3600);

    #[test]
    fn session_ends_after_idle_time_without_requests() {
        let t0 = Instant::now();
        let mut s = Sessions::new(IDLE, MAX);
        let id = s.login("admin", t0);
        assert!(s.touch(&id, t0 + Duration::from_secs(599)).is_some());
        // Idle counts from the last request, not from login.
        assert!(s.touch(&id, t0 + Duration::from_secs(1198)).is_some());
        assert!(s.touch(&id, t0 + Duration::from_secs(1798)).is_none());
        assert!(s.is_empty(), "an expired session is forgotten");
    }

    #[test]
    fn session_ends_at_its_absolute_limit_even_when_busy() {
        let t0 = Instant::now();
        let mut s = Sessions::new(IDLE, MAX);
        let id = s.login("admin", t0);
        // A request every 5 minutes until just before the limit keeps it alive...
        let mut t = t0;
        while t + Duration::from_secs(300) < t0 + MAX {
            t += Duration::from_secs(300);
            assert!(s.touch(&id, t).is_some());
        }
        // ...and at the limit it ends anyway.
        assert!(s.touch(&id, t0 + MAX).is_none());
    }

    #[test]
    fn sessions_have_distinct_random_ids_and_csrf_tokens() {
        let t0 = Instant::now();
        let mut s = Sessions::new(IDLE, MAX);
        let a = s.login("admin", t0);
        let b = s.login("admin", t0);
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        let ca = s.touch(&a, t0).unwrap().csrf.clone();
        let cb = s.touch(&b, t0).unwrap().csrf.clone();
        assert_ne!(ca, cb);
        assert_ne!(ca, a);
        assert!(csrf_matches(s.touch(&a, t0).unwrap(), &ca));
        assert!(!csrf_matches(s.touch(&a, t0).unwrap(), &cb));
        assert!(!csrf_matches(s.touch(&a, t0).unwrap(), ""));
    }

    #[test]
    fn logout_ends_only_that_session() {
        let t0 = Instant::now();
        let mut s = Sessions::new(IDLE, MAX);
        let a = s.login("admin", t0);
        let b = s.login("admin", t0);
        s.logout(&a);
        assert!(s.touch(&a, t0).is_none());
        assert!(s.touch(&b, t0).is_some());
    }

    #[test]
    fn session_count_is_bounded_by_dropping_the_stalest() {
        let t0 = Instant::now();
        let mut s = Sessions::new(IDLE, MAX);
        let first = s.login("admin", t0);
        for i in 0..MAX_SESSIONS {
            s.login("admin", t0 + Duration::from_secs(1 + i as u64));
        }
        assert_eq!(s.len(), MAX_SESSIONS);
        assert!(s.touch(&first, t0 + Duration::from_secs(100)).is_none());
    }

    #[test]
    fn client_is_locked_out_after_max_failures_and_lockouts_double() {
        let t0 = Instant::now();
        let client: IpAddr = "192.168.1.20".parse().unwrap();
        let other: IpAddr = "192.168.1.21".parse().unwrap();
        let mut g = LoginGuard::default();
        for _ in 0..LoginGuard::MAX_FAILURES - 1 {
            g.failed(client, t0);
            assert!(g.check(client, t0).is_ok());
        }
        g.failed(client, t0);
        let locked = g.check(client, t0).unwrap_err();
        assert_eq!(locked.retry_after, LoginGuard::LOCKOUT);
        assert!(g.check(other, t0).is_ok(), "the lockout is per client");
        let t1 = t0 + LoginGuard::LOCKOUT;
        assert!(g.check(client, t1).is_ok());
        for _ in 0..LoginGuard::MAX_FAILURES {
            g.failed(client, t1);
        }
        assert_eq!(
            g.check(client, t1).unwrap_err().retry_after,
            LoginGuard::LOCKOUT * 2
        );
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up_and_success_resets() {
        let t0 = Instant::now();
        let client: IpAddr = "192.168.1.20".parse().unwrap();
        let mut g = LoginGuard::default();
        for i in 0..(LoginGuard::MAX_FAILURES * 3) {
            g.failed(client, t0 + LoginGuard::WINDOW * (i / 2));
        }
        assert!(g.check(client, t0 + LoginGuard::WINDOW * 10).is_ok());
        for _ in 0..LoginGuard::MAX_FAILURES - 1 {
            g.failed(client, t0);
        }
        g.succeeded(client);
        g.failed(client, t0);
        assert!(g.check(client, t0).is_ok());
    }
}
