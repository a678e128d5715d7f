//! The host step (`roost-update host --settings /etc/roost/update-host.toml`): the small
//! privileged part of an update, on the NixOS host, with no network. ADR 0012.
//!
//! The agent in the update VM has the network and fetches; this side has the store and the
//! system profile and does only what the agent asks through the spool (`crate::spool`), after
//! checking it again itself:
//!
//! - **import**: the TUF chain is verified again from the host's own pinned root and its own
//!   trusted metadata (`STATE_DIRECTORY/tuf`, so rollback and freeze protection does not rest
//!   on the VM), from a private copy of the metadata the agent recorded; the generation must be
//!   of this host; every missing path's NAR is checked against the verified manifest while it
//!   is copied out of the spool, and only the checked copy is imported.
//! - **profile**: only a toplevel this side verified, or one that is a generation of the
//!   system profile already (what the boot menu offers anyway).
//! - **switch**: only the profile's current generation.
//! - **collect**: never the current generation or the one before it.
//! - **restart**: VM names only.
//!
//! Nothing in the spool is followed: every file is opened relative to a directory handle,
//! without following links, and must be a regular file within a size bound; replies are
//! written the same way. A compromised update VM can ask for a rollback to an installed
//! generation or restart a service VM (both visible in the journal and logs), never install
//! what the repository's keys did not sign.

pub mod store;

use std::collections::BTreeMap;
use std::ffi::CStr;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::fcntl::{OFlag, openat, renameat};
use nix::sys::stat::{Mode, SFlag, fstat};
use nix::unistd::{UnlinkatFlags, unlinkat};
use roost_config::Generation;
use serde::Deserialize;
use url::Url;

use crate::client::{Client, NarCheck};
use crate::durable::write_durable;
use crate::manifest::Manifest;
use crate::nix::StorePath;
use crate::settings_file::{self, SettingsFileError};
use crate::spool::{self, Answer, Envelope, Reply, Request, Spool};

use self::store::{Store, StoreError};

/// Largest single file of the recorded repository the host copies.
pub const MAX_REPO_FILE_BYTES: u64 = 16 << 20;
/// Most files of the recorded repository the host copies.
const MAX_REPO_FILES: usize = 4096;
/// Deepest directory nesting of the recorded repository.
const MAX_REPO_DEPTH: usize = 8;
/// Verified generations remembered for `profile` requests.
const KEEP_VERIFIED: usize = 64;

/// The host step's settings (`/etc/roost/update-host.toml`, written by the host's Nix module).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostSettings {
    /// The pinned TUF root shipped with the system.
    pub root: PathBuf,
    /// The router's host name: only its generations are installed.
    pub hostname: String,
    /// The directory shared with the update VM.
    pub spool: PathBuf,
    /// Root of a chroot store (`nix --store DIR`); absent means the system's store.
    pub store: Option<PathBuf>,
    /// The system profile.
    pub profile: PathBuf,
    /// Restarts one service VM; `{vm}` is replaced by its name.
    pub restart: Vec<String>,
    /// Directory of the `nix`, `nix-store` and `nix-env` binaries (default: from PATH).
    pub nix_bin: Option<PathBuf>,
}

impl Default for HostSettings {
    fn default() -> Self {
        Self {
            root: PathBuf::from("/etc/roost/update-root.json"),
            hostname: String::new(),
            spool: PathBuf::from("/var/lib/roost/update-spool"),
            store: None,
            profile: PathBuf::from("/nix/var/nix/profiles/system"),
            restart: ["systemctl", "restart", "microvm@{vm}.service"]
                .map(str::to_owned)
                .to_vec(),
            nix_bin: None,
        }
    }
}

impl HostSettings {
    /// Parses the file's text; `origin` names it in errors.
    pub fn from_toml(origin: &Path, text: &str) -> Result<Self, SettingsFileError> {
        let s: Self = settings_file::parse(origin, text)?;
        if s.hostname.is_empty() {
            return Err(SettingsFileError::invalid(
                origin,
                "hostname: required (only this host's generations are installed)",
            ));
        }
        if s.restart.is_empty() {
            return Err(SettingsFileError::invalid(
                origin,
                "restart: needs at least a program",
            ));
        }
        Ok(s)
    }

