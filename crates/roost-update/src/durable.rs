//! Durable files: what is written survives a power cut whole or not at all.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A durable write failed.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct DurableError {
    /// The file (or its directory).
    pub path: PathBuf,
    /// Why.
    pub source: std::io::Error,
}

/// Writes `data` to `path` durably: temp file, fsync, rename, fsync of the directory.
pub fn write_durable(path: &Path, data: &[u8]) -> Result<(), DurableError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let at = |p: &Path| {
        let p = p.to_owned();
        move |source| DurableError { path: p, source }
    };
    std::fs::create_dir_all(dir).map_err(at(dir))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(at(dir))?;
    tmp.write_all(data).map_err(at(path))?;
    tmp.as_file().sync_all().map_err(at(path))?;
    tmp.persist(path).map_err(|e| at(path)(e.error))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(at(dir))?;
    Ok(())
}
