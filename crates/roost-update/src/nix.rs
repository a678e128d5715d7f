//! Nix store paths, NAR hashes and binary-cache narinfo files, validated on the way in.
//!
//! Everything read from a binary cache is untrusted input until checked here: store path names
//! follow Nix's rules, hashes are sha256 in Nix's base32 of the right length, a narinfo describes
//! the store path it was asked for, and its NAR URL stays inside the cache.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use aws_lc_rs::digest::{Context, SHA256};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The store directory every Roost system uses.
pub const STORE_DIR: &str = "/nix/store";

/// Characters of Nix's base32 alphabet (no e, o, u, t).
const NIX_BASE32: &str = "0123456789abcdfghijklmnpqrsvwxyz";

/// A store path was not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorePathError {
    /// Not under `/nix/store/`.
    #[error("store path {0:?} is not directly under /nix/store")]
    NotInStore(String),
    /// The hash part is not 32 characters of Nix base32.
    #[error("store path {0:?} has no valid 32-character hash part")]
    BadHash(String),
    /// The name is empty, too long, starts with a dot or has a forbidden character.
    #[error(
        "store path {0:?} has an invalid name (1-211 of A-Z a-z 0-9 + - . _ ? =, not starting with a dot)"
    )]
    BadName(String),
}

/// A validated store path such as `/nix/store/<hash>-<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorePath {
    hash: String,
    name: String,
}

impl StorePath {
    /// Parses a base name `<hash>-<name>` (as in narinfo `References`).
    pub fn from_base_name(base: &str) -> Result<Self, StorePathError> {
        let full = format!("{STORE_DIR}/{base}");
        let (hash, name) = base
            .split_once('-')
            .ok_or_else(|| StorePathError::BadHash(full.clone()))?;
        if hash.len() != 32 || !hash.chars().all(|c| NIX_BASE32.contains(c)) {
            return Err(StorePathError::BadHash(full));
        }
        let name_ok = !name.is_empty()
            && name.len() <= 211
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-._?=".contains(c));
        if !name_ok {
            return Err(StorePathError::BadName(full));
        }
        Ok(Self {
            hash: hash.to_owned(),
            name: name.to_owned(),
        })
    }

    /// The 32-character hash part, which names the narinfo file.
    pub fn hash_part(&self) -> &str {
        &self.hash
    }

    /// The name after the hash.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `<hash>-<name>`.
    pub fn base_name(&self) -> String {
        format!("{}-{}", self.hash, self.name)
    }
}

impl FromStr for StorePath {
    type Err = StorePathError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let base = s
            .strip_prefix(STORE_DIR)
            .and_then(|rest| rest.strip_prefix('/'))
            .filter(|base| !base.contains('/'))
            .ok_or_else(|| StorePathError::NotInStore(s.to_owned()))?;
        Self::from_base_name(base)
    }
}

impl fmt::Display for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{STORE_DIR}/{}-{}", self.hash, self.name)
    }
}

impl Serialize for StorePath {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for StorePath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A hash was not a sha256 in Nix's format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("hash {0:?} is not sha256:<52 characters of Nix base32> or sha256:<64 hex digits>")]
pub struct HashError(String);

/// A sha256 digest, written as Nix writes it: `sha256:<nix base32>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256(pub [u8; 32]);

impl Sha256 {
    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Self {
        let mut out = [0; 32];
        out.copy_from_slice(aws_lc_rs::digest::digest(&SHA256, data).as_ref());
        Self(out)
    }
}

impl FromStr for Sha256 {
    type Err = HashError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || HashError(s.to_owned());
        let digest = s.strip_prefix("sha256:").ok_or_else(err)?;
        let bytes = match digest.len() {
            52 => nix_base32::from_nix_base32(digest).ok_or_else(err)?,
            64 => hex::decode(digest).map_err(|_| err())?,
            _ => return Err(err()),
        };
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| err())?;
        // from_nix_base32 accepts non-canonical spellings of the top bits: insist on one spelling.
        let parsed = Self(bytes);
        if digest.len() == 52 && parsed.to_string() != s {
            return Err(err());
        }
        Ok(parsed)
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", nix_base32::to_nix_base32(&self.0))
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Sha256 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Sha256 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Streams bytes into a sha256 and counts them.
pub(crate) struct HashingCounter {
    context: Context,
    len: u64,
}

impl HashingCounter {
    pub(crate) fn new() -> Self {
        Self {
            context: Context::new(&SHA256),
            len: 0,
        }
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        self.context.update(data);
        self.len += data.len() as u64;
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn finish(self) -> (Sha256, u64) {
        let mut out = [0; 32];
        out.copy_from_slice(self.context.finish().as_ref());
        (Sha256(out), self.len)
    }
}

/// Hashes a whole reader.
pub(crate) fn hash_reader(mut reader: impl Read) -> std::io::Result<(Sha256, u64)> {
    let mut hasher = HashingCounter::new();
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher.finish());
        }
        hasher.update(&buf[..n]);
    }
}

