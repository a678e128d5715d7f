//! The query path: [`Resolver::decide`] answers what it can at once (malformed, refused,
//! rate-limited, local, blocked, cached) without IO; what it cannot it hands back as
//! [`Step::Resolve`], and [`Resolver::resolve`] forwards it, with one upstream query for any
//! number of identical questions in flight (coalescing), serve-stale when upstreams fail or are
//! slow (RFC 8767), and prefetch of names that are asked for shortly before they expire.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use roost_config::settings::BlockResponse;
use roost_config::views::DnsView;
use tokio::sync::{Semaphore, watch};

use hickory_proto::op::Message;
use hickory_proto::rr::{Name, RecordType};

use crate::blocklist::{BlocklistError, Blocklists};
use crate::cache::{Cache, CacheStats, Lookup};
use crate::dnssec::{self, AnchorError, Anchors, Security};
use crate::local::{LOCAL_TTL, Local, LocalNameError, LocalNames, LocalZone};
use crate::ratelimit::RateLimiter;
use crate::tls::TlsConfigError;
use crate::upstream::{Question, ServerStats, Upstreams};
use crate::wire::{self, Key, Prepared, Query, Reply, Ttls, rcode};

/// Upstream resolutions in flight at once; beyond, queries get stale data or SERVFAIL.
pub const MAX_INFLIGHT: usize = 1024;
/// RFC 8767 §5 client response timer: past this, a stale answer is sent while the refresh
/// goes on.
pub const STALE_AFTER: Duration = Duration::from_millis(1800);
/// The TTL of a stale answer (RFC 8767 §4).
pub const STALE_TTL: u32 = 30;
/// Longest a client query waits for upstream before SERVFAIL.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(6);
/// TTL of blocked answers.
pub const BLOCKED_TTL: u32 = 300;
/// Largest message over TCP.
pub const TCP_LIMIT: usize = 65_535;
/// How long a bogus answer is remembered (answered SERVFAIL without asking again).
pub const BOGUS_TTL: u32 = 60;
/// Chain records (DS, DNSKEY) kept at most this long, and this many.
pub const CHAIN_TTL_MAX: u32 = 3600;
/// See [`CHAIN_TTL_MAX`].
pub const CHAIN_ENTRIES: usize = 4096;
/// Chain fetches one validation may make (a bound against absurd delegation depths).
pub const MAX_CHAIN_FETCHES: usize = 32;

/// The policy of a view could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A block list.
    #[error(transparent)]
    Blocklist(#[from] BlocklistError),
    /// The TLS settings for DoT upstreams.
    #[error(transparent)]
    Tls(#[from] TlsConfigError),
    /// The DNSSEC trust anchor file.
    #[error(transparent)]
    TrustAnchor(#[from] AnchorError),
    /// The recursor could not start.
    #[error("{0}")]
    Recursion(String),
}

/// Which transport a query came over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP (answers bounded by the client's payload size, rate-limited).
    Udp,
    /// TCP.
    Tcp,
}

impl Transport {
    fn limit(self, q: &Query) -> usize {
        match self {
            Self::Udp => q.udp_limit(),
            Self::Tcp => TCP_LIMIT,
        }
    }
}

/// What to do with a datagram or TCP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this.
    Reply(Vec<u8>),
    /// Send this, and refresh the cache entry in the background (prefetch).
    ReplyAndPrefetch(Vec<u8>, Query),
    /// Send nothing.
    Drop,
    /// Forward: call [`Resolver::resolve`].
    Resolve(Query),
}

