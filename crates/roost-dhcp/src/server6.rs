//! The DHCPv6 IO edge: one UDP socket per zone interface with `ipv6_dns`, bound to
//! `[ff02::1:2%<interface>]:547` (All_DHCP_Relay_Agents_and_Servers, joined on that interface)
//! with `SO_BINDTODEVICE`, and one thread per socket that runs [`Core6`] on each message and
//! sends the reply from the same socket to the client's link-local address, port 546.
//!
//! Binding to the group rather than to `[::]:547` means the socket gets only what clients
//! multicast on that link: RFC 8415 §16 has servers discard INFORMATION-REQUESTs sent to a
//! unicast address, and without IPV6_RECVPKTINFO (and its `recvmsg` parsing) a `[::]` socket
//! could not tell them apart. The kernel still picks the reply's source, the interface's
//! link-local address (a socket bound to a multicast group has no source of its own).
//!
//! A zone interface may not be ready when the daemon starts (missing, IPv6 off, its
//! link-local address still in duplicate address detection): its thread waits and retries
//! (1 s, doubling to 30 s), logging the first failure as a warning, and says `listening on`
//! once the socket is open and the interface has a usable link-local address. Nothing here
//! fails the daemon. Needs no capability beyond binding port 547 (CAP_NET_BIND_SERVICE, as
//! for 67) and SO_BINDTODEVICE (unprivileged since Linux 5.7; the v4 sockets use it too).

use std::collections::BTreeSet;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::core6::{Config6, Core6, Drop6, Link6, duid_ll};
use crate::server::unix_now;

/// The DHCPv6 server port.
pub const SERVER_PORT: u16 = 547;
/// All_DHCP_Relay_Agents_and_Servers (RFC 8415 §7.1).
pub const ALL_SERVERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);
/// How often a listening thread checks that its interface is still the same one.
const CHECK_EVERY: Duration = Duration::from_secs(30);
/// The longest wait between two attempts to open an interface's socket.
const MAX_RETRY: Duration = Duration::from_secs(30);

/// Why an interface's socket could not be opened (yet).
#[derive(Debug, thiserror::Error)]
pub enum Open6Error {
    /// `/sys/class/net/<interface>` has no usable ifindex or MAC.
    #[error("interface {0} not found")]
    NoInterface(String),
    /// No link-local address that has passed duplicate address detection.
    #[error("interface {0} has no usable link-local address yet")]
    NoLinkLocal(String),
    /// A socket call failed.
    #[error("cannot open the dhcpv6 socket on interface {interface}: {source}")]
    Socket {
        /// The interface.
        interface: String,
        /// Why.
        source: std::io::Error,
    },
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The stateless DHCPv6 server: the core, its interfaces and counters.
pub struct Server6 {
    core: Mutex<Core6>,
    /// Interfaces that have a thread (listening or waiting).
    started: Mutex<BTreeSet<String>>,
    /// Interfaces whose socket is open.
    listening: AtomicU64,
    /// Replies the kernel refused.
    send_errors: AtomicU64,
    /// Receive errors (the socket is opened again).
    receive_errors: AtomicU64,
}

impl Server6 {
    /// A server for `config`; no interface is served until [`Server6::apply`].
    pub fn new(config: Config6) -> Arc<Self> {
        Arc::new(Self {
            core: Mutex::new(Core6::new(config)),
            started: Mutex::new(BTreeSet::new()),
            listening: AtomicU64::new(0),
            send_errors: AtomicU64::new(0),
            receive_errors: AtomicU64::new(0),
        })
    }

    /// Puts `config` in force and starts a thread for each of its interfaces that has none.
    /// A removed zone's thread stays, and the core drops what arrives on it (`no_zone`).
    pub fn apply(self: &Arc<Self>, config: Config6) -> std::io::Result<()> {
        let interfaces: Vec<String> = config.zones.iter().map(|z| z.interface.clone()).collect();
        lock(&self.core).set_config(config);
        for interface in interfaces {
            if !lock(&self.started).insert(interface.clone()) {
                continue;
            }
            let server = Arc::clone(self);
            let name = interface.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("dhcp6-{interface}"))
                .spawn(move || server.serve(&name));
            if let Err(e) = spawned {
                lock(&self.started).remove(&interface);
                return Err(e);
            }
        }
        Ok(())
    }

