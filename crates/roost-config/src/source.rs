//! Reading TOML with positions: every error names its key path and its line and column, and as
//! many errors as possible are reported from one read.
//!
//! serde stops at the first error, so the loader works in rounds: unknown keys are collected with
//! `serde_ignored` instead of failing, and a value of the wrong type is recorded, cut out of the
//! parsed document and the document deserialized again, so independent type errors all show.
//! Semantic checks (see `validate`) run only on a document that deserialized cleanly, and their
//! key paths are mapped back to positions through the same parsed document.

use std::fmt;
use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Segment {
    /// A key in a table.
    Key(String),
    /// An index into an array (of tables).
    Index(usize),
}

/// Where a value lives in the settings, e.g. `dhcp.reservations[2].mac`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeyPath(Vec<Segment>);

impl KeyPath {
    /// The document root.
    pub fn root() -> Self {
        Self(Vec::new())
    }

    /// This path extended by a key.
    pub fn key(&self, key: impl Into<String>) -> Self {
        let mut next = self.clone();
        next.0.push(Segment::Key(key.into()));
        next
    }

    /// This path extended by an array index.
    pub fn index(&self, index: usize) -> Self {
        let mut next = self.clone();
        next.0.push(Segment::Index(index));
        next
    }

    /// The segments, outermost first.
    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    /// Parses the dotted form written by `Display` (keys must not contain dots or brackets).
    pub fn parse(text: &str) -> Self {
        let mut path = Self::root();
        for part in text.split('.').filter(|p| !p.is_empty()) {
            let (key, rest) = part.split_once('[').unwrap_or((part, ""));
            path = path.key(key);
            for index in rest.split('[') {
                if let Ok(i) = index.trim_end_matches(']').parse() {
                    path = path.index(i);
                }
            }
        }
        path
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(top level)");
        }
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(k) if i == 0 => write!(f, "{k}")?,
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A 1-based line and column in the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// Line, counting from 1.
    pub line: usize,
    /// Column in characters, counting from 1.
    pub column: usize,
}

impl Position {
    fn of(text: &str, offset: usize) -> Self {
        let before = &text[..offset.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Self { line, column }
    }
}

/// One problem found in a settings file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The key the problem is about.
    pub path: KeyPath,
    /// Where that key is written, when it is written at all.
    pub position: Option<Position>,
    /// What is wrong, in lowercase, ideally with what to do instead.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = self.position {
            write!(f, "{}:{}: ", p.line, p.column)?;
        }
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in one settings file, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors {
    /// The file name used in messages (`roost.toml`, `<input>`, ...).
    pub origin: String,
    /// The problems, at least one.
    pub diagnostics: Vec<Diagnostic>,
}

impl ConfigErrors {
    /// Whether some diagnostic is about `path` (exact match).
    pub fn mentions(&self, path: &str) -> bool {
        self.diagnostics.iter().any(|d| d.path.to_string() == path)
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:{d}", self.origin)?;
        }
        Ok(())
    }
}

/// How many times one read cuts out a wrong value and tries again before giving up.
const MAX_ROUNDS: usize = 64;

/// A parsed TOML document that can map key paths back to positions.
pub struct Source<'a> {
    text: &'a str,
    origin: String,
    root: Spanned<DeTable<'a>>,
}

impl<'a> Source<'a> {
    /// Parses TOML syntax; a syntax error is reported with its position.
    pub fn parse(origin: impl Into<String>, text: &'a str) -> Result<Self, ConfigErrors> {
        let origin = origin.into();
        match DeTable::parse(text) {
            Ok(root) => Ok(Self { text, origin, root }),
            Err(e) => Err(ConfigErrors {
                diagnostics: vec![Diagnostic {
                    path: KeyPath::root(),
                    position: e.span().map(|s| Position::of(text, s.start)),
                    message: format!("invalid TOML: {}", e.message().trim()),
                }],
                origin,
            }),
        }
    }

