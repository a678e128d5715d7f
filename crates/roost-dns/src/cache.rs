//! The answer cache, sans-IO: every call takes `now`.
//!
//! Entries are [`Prepared`] answers (pre-encoded wire messages with their TTL offsets), so a
//! hit is a copy plus a few stores ([`crate::wire::render`]). Positive answers live for their
//! smallest answer TTL, negative ones (NXDOMAIN, NODATA) for the RFC 2308 negative TTL. After
//! expiry an entry is kept for [`STALE_WINDOW`] so it can be served stale (RFC 8767) when no
//! upstream answers; a fresh answer replaces it.
//!
//! Bounds: entries and bytes (wire bytes plus a fixed per-entry overhead). Eviction is CLOCK
//! (second chance): a FIFO of keys, each entry with a referenced bit set on a hit; the evictor
//! skips (and clears) referenced entries once. O(1) amortised, no per-hit list surgery.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::wire::{Key, Prepared};

/// How long after expiry an entry may still be served stale (RFC 8767 §5 suggests 1 to 3 days).
pub const STALE_WINDOW: Duration = Duration::from_secs(86_400);

/// Bytes counted per entry beyond its wire bytes and key (map slot, queue slot, bookkeeping).
const ENTRY_OVERHEAD: usize = 96;

struct Entry {
    answer: Arc<Prepared>,
    stored: Instant,
    expires: Instant,
    referenced: bool,
    generation: u64,
    cost: usize,
}

/// A cache lookup's result.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// A live answer, stored `age` seconds ago.
    Fresh {
        /// The answer.
        answer: Arc<Prepared>,
        /// Seconds since it was stored (subtract from every TTL).
        age: u32,
        /// Seconds it has left.
        remaining: u32,
    },
    /// An expired answer still inside the stale window.
    Stale(Arc<Prepared>),
    /// Nothing usable.
    Miss,
}

/// Cache counters for `/metrics` and `/state`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    /// Entries held (fresh and stale).
    pub entries: usize,
    /// Bytes held, as counted against the bound.
    pub bytes: usize,
    /// Entries evicted for space.
    pub evictions: u64,
}

/// The cache.
pub struct Cache {
    map: HashMap<Key, Entry>,
    clock: VecDeque<(Key, u64)>,
    max_entries: usize,
    max_bytes: usize,
    bytes: usize,
    next_generation: u64,
    evictions: u64,
    keep_stale: bool,
}

impl Cache {
    /// A cache bounded to `max_entries` and `max_bytes`; `keep_stale` keeps expired entries for
    /// serve-stale.
    pub fn new(max_entries: usize, max_bytes: usize, keep_stale: bool) -> Self {
        Self {
            map: HashMap::new(),
            clock: VecDeque::new(),
            max_entries: max_entries.max(1),
            max_bytes,
            bytes: 0,
            next_generation: 0,
            evictions: 0,
            keep_stale,
        }
    }

    /// Looks `key` up at `now`.
    pub fn get(&mut self, key: &Key, now: Instant) -> Lookup {
        let Some(e) = self.map.get_mut(key) else {
            return Lookup::Miss;
        };
        if now < e.expires {
            e.referenced = true;
            let age = now.saturating_duration_since(e.stored).as_secs();
            let remaining = e.expires.saturating_duration_since(now).as_secs();
            return Lookup::Fresh {
                answer: Arc::clone(&e.answer),
                age: u32::try_from(age).unwrap_or(u32::MAX),
                remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
            };
        }
        if self.keep_stale && now < e.expires + STALE_WINDOW {
            return Lookup::Stale(Arc::clone(&e.answer));
        }
        self.remove(key);
        Lookup::Miss
    }