    /// Reads the file (it has no defaults for the host name: it must be there).
    pub fn load(path: &Path) -> Result<Self, SettingsFileError> {
        let text = settings_file::read(path)?.ok_or_else(|| SettingsFileError::Read {
            path: path.to_owned(),
            source: std::io::ErrorKind::NotFound.into(),
        })?;
        Self::from_toml(path, &text)
    }
}

/// Why the host step refused or failed a request (sent back to the agent as text).
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The agent asked for something this side does not allow.
    #[error("refused: {0}")]
    Refused(String),
    /// The spool's content did not verify.
    #[error("{0}")]
    Verify(String),
    /// Nix or files on the host.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Spool files.
    #[error("spool {path}: {source}")]
    Spool {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

fn spool_err(path: &Path) -> impl FnOnce(std::io::Error) -> StepError + '_ {
    move |source| StepError::Spool {
        path: path.to_owned(),
        source,
    }
}

/// The host step.
#[derive(Debug)]
pub struct HostStep {
    settings: HostSettings,
    spool: Spool,
    state: PathBuf,
    store: Store,
}

impl HostStep {
    /// The host step with its state in `state` (`STATE_DIRECTORY`).
    pub fn new(settings: HostSettings, state: PathBuf) -> Self {
        Self {
            spool: Spool::new(&settings.spool),
            store: Store::new(&settings),
            settings,
            state,
        }
    }

    /// Does what `request` asks, if it may.
    pub async fn handle(&self, request: Request) -> Result<Answer, StepError> {
        match request {
            Request::Running => Ok(Answer::Running(self.store.profile_target()?)),
            Request::Missing { paths } => {
                if paths.len() > spool::MAX_PATHS {
                    return Err(StepError::Refused(format!(
                        "{} store paths in one request",
                        paths.len()
                    )));
                }
                let paths: Vec<&StorePath> = paths.iter().collect();
                Ok(Answer::Missing(self.store.missing(&paths).await?))
            }
            Request::Import {
                host,
                channel,
                generation,
            } => {
                self.import(&host, &channel, generation).await?;
                Ok(Answer::Done)
            }
            Request::Profile { toplevel } => {
                let verified = self.verified()?.into_values().any(|t| t == toplevel);
                let installed = self
                    .store
                    .generations()?
                    .iter()
                    .any(|g| g.toplevel == toplevel);
                if !verified && !installed {
                    return Err(StepError::Refused(format!(
                        "{toplevel} was neither verified here nor is a generation of the profile"
                    )));
                }
                self.store.set_profile(&toplevel).await?;
                Ok(Answer::Done)
            }
            Request::Switch { toplevel } => {
                let current = self.store.profile_target()?;
                if current.as_ref() != Some(&toplevel) {
                    return Err(StepError::Refused(format!(
                        "switch to {toplevel}: the profile points at {}",
                        current.map_or_else(|| "nothing".to_owned(), |c| c.to_string())
                    )));
                }
                self.store.activate(&toplevel).await?;
                Ok(Answer::Done)
            }
            Request::Restart { vms } => {
                if vms.len() > 32 {
                    return Err(StepError::Refused(format!("{} VMs at once", vms.len())));
                }
                if let Some(bad) = vms.iter().find(|v| !valid_vm_name(v)) {
                    return Err(StepError::Refused(format!("{bad:?} is not a VM name")));
                }
                for vm in &vms {
                    tracing::info!(vm, "restarting service vm");
                    self.store.restart_vm(vm).await?;
                }
                Ok(Answer::Done)
            }
            Request::Collect { toplevels } => {
                let generations = self.store.generations()?;
                let current = generations.iter().position(|g| g.current);
                let protected: Vec<&StorePath> = current
                    .into_iter()
                    .flat_map(|i| generations[i.saturating_sub(1)..=i].iter())
                    .map(|g| &g.toplevel)
                    .collect();
                if let Some(p) = toplevels.iter().find(|t| protected.contains(t)) {
                    return Err(StepError::Refused(format!(
                        "{p} is the running generation or the one a rollback goes to"
                    )));
                }
                Ok(Answer::Freed(self.store.collect(&toplevels).await?))
            }
        }
    }