/// Counters, exported on `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// UDP queries received.
    pub udp_queries: AtomicU64,
    /// TCP queries received.
    pub tcp_queries: AtomicU64,
    /// Answered from the cache.
    pub cache_hits: AtomicU64,
    /// Not in the cache (forwarded or coalesced).
    pub cache_misses: AtomicU64,
    /// Answered from an expired entry (RFC 8767).
    pub stale_answers: AtomicU64,
    /// Joined an upstream query already in flight.
    pub coalesced: AtomicU64,
    /// Background refreshes started.
    pub prefetches: AtomicU64,
    /// Answered by the local zone.
    pub local_answers: AtomicU64,
    /// Blocked names.
    pub blocked: AtomicU64,
    /// Refused (outside the client networks, or unsupported class/type).
    pub refused: AtomicU64,
    /// Dropped by the per-client rate limit.
    pub rate_limited: AtomicU64,
    /// Malformed messages (FORMERR or dropped).
    pub malformed: AtomicU64,
    /// SERVFAIL sent.
    pub servfail: AtomicU64,
    /// Answers validated secure.
    pub dnssec_secure: AtomicU64,
    /// Answers found insecure (unsigned).
    pub dnssec_insecure: AtomicU64,
    /// Answers found bogus.
    pub dnssec_bogus: AtomicU64,
    /// Resolutions refused because too many were in flight.
    pub inflight_full: AtomicU64,
    /// TCP connections refused at the connection bound.
    pub tcp_refused: AtomicU64,
    /// Answers that could not be sent.
    pub send_errors: AtomicU64,
}

/// The part of the settings the query path consults; swapped whole on `PUT /config`.
pub struct Policy {
    clients: Vec<Ipv4Net>,
    clients6: Vec<ipnet::Ipv6Net>,
    local: LocalZone,
    blocklists: Arc<Blocklists>,
    block_response: BlockResponse,
    serve_stale: bool,
    upstreams: Arc<Upstreams>,
    /// Trust anchors when DNSSEC validation is on.
    anchors: Option<Arc<Anchors>>,
}

impl Policy {
    /// Builds the policy of a view (reads the block lists, trust anchors and CA file).
    pub fn new(view: &DnsView) -> Result<Self, PolicyError> {
        let start = Instant::now();
        let blocklists = Blocklists::load(&view.dns.blocklists)?;
        if !view.dns.blocklists.is_empty() {
            tracing::info!(
                names = blocklists.len(),
                skipped_lines = blocklists.skipped_lines,
                ms = start.elapsed().as_millis() as u64,
                "block lists loaded"
            );
        }
        let tls = if view.dns.upstreams.iter().any(|u| u.tls_name.is_some()) {
            Some(crate::tls::client_config(view.dns.tls_ca_file.as_deref())?)
        } else {
            None
        };
        let anchors = match (&view.dns.trust_anchor, view.dns.dnssec) {
            (_, false) => None,
            (Some(path), true) => Some(Arc::new(Anchors::from_file(path)?)),
            (None, true) => Some(Arc::new(Anchors::root())),
        };
        Ok(Self {
            clients: view.clients.clone(),
            clients6: view.clients6.clone(),
            local: LocalZone::new(view),
            blocklists: Arc::new(blocklists),
            block_response: view.dns.block_response,
            serve_stale: view.dns.serve_stale,
            upstreams: Arc::new(if view.dns.recursion {
                Upstreams::recursive(&view.dns.root_hints).map_err(PolicyError::Recursion)?
            } else {
                Upstreams::new(&view.dns.upstreams, tls.as_ref())
            }),
            anchors,
        })
    }

    fn allows(&self, client: IpAddr) -> bool {
        match client {
            IpAddr::V4(a) => self.clients.iter().any(|n| n.contains(&a)),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(a) => self.clients.iter().any(|n| n.contains(&a)),
                None => self.clients6.iter().any(|n| n.contains(&a)),
            },
        }
    }
}

#[derive(Debug, Clone)]
enum Outcome {
    Pending,
    Answer(Arc<Prepared>),
    Failed,
}

/// DS and DNSKEY answers by (name, type), with when they expire.
type ChainCache = HashMap<(Name, RecordType), (Arc<Message>, Instant)>;

/// Picks one counter out of an upstream server's stats (for `/metrics`).
type StatField = fn(&ServerStats) -> &AtomicU64;

