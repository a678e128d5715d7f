//! The verifying client: TUF metadata from a pinned root, the newest (or pinned) generation's
//! manifest, and NAR checks against that manifest.
//!
//! The agent (and `roost-update tuf-client`) use this module; nothing downloaded is used before
//! it is verified here.

use std::io::Read;
use std::path::{Path, PathBuf};

use futures::StreamExt;
use roost_config::Generation;
use tough::{DefaultTransport, ExpirationEnforcement, Repository, RepositoryLoader, Transport};
use url::Url;

use crate::manifest::{self, Manifest, ManifestError};
use crate::nix::{HashingCounter, Sha256, StorePath};
use crate::repo::consistent_target_path;

/// Talking to the repository failed or what it served was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The trusted root could not be read.
    #[error("cannot read trusted root {path}: {source}")]
    Root {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The local metadata directory could not be used.
    #[error("metadata directory {path}: {source}")]
    Datastore {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// tough rejected the metadata (signatures, thresholds, versions, expiry, hashes, sizes).
    #[error("repository metadata rejected: {0}")]
    Metadata(Box<tough::error::Error>),
    /// All metadata verified, but some of it has expired since.
    #[error("repository metadata rejected: {role} metadata has expired")]
    Expired {
        /// The role that expires first.
        role: &'static str,
    },
    /// No generation for this host and channel.
    #[error("no generation of {host}/{channel} is published")]
    NoGeneration {
        /// Host.
        host: String,
        /// Channel.
        channel: String,
    },
    /// The pinned generation is not published.
    #[error("pinned generation {generation} of {host}/{channel} is not published")]
    PinnedMissing {
        /// Host.
        host: String,
        /// Channel.
        channel: String,
        /// The pinned generation.
        generation: u64,
    },
    /// A target not in the signed targets metadata.
    #[error("target {0} is not listed in the signed targets metadata")]
    UnknownTarget(String),
    /// The target name or URL is unusable.
    #[error("target {name}: {reason}")]
    BadTargetName {
        /// The target.
        name: String,
        /// Why.
        reason: String,
    },
    /// The download failed.
    #[error("target {name}: download from {url} failed: {reason}")]
    Download {
        /// The target.
        name: String,
        /// From where.
        url: String,
        /// Why.
        reason: String,
    },
    /// More bytes than the signed length.
    #[error("target {name}: longer than the {length} bytes the signed targets metadata allows")]
    TooLong {
        /// The target.
        name: String,
        /// The signed length.
        length: u64,
    },
    /// Fewer bytes than the signed length.
    #[error("target {name}: {actual} bytes, the signed targets metadata says {expected}")]
    Length {
        /// The target.
        name: String,
        /// Signed.
        expected: u64,
        /// Received.
        actual: u64,
    },
    /// Wrong content.
    #[error("target {name}: sha256 {actual} does not match the signed targets metadata")]
    Hash {
        /// The target.
        name: String,
        /// What arrived.
        actual: String,
    },
    /// The manifest target is not a valid manifest for what was asked.
    #[error("target {name}: {source}")]
    Manifest {
        /// The target.
        name: String,
        /// Why.
        source: ManifestError,
    },
}

/// Where the repository is and what is trusted.
#[derive(Debug, Clone)]
pub struct Client {
    /// The pinned root shipped with the system (used when the metadata dir has none yet).
    pub pinned_root: Vec<u8>,
    /// Base URL of the metadata.
    pub metadata_url: Url,
    /// Base URL of the targets.
    pub targets_url: Url,
    /// Persistent directory holding the trusted metadata (`root.json`, `timestamp.json`, ...);
    /// it is what makes rollback and freeze attacks across runs detectable.
    pub metadata_dir: PathBuf,
    /// How files are fetched (HTTP(S) and `file://` by default).
    transport: Box<dyn Transport>,
}

fn base(mut url: Url) -> Url {
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url
}

impl Client {
    /// A client for `metadata_url`/`targets_url`, trusting `pinned_root`.
    pub fn new(
        pinned_root: Vec<u8>,
        metadata_url: Url,
        targets_url: Url,
        metadata_dir: PathBuf,
    ) -> Self {
        Self {
            pinned_root,
            metadata_url: base(metadata_url),
            targets_url: base(targets_url),
            metadata_dir,
            transport: Box::new(DefaultTransport::new()),
        }
    }

    /// Fetches through `transport` instead (the agent records what it fetched in the spool).
    pub fn with_transport(mut self, transport: impl Transport + 'static) -> Self {
        self.transport = Box::new(transport);
        self
    }

    /// Runs the TUF client workflow (root chain, timestamp, snapshot, targets) and returns the
    /// verified repository. The newest trusted root in the metadata dir is the starting point.
    pub async fn refresh(&self) -> Result<Verified, ClientError> {
        std::fs::create_dir_all(&self.metadata_dir).map_err(|source| ClientError::Datastore {
            path: self.metadata_dir.clone(),
            source,
        })?;
        let stored = self.metadata_dir.join("root.json");
        let root = match std::fs::read(&stored) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.pinned_root.clone(),
            Err(source) => {
                return Err(ClientError::Root {
                    path: stored,
                    source,
                });
            }
        };
        let transport = self.transport.clone();
        let repo =
            RepositoryLoader::new(&root, self.metadata_url.clone(), self.targets_url.clone())
                .transport(Boxed(transport.clone()))
                .datastore(&self.metadata_dir)
                .expiration_enforcement(ExpirationEnforcement::Safe)
                .load()
                .await
                .map_err(|e| ClientError::Metadata(Box::new(e)))?;
        Ok(Verified {
            repo,
            targets_url: self.targets_url.clone(),
            transport,
        })
    }
}

