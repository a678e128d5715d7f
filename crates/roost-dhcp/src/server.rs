//! The IO edge: one UDP socket per zone interface, one engine thread that runs the core in
//! batches with group commit, and the control API's view of it all.
//!
//! Receive threads (one per interface) block on their socket and queue packets. The engine
//! thread takes whatever is queued (up to [`BATCH`]), runs each packet through the core under
//! one lock, writes all lease changes to the journal with one `write`, sends at once the
//! replies that change no lease (OFFER, NAK, INFORM's ACK) and hands the others (ACKs) to the
//! commit thread. That one `fdatasync`s the journal once for every batch queued to it and only
//! then sends their ACKs, while the engine goes on deciding: the engine never waits for the
//! disk. A failed write or fsync sends none of the ACKs written to that journal file since:
//! no ACK without a durable lease; the engine then compacts into a new file before writing on.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use dhcproto::{Encodable, Encoder};
use roost_config::View as _;
use roost_config::views::DhcpView;
use roost_control::{ConfigRejected, Daemon};
use serde_json::json;
use socket2::{Domain, Protocol, Socket, Type};

use crate::core::{Config, Core, Destination, Drop, Reply};
use crate::core6::Config6;
use crate::push::PushStats;
use crate::server6::Server6;
use crate::store::{Store, SyncHandle};

/// Most packets decided per journal fsync.
pub const BATCH: usize = 256;
/// Packets queued between the receive threads and the engine; more are dropped and counted.
pub const QUEUE: usize = 4096;
/// The DHCP server port.
pub const SERVER_PORT: u16 = 67;
/// The DHCP client port.
pub const CLIENT_PORT: u16 = 68;

/// Opening a socket failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the dhcp socket on interface {interface}: {source}")]
pub struct SocketError {
    /// The interface.
    pub interface: String,
    /// Why.
    pub source: std::io::Error,
}

/// Counters of the IO edge.
#[derive(Debug, Default)]
pub struct IoStats {
    /// Packets dropped because the engine's queue was full.
    pub queue_full: AtomicU64,
    /// Replies the kernel refused.
    pub send_errors: AtomicU64,
    /// Journal appends that failed (their batch's replies were not sent).
    pub store_errors: AtomicU64,
    /// Journal fsyncs.
    pub fsyncs: AtomicU64,
    /// Journal records.
    pub records: AtomicU64,
    /// Bytes cut from the journal's end at start (torn record).
    pub cut_bytes: AtomicU64,
    /// Journal compactions.
    pub compactions: AtomicU64,
}

/// A socket on one zone interface.
#[derive(Debug)]
pub struct Iface {
    /// Interface name.
    pub name: String,
    socket: UdpSocket,
}

struct Packet {
    iface: Arc<Iface>,
    bytes: Vec<u8>,
}

/// ACKs waiting for their batch's lease records (written to `journal`) to be durable.
struct Commit {
    journal: SyncHandle,
    replies: Vec<(Arc<Iface>, Reply)>,
}

/// What the control API and the IO threads share.
pub struct Shared {
    core: Mutex<Core>,
    io: IoStats,
    unhealthy: Mutex<Option<String>>,
    ifaces: Mutex<Vec<Arc<Iface>>>,
    tx: SyncSender<Packet>,
    /// The journal generation whose write or fsync failed (0: none): no ACK is sent for
    /// anything written to it afterwards, and the engine compacts into a new one.
    failed_generation: AtomicU64,
    /// Woken when a lease with a name changed (the dns pusher waits on it).
    pub names_changed: Arc<tokio::sync::Notify>,
    /// The dns pusher's counters.
    pub push: Arc<PushStats>,
    /// The stateless DHCPv6 server (its own sockets and threads; no leases).
    pub v6: Arc<Server6>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not stop the server: the data is still consistent per packet.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Unix time in seconds.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Opens the server socket on `interface`: 0.0.0.0:67, bound to the device, broadcast allowed.
pub fn open_socket(interface: &str) -> Result<UdpSocket, SocketError> {
    let err = |source| SocketError {
        interface: interface.to_owned(),
        source,
    };
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(err)?;
    socket.set_reuse_address(true).map_err(err)?;
    socket
        .bind_device(Some(interface.as_bytes()))
        .map_err(err)?;
    socket.set_broadcast(true).map_err(err)?;
    let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, SERVER_PORT));
    socket.bind(&addr.into()).map_err(err)?;
    Ok(socket.into())
}