    /// Deserializes into `T`, collecting unknown keys and wrong-typed values as diagnostics.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, ConfigErrors> {
        let mut root = self.root.clone();
        let mut diagnostics = Vec::new();
        let mut removed: Vec<String> = Vec::new();
        for _round in 0..MAX_ROUNDS {
            let mut unknown = Vec::new();
            let result: Result<T, toml::de::Error> =
                serde_ignored::deserialize(toml::Deserializer::from(root.clone()), |path| {
                    unknown.push(key_path_of(&path));
                });
            let error = match result {
                Ok(value) if diagnostics.is_empty() && unknown.is_empty() => return Ok(value),
                Ok(_) => None,
                Err(e) => Some(e),
            };
            let cut = error.as_ref().and_then(|e| {
                let span = e.span()?;
                // A required key we cut out ourselves is not the user's mistake.
                let ours = removed
                    .iter()
                    .any(|k| e.message().contains(&format!("missing field `{k}`")));
                let cut = remove_value_at(root.get_mut(), &span, &KeyPath::root());
                if !ours {
                    diagnostics.push(Diagnostic {
                        path: cut.as_ref().map_or_else(KeyPath::root, |(p, _)| p.clone()),
                        position: Some(Position::of(self.text, span.start)),
                        message: e.message().trim().to_owned(),
                    });
                }
                cut
            });
            match (error, cut) {
                (Some(_), Some((_, key))) => removed.extend(key),
                (Some(e), None) => {
                    if diagnostics.is_empty() {
                        diagnostics.push(Diagnostic {
                            path: KeyPath::root(),
                            position: None,
                            message: e.message().trim().to_owned(),
                        });
                    }
                    break;
                }
                (None, _) => {
                    for path in unknown {
                        diagnostics.push(self.diagnostic(path, unknown_key_message));
                    }
                    break;
                }
            }
        }
        Err(self.errors(diagnostics))
    }

    /// Builds the error set for `diagnostics`, sorted into file order.
    pub fn errors(&self, mut diagnostics: Vec<Diagnostic>) -> ConfigErrors {
        diagnostics.sort_by(|a, b| a.position.cmp(&b.position).then(a.path.cmp(&b.path)));
        diagnostics.dedup();
        ConfigErrors {
            origin: self.origin.clone(),
            diagnostics,
        }
    }

    /// A diagnostic about `path`, positioned where the path (or its nearest written parent) is.
    pub fn diagnostic(
        &self,
        path: KeyPath,
        message: impl FnOnce(&KeyPath) -> String,
    ) -> Diagnostic {
        let offset = self.offset_of(&path);
        Diagnostic {
            message: message(&path),
            position: Some(Position::of(self.text, offset)),
            path,
        }
    }

    /// Byte offset of the key that names `path`, falling back to the nearest written ancestor.
    fn offset_of(&self, path: &KeyPath) -> usize {
        let mut offset = self.root.span().start;
        let mut value: &DeValue<'_> = &DeValue::Table(DeTable::new());
        let mut table = Some(self.root.get_ref());
        for segment in path.segments() {
            let next = match (segment, table, value) {
                (Segment::Key(k), Some(t), _) => t
                    .get_key_value(k.as_str())
                    .map(|(key, v)| (key.span().start, v)),
                (Segment::Index(i), None, DeValue::Array(a)) => {
                    a.get(*i).map(|v| (v.span().start, v))
                }
                _ => None,
            };
            let Some((start, v)) = next else { break };
            offset = start;
            value = v.get_ref();
            table = match value {
                DeValue::Table(t) => Some(t),
                _ => None,
            };
        }
        offset
    }
}

fn unknown_key_message(path: &KeyPath) -> String {
    match path.segments().last() {
        Some(Segment::Key(k)) if k == "password" => "plaintext passwords are not accepted here: \
             store an argon2id hash from `roostctl passwd` in `password_hash`"
            .to_owned(),
        _ => "unknown key (check its spelling and the section it is in)".to_owned(),
    }
}

fn key_path_of(path: &serde_ignored::Path<'_>) -> KeyPath {
    use serde_ignored::Path;
    match path {
        Path::Root => KeyPath::root(),
        Path::Seq { parent, index } => key_path_of(parent).index(*index),
        Path::Map { parent, key } => key_path_of(parent).key(key.clone()),
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => key_path_of(parent),
    }
}

