//! The IO loop of the WAN DHCP client: a UDP socket on 0.0.0.0:68 bound to the WAN interface
//! (SO_BINDTODEVICE, SO_BROADCAST), which Linux allows before the interface has an address; the
//! client sets the broadcast flag until it holds a lease, so the server's replies reach it.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Instant;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use crate::daemon::Firewall;
use crate::dhcp::{Action, Client};

/// Starting the DHCP client failed.
#[derive(Debug, thiserror::Error)]
pub enum DhcpIoError {
    /// The interface's hardware address could not be read.
    #[error("cannot read the mac address of {interface}: {reason}")]
    Mac {
        /// The interface.
        interface: String,
        /// Why.
        reason: String,
    },
    /// The socket could not be set up.
    #[error("cannot open the dhcp client socket on {interface}: {source}")]
    Socket {
        /// The interface.
        interface: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Reads `interface`'s MAC address from sysfs.
pub fn mac_of(interface: &str) -> Result<[u8; 6], DhcpIoError> {
    let err = |reason: String| DhcpIoError::Mac {
        interface: interface.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(format!("/sys/class/net/{interface}/address"))
        .map_err(|e| err(e.to_string()))?;
    let bytes: Vec<u8> = text
        .trim()
        .split(':')
        .map(|h| u8::from_str_radix(h, 16))
        .collect::<Result<_, _>>()
        .map_err(|e| err(e.to_string()))?;
    bytes
        .try_into()
        .map_err(|_| err(format!("`{}` is not a mac address", text.trim())))
}

fn socket(interface: &str) -> Result<UdpSocket, DhcpIoError> {
    let fail = |source| DhcpIoError::Socket {
        interface: interface.to_owned(),
        source,
    };
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(fail)?;
    s.set_reuse_address(true).map_err(fail)?;
    s.set_broadcast(true).map_err(fail)?;
    s.bind_device(Some(interface.as_bytes())).map_err(fail)?;
    s.bind(&SocketAddr::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68)).into())
        .map_err(fail)?;
    s.set_nonblocking(true).map_err(fail)?;
    UdpSocket::from_std(s.into()).map_err(fail)
}

/// Runs the client on `interface` for ever, handing every lease change to `firewall`.
pub async fn run(interface: String, firewall: Arc<Firewall>) -> Result<(), DhcpIoError> {
    let mac = mac_of(&interface)?;
    let sock = socket(&interface)?;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() ^ std::process::id());
    let mut client = Client::new(mac, seed);
    tracing::info!(%interface, "dhcp client started");
    let mut buf = vec![0u8; 1500];
    loop {
        let actions = if client.needs_poll() {
            client.poll(Instant::now())
        } else {
            let deadline = client.deadline();
            tokio::select! {
                r = sock.recv_from(&mut buf) => match r {
                    Ok((n, from)) => {
                        tracing::debug!(%from, bytes = n, "dhcp packet");
                        client.handle(Instant::now(), &buf[..n])
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "dhcp receive failed");
                        Vec::new()
                    }
                },
                () = sleep_until(deadline) => client.poll(Instant::now()),
            }
        };
        for action in actions {
            match action {
                Action::Broadcast(bytes) => send(&sock, Ipv4Addr::BROADCAST, &bytes).await,
                Action::Unicast(to, bytes) => send(&sock, to, &bytes).await,
                Action::Configure(lease) => firewall.wan_lease(Some(lease)).await,
                Action::Deconfigure => firewall.wan_lease(None).await,
            }
        }
        firewall.set_dhcp_phase(client.phase());
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

async fn send(sock: &UdpSocket, to: Ipv4Addr, bytes: &[u8]) {
    if let Err(e) = sock.send_to(bytes, SocketAddrV4::new(to, 67)).await {
        tracing::warn!(%to, error = %e, "dhcp send failed; retrying at the next timer");
    }
}