impl Shared {
    /// Starts the engine thread over `core` and `store`; interfaces are added with
    /// [`Shared::serve_interface`].
    pub fn start(core: Core, mut store: Store, cut_bytes: u64) -> std::io::Result<Arc<Self>> {
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let shared = Arc::new(Self {
            core: Mutex::new(core),
            io: IoStats::default(),
            unhealthy: Mutex::new(None),
            ifaces: Mutex::new(Vec::new()),
            tx,
            failed_generation: AtomicU64::new(0),
            names_changed: Arc::new(tokio::sync::Notify::new()),
            push: Arc::new(PushStats::default()),
            v6: Server6::new(crate::server6::empty_config()),
        });
        shared.io.records.store(store.records(), Ordering::Relaxed);
        shared.io.cut_bytes.store(cut_bytes, Ordering::Relaxed);
        let (commit_tx, commit_rx) = std::sync::mpsc::channel();
        let committer = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("dhcp-commit".into())
            .spawn(move || committer.commit(&commit_rx))?;
        let engine = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("dhcp-engine".into())
            .spawn(move || engine.engine(&rx, &mut store, &commit_tx))?;
        Ok(shared)
    }

    /// Opens a socket on `interface` (unless one is open) and starts its receive thread.
    pub fn serve_interface(self: &Arc<Self>, interface: &str) -> Result<(), SocketError> {
        if lock(&self.ifaces).iter().any(|i| i.name == interface) {
            return Ok(());
        }
        let socket = open_socket(interface)?;
        let iface = Arc::new(Iface {
            name: interface.to_owned(),
            socket,
        });
        let shared = Arc::clone(self);
        let recv = Arc::clone(&iface);
        std::thread::Builder::new()
            .name(format!("dhcp-rx-{interface}"))
            .spawn(move || shared.receive(&recv))
            .map_err(|source| SocketError {
                interface: interface.to_owned(),
                source,
            })?;
        tracing::info!(interface, "listening on 0.0.0.0:67 on {interface}");
        lock(&self.ifaces).push(iface);
        Ok(())
    }

