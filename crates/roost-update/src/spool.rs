//! The spool: the one directory the update VM and the host share (a virtiofs share on the
//! router, a plain directory in the lab), and the only way the two talk. ADR 0012.
//!
//! ```text
//! SPOOL/repo/metadata/…     the TUF metadata the agent fetched, byte for byte (RecordingTransport)
//! SPOOL/repo/targets/…      the targets (generation manifests) it fetched
//! SPOOL/incoming/nar/H.nar  NARs the agent downloaded and checked
//! SPOOL/requests/ID.json    what the agent asks of the host step
//! SPOOL/replies/ID.json     the host step's answers
//! ```
//!
//! The agent in the VM has the network and no privilege; the host step (`roost-update host`)
//! has the store and the system profile and no network. Everything the VM writes here is
//! untrusted on the host: it verifies the TUF chain again from its own pinned root and its own
//! trusted metadata, and every NAR again against the verified manifest (see `crate::host`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tough::{Transport, TransportError, TransportErrorKind, TransportStream};
use url::Url;

use crate::durable::write_durable;
use crate::nix::StorePath;

/// Largest request or reply file either side reads.
pub const MAX_MESSAGE_BYTES: u64 = 2 << 20;

/// Most store paths in one request: a router's closure is a few thousand, and the host step
/// hands them to `nix-store` on one command line (ARG_MAX is 2 MiB).
pub const MAX_PATHS: usize = 16_384;

/// What the agent asks the host step to do. Each is safe to repeat: a host step restarted
/// mid-request runs it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// The toplevel the system profile points at.
    Running,
    /// Which of these store paths are not valid in the store.
    Missing {
        /// The closure of a generation.
        paths: Vec<StorePath>,
    },
    /// Verify generation `generation` of `host`/`channel` from the spool (TUF chain, manifest,
    /// every missing path's NAR) and import its missing paths.
    Import {
        /// The router's host name (must be the host's own).
        host: String,
        /// The update channel.
        channel: String,
        /// The generation.
        generation: u64,
    },
    /// Make `toplevel` the system profile's current generation: only one the host verified
    /// itself or one that is a generation of the profile already.
    Profile {
        /// The toplevel.
        toplevel: StorePath,
    },
    /// Activate the profile's current generation, which must be `toplevel`.
    Switch {
        /// The toplevel.
        toplevel: StorePath,
    },
    /// Restart these service VMs.
    Restart {
        /// VM names (`dns`, `dhcp`, ...).
        vms: Vec<String>,
    },
    /// Drop these generations from the profile and collect garbage; never the current
    /// generation or the one before it.
    Collect {
        /// Their toplevels.
        toplevels: Vec<StorePath>,
    },
}

/// What the host step answers when it did what was asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Answer {
    /// Done.
    Done,
    /// For `Running`.
    Running(Option<StorePath>),
    /// For `Missing`.
    Missing(Vec<StorePath>),
    /// For `Collect`: what Nix said it freed.
    Freed(String),
}

/// A request file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Also the file name.
    pub id: String,
    /// What to do.
    pub request: Request,
}

/// A reply file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reply {
    /// The request's id.
    pub id: String,
    /// The answer, or why the host refused or failed.
    pub outcome: Result<Answer, String>,
}

/// Whether `id` is a request id (`<nanoseconds>-<random>`, digits, hex and one dash): the host
/// step takes no other file name from the spool.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b) || b == b'-')
}

/// The spool's layout.
#[derive(Debug, Clone)]
pub struct Spool {
    root: PathBuf,
}

impl Spool {
    /// The spool at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Its directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The recorded repository (`metadata/`, `targets/`).
    pub fn repo(&self) -> PathBuf {
        self.root.join("repo")
    }