/// A boxed transport as a transport (tough's loader takes a sized one).
#[derive(Debug, Clone)]
struct Boxed(Box<dyn Transport>);

#[async_trait::async_trait]
impl Transport for Boxed {
    async fn fetch(&self, url: Url) -> Result<tough::TransportStream, tough::TransportError> {
        self.0.fetch(url).await
    }
}

/// Reads a root file (for pinning).
pub fn read_root(path: &Path) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|source| ClientError::Root {
        path: path.to_owned(),
        source,
    })
}

/// Repository metadata that passed verification.
#[derive(Debug)]
pub struct Verified {
    repo: Repository,
    targets_url: Url,
    transport: Box<dyn Transport>,
}

impl Verified {
    /// The verified tough repository.
    pub fn repository(&self) -> &Repository {
        &self.repo
    }

    /// Published generations of `host` on `channel`, ascending.
    pub fn generations(&self, host: &str, channel: &str) -> Vec<Generation> {
        let mut out: Vec<Generation> = self
            .repo
            .all_targets()
            .filter_map(|(name, _)| manifest::parse_target_name(name.raw(), host, channel))
            .collect();
        out.sort();
        out
    }

    /// The newest generation, or the pinned one if it is published.
    pub fn choose(
        &self,
        host: &str,
        channel: &str,
        pinned: Option<Generation>,
    ) -> Result<Generation, ClientError> {
        let all = self.generations(host, channel);
        match pinned {
            Some(p) if all.contains(&p) => Ok(p),
            Some(p) => Err(ClientError::PinnedMissing {
                host: host.to_owned(),
                channel: channel.to_owned(),
                generation: p.0,
            }),
            None => all
                .last()
                .copied()
                .ok_or_else(|| ClientError::NoGeneration {
                    host: host.to_owned(),
                    channel: channel.to_owned(),
                }),
        }
    }

    fn check_not_expired(&self) -> Result<(), ClientError> {
        let now = jiff::Timestamp::now();
        let roles = [
            ("root", self.repo.root().signed.expires),
            ("timestamp", self.repo.timestamp().signed.expires),
            ("snapshot", self.repo.snapshot().signed.expires),
            ("targets", self.repo.targets().signed.expires),
        ];
        match roles.iter().find(|(_, expires)| *expires <= now) {
            Some((role, _)) => Err(ClientError::Expired { role }),
            None => Ok(()),
        }
    }

