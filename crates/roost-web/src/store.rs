//! The numbered settings versions on the web VM's state volume.
//!
//! `settings/000007.toml` is version 7: a header line of metadata (`# roost-settings {json}`:
//! when it was saved, what changed, whether the daemons took it) and then the settings as TOML.
//! Every file is written to a temporary name, fsynced, renamed into place and the directory
//! fsynced, so after a power cut a version is either whole or absent.
//!
//! The **current** version is the newest one not marked failed. A change is saved *before* it
//! is pushed (status `pending`), so when the power goes mid-push the controller pushes the same
//! version again on start; a version the daemons refused is kept, marked `failed` with the
//! reason, so the history shows what was tried. Restoring version k saves a copy of k as a new
//! version: history only grows, bounded by [`MAX_VERSIONS`] (the oldest go first).

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use roost_config::Settings;
use serde::{Deserialize, Serialize};

/// Versions kept; saving beyond it deletes the oldest.
pub const MAX_VERSIONS: usize = 200;
/// Largest settings file read back (a bound, far above any real router's settings).
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;
const HEADER: &str = "# roost-settings ";

/// Whether the daemons took a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", tag = "state", content = "reason")]
pub enum Status {
    /// Saved, not yet confirmed by every affected daemon.
    Pending,
    /// Every affected daemon applied it and stayed healthy.
    Applied,
    /// A daemon refused it or turned unhealthy; every daemon was put back. The reason.
    Failed(String),
}

/// What is known about one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VersionInfo {
    /// Its number; the first is 1.
    pub number: u32,
    /// When it was saved, in seconds since the Unix epoch.
    pub saved_at: u64,
    /// What changed, in a few words.
    pub summary: String,
    /// Whether the daemons took it.
    pub status: Status,
}

/// Reading or writing the versions failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file or directory could not be read or written.
    #[error("settings store {path}: {source}")]
    Io {
        /// Which.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A version file is not valid.
    #[error("settings version {path} is damaged: {why}")]
    Damaged {
        /// Which.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// No such version.
    #[error("there is no settings version {0}")]
    NoSuchVersion(u32),
}

/// The versions in one directory.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    /// Oldest first.
    versions: Vec<VersionInfo>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Store {
    /// Opens the versions in `dir` (made if missing). When there is none yet, `initial` (the
    /// settings the VM was built with) becomes version 1, marked applied since the daemons
    /// were started with it. Damaged files (a torn write cannot leave one; a disk fault can)
    /// are skipped with a warning rather than blocking the UI.
    pub fn open(dir: &Path, initial: &Settings) -> Result<Self, StoreError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let mut versions = Vec::new();
        for entry in fs::read_dir(dir).map_err(io(dir))? {
            let entry = entry.map_err(io(dir))?;
            let name = entry.file_name();
            let Some(number) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".toml"))
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            match read_info(&entry.path(), number) {
                Ok(info) => versions.push(info),
                Err(e) => tracing::warn!(error = %e, "skipping a settings version"),
            }
        }
        versions.sort_by_key(|v| v.number);
        let mut store = Self {
            dir: dir.to_owned(),
            versions,
        };
        if store.versions.is_empty() {
            let n = store.save(initial, "settings the router was built with")?;
            store.mark(n, Status::Applied)?;
        }
        Ok(store)
    }

    /// Every version, oldest first.
    pub fn versions(&self) -> &[VersionInfo] {
        &self.versions
    }

    /// The newest version not marked failed.
    pub fn current(&self) -> Option<&VersionInfo> {
        self.versions
            .iter()
            .rev()
            .find(|v| !matches!(v.status, Status::Failed(_)))
    }

    /// The settings of version `number`.
    pub fn load(&self, number: u32) -> Result<Settings, StoreError> {
        if !self.versions.iter().any(|v| v.number == number) {
            return Err(StoreError::NoSuchVersion(number));
        }
        let path = self.path(number);
        let text = read_bounded(&path)?;
        let (_, body) = split_header(&path, &text)?;
        Settings::from_toml(&path.display().to_string(), body).map_err(|e| StoreError::Damaged {
            path: path.clone(),
            why: e.to_string(),
        })
    }

    /// Saves `settings` as a new version, `pending`; returns its number.
    pub fn save(&mut self, settings: &Settings, summary: &str) -> Result<u32, StoreError> {
        let number = self.versions.last().map_or(1, |v| v.number + 1);
        let info = VersionInfo {
            number,
            saved_at: unix_now(),
            summary: summary.chars().take(200).collect(),
            status: Status::Pending,
        };
        self.write(&info, &settings.to_toml())?;
        self.versions.push(info);
        self.prune()?;
        Ok(number)
    }

    /// Records whether the daemons took version `number`.
    pub fn mark(&mut self, number: u32, status: Status) -> Result<(), StoreError> {
        let path = self.path(number);
        let text = read_bounded(&path)?;
        let (_, body) = split_header(&path, &text)?;
        let body = body.to_owned();
        let index = self
            .versions
            .iter()
            .position(|v| v.number == number)
            .ok_or(StoreError::NoSuchVersion(number))?;
        let mut info = self.versions[index].clone();
        info.status = status;
        self.write(&info, &body)?;
        self.versions[index] = info;
        Ok(())
    }

    fn path(&self, number: u32) -> PathBuf {
        self.dir.join(format!("{number:06}.toml"))
    }

    fn write(&self, info: &VersionInfo, body: &str) -> Result<(), StoreError> {
        let header = serde_json::to_string(info).map_err(|e| StoreError::Damaged {
            path: self.path(info.number),
            why: e.to_string(),
        })?;
        let path = self.path(info.number);
        let tmp = self.dir.join(format!(".{:06}.toml.tmp", info.number));
        let mut file = fs::File::create(&tmp).map_err(io(&tmp))?;
        file.write_all(format!("{HEADER}{header}\n{body}").as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(io(&tmp))?;
        fs::rename(&tmp, &path).map_err(io(&path))?;
        fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))
    }

    fn prune(&mut self) -> Result<(), StoreError> {
        while self.versions.len() > MAX_VERSIONS {
            let oldest = self.versions.remove(0);
            let path = self.path(oldest.number);
            fs::remove_file(&path).map_err(io(&path))?;
        }
        Ok(())
    }
}