    /// Empties the recorded repository but for the root versions (`metadata/N.root.json`),
    /// before an update refreshes it: the host step then finds exactly the files of that
    /// refresh, plus every root of the chain from whatever root it trusts (the agent's own
    /// chain may be ahead of the host's, and it would not fetch those roots again).
    pub fn prune_repo(&self) -> std::io::Result<()> {
        let repo = self.repo();
        let metadata = repo.join("metadata");
        match std::fs::read_dir(&metadata) {
            Ok(entries) => {
                for entry in entries {
                    let entry = entry?;
                    let name = entry.file_name();
                    let is_root = name.to_str().is_some_and(|n| {
                        n.strip_suffix(".root.json")
                            .is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    });
                    if !is_root {
                        remove_any(&entry.path())?;
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        match std::fs::read_dir(&repo) {
            Ok(entries) => {
                for entry in entries {
                    let path = entry?.path();
                    if path != metadata {
                        remove_any(&path)?;
                    }
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The agent's checked NARs (`nar/H.nar`).
    pub fn incoming(&self) -> PathBuf {
        self.root.join("incoming")
    }

    /// Request files.
    pub fn requests(&self) -> PathBuf {
        self.root.join("requests")
    }

    /// Reply files.
    pub fn replies(&self) -> PathBuf {
        self.root.join("replies")
    }
}

/// Talking to the host step failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The request could not be written or the reply read.
    #[error("spool {path}: {reason}")]
    Spool {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// No reply in time.
    #[error("the host step did not answer {op} within {secs} s")]
    Timeout {
        /// The request.
        op: String,
        /// The deadline.
        secs: u64,
    },
    /// The host step refused or failed.
    #[error("host step: {0}")]
    Refused(String),
}

/// The agent's side of the spool: writes a request, waits for its reply.
#[derive(Debug, Clone)]
pub struct HostLink {
    spool: Spool,
    timeout: Duration,
}

impl HostLink {
    /// A link through `spool`, waiting at most `timeout` for each reply.
    pub fn new(spool: Spool, timeout: Duration) -> Self {
        Self { spool, timeout }
    }

    /// Asks the host step and waits for its answer.
    pub async fn call(&self, request: Request) -> Result<Answer, HostError> {
        self.call_within(request, self.timeout).await
    }

    /// Asks the host step and waits at most `timeout` for its answer.
    pub async fn call_within(
        &self,
        request: Request,
        timeout: Duration,
    ) -> Result<Answer, HostError> {
        let op = serde_json::to_value(&request)
            .ok()
            .and_then(|v| v["op"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let id = new_id();
        let request_file = self.spool.requests().join(format!("{id}.json"));
        let reply_file = self.spool.replies().join(format!("{id}.json"));
        let spool_err = |path: &Path, reason: String| HostError::Spool {
            path: path.to_owned(),
            reason,
        };
        let body = serde_json::to_vec(&Envelope { id, request })
            .map_err(|e| spool_err(&request_file, e.to_string()))?;
        write_durable(&request_file, &body)
            .map_err(|e| spool_err(&e.path, e.source.to_string()))?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match read_bounded(&reply_file) {
                Ok(bytes) => {
                    let _ = std::fs::remove_file(&reply_file);
                    let reply: Reply = serde_json::from_slice(&bytes)
                        .map_err(|e| spool_err(&reply_file, e.to_string()))?;
                    return reply.outcome.map_err(HostError::Refused);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(spool_err(&reply_file, e.to_string())),
            }
            if tokio::time::Instant::now() >= deadline {
                // Not taken yet: take it back, so it does not run long after we gave up.
                let _ = std::fs::remove_file(&request_file);
                return Err(HostError::Timeout {
                    op,
                    secs: timeout.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Removes a file, link or directory tree (a link is removed, never followed).
fn remove_any(path: &Path) -> std::io::Result<()> {
    if std::fs::symlink_metadata(path)?.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
}

fn new_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut random = [0u8; 4];
    let _ = aws_lc_rs::rand::fill(&mut random);
    format!("{nanos:020}-{}", hex::encode(random))
}

/// Reads a file of at most [`MAX_MESSAGE_BYTES`].
fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_MESSAGE_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_MESSAGE_BYTES {
        return Err(std::io::Error::other("larger than a message may be"));
    }
    Ok(bytes)
}

/// A tough transport that keeps a copy of every file it fetched completely under the spool's
/// `repo/`, at the same path relative to the metadata or targets base URL, so the host step
/// can verify the very bytes the agent did. A file is written only once the stream ended
/// (tough stops reading at its size limits, and such a file is never kept).
#[derive(Debug, Clone)]
pub struct RecordingTransport {
    inner: tough::DefaultTransport,
    bases: Vec<(Url, PathBuf)>,
}

impl RecordingTransport {
    /// Records what is fetched under `metadata_url` into `repo/metadata` and under
    /// `targets_url` into `repo/targets`.
    pub fn new(repo: &Path, metadata_url: &Url, targets_url: &Url) -> Self {
        Self {
            inner: tough::DefaultTransport::new(),
            bases: vec![
                (metadata_url.clone(), repo.join("metadata")),
                (targets_url.clone(), repo.join("targets")),
            ],
        }
    }

    /// Where `url` is recorded, if it is under a base and its path is plain.
    fn destination(&self, url: &Url) -> Option<PathBuf> {
        self.bases.iter().find_map(|(base, dir)| {
            let rel = url.as_str().strip_prefix(base.as_str())?;
            let plain = !rel.is_empty()
                && !rel.contains(['?', '#', '%', '\\'])
                && rel
                    .split('/')
                    .all(|seg| !seg.is_empty() && seg != "." && seg != "..");
            plain.then(|| dir.join(rel))
        })
    }
}

#[async_trait]
impl Transport for RecordingTransport {
    async fn fetch(&self, url: Url) -> Result<TransportStream, TransportError> {
        let stream = self.inner.fetch(url.clone()).await?;
        let Some(dest) = self.destination(&url) else {
            return Ok(stream);
        };
        let mut stream = stream;
        let mut data = Vec::new();
        // Metadata and manifests are small and tough bounds them; this bound only keeps a
        // hostile server from growing the copy past what tough would ever read.
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if data.len() + chunk.len() > crate::host::MAX_REPO_FILE_BYTES as usize {
                return Err(TransportError::new_with_cause(
                    TransportErrorKind::Other,
                    url,
                    "larger than the spool keeps",
                ));
            }
            data.extend_from_slice(&chunk);
        }
        write_durable(&dest, &data).map_err(|e| {
            TransportError::new_with_cause(TransportErrorKind::Other, url.clone(), e)
        })?;
        let once = futures::stream::once(async move { Ok(bytes::Bytes::from(data)) });
        Ok(Box::pin(once))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_digits_hex_and_dashes_only() {
        assert!(valid_id(&new_id()));
        assert!(!valid_id("../etc/passwd"));
        assert!(!valid_id("1.json"));
        assert!(!valid_id(""));
        assert!(!valid_id(&"1".repeat(65)));
    }

    #[test]
    fn requests_round_trip_and_unknown_fields_are_refused() {
        let r = Request::Import {
            host: "roost".into(),
            channel: "stable".into(),
            generation: 3,
        };
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(
            json,
            r#"{"op":"import","host":"roost","channel":"stable","generation":3}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&json).unwrap(), r);
        assert!(
            serde_json::from_str::<Request>(r#"{"op":"restart","vms":["dns"],"command":"reboot"}"#)
                .is_err()
        );
        assert!(serde_json::from_str::<Request>(r#"{"op":"format_disk"}"#).is_err());
    }

    #[test]
    fn recording_keeps_only_plain_paths_under_a_base() {
        let m = Url::parse("https://u.test/tuf/metadata/").unwrap();
        let t = Url::parse("https://u.test/tuf/targets/").unwrap();
        let rec = RecordingTransport::new(Path::new("/s/repo"), &m, &t);
        let at = |u: &str| rec.destination(&Url::parse(u).unwrap());
        assert_eq!(
            at("https://u.test/tuf/metadata/2.root.json"),
            Some(PathBuf::from("/s/repo/metadata/2.root.json"))
        );
        assert_eq!(
            at("https://u.test/tuf/targets/roost/stable/ab.3.json"),
            Some(PathBuf::from("/s/repo/targets/roost/stable/ab.3.json"))
        );
        assert_eq!(at("https://u.test/tuf/metadata/a/../../x"), None);
        assert_eq!(at("https://u.test/tuf/metadata/%2e%2e/x"), None);
        assert_eq!(at("https://u.test/other/x.json"), None);
    }

    #[test]
    fn pruning_keeps_only_the_root_chain() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path());
        let metadata = spool.repo().join("metadata");
        std::fs::create_dir_all(spool.repo().join("targets/roost/stable")).unwrap();
        std::fs::create_dir_all(&metadata).unwrap();
        for f in [
            "1.root.json",
            "2.root.json",
            "timestamp.json",
            "7.snapshot.json",
            "x.root.json",
        ] {
            std::fs::write(metadata.join(f), b"{}").unwrap();
        }
        std::fs::write(spool.repo().join("targets/roost/stable/ab.3.json"), b"{}").unwrap();
        spool.prune_repo().unwrap();
        let mut left: Vec<String> = std::fs::read_dir(&metadata)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["1.root.json", "2.root.json"]);
        assert!(!spool.repo().join("targets").exists());
        // Nothing recorded yet is fine too.
        Spool::new(dir.path().join("none")).prune_repo().unwrap();
    }

    #[tokio::test]
    async fn a_host_step_that_never_answers_times_out_and_the_request_is_taken_back() {
        let dir = tempfile::tempdir().unwrap();
        let link = HostLink::new(Spool::new(dir.path()), Duration::from_millis(300));
        let err = link.call(Request::Running).await.unwrap_err();
        assert!(
            matches!(err, HostError::Timeout { ref op, .. } if op == "running"),
            "{err}"
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("requests"))
                .unwrap()
                .count(),
            0
        );
    }
}
