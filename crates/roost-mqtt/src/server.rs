//! The IO edge: listeners (plain and TLS), one task per connection (framing, CONNECT and
//! authentication, bounded outgoing queue), the broker task that owns the [`Broker`] core, the
//! snapshot writer thread, and the control API's handlers.
//!
//! Bounds: connections in all and per client address (refused at accept), a CONNECT within
//! 10 s, packets up to the core's maximum packet size (larger ones close the connection before
//! they are read), 1024 packets queued to each client (a QoS 0 delivery beyond is dropped and
//! counted, anything else closes that client), 30 s to write to a client, two argon2 checks at
//! once, 4096 events queued to the broker task (readers wait, so a flood slows its sender).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use roost_config::View as _;
use roost_config::settings::MqttListener;
use roost_config::views::{MqttView, ZoneNet};
use roost_control::ConfigRejected;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, Disconnect, DisconnectReasonCode, Packet};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::auth::Users;
use crate::codec::{self, DecodeError, Version};
use crate::core::{Action, Broker, ClientInfo, ConnId, Limits, Login, Perms, Stats};
use crate::store;

const OUT_QUEUE: usize = 1024;
const EVENT_QUEUE: usize = 4096;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// The view could not be turned into a running broker.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A TLS listener without `[tls]` files.
    #[error("listener for zone {0} wants TLS but the view has no tls cert and key")]
    NoTlsFiles(String),
    /// A certificate or key file could not be used.
    #[error("tls file {path}: {why}")]
    Tls {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// A limit is zero.
    #[error("mqtt limit {0} must be at least 1")]
    ZeroLimit(&'static str),
    /// A listener port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Two listeners share a port but not its kind (TLS or not, WebSocket or not).
    #[error("port {0} has listeners of different kinds (TLS or not, WebSocket or not)")]
    MixedPort(u16),
}

/// What changes with `PUT /config` without a restart.
struct Runtime {
    view: MqttView,
    users: Arc<Users>,
}

/// State shared by the tasks.
pub struct Shared {
    runtime: RwLock<Arc<Runtime>>,
    events: mpsc::Sender<Event>,
    per_address: Mutex<HashMap<IpAddr, u32>>,
    open: AtomicU64,
    next_conn: AtomicU64,
    auth_slots: Semaphore,
    /// Connections refused at accept (limits, zone without a listener).
    pub refused: AtomicU64,
    /// Logins refused.
    pub auth_failures: AtomicU64,
    /// Connections closed for malformed or oversized packets.
    pub malformed: AtomicU64,
    /// The accept loops of the listeners in force, stopped when `PUT /config` replaces them.
    accepting: Mutex<Vec<tokio::task::AbortHandle>>,
}

enum Event {
    Connect {
        conn: ConnId,
        login: Login,
        tx: mpsc::Sender<Bytes>,
        version: Version,
    },
    Packet(ConnId, Packet),
    Closed(ConnId),
    Query(oneshot::Sender<Report>),
    Limits(Limits),
    Telemetry(Vec<(String, Bytes)>),
    Shutdown(oneshot::Sender<()>),
}

/// What `/metrics` and `/state` show.
#[derive(Debug, Clone)]
pub struct Report {
    stats: Stats,
    clients: Vec<ClientInfo>,
    sessions: usize,
    retained: usize,
    retained_bytes: u64,
}

fn check_view(view: &MqttView) -> Result<Limits, SetupError> {
    let l = &view.limits;
    for (name, v) in [
        ("max_connections", u64::from(l.max_connections)),
        (
            "max_connections_per_address",
            u64::from(l.max_connections_per_address),
        ),
        ("max_message_bytes", u64::from(l.max_message_bytes)),
        ("max_inflight", u64::from(l.max_inflight)),
    ] {
        if v == 0 {
            return Err(SetupError::ZeroLimit(name));
        }
    }
    if let Some(l) = view.listeners.iter().find(|l| l.tls && view.tls.is_none()) {
        return Err(SetupError::NoTlsFiles(l.zone.clone()));
    }
    Ok(Limits::from_view(&view.limits))
}

fn tls_acceptor(view: &MqttView) -> Result<Option<tokio_rustls::TlsAcceptor>, SetupError> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let Some(files) = view
        .tls
        .as_ref()
        .filter(|_| view.listeners.iter().any(|l| l.tls))
    else {
        return Ok(None);
    };
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| SetupError::Tls {
            path: path.to_owned(),
            why: e.to_string(),
        })
    };
    let bad = |path: &Path, why: String| SetupError::Tls {
        path: path.to_owned(),
        why,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read(&files.cert)?)
        .collect::<Result<_, _>>()
        .map_err(|e| bad(&files.cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(bad(&files.cert, "no certificate in the file".to_owned()));
    }
    let key = PrivateKeyDer::from_pem_slice(&read(&files.key)?)
        .map_err(|e| bad(&files.key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(&files.cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad(&files.key, e.to_string()))?;
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
}

/// A bound listener socket and the listeners (zones) it serves.
struct Bound {
    socket: TcpListener,
    port: u16,
    tls: bool,
    /// MQTT over WebSocket on this socket.
    websocket: bool,
    /// For a port-0 listener (tests): the one listener it serves.
    only: Option<MqttListener>,
}

async fn bind_listeners(view: &MqttView) -> Result<Vec<Bound>, SetupError> {
    let ip = IpAddr::V4(*view.control.listen.ip());
    let mut groups: Vec<(u16, (bool, bool), Option<MqttListener>)> = Vec::new();
    for l in &view.listeners {
        let port = l.effective_port();
        let kind = (l.tls, l.websocket);
        if port == 0 {
            groups.push((0, kind, Some(l.clone())));
            continue;
        }
        match groups.iter().find(|g| g.0 == port) {
            Some(g) if g.1 != kind => return Err(SetupError::MixedPort(port)),
            Some(_) => {}
            None => groups.push((port, kind, None)),
        }
    }
    // Every port on the link's IPv6 address too, when it has one (not the tests' port 0).
    let ip6 = view.network.link_address6().map(IpAddr::V6);
    let groups: Vec<_> = groups
        .into_iter()
        .flat_map(|(port, kind, only)| {
            let v6 = ip6.filter(|_| port != 0).map(|ip6| (ip6, port, kind, None));
            std::iter::once((ip, port, kind, only)).chain(v6)
        })
        .collect();
    let mut bound = Vec::new();
    for (ip, port, (tls, websocket), only) in groups {
        let addr = SocketAddr::new(ip, port);
        let socket = listen(addr).map_err(|source| SetupError::Bind { addr, source })?;
        let local = socket
            .local_addr()
            .map_err(|source| SetupError::Bind { addr, source })?;
        let zones: Vec<&str> = view
            .listeners
            .iter()
            .filter(|l| match &only {
                Some(o) => *l == o,
                None => l.effective_port() == port,
            })
            .map(|l| l.zone.as_str())
            .collect();
        tracing::info!(%local, tls, websocket, zones = ?zones, "mqtt listening on {local}");
        bound.push(Bound {
            socket,
            port: local.port(),
            tls,
            websocket,
            only,
        });
    }
    Ok(bound)
}

/// A listening socket with `SO_REUSEPORT`, so `PUT /config` can bind the new listeners
/// before it closes the old ones (no moment without a listener on a port that stays). Only
/// this daemon's user could share the port, and the VM runs nothing else.
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// The zone of a client address: its IPv4 subnet, or over IPv6 its ULA /64 (devices reach
/// the broker at the router's ULA address, for which RFC 6724 hosts pick their ULA source).
fn zone_of(zones: &[ZoneNet], ip: IpAddr) -> Option<&str> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    zones
        .iter()
        .find(|z| match ip {
            IpAddr::V4(v4) => z.subnet.contains(&v4),
            IpAddr::V6(v6) => z.subnet6.is_some_and(|n| n.contains(&v6)),
        })
        .map(|z| z.name.as_str())
}

/// Releases a connection slot when the connection ends.
struct Slot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.shared.open.fetch_sub(1, Ordering::Relaxed);
        if let Ok(mut m) = self.shared.per_address.lock()
            && let Some(n) = m.get_mut(&self.ip)
        {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

impl Shared {
    fn runtime(&self) -> Arc<Runtime> {
        match self.runtime.read() {
            Ok(r) => r.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn take_slot(self: &Arc<Self>, ip: IpAddr, view: &MqttView) -> Option<Slot> {
        let l = &view.limits;
        let mut m = self.per_address.lock().ok()?;
        let n = m.entry(ip).or_insert(0);
        if *n >= l.max_connections_per_address
            || self.open.load(Ordering::Relaxed) >= u64::from(l.max_connections)
        {
            if *n == 0 {
                m.remove(&ip);
            }
            return None;
        }
        *n += 1;
        self.open.fetch_add(1, Ordering::Relaxed);
        Some(Slot {
            shared: self.clone(),
            ip,
        })
    }

    /// Starts accepting on `bound` and stops the accept loops it replaces. Connections
    /// already open are not touched.
    fn serve(self: &Arc<Self>, bound: Vec<Bound>, tls: Option<tokio_rustls::TlsAcceptor>) {
        let handles: Vec<_> = bound
            .into_iter()
            .map(|b| tokio::spawn(accept_loop(b, self.clone(), tls.clone())).abort_handle())
            .collect();
        let old = match self.accepting.lock() {
            Ok(mut a) => std::mem::replace(&mut *a, handles),
            Err(p) => std::mem::replace(&mut *p.into_inner(), handles),
        };
        for h in old {
            h.abort();
        }
    }

    /// Asks the broker task for its counters and clients.
    pub async fn report(&self) -> Option<Report> {
        let (tx, rx) = oneshot::channel();
        self.events.send(Event::Query(tx)).await.ok()?;
        rx.await.ok()
    }
}

async fn accept_loop(bound: Bound, shared: Arc<Shared>, tls: Option<tokio_rustls::TlsAcceptor>) {
    loop {
        let (tcp, peer) = match bound.socket.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let rt = shared.runtime();
        let listener = zone_of(&rt.view.zones, peer.ip()).and_then(|zone| match &bound.only {
            Some(o) => (o.zone == zone).then(|| o.clone()),
            None => rt
                .view
                .listeners
                .iter()
                .find(|l| l.zone == zone && l.effective_port() == bound.port)
                .cloned(),
        });
        let Some(listener) = listener else {
            shared.refused.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, "no listener for this client's zone on this port");
            continue;
        };
        let Some(slot) = shared.take_slot(peer.ip(), &rt.view) else {
            shared.refused.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, "connection limit reached");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let shared = shared.clone();
        let tls = if bound.tls { tls.clone() } else { None };
        let wants_tls = bound.tls;
        let websocket = bound.websocket;
        tokio::spawn(async move {
            let _slot = slot;
            let conn = shared.next_conn.fetch_add(1, Ordering::Relaxed);
            if wants_tls {
                let Some(acceptor) = tls else {
                    return;
                };
                match tokio::time::timeout(CONNECT_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) if websocket => {
                        over_websocket(stream, peer, listener, shared, conn).await;
                    }
                    Ok(Ok(stream)) => connection(stream, peer, listener, shared, conn).await,
                    _ => tracing::debug!(%peer, "tls handshake failed"),
                }
            } else if websocket {
                over_websocket(tcp, peer, listener, shared, conn).await;
            } else {
                connection(tcp, peer, listener, shared, conn).await;
            }
        });
    }
}

/// The WebSocket handshake (bounded by `CONNECT_TIMEOUT`), then the MQTT connection over it.
async fn over_websocket<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    peer: SocketAddr,
    listener: MqttListener,
    shared: Arc<Shared>,
    conn: ConnId,
) {
    let rt = shared.runtime();
    // A WebSocket message carries one or more MQTT packets: bound it by the packet limit.
    let max = Limits::from_view(&rt.view.limits).max_packet_bytes as usize + 16;
    match tokio::time::timeout(CONNECT_TIMEOUT, crate::ws::accept(stream, max)).await {
        Ok(Ok(ws)) => connection(ws, peer, listener, shared, conn).await,
        Ok(Err(e)) => {
            shared.malformed.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, error = %e, "websocket handshake failed");
        }
        Err(_) => tracing::debug!(%peer, "websocket handshake timed out"),
    }
}