fn read_bounded(path: &Path) -> Result<String, StoreError> {
    let len = fs::metadata(path).map_err(io(path))?.len();
    if len > MAX_FILE_BYTES {
        return Err(StoreError::Damaged {
            path: path.to_owned(),
            why: format!("{len} bytes, more than {MAX_FILE_BYTES}"),
        });
    }
    fs::read_to_string(path).map_err(io(path))
}

fn split_header<'a>(path: &Path, text: &'a str) -> Result<(VersionInfo, &'a str), StoreError> {
    let damaged = |why: String| StoreError::Damaged {
        path: path.to_owned(),
        why,
    };
    let (first, body) = text
        .split_once('\n')
        .ok_or_else(|| damaged("no header line".to_owned()))?;
    let json = first
        .strip_prefix(HEADER)
        .ok_or_else(|| damaged("no `# roost-settings` header".to_owned()))?;
    let info = serde_json::from_str(json).map_err(|e| damaged(e.to_string()))?;
    Ok((info, body))
}

fn read_info(path: &Path, number: u32) -> Result<VersionInfo, StoreError> {
    let text = read_bounded(path)?;
    let (info, _) = split_header(path, &text)?;
    if info.number != number {
        return Err(StoreError::Damaged {
            path: path.to_owned(),
            why: format!("its header says version {}", info.number),
        });
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        let text = include_str!("../../../examples/roost.toml");
        Settings::from_toml("examples/roost.toml", text).unwrap()
    }

    #[test]
    fn first_open_saves_the_built_settings_as_version_one_applied() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings();
        let store = Store::open(dir.path(), &s).unwrap();
        let current = store.current().unwrap();
        assert_eq!(current.number, 1);
        assert_eq!(current.status, Status::Applied);
        assert_eq!(store.load(1).unwrap(), s);
    }

    #[test]
    fn versions_survive_reopening_and_failed_ones_are_not_current() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = settings();
        let mut store = Store::open(dir.path(), &s).unwrap();
        s.router.hostname = "second".to_owned();
        let two = store.save(&s, "rename").unwrap();
        store.mark(two, Status::Applied).unwrap();
        s.router.hostname = "third".to_owned();
        let three = store.save(&s, "rename again").unwrap();
        store
            .mark(three, Status::Failed("dhcp: refused".to_owned()))
            .unwrap();
        drop(store);

        let store = Store::open(dir.path(), &settings()).unwrap();
        assert_eq!(store.versions().len(), 3);
        assert_eq!(store.current().unwrap().number, 2);
        assert_eq!(store.load(2).unwrap().router.hostname, "second");
        assert_eq!(
            store.versions()[2].status,
            Status::Failed("dhcp: refused".to_owned())
        );
        assert_eq!(store.versions()[2].summary, "rename again");
    }

    #[test]
    fn a_pending_version_is_current_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = settings();
        let mut store = Store::open(dir.path(), &s).unwrap();
        s.router.hostname = "pending".to_owned();
        store.save(&s, "mid-push").unwrap();
        drop(store);
        let store = Store::open(dir.path(), &settings()).unwrap();
        let current = store.current().unwrap();
        assert_eq!((current.number, &current.status), (2, &Status::Pending));
    }

    #[test]
    fn a_damaged_or_stray_file_is_skipped_and_temporaries_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings();
        drop(Store::open(dir.path(), &s).unwrap());
        fs::write(dir.path().join("000002.toml"), "garbage").unwrap();
        fs::write(dir.path().join(".000003.toml.tmp"), "half").unwrap();
        fs::write(dir.path().join("notes.txt"), "x").unwrap();
        let store = Store::open(dir.path(), &s).unwrap();
        assert_eq!(store.versions().len(), 1);
        assert!(matches!(store.load(2), Err(StoreError::NoSuchVersion(2))));
    }

    #[test]
    fn history_is_bounded_dropping_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings();
        let mut store = Store::open(dir.path(), &s).unwrap();
        for _ in 0..MAX_VERSIONS + 5 {
            store.save(&s, "same").unwrap();
        }
        assert_eq!(store.versions().len(), MAX_VERSIONS);
        assert_eq!(store.versions()[0].number, 7);
        let files = fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(files, MAX_VERSIONS);
    }
}