    /// Generations this side verified itself: generation → toplevel.
    fn verified(&self) -> Result<BTreeMap<u64, StorePath>, StepError> {
        let path = self.state.join("verified.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StepError::Spool {
                path,
                source: std::io::Error::other(e),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(source) => Err(StepError::Spool { path, source }),
        }
    }

    async fn import(&self, host: &str, channel: &str, generation: u64) -> Result<(), StepError> {
        if host != self.settings.hostname {
            return Err(StepError::Refused(format!(
                "generation of host {host:?}: this is {:?}",
                self.settings.hostname
            )));
        }
        let staging = self.state.join("staging");
        match std::fs::remove_dir_all(&staging) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(spool_err(&staging)(e)),
        }
        let repo = staging.join("repo");
        let mut budget = CopyBudget::default();
        let spool_repo = self.spool.repo();
        let src = open_dir(&spool_repo).map_err(spool_err(&spool_repo))?;
        copy_tree(&src, &repo, 0, &mut budget).map_err(spool_err(&spool_repo))?;

        let manifest = self
            .verify_manifest(&repo, host, channel, generation)
            .await?;
        let paths: Vec<&StorePath> = manifest.paths.keys().collect();
        let missing = self.store.missing(&paths).await?;
        let cache = staging.join("cache");
        let nar_dir = cache.join("nar");
        std::fs::create_dir_all(&nar_dir).map_err(spool_err(&nar_dir))?;
        let incoming = self.spool.incoming().join("nar");
        if !missing.is_empty() {
            let incoming_fd = open_dir(&incoming).map_err(spool_err(&incoming))?;
            for path in &missing {
                let name = format!("{}.nar", path.hash_part());
                let source =
                    open_regular(&incoming_fd, &name).map_err(spool_err(&incoming.join(&name)))?;
                copy_checked(&manifest, path, source, &nar_dir.join(&name))?;
            }
        }
        self.store.import(&cache, &manifest, &missing).await?;
        let mut verified = self.verified()?;
        verified.insert(generation, manifest.toplevel.clone());
        while verified.len() > KEEP_VERIFIED {
            verified.pop_first();
        }
        let bytes = serde_json::to_vec_pretty(&verified).unwrap_or_default();
        write_durable(&self.state.join("verified.json"), &bytes).map_err(StoreError::from)?;
        let _ = std::fs::remove_dir_all(&staging);
        tracing::info!(
            generation,
            imported = missing.len(),
            of = paths.len(),
            "generation verified and imported"
        );
        Ok(())
    }

    async fn verify_manifest(
        &self,
        repo: &Path,
        host: &str,
        channel: &str,
        generation: u64,
    ) -> Result<Manifest, StepError> {
        let url = |sub: &str| {
            Url::from_directory_path(repo.join(sub))
                .map_err(|()| StepError::Verify(format!("{} is not absolute", repo.display())))
        };
        let root = crate::client::read_root(&self.settings.root)
            .map_err(|e| StepError::Verify(e.to_string()))?;
        let client = Client::new(
            root,
            url("metadata")?,
            url("targets")?,
            self.state.join("tuf"),
        );
        let verified = client
            .refresh()
            .await
            .map_err(|e| StepError::Verify(e.to_string()))?;
        verified
            .fetch_manifest(host, channel, Some(Generation(generation)))
            .await
            .map_err(|e| StepError::Verify(e.to_string()))
    }

    /// Answers every request waiting in the spool, oldest first. How many it answered.
    pub async fn serve_once(&self) -> Result<usize, StepError> {
        let requests = self.spool.requests();
        let replies = self.spool.replies();
        for dir in [&requests, &replies] {
            std::fs::create_dir_all(dir).map_err(spool_err(dir))?;
        }
        let requests_fd = open_dir(&requests).map_err(spool_err(&requests))?;
        let replies_fd = open_dir(&replies).map_err(spool_err(&replies))?;
        let mut ids = list(&requests_fd)
            .map_err(spool_err(&requests))?
            .into_iter()
            .filter_map(|name| name.strip_suffix(".json").map(str::to_owned))
            .filter(|id| spool::valid_id(id))
            .collect::<Vec<_>>();
        ids.sort();
        for id in &ids {
            let file = format!("{id}.json");
            let request = open_regular(&requests_fd, &file)
                .and_then(|f| read_bounded(f, spool::MAX_MESSAGE_BYTES))
                .map_err(|e| e.to_string())
                .and_then(|bytes| {
                    serde_json::from_slice::<Envelope>(&bytes).map_err(|e| e.to_string())
                })
                .and_then(|env| {
                    if env.id == *id {
                        Ok(env.request)
                    } else {
                        Err(format!("request {id} carries id {}", env.id))
                    }
                });
            let outcome = match request {
                Ok(request) => {
                    tracing::info!(id, ?request, "request from the update vm");
                    self.handle(request).await.map_err(|e| e.to_string())
                }
                Err(reason) => Err(format!("unreadable request: {reason}")),
            };
            if let Err(reason) = &outcome {
                tracing::warn!(id, %reason, "request not done");
            }
            let reply = serde_json::to_vec(&Reply {
                id: id.clone(),
                outcome,
            })
            .unwrap_or_default();
            write_at(&replies_fd, &file, &reply).map_err(spool_err(&replies.join(&file)))?;
            match unlinkat(&requests_fd, file.as_str(), UnlinkatFlags::NoRemoveDir) {
                Ok(()) | Err(nix::errno::Errno::ENOENT) => {}
                Err(e) => return Err(spool_err(&requests.join(&file))(e.into())),
            }
        }
        remove_stale_replies(&replies_fd);
        Ok(ids.len())
    }

    /// Serves the spool until `shutdown` completes.
    pub async fn serve(&self, shutdown: impl std::future::Future<Output = ()>) {
        tracing::info!(spool = %self.spool.root().display(), "serving the update spool");
        tokio::pin!(shutdown);
        loop {
            if let Err(e) = self.serve_once().await {
                tracing::error!(error = %e, "serving the spool");
            }
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    }
}