/// One store path as a binary cache describes it, after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// The store path.
    pub store_path: StorePath,
    /// The NAR file, relative to the cache root (`nar/...`).
    pub url: String,
    /// `none`, `xz`, `zstd`, ...
    pub compression: String,
    /// Hash of the file as stored (compressed).
    pub file_hash: Option<Sha256>,
    /// Size of the file as stored (compressed).
    pub file_size: Option<u64>,
    /// Hash of the uncompressed NAR.
    pub nar_hash: Sha256,
    /// Size of the uncompressed NAR.
    pub nar_size: u64,
    /// Store paths this one refers to (may include itself).
    pub references: BTreeSet<StorePath>,
}

/// Reading a binary cache failed.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// A narinfo or NAR file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A narinfo file did not parse.
    #[error("{path}: not a narinfo file: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        reason: String,
    },
    /// A narinfo field failed validation.
    #[error("{path}: invalid {field}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The narinfo key.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The NAR file in the cache does not match its narinfo.
    #[error("{path}: {what} is {actual}, narinfo says {expected}")]
    Mismatch {
        /// The NAR file.
        path: PathBuf,
        /// Which property.
        what: &'static str,
        /// From the narinfo.
        expected: String,
        /// Measured.
        actual: String,
    },
}

/// Reads and validates `<hash>.narinfo` for `path` from a `file://` binary cache directory.
pub fn read_narinfo(cache_dir: &Path, path: &StorePath) -> Result<CacheEntry, CacheError> {
    let file = cache_dir.join(format!("{}.narinfo", path.hash_part()));
    let text = std::fs::read_to_string(&file).map_err(|source| CacheError::Read {
        path: file.clone(),
        source,
    })?;
    parse_narinfo(&file, &text, path)
}

/// Validates narinfo text that is supposed to describe `expected`.
pub fn parse_narinfo(
    file: &Path,
    text: &str,
    expected: &StorePath,
) -> Result<CacheEntry, CacheError> {
    let invalid = |field: &'static str, reason: String| CacheError::Invalid {
        path: file.to_owned(),
        field,
        reason,
    };
    let info = narinfo::NarInfo::parse(text).map_err(|e| CacheError::Parse {
        path: file.to_owned(),
        reason: format!("{e:?}"),
    })?;
    let store_path: StorePath = info
        .store_path
        .parse()
        .map_err(|e: StorePathError| invalid("StorePath", e.to_string()))?;
    if &store_path != expected {
        return Err(invalid(
            "StorePath",
            format!("describes {store_path}, not {expected}"),
        ));
    }
    let url = info.url;
    let url_ok = url.starts_with("nar/")
        && url.len() > 4
        && url[4..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        && !url.contains("..");
    if !url_ok {
        return Err(invalid(
            "URL",
            format!("{url:?} is not a file name under nar/"),
        ));
    }
    let compression = info
        .compression
        .as_deref()
        .unwrap_or("bzip2") // Nix's default when the field is absent
        .to_owned();
    if !compression.chars().all(|c| c.is_ascii_alphanumeric()) || compression.is_empty() {
        return Err(invalid("Compression", format!("{compression:?}")));
    }
    let nar_hash: Sha256 = info
        .nar_hash
        .parse()
        .map_err(|e: HashError| invalid("NarHash", e.to_string()))?;
    let file_hash = info
        .file_hash
        .map(|h| h.parse::<Sha256>())
        .transpose()
        .map_err(|e| invalid("FileHash", e.to_string()))?;
    if info.nar_size == 0 {
        return Err(invalid("NarSize", "0 (a NAR is never empty)".to_owned()));
    }
    let references = info
        .references
        .iter()
        .filter(|r| !r.is_empty())
        .map(|r| StorePath::from_base_name(r))
        .collect::<Result<BTreeSet<_>, _>>()
        .map_err(|e| invalid("References", e.to_string()))?;
    Ok(CacheEntry {
        store_path,
        url: url.to_owned(),
        compression,
        file_hash,
        file_size: info.file_size.map(|s| s as u64),
        nar_hash,
        nar_size: info.nar_size as u64,
        references,
    })
}

/// Checks the NAR file of `entry` in the cache against its narinfo: NarHash and NarSize when
/// uncompressed, FileHash and FileSize otherwise (both are required then).
pub fn check_cache_file(cache_dir: &Path, entry: &CacheEntry) -> Result<(), CacheError> {
    let path = cache_dir.join(&entry.url);
    let file = std::fs::File::open(&path).map_err(|source| CacheError::Read {
        path: path.clone(),
        source,
    })?;
    let (hash, size) =
        hash_reader(std::io::BufReader::new(file)).map_err(|source| CacheError::Read {
            path: path.clone(),
            source,
        })?;
    let (want_hash, want_size, what) = if entry.compression == "none" {
        (Some(entry.nar_hash), Some(entry.nar_size), "NarHash")
    } else {
        (entry.file_hash, entry.file_size, "FileHash")
    };
    let (Some(want_hash), Some(want_size)) = (want_hash, want_size) else {
        return Err(CacheError::Invalid {
            path,
            field: "FileHash",
            reason: format!(
                "missing for a {} compressed NAR, cannot verify it",
                entry.compression
            ),
        });
    };
    if size != want_size {
        return Err(CacheError::Mismatch {
            path,
            what: "size",
            expected: want_size.to_string(),
            actual: size.to_string(),
        });
    }
    if hash != want_hash {
        return Err(CacheError::Mismatch {
            path,
            what,
            expected: want_hash.to_string(),
            actual: hash.to_string(),
        });
    }
    Ok(())
}

