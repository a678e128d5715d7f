//! # roost-firewall: the routing core
//!
//! Runs in the **firewall VM** (the `roost-fw` namespace in the lab), the only router between the
//! zones. It reads `/etc/roost/firewall.toml` (the firewall view of `roost.toml`, see
//! `roost_config::views::FirewallView`) and:
//!
//! 1. addresses its interfaces: each zone's router address on the interface named by the zone's
//!    `interface`, the firewall end of each service link on `svc-<service>`, and on `wan` the
//!    static address and default route, or the address a DHCP lease gives; brings them up and
//!    enables IPv4 forwarding (in its own namespace); on zones with IPv6 (`ipv6` in the view)
//!    also the router's `<ula>:<index>::1/64`, IPv6 forwarding, and no RA accepted there;
//! 2. compiles the view into one nftables ruleset ([`compile`], sans-IO) and applies it in one
//!    `nft -f` transaction that replaces `table inet roost` ([`nft`]); a failed apply leaves the
//!    previous ruleset in place;
//! 3. on `wan.mode = "dhcp"`, runs a DHCP client on `wan` ([`dhcp`]: a sans-IO state machine
//!    over dhcproto, with a UDP socket bound to the interface), re-addressing `wan` and
//!    recompiling the ruleset (hairpin NAT uses the WAN address) on every lease change;
//! 4. sends router advertisements on each IPv6 zone ([`ra`], sans-IO; [`ra_io`], one raw
//!    ICMPv6 socket per zone): the zone's ULA /64 and its /64 of the delegated prefix for
//!    SLAAC, MTU, router lifetime; unsolicited every 200-600 s, in answer to router
//!    solicitations, and within seconds of a prefix change; RDNSS and DNSSL name the
//!    resolver at the router's ULA address (DNAT'd to the dns VM's link) and the domain;
//! 5. with `[wan.ipv6]`, runs a DHCPv6 client on the uplink ([`dhcp6`], sans-IO over
//!    dhcproto; [`dhcp6_io`]) for an address and a delegated prefix, and puts the lease in
//!    place ([`delegation`]: zone /64s, the WAN address, an unreachable route for the rest
//!    of the prefix, the ruleset's v6 sources; a withdrawn prefix is deprecated);
//! 6. with IPv6 on, pairs each host's IPv4 and IPv6 addresses from its neighbour tables and
//!    pushes them to dns ([`neighbours`]), so lease names get AAAA records;
//! 7. serves the control API (`roost-control`) on its end of the web link
//!    (`control.listen`, e.g. `10.254.0.13:9100`), token from `control.token_file`:
//!    `/health`, `/metrics` (per-zone packet and byte counters), `/state` (the active ruleset's
//!    sha256, counters, WAN address), `PUT /config` (check, compile, apply; old kept on error).
//!
//! Needs CAP_NET_ADMIN (and CAP_NET_RAW for DHCP and router advertisements), the `nft` and
//! `ip` commands.

pub mod check;
pub mod compile;

pub use check::{InvalidView, check};
pub use compile::{Ruleset, TABLE, WanState, compile, counter_name};
pub mod daemon;
pub mod delegation;
pub mod dhcp;
pub mod dhcp6;
pub mod dhcp6_io;
pub mod dhcp_io;
mod jitter;
pub mod neighbours;
pub mod netcfg;
pub mod nft;
pub mod ra;
pub mod ra_io;

pub use daemon::{Firewall, RunError, run};