/// Replies nobody collected (an agent that gave up waiting) are removed after an hour.
fn remove_stale_replies(replies: &OwnedFd) {
    let Ok(names) = list(replies) else { return };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for name in names {
        let stale = nix::sys::stat::fstatat(
            replies,
            name.as_str(),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .is_ok_and(|st| u64::try_from(st.st_mtime).unwrap_or(0) + 3600 < now);
        if stale {
            let _ = unlinkat(replies, name.as_str(), UnlinkatFlags::NoRemoveDir);
        }
    }
}

fn valid_vm_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && name.len() <= 32
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Copies one NAR out of the spool while checking it against the verified manifest; the copy
/// is kept only if it matches.
fn copy_checked(
    manifest: &Manifest,
    path: &StorePath,
    mut source: std::fs::File,
    dest: &Path,
) -> Result<(), StepError> {
    let mut check =
        NarCheck::nar(manifest, &path.to_string()).map_err(|e| StepError::Verify(e.to_string()))?;
    let dir = dest.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(spool_err(dir))?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = source.read(&mut buf).map_err(spool_err(dest))?;
        if n == 0 {
            break;
        }
        check
            .update(&buf[..n])
            .map_err(|e| StepError::Verify(e.to_string()))?;
        tmp.write_all(&buf[..n]).map_err(spool_err(dest))?;
    }
    check
        .finish()
        .map_err(|e| StepError::Verify(e.to_string()))?;
    tmp.persist(dest).map_err(|e| spool_err(dest)(e.error))?;
    Ok(())
}

const NOFOLLOW_DIR: OFlag = OFlag::O_DIRECTORY
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_RDONLY)
    .union(OFlag::O_CLOEXEC);

/// Opens a directory the host configured (its last component not followed).
fn open_dir(path: &Path) -> std::io::Result<OwnedFd> {
    Ok(openat(
        nix::fcntl::AT_FDCWD,
        path,
        NOFOLLOW_DIR,
        Mode::empty(),
    )?)
}

/// Opens `name` in `dir` without following a link or blocking on a FIFO; with its type.
fn open_nofollow(dir: &impl AsFd, name: &str) -> std::io::Result<(OwnedFd, SFlag)> {
    let fd = openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let kind = SFlag::from_bits_truncate(fstat(&fd)?.st_mode) & SFlag::S_IFMT;
    Ok((fd, kind))
}

