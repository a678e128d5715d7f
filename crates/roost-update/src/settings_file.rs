//! The platform files of the agent (`update-system.toml`) and of the host step
//! (`update-host.toml`): written by the Nix modules, not from `roost.toml`, and read the same way.

use std::path::{Path, PathBuf};

/// A platform file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsFileError {
    /// Unreadable.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why (with the key and line).
        message: String,
    },
}

impl SettingsFileError {
    /// `path` is not valid: `message` says why.
    pub fn invalid(path: &Path, message: impl Into<String>) -> Self {
        Self::Invalid {
            path: path.to_owned(),
            message: message.into(),
        }
    }
}

/// Parses `text` (from `origin`) with every key checked.
pub fn parse<T: serde::de::DeserializeOwned>(
    origin: &Path,
    text: &str,
) -> Result<T, SettingsFileError> {
    toml::from_str(text).map_err(|e| SettingsFileError::invalid(origin, e.to_string()))
}

/// Reads `path`; `None` when there is no such file.
pub fn read(path: &Path) -> Result<Option<String>, SettingsFileError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SettingsFileError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}
