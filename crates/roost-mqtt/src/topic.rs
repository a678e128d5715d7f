//! Topic names and filters (MQTT 5 §4.7): validation, matching, and whether one filter covers
//! another (for the subscribe ACL), and the index of subscribed filters that routing looks
//! topics up in.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// The tree only the router publishes to; every user may read it.
pub const ROUTER_PREFIX: &str = "roost/";

/// Whether `topic` is a valid topic name to publish to: non-empty, no wildcards, no NUL.
pub fn valid_topic(topic: &str) -> bool {
    !topic.is_empty() && !topic.contains(['+', '#', '\0'])
}

/// Whether `filter` is a valid topic filter: `#` alone and last, `+` alone in its level.
pub fn valid_filter(filter: &str) -> bool {
    if filter.is_empty() || filter.contains('\0') {
        return false;
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains(['+', '#']) && level.len() != 1 {
            return false;
        }
        if level == "#" && levels.peek().is_some() {
            return false;
        }
    }
    true
}

/// Whether `topic` matches `filter`. Topics starting with `$` are not matched by a filter whose
/// first level is a wildcard (MQTT 5 §4.7.2).
pub fn matches(topic: &str, filter: &str) -> bool {
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut t = topic.split('/');
    let mut f = filter.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(fl), Some(tl)) if fl == tl => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether every topic matched by `filter` is also matched by `pattern` (a permission).
pub fn covers(pattern: &str, filter: &str) -> bool {
    let mut p = pattern.split('/');
    let mut f = filter.split('/');
    loop {
        match (p.next(), f.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(fl)) if fl != "#" => {}
            (Some(pl), Some(fl)) if pl == fl && pl != "+" => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether publishing to `topic` is reserved for the router.
pub fn is_router_topic(topic: &str) -> bool {
    topic.starts_with(ROUTER_PREFIX) || topic == "roost"
}

/// Subscribed filters by level, each with the clients subscribed to it: a published topic finds
/// the filters that match it in steps of its levels, not by testing every subscription.
#[derive(Debug, Default)]
pub struct FilterIndex {
    root: Node,
}

#[derive(Debug, Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    /// The filter that ends at this node (empty until one does).
    filter: Box<str>,
    /// The clients subscribed to that filter.
    clients: HashSet<Arc<str>>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.clients.is_empty() && self.children.is_empty()
    }

    fn hits<'a>(&'a self, out: &mut Vec<(&'a Arc<str>, &'a str)>) {
        out.extend(self.clients.iter().map(|c| (c, &*self.filter)));
    }

    fn collect<'a>(&'a self, levels: &[&str], first: bool, out: &mut Vec<(&'a Arc<str>, &'a str)>) {
        let Some((level, rest)) = levels.split_first() else {
            // "a/#" also matches "a" (MQTT 5 §4.7.1.2).
            self.hits(out);
            if let Some(n) = self.children.get("#") {
                n.hits(out);
            }
            return;
        };
        // MQTT 5 §4.7.2: a leading wildcard does not match a topic starting with `$`.
        if !(first && level.starts_with('$')) {
            if let Some(n) = self.children.get("#") {
                n.hits(out);
            }
            if let Some(n) = self.children.get("+") {
                n.collect(rest, false, out);
            }
        }
        if let Some(n) = self.children.get(*level) {
            n.collect(rest, false, out);
        }
    }
}

impl FilterIndex {
    /// Records that `client` subscribes to `filter` (a valid filter).
    pub fn insert(&mut self, filter: &str, client: &Arc<str>) {
        let mut n = &mut self.root;
        for level in filter.split('/') {
            n = n.children.entry(level.into()).or_default();
        }
        if n.filter.is_empty() {
            n.filter = filter.into();
        }
        n.clients.insert(client.clone());
    }

    /// Forgets that `client` subscribes to `filter`; prunes levels nothing uses any more.
    pub fn remove(&mut self, filter: &str, client: &str) {
        fn go(n: &mut Node, mut levels: std::str::Split<'_, char>, client: &str) {
            match levels.next() {
                None => {
                    n.clients.remove(client);
                }
                Some(level) => {
                    if let Some(child) = n.children.get_mut(level) {
                        go(child, levels, client);
                        if child.is_empty() {
                            n.children.remove(level);
                        }
                    }
                }
            }
        }
        go(&mut self.root, filter.split('/'), client);
    }