/// Opens `name` in `dir` for reading: it must be a regular file, not a link.
fn open_regular(dir: &impl AsFd, name: &str) -> std::io::Result<std::fs::File> {
    match open_nofollow(dir, name)? {
        (fd, SFlag::S_IFREG) => Ok(std::fs::File::from(fd)),
        _ => Err(std::io::Error::other("not a regular file")),
    }
}

fn read_bounded(file: std::fs::File, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::other(format!("larger than {limit} bytes")));
    }
    Ok(bytes)
}

/// The names in a directory.
fn list(dir: &impl AsFd) -> std::io::Result<Vec<String>> {
    let fd = openat(dir, ".", NOFOLLOW_DIR, Mode::empty())?;
    let mut out = Vec::new();
    for entry in nix::dir::Dir::from_fd(fd)? {
        let entry = entry?;
        let name: &CStr = entry.file_name();
        let Ok(name) = name.to_str() else { continue };
        if name != "." && name != ".." {
            out.push(name.to_owned());
        }
    }
    Ok(out)
}

/// Writes `name` in `dir` durably through the directory handle (temp, fsync, rename, fsync).
fn write_at(dir: &OwnedFd, name: &str, data: &[u8]) -> std::io::Result<()> {
    let tmp = format!(".{name}.tmp");
    match unlinkat(dir, tmp.as_str(), UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(e.into()),
    }
    let fd = openat(
        dir,
        tmp.as_str(),
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o644),
    )?;
    let mut file = std::fs::File::from(fd);
    file.write_all(data)?;
    file.sync_all()?;
    renameat(dir, tmp.as_str(), dir, name)?;
    nix::unistd::fsync(dir)?;
    Ok(())
}

#[derive(Debug, Default)]
struct CopyBudget {
    files: usize,
}

