//! The publisher: creates and updates the TUF repository on the build host.
//!
//! Layout of a repository directory (served as is over HTTP):
//!
//! ```text
//! metadata/1.root.json, 2.root.json, ...   every root version (clients walk them)
//! metadata/root.json                       copy of the newest root
//! metadata/N.targets.json, N.snapshot.json consistent snapshots
//! metadata/timestamp.json                  written last, atomically
//! targets/<host>/<channel>/<sha256>.<generation>.json   manifests (consistent snapshot names)
//! ```
//!
//! Every file is written to a temporary name and renamed, timestamp last, so a client never
//! sees a half-written state.

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};

use aws_lc_rs::rand::SystemRandom;
use jiff::{SignedDuration, Timestamp};
use tough::editor::RepositoryEditor;
use tough::editor::signed::SignedRole;
use tough::key_source::KeySource;
use tough::schema::decoded::{Decoded, Hex};
use tough::schema::{
    Hashes, KeyHolder, Metafile, Role, RoleKeys, RoleType, Root, Signed, Snapshot, Target, Targets,
    Timestamp as TimestampRole,
};
use tough::{ExpirationEnforcement, FilesystemTransport, RepositoryLoader};
use url::Url;

use crate::keys::{KeyError, PemKey};
use crate::manifest::{self, Manifest};

const SPEC_VERSION: &str = "1.0.0";

/// How long each role's metadata stays valid.
#[derive(Debug, Clone, Copy)]
pub struct Expiry {
    /// Root (offline, re-signed by hand): a year by default.
    pub root: SignedDuration,
    /// Targets (build host, re-signed on each publish): 90 days.
    pub targets: SignedDuration,
    /// Snapshot (online): 7 days.
    pub snapshot: SignedDuration,
    /// Timestamp (online, `refresh` on a timer): 1 day.
    pub timestamp: SignedDuration,
}

impl Default for Expiry {
    fn default() -> Self {
        let day = SignedDuration::from_hours(24);
        Self {
            root: day * 365,
            targets: day * 90,
            snapshot: day * 7,
            timestamp: day,
        }
    }
}

/// `now + ttl` in whole seconds: python-tuf rejects fractional seconds in `expires`.
pub fn expires_at(now: Timestamp, ttl: SignedDuration) -> Timestamp {
    let secs = now.as_second().saturating_add(ttl.as_secs());
    Timestamp::from_second(secs).unwrap_or(Timestamp::MAX)
}