/// Removes the innermost value whose span contains `span`; returns its path and, for a table
/// entry, the key removed. Table values span only their header, so every branch is searched.
fn remove_value_at(
    table: &mut DeTable<'_>,
    span: &Range<usize>,
    at: &KeyPath,
) -> Option<(KeyPath, Option<String>)> {
    let keys: Vec<String> = table.iter().map(|(k, _)| k.get_ref().to_string()).collect();
    for key in keys {
        let path = at.key(key.clone());
        let Some(value) = table.get_mut(key.as_str()) else {
            continue;
        };
        let here = contains(&value.span(), span);
        let inner = match value.get_mut() {
            DeValue::Table(t) => remove_value_at(t, span, &path),
            DeValue::Array(a) => remove_from_array(a, span, &path),
            _ => None,
        };
        if inner.is_some() {
            return inner;
        }
        if here {
            table.remove(key.as_str());
            return Some((path, Some(key)));
        }
    }
    None
}

fn remove_from_array(
    array: &mut toml::de::DeArray<'_>,
    span: &Range<usize>,
    at: &KeyPath,
) -> Option<(KeyPath, Option<String>)> {
    for i in 0..array.len() {
        let path = at.index(i);
        let Some(value) = array.get_mut(i) else { break };
        let here = contains(&value.span(), span);
        let inner = match value.get_mut() {
            DeValue::Table(t) => remove_value_at(t, span, &path),
            DeValue::Array(a) => remove_from_array(a, span, &path),
            _ => None,
        };
        if inner.is_some() {
            return inner;
        }
        if here {
            let old = std::mem::replace(array, toml::de::DeArray::new());
            for (j, v) in old.into_iter().enumerate() {
                if j != i {
                    array.push(v);
                }
            }
            return Some((path, None));
        }
    }
    None
}

fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end && !outer.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Demo {
        name: String,
        port: u16,
        #[serde(default)]
        items: Vec<Item>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Item {
        size: u32,
    }

    fn load(text: &str) -> Result<Demo, ConfigErrors> {
        Source::parse("demo.toml", text)?.deserialize()
    }

    #[test]
    fn reports_syntax_error_with_line_and_column() {
        let err = load("name = \"x\"\nport = = 3\n").unwrap_err();
        assert_eq!(err.diagnostics.len(), 1);
        assert_eq!(err.diagnostics[0].position.unwrap().line, 2);
        assert!(err.to_string().starts_with("demo.toml:2:"), "{err}");
    }

    #[test]
    fn reports_every_unknown_key_with_its_position() {
        let err = load("name = \"x\"\nport = 1\ncolour = 3\n[[items]]\nsize = 1\nweight = 2\n")
            .unwrap_err();
        let shown: Vec<String> = err.diagnostics.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "3:1: colour: unknown key (check its spelling and the section it is in)",
                "6:1: items[0].weight: unknown key (check its spelling and the section it is in)",
            ]
        );
    }

    #[test]
    fn reports_several_type_errors_in_one_read() {
        let err = load("name = 5\nport = \"high\"\n[[items]]\nsize = -1\n").unwrap_err();
        let paths: Vec<String> = err.diagnostics.iter().map(|d| d.path.to_string()).collect();
        assert_eq!(paths, ["name", "port", "items[0].size"], "{err}");
        assert_eq!(err.diagnostics[2].position.unwrap().line, 4);
    }

    #[test]
    fn reports_missing_required_key() {
        let err = load("name = \"x\"\n").unwrap_err();
        assert!(err.to_string().contains("missing field `port`"), "{err}");
    }

    #[test]
    fn points_at_nearest_written_parent_of_a_missing_key() {
        let source = Source::parse("d", "a = 1\n[b]\nc = 2\n").unwrap();
        let d = source.diagnostic(KeyPath::root().key("b").key("zzz"), |_| "x".into());
        assert_eq!(d.position, Some(Position { line: 2, column: 2 }));
    }

    #[test]
    fn key_path_round_trips_through_text() {
        let path = KeyPath::root()
            .key("dhcp")
            .key("reservations")
            .index(2)
            .key("mac");
        assert_eq!(path.to_string(), "dhcp.reservations[2].mac");
        assert_eq!(KeyPath::parse("dhcp.reservations[2].mac"), path);
    }
}