    /// One interface, for ever: open (retrying), receive and answer, open again when the
    /// interface went away or a receive failed.
    fn serve(&self, interface: &str) {
        let mut delay = Duration::from_secs(1);
        let mut warned = false;
        loop {
            match open(interface) {
                Ok((socket, link, index)) => {
                    tracing::info!(
                        interface,
                        "listening on [{ALL_SERVERS}%{interface}]:{SERVER_PORT} on {interface}"
                    );
                    self.listening.fetch_add(1, Ordering::Relaxed);
                    self.receive(&socket, &link, index);
                    self.listening.fetch_sub(1, Ordering::Relaxed);
                    delay = Duration::from_secs(1);
                    warned = false;
                }
                Err(e) => {
                    if warned {
                        tracing::debug!(interface, error = %e, "dhcpv6 not ready; retrying");
                    } else {
                        tracing::warn!(interface, error = %e, "dhcpv6 not ready; retrying");
                        warned = true;
                    }
                }
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(MAX_RETRY);
        }
    }

    /// Receives until the socket fails or the interface is no longer the one it was opened
    /// on (deleted, or made again with another index).
    fn receive(&self, socket: &UdpSocket, link: &Link6, index: u32) {
        let mut buf = vec![0u8; 65536];
        loop {
            match socket.recv_from(&mut buf) {
                Ok((n, SocketAddr::V6(from))) => {
                    let reply = lock(&self.core).handle(link, from, &buf[..n], unix_now());
                    if let Some(mut reply) = reply {
                        if reply.to.scope_id() == 0 {
                            reply.to.set_scope_id(index);
                        }
                        match socket.send_to(&reply.bytes, reply.to) {
                            Ok(_) => {
                                tracing::debug!(interface = %link.interface, to = %reply.to, "sent dhcpv6 reply")
                            }
                            Err(e) => {
                                tracing::debug!(interface = %link.interface, to = %reply.to, error = %e, "dhcpv6 send failed");
                                self.send_errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
                Ok((_, SocketAddr::V4(_))) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if ifindex(&link.interface) != Some(index) {
                        tracing::warn!(interface = %link.interface, "interface changed; opening the dhcpv6 socket again");
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::warn!(interface = %link.interface, error = %e, "dhcpv6 receive failed; opening the socket again");
                    self.receive_errors.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
    }

    /// The DHCPv6 lines of `/metrics`.
    pub fn metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        let core = lock(&self.core);
        let stats = core.stats();
        let _ = writeln!(out, "# TYPE roost_dhcp6_packets_received_total counter");
        let _ = writeln!(out, "roost_dhcp6_packets_received_total {}", stats.received);
        let _ = writeln!(out, "# TYPE roost_dhcp6_requests_total counter");
        for (t, n) in &stats.by_type {
            let _ = writeln!(out, "roost_dhcp6_requests_total{{type=\"{t}\"}} {n}");
        }
        let _ = writeln!(out, "# TYPE roost_dhcp6_replies_total counter");
        let _ = writeln!(out, "roost_dhcp6_replies_total {}", stats.replies);
        let _ = writeln!(out, "# TYPE roost_dhcp6_dropped_total counter");
        for why in Drop6::ALL {
            let n = stats.dropped.get(&why).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "roost_dhcp6_dropped_total{{reason=\"{}\"}} {n}",
                why.label()
            );
        }
        drop(core);
        for (name, kind, v) in [
            ("send_errors_total", "counter", &self.send_errors),
            ("receive_errors_total", "counter", &self.receive_errors),
            ("interfaces_listening", "gauge", &self.listening),
        ] {
            let _ = writeln!(out, "# TYPE roost_dhcp6_{name} {kind}");
            let _ = writeln!(out, "roost_dhcp6_{name} {}", v.load(Ordering::Relaxed));
        }
    }

    /// The zones answered over DHCPv6 and whether any socket is open, for `/state`.
    pub fn state_json(&self) -> serde_json::Value {
        let core = lock(&self.core);
        let zones: Vec<serde_json::Value> = core
            .config()
            .zones
            .iter()
            .map(|z| serde_json::json!({ "name": z.name, "interface": z.interface, "dns": z.dns }))
            .collect();
        serde_json::json!({
            "zones": zones,
            "interfaces_listening": self.listening.load(Ordering::Relaxed),
        })
    }
}

fn read_sys(interface: &str, file: &str) -> Option<String> {
    if interface.contains('/') || interface.starts_with('.') {
        return None;
    }
    std::fs::read_to_string(format!("/sys/class/net/{interface}/{file}"))
        .ok()
        .map(|s| s.trim().to_owned())
}

fn ifindex(interface: &str) -> Option<u32> {
    read_sys(interface, "ifindex")?.parse().ok()
}

/// `aa:bb:cc:dd:ee:ff` as bytes.
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.trim().split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Whether `/proc/net/if_inet6` (its text) shows `interface` with a link-local address that
/// is neither tentative nor failed duplicate address detection.
pub fn link_local_ready(if_inet6: &str, interface: &str) -> bool {
    if_inet6.lines().any(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [addr, _, _, scope, flags, name] = f[..] else {
            return false;
        };
        let flags = u32::from_str_radix(flags, 16).unwrap_or(u32::MAX);
        // IFA_F_TENTATIVE 0x40, IFA_F_DADFAILED 0x08.
        name == interface && scope == "20" && addr.starts_with("fe80") && flags & 0x48 == 0
    })
}

/// Opens `interface`'s socket: bound to the device and to `[ff02::1:2%index]:547`, the group
/// joined on it. Also gives our DUID there and the interface index.
fn open(interface: &str) -> Result<(UdpSocket, Link6, u32), Open6Error> {
    let no_interface = || Open6Error::NoInterface(interface.to_owned());
    let index = ifindex(interface).ok_or_else(no_interface)?;
    let mac = read_sys(interface, "address")
        .and_then(|m| parse_mac(&m))
        .ok_or_else(no_interface)?;
    // /proc/self/net: the unit's ProcSubset=pid hides /proc/net, not the process's own view.
    let ready = std::fs::read_to_string("/proc/self/net/if_inet6")
        .is_ok_and(|t| link_local_ready(&t, interface));
    if !ready {
        return Err(Open6Error::NoLinkLocal(interface.to_owned()));
    }
    let err = |source| Open6Error::Socket {
        interface: interface.to_owned(),
        source,
    };
    let socket = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP)).map_err(err)?;
    socket.set_only_v6(true).map_err(err)?;
    socket.set_reuse_address(true).map_err(err)?;
    socket
        .bind_device(Some(interface.as_bytes()))
        .map_err(err)?;
    socket.join_multicast_v6(&ALL_SERVERS, index).map_err(err)?;
    let addr = SocketAddrV6::new(ALL_SERVERS, SERVER_PORT, 0, index);
    socket.bind(&SocketAddr::V6(addr).into()).map_err(err)?;
    socket.set_read_timeout(Some(CHECK_EVERY)).map_err(err)?;
    let link = Link6 {
        interface: interface.to_owned(),
        duid: duid_ll(mac),
    };
    Ok((socket.into(), link, index))
}

/// The DHCPv6 configuration in force when the view has none (no zone with IPv6).
pub fn empty_config() -> Config6 {
    Config6 {
        zones: Vec::new(),
        domain: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sysfs_macs() {
        assert_eq!(
            parse_mac("52:54:00:ab:cd:ef\n"),
            Some([0x52, 0x54, 0, 0xab, 0xcd, 0xef])
        );
        assert_eq!(parse_mac("52:54:00:ab:cd"), None);
        assert_eq!(parse_mac("52:54:00:ab:cd:ef:01"), None);
        assert_eq!(parse_mac("zz:54:00:ab:cd:ef"), None);
    }

    #[test]
    fn link_local_counts_only_after_dad() {
        let tentative = "fe80000000000000505400fffe123456 03 40 20 40      lan\n";
        let done = "fd123456789a00010000000000000002 03 40 00 80      lan\n\
                    fe80000000000000505400fffe123456 03 40 20 80      lan\n";
        assert!(!link_local_ready(tentative, "lan"));
        assert!(link_local_ready(done, "lan"));
        assert!(!link_local_ready(done, "iot"));
        assert!(!link_local_ready("garbage\n", "lan"));
    }
}
