//! DNS-over-TLS to an upstream (RFC 7858): one TLS connection per server, reused and pipelined
//! (RFC 7766 §6.2.1.1: many queries in flight, answers matched by ID in any order), closed after
//! [`IDLE_TIMEOUT`] without queries, and bounded to [`MAX_PIPELINED`] queries in flight.
//!
//! The certificate is checked against the system roots plus `dns.tls_ca_file`, and must name
//! the upstream's `tls_name` (rustls with aws-lc-rs, the one crypto backend). A failed
//! connection or exchange is an ordinary upstream failure: it feeds the server's health
//! tracking and the next server is tried.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A connection with no query in flight for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Queries in flight on one connection; more wait for a slot.
pub const MAX_PIPELINED: usize = 64;
/// TCP connect plus TLS handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The TLS client settings could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// The CA file could not be read or holds no certificate.
    #[error("cannot read tls_ca_file {path}: {reason}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// No trusted root at all (no system roots, no CA file).
    #[error("no trusted root certificates for dns-over-tls (system roots empty, no tls_ca_file)")]
    NoRoots,
    /// rustls refused the settings.
    #[error("tls settings: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Client settings: the system roots, plus the certificates in `ca_file`.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsConfigError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (added, _ignored) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(
        added,
        errors = native.errors.len(),
        "system root certificates"
    );
    if let Some(path) = ca_file {
        let ca_err = |reason: String| TlsConfigError::CaFile {
            path: path.to_owned(),
            reason,
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| ca_err(e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| ca_err(e.to_string()))?;
        if certs.is_empty() {
            return Err(ca_err("no certificate in the file".into()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| ca_err(e.to_string()))?;
        }
    }
    if roots.is_empty() {
        return Err(TlsConfigError::NoRoots);
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

type Pending = Arc<Mutex<HashMap<u16, oneshot::Sender<Vec<u8>>>>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One open TLS connection: a writer task fed by `tx`, a reader task that hands answers to
/// `pending` by ID.
struct Conn {
    tx: mpsc::Sender<Vec<u8>>,
    pending: Pending,
    closed: Arc<AtomicBool>,
    slots: Arc<Semaphore>,
}

/// The DoT side of one upstream server.
pub struct DotClient {
    addr: SocketAddr,
    name: ServerName<'static>,
    connector: TlsConnector,
    conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
}

impl std::fmt::Debug for DotClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DotClient")
            .field("addr", &self.addr)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl DotClient {
    /// A client for `addr` whose certificate must name `tls_name`.
    pub fn new(
        addr: SocketAddr,
        tls_name: &str,
        config: Arc<rustls::ClientConfig>,
    ) -> Result<Self, String> {
        let name = ServerName::try_from(tls_name.to_owned())
            .map_err(|e| format!("tls_name {tls_name}: {e}"))?;
        Ok(Self {
            addr,
            name,
            connector: TlsConnector::from(config),
            conn: tokio::sync::Mutex::new(None),
        })
    }

    /// The open connection, or a new one.
    async fn connection(&self) -> Result<Arc<Conn>, String> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref()
            && !c.closed.load(Ordering::Acquire)
        {
            return Ok(Arc::clone(c));
        }
        *slot = None;
        let connect = async {
            let tcp = TcpStream::connect(self.addr)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let _ = tcp.set_nodelay(true);
            self.connector
                .connect(self.name.clone(), tcp)
                .await
                .map_err(|e| format!("tls handshake: {e}"))
        };
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| "tls connect timed out".to_owned())??;
        let conn = Arc::new(spawn_conn(stream, self.addr));
        *slot = Some(Arc::clone(&conn));
        Ok(conn)
    }

    /// Sends `query` (its ID is replaced by one free on the connection) and waits up to
    /// `timeout` for the answer with that ID. Returns the answer and the ID used.
    pub async fn exchange(
        &self,
        query: &[u8],
        timeout: Duration,
    ) -> Result<(Vec<u8>, u16), String> {
        let work = async {
            let conn = self.connection().await?;
            let _slot = Arc::clone(&conn.slots)
                .acquire_owned()
                .await
                .map_err(|_| "connection closed".to_owned())?;
            let (tx, rx) = oneshot::channel();
            let id = {
                let mut pending = lock(&conn.pending);
                let mut id: u16 = rand::random();
                while pending.contains_key(&id) {
                    id = rand::random();
                }
                pending.insert(id, tx);
                id
            };
            let mut framed = Vec::with_capacity(query.len() + 2);
            let len = u16::try_from(query.len()).map_err(|_| "query too long".to_owned())?;
            framed.extend_from_slice(&len.to_be_bytes());
            framed.extend_from_slice(query);
            framed[2..4].copy_from_slice(&id.to_be_bytes());
            if conn.tx.send(framed).await.is_err() {
                lock(&conn.pending).remove(&id);
                return Err("connection closed".to_owned());
            }
            let answer = rx.await.map_err(|_| "connection closed".to_owned())?;
            Ok((answer, id))
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| "dot timed out".to_owned())?
    }
}

fn spawn_conn(stream: TlsStream<TcpStream>, addr: SocketAddr) -> Conn {
    let (reader, writer) = tokio::io::split(stream);
    let (tx, rx) = mpsc::channel::<Vec<u8>>(MAX_PIPELINED);
    let pending: Pending = Arc::default();
    let closed = Arc::new(AtomicBool::new(false));
    tokio::spawn(write_loop(writer, rx, Arc::clone(&closed)));
    tokio::spawn(read_loop(
        reader,
        Arc::clone(&pending),
        Arc::clone(&closed),
        addr,
    ));
    Conn {
        tx,
        pending,
        closed,
        slots: Arc::new(Semaphore::new(MAX_PIPELINED)),
    }
}

async fn write_loop(
    mut writer: WriteHalf<TlsStream<TcpStream>>,
    mut rx: mpsc::Receiver<Vec<u8>>,
    closed: Arc<AtomicBool>,
) {
    while let Some(frame) = rx.recv().await {
        if closed.load(Ordering::Acquire) || writer.write_all(&frame).await.is_err() {
            break;
        }
    }
    closed.store(true, Ordering::Release);
    let _ = writer.shutdown().await;
}

/// Reads answers until the connection fails or stays idle; then marks it closed and drops
/// every waiting query (they fail at once and the next server is tried).
async fn read_loop(
    mut reader: ReadHalf<TlsStream<TcpStream>>,
    pending: Pending,
    closed: Arc<AtomicBool>,
    addr: SocketAddr,
) {
    loop {
        let len = match tokio::time::timeout(IDLE_TIMEOUT, reader.read_u16()).await {
            Ok(Ok(len)) => len,
            Ok(Err(e)) => {
                tracing::debug!(server = %addr, error = %e, "dot connection ended");
                break;
            }
            Err(_) if lock(&pending).is_empty() => {
                tracing::debug!(server = %addr, "dot connection idle: closing");
                break;
            }
            Err(_) => continue, // queries are waiting; each has its own timeout
        };
        let mut answer = vec![0u8; usize::from(len)];
        if reader.read_exact(&mut answer).await.is_err() {
            break;
        }
        let Some(id) = crate::wire::id_of(&answer) else {
            continue;
        };
        if let Some(tx) = lock(&pending).remove(&id) {
            let _ = tx.send(answer);
        }
    }
    closed.store(true, Ordering::Release);
    lock(&pending).clear();
}
