//! The edge to Nix, on the host: which store paths are valid, importing checked NARs, the
//! system profile and activation, restarting service VMs.
//!
//! Import: every NAR was checked against the manifest's NarSize and NarHash and copied into a
//! local `file://` binary cache the host step owns (with a narinfo for every path of the
//! closure, so Nix can compute the closure there), and `nix copy --from file://…
//! --no-check-sigs` imports the missing ones into the store. Signatures are not needed: the
//! bytes were checked against the TUF-signed manifest, which is stronger than a narinfo
//! signature.

use std::path::{Path, PathBuf};

use tokio::process::Command;

use crate::manifest::Manifest;
use crate::nix::StorePath;

use crate::durable::write_durable;

use super::HostSettings;

/// A store or profile operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A command could not run or failed.
    #[error("{command}: {reason}")]
    Command {
        /// The command line.
        command: String,
        /// Exit status and stderr, or the spawn error.
        reason: String,
    },
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The profile points at something that is not a store path.
    #[error("profile {path} points at {target}, not a store path")]
    BadProfile {
        /// The profile.
        path: PathBuf,
        /// Where it points.
        target: String,
    },
}

impl From<crate::durable::DurableError> for StoreError {
    fn from(e: crate::durable::DurableError) -> Self {
        Self::Io {
            path: e.path,
            source: e.source,
        }
    }
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// One generation of the system profile (`system-N-link`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileGeneration {
    /// N.
    pub number: u64,
    /// The toplevel it points at.
    pub toplevel: StorePath,
    /// Whether the profile points at it now.
    pub current: bool,
}

/// The Nix store and system profile the agent manages.
#[derive(Debug, Clone)]
pub struct Store {
    root: Option<PathBuf>,
    profile: PathBuf,
    bin: Option<PathBuf>,
    restart: Vec<String>,
}

impl Store {
    /// From the host step's settings.
    pub fn new(settings: &HostSettings) -> Self {
        Self {
            root: settings.store.clone(),
            profile: settings.profile.clone(),
            bin: settings.nix_bin.clone(),
            restart: settings.restart.clone(),
        }
    }

    /// Where a store path really is on this file system.
    pub fn physical(&self, path: &StorePath) -> PathBuf {
        let logical = PathBuf::from(path.to_string());
        match &self.root {
            Some(root) => root.join(logical.strip_prefix("/").unwrap_or(&logical)),
            None => logical,
        }
    }

    fn nix(&self, program: &str) -> Command {
        let program = match &self.bin {
            Some(dir) => dir.join(program),
            None => PathBuf::from(program),
        };
        let mut cmd = Command::new(program);
        if let Some(root) = &self.root {
            cmd.arg("--store").arg(root);
        }
        cmd.kill_on_drop(true);
        cmd
    }

