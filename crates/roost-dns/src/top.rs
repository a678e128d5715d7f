//! The most asked-for names, for the web UI's DNS page: a Space-Saving summary (Metwally et
//! al., 2005) of at most [`CAPACITY`] names, fed one query in [`SAMPLE_EVERY`] so the query path
//! pays for a lock only rarely. Counts are estimates scaled back up by the sampling rate; a name
//! asked for more often than 1/[`CAPACITY`] of all queries is always in it.

use std::collections::HashMap;

/// Names tracked at once.
pub const CAPACITY: usize = 128;
/// One query in this many is counted.
pub const SAMPLE_EVERY: u64 = 8;

/// The summary.
#[derive(Debug, Default)]
pub struct TopNames {
    /// Name in wire form → estimated count (in samples).
    counts: HashMap<Vec<u8>, u64>,
}

impl TopNames {
    /// Counts one sampled query for `name` (wire form). When full, the name replaces the
    /// least counted one and inherits its count, as Space-Saving does.
    pub fn observe(&mut self, name: &[u8]) {
        if let Some(c) = self.counts.get_mut(name) {
            *c += 1;
            return;
        }
        let mut inherited = 0;
        if self.counts.len() >= CAPACITY
            && let Some((min_name, min)) = self
                .counts
                .iter()
                .min_by_key(|(_, c)| **c)
                .map(|(n, c)| (n.clone(), *c))
        {
            self.counts.remove(&min_name);
            inherited = min;
        }
        self.counts.insert(name.to_owned(), inherited + 1);
    }

    /// The `n` most counted names (text, estimated queries), most first; ties by name.
    pub fn top(&self, n: usize) -> Vec<(String, u64)> {
        let mut all: Vec<(String, u64)> = self
            .counts
            .iter()
            .map(|(name, c)| (crate::wire::name_to_string(name), c * SAMPLE_EVERY))
            .collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all.truncate(n);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::encode_name;

    #[test]
    fn ranks_names_by_count_and_scales_by_the_sampling_rate() {
        let mut t = TopNames::default();
        let a = encode_name("a.example").unwrap();
        let b = encode_name("b.example").unwrap();
        for _ in 0..3 {
            t.observe(&a);
        }
        t.observe(&b);
        let top = t.top(10);
        assert_eq!(top[0], ("a.example".to_owned(), 3 * SAMPLE_EVERY));
        assert_eq!(top[1].0, "b.example");
        assert_eq!(t.top(1).len(), 1);
    }

    #[test]
    fn stays_bounded_and_keeps_a_heavy_name_among_many_rare_ones() {
        let mut t = TopNames::default();
        let heavy = encode_name("heavy.example").unwrap();
        for i in 0..10_000 {
            if i % 10 == 0 {
                t.observe(&heavy);
            }
            t.observe(&encode_name(&format!("rare{i}.example")).unwrap());
        }
        assert!(t.counts.len() <= CAPACITY);
        assert_eq!(t.top(1)[0].0, "heavy.example");
    }
}
