//! Signing keys: ed25519, stored as PKCS#8 PEM files (`-----BEGIN PRIVATE KEY-----`).
//!
//! tough's own `LocalKeySource` reads ed25519 keys only as raw PKCS#8 DER; [`PemKey`] decodes
//! the PEM armour first and hands the DER to `tough::sign::parse_keypair`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::Ed25519KeyPair;
use tough::key_source::KeySource;
use tough::schema::key::Key;
use tough::sign::Sign;

/// A key could not be created or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Key generation failed in the crypto library.
    #[error("cannot generate an ed25519 key")]
    Generate,
    /// The file exists already (keys are never overwritten).
    #[error("cannot write key {path}: {source}")]
    Write {
        /// The key file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file could not be read or is not a key.
    #[error("cannot use key {path}: {reason}")]
    Read {
        /// The key file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// A private key in a PKCS#8 PEM file.
#[derive(Debug, Clone)]
pub struct PemKey {
    /// The file.
    pub path: PathBuf,
}

impl PemKey {
    /// Refers to an existing key file.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Generates a new ed25519 key into `path` (mode 0600; fails if the file exists).
    pub fn generate(path: impl Into<PathBuf>) -> Result<Self, KeyError> {
        let path = path.into();
        let der =
            Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| KeyError::Generate)?;
        let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref().to_vec()));
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)?;
            file.write_all(pem.as_bytes())?;
            file.sync_all()
        };
        write().map_err(|source| KeyError::Write {
            path: path.clone(),
            source,
        })?;
        Ok(Self { path })
    }

    /// Loads the signer.
    pub fn signer(&self) -> Result<Box<dyn Sign>, KeyError> {
        let read_err = |reason: String| KeyError::Read {
            path: self.path.clone(),
            reason,
        };
        let text = std::fs::read(&self.path).map_err(|e| read_err(e.to_string()))?;
        let pem = pem::parse(&text).map_err(|e| read_err(format!("not PEM: {e}")))?;
        if pem.tag() != "PRIVATE KEY" {
            return Err(read_err(format!(
                "PEM block is {:?}, expected PRIVATE KEY (PKCS#8)",
                pem.tag()
            )));
        }
        let signer = tough::sign::parse_keypair(pem.contents())
            .map_err(|e| read_err(format!("not a PKCS#8 ed25519/ecdsa key: {e}")))?;
        Ok(Box::new(signer))
    }

    /// The public key as TUF metadata lists it.
    pub fn public(&self) -> Result<Key, KeyError> {
        Ok(self.signer()?.tuf_key())
    }

    /// As a tough key source.
    pub fn source(&self) -> Box<dyn KeySource> {
        Box::new(self.clone())
    }
}

#[tough::async_trait]
impl KeySource for PemKey {
    async fn as_sign(
        &self,
    ) -> Result<Box<dyn Sign>, Box<dyn std::error::Error + Send + Sync + 'static>> {
        Ok(self.signer()?)
    }

    async fn write(
        &self,
        _value: &str,
        _key_id_hex: &str,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        Err("roost-update never rewrites key files".into())
    }
}

/// The key files of a repository in one directory, as `roost-update keys init` writes them:
/// `root-1.pem` .. `root-N.pem`, `targets.pem`, `snapshot.pem`, `timestamp.pem`.
///
/// In production the root keys move to offline media right after `init`; the targets key stays
/// on the build host; the snapshot and timestamp keys are online.
#[derive(Debug, Clone)]
pub struct KeyDir {
    /// The directory.
    pub dir: PathBuf,
}

impl KeyDir {
    /// Key files under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// Root key `i` (1-based).
    pub fn root(&self, i: usize) -> PemKey {
        PemKey::new(self.dir.join(format!("root-{i}.pem")))
    }

    /// The targets key.
    pub fn targets(&self) -> PemKey {
        PemKey::new(self.dir.join("targets.pem"))
    }

    /// The snapshot key.
    pub fn snapshot(&self) -> PemKey {
        PemKey::new(self.dir.join("snapshot.pem"))
    }

    /// The timestamp key.
    pub fn timestamp(&self) -> PemKey {
        PemKey::new(self.dir.join("timestamp.pem"))
    }

    /// The root keys present, in order.
    pub fn root_keys(&self) -> Vec<PemKey> {
        (1..)
            .map(|i| self.root(i))
            .take_while(|k| k.path.exists())
            .collect()
    }
}

/// Whether a path exists (for the CLI's "generate unless present").
pub fn exists(path: &Path) -> bool {
    path.exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_pem_key_loads_and_signs() {
        let dir = tempfile::tempdir().unwrap();
        let key = PemKey::generate(dir.path().join("test-key.pem")).unwrap();
        let public = key.public().unwrap();
        assert!(matches!(public, Key::Ed25519 { .. }));
        assert!(PemKey::generate(&key.path).is_err(), "overwrote a key");
    }
}