/// The resolver: policy, cache, limiter, coalescing table, counters.
pub struct Resolver {
    policy: RwLock<Arc<Policy>>,
    view: RwLock<DnsView>,
    cache: Mutex<Cache>,
    limiter: Mutex<RateLimiter>,
    /// The most asked-for names (sampled), for `/state`.
    top: Mutex<crate::top::TopNames>,
    inflight: Mutex<HashMap<Key, watch::Receiver<Outcome>>>,
    /// DS and DNSKEY answers for validation, with their expiry.
    chain: Mutex<ChainCache>,
    permits: Arc<Semaphore>,
    /// Counters.
    pub metrics: Metrics,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Resolver {
    /// A resolver for `view`.
    pub fn new(view: DnsView) -> Result<Self, PolicyError> {
        let policy = Policy::new(&view)?;
        Ok(Self {
            cache: Mutex::new(Cache::new(
                view.dns.cache_entries as usize,
                usize::try_from(view.dns.cache_bytes).unwrap_or(usize::MAX),
                view.dns.serve_stale,
            )),
            limiter: Mutex::new(RateLimiter::new(view.dns.client_rate_limit)),
            top: Mutex::new(crate::top::TopNames::default()),
            policy: RwLock::new(Arc::new(policy)),
            view: RwLock::new(view),
            inflight: Mutex::new(HashMap::new()),
            chain: Mutex::new(HashMap::new()),
            permits: Arc::new(Semaphore::new(MAX_INFLIGHT)),
            metrics: Metrics::default(),
        })
    }

    fn policy(&self) -> Arc<Policy> {
        Arc::clone(&self.policy.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// The view in force.
    pub fn view(&self) -> DnsView {
        self.view.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Applies a new view: new policy (lease names kept), cache emptied, new bounds. On error
    /// the old view stays.
    pub fn apply(&self, view: DnsView) -> Result<(), PolicyError> {
        let mut policy = Policy::new(&view)?;
        policy.local.keep_leases_from(&self.policy().local);
        *lock(&self.cache) = Cache::new(
            view.dns.cache_entries as usize,
            usize::try_from(view.dns.cache_bytes).unwrap_or(usize::MAX),
            view.dns.serve_stale,
        );
        *lock(&self.limiter) = RateLimiter::new(view.dns.client_rate_limit);
        lock(&self.chain).clear();
        *self.policy.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(policy);
        *self.view.write().unwrap_or_else(|e| e.into_inner()) = view;
        Ok(())
    }

    /// Replaces the DHCP lease names.
    pub fn set_local_names(&self, names: &LocalNames) -> Result<(), LocalNameError> {
        self.update_local(|local| local.set_leases(names))
    }

    /// Replaces the firewall's neighbours (AAAA records for lease names).
    pub fn set_neighbours(&self, n: &crate::local::Neighbours) {
        let ok: Result<(), std::convert::Infallible> = self.update_local(|local| {
            local.set_neighbours(n);
            Ok(())
        });
        let Ok(()) = ok;
    }

    /// Swaps in a policy whose local zone `change` made from the current one; the rest is
    /// shared. On an error nothing changes.
    fn update_local<E>(
        &self,
        change: impl FnOnce(&mut LocalZone) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut guard = self.policy.write().unwrap_or_else(|e| e.into_inner());
        let old = Arc::clone(&guard);
        let mut local = old.local.clone();
        change(&mut local)?;
        *guard = Arc::new(Policy {
            clients: old.clients.clone(),
            clients6: old.clients6.clone(),
            local,
            blocklists: Arc::clone(&old.blocklists),
            block_response: old.block_response,
            serve_stale: old.serve_stale,
            upstreams: Arc::clone(&old.upstreams),
            anchors: old.anchors.clone(),
        });
        Ok(())
    }

    /// Decides about one message from `src` at `now`, without IO.
    pub fn decide(&self, packet: &[u8], src: IpAddr, transport: Transport, now: Instant) -> Step {
        let m = &self.metrics;
        let seen = match transport {
            Transport::Udp => m.udp_queries.fetch_add(1, Ordering::Relaxed),
            Transport::Tcp => m.tcp_queries.fetch_add(1, Ordering::Relaxed),
        };
        if transport == Transport::Udp && !lock(&self.limiter).allow(src, now) {
            m.rate_limited.fetch_add(1, Ordering::Relaxed);
            return Step::Drop;
        }
        let q = match wire::parse_query(packet) {
            Ok(q) => q,
            Err(e) => {
                m.malformed.fetch_add(1, Ordering::Relaxed);
                return wire::formerr_for(packet, e).map_or(Step::Drop, Step::Reply);
            }
        };
        let policy = self.policy();
        let limit = transport.limit(&q);
        if !policy.allows(src) {
            m.refused.fetch_add(1, Ordering::Relaxed);
            return Step::Reply(Reply::new(&q, packet, rcode::REFUSED, false).finish(limit));
        }
        // Zone transfers and other classes are not for a home resolver.
        if q.qclass != wire::CLASS_IN || matches!(q.qtype, 251 | 252) {
            m.refused.fetch_add(1, Ordering::Relaxed);
            return Step::Reply(Reply::new(&q, packet, rcode::REFUSED, false).finish(limit));
        }
        if seen % crate::top::SAMPLE_EVERY == 0 {
            lock(&self.top).observe(&q.name);
        }
        if let Some(local) = policy.local.lookup(&q.name, q.qtype, src) {
            m.local_answers.fetch_add(1, Ordering::Relaxed);
            return Step::Reply(local_reply(&q, packet, &local.answer, &local.zone, limit));
        }
        if policy.blocklists.is_blocked(&q.name) {
            m.blocked.fetch_add(1, Ordering::Relaxed);
            return Step::Reply(blocked_reply(&q, packet, policy.block_response, limit));
        }
        let lookup = lock(&self.cache).get(&q.key(), now);
        match lookup {
            Lookup::Fresh {
                answer,
                age,
                remaining,
            } => {
                m.cache_hits.fetch_add(1, Ordering::Relaxed);
                if answer.security == Security::Bogus {
                    m.servfail.fetch_add(1, Ordering::Relaxed);
                    return Step::Reply(
                        Reply::new(&q, packet, rcode::SERVFAIL, false).finish(limit),
                    );
                }
                let out = wire::render(&answer, &q, packet, Ttls::Age(age), limit);
                let ttl = answer.ttl.unwrap_or(0);
                if ttl >= 10 && remaining.saturating_mul(10) < ttl {
                    return Step::ReplyAndPrefetch(out, q);
                }
                Step::Reply(out)
            }
            Lookup::Stale(_) | Lookup::Miss => {
                m.cache_misses.fetch_add(1, Ordering::Relaxed);
                Step::Resolve(q)
            }
        }
    }

    /// Starts (or joins) the upstream resolution of `q`'s question. With `reuse_fresh`, an
    /// answer cached since the caller's miss is used instead: a resolution that finished
    /// between that miss and this call must not cause a second upstream query.
    fn refresh(self: &Arc<Self>, q: &Query, reuse_fresh: bool) -> watch::Receiver<Outcome> {
        let key = q.key();
        let mut inflight = lock(&self.inflight);
        if let Some(rx) = inflight.get(&key) {
            self.metrics.coalesced.fetch_add(1, Ordering::Relaxed);
            return rx.clone();
        }
        // The cache is filled before the in-flight entry goes, so under this lock a finished
        // resolution is visible here.
        if reuse_fresh
            && let Lookup::Fresh { answer, .. } = lock(&self.cache).get(&key, Instant::now())
        {
            self.metrics.coalesced.fetch_add(1, Ordering::Relaxed);
            return watch::channel(Outcome::Answer(answer)).1;
        }
        let (tx, rx) = watch::channel(Outcome::Pending);
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            self.metrics.inflight_full.fetch_add(1, Ordering::Relaxed);
            let _ = tx.send(Outcome::Failed);
            return rx;
        };
        inflight.insert(key.clone(), rx.clone());
        drop(inflight);
        let policy = self.policy();
        let validate = policy.anchors.is_some() && !q.cd();
        let question = Question {
            name: q.name.clone(),
            qtype: q.qtype,
            qclass: q.qclass,
            dnssec_ok: validate || q.dnssec_ok(),
            checking_disabled: q.cd(),
        };
        // Records the client did not ask for come out (RFC 4035 §3.2.1).
        let strip = question.dnssec_ok && !q.dnssec_ok();
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let _permit = permit;
            let upstreams = Arc::clone(&policy.upstreams);
            let outcome = match upstreams.resolve(&question).await {
                Ok(raw) => match wire::prepare_stripped(&raw, strip) {
                    Ok(mut p) => {
                        if let Some(anchors) = policy.anchors.as_ref().filter(|_| validate) {
                            p.security = this.validate(&upstreams, anchors, &question, &raw).await;
                            let m = &this.metrics;
                            match p.security {
                                Security::Secure => &m.dnssec_secure,
                                Security::Insecure => &m.dnssec_insecure,
                                _ => &m.dnssec_bogus,
                            }
                            .fetch_add(1, Ordering::Relaxed);
                            if p.security == Security::Bogus {
                                p.ttl = Some(p.ttl.unwrap_or(BOGUS_TTL).min(BOGUS_TTL));
                            }
                        }
                        let p = Arc::new(p);
                        lock(&this.cache).insert(key.clone(), Arc::clone(&p), Instant::now());
                        Outcome::Answer(p)
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "upstream answer unusable");
                        Outcome::Failed
                    }
                },
                Err(e) => {
                    tracing::debug!(error = %e, name = %wire::name_to_string(&question.name), "resolution failed");
                    Outcome::Failed
                }
            };
            lock(&this.inflight).remove(&key);
            let _ = tx.send(outcome);
        });
        rx
    }

