//! Topic names and filters (MQTT 5 §4.7): validation, matching, and whether one filter covers
//! another (for the subscribe ACL).

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
}
