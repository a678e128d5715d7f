//! Block lists: hosts-file lines (`0.0.0.0 ads.example`: that exact name) and domain lists (one
//! name a line: that name and every name below it).
//!
//! Names are kept as 64-bit fingerprints (SipHash of the lowercased wire name) in hash sets,
//! not as strings: a million names cost about 16 MB instead of 60+, and load in well under a
//! second. A lookup hashes the question name and each of its parents. Two different names
//! share a fingerprint with probability about n/2^64 (1 in 10^13 for a million names), and the
//! worst outcome of that is one wrongly blocked name.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::{Path, PathBuf};

use roost_config::settings::{Blocklist, BlocklistFormat};

use crate::wire::encode_name;

/// A hasher for values that already are hashes.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type FingerprintSet = HashSet<u64, BuildHasherDefault<PassThrough>>;

fn fingerprint(wire_name: &[u8]) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    h.write(wire_name);
    h.finish()
}

/// Reading a block list failed.
#[derive(Debug, thiserror::Error)]
pub enum BlocklistError {
    /// The file could not be read.
    #[error("cannot read block list {name} ({path}): {source}")]
    Read {
        /// The list's name.
        name: String,
        /// Its file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Every enabled list, merged.
#[derive(Default)]
pub struct Blocklists {
    exact: FingerprintSet,
    subtree: FingerprintSet,
    /// Lines that held no usable name, over all lists.
    pub skipped_lines: usize,
}

/// Names in hosts files that are not blocks but the file's own housekeeping.
const HOSTS_HOUSEKEEPING: &[&str] = &[
    "localhost",
    "localhost.localdomain",
    "local",
    "broadcasthost",
    "ip6-localhost",
    "ip6-loopback",
    "ip6-localnet",
    "ip6-mcastprefix",
    "ip6-allnodes",
    "ip6-allrouters",
    "ip6-allhosts",
    "0.0.0.0",
];

impl Blocklists {
    /// Loads every enabled list.
    pub fn load(lists: &[Blocklist]) -> Result<Self, BlocklistError> {
        let mut out = Self::default();
        for list in lists.iter().filter(|l| l.enabled) {
            out.add_file(&list.name, &list.path, list.format)?;
        }
        Ok(out)
    }

    fn add_file(
        &mut self,
        name: &str,
        path: &Path,
        format: BlocklistFormat,
    ) -> Result<(), BlocklistError> {
        let text = std::fs::read(path).map_err(|source| BlocklistError::Read {
            name: name.to_owned(),
            path: path.to_owned(),
            source,
        })?;
        self.add_text(&String::from_utf8_lossy(&text), format);
        Ok(())
    }

    /// Adds the names of one list's text.
    pub fn add_text(&mut self, text: &str, format: BlocklistFormat) {
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() || line.starts_with('!') {
                continue;
            }
            match format {
                BlocklistFormat::Hosts => {
                    let mut fields = line.split_whitespace();
                    let _address = fields.next();
                    let mut any = false;
                    for name in fields {
                        if HOSTS_HOUSEKEEPING.contains(&name) {
                            any = true;
                            continue;
                        }
                        match encode_name(name) {
                            Some(w) if w.len() > 1 => {
                                self.exact.insert(fingerprint(&w));
                                any = true;
                            }
                            _ => {}
                        }
                    }
                    if !any {
                        self.skipped_lines += 1;
                    }
                }
                BlocklistFormat::Domains => {
                    // Also the common `*.name` and adblock `||name^` spellings.
                    let name = line
                        .trim_start_matches("*.")
                        .trim_start_matches("||")
                        .trim_end_matches('^');
                    match encode_name(name) {
                        Some(w) if w.len() > 1 => {
                            self.subtree.insert(fingerprint(&w));
                        }
                        _ => self.skipped_lines += 1,
                    }
                }
            }
        }
    }

    /// Names (exact and subtree) held.
    pub fn len(&self) -> usize {
        self.exact.len() + self.subtree.len()
    }

    /// Whether no name is blocked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether wire name `name` (lowercased) is blocked.
    pub fn is_blocked(&self, name: &[u8]) -> bool {
        if self.is_empty() {
            return false;
        }
        if self.exact.contains(&fingerprint(name)) {
            return true;
        }
        if self.subtree.is_empty() {
            return false;
        }
        let mut pos = 0;
        while let Some(&len) = name.get(pos) {
            if len == 0 {
                break;
            }
            if self.subtree.contains(&fingerprint(&name[pos..])) {
                return true;
            }
            pos += 1 + usize::from(len);
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(n: &str) -> Vec<u8> {
        encode_name(n).unwrap()
    }

    #[test]
    fn hosts_lines_block_exactly_that_name() {
        let mut b = Blocklists::default();
        b.add_text(
            "# comment\n127.0.0.1 localhost\n0.0.0.0 ads.example.com tracker.example.net # x\n",
            BlocklistFormat::Hosts,
        );
        assert!(b.is_blocked(&w("ads.example.com")));
        assert!(b.is_blocked(&w("tracker.example.net")));
        assert!(!b.is_blocked(&w("x.ads.example.com")));
        assert!(!b.is_blocked(&w("localhost")));
        assert!(!b.is_blocked(&w("example.com")));
        assert_eq!(b.len(), 2);
    }

    #[test]
    fn domain_lines_block_the_name_and_below() {
        let mut b = Blocklists::default();
        b.add_text(
            "doubleclick.net\n*.ads.test\n||track.test^\nnot a name\n",
            BlocklistFormat::Domains,
        );
        assert!(b.is_blocked(&w("doubleclick.net")));
        assert!(b.is_blocked(&w("a.b.doubleclick.net")));
        assert!(b.is_blocked(&w("x.ads.test")));
        assert!(b.is_blocked(&w("track.test")));
        assert!(!b.is_blocked(&w("net")));
        assert!(!b.is_blocked(&w("notdoubleclick.net")));
        assert_eq!(b.skipped_lines, 1);
    }

    #[test]
    fn a_million_names_load_fast_and_small() {
        let mut text = String::with_capacity(32_000_000);
        for i in 0..1_000_000 {
            text.push_str(&format!("0.0.0.0 host{i}.ads{}.example.com\n", i % 977));
        }
        let start = std::time::Instant::now();
        let mut b = Blocklists::default();
        b.add_text(&text, BlocklistFormat::Hosts);
        let took = start.elapsed();
        assert_eq!(b.len(), 1_000_000);
        assert!(b.is_blocked(&w(&format!("host123456.ads{}.example.com", 123_456 % 977))));
        assert!(!b.is_blocked(&w("host123456.ads0.example.com")));
        // Debug builds are slow; the release figure is in the ADR.
        assert!(took.as_secs() < 20, "took {took:?}");
        let bytes = b.exact.capacity() * 9;
        assert!(bytes < 100 << 20, "{bytes} bytes");
    }
}