    /// Validates an upstream answer: runs [`dnssec::validate`] and fetches the DS and DNSKEY
    /// sets it asks for (through the chain cache), until it has a verdict. A chain record that
    /// cannot be fetched makes the answer bogus.
    async fn validate(
        &self,
        upstreams: &Upstreams,
        anchors: &Anchors,
        q: &Question,
        raw: &[u8],
    ) -> Security {
        let Ok(answer) = Message::from_vec(raw) else {
            return Security::Bogus;
        };
        let Ok(qname) = Name::from_labels(wire::labels(&q.name)) else {
            return Security::Bogus;
        };
        let qtype = RecordType::from(q.qtype);
        let mut fetched: HashMap<(Name, RecordType), Message> = HashMap::new();
        for _ in 0..=MAX_CHAIN_FETCHES {
            let now = unix_now();
            match dnssec::validate(&answer, &qname, qtype, anchors, &fetched, now) {
                dnssec::Step::Done(security, reason) => {
                    if security == Security::Bogus {
                        tracing::info!(name = %qname, qtype = %qtype, reason, "dnssec: bogus answer");
                    }
                    return security;
                }
                dnssec::Step::Need(name, rtype) => {
                    let key = (name.to_lowercase(), rtype);
                    let Some(msg) = self.chain_record(upstreams, &key).await else {
                        tracing::info!(name = %name, rtype = %rtype, "dnssec: chain record unavailable");
                        return Security::Bogus;
                    };
                    fetched.insert(key, (*msg).clone());
                }
            }
        }
        Security::Bogus
    }