/// A repository operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// A key could not be used.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A key id could not be computed.
    #[error("cannot compute a key id: {0}")]
    KeyId(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// tough refused (signing, loading or verifying our own repository).
    #[error("{action}: {source}")]
    Tuf {
        /// What was being done.
        action: &'static str,
        /// tough's error.
        source: Box<tough::error::Error>,
    },
    /// The repository directory exists already.
    #[error("{0} already holds a repository")]
    Exists(PathBuf),
    /// Threshold larger than the number of keys, or zero.
    #[error("threshold {threshold} with {keys} root keys: need 1 <= threshold <= keys")]
    BadThreshold {
        /// The threshold.
        threshold: u64,
        /// The number of keys.
        keys: usize,
    },
    /// The new root would not be accepted by clients.
    #[error("new root version {version} is not signed by {which}: {reason}")]
    RotationUnsigned {
        /// The new version.
        version: u64,
        /// `the old root's threshold` or `its own threshold`.
        which: &'static str,
        /// tough's verdict.
        reason: String,
    },
    /// A generation that is not newer than the newest published one.
    #[error("generation {generation} of {host}/{channel} is not newer than the published {newest}")]
    NotNewer {
        /// Host.
        host: String,
        /// Channel.
        channel: String,
        /// Requested.
        generation: u64,
        /// Newest present.
        newest: u64,
    },
    /// The manifest is invalid.
    #[error(transparent)]
    Manifest(#[from] manifest::ManifestError),
}

fn tuf(action: &'static str) -> impl FnOnce(tough::error::Error) -> RepoError {
    move |source| RepoError::Tuf {
        action,
        source: Box::new(source),
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RepoError + '_ {
    move |source| RepoError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes `bytes` to `dir/name` through a temporary file and a rename.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), RepoError> {
    let path = dir.join(name);
    let parent = path.parent().unwrap_or(dir).to_owned();
    std::fs::create_dir_all(&parent).map_err(io(&parent))?;
    let mut tmp = tempfile::NamedTempFile::new_in(&parent).map_err(io(&parent))?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(io(&path))?;
    tmp.as_file().sync_all().map_err(io(&path))?;
    tmp.persist(&path).map_err(|e| RepoError::Io {
        path: path.clone(),
        source: e.error,
    })?;
    Ok(())
}

/// The public half of a repository's key set, for building a root.
#[derive(Debug, Clone)]
pub struct RootKeys {
    /// Root keys.
    pub root: Vec<PemKey>,
    /// Root threshold.
    pub root_threshold: u64,
    /// Targets key.
    pub targets: PemKey,
    /// Snapshot key.
    pub snapshot: PemKey,
    /// Timestamp key.
    pub timestamp: PemKey,
}

fn nz(n: u64) -> NonZeroU64 {
    NonZeroU64::new(n).unwrap_or(NonZeroU64::MIN)
}

/// Builds (unsigned) root metadata listing `keys`.
pub fn build_root(keys: &RootKeys, version: u64, expires: Timestamp) -> Result<Root, RepoError> {
    if keys.root_threshold == 0 || keys.root_threshold > keys.root.len() as u64 {
        return Err(RepoError::BadThreshold {
            threshold: keys.root_threshold,
            keys: keys.root.len(),
        });
    }
    let mut root = Root {
        spec_version: SPEC_VERSION.to_owned(),
        consistent_snapshot: true,
        version: nz(version),
        expires,
        keys: HashMap::new(),
        roles: HashMap::new(),
        _extra: HashMap::new(),
    };
    let mut add = |role: RoleType, role_keys: &[&PemKey], threshold: u64| {
        let mut keyids = Vec::new();
        for key in role_keys {
            let public = key.public()?;
            let id = public
                .key_id()
                .map_err(|e| RepoError::KeyId(e.to_string()))?;
            root.keys.insert(id.clone(), public);
            keyids.push(id);
        }
        root.roles.insert(
            role,
            RoleKeys {
                keyids,
                threshold: nz(threshold),
                _extra: HashMap::new(),
            },
        );
        Ok::<(), RepoError>(())
    };
    let root_refs: Vec<&PemKey> = keys.root.iter().collect();
    add(RoleType::Root, &root_refs, keys.root_threshold)?;
    add(RoleType::Targets, &[&keys.targets], 1)?;
    add(RoleType::Snapshot, &[&keys.snapshot], 1)?;
    add(RoleType::Timestamp, &[&keys.timestamp], 1)?;
    Ok(root)
}

/// Signs `root` with those of `signers` that `holder` (the root itself, or the previous root)
/// lists for the root role. Signing a root with too few keys is allowed here on purpose: the
/// checks live in [`rotate_root`] and in the client.
pub async fn sign_root(
    root: Root,
    holder: &Root,
    signers: &[PemKey],
) -> Result<SignedRole<Root>, RepoError> {
    let sources: Vec<Box<dyn KeySource>> = signers.iter().map(PemKey::source).collect();
    SignedRole::new(
        root,
        &KeyHolder::Root(holder.clone()),
        &sources,
        &SystemRandom::new(),
    )
    .await
    .map_err(tuf("signing root"))
}

fn metadata_dir(repo: &Path) -> PathBuf {
    repo.join("metadata")
}

fn targets_dir(repo: &Path) -> PathBuf {
    repo.join("targets")
}

/// Creates a repository: root version 1 signed by all root keys, and empty targets, snapshot
/// and timestamp. Returns the root metadata (to pin in clients).
pub async fn init(
    repo: &Path,
    keys: &RootKeys,
    expiry: &Expiry,
    now: Timestamp,
) -> Result<Vec<u8>, RepoError> {
    let metadata = metadata_dir(repo);
    if metadata.join("1.root.json").exists() {
        return Err(RepoError::Exists(repo.to_owned()));
    }
    let root = build_root(keys, 1, expires_at(now, expiry.root))?;
    let signed = sign_root(root.clone(), &root, &keys.root).await?;
    let bytes = signed.buffer().clone();
    write_atomic(&metadata, "1.root.json", &bytes)?;
    write_atomic(&metadata, "root.json", &bytes)?;
    std::fs::create_dir_all(targets_dir(repo)).map_err(io(&targets_dir(repo)))?;

    let mut editor = RepositoryEditor::new(metadata.join("root.json"))
        .await
        .map_err(tuf("opening the new root"))?;
    editor
        .targets(Signed {
            signed: Targets::new(
                SPEC_VERSION.to_owned(),
                NonZeroU64::MIN,
                expires_at(now, expiry.targets),
            ),
            signatures: Vec::new(),
        })
        .map_err(tuf("creating targets"))?;
    editor
        .targets_version(NonZeroU64::MIN)
        .map_err(tuf("creating targets"))?
        .targets_expires(expires_at(now, expiry.targets))
        .map_err(tuf("creating targets"))?;
    editor
        .snapshot_version(NonZeroU64::MIN)
        .snapshot_expires(expires_at(now, expiry.snapshot))
        .timestamp_version(NonZeroU64::MIN)
        .timestamp_expires(expires_at(now, expiry.timestamp));
    let online = [&keys.targets, &keys.snapshot, &keys.timestamp];
    sign_and_write(editor, repo, &online).await?;
    Ok(bytes)
}

async fn sign_and_write(
    editor: RepositoryEditor,
    repo: &Path,
    keys: &[&PemKey],
) -> Result<(), RepoError> {
    let sources: Vec<Box<dyn KeySource>> = keys.iter().map(|k| k.source()).collect();
    let signed = editor
        .sign(&sources)
        .await
        .map_err(tuf("signing targets, snapshot and timestamp"))?;
    // Stage, then rename into place: targets, snapshot, and the timestamp last.
    let staging = tempfile::tempdir_in(repo).map_err(io(repo))?;
    signed
        .write(staging.path())
        .await
        .map_err(tuf("writing metadata"))?;
    let metadata = metadata_dir(repo);
    let mut names: Vec<String> = std::fs::read_dir(staging.path())
        .map_err(io(staging.path()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".root.json"))
        .collect();
    names.sort_by_key(|n| (n == "timestamp.json", n.contains("snapshot"), n.clone()));
    for name in names {
        let bytes = std::fs::read(staging.path().join(&name)).map_err(io(&metadata))?;
        write_atomic(&metadata, &name, &bytes)?;
    }
    Ok(())
}

/// The newest trusted root file of a repository directory.
fn newest_root(repo: &Path) -> PathBuf {
    metadata_dir(repo).join("root.json")
}

/// Loads our own repository from disk, verifying it (expiry is not enforced: publishing and
/// refreshing must work on an expired repository).
pub async fn load_local(repo: &Path) -> Result<tough::Repository, RepoError> {
    let root_path = newest_root(repo);
    let root = std::fs::read(&root_path).map_err(io(&root_path))?;
    let metadata = metadata_dir(repo);
    let targets = targets_dir(repo);
    let file_url = |p: &Path| {
        let abs = std::fs::canonicalize(p).map_err(io(p))?;
        Url::from_directory_path(&abs).map_err(|()| RepoError::Io {
            path: abs,
            source: std::io::Error::other("not an absolute path"),
        })
    };
    RepositoryLoader::new(&root, file_url(&metadata)?, file_url(&targets)?)
        .transport(FilesystemTransport)
        .expiration_enforcement(ExpirationEnforcement::Unsafe)
        .load()
        .await
        .map_err(tuf("loading the repository"))
}

/// The online keys `publish` and `refresh` sign with.
#[derive(Debug, Clone)]
pub struct OnlineKeys {
    /// Targets key (build host).
    pub targets: PemKey,
    /// Snapshot key.
    pub snapshot: PemKey,
    /// Timestamp key.
    pub timestamp: PemKey,
}

/// Adds a manifest as a new target and re-signs targets, snapshot and timestamp.
pub async fn publish(
    repo: &Path,
    manifest: &Manifest,
    keys: &OnlineKeys,
    expiry: &Expiry,
    now: Timestamp,
) -> Result<String, RepoError> {
    manifest.validate()?;
    let current = load_local(repo).await?;
    if let Some(newest) = current
        .all_targets()
        .filter_map(|(name, _)| {
            manifest::parse_target_name(name.raw(), &manifest.host, &manifest.channel)
        })
        .max()
        && newest >= manifest.generation
    {
        return Err(RepoError::NotNewer {
            host: manifest.host.clone(),
            channel: manifest.channel.clone(),
            generation: manifest.generation.0,
            newest: newest.0,
        });
    }
    let bytes = manifest.to_json();
    let name = manifest.target_name();
    let digest = crate::nix::Sha256::of(&bytes);
    let target = Target {
        length: bytes.len() as u64,
        hashes: Hashes {
            sha256: Decoded::<Hex>::from(digest.0.to_vec()),
            _extra: HashMap::new(),
        },
        custom: HashMap::new(),
        _extra: HashMap::new(),
    };
    write_atomic(
        &targets_dir(repo),
        &consistent_target_path(&name, &hex::encode(digest.0)),
        &bytes,
    )?;

    let targets_version = current.targets().signed.version.get() + 1;
    let snapshot_version = current.snapshot().signed.version.get() + 1;
    let timestamp_version = current.timestamp().signed.version.get() + 1;
    let mut editor = RepositoryEditor::from_repo(newest_root(repo), current)
        .await
        .map_err(tuf("opening the repository"))?;
    editor
        .add_target(name.as_str(), target)
        .map_err(tuf("adding the target"))?
        .targets_version(nz(targets_version))
        .map_err(tuf("adding the target"))?
        .targets_expires(expires_at(now, expiry.targets))
        .map_err(tuf("adding the target"))?;
    editor
        .snapshot_version(nz(snapshot_version))
        .snapshot_expires(expires_at(now, expiry.snapshot))
        .timestamp_version(nz(timestamp_version))
        .timestamp_expires(expires_at(now, expiry.timestamp));
    sign_and_write(
        editor,
        repo,
        &[&keys.targets, &keys.snapshot, &keys.timestamp],
    )
    .await?;
    Ok(name)
}

/// The generation after the newest published one of `host` on `channel` (1 if none).
pub async fn next_generation(
    repo: &Path,
    host: &str,
    channel: &str,
) -> Result<roost_config::Generation, RepoError> {
    let current = load_local(repo).await?;
    let newest = current
        .all_targets()
        .filter_map(|(name, _)| manifest::parse_target_name(name.raw(), host, channel))
        .map(|g| g.0)
        .max()
        .unwrap_or(0);
    Ok(roost_config::Generation(newest + 1))
}

/// Where a target is stored with consistent snapshots (TUF 1.0 §5.7.3): the hash prefixes the
/// base name, `dir/HASH.name`. (tough's own reader prefixes the whole name, so we do not use it.)
pub fn consistent_target_path(name: &str, sha256_hex: &str) -> String {
    match name.rsplit_once('/') {
        Some((dir, base)) => format!("{dir}/{sha256_hex}.{base}"),
        None => format!("{sha256_hex}.{name}"),
    }
}

/// What `refresh` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refreshed {
    /// The new timestamp version.
    pub timestamp_version: u64,
    /// The new snapshot version, when the snapshot was re-signed too.
    pub snapshot_version: Option<u64>,
}

/// Re-signs the timestamp (and the snapshot too when it would expire within half its lifetime),
/// with the online keys only.
pub async fn refresh(
    repo: &Path,
    snapshot_key: &PemKey,
    timestamp_key: &PemKey,
    expiry: &Expiry,
    now: Timestamp,
) -> Result<Refreshed, RepoError> {
    let current = load_local(repo).await?;
    let root = current.root().signed.clone();
    let rng = SystemRandom::new();
    let holder = KeyHolder::Root(root.clone());
    let metadata = metadata_dir(repo);

    let mut snapshot_meta = current
        .timestamp()
        .signed
        .meta
        .get("snapshot.json")
        .cloned()
        .ok_or_else(|| RepoError::Io {
            path: metadata.join("timestamp.json"),
            source: std::io::Error::other("timestamp lists no snapshot.json"),
        })?;
    let half = SignedDuration::from_secs(expiry.snapshot.as_secs() / 2);
    let mut new_snapshot_version = None;
    if current.snapshot().signed.expires < expires_at(now, half) {
        let old = &current.snapshot().signed;
        let version = old.version.get() + 1;
        let snapshot = Snapshot {
            spec_version: old.spec_version.clone(),
            version: nz(version),
            expires: expires_at(now, expiry.snapshot),
            meta: old.meta.clone(),
            _extra: old._extra.clone(),
        };
        let signed = SignedRole::new(snapshot, &holder, &[snapshot_key.source()], &rng)
            .await
            .map_err(tuf("signing the snapshot"))?;
        write_atomic(
            &metadata,
            &signed.signed().signed.filename(true),
            signed.buffer(),
        )?;
        snapshot_meta = Metafile {
            length: Some(*signed.length()),
            hashes: Some(Hashes {
                sha256: Decoded::<Hex>::from(signed.sha256().to_vec()),
                _extra: HashMap::new(),
            }),
            version: nz(version),
            _extra: HashMap::new(),
        };
        new_snapshot_version = Some(version);
    }
    let old = &current.timestamp().signed;
    let version = old.version.get() + 1;
    let timestamp = TimestampRole {
        spec_version: old.spec_version.clone(),
        version: nz(version),
        expires: expires_at(now, expiry.timestamp),
        meta: [("snapshot.json".to_owned(), snapshot_meta)].into(),
        _extra: old._extra.clone(),
    };
    let signed = SignedRole::new(timestamp, &holder, &[timestamp_key.source()], &rng)
        .await
        .map_err(tuf("signing the timestamp"))?;
    write_atomic(&metadata, "timestamp.json", signed.buffer())?;
    Ok(Refreshed {
        timestamp_version: version,
        snapshot_version: new_snapshot_version,
    })
}

/// Writes root version N+1 with a new set of root keys and threshold, signed by the current
/// root's threshold (`old_signers`) and by the new root's own threshold (`new_root.root`).
/// Refuses to write a rotation clients would reject.
pub async fn rotate_root(
    repo: &Path,
    old_signers: &[PemKey],
    new_root_keys: &[PemKey],
    new_threshold: u64,
    expiry: &Expiry,
    now: Timestamp,
) -> Result<Vec<u8>, RepoError> {
    let root_path = newest_root(repo);
    let bytes = std::fs::read(&root_path).map_err(io(&root_path))?;
    let old: Signed<Root> = serde_json::from_slice(&bytes).map_err(|e| RepoError::Io {
        path: root_path.clone(),
        source: std::io::Error::other(e),
    })?;
    let mut new = old.signed.clone();
    new.version = nz(old.signed.version.get() + 1);
    new.expires = expires_at(now, expiry.root);
    if new_threshold == 0 || new_threshold > new_root_keys.len() as u64 {
        return Err(RepoError::BadThreshold {
            threshold: new_threshold,
            keys: new_root_keys.len(),
        });
    }
    // Replace the root role's keys; keep the other roles' keys.
    let old_root_ids: Vec<_> = old
        .signed
        .roles
        .get(&RoleType::Root)
        .map(|r| r.keyids.clone())
        .unwrap_or_default();
    let still_used = |id: &Decoded<Hex>| {
        new.roles
            .iter()
            .any(|(role, keys)| *role != RoleType::Root && keys.keyids.contains(id))
    };
    let drop: Vec<_> = old_root_ids
        .into_iter()
        .filter(|id| !still_used(id))
        .collect();
    for id in drop {
        new.keys.remove(&id);
    }
    let mut keyids = Vec::new();
    for key in new_root_keys {
        let public = key.public()?;
        let id = public
            .key_id()
            .map_err(|e| RepoError::KeyId(e.to_string()))?;
        new.keys.insert(id.clone(), public);
        keyids.push(id);
    }
    new.roles.insert(
        RoleType::Root,
        RoleKeys {
            keyids,
            threshold: nz(new_threshold),
            _extra: HashMap::new(),
        },
    );
    let by_new = sign_root(new.clone(), &new, new_root_keys).await?;
    let by_old = sign_root(new.clone(), &old.signed, old_signers).await?;
    let signed = by_new
        .add_old_signatures(by_old.signed().signatures.clone())
        .map_err(tuf("combining root signatures"))?;
    let version = new.version.get();
    old.signed
        .verify_role(signed.signed())
        .map_err(|e| RepoError::RotationUnsigned {
            version,
            which: "the old root's threshold",
            reason: e.to_string(),
        })?;
    new.verify_role(signed.signed())
        .map_err(|e| RepoError::RotationUnsigned {
            version,
            which: "its own threshold",
            reason: e.to_string(),
        })?;
    let metadata = metadata_dir(repo);
    let out = signed.buffer().clone();
    write_atomic(&metadata, &format!("{version}.root.json"), &out)?;
    write_atomic(&metadata, "root.json", &out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_times_have_whole_seconds() {
        let now = Timestamp::from_second(1_700_000_000)
            .unwrap()
            .checked_add(SignedDuration::from_millis(123))
            .unwrap();
        let t = expires_at(now, SignedDuration::from_hours(1));
        assert_eq!(t.subsec_nanosecond(), 0);
        assert_eq!(t.as_second(), 1_700_003_600);
    }

    #[test]
    fn consistent_target_path_prefixes_the_base_name() {
        assert_eq!(
            consistent_target_path("r1/stable/3.json", "ab"),
            "r1/stable/ab.3.json"
        );
        assert_eq!(consistent_target_path("file.txt", "ab"), "ab.file.txt");
    }
}