async fn write_packet<S: AsyncWrite + Unpin>(s: &mut S, version: Version, p: &Packet) {
    let mut buf = BytesMut::new();
    if codec::encode(version, p, &mut buf).is_ok() {
        // Flushed: a TLS or WebSocket stream may hold written bytes until then.
        let write = async {
            s.write_all(&buf).await?;
            s.flush().await
        };
        let _ = tokio::time::timeout(WRITE_TIMEOUT, write).await;
    }
}

async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    peer: SocketAddr,
    listener: MqttListener,
    shared: Arc<Shared>,
    conn: ConnId,
) {
    let rt = shared.runtime();
    let max_packet = Limits::from_view(&rt.view.limits).max_packet_bytes as usize;
    let mut buf = BytesMut::with_capacity(4096);
    // The CONNECT, within CONNECT_TIMEOUT.
    let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
    let first = loop {
        match codec::connect_version(&buf) {
            Ok(Some(v)) => match codec::decode(v, &mut buf, max_packet) {
                Ok(Some(p)) => break Some((v, p)),
                Ok(None) => {}
                Err(_) => break None,
            },
            Ok(None) => {}
            Err(DecodeError::UnsupportedProtocol(level)) => {
                tracing::debug!(%peer, level, "unsupported protocol level");
                // MQTT 3.1.1 §3.2.2.3: CONNACK 0x01 in the 3.1.1 form.
                write_packet(
                    &mut stream,
                    Version::V311,
                    &codec::refusal(ConnectReturnCode::UnsupportedProtocolVersion),
                )
                .await;
                break None;
            }
            Err(_) => break None,
        }
        match tokio::time::timeout_at(deadline, stream.read_buf(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => break None,
        }
    };
    let Some((version, Packet::Connect(connect, will, login))) = first else {
        shared.malformed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let (user, perms) = match login {
        Some(l) => {
            let users = rt.users.clone();
            let name = l.username.clone();
            let checked = match shared.auth_slots.acquire().await {
                Ok(_permit) => tokio::task::spawn_blocking(move || {
                    users.check(&l.username, l.password.as_bytes())
                })
                .await
                .ok(),
                Err(_) => None,
            };
            match checked {
                Some(Ok(perms)) => (Some(name), perms),
                _ => {
                    shared.auth_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(%peer, user = name, "login refused: bad user name or password");
                    let p = codec::refusal(ConnectReturnCode::BadUserNamePassword);
                    write_packet(&mut stream, version, &p).await;
                    return;
                }
            }
        }
        None if listener.allow_anonymous => (None, Arc::new(Perms::anything())),
        None => {
            shared.auth_failures.fetch_add(1, Ordering::Relaxed);
            tracing::info!(%peer, zone = listener.zone, "login refused: anonymous access is off");
            write_packet(
                &mut stream,
                version,
                &codec::refusal(ConnectReturnCode::NotAuthorized),
            )
            .await;
            return;
        }
    };
    let (tx, mut rx) = mpsc::channel::<Bytes>(OUT_QUEUE);
    let login = Login {
        version,
        user,
        perms,
        connect,
        will,
    };
    if shared
        .events
        .send(Event::Connect {
            conn,
            login,
            tx,
            version,
        })
        .await
        .is_err()
    {
        return;
    }
    let mut wbuf = BytesMut::new();
    'conn: loop {
        // Every complete packet buffered, also those that came right behind the CONNECT (a
        // client need not wait for the CONNACK, MQTT 3.1.1 §3.1.4).
        loop {
            match codec::decode(version, &mut buf, max_packet) {
                Ok(Some(p)) => {
                    if shared.events.send(Event::Packet(conn, p)).await.is_err() {
                        break 'conn;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    shared.malformed.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%peer, error = %e, "closing connection");
                    if version == Version::V5 {
                        let reason = match e {
                            DecodeError::TooLarge(_) => DisconnectReasonCode::PacketTooLarge,
                            _ => DisconnectReasonCode::MalformedPacket,
                        };
                        write_packet(
                            &mut stream,
                            version,
                            &Packet::Disconnect(Disconnect::new(reason)),
                        )
                        .await;
                    }
                    break 'conn;
                }
            }
        }
        tokio::select! {
            r = stream.read_buf(&mut buf) => {
                match r {
                    Ok(n) if n > 0 => {}
                    _ => break 'conn,
                }
            }
            out = rx.recv() => {
                let Some(first) = out else { break 'conn };
                wbuf.clear();
                wbuf.extend_from_slice(&first);
                let mut closing = false;
                while wbuf.len() < 64 * 1024 {
                    match rx.try_recv() {
                        Ok(b) => wbuf.extend_from_slice(&b),
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => { closing = true; break }
                    }
                }
                let write = async {
                    stream.write_all(&wbuf).await?;
                    stream.flush().await
                };
                match tokio::time::timeout(WRITE_TIMEOUT, write).await {
                    Ok(Ok(())) => {}
                    _ => break 'conn,
                }
                if closing {
                    break 'conn;
                }
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
    let _ = shared.events.send(Event::Closed(conn)).await;
}

fn is_qos0_publish(p: &Packet) -> bool {
    matches!(p, Packet::Publish(p) if p.qos == QoS::AtMostOnce)
}

struct Writer {
    tx: mpsc::Sender<Bytes>,
    version: Version,
}

/// Executes the core's actions: encodes each packet once per connection and queues it.
fn flush(core: &mut Broker, writers: &mut HashMap<ConnId, Writer>, now: Instant) {
    let mut slow = Vec::new();
    let mut dropped = 0;
    for action in core.drain() {
        match action {
            Action::Send(id, p) => {
                let Some(w) = writers.get(&id) else { continue };
                let mut buf = BytesMut::new();
                if let Err(e) = codec::encode(w.version, &p, &mut buf) {
                    tracing::warn!(error = %e, "dropping a packet");
                    continue;
                }
                if buf.is_empty() {
                    continue;
                }
                match w.tx.try_send(buf.freeze()) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) if is_qos0_publish(&p) => dropped += 1,
                    Err(mpsc::error::TrySendError::Full(_)) => slow.push(id),
                    Err(mpsc::error::TrySendError::Closed(_)) => {}
                }
            }
            Action::Close(id) => {
                // Dropping the sender closes the connection once its queue is written.
                writers.remove(&id);
            }
        }
    }
    for _ in 0..dropped {
        core.count_dropped();
    }
    for id in slow {
        tracing::info!(conn = id, "closing a client that does not keep up");
        writers.remove(&id);
        core.closed(id, now);
        flush(core, writers, now);
    }
}

fn telemetry(core: &mut Broker, now: Instant) {
    let clients = core.clients().len();
    core.publish_internal(
        "roost/mqtt/clients",
        Bytes::from(clients.to_string()),
        true,
        now,
    );
}

async fn broker_task(
    mut core: Broker,
    mut events: mpsc::Receiver<Event>,
    saver: std::sync::mpsc::SyncSender<Vec<u8>>,
    state_dir: PathBuf,
) {
    let mut writers: HashMap<ConnId, Writer> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut ticks: u64 = 0;
    let mut unsaved = false;
    loop {
        tokio::select! {
            ev = events.recv() => {
                let Some(ev) = ev else { break };
                let now = Instant::now();
                let mut next = Some(ev);
                let mut budget = 256;
                while let Some(ev) = next.take() {
                    match ev {
                        Event::Connect { conn, login, tx, version } => {
                            writers.insert(conn, Writer { tx, version });
                            core.connect(conn, login, now);
                        }
                        Event::Packet(conn, p) => core.packet(conn, p, now),
                        Event::Closed(conn) => {
                            writers.remove(&conn);
                            core.closed(conn, now);
                        }
                        Event::Query(reply) => {
                            let (sessions, retained, retained_bytes) = core.counts();
                            let _ = reply.send(Report {
                                stats: core.stats(),
                                clients: core.clients(),
                                sessions,
                                retained,
                                retained_bytes,
                            });
                        }
                        Event::Limits(l) => core.set_limits(l),
                        Event::Telemetry(items) => {
                            for (topic, payload) in items {
                                core.publish_internal(&topic, payload, true, now);
                            }
                        }
                        Event::Shutdown(done) => {
                            let bytes = serde_json::to_vec(&core.snapshot(now)).unwrap_or_default();
                            if let Err(e) = store::save(&state_dir, &bytes) {
                                tracing::error!(error = %e, "final snapshot failed");
                            }
                            let _ = done.send(());
                            return;
                        }
                    }
                    flush(&mut core, &mut writers, now);
                    budget -= 1;
                    if budget > 0 {
                        next = events.try_recv().ok();
                    }
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                ticks += 1;
                core.tick(now);
                if ticks % 10 == 1 {
                    telemetry(&mut core, now);
                }
                flush(&mut core, &mut writers, now);
                unsaved |= core.take_dirty();
                if unsaved {
                    let bytes = serde_json::to_vec(&core.snapshot(now)).unwrap_or_default();
                    unsaved = saver.try_send(bytes).is_err();
                }
            }
        }
    }
}

fn start_saver(dir: PathBuf) -> std::io::Result<std::sync::mpsc::SyncSender<Vec<u8>>> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(1);
    std::thread::Builder::new()
        .name("mqtt-store".into())
        .spawn(move || {
            while let Ok(bytes) = rx.recv() {
                if let Err(e) = store::save(&dir, &bytes) {
                    tracing::error!(error = %e, "snapshot failed");
                }
            }
        })?;
    Ok(tx)
}

/// The running broker: what the control API talks to.
pub struct Daemon {
    shared: Arc<Shared>,
}

/// Starts the broker (listeners, broker task, snapshot thread) on the current runtime.
pub async fn start(view: MqttView, state_dir: &Path) -> Result<Arc<Daemon>, crate::RunError> {
    let limits = check_view(&view)?;
    let tls = tls_acceptor(&view)?;
    let mut core = Broker::new(limits);
    let now = Instant::now();
    match store::load(state_dir) {
        Ok(snap) => {
            tracing::info!(
                retained = snap.retained.len(),
                sessions = snap.sessions.len(),
                "state restored"
            );
            core.restore(snap, now);
        }
        Err(e) => {
            let aside = state_dir.join(format!("{}.damaged", store::FILE));
            tracing::error!(error = %e, aside = %aside.display(), "state unreadable; starting empty");
            let _ = std::fs::rename(state_dir.join(store::FILE), &aside);
        }
    }
    let saver = start_saver(state_dir.to_owned()).map_err(crate::RunError::Thread)?;
    let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
    let bound = if view.enabled {
        bind_listeners(&view).await?
    } else {
        tracing::info!("mqtt is disabled in the settings: control api only");
        Vec::new()
    };
    let shared = Arc::new(Shared {
        runtime: RwLock::new(Arc::new(Runtime {
            users: Arc::new(Users::new(&view.users)),
            view,
        })),
        events: events_tx,
        per_address: Mutex::new(HashMap::new()),
        open: AtomicU64::new(0),
        next_conn: AtomicU64::new(1),
        auth_slots: Semaphore::new(2),
        refused: AtomicU64::new(0),
        auth_failures: AtomicU64::new(0),
        malformed: AtomicU64::new(0),
        accepting: Mutex::new(Vec::new()),
    });
    tokio::spawn(broker_task(core, events_rx, saver, state_dir.to_owned()));
    shared.serve(bound, tls);
    Ok(Arc::new(Daemon { shared }))
}

/// Most telemetry topics in one `PUT /telemetry`.
pub const MAX_TELEMETRY_TOPICS: usize = 256;
/// Longest telemetry topic, in bytes.
pub const MAX_TELEMETRY_TOPIC: usize = 256;
/// Longest telemetry value, in bytes.
pub const MAX_TELEMETRY_VALUE: usize = 4096;

/// Checks a telemetry update: topics under `roost/`, concrete (no wildcards, no empty level),
/// bounded in count and size. The reason when not.
pub fn check_telemetry(topics: &std::collections::BTreeMap<String, String>) -> Result<(), String> {
    if topics.len() > MAX_TELEMETRY_TOPICS {
        return Err(format!("more than {MAX_TELEMETRY_TOPICS} topics"));
    }
    for (topic, value) in topics {
        let Some(rest) = topic.strip_prefix("roost/") else {
            return Err(format!("{topic:?}: telemetry topics start with roost/"));
        };
        if topic.len() > MAX_TELEMETRY_TOPIC
            || rest
                .split('/')
                .any(|level| level.is_empty() || level.contains(['+', '#', '\0']))
        {
            return Err(format!(
                "{topic:?}: not a concrete topic of at most {MAX_TELEMETRY_TOPIC} bytes"
            ));
        }
        if value.len() > MAX_TELEMETRY_VALUE {
            return Err(format!(
                "{topic:?}: value longer than {MAX_TELEMETRY_VALUE} bytes"
            ));
        }
    }
    Ok(())
}

impl Daemon {
    /// Publishes the router's telemetry (from the web VM): each topic retained, as the router.
    pub fn publish_telemetry(
        &self,
        topics: std::collections::BTreeMap<String, String>,
    ) -> Result<(), String> {
        check_telemetry(&topics)?;
        let items = topics
            .into_iter()
            .map(|(t, v)| (t, Bytes::from(v)))
            .collect();
        self.shared
            .events
            .try_send(Event::Telemetry(items))
            .map_err(|_| "the broker is busy; try again".to_owned())
    }

    /// Writes the final snapshot and stops the broker task.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.shared.events.send(Event::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    async fn apply(&self, text: &str) -> Result<(), ConfigRejected> {
        let view = MqttView::from_toml("PUT /config", text)
            .map_err(|e| ConfigRejected::Invalid(e.to_string()))?;
        let limits = check_view(&view).map_err(|e| ConfigRejected::Invalid(e.to_string()))?;
        let old = self.shared.runtime();
        let sockets = |v: &MqttView| {
            let mut s: Vec<(u16, bool, bool)> = v
                .listeners
                .iter()
                .map(|l| (l.effective_port(), l.tls, l.websocket))
                .collect();
            s.sort_unstable();
            s.dedup();
            (s, v.tls.clone(), v.control.clone(), v.enabled)
        };
        if view.control != old.view.control {
            return Err(ConfigRejected::NotApplied(
                "the control address changed: restart roost-mqtt to apply".to_owned(),
            ));
        }
        // New listeners are bound before anything changes: a port that cannot be bound or
        // TLS files that do not load leave the old config in force.
        let rebind = if sockets(&view) == sockets(&old.view) {
            None
        } else {
            let tls = tls_acceptor(&view).map_err(|e| ConfigRejected::NotApplied(e.to_string()))?;
            let bound = if view.enabled {
                bind_listeners(&view)
                    .await
                    .map_err(|e| ConfigRejected::NotApplied(e.to_string()))?
            } else {
                Vec::new()
            };
            Some((bound, tls))
        };
        self.shared
            .events
            .try_send(Event::Limits(limits))
            .map_err(|_| ConfigRejected::NotApplied("the broker is busy; try again".to_owned()))?;
        let runtime = Arc::new(Runtime {
            users: Arc::new(Users::new(&view.users)),
            view,
        });
        match self.shared.runtime.write() {
            Ok(mut r) => *r = runtime,
            Err(p) => *p.into_inner() = runtime,
        }
        if let Some((bound, tls)) = rebind {
            tracing::info!(listeners = bound.len(), "listeners replaced");
            self.shared.serve(bound, tls);
        }
        tracing::info!("config applied");
        Ok(())
    }
}

impl roost_control::Daemon for Daemon {
    async fn health(&self) -> Result<(), String> {
        match self.shared.report().await {
            Some(_) => Ok(()),
            None => Err("the broker task is not running".to_owned()),
        }
    }

    async fn metrics(&self) -> String {
        let Some(r) = self.shared.report().await else {
            return String::new();
        };
        let s = &self.shared;
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            out.push_str(&format!(
                "# HELP roost_mqtt_{name} {help}\n# TYPE roost_mqtt_{name} {kind}\nroost_mqtt_{name} {value}\n"
            ));
        };
        metric(
            "connections",
            "gauge",
            "Connected clients.",
            r.clients.len() as u64,
        );
        metric(
            "sessions",
            "gauge",
            "Sessions, connected or kept for a client.",
            r.sessions as u64,
        );
        metric(
            "messages_in_total",
            "counter",
            "PUBLISH packets received.",
            r.stats.messages_in,
        );
        metric(
            "messages_out_total",
            "counter",
            "PUBLISH packets sent.",
            r.stats.messages_out,
        );
        metric(
            "dropped_total",
            "counter",
            "Deliveries dropped (full queue, too large for the client, slow client).",
            r.stats.dropped,
        );
        metric(
            "expired_total",
            "counter",
            "Deliveries dropped because the message expired.",
            r.stats.expired,
        );
        metric(
            "denied_total",
            "counter",
            "Publications refused by the ACL.",
            r.stats.denied,
        );
        metric(
            "kicked_total",
            "counter",
            "Connections closed for a protocol violation or a limit.",
            r.stats.kicked,
        );
        metric(
            "retained_messages",
            "gauge",
            "Retained messages.",
            r.retained as u64,
        );
        metric(
            "retained_bytes",
            "gauge",
            "Bytes of retained topics and payloads.",
            r.retained_bytes,
        );
        metric(
            "retained_refused_total",
            "counter",
            "Retained messages not stored: store full.",
            r.stats.retained_refused,
        );
        metric(
            "connections_refused_total",
            "counter",
            "Connections refused at accept (limits, zone).",
            s.refused.load(Ordering::Relaxed),
        );
        metric(
            "auth_failures_total",
            "counter",
            "Logins refused.",
            s.auth_failures.load(Ordering::Relaxed),
        );
        metric(
            "malformed_total",
            "counter",
            "Connections closed for malformed or oversized packets.",
            s.malformed.load(Ordering::Relaxed),
        );
        out
    }

    async fn state(&self) -> serde_json::Value {
        match self.shared.report().await {
            Some(r) => serde_json::json!({
                "clients": r.clients,
                "sessions": r.sessions,
                "retained": r.retained,
                "retained_bytes": r.retained_bytes,
            }),
            None => serde_json::json!({ "error": "the broker task is not running" }),
        }
    }

    async fn put_config(&self, toml: String) -> Result<(), ConfigRejected> {
        self.apply(&toml).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zone_is_told_by_its_ipv4_subnet_or_its_ula_64() {
        let zones = vec![ZoneNet {
            name: "iot".into(),
            subnet: "192.168.20.0/24".parse().unwrap(),
            router: "192.168.20.1".parse().unwrap(),
            subnet6: Some("fd12:3456:789a:14::/64".parse().unwrap()),
        }];
        let zone = |a: &str| zone_of(&zones, a.parse().unwrap());
        assert_eq!(zone("192.168.20.7"), Some("iot"));
        assert_eq!(zone("::ffff:192.168.20.7"), Some("iot"));
        assert_eq!(zone("fd12:3456:789a:14::7"), Some("iot"));
        assert_eq!(zone("fd12:3456:789a:1::7"), None);
        assert_eq!(
            zone("2001:db8:1200:14::7"),
            None,
            "a global source is in no zone"
        );
    }
}