    /// A DS or DNSKEY answer from the chain cache, or fetched (DO and CD set: we validate).
    async fn chain_record(
        &self,
        upstreams: &Upstreams,
        key: &(Name, RecordType),
    ) -> Option<Arc<Message>> {
        let now = Instant::now();
        if let Some((msg, expires)) = lock(&self.chain).get(key)
            && now < *expires
        {
            return Some(Arc::clone(msg));
        }
        let name = hickory_proto::serialize::binary::BinEncodable::to_bytes(&key.0).ok()?;
        let question = Question {
            name: name.iter().map(u8::to_ascii_lowercase).collect(),
            qtype: u16::from(key.1),
            qclass: wire::CLASS_IN,
            dnssec_ok: true,
            checking_disabled: true,
        };
        let raw = upstreams.resolve(&question).await.ok()?;
        let msg = Arc::new(Message::from_vec(&raw).ok()?);
        let ttl = msg
            .answers
            .iter()
            .chain(msg.authorities.iter())
            .map(|r| r.ttl)
            .min()
            .unwrap_or(0)
            .clamp(1, CHAIN_TTL_MAX);
        let mut chain = lock(&self.chain);
        if chain.len() >= CHAIN_ENTRIES {
            chain.retain(|_, (_, e)| now < *e);
            if chain.len() >= CHAIN_ENTRIES {
                chain.clear();
            }
        }
        chain.insert(
            key.clone(),
            (Arc::clone(&msg), now + Duration::from_secs(u64::from(ttl))),
        );
        Some(msg)
    }

