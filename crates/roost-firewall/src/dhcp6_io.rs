//! The IO loop of the WAN DHCPv6 client: a UDP socket on `[::]:546` bound to the uplink
//! (SO_BINDTODEVICE), sending to `ff02::1:2` port 547 from the interface's link-local address,
//! which it waits for (duplicate address detection) before the first message. Router
//! advertisements on the WAN (accepted there only) give the default route; the lease gives the
//! address and the delegated prefix, handed to [`Firewall::wan6_lease`].

use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use crate::daemon::Firewall;
use crate::dhcp6::{Action, Client, MAX_MESSAGE};

/// All_DHCP_Relay_Agents_and_Servers (RFC 8415 §7.1).
const SERVERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);

/// Starting the DHCPv6 client failed.
#[derive(Debug, thiserror::Error)]
pub enum Dhcp6IoError {
    /// The interface's hardware address or index could not be read.
    #[error(transparent)]
    Interface(#[from] crate::dhcp_io::DhcpIoError),
    /// The socket could not be set up.
    #[error("cannot open the dhcpv6 client socket on {interface}: {source}")]
    Socket {
        /// The interface.
        interface: String,
        /// Why.
        source: std::io::Error,
    },
}

fn socket(interface: &str, index: u32) -> Result<UdpSocket, Dhcp6IoError> {
    let fail = |source| Dhcp6IoError::Socket {
        interface: interface.to_owned(),
        source,
    };
    let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP)).map_err(fail)?;
    s.set_only_v6(true).map_err(fail)?;
    s.set_reuse_address(true).map_err(fail)?;
    s.bind_device(Some(interface.as_bytes())).map_err(fail)?;
    s.set_multicast_if_v6(index).map_err(fail)?;
    s.bind(&SocketAddr::from(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 546, 0, 0)).into())
        .map_err(fail)?;
    s.set_nonblocking(true).map_err(fail)?;
    UdpSocket::from_std(s.into()).map_err(fail)
}

fn ifindex(interface: &str) -> Option<u32> {
    std::fs::read_to_string(format!("/sys/class/net/{interface}/ifindex"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Runs the client on `interface` for ever, asking for a /`hint`, handing every lease change
/// to `firewall`.
pub async fn run(interface: String, hint: u8, firewall: Arc<Firewall>) -> Result<(), Dhcp6IoError> {
    let mac = crate::dhcp_io::mac_of(&interface)?;
    // The WAN must be up with a usable link-local address before anything can be sent.
    let index = loop {
        let ready = std::fs::read_to_string("/proc/self/net/if_inet6")
            .is_ok_and(|t| crate::ra_io::link_local_ready(&t, &interface));
        if let (true, Some(i)) = (ready, ifindex(&interface)) {
            break i;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let sock = socket(&interface, index)?;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| {
            u64::from(d.subsec_nanos()) ^ u64::from(std::process::id()) << 32
        });
    let mut client = Client::new(mac, hint, Instant::now(), seed);
    tracing::info!(%interface, hint, "dhcpv6 client started");
    let mut buf = vec![0u8; MAX_MESSAGE + 1];
    let to = SocketAddrV6::new(SERVERS, 547, 0, index);
    loop {
        let actions = if client.needs_poll() {
            client.poll(Instant::now())
        } else {
            let deadline = client.deadline();
            tokio::select! {
                r = sock.recv_from(&mut buf) => match r {
                    Ok((n, from)) => match client.handle(Instant::now(), &buf[..n]) {
                        Ok(actions) => actions,
                        Err(e) => {
                            firewall.dhcp6_dropped.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(%from, error = %e, "dhcpv6 message dropped");
                            Vec::new()
                        }
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "dhcpv6 receive failed");
                        Vec::new()
                    }
                },
                () = tokio::time::sleep_until(deadline.into()) => client.poll(Instant::now()),
            }
        };
        for action in actions {
            match action {
                Action::Send(bytes) => {
                    if let Err(e) = sock.send_to(&bytes, to).await {
                        tracing::warn!(error = %e, "dhcpv6 send failed; retrying at the next timer");
                    }
                }
                Action::Configure(lease) => {
                    tracing::info!(
                        prefix = ?lease.prefix().map(|p| p.value),
                        address = ?lease.address.map(|a| a.value),
                        "dhcpv6 lease"
                    );
                    firewall.wan6_lease(Some(lease)).await;
                }
                Action::Deconfigure => firewall.wan6_lease(None).await,
            }
        }
        if let Ok(mut p) = firewall.dhcp6_phase.lock() {
            *p = Some(client.phase());
        }
    }
}
