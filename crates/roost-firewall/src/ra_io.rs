//! The IO of router advertisements: one raw ICMPv6 socket per zone, bound to the zone's
//! interface (SO_BINDTODEVICE), hop limit 255, multicast loop off. It sends what the
//! [`crate::ra::Schedule`] says to all-nodes (`ff02::1`) from the router's link-local address
//! (the kernel picks it; until duplicate address detection has finished with it nothing is
//! sent) and reads router solicitations. The raw socket sees every ICMPv6 message the ruleset
//! lets in on the interface; all but solicitations are ignored, malformed ones are counted.

use std::collections::BTreeMap;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use crate::ra::{
    BadAdvertisement, BadSolicitation, Schedule, ZoneAdvert, check_advertisement,
    parse_solicitation,
};

/// What each zone interface advertises, published by the daemon whenever a view or the
/// delegated prefix changes. An interface missing from the map advertises nothing.
pub type Adverts = tokio::sync::watch::Receiver<BTreeMap<String, ZoneAdvert>>;

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct RaStats {
    /// Router advertisements sent.
    pub sent: AtomicU64,
    /// Valid router solicitations received.
    pub solicitations: AtomicU64,
    /// Router solicitations dropped as malformed.
    pub malformed: AtomicU64,
    /// Router advertisements from someone else on a zone (a rogue router; never taken).
    pub rogue: AtomicU64,
    /// Valid router advertisements from the ISP on the WAN (the kernel takes them).
    pub wan_adverts: AtomicU64,
    /// Malformed router advertisements on the WAN (the kernel drops them too).
    pub wan_malformed: AtomicU64,
}

/// Starting the advertiser failed.
#[derive(Debug, thiserror::Error)]
pub enum RaIoError {
    /// The interface's index could not be read.
    #[error("cannot read the index of {interface}: {reason}")]
    Index {
        /// The interface.
        interface: String,
        /// Why.
        reason: String,
    },
    /// The socket could not be set up.
    #[error("cannot open the router advertisement socket on {interface}: {source}")]
    Socket {
        /// The interface.
        interface: String,
        /// Why.
        source: std::io::Error,
    },
}

const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);

fn ifindex(interface: &str) -> Result<u32, RaIoError> {
    std::fs::read_to_string(format!("/sys/class/net/{interface}/ifindex"))
        .map_err(|e| e.to_string())
        .and_then(|t| {
            t.trim()
                .parse()
                .map_err(|e: std::num::ParseIntError| e.to_string())
        })
        .map_err(|reason| RaIoError::Index {
            interface: interface.to_owned(),
            reason,
        })
}

fn socket(interface: &str, index: u32) -> Result<UdpSocket, RaIoError> {
    let fail = |source| RaIoError::Socket {
        interface: interface.to_owned(),
        source,
    };
    let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6)).map_err(fail)?;
    s.bind_device(Some(interface.as_bytes())).map_err(fail)?;
    s.set_multicast_if_v6(index).map_err(fail)?;
    s.set_multicast_hops_v6(255).map_err(fail)?;
    s.set_unicast_hops_v6(255).map_err(fail)?;
    s.set_multicast_loop_v6(false).map_err(fail)?;
    // Forwarding interfaces are in all-routers already; joining again is harmless.
    if let Err(e) = s.join_multicast_v6(&ALL_ROUTERS, index) {
        tracing::debug!(%interface, error = %e, "joining ff02::2");
    }
    s.set_nonblocking(true).map_err(fail)?;
    // A raw socket is a datagram socket as far as recvfrom/sendto go; tokio's UdpSocket is
    // just those calls on a registered file descriptor (the "port" is 0 for raw sockets).
    UdpSocket::from_std(std::net::UdpSocket::from(s)).map_err(fail)
}

