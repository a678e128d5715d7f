//! `roost-update tuf-client`: the tuf-conformance "client-under-test" protocol
//! (theupdateframework/tuf-conformance, CLIENT-CLI.md) on top of [`crate::client`].
//!
//! - `init ROOT`: copies the trusted root to `METADATA_DIR/root.json`; no network.
//! - `refresh`: the TUF client workflow; trusted metadata stays in `METADATA_DIR` under
//!   unversioned names (`root.json`, `timestamp.json`, `snapshot.json`, `targets.json`).
//! - `download`: refresh, then fetch and verify one target into `TARGET_DIR`, named by the
//!   percent-encoded target path; an already present file with the signed length and sha256
//!   is not fetched again.

use std::path::{Path, PathBuf};

use url::Url;

use crate::client::{Client, ClientError};
use crate::nix::hash_reader;

/// A tuf-client command failed.
#[derive(Debug, thiserror::Error)]
pub enum TufClientError {
    /// Local files.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The client workflow failed.
    #[error(transparent)]
    Client(#[from] ClientError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TufClientError + '_ {
    move |source| TufClientError::Io {
        path: path.to_owned(),
        source,
    }
}

/// `init`: trust `root` from now on.
pub fn init(metadata_dir: &Path, root: &Path) -> Result<(), TufClientError> {
    std::fs::create_dir_all(metadata_dir).map_err(io(metadata_dir))?;
    let bytes = std::fs::read(root).map_err(io(root))?;
    let dest = metadata_dir.join("root.json");
    std::fs::write(&dest, bytes).map_err(io(&dest))
}

fn client(
    metadata_dir: &Path,
    metadata_url: Url,
    targets_url: Url,
) -> Result<Client, TufClientError> {
    let root_path = metadata_dir.join("root.json");
    let root = std::fs::read(&root_path).map_err(io(&root_path))?;
    Ok(Client::new(
        root,
        metadata_url,
        targets_url,
        metadata_dir.to_owned(),
    ))
}

/// `refresh`: update the trusted metadata.
pub async fn refresh(metadata_dir: &Path, metadata_url: Url) -> Result<(), TufClientError> {
    let client = client(metadata_dir, metadata_url.clone(), metadata_url)?;
    client.refresh().await?;
    Ok(())
}

/// The file name a target is stored under: like Python's `urllib.parse.quote(name, safe="")`.
pub fn target_file_name(name: &str) -> String {
    let mut out = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"_.-~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `download`: refresh, then fetch and verify `target_name` into `target_dir`.
pub async fn download(
    metadata_dir: &Path,
    metadata_url: Url,
    target_name: &str,
    target_base_url: Url,
    target_dir: &Path,
) -> Result<PathBuf, TufClientError> {
    let verified = client(metadata_dir, metadata_url, target_base_url)?
        .refresh()
        .await?;
    let (length, digest) = verified.target_info(target_name)?;
    std::fs::create_dir_all(target_dir).map_err(io(target_dir))?;
    let dest = target_dir.join(target_file_name(target_name));
    if let Ok(file) = std::fs::File::open(&dest)
        && let Ok((hash, len)) = hash_reader(std::io::BufReader::new(file))
        && hash == digest
        && len == length
    {
        return Ok(dest);
    }
    let bytes = verified.fetch_target(target_name).await?;
    let mut tmp = tempfile::NamedTempFile::new_in(target_dir).map_err(io(target_dir))?;
    std::io::Write::write_all(&mut tmp, &bytes).map_err(io(&dest))?;
    tmp.persist(&dest).map_err(|e| TufClientError::Io {
        path: dest.clone(),
        source: e.error,
    })?;
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_file_names_are_quoted_like_python() {
        assert_eq!(target_file_name("a/b c.txt"), "a%2Fb%20c.txt");
        assert_eq!(target_file_name("r1/stable/3.json"), "r1%2Fstable%2F3.json");
    }
}