    /// Starts a background refresh (prefetch) unless one is in flight.
    pub fn prefetch(self: &Arc<Self>, q: &Query) {
        if !lock(&self.inflight).contains_key(&q.key()) {
            self.metrics.prefetches.fetch_add(1, Ordering::Relaxed);
            drop(self.refresh(q, false));
        }
    }

    /// Answers a query the cache could not: forwards (or joins a forward in flight), falls
    /// back to a stale answer, else SERVFAIL. Never fails.
    pub async fn resolve(
        self: &Arc<Self>,
        q: Query,
        packet: &[u8],
        transport: Transport,
    ) -> Vec<u8> {
        let limit = transport.limit(&q);
        let key = q.key();
        let stale = || match lock(&self.cache).get(&key, Instant::now()) {
            Lookup::Stale(a) => Some(a),
            // Refreshed by someone else meanwhile: serve it as it is now.
            Lookup::Fresh { answer, .. } => Some(answer),
            Lookup::Miss => None,
        };
        let serve_stale = self.policy().serve_stale;
        let has_stale = serve_stale && stale().is_some();
        let mut rx = self.refresh(&q, true);
        let wait = if has_stale {
            STALE_AFTER
        } else {
            RESOLVE_TIMEOUT
        };
        let done =
            tokio::time::timeout(wait, rx.wait_for(|o| !matches!(o, Outcome::Pending))).await;
        let outcome = match done {
            Ok(Ok(o)) => o.clone(),
            _ => Outcome::Failed,
        };
        match outcome {
            Outcome::Answer(p) if p.security == Security::Bogus => {
                self.metrics.servfail.fetch_add(1, Ordering::Relaxed);
                Reply::new(&q, packet, rcode::SERVFAIL, false).finish(limit)
            }
            Outcome::Answer(p) => wire::render(&p, &q, packet, Ttls::Age(0), limit),
            Outcome::Failed | Outcome::Pending => {
                if serve_stale
                    && let Some(a) = stale()
                    && a.security != Security::Bogus
                {
                    self.metrics.stale_answers.fetch_add(1, Ordering::Relaxed);
                    return wire::render(&a, &q, packet, Ttls::Fixed(STALE_TTL), limit);
                }
                self.metrics.servfail.fetch_add(1, Ordering::Relaxed);
                Reply::new(&q, packet, rcode::SERVFAIL, false).finish(limit)
            }
        }
    }

    /// Drops entries past the stale window.
    pub fn sweep(&self) {
        lock(&self.cache).sweep(Instant::now());
    }