    /// Stores `answer` under `key` at `now`, if it is cacheable (has a TTL > 0) and fits.
    /// Returns whether it was stored.
    pub fn insert(&mut self, key: Key, answer: Arc<Prepared>, now: Instant) -> bool {
        let Some(ttl) = answer.ttl.filter(|t| *t > 0) else {
            return false;
        };
        let cost = answer.cost() + key.0.len() * 2 + ENTRY_OVERHEAD;
        if cost > self.max_bytes {
            return false;
        }
        self.remove(&key);
        while self.map.len() >= self.max_entries || self.bytes + cost > self.max_bytes {
            if !self.evict_one() {
                break;
            }
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        self.clock.push_back((key.clone(), generation));
        self.bytes += cost;
        self.map.insert(
            key,
            Entry {
                answer,
                stored: now,
                expires: now + Duration::from_secs(u64::from(ttl)),
                referenced: false,
                generation,
                cost,
            },
        );
        true
    }

    fn remove(&mut self, key: &Key) {
        if let Some(e) = self.map.remove(key) {
            self.bytes -= e.cost;
        }
    }

    /// Evicts one entry by CLOCK; false when there is nothing left.
    fn evict_one(&mut self) -> bool {
        // Each live entry is skipped at most once, so this ends within 2 laps.
        while let Some((key, generation)) = self.clock.pop_front() {
            let Some(e) = self.map.get_mut(&key) else {
                continue; // removed or replaced: a dead queue slot
            };
            if e.generation != generation {
                continue;
            }
            if e.referenced {
                e.referenced = false;
                self.clock.push_back((key, generation));
                continue;
            }
            self.remove(&key);
            self.evictions += 1;
            return true;
        }
        false
    }

    /// Drops every entry (new upstreams, new local names).
    pub fn clear(&mut self) {
        self.map.clear();
        self.clock.clear();
        self.bytes = 0;
    }

    /// Removes entries past the stale window, and compacts the queue; call now and then.
    pub fn sweep(&mut self, now: Instant) {
        let keep_stale = self.keep_stale;
        let before: usize = self.map.values().map(|e| e.cost).sum();
        self.map.retain(|_, e| {
            let limit = if keep_stale {
                e.expires + STALE_WINDOW
            } else {
                e.expires
            };
            now < limit
        });
        let after: usize = self.map.values().map(|e| e.cost).sum();
        self.bytes -= before - after;
        let map = &self.map;
        self.clock
            .retain(|(k, g)| map.get(k).is_some_and(|e| e.generation == *g));
    }

    /// Counters.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            entries: self.map.len(),
            bytes: self.bytes,
            evictions: self.evictions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{CLASS_IN, TYPE_A, build_query, encode_name, prepare};

    fn key(name: &str) -> Key {
        let mut k = encode_name(name).unwrap();
        k.extend_from_slice(&[0, 1, 0, 1]);
        Key(k.into_boxed_slice())
    }

    fn answer(name: &str, ttl: u32) -> Arc<Prepared> {
        let mut r = build_query(1, &encode_name(name).unwrap(), TYPE_A, CLASS_IN);
        r.truncate(r.len() - 11);
        r[2] = 0x81;
        r[3] = 0x80;
        r[7] = 1;
        r[11] = 0;
        r.extend_from_slice(&[0xC0, 0x0C, 0, 1, 0, 1]);
        r.extend_from_slice(&ttl.to_be_bytes());
        r.extend_from_slice(&[0, 4, 192, 0, 2, 1]);
        Arc::new(prepare(&r).unwrap())
    }

    #[test]
    fn answer_is_fresh_until_its_ttl_then_stale_then_gone() {
        let t0 = Instant::now();
        let mut c = Cache::new(10, 1 << 20, true);
        assert!(c.insert(key("a.test"), answer("a.test", 60), t0));
        match c.get(&key("a.test"), t0 + Duration::from_secs(15)) {
            Lookup::Fresh { age, remaining, .. } => assert_eq!((age, remaining), (15, 45)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            c.get(&key("a.test"), t0 + Duration::from_secs(61)),
            Lookup::Stale(_)
        ));
        assert!(matches!(
            c.get(&key("a.test"), t0 + Duration::from_secs(61) + STALE_WINDOW),
            Lookup::Miss
        ));
        assert_eq!(c.stats().entries, 0);
    }

    #[test]
    fn without_serve_stale_an_expired_answer_is_a_miss() {
        let t0 = Instant::now();
        let mut c = Cache::new(10, 1 << 20, false);
        c.insert(key("a.test"), answer("a.test", 1), t0);
        assert!(matches!(
            c.get(&key("a.test"), t0 + Duration::from_secs(2)),
            Lookup::Miss
        ));
    }

    #[test]
    fn zero_ttl_answers_are_not_cached() {
        let mut c = Cache::new(10, 1 << 20, true);
        assert!(!c.insert(key("a.test"), answer("a.test", 0), Instant::now()));
    }

    #[test]
    fn entry_bound_evicts_unreferenced_entries_first() {
        let t0 = Instant::now();
        let mut c = Cache::new(3, 1 << 20, true);
        for n in ["a", "b", "c"] {
            c.insert(key(n), answer(n, 60), t0);
        }
        // `a` is used, so `b` (the oldest unused) goes.
        assert!(matches!(c.get(&key("a"), t0), Lookup::Fresh { .. }));
        c.insert(key("d"), answer("d", 60), t0);
        assert_eq!(c.stats().entries, 3);
        assert!(matches!(c.get(&key("b"), t0), Lookup::Miss));
        assert!(matches!(c.get(&key("a"), t0), Lookup::Fresh { .. }));
        assert_eq!(c.stats().evictions, 1);
    }

    #[test]
    fn byte_bound_is_never_exceeded() {
        let t0 = Instant::now();
        let mut c = Cache::new(1_000_000, 2_000, true);
        for i in 0..200 {
            let n = format!("host{i}.test");
            c.insert(key(&n), answer(&n, 60), t0);
            assert!(c.stats().bytes <= 2_000);
        }
        assert!(c.stats().entries > 5);
        c.sweep(t0 + Duration::from_secs(61) + STALE_WINDOW);
        assert_eq!(
            c.stats(),
            CacheStats {
                entries: 0,
                bytes: 0,
                ..c.stats()
            }
        );
    }

    #[test]
    fn replacing_an_entry_keeps_the_byte_count_exact() {
        let t0 = Instant::now();
        let mut c = Cache::new(10, 1 << 20, true);
        c.insert(key("a"), answer("a", 60), t0);
        let one = c.stats().bytes;
        c.insert(key("a"), answer("a", 30), t0);
        assert_eq!(c.stats().bytes, one);
        assert_eq!(c.stats().entries, 1);
    }
}
