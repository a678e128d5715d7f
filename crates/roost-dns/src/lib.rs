//! # roost-dns: the router's caching DNS resolver
//!
//! Runs in the **dns VM** (lab: namespace `<prefix>-dns`, interface `svc`). Clients send
//! queries to their zone's router address; the firewall DNATs port 53 to this VM's end of its
//! service link, keeping the client's source address, so queries from outside
//! `DnsView.clients` are refused here.
//!
//! - **Ports**: DNS on UDP and TCP 53 of the service-link address (`DnsView.control.listen`'s
//!   IP, and the link's IPv6 address when it has one; `--dns-listen` overrides it for tests); the control API on `DnsView.control.listen`
//!   (`/health`, `/metrics`, `/state`, `PUT /config` from roost-control, plus
//!   `PUT /local-names`, the DHCP server's lease push, a JSON [`local::LocalNames`]).
//! - **Files**: the view `/etc/roost/dns.toml`, the control token `DnsView.control.token_file`,
//!   block lists named in the view; state directory `$STATE_DIRECTORY`
//!   (`/var/lib/roost/dns`), unused so far (the cache lives in memory).
//!
//! Layers, from the wire in: [`wire`] reads queries and pre-encodes answers (no full decode on
//! the fast path); [`resolver`] decides about each query without IO (refuse, rate-limit,
//! local, blocked, cached) and forwards the rest with coalescing and serve-stale; [`cache`]
//! (sans-IO, bounded, CLOCK eviction), [`local`], [`blocklist`] and [`ratelimit`] are its
//! parts; [`upstream`] talks to forwarders (UDP, TCP on truncation); [`server`] is the socket
//! loop and [`control`] the control API. hickory-proto decodes every upstream answer once
//! before it is cached. Decisions: `docs/adr/0005-dns-resolver.md`.

pub mod blocklist;
pub mod cache;
pub mod control;
pub mod dnssec;
pub mod local;
pub mod ratelimit;
pub mod recursive;
pub mod resolver;
pub mod server;
pub mod tls;
pub mod top;
pub mod upstream;
pub mod wire;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use roost_config::views::DnsView;
use tokio::net::{TcpListener, UdpSocket};

pub use resolver::Resolver;

/// Starting or running the resolver failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The settings could not be applied (block list, TLS, trust anchor).
    #[error(transparent)]
    Policy(#[from] resolver::PolicyError),
    /// A DNS socket could not be bound.
    #[error("cannot listen for dns on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The control API failed.
    #[error(transparent)]
    Control(#[from] roost_control::ControlError),
}

/// How to run, beyond the view.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Where to listen for DNS; default the control address's IP, port 53.
    pub dns_listen: Option<SocketAddr>,
    /// State directory.
    pub state_dir: PathBuf,
}

/// Binds UDP and TCP on the same address; with port 0, on the same kernel-chosen port.
async fn bind_dns(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), RunError> {
    let bind_err = |addr, source| RunError::Bind { addr, source };
    for _ in 0..20 {
        let udp = UdpSocket::bind(addr).await.map_err(|e| bind_err(addr, e))?;
        let bound = udp.local_addr().map_err(|e| bind_err(addr, e))?;
        match TcpListener::bind(bound).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if addr.port() != 0 => return Err(bind_err(bound, e)),
            Err(_) => continue, // that port's TCP side is taken: pick another
        }
    }
    Err(bind_err(
        addr,
        std::io::Error::other("no port free for both udp and tcp"),
    ))
}

/// Runs the resolver until SIGTERM/SIGINT.
pub async fn run(view: DnsView, opts: RunOptions) -> Result<(), RunError> {
    let dns_addr = opts
        .dns_listen
        .unwrap_or_else(|| SocketAddr::new(IpAddr::V4(*view.control.listen.ip()), 53));
    let token = roost_control::Token::load(&view.control.token_file)?;
    let control_addr = SocketAddr::V4(view.control.listen);
    let upstreams = view.dns.upstreams.len();
    let view_for_resolver = view.clone();
    let resolver = Arc::new(
        tokio::task::spawn_blocking(move || Resolver::new(view_for_resolver))
            .await
            .map_err(|e| RunError::Bind {
                addr: dns_addr,
                source: std::io::Error::other(e.to_string()),
            })??,
    );
    let (udp, tcp) = bind_dns(dns_addr).await?;
    let bound = udp.local_addr().map_err(|source| RunError::Bind {
        addr: dns_addr,
        source,
    })?;
    tracing::info!(addr = %bound, upstreams, state_dir = %opts.state_dir.display(), "dns listening on {bound} (udp+tcp)");
    let udp = Arc::new(udp);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    for _ in 0..workers {
        tokio::spawn(server::serve_udp(Arc::clone(&resolver), Arc::clone(&udp)));
    }
    tokio::spawn(server::serve_tcp(Arc::clone(&resolver), tcp));
    // Over IPv6 too, on the link's v6 address (the firewall forwards each zone's router ULA
    // address there), unless a test chose the address.
    if let (None, Some(v6)) = (opts.dns_listen, view.network.link_address6()) {
        let (udp6, tcp6) = bind_dns(SocketAddr::new(IpAddr::V6(v6), 53)).await?;
        tracing::info!(addr = %v6, "dns listening on [{v6}]:53 (udp+tcp)");
        tokio::spawn(server::serve_udp(Arc::clone(&resolver), Arc::new(udp6)));
        tokio::spawn(server::serve_tcp(Arc::clone(&resolver), tcp6));
    }
    let sweeper = Arc::clone(&resolver);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            sweeper.sweep();
        }
    });
    let listener = roost_control::bind(control_addr).await?;
    let app = control::app(resolver, token);
    roost_control::serve(listener, app, roost_control::shutdown_signal()).await?;
    Ok(())
}