    /// The signed length and sha256 of a target.
    pub fn target_info(&self, name: &str) -> Result<(u64, Sha256), ClientError> {
        let target_name = tough::TargetName::new(name).map_err(|e| ClientError::BadTargetName {
            name: name.to_owned(),
            reason: e.to_string(),
        })?;
        let target = self
            .repo
            .targets()
            .signed
            .find_target(&target_name, false)
            .map_err(|_| ClientError::UnknownTarget(name.to_owned()))?;
        let digest: [u8; 32] =
            target
                .hashes
                .sha256
                .clone()
                .into_vec()
                .try_into()
                .map_err(|_| ClientError::BadTargetName {
                    name: name.to_owned(),
                    reason: "signed sha256 is not 32 bytes".to_owned(),
                })?;
        Ok((target.length, Sha256(digest)))
    }

    /// Downloads a target and checks it against the signed length and sha256; reads at most the
    /// signed length plus one byte.
    pub async fn fetch_target(&self, name: &str) -> Result<Vec<u8>, ClientError> {
        self.check_not_expired()?;
        let (length, digest) = self.target_info(name)?;
        let path = if self.repo.root().signed.consistent_snapshot {
            consistent_target_path(name, &hex::encode(digest.0))
        } else {
            name.to_owned()
        };
        let bad = |reason: String| ClientError::BadTargetName {
            name: name.to_owned(),
            reason,
        };
        if path
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..")
        {
            return Err(bad("has an empty, . or .. path segment".to_owned()));
        }
        let mut url = self.targets_url.clone();
        url.path_segments_mut()
            .map_err(|()| bad("targets URL cannot be a base".to_owned()))?
            .pop_if_empty()
            .extend(path.split('/'));
        if !url.as_str().starts_with(self.targets_url.as_str()) {
            return Err(bad("escapes the targets base URL".to_owned()));
        }
        let download = |reason: String| ClientError::Download {
            name: name.to_owned(),
            url: url.to_string(),
            reason,
        };
        let mut stream = self
            .transport
            .fetch(url.clone())
            .await
            .map_err(|e| download(e.to_string()))?;
        let mut data = Vec::new();
        let mut hasher = HashingCounter::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| download(e.to_string()))?;
            if hasher.len() + chunk.len() as u64 > length {
                return Err(ClientError::TooLong {
                    name: name.to_owned(),
                    length,
                });
            }
            hasher.update(&chunk);
            data.extend_from_slice(&chunk);
        }
        let (actual, got) = hasher.finish();
        if got != length {
            return Err(ClientError::Length {
                name: name.to_owned(),
                expected: length,
                actual: got,
            });
        }
        if actual != digest {
            return Err(ClientError::Hash {
                name: name.to_owned(),
                actual: hex::encode(actual.0),
            });
        }
        Ok(data)
    }

    /// Chooses a generation and fetches, verifies and validates its manifest.
    pub async fn fetch_manifest(
        &self,
        host: &str,
        channel: &str,
        pinned: Option<Generation>,
    ) -> Result<Manifest, ClientError> {
        let generation = self.choose(host, channel, pinned)?;
        let name = manifest::target_name(host, channel, generation);
        let bytes = self.fetch_target(&name).await?;
        let manifest = Manifest::from_json(&bytes)
            .and_then(|m| m.check_target(&name).map(|()| m))
            .map_err(|source| ClientError::Manifest {
                name: name.clone(),
                source,
            })?;
        Ok(manifest)
    }
}

/// A NAR (or compressed NAR file) did not match the manifest.
#[derive(Debug, thiserror::Error)]
pub enum NarError {
    /// Asked for a store path the manifest does not list.
    #[error("{path} is not in the manifest of {host} generation {generation}: refusing it")]
    NotInManifest {
        /// The store path.
        path: String,
        /// Manifest host.
        host: String,
        /// Manifest generation.
        generation: u64,
    },
    /// More bytes than the manifest's size.
    #[error("{path}: longer than the {expected} bytes of its {what}")]
    TooLong {
        /// The store path.
        path: StorePath,
        /// NarSize or FileSize.
        what: &'static str,
        /// The size.
        expected: u64,
    },
    /// Fewer bytes.
    #[error("{path}: {actual} bytes, its {what} is {expected}")]
    Size {
        /// The store path.
        path: StorePath,
        /// NarSize or FileSize.
        what: &'static str,
        /// Expected.
        expected: u64,
        /// Received.
        actual: u64,
    },
    /// Wrong hash.
    #[error("{path}: {what} mismatch: manifest says {expected}, got {actual}")]
    Hash {
        /// The store path.
        path: StorePath,
        /// NarHash or FileHash.
        what: &'static str,
        /// Expected (`sha256:<nix base32>`).
        expected: String,
        /// Received.
        actual: String,
    },
    /// The manifest has no FileHash/FileSize for a compressed file.
    #[error("{path}: the manifest has no FileHash/FileSize for its {compression} file")]
    NoFileHash {
        /// The store path.
        path: StorePath,
        /// The compression.
        compression: String,
    },
    /// Reading failed.
    #[error("{path}: reading: {source}")]
    Read {
        /// The store path.
        path: StorePath,
        /// Why.
        source: std::io::Error,
    },
}