/// Copies the regular files and directories under `src` to `dest`, following no link,
/// within the size, count and depth bounds.
fn copy_tree(
    src: &OwnedFd,
    dest: &Path,
    depth: usize,
    budget: &mut CopyBudget,
) -> std::io::Result<()> {
    if depth > MAX_REPO_DEPTH {
        return Err(std::io::Error::other("nested too deep"));
    }
    std::fs::create_dir_all(dest)?;
    for name in list(src)? {
        budget.files += 1;
        if budget.files > MAX_REPO_FILES {
            return Err(std::io::Error::other("too many files"));
        }
        match open_nofollow(src, &name) {
            Ok((fd, SFlag::S_IFDIR)) => copy_tree(&fd, &dest.join(&name), depth + 1, budget)?,
            Ok((fd, SFlag::S_IFREG)) => std::fs::write(
                dest.join(&name),
                read_bounded(std::fs::File::from(fd), MAX_REPO_FILE_BYTES)?,
            )?,
            _ => tracing::warn!(
                name,
                "spool: skipping what is neither a file nor a directory"
            ),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_need_the_host_name_and_reject_unknown_keys() {
        let err = HostSettings::from_toml(Path::new("h.toml"), "").unwrap_err();
        assert!(err.to_string().contains("hostname"), "{err}");
        let err =
            HostSettings::from_toml(Path::new("h.toml"), "hostname = \"r\"\nprofle = \"/x\"\n")
                .unwrap_err();
        assert!(err.to_string().contains("profle"), "{err}");
        let s = HostSettings::from_toml(Path::new("h.toml"), "hostname = \"r\"\n").unwrap();
        assert_eq!(s.profile, PathBuf::from("/nix/var/nix/profiles/system"));
    }

    #[test]
    fn vm_names_are_short_lowercase_words() {
        assert!(valid_vm_name("dns"));
        assert!(valid_vm_name("wifi-5g"));
        assert!(!valid_vm_name(""));
        assert!(!valid_vm_name("-x"));
        assert!(!valid_vm_name("dns; reboot"));
        assert!(!valid_vm_name("../x"));
        assert!(!valid_vm_name(&"a".repeat(33)));
    }

    #[test]
    fn links_fifos_and_oversized_files_in_the_spool_are_not_copied() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("metadata")).unwrap();
        std::fs::write(src.join("metadata/timestamp.json"), b"{}").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.join("metadata/root.json")).unwrap();
        std::os::unix::fs::symlink("/etc", src.join("targets")).unwrap();
        nix::unistd::mkfifo(&src.join("metadata/fifo"), Mode::from_bits_truncate(0o600)).unwrap();
        let dest = dir.path().join("dest");
        let fd = open_dir(&src).unwrap();
        copy_tree(&fd, &dest, 0, &mut CopyBudget::default()).unwrap();
        assert!(dest.join("metadata/timestamp.json").is_file());
        assert!(!dest.join("metadata/root.json").exists());
        assert!(!dest.join("metadata/fifo").exists());
        assert!(!dest.join("targets").exists());

        let big = std::fs::File::create(src.join("metadata/big.json")).unwrap();
        big.set_len(MAX_REPO_FILE_BYTES + 1).unwrap();
        let err = copy_tree(&fd, &dest, 0, &mut CopyBudget::default()).unwrap_err();
        assert!(err.to_string().contains("larger"), "{err}");
    }

    #[tokio::test]
    async fn replies_never_follow_a_link_the_vm_planted() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir_all(spool.join("requests")).unwrap();
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, spool.join("replies")).unwrap();
        let step = HostStep::new(
            HostSettings {
                hostname: "roost".into(),
                spool: spool.clone(),
                profile: dir.path().join("profiles/system"),
                ..HostSettings::default()
            },
            dir.path().join("state"),
        );
        let id = "1-ab";
        std::fs::write(
            spool.join("requests").join(format!("{id}.json")),
            br#"{"id":"1-ab","request":{"op":"running"}}"#,
        )
        .unwrap();
        assert!(step.serve_once().await.is_err());
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);

        // With a real replies directory the same request is answered.
        std::fs::remove_file(spool.join("replies")).unwrap();
        assert_eq!(step.serve_once().await.unwrap(), 1);
        let reply: Reply =
            serde_json::from_slice(&std::fs::read(spool.join("replies/1-ab.json")).unwrap())
                .unwrap();
        assert_eq!(reply.outcome, Ok(Answer::Running(None)));
        assert!(!spool.join("requests/1-ab.json").exists());

        // A reply nobody collected for over an hour goes; a fresh one stays.
        let old = std::fs::File::options()
            .write(true)
            .open(spool.join("replies/1-ab.json"))
            .unwrap();
        old.set_modified(std::time::SystemTime::now() - Duration::from_secs(7200))
            .unwrap();
        std::fs::write(spool.join("replies/2-ab.json"), b"{}").unwrap();
        assert_eq!(step.serve_once().await.unwrap(), 0);
        assert!(!spool.join("replies/1-ab.json").exists());
        assert!(spool.join("replies/2-ab.json").exists());
    }

    #[tokio::test]
    async fn requests_outside_what_the_host_allows_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let step = HostStep::new(
            HostSettings {
                hostname: "roost".into(),
                spool: dir.path().join("spool"),
                profile: dir.path().join("profiles/system"),
                ..HostSettings::default()
            },
            dir.path().join("state"),
        );
        let toplevel: StorePath = "/nix/store/00000000000000000000000000000000-evil"
            .parse()
            .unwrap();
        let refused = |r: Result<Answer, StepError>| match r {
            Err(StepError::Refused(why)) => why,
            other => panic!("not refused: {other:?}"),
        };
        let why = refused(
            step.handle(Request::Profile {
                toplevel: toplevel.clone(),
            })
            .await,
        );
        assert!(why.contains("neither verified"), "{why}");
        let why = refused(step.handle(Request::Switch { toplevel }).await);
        assert!(why.contains("points at nothing"), "{why}");
        let why = refused(
            step.handle(Request::Restart {
                vms: vec!["dns".into(), "x; reboot".into()],
            })
            .await,
        );
        assert!(why.contains("not a VM name"), "{why}");
        let why = refused(
            step.handle(Request::Import {
                host: "other".into(),
                channel: "stable".into(),
                generation: 1,
            })
            .await,
        );
        assert!(why.contains("this is \"roost\""), "{why}");
    }
}