    fn receive(&self, iface: &Arc<Iface>) {
        let mut buf = vec![0u8; 65536];
        loop {
            match iface.socket.recv_from(&mut buf) {
                Ok((n, _from)) => {
                    let packet = Packet {
                        iface: Arc::clone(iface),
                        bytes: buf[..n].to_vec(),
                    };
                    match self.tx.try_send(packet) {
                        Ok(()) => {}
                        Err(TrySendError::Full(_)) => {
                            self.io.queue_full.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(TrySendError::Disconnected(_)) => return,
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::error!(interface = %iface.name, error = %e, "receive failed");
                    *lock(&self.unhealthy) = Some(format!("receive on {} failed: {e}", iface.name));
                    return;
                }
            }
        }
    }

    fn engine(&self, rx: &Receiver<Packet>, store: &mut Store, commit: &Sender<Commit>) {
        let mut batch = Vec::with_capacity(BATCH);
        let mut acks: Vec<(Arc<Iface>, Reply)> = Vec::with_capacity(BATCH);
        let mut others: Vec<(Arc<Iface>, Reply)> = Vec::with_capacity(BATCH);
        let mut changes = Vec::new();
        while let Ok(first) = rx.recv() {
            batch.push(first);
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(p) => batch.push(p),
                    Err(_) => break,
                }
            }
            let now = unix_now();
            let names_changed = {
                let mut core = lock(&self.core);
                for p in batch.drain(..) {
                    let d = core.handle(&p.iface.name, &p.bytes, now);
                    let changed = !d.changes.is_empty();
                    changes.extend(d.changes);
                    if let Some(r) = d.reply {
                        // A reply that follows a lease change waits for it to be durable.
                        if changed {
                            acks.push((p.iface, r));
                        } else {
                            others.push((p.iface, r));
                        }
                    }
                }
                core.take_names_changed()
            };
            // Offers, NAKs and INFORM's ACKs promise no lease: they need not wait for the disk.
            for (iface, reply) in others.drain(..) {
                self.send(&iface, &reply);
            }
            if !changes.is_empty() {
                if self.failed_generation.load(Ordering::Acquire) == store.generation() {
                    // A failed write or fsync may have left a hole before later records: start
                    // a new file from the leases in memory before appending again.
                    self.compact(store);
                }
                let written =
                    if self.failed_generation.load(Ordering::Acquire) == store.generation() {
                        Err("lease journal unusable since a failed write or fsync".to_owned())
                    } else {
                        store.write(&changes).map_err(|e| e.to_string())
                    };
                match written {
                    Ok(()) => {
                        self.io.records.store(store.records(), Ordering::Relaxed);
                        let replies = std::mem::replace(&mut acks, Vec::with_capacity(BATCH));
                        let c = Commit {
                            journal: store.sync_handle(),
                            replies,
                        };
                        if commit.send(c).is_err() {
                            // The commit thread is gone: nothing can be made durable.
                            self.fail(store.generation(), "lease commit thread stopped");
                        }
                    }
                    Err(e) => {
                        self.fail(store.generation(), &e);
                        acks.clear();
                    }
                }
                changes.clear();
                self.maybe_compact(store);
            }
            // Without changes, `acks` is empty.
            acks.clear();
            if names_changed {
                // Only a wake-up: the pusher reads the names later, on its own task. Names
                // may be pushed before their ACK is durable, as before a crash anyway.
                self.names_changed.notify_one();
            }
        }
    }

    /// Marks journal `generation` failed: its pending and later ACKs are withheld.
    fn fail(&self, generation: u64, why: &str) {
        tracing::error!(error = why, "lease journal append failed: replies withheld");
        self.io.store_errors.fetch_add(1, Ordering::Relaxed);
        self.failed_generation.store(generation, Ordering::Release);
        *lock(&self.unhealthy) = Some(why.to_owned());
    }

    /// The commit thread: one `fdatasync` for every batch queued to it (group commit), then
    /// those batches' ACKs, in order.
    fn commit(&self, rx: &Receiver<Commit>) {
        let mut group: Vec<Commit> = Vec::new();
        while let Ok(first) = rx.recv() {
            group.push(first);
            while let Ok(c) = rx.try_recv() {
                group.push(c);
            }
            // Batches arrive in write order; a compaction starts a new generation (file). One
            // fsync per generation in the group, after the last write queued to it.
            let mut start = 0;
            while start < group.len() {
                let generation = group[start].journal.generation;
                let end = group[start..]
                    .iter()
                    .position(|c| c.journal.generation != generation)
                    .map_or(group.len(), |n| start + n);
                let durable = self.failed_generation.load(Ordering::Acquire) != generation
                    && match group[end - 1].journal.sync() {
                        Ok(()) => {
                            self.io.fsyncs.fetch_add(1, Ordering::Relaxed);
                            true
                        }
                        Err(e) => {
                            self.fail(generation, &format!("lease journal fsync: {e}"));
                            false
                        }
                    };
                if durable {
                    for c in &group[start..end] {
                        for (iface, reply) in &c.replies {
                            self.send(iface, reply);
                        }
                    }
                }
                start = end;
            }
            group.clear();
        }
    }

    fn maybe_compact(&self, store: &mut Store) {
        let wants = store.wants_compaction(lock(&self.core).lease_count());
        if wants {
            self.compact(store);
        }
    }