    /// Cache counters.
    pub fn cache_stats(&self) -> CacheStats {
        lock(&self.cache).stats()
    }

    /// Prometheus text for `/metrics`.
    pub fn metrics_text(&self) -> String {
        use std::fmt::Write as _;
        let m = &self.metrics;
        let mut out = String::with_capacity(4096);
        let mut counter = |name: &str, help: &str, v: &AtomicU64| {
            let _ = writeln!(out, "# HELP roost_dns_{name} {help}");
            let _ = writeln!(out, "# TYPE roost_dns_{name} counter");
            let _ = writeln!(out, "roost_dns_{name} {}", v.load(Ordering::Relaxed));
        };
        counter("udp_queries_total", "UDP queries received.", &m.udp_queries);
        counter("tcp_queries_total", "TCP queries received.", &m.tcp_queries);
        counter(
            "cache_hits_total",
            "Queries answered from the cache.",
            &m.cache_hits,
        );
        counter(
            "cache_misses_total",
            "Queries not in the cache.",
            &m.cache_misses,
        );
        counter(
            "stale_answers_total",
            "Answers served stale (RFC 8767).",
            &m.stale_answers,
        );
        counter(
            "coalesced_total",
            "Queries that joined an upstream query in flight.",
            &m.coalesced,
        );
        counter(
            "prefetches_total",
            "Background refreshes of popular names.",
            &m.prefetches,
        );
        counter(
            "local_answers_total",
            "Queries answered by the local zone.",
            &m.local_answers,
        );
        counter("blocked_total", "Queries for blocked names.", &m.blocked);
        counter("refused_total", "Queries refused.", &m.refused);
        counter(
            "rate_limited_total",
            "Queries dropped by the per-client rate limit.",
            &m.rate_limited,
        );
        counter("malformed_total", "Malformed messages.", &m.malformed);
        counter("servfail_total", "SERVFAIL answers.", &m.servfail);
        counter(
            "dnssec_secure_total",
            "Upstream answers validated secure.",
            &m.dnssec_secure,
        );
        counter(
            "dnssec_insecure_total",
            "Upstream answers found unsigned (insecure).",
            &m.dnssec_insecure,
        );
        counter(
            "dnssec_bogus_total",
            "Upstream answers found bogus (answered SERVFAIL).",
            &m.dnssec_bogus,
        );
        counter(
            "inflight_full_total",
            "Resolutions refused at the in-flight bound.",
            &m.inflight_full,
        );
        counter(
            "tcp_refused_total",
            "TCP connections refused at the connection bound.",
            &m.tcp_refused,
        );
        counter(
            "send_errors_total",
            "Answers that could not be sent.",
            &m.send_errors,
        );
        let c = self.cache_stats();
        let _ = writeln!(
            out,
            "# TYPE roost_dns_cache_entries gauge\nroost_dns_cache_entries {}",
            c.entries
        );
        let _ = writeln!(
            out,
            "# TYPE roost_dns_cache_bytes gauge\nroost_dns_cache_bytes {}",
            c.bytes
        );
        let _ = writeln!(
            out,
            "# TYPE roost_dns_cache_evictions_total counter\nroost_dns_cache_evictions_total {}",
            c.evictions
        );
        let policy = self.policy();
        let _ = writeln!(
            out,
            "# TYPE roost_dns_blocklist_names gauge\nroost_dns_blocklist_names {}",
            policy.blocklists.len()
        );
        let per_server: [(&str, StatField); 5] = [
            ("roost_dns_upstream_queries_total", |s| &s.queries),
            ("roost_dns_upstream_failures_total", |s| &s.failures),
            ("roost_dns_upstream_tcp_fallbacks_total", |s| {
                &s.tcp_fallbacks
            }),
            ("roost_dns_upstream_mismatched_total", |s| &s.mismatched),
            ("roost_dns_upstream_case_mismatched_total", |s| {
                &s.case_mismatched
            }),
        ];
        for (name, counter) in per_server {
            let _ = writeln!(out, "# TYPE {name} counter");
            for s in policy.upstreams.servers() {
                let value = counter(&s.stats).load(Ordering::Relaxed);
                let _ = writeln!(out, "{name}{{server=\"{}\"}} {value}", s.addr);
            }
        }
        let _ = writeln!(out, "# TYPE roost_dns_upstream_latency_seconds summary");
        for s in policy.upstreams.servers() {
            let sum = s.stats.latency_us_sum.load(Ordering::Relaxed) as f64 / 1e6;
            let n = s.stats.answers.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "roost_dns_upstream_latency_seconds_sum{{server=\"{}\"}} {sum}",
                s.addr
            );
            let _ = writeln!(
                out,
                "roost_dns_upstream_latency_seconds_count{{server=\"{}\"}} {n}",
                s.addr
            );
        }
        out
    }

    /// `/state` as JSON.
    pub fn state_json(&self) -> serde_json::Value {
        let policy = self.policy();
        let upstreams: Vec<serde_json::Value> = policy
            .upstreams
            .servers()
            .iter()
            .map(|s| {
                serde_json::json!({
                    "address": s.addr.to_string(),
                    "tls_name": s.tls_name,
                    "healthy": s.healthy(),
                    "queries": s.stats.queries.load(Ordering::Relaxed),
                    "failures": s.stats.failures.load(Ordering::Relaxed),
                    "case_randomization": s.case_randomization(),
                    "case_mismatched": s.stats.case_mismatched.load(Ordering::Relaxed),
                })
            })
            .collect();
        serde_json::json!({
            "recursion": policy.upstreams.is_recursive(),
            "cache": self.cache_stats(),
            "upstreams": upstreams,
            "local_names": policy.local.names(),
            "lease_names": policy.local.lease_names(),
            "blocklist_names": policy.blocklists.len(),
            "top_names": lock(&self.top)
                .top(10)
                .into_iter()
                .map(|(name, queries)| serde_json::json!({ "name": name, "queries": queries }))
                .collect::<Vec<_>>(),
        })
    }
}