    /// Of `paths`, those not valid in the store (asks Nix, not the directory).
    pub async fn missing(&self, paths: &[&StorePath]) -> Result<Vec<StorePath>, StoreError> {
        if paths.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = self.nix("nix-store");
        cmd.arg("--check-validity").arg("--print-invalid");
        for p in paths {
            cmd.arg(p.to_string());
        }
        let out = run(cmd, "nix-store --check-validity").await?;
        String::from_utf8_lossy(&out)
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                l.parse().map_err(|_| StoreError::Command {
                    command: "nix-store --check-validity".to_owned(),
                    reason: format!("printed {l:?}, not a store path"),
                })
            })
            .collect()
    }

    /// Imports `paths` from the local cache `incoming` (see the module doc).
    pub async fn import(
        &self,
        incoming: &Path,
        manifest: &Manifest,
        paths: &[StorePath],
    ) -> Result<(), StoreError> {
        if paths.is_empty() {
            return Ok(());
        }
        write_durable(
            &incoming.join("nix-cache-info"),
            b"StoreDir: /nix/store\nWantMassQuery: 0\nPriority: 50\n",
        )?;
        for (path, info) in &manifest.paths {
            let refs: Vec<String> = info.references.iter().map(StorePath::base_name).collect();
            let narinfo = format!(
                "StorePath: {path}\nURL: nar/{}.nar\nCompression: none\nNarHash: {}\nNarSize: {}\nReferences: {}\n",
                path.hash_part(),
                info.nar_hash,
                info.nar_size,
                refs.join(" ")
            );
            let file = incoming.join(format!("{}.narinfo", path.hash_part()));
            std::fs::write(&file, narinfo).map_err(io(&file))?;
        }
        let mut cmd = self.nix("nix");
        cmd.args(["--extra-experimental-features", "nix-command", "copy"])
            .arg("--no-check-sigs")
            .arg("--from")
            .arg(format!("file://{}", incoming.display()));
        for p in paths {
            cmd.arg(p.to_string());
        }
        run(cmd, "nix copy").await.map(|_| ())
    }

    /// The toplevel the system profile points at, if there is one.
    pub fn profile_target(&self) -> Result<Option<StorePath>, StoreError> {
        let target = match follow_links(&self.profile) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StoreError::Io {
                    path: self.profile.clone(),
                    source,
                });
            }
        };
        target
            .to_str()
            .and_then(|s| s.parse().ok())
            .map(Some)
            .ok_or_else(|| StoreError::BadProfile {
                path: self.profile.clone(),
                target: target.display().to_string(),
            })
    }

    /// Makes `toplevel` the profile's current generation (`nix-env -p PROFILE --set`).
    pub async fn set_profile(&self, toplevel: &StorePath) -> Result<(), StoreError> {
        if let Some(dir) = self.profile.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let mut cmd = self.nix("nix-env");
        cmd.arg("-p")
            .arg(&self.profile)
            .arg("--set")
            .arg(toplevel.to_string());
        run(cmd, "nix-env --set").await.map(|_| ())
    }

    /// The system profile's generations, oldest first: number, toplevel, and whether it is
    /// the current one.
    pub fn generations(&self) -> Result<Vec<ProfileGeneration>, StoreError> {
        let dir = self.profile.parent().unwrap_or(Path::new("/"));
        let name = self
            .profile
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("system");
        let current = std::fs::read_link(&self.profile).ok();
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(dir)(e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io(dir))?;
            let file = entry.file_name();
            let Some(number) = file
                .to_str()
                .and_then(|f| {
                    f.strip_prefix(name)?
                        .strip_prefix('-')?
                        .strip_suffix("-link")
                })
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            let Some(toplevel) = follow_links(&entry.path())
                .ok()
                .and_then(|t| t.to_str().and_then(|t| t.parse::<StorePath>().ok()))
            else {
                continue;
            };
            out.push(ProfileGeneration {
                number,
                toplevel,
                current: current.as_deref() == Some(Path::new(&file)),
            });
        }
        out.sort_by_key(|g| g.number);
        Ok(out)
    }

    /// Drops `toplevels` from the system profile (their profile generations, never the
    /// current one) and collects garbage: store paths no root reaches any more are deleted.
    /// What Nix said it freed.
    pub async fn collect(&self, toplevels: &[StorePath]) -> Result<String, StoreError> {
        let numbers: Vec<String> = self
            .generations()?
            .into_iter()
            .filter(|g| !g.current && toplevels.contains(&g.toplevel))
            .map(|g| g.number.to_string())
            .collect();
        if !numbers.is_empty() {
            let mut cmd = self.nix("nix-env");
            cmd.arg("-p")
                .arg(&self.profile)
                .arg("--delete-generations")
                .args(&numbers);
            run(cmd, "nix-env --delete-generations").await?;
        }
        let mut cmd = self.nix("nix-store");
        cmd.arg("--gc");
        let out = run(cmd, "nix-store --gc").await?;
        Ok(String::from_utf8_lossy(&out)
            .lines()
            .last()
            .unwrap_or("")
            .to_owned())
    }

    /// Activates `toplevel`: `<toplevel>/bin/switch-to-configuration switch`.
    pub async fn activate(&self, toplevel: &StorePath) -> Result<(), StoreError> {
        let program = self.physical(toplevel).join("bin/switch-to-configuration");
        let mut cmd = Command::new(&program);
        cmd.arg("switch").kill_on_drop(true);
        run(cmd, &format!("{} switch", program.display()))
            .await
            .map(|_| ())
    }

    /// Restarts one service VM with the configured command.
    pub async fn restart_vm(&self, vm: &str) -> Result<(), StoreError> {
        let argv: Vec<String> = self.restart.iter().map(|a| a.replace("{vm}", vm)).collect();
        let Some((program, args)) = argv.split_first() else {
            return Ok(());
        };
        let mut cmd = Command::new(program);
        cmd.args(args).kill_on_drop(true);
        run(cmd, &argv.join(" ")).await.map(|_| ())
    }
}

/// Follows a chain of symlinks until it reaches a `/nix/store` path, without requiring that
/// path to exist here (with a chroot store it lives under the store root).
fn follow_links(path: &Path) -> std::io::Result<PathBuf> {
    let mut current = path.to_owned();
    for _ in 0..16 {
        match std::fs::read_link(&current) {
            Ok(next) => {
                current = if next.is_absolute() {
                    next
                } else {
                    current.parent().unwrap_or(Path::new("/")).join(next)
                };
                if current.starts_with(crate::nix::STORE_DIR) {
                    return Ok(current);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => return Ok(current),
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("too many levels of symbolic links"))
}

async fn run(mut cmd: Command, what: &str) -> Result<Vec<u8>, StoreError> {
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| StoreError::Command {
            command: what.to_owned(),
            reason: e.to_string(),
        })?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        Err(StoreError::Command {
            command: what.to_owned(),
            reason: format!(
                "{}: {}",
                out.status,
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ),
        })
    }
}
