//! # roost-dhcp: the router's DHCPv4 server and stateless DHCPv6 server
//!
//! Runs in the **dhcp VM**, which sits on every zone bridge that has a pool (one interface per
//! zone, named after it, addressed with the zone's `dhcp.server` address) and on its own
//! service link to the firewall VM (`svc`, ADR 0001).
//!
//! - **Ports**: UDP 67 on each zone interface (`0.0.0.0:67` with `SO_BINDTODEVICE`; replies
//!   to port 68, or to a relay's port 67); UDP 547 on each zone interface with IPv6
//!   (`DhcpZoneView.ipv6_dns`): `[ff02::1:2%<zone>]:547`, replies to the client's link-local
//!   address, port 546 (stateless DHCPv6, RFC 8415 §6.1: resolver and search domain for
//!   hosts that took their address by SLAAC, ADR 0009); the control API on
//!   `ControlView.listen` (TCP 9100 on the service link: `/health`, `/metrics`, `/state`,
//!   `PUT /config`, bearer token from `ControlView.token_file`; see `roost-control`).
//! - **Files**: the view `/etc/roost/dhcp.toml` (`--config`); the lease journal
//!   `$STATE_DIRECTORY/leases.journal` (default `/var/lib/roost/dhcp`).
//!
//! Layers, from the wire in:
//! - [`server`]: sockets, the engine thread (batches of packets, group commit), the control
//!   API's handlers. All the DHCPv4 IO lives here.
//! - [`core`]: the sans-IO decision core, `(state, packet, now) -> (reply, lease changes)`:
//!   RFC 2131/2132 message handling, pools, reservations, quarantine, rate limit, counters.
//! - [`server6`] and [`core6`]: stateless DHCPv6, the same split: per-interface sockets and
//!   threads that wait for the interface's link-local address; a sans-IO core that answers
//!   INFORMATION-REQUEST (DNS servers, domain search list, information refresh time) and
//!   counts and ignores the stateful messages (no addresses to give: SLAAC does that).
//! - [`store`]: the append-only, fsynced, CRC-checked lease journal with compaction
//!   (docs/adr/0004-dhcp-lease-store.md). Every change is durable before its ACK is sent.
//!
//! - [`push`]: lease names to roost-dns (`PUT /local-names` on `DhcpView.dns_peer`), on a
//!   task of its own: coalesced, retried with backoff, re-pushed for a restarted dns.
//!
//! Host names come from option 81 or option 12, made one DNS label ([`core::host_label`]),
//! or from a reservation's `hostname`, which wins; no client may take a reserved name.

pub mod core;
pub mod core6;
pub mod push;
pub mod server;
pub mod server6;
pub mod store;

use std::path::PathBuf;

use roost_config::views::DhcpView;

pub use crate::core::{Config, Core, Decision, Lease};

/// Starting or running the server failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The view does not make a server configuration.
    #[error("invalid dhcp view: {0}")]
    Config(#[from] crate::core::ConfigError),
    /// The lease journal could not be opened.
    #[error("{0}")]
    Store(#[from] store::StoreError),
    /// A zone interface's socket could not be opened.
    #[error("{0}")]
    Socket(#[from] server::SocketError),
    /// A thread could not be started.
    #[error("cannot start the dhcp engine: {0}")]
    Thread(std::io::Error),
    /// The control API failed.
    #[error("{0}")]
    Control(#[from] roost_control::ControlError),
}

/// Runs the server until SIGTERM or SIGINT.
pub async fn run(view: DhcpView, state_dir: PathBuf) -> Result<(), RunError> {
    let config = Config::from_view(&view)?;
    let (store, loaded) = store::Store::open(&state_dir)?;
    if loaded.cut_bytes > 0 {
        tracing::warn!(
            cut_bytes = loaded.cut_bytes,
            damaged_copy = ?loaded.damaged_copy,
            "lease journal had a torn or damaged tail; cut back to the last good record"
        );
    }
    tracing::info!(
        records = loaded.records,
        journal = %store.path().display(),
        "lease journal opened"
    );
    let mut core = Core::new(config);
    core.restore(loaded.leases);
    let interfaces: Vec<String> = core
        .config()
        .zones
        .iter()
        .map(|z| z.interface.clone())
        .collect();
    let shared = server::Shared::start(core, store, loaded.cut_bytes).map_err(RunError::Thread)?;
    for interface in &interfaces {
        shared.serve_interface(interface)?;
    }
    // Stateless DHCPv6 on the zones with IPv6: each interface waits for its link-local
    // address on a thread of its own, so none of them holds up or fails the start.
    shared
        .v6
        .apply(core6::Config6::from_view(&view))
        .map_err(RunError::Thread)?;
    let pusher = {
        let source = std::sync::Arc::clone(&shared);
        push::run(
            view.dns_peer.clone(),
            push::Timing::default(),
            move || source.local_names(),
            std::sync::Arc::clone(&shared.names_changed),
            std::sync::Arc::clone(&shared.push),
        )
    };
    tokio::spawn(pusher);
    let token = roost_control::Token::load(&view.control.token_file)?;
    let app = roost_control::router(
        std::sync::Arc::new(server::Dhcp(shared)),
        token,
        roost_control::Limits::default(),
    );
    let listener = roost_control::bind(view.control.listen.into()).await?;
    roost_control::serve(listener, app, roost_control::shutdown_signal()).await?;
    Ok(())
}