    /// Rewrites the journal from the leases in memory (a new generation). Batches still
    /// waiting for their fsync on the old file are safe: their leases (or later states of
    /// the same addresses) are in the new file, which is durable before the rename.
    fn compact(&self, store: &mut Store) {
        let core = lock(&self.core);
        match store.compact(core.leases()) {
            Ok(()) => {
                self.io.compactions.fetch_add(1, Ordering::Relaxed);
                self.io.records.store(store.records(), Ordering::Relaxed);
                tracing::info!(records = store.records(), "lease journal compacted");
            }
            Err(e) => {
                // The old journal is whole; appends go on to it.
                tracing::warn!(error = %e, "lease journal compaction failed");
            }
        }
    }

    fn send(&self, iface: &Iface, reply: &Reply) {
        let mut buf = Vec::with_capacity(548);
        if let Err(e) = reply.message.encode(&mut Encoder::new(&mut buf)) {
            tracing::warn!(error = %e, "cannot encode reply");
            self.io.send_errors.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let to = match reply.to {
            Destination::Broadcast => SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT),
            Destination::Unicast(ip) => SocketAddrV4::new(ip, CLIENT_PORT),
            Destination::Relay(ip) => SocketAddrV4::new(ip, SERVER_PORT),
        };
        if let Err(e) = iface.socket.send_to(&buf, to) {
            tracing::debug!(interface = %iface.name, %to, error = %e, "send failed");
            self.io.send_errors.fetch_add(1, Ordering::Relaxed);
        } else {
            tracing::debug!(interface = %iface.name, %to, kind = ?reply.kind(), yiaddr = %reply.message.yiaddr(), "sent");
        }
    }

    /// The lease names (sorted) and the next expiry of a named lease, at the current time.
    pub fn local_names(&self) -> (crate::push::Names, Option<u64>) {
        lock(&self.core).local_names(unix_now())
    }

    /// The state as `/state` shows it.
    pub fn state_json(&self) -> serde_json::Value {
        let now = unix_now();
        let core = lock(&self.core);
        let leases: Vec<serde_json::Value> = core
            .leases()
            .map(|l| {
                let mut v = serde_json::to_value(l).unwrap_or_default();
                if let Some(o) = v.as_object_mut() {
                    o.insert("active".into(), json!(l.is_active(now)));
                    // The name it is published under in dns, while bound.
                    if l.state == crate::core::LeaseState::Bound && l.is_active(now) {
                        o.insert("name".into(), json!(core.lease_name(l)));
                    }
                }
                v
            })
            .collect();
        let zones: Vec<serde_json::Value> = core
            .config()
            .zones
            .iter()
            .map(|z| {
                let active = core
                    .leases()
                    .filter(|l| l.zone == z.name && l.is_active(now))
                    .count();
                json!({
                    "name": z.name,
                    "interface": z.interface,
                    "subnet": z.subnet.to_string(),
                    "pool_start": z.pool_start,
                    "pool_end": z.pool_end,
                    "pool_size": z.pool_size(),
                    "active": active,
                })
            })
            .collect();
        let (names, _) = core.local_names(now);
        let names: Vec<serde_json::Value> = names
            .into_iter()
            .map(|(name, address)| json!({ "name": name, "address": address }))
            .collect();
        // The reservations in force: what the web UI's changes are checked against.
        let reservations: Vec<serde_json::Value> = core
            .config()
            .reservations
            .iter()
            .map(|r| {
                json!({
                    "zone": r.zone,
                    "mac": r.mac.map(|m| roost_config::MacAddr(m).to_string()),
                    "client_id": r.client_id.as_deref().map(hex::encode),
                    "ip": r.ip,
                    "hostname": r.hostname,
                })
            })
            .collect();
        drop(core);
        json!({ "now": now, "zones": zones, "leases": leases, "local_names": names,
                "reservations": reservations, "dhcp6": self.v6.state_json() })
    }