    /// Every (client, filter) whose filter matches `topic`, as [`matches`] decides, sorted by
    /// client and then filter, each pair once.
    pub fn lookup<'a>(&'a self, topic: &str, out: &mut Vec<(&'a Arc<str>, &'a str)>) {
        let levels: Vec<&str> = topic.split('/').collect();
        self.root.collect(&levels, true, out);
        out.sort_unstable();
        out.dedup();
    }

    /// Whether no filter is recorded.
    pub fn is_empty(&self) -> bool {
        self.root.is_empty()
    }

    /// Every (client, filter) recorded, sorted.
    #[cfg(test)]
    pub fn pairs(&self) -> Vec<(String, String)> {
        fn go(n: &Node, out: &mut Vec<(String, String)>) {
            out.extend(
                n.clients
                    .iter()
                    .map(|c| (c.to_string(), n.filter.to_string())),
            );
            for child in n.children.values() {
                go(child, out);
            }
        }
        let mut out = Vec::new();
        go(&self.root, &mut out);
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_levels() {
        assert!(matches("a/b/c", "a/+/c"));
        assert!(matches("a/b/c", "a/#"));
        assert!(matches("a", "a/#"));
        assert!(matches("a/b", "#"));
        assert!(!matches("a/b/c", "a/+"));
        assert!(!matches("a/b", "a/b/c"));
        assert!(matches("/x", "+/x"));
    }

    #[test]
    fn dollar_topics_are_not_matched_by_leading_wildcards() {
        assert!(!matches("$SYS/x", "#"));
        assert!(!matches("$SYS/x", "+/x"));
        assert!(matches("$SYS/x", "$SYS/#"));
    }

    #[test]
    fn filters_are_validated() {
        assert!(valid_filter("a/+/b/#"));
        assert!(!valid_filter("a/b#"));
        assert!(!valid_filter("a/#/b"));
        assert!(!valid_filter("a+/b"));
        assert!(!valid_filter(""));
        assert!(valid_topic("a/b"));
        assert!(!valid_topic("a/+"));
    }

    #[test]
    fn permission_covers_narrower_filters_only() {
        assert!(covers("sensors/#", "sensors/+/temp"));
        assert!(covers("sensors/+/temp", "sensors/kitchen/temp"));
        assert!(covers("#", "anything/#"));
        assert!(!covers("sensors/+/temp", "sensors/#"));
        assert!(!covers("sensors/kitchen", "sensors/+"));
        assert!(covers("a/#", "a"));
    }

    #[test]
    fn index_finds_what_matches_finds() {
        let filters = [
            "#", "+", "a", "a/#", "a/+", "a/b", "a/+/c", "+/b", "+/+", "/#", "+/x", "$SYS/#",
            "$SYS/+", "a/b/#", "a/b/c", "b/#", "+/#",
        ];
        let topics = [
            "a", "a/b", "a/b/c", "a/x/c", "b", "/x", "x/b", "$SYS/x", "$SYS", "a/b/c/d", "/", "a/",
            "a/+", "a/#",
        ];
        let mut index = FilterIndex::default();
        let clients: Vec<Arc<str>> = (0..3).map(|i| Arc::from(format!("c{i}"))).collect();
        for (i, f) in filters.iter().enumerate() {
            index.insert(f, &clients[i % 3]);
            index.insert(f, &clients[(i + 1) % 3]);
        }
        for t in topics {
            let mut got = Vec::new();
            index.lookup(t, &mut got);
            let got: Vec<(String, String)> = got
                .iter()
                .map(|(c, f)| (c.to_string(), (*f).to_owned()))
                .collect();
            let mut want: Vec<(String, String)> = filters
                .iter()
                .enumerate()
                .filter(|(_, f)| matches(t, f))
                .flat_map(|(i, f)| {
                    [i % 3, (i + 1) % 3].map(|c| (clients[c].to_string(), (*f).to_owned()))
                })
                .collect();
            want.sort();
            assert_eq!(got, want, "topic {t}");
        }
        for (i, f) in filters.iter().enumerate() {
            index.remove(f, &clients[i % 3]);
            index.remove(f, &clients[(i + 1) % 3]);
        }
        assert!(index.is_empty());
    }
}