/// Seconds since the Unix epoch, for signature validity windows.
fn unix_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}

fn local_reply(q: &Query, packet: &[u8], answer: &Local, zone: &[u8], limit: usize) -> Vec<u8> {
    match answer {
        Local::Addresses(addrs) => {
            let mut r = Reply::new(q, packet, rcode::NOERROR, true);
            for a in addrs {
                r.address(*a, LOCAL_TTL);
            }
            r.finish(limit)
        }
        Local::Ptr(names) => {
            let mut r = Reply::new(q, packet, rcode::NOERROR, true);
            for n in names {
                r.answer(wire::TYPE_PTR, LOCAL_TTL, n);
            }
            r.finish(limit)
        }
        Local::NoData => {
            let mut r = Reply::new(q, packet, rcode::NOERROR, true);
            r.soa(zone, LOCAL_TTL);
            r.finish(limit)
        }
        Local::NxDomain => {
            let mut r = Reply::new(q, packet, rcode::NXDOMAIN, true);
            r.soa(zone, LOCAL_TTL);
            r.finish(limit)
        }
    }
}

fn blocked_reply(q: &Query, packet: &[u8], how: BlockResponse, limit: usize) -> Vec<u8> {
    match how {
        BlockResponse::Nxdomain => Reply::new(q, packet, rcode::NXDOMAIN, false).finish(limit),
        BlockResponse::Null => {
            let mut r = Reply::new(q, packet, rcode::NOERROR, false);
            match q.qtype {
                wire::TYPE_A => {
                    r.answer(wire::TYPE_A, BLOCKED_TTL, &[0; 4]);
                }
                wire::TYPE_AAAA => {
                    r.answer(wire::TYPE_AAAA, BLOCKED_TTL, &[0; 16]);
                }
                _ => {}
            }
            r.finish(limit)
        }
    }
}
