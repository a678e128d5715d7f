//! The UI's certificate: the configured one (`web.tls`), or a self-signed one made on first
//! start and kept in the state directory (`tls/cert.pem`, `tls/key.pem`, the key mode 0600),
//! valid for the router's name and every zone's router address, so browsers show the same
//! certificate (and its fingerprint can be pinned) across restarts.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use roost_config::Settings;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Setting up TLS failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// Which file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A certificate or key is not usable.
    #[error("{path}: {why}")]
    Invalid {
        /// Which file.
        path: PathBuf,
        /// Why.
        why: String,
    },
}

/// The certificate and key files to serve: `web.tls` if set, else the self-signed pair in
/// `state_dir/tls`, made now if missing.
pub fn certificate_files(
    settings: &Settings,
    state_dir: &Path,
) -> Result<(PathBuf, PathBuf), TlsError> {
    if let Some(files) = &settings.web.tls {
        return Ok((files.cert.clone(), files.key.clone()));
    }
    let dir = state_dir.join("tls");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| TlsError::Io { path, source }
    };
    fs::create_dir_all(&dir).map_err(io(&dir))?;
    sync_dir(state_dir).map_err(io(state_dir))?;
    let mut names = vec![
        settings.router.hostname.clone(),
        format!("{}.{}", settings.router.hostname, settings.router.domain),
    ];
    names.extend(settings.zones.values().map(|z| z.router.to_string()));
    names.extend(
        settings
            .zones
            .keys()
            .filter_map(|name| Some(settings.zone_ipv6(name)?.router.to_string())),
    );
    let invalid = |why: String| TlsError::Invalid {
        path: cert.clone(),
        why,
    };
    let key_pair = rcgen::KeyPair::generate().map_err(|e| invalid(e.to_string()))?;
    let mut params = rcgen::CertificateParams::new(names).map_err(|e| invalid(e.to_string()))?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("{} (Roost router)", settings.router.hostname),
    );
    let issued = params
        .self_signed(&key_pair)
        .map_err(|e| invalid(e.to_string()))?;
    // Key first, private from its first byte; the certificate's presence marks the pair whole.
    write_new(&key, key_pair.serialize_pem().as_bytes(), 0o600).map_err(io(&key))?;
    write_new(&cert, issued.pem().as_bytes(), 0o644).map_err(io(&cert))?;
    tracing::info!(cert = %cert.display(), "made a self-signed certificate");
    Ok((cert, key))
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path)?;
    // The rename must reach the disk too: after a power cut the pair would else be made
    // again, and a pinned fingerprint would no longer match.
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// A TLS acceptor for `cert` and `key` (PEM).
pub fn acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
    let read = |path: &Path| {
        fs::read(path).map_err(|source| TlsError::Io {
            path: path.to_owned(),
            source,
        })
    };
    let invalid = |path: &Path, why: String| TlsError::Invalid {
        path: path.to_owned(),
        why,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read(cert)?)
        .collect::<Result<_, _>>()
        .map_err(|e| invalid(cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(invalid(cert, "no certificate in the file".to_owned()));
    }
    let private =
        PrivateKeyDer::from_pem_slice(&read(key)?).map_err(|e| invalid(key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, private)
        .map_err(|e| invalid(key, e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings::from_toml("example", include_str!("../../../examples/roost.toml")).unwrap()
    }

    #[test]
    fn self_signed_certificate_is_made_once_with_a_private_key() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings();
        let (cert, key) = certificate_files(&s, dir.path()).unwrap();
        let first = fs::read(&cert).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        acceptor(&cert, &key).unwrap();
        // A restart keeps the same certificate.
        let (again, _) = certificate_files(&s, dir.path()).unwrap();
        assert_eq!(fs::read(again).unwrap(), first);
    }

    #[test]
    fn a_broken_certificate_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        fs::write(&cert, "not a certificate").unwrap();
        fs::write(&key, "not a key").unwrap();
        let e = acceptor(&cert, &key).err().unwrap().to_string();
        assert!(e.contains("cert.pem"), "{e}");
    }
}