    /// The metrics as `/metrics` shows them.
    pub fn metrics_text(&self) -> String {
        use std::fmt::Write as _;
        let now = unix_now();
        let mut out = String::new();
        let core = lock(&self.core);
        let stats = core.stats();
        let mut line = |s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        line("# TYPE roost_dhcp_packets_received_total counter".into());
        line(format!(
            "roost_dhcp_packets_received_total {}",
            stats.received
        ));
        line("# TYPE roost_dhcp_requests_total counter".into());
        for (t, n) in &stats.by_type {
            line(format!("roost_dhcp_requests_total{{type=\"{t}\"}} {n}"));
        }
        line("# TYPE roost_dhcp_replies_total counter".into());
        for (t, n) in &stats.replies {
            line(format!("roost_dhcp_replies_total{{type=\"{t}\"}} {n}"));
        }
        line("# TYPE roost_dhcp_dropped_total counter".into());
        for why in Drop::ALL {
            let n = stats.dropped.get(&why).copied().unwrap_or(0);
            line(format!(
                "roost_dhcp_dropped_total{{reason=\"{}\"}} {n}",
                why.label()
            ));
        }
        line("# TYPE roost_dhcp_leases_active gauge".into());
        line("# TYPE roost_dhcp_pool_size gauge".into());
        for z in &core.config().zones {
            let active = core
                .leases()
                .filter(|l| l.zone == z.name && l.is_active(now))
                .count();
            line(format!(
                "roost_dhcp_leases_active{{zone=\"{}\"}} {active}",
                z.name
            ));
            line(format!(
                "roost_dhcp_pool_size{{zone=\"{}\"}} {}",
                z.name,
                z.pool_size()
            ));
        }
        drop(core);
        let io = &self.io;
        for (name, kind, v) in [
            ("queue_full_total", "counter", &io.queue_full),
            ("send_errors_total", "counter", &io.send_errors),
            ("store_errors_total", "counter", &io.store_errors),
            ("store_fsyncs_total", "counter", &io.fsyncs),
            ("store_compactions_total", "counter", &io.compactions),
            ("store_records", "gauge", &io.records),
            ("store_cut_bytes", "gauge", &io.cut_bytes),
            ("dns_pushes_total", "counter", &self.push.ok),
            ("dns_push_failures_total", "counter", &self.push.failed),
            ("dns_push_failing", "gauge", &self.push.failing),
            ("dns_names", "gauge", &self.push.names),
        ] {
            let _ = writeln!(out, "# TYPE roost_dhcp_{name} {kind}");
            let _ = writeln!(out, "roost_dhcp_{name} {}", v.load(Ordering::Relaxed));
        }
        self.v6.metrics(&mut out);
        out
    }

    /// Validates and applies a new view: sockets for new interfaces first, then the config.
    pub fn apply_view(self: &Arc<Self>, toml: &str) -> Result<(), ConfigRejected> {
        let view = DhcpView::from_toml("PUT /config", toml)
            .map_err(|e| ConfigRejected::Invalid(e.to_string()))?;
        let config =
            Config::from_view(&view).map_err(|e| ConfigRejected::Invalid(e.to_string()))?;
        for zone in &config.zones {
            self.serve_interface(&zone.interface)
                .map_err(|e| ConfigRejected::NotApplied(e.to_string()))?;
        }
        self.v6
            .apply(Config6::from_view(&view))
            .map_err(|e| ConfigRejected::NotApplied(format!("cannot start dhcpv6: {e}")))?;
        let names_changed = {
            let mut core = lock(&self.core);
            core.set_config(config);
            core.take_names_changed()
        };
        if names_changed {
            self.names_changed.notify_one();
        }
        tracing::info!("new config applied; leases kept");
        Ok(())
    }
}

/// The control API's side of the daemon.
pub struct Dhcp(pub Arc<Shared>);

impl Daemon for Dhcp {
    async fn health(&self) -> Result<(), String> {
        match lock(&self.0.unhealthy).clone() {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }

    async fn metrics(&self) -> String {
        self.0.metrics_text()
    }

    async fn state(&self) -> serde_json::Value {
        self.0.state_json()
    }

    async fn put_config(&self, toml: String) -> Result<(), ConfigRejected> {
        let shared = Arc::clone(&self.0);
        tokio::task::spawn_blocking(move || shared.apply_view(&toml))
            .await
            .map_err(|e| ConfigRejected::NotApplied(e.to_string()))?
    }
}