/// Reads the closure of `roots` from the cache: every store path reachable through references.
pub fn read_closure(
    cache_dir: &Path,
    roots: impl IntoIterator<Item = StorePath>,
) -> Result<BTreeMap<StorePath, CacheEntry>, CacheError> {
    let mut out = BTreeMap::new();
    let mut todo: Vec<StorePath> = roots.into_iter().collect();
    while let Some(path) = todo.pop() {
        if out.contains_key(&path) {
            continue;
        }
        let entry = read_narinfo(cache_dir, &path)?;
        todo.extend(
            entry
                .references
                .iter()
                .filter(|r| !out.contains_key(*r))
                .cloned(),
        );
        out.insert(path, entry);
    }
    Ok(out)
}

/// The closure of `root` within already-read entries.
pub fn closure_of(
    entries: &BTreeMap<StorePath, CacheEntry>,
    root: &StorePath,
) -> BTreeSet<StorePath> {
    let mut out = BTreeSet::new();
    let mut todo = vec![root.clone()];
    while let Some(path) = todo.pop() {
        if !out.insert(path.clone()) {
            continue;
        }
        if let Some(entry) = entries.get(&path) {
            todo.extend(entry.references.iter().cloned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "/nix/store/0c4nfmfq1jlv1jl3f8zpkv7v2nhrr3x7-hello-2.12";

    #[test]
    fn parses_and_prints_store_paths() {
        let p: StorePath = P.parse().unwrap();
        assert_eq!(p.name(), "hello-2.12");
        assert_eq!(p.to_string(), P);
    }

    #[test]
    fn rejects_store_paths_outside_the_store_or_with_bad_parts() {
        for bad in [
            "/tmp/0c4nfmfq1jlv1jl3f8zpkv7v2nhrr3x7-hello",
            "/nix/store/0c4nfmfq1jlv1jl3f8zpkv7v2nhrr3x7-hello/bin",
            "/nix/store/0c4nfmfq1jlv1jl3f8zpkv7v2nhrr3xe-hello",
            "/nix/store/0c4nfmfq1jlv1jl3f8zpkv7v2nhrr3x-hello",
            "/nix/store/0c4nfmfq1jlv1jl3f8zpkv7v2nhrr3x7-.hidden",
            "/nix/store/0c4nfmfq1jlv1jl3f8zpkv7v2nhrr3x7-a b",
            "/nix/store/0c4nfmfq1jlv1jl3f8zpkv7v2nhrr3x7-",
            "/nix/store/../etc/passwd",
        ] {
            assert!(bad.parse::<StorePath>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn round_trips_sha256_in_nix_base32_and_accepts_hex() {
        let h = Sha256::of(b"nar");
        let s = h.to_string();
        assert_eq!(s.len(), 7 + 52);
        assert_eq!(s.parse::<Sha256>().unwrap(), h);
        let hex = format!("sha256:{}", hex::encode(h.0));
        assert_eq!(hex.parse::<Sha256>().unwrap(), h);
        assert!("md5:abc".parse::<Sha256>().is_err());
        assert!("sha256:zzzz".parse::<Sha256>().is_err());
    }

    #[test]
    fn rejects_narinfo_for_another_path_or_with_escaping_url() {
        let p: StorePath = P.parse().unwrap();
        let h = Sha256::of(b"x");
        let good = format!(
            "StorePath: {P}\nURL: nar/abc.nar\nCompression: none\nNarHash: {h}\nNarSize: 1\nReferences: \n"
        );
        let entry = parse_narinfo(Path::new("x.narinfo"), &good, &p).unwrap();
        assert!(entry.references.is_empty());
        let other: StorePath = "/nix/store/1c4nfmfq1jlv1jl3f8zpkv7v2nhrr3x7-evil"
            .parse()
            .unwrap();
        let err = parse_narinfo(Path::new("x.narinfo"), &good, &other).unwrap_err();
        assert!(err.to_string().contains("describes"), "{err}");
        let escaping = good.replace("nar/abc.nar", "nar/../../etc/passwd");
        let err = parse_narinfo(Path::new("x.narinfo"), &escaping, &p).unwrap_err();
        assert!(err.to_string().contains("URL"), "{err}");
    }
}