/// Streaming check of one store path's bytes against the manifest.
#[derive(Debug)]
pub struct NarCheck {
    path: StorePath,
    what: (&'static str, &'static str),
    hash: Sha256,
    size: u64,
    hasher: HashingCounter,
}

impl std::fmt::Debug for HashingCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashingCounter")
            .field("len", &self.len())
            .finish()
    }
}

impl NarCheck {
    fn lookup<'m>(
        manifest: &'m Manifest,
        path: &str,
    ) -> Result<(StorePath, &'m manifest::PathInfo), NarError> {
        let not_in = || NarError::NotInManifest {
            path: path.to_owned(),
            host: manifest.host.clone(),
            generation: manifest.generation.0,
        };
        let parsed: StorePath = path.parse().map_err(|_| not_in())?;
        let info = manifest.paths.get(&parsed).ok_or_else(not_in)?;
        Ok((parsed, info))
    }

    /// Checks the uncompressed NAR of `path` against NarHash and NarSize.
    pub fn nar(manifest: &Manifest, path: &str) -> Result<Self, NarError> {
        let (path, info) = Self::lookup(manifest, path)?;
        Ok(Self {
            path,
            what: ("NarHash", "NarSize"),
            hash: info.nar_hash,
            size: info.nar_size,
            hasher: HashingCounter::new(),
        })
    }

    /// Checks the file as downloaded from the cache: NarHash/NarSize if uncompressed,
    /// FileHash/FileSize otherwise.
    pub fn file(manifest: &Manifest, path: &str) -> Result<Self, NarError> {
        let (parsed, info) = Self::lookup(manifest, path)?;
        if info.compression == "none" {
            return Self::nar(manifest, path);
        }
        let (Some(hash), Some(size)) = (info.file_hash, info.file_size) else {
            return Err(NarError::NoFileHash {
                path: parsed,
                compression: info.compression.clone(),
            });
        };
        Ok(Self {
            path: parsed,
            what: ("FileHash", "FileSize"),
            hash,
            size,
            hasher: HashingCounter::new(),
        })
    }

    /// Feeds bytes; fails as soon as there are more than expected.
    pub fn update(&mut self, data: &[u8]) -> Result<(), NarError> {
        if self.hasher.len() + data.len() as u64 > self.size {
            return Err(NarError::TooLong {
                path: self.path.clone(),
                what: self.what.1,
                expected: self.size,
            });
        }
        self.hasher.update(data);
        Ok(())
    }

    /// Checks size and hash once all bytes are in.
    pub fn finish(self) -> Result<(), NarError> {
        let (actual, len) = self.hasher.finish();
        if len != self.size {
            return Err(NarError::Size {
                path: self.path,
                what: self.what.1,
                expected: self.size,
                actual: len,
            });
        }
        if actual != self.hash {
            return Err(NarError::Hash {
                path: self.path,
                what: self.what.0,
                expected: self.hash.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(())
    }
}

/// Verifies a whole uncompressed NAR read from `reader` against the manifest entry of `path`.
pub fn verify_nar(manifest: &Manifest, path: &str, mut reader: impl Read) -> Result<(), NarError> {
    let mut check = NarCheck::nar(manifest, path)?;
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = reader.read(&mut buf).map_err(|source| NarError::Read {
            path: check.path.clone(),
            source,
        })?;
        if n == 0 {
            return check.finish();
        }
        check.update(&buf[..n])?;
    }
}