/// Asks the routers on the uplink `interface` to advertise (three router solicitations 4 s
/// apart, RFC 4861 §6.3.7), once its link-local address is usable, then watches their
/// advertisements for ever, counting valid and malformed ones (the kernel takes the valid
/// ones: accept_ra = 2 on the WAN only). Soliciting is needed because switching on forwarding
/// makes the kernel drop the default route it learned as a host, and the kernel solicits
/// only when the link comes up: without it the router would wait for the ISP's next
/// unsolicited advertisement (up to 10 minutes) for its IPv6 default route.
pub async fn watch_uplink(interface: String, stats: Arc<RaStats>) -> Result<(), RaIoError> {
    let index = ifindex(&interface)?;
    loop {
        let ready = std::fs::read_to_string("/proc/self/net/if_inet6")
            .is_ok_and(|t| link_local_ready(&t, &interface));
        if ready {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let sock = socket(&interface, index)?;
    let to = SocketAddrV6::new(ALL_ROUTERS, 0, 0, index);
    let mut solicitations = 0;
    let mut next = tokio::time::Instant::now();
    let mut buf = vec![0u8; 1500];
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(next), if solicitations < 3 => {
                if let Err(e) = sock.send_to(&crate::ra::solicitation(), to).await {
                    tracing::warn!(%interface, error = %e, "router solicitation not sent");
                }
                solicitations += 1;
                next += std::time::Duration::from_secs(4);
            }
            r = sock.recv_from(&mut buf) => match r {
                Ok((n, SocketAddr::V6(from))) => match check_advertisement(*from.ip(), &buf[..n]) {
                    Ok(()) => {
                        stats.wan_adverts.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(BadAdvertisement::OtherType(_)) => {}
                    Err(e) => {
                        stats.wan_malformed.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(%interface, from = %from.ip(), error = %e, "malformed router advertisement");
                    }
                },
                Ok(_) => {}
                Err(e) => tracing::warn!(%interface, error = %e, "icmpv6 receive failed"),
            },
        }
    }
}

/// Whether `interface` has a link-local address that finished duplicate address detection
/// (`/proc/self/net/if_inet6`: scope 0x20, neither tentative 0x40 nor dadfailed 0x08).
pub fn link_local_ready(if_inet6: &str, interface: &str) -> bool {
    if_inet6.lines().any(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [addr, _, _, scope, flags, name] = f[..] else {
            return false;
        };
        let flags = u32::from_str_radix(flags, 16).unwrap_or(u32::MAX);
        name == interface && scope == "20" && addr.starts_with("fe80") && flags & 0x48 == 0
    })
}

fn read_sys(interface: &str, file: &str) -> Option<String> {
    std::fs::read_to_string(format!("/sys/class/net/{interface}/{file}"))
        .ok()
        .map(|s| s.trim().to_owned())
}

/// Advertises on `interface` for ever (what `adverts` says for it), answering solicitations;
/// a change is advertised within seconds.
pub async fn run(
    interface: String,
    mut adverts: Adverts,
    stats: Arc<RaStats>,
) -> Result<(), RaIoError> {
    let index = ifindex(&interface)?;
    let sock = socket(&interface, index)?;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()) ^ u64::from(index) << 32);
    let mut schedule = Schedule::new(Instant::now(), seed);
    tracing::info!(%interface, "router advertisements started");
    let mut buf = vec![0u8; 1500];
    loop {
        let deadline = schedule.deadline();
        tokio::select! {
            r = sock.recv_from(&mut buf) => match r {
                Ok((n, SocketAddr::V6(from))) => {
                    match parse_solicitation(*from.ip(), &buf[..n]) {
                        Ok(_) => {
                            stats.solicitations.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(%interface, from = %from.ip(), "router solicitation");
                            schedule.solicited(Instant::now());
                        }
                        Err(BadSolicitation::OtherType(_)) => {
                            if check_advertisement(*from.ip(), &buf[..n]).is_ok() {
                                stats.rogue.fetch_add(1, Ordering::Relaxed);
                                tracing::debug!(%interface, from = %from.ip(), "router advertisement from another router on the zone (ignored)");
                            }
                        }
                        Err(e) => {
                            stats.malformed.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(%interface, from = %from.ip(), error = %e, "dropped");
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(%interface, error = %e, "icmpv6 receive failed"),
            },
            changed = adverts.changed() => {
                if changed.is_err() {
                    // The daemon is gone.
                    return Ok(());
                }
                schedule.changed(Instant::now());
            }
            () = tokio::time::sleep_until(deadline.into()) => {
                let now = Instant::now();
                if !schedule.poll(now) {
                    continue;
                }
                let zone = adverts.borrow_and_update().get(&interface).cloned();
                let Some(zone) = zone else { continue };
                let ready = std::fs::read_to_string("/proc/self/net/if_inet6")
                    .is_ok_and(|t| link_local_ready(&t, &interface));
                if !ready {
                    schedule.retry_soon(now);
                    continue;
                }
                let mut ad = zone.advert(now);
                ad.source_mac = crate::dhcp_io::mac_of(&interface).ok();
                ad.mtu = read_sys(&interface, "mtu").and_then(|m| m.parse().ok());
                let to = SocketAddrV6::new(ALL_NODES, 0, 0, index);
                match sock.send_to(&ad.encode(), to).await {
                    Ok(_) => {
                        stats.sent.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(%interface, prefixes = ad.prefixes.len(), "router advertisement sent");
                    }
                    Err(e) => {
                        tracing::warn!(%interface, error = %e, "router advertisement not sent");
                        schedule.retry_soon(now);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_counts_only_after_dad() {
        let tentative = "fe80000000000000505400fffe123456 03 40 20 40      lan\n";
        let done = "fe80000000000000505400fffe123456 03 40 20 80      lan\n\
                    fd123456789a00010000000000000001 03 40 00 80      lan\n";
        assert!(!link_local_ready(tentative, "lan"));
        assert!(link_local_ready(done, "lan"));
        assert!(!link_local_ready(done, "iot"));
        assert!(!link_local_ready("garbage\n", "lan"));
    }
}
