//! The sans-IO ruleset compiler: a firewall view and the WAN's current address in, one nft script
//! out. The script replaces `table inet roost` in a single `nft -f` transaction (see
//! `docs/adr/0002-firewall-ruleset.md`); nothing here touches the system.
//!
//! Policy, in the order the chains apply it:
//! - `input` and `forward` drop by default; established and related traffic passes, invalid is
//!   dropped, the ICMP and ICMPv6 errors pass (packet-too-big too, RFC 4890), echo requests to the
//!   router pass from zones and service links (rate-limited). Neighbour and router discovery
//!   reach the router only with hop limit 255 (RFC 4861: never forwarded), MLD only from
//!   link-local sources.
//! - The tables are `inet`, so one policy covers IPv4 and IPv6: `reach`, extra rules and the
//!   per-source chains match interfaces, not families. A zone's IPv6 sources must be in its ULA
//!   /64 or its /64 of the delegated prefix (a zone without IPv6 gets none forwarded at all);
//!   ULA sources are refused out of the WAN; published ports, port forwards and NAT are IPv4
//!   only (no NAT66: masquerade is for IPv4).
//! - Traffic from a zone jumps to `from_<zone>`: published service ports (DNAT'd in `prerouting`
//!   from the zone's router address to the service VM), extra rules, hairpin port forwards, then
//!   one accept per entry of `reach`. A zone's source addresses are checked (no spoofing).
//! - Traffic from the WAN jumps to `from_wan`: only DNAT'd port forwards, their IPv6 pinholes
//!   (`ipv6_host`, at the zone's delegated /64) and extra rules.
//! - Traffic from a service link (with the service's own address) jumps to `from_svc_<service>`:
//!   only its flows. Flows to the firewall itself (the web VM to the control API) are input rules.
//! - `postrouting` masquerades out of the WAN (so it follows any WAN address change by itself)
//!   and SNATs hairpin connections to the router address of the target's zone.
//! - Named counters `zone_<zone>_in`/`_out` and `wan_in`/`_out` count what enters from and leaves
//!   to each zone; `/metrics` reads them.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use ipnet::{Ipv4Net, Ipv6Net};
use roost_config::Service;
use roost_config::settings::{Protocol, RuleAction, WanMode};
use roost_config::views::{FirewallView, FirewallZone, FlowTarget};
use sha2::{Digest, Sha256};

use crate::check::{InvalidView, check};

/// The nftables table Roost owns; nothing else is touched.
pub const TABLE: &str = "roost";

/// What the compiler needs to know about the uplink at this moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WanState {
    /// The WAN address, once known (static, or from the DHCP lease). Hairpin NAT needs it.
    pub address: Option<Ipv4Net>,
    /// The default gateway, once known.
    pub gateway: Option<Ipv4Addr>,
    /// The prefix the ISP delegated (DHCPv6), once known: each IPv6 zone's /64 of it is a
    /// source the zone may use beside its ULA /64.
    pub delegated: Option<Ipv6Net>,
}

/// A compiled ruleset: an nft script for one `nft -f` transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    text: String,
}

impl Ruleset {
    /// The nft script.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Lowercase hex sha256 of the script: the ruleset's identity in `/state`.
    pub fn sha256(&self) -> String {
        Sha256::digest(self.text.as_bytes())
            .iter()
            .fold(String::with_capacity(64), |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            })
    }
}

/// The named counter of what enters from `zone` (`dir` = `in`) or leaves to it (`out`).
pub fn counter_name(zone: &str, dir: &str) -> String {
    if zone == "wan" {
        format!("wan_{dir}")
    } else {
        format!("zone_{}_{dir}", ident(zone))
    }
}

fn ident(name: &str) -> String {
    name.replace('-', "_")
}

/// Text safe inside an nft comment string.
fn comment(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .take(120)
        .collect();
    format!("comment \"{clean}\"")
}

fn port_set(ports: &[u16]) -> String {
    match ports {
        [one] => one.to_string(),
        many => {
            let list: Vec<String> = many.iter().map(u16::to_string).collect();
            format!("{{ {} }}", list.join(", "))
        }
    }
}

/// The transport match for a filter rule (`Both` as one set).
fn l4(proto: Protocol, ports: &[u16]) -> String {
    let name = match proto {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Both => "{ tcp, udp }",
    };
    match (proto, ports.is_empty()) {
        (_, true) => format!("meta l4proto {name}"),
        (Protocol::Both, false) => format!("meta l4proto {name} th dport {}", port_set(ports)),
        (_, false) => format!("{name} dport {}", port_set(ports)),
    }
}

/// The protocols of `proto` one by one, for NAT rules that rewrite the port.
fn each(proto: Protocol) -> &'static [&'static str] {
    match proto {
        Protocol::Tcp => &["tcp"],
        Protocol::Udp => &["udp"],
        Protocol::Both => &["tcp", "udp"],
    }
}

fn quoted_set(names: &[&str]) -> String {
    match names {
        [one] => format!("\"{one}\""),
        many => {
            let list: Vec<String> = many.iter().map(|n| format!("\"{n}\"")).collect();
            format!("{{ {} }}", list.join(", "))
        }
    }
}

struct Out {
    text: String,
}

impl Out {
    fn line(&mut self, depth: usize, s: impl AsRef<str>) {
        for _ in 0..depth {
            self.text.push('\t');
        }
        self.text.push_str(s.as_ref());
        self.text.push('\n');
    }
}

/// Compiles `view` with the WAN as `wan` says into one ruleset. Fails only on a view that
/// [`check`] refuses.
pub fn compile(view: &FirewallView, wan: &WanState) -> Result<Ruleset, InvalidView> {
    check(view)?;
    let mut o = Out {
        text: String::new(),
    };
    // Over PPPoE the Internet is behind ppp0, which pppd makes on the WAN NIC.
    let wan_if = view.wan.uplink();
    let zone = |name: &str| view.zones.iter().find(|z| z.name == name);
    let oif_of = |name: &str| -> String {
        if name == "wan" {
            wan_if.to_owned()
        } else {
            zone(name).map_or_else(String::new, |z| z.interface.clone())
        }
    };
    let link = |s: Service| view.links.iter().find(|l| l.service == s);
    let zone_of = |ip: Ipv4Addr| view.zones.iter().find(|z| z.subnet.contains(&ip));
    let forwards: Vec<_> = view.port_forwards.iter().filter(|p| p.enabled).collect();
    // Zones allowed to use a port forward through the WAN address (hairpin): the target's own
    // zone and the zones that reach it anyway. IoT and guest never get to the LAN this way.
    let hairpin_zones = |target: &FirewallZone| -> Vec<&FirewallZone> {
        view.zones
            .iter()
            .filter(|z| z.name == target.name || z.reach.contains(&target.name))
            .collect()
    };

    o.line(0, "#!/usr/sbin/nft -f");
    o.line(
        0,
        "# Roost firewall ruleset, compiled by roost-firewall from /etc/roost/firewall.toml.",
    );
    o.line(
        0,
        "# Do not edit: it is replaced as a whole, in one transaction, on every change.",
    );
    match wan.address {
        Some(a) => o.line(0, format!("# WAN address: {a}")),
        None => o.line(
            0,
            "# WAN address: not known yet (no hairpin NAT until it is)",
        ),
    }
    o.line(0, format!("table inet {TABLE} {{}}"));
    o.line(0, format!("delete table inet {TABLE}"));
    o.line(0, "");
    o.line(0, format!("table inet {TABLE} {{"));

    // Counters.
    let mut counted: Vec<(&str, &str)> = view
        .zones
        .iter()
        .map(|z| (z.name.as_str(), z.interface.as_str()))
        .collect();
    counted.push(("wan", wan_if));
    for (name, _) in &counted {
        for dir in ["in", "out"] {
            o.line(1, format!("counter {} {{", counter_name(name, dir)));
            o.line(1, "}");
        }
    }
    let count_in = |o: &mut Out| {
        for (name, iface) in &counted {
            o.line(
                2,
                format!(
                    "iifname \"{iface}\" counter name \"{}\"",
                    counter_name(name, "in")
                ),
            );
        }
    };
    let count_out = |o: &mut Out| {
        for (name, iface) in &counted {
            o.line(
                2,
                format!(
                    "oifname \"{iface}\" counter name \"{}\"",
                    counter_name(name, "out")
                ),
            );
        }
    };
    let icmp_errors =
        "icmp type { destination-unreachable, time-exceeded, parameter-problem } accept";
    let icmpv6_errors = "icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, \
                         parameter-problem } accept";

    // Input: the router itself.
    o.line(0, "");
    o.line(1, "chain input {");
    o.line(2, "type filter hook input priority filter; policy drop;");
    count_in(&mut o);
    o.line(2, "iif \"lo\" accept");
    o.line(2, "ct state established,related accept");
    o.line(2, "ct state invalid drop");
    o.line(2, icmp_errors);
    o.line(2, icmpv6_errors);
    o.line(
        2,
        "icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, \
         nd-neighbor-advert, ind-neighbor-solicit, ind-neighbor-advert } ip6 hoplimit 255 accept",
    );
    o.line(
        2,
        "ip6 saddr fe80::/10 icmpv6 type { mld-listener-query, mld-listener-report, \
         mld-listener-done, mld2-listener-report } accept",
    );
    let mut inside: Vec<&str> = view.zones.iter().map(|z| z.interface.as_str()).collect();
    inside.extend(view.links.iter().map(|l| l.interface.as_str()));
    if !inside.is_empty() {
        o.line(
            2,
            format!(
                "iifname {} icmp type echo-request limit rate 20/second accept",
                quoted_set(&inside)
            ),
        );
        o.line(
            2,
            format!(
                "iifname {} icmpv6 type echo-request limit rate 20/second accept",
                quoted_set(&inside)
            ),
        );
    }
    if view.wan.mode == WanMode::Dhcp {
        o.line(
            2,
            format!(
                "iifname \"{wan_if}\" udp sport 67 udp dport 68 accept {}",
                comment("wan dhcp client")
            ),
        );
    }
    if view.wan.ipv6.is_some() {
        // Replies come from the server's link-local address to ours: conntrack cannot tie
        // them to a request sent to a multicast group.
        o.line(
            2,
            format!(
                "iifname \"{wan_if}\" ip6 saddr fe80::/10 udp sport 547 udp dport 546 accept {}",
                comment("wan dhcpv6 client")
            ),
        );
    }
    for f in &view.flows {
        if f.to != FlowTarget::Service(Service::Firewall) {
            continue;
        }
        let Some(from) = link(f.from) else { continue };
        o.line(
            2,
            format!(
                "iifname \"{}\" ip saddr {} ip daddr {} {} accept {}",
                from.interface,
                from.link.service,
                view.control.listen.ip(),
                l4(f.protocol, &f.ports),
                comment(&format!("{} -> firewall", f.from)),
            ),
        );
    }
    o.line(1, "}");

    // Forward: between zones, service links and the WAN.
    o.line(0, "");
    o.line(1, "chain forward {");
    o.line(2, "type filter hook forward priority filter; policy drop;");
    count_in(&mut o);
    count_out(&mut o);
    if view.wan.mode == WanMode::Pppoe {
        // PPPoE's 1492-byte MTU: clients' SYNs get an MSS that fits, or large transfers stall
        // where ICMP "fragmentation needed" is filtered on the way.
        o.line(
            2,
            format!(
                "tcp flags & (syn | rst) == syn tcp option maxseg size set rt mtu {}",
                comment("pppoe mss clamp")
            ),
        );
    }
    o.line(2, "ct state established,related accept");
    o.line(2, "ct state invalid drop");
    o.line(2, icmp_errors);
    o.line(2, icmpv6_errors);
    // ULA sources are not routed on the Internet: refuse them at once (RFC
    // 6724 hosts then pick their global address) instead of letting them time out.
    o.line(
        2,
        format!(
            "oifname \"{wan_if}\" ip6 saddr fc00::/7 reject with icmpv6 type policy-fail {}",
            comment("no ula to the internet")
        ),
    );
    for z in &view.zones {
        o.line(
            2,
            format!("iifname \"{}\" ip saddr != {} drop", z.interface, z.subnet),
        );
        match &z.ipv6 {
            Some(v6) => {
                let sources = match wan.delegated.and_then(|p| v6.delegated_subnet(p)) {
                    Some(global) => format!("{{ {}, {global} }}", v6.subnet),
                    None => v6.subnet.to_string(),
                };
                o.line(
                    2,
                    format!("iifname \"{}\" ip6 saddr != {sources} drop", z.interface),
                );
            }
            None => o.line(
                2,
                format!(
                    "iifname \"{}\" meta nfproto ipv6 drop {}",
                    z.interface,
                    comment("no ipv6 in this zone")
                ),
            ),
        }
        o.line(
            2,
            format!("iifname \"{}\" jump from_{}", z.interface, ident(&z.name)),
        );
    }
    o.line(2, format!("iifname \"{wan_if}\" jump from_wan"));
    for l in &view.links {
        o.line(
            2,
            format!(
                "iifname \"{}\" ip saddr {} jump from_svc_{}",
                l.interface, l.link.service, l.service
            ),
        );
    }
    o.line(1, "}");

    // Per-source chains.
    let extra_rules = |o: &mut Out, from: &str| {
        for r in view.rules.iter().filter(|r| r.from == from) {
            let verdict = match r.action {
                RuleAction::Accept => "accept",
                RuleAction::Drop => "drop",
            };
            o.line(
                2,
                format!(
                    "oifname \"{}\" {} {verdict} {}",
                    oif_of(&r.to),
                    l4(r.protocol, &r.ports),
                    comment(&format!("rule {}", r.name))
                ),
            );
        }
    };
    for z in &view.zones {
        o.line(0, "");
        o.line(1, format!("chain from_{} {{", ident(&z.name)));
        extra_rules(&mut o, &z.name);
        for p in view.published.iter().filter(|p| p.zones.contains(&z.name)) {
            let Some(l) = link(p.service) else { continue };
            o.line(
                2,
                format!(
                    "oifname \"{}\" ip daddr {} {} ct status dnat accept {}",
                    l.interface,
                    p.to.ip(),
                    l4(p.protocol, &[p.to.port()]),
                    comment(&format!("{} {}", p.service, p.port)),
                ),
            );
            if let (Some(to6), Some(_)) = (p.to6, z.ipv6) {
                o.line(
                    2,
                    format!(
                        "oifname \"{}\" ip6 daddr {} {} ct status dnat accept {}",
                        l.interface,
                        to6.ip(),
                        l4(p.protocol, &[to6.port()]),
                        comment(&format!("{} {} over ipv6", p.service, p.port)),
                    ),
                );
            }
        }
        for pf in &forwards {
            if wan.address.is_none() || zone_of(pf.to).map(|t| &t.name) != Some(&z.name) {
                continue;
            }
            o.line(
                2,
                format!(
                    "oifname \"{}\" ip daddr {} {} ct status dnat accept {}",
                    z.interface,
                    pf.to,
                    l4(pf.protocol, &[pf.to_port.unwrap_or(pf.port)]),
                    comment(&format!("hairpin {}", pf.name)),
                ),
            );
        }
        for r in &z.reach {
            o.line(2, format!("oifname \"{}\" accept", oif_of(r)));
        }
        o.line(1, "}");
    }
    o.line(0, "");
    o.line(1, "chain from_wan {");
    extra_rules(&mut o, "wan");
    for pf in &forwards {
        let Some(target) = zone_of(pf.to) else {
            continue;
        };
        // The IPv6 pinhole: no translation, the host's own port at its global address, which
        // moves with the delegated prefix.
        let global = pf.ipv6_host.zip(target.ipv6).and_then(|(iid, v6)| {
            let subnet = v6.delegated_subnet(wan.delegated?)?;
            Some(std::net::Ipv6Addr::from(
                u128::from(subnet.network()) | u128::from(iid),
            ))
        });
        if let Some(host) = global {
            o.line(
                2,
                format!(
                    "oifname \"{}\" ip6 daddr {host} {} accept {}",
                    target.interface,
                    l4(pf.protocol, &[pf.to_port.unwrap_or(pf.port)]),
                    comment(&format!("pinhole {}", pf.name)),
                ),
            );
        }
        o.line(
            2,
            format!(
                "oifname \"{}\" ip daddr {} {} ct status dnat accept {}",
                target.interface,
                pf.to,
                l4(pf.protocol, &[pf.to_port.unwrap_or(pf.port)]),
                comment(&format!("port forward {}", pf.name)),
            ),
        );
    }
    o.line(1, "}");
    for l in &view.links {
        o.line(0, "");
        o.line(1, format!("chain from_svc_{} {{", l.service));
        for f in view.flows.iter().filter(|f| f.from == l.service) {
            let (oif, daddr) = match f.to {
                FlowTarget::Wan => (wan_if.to_owned(), String::new()),
                FlowTarget::Service(Service::Firewall) => continue,
                FlowTarget::Service(s) => match link(s) {
                    Some(to) => (
                        to.interface.clone(),
                        format!(" ip daddr {}", to.link.service),
                    ),
                    None => continue,
                },
            };
            let to = match f.to {
                FlowTarget::Wan => "wan".to_owned(),
                FlowTarget::Service(s) => s.to_string(),
            };
            o.line(
                2,
                format!(
                    "oifname \"{oif}\"{daddr} {} accept {}",
                    l4(f.protocol, &f.ports),
                    comment(&format!("{} -> {to}", f.from)),
                ),
            );
        }
        o.line(1, "}");
    }

    // Output: the router's own traffic, counted only.
    o.line(0, "");
    o.line(1, "chain output {");
    o.line(2, "type filter hook output priority filter; policy accept;");
    count_out(&mut o);
    o.line(1, "}");

    // NAT.
    o.line(0, "");
    o.line(1, "chain prerouting {");
    o.line(
        2,
        "type nat hook prerouting priority dstnat; policy accept;",
    );
    for p in &view.published {
        for zname in &p.zones {
            let Some(z) = zone(zname) else { continue };
            for proto in each(p.protocol) {
                o.line(
                    2,
                    format!(
                        "iifname \"{}\" ip daddr {} {proto} dport {} dnat ip to {} {}",
                        z.interface,
                        z.router,
                        p.port,
                        p.to,
                        comment(&format!("{} {} in {zname}", p.service, p.port)),
                    ),
                );
            }
            // Over IPv6 from the zone's router ULA address (the one advertised as RDNSS).
            let (Some(to6), Some(v6)) = (p.to6, z.ipv6) else {
                continue;
            };
            for proto in each(p.protocol) {
                o.line(
                    2,
                    format!(
                        "iifname \"{}\" ip6 daddr {} {proto} dport {} dnat ip6 to {to6} {}",
                        z.interface,
                        v6.router,
                        p.port,
                        comment(&format!("{} {} in {zname} over ipv6", p.service, p.port)),
                    ),
                );
            }
        }
    }
    for pf in &forwards {
        let to_port = pf.to_port.unwrap_or(pf.port);
        let wan_daddr = wan.address.map_or_else(
            || "meta nfproto ipv4".to_owned(),
            |a| format!("ip daddr {}", a.addr()),
        );
        for proto in each(pf.protocol) {
            o.line(
                2,
                format!(
                    "iifname \"{wan_if}\" {wan_daddr} {proto} dport {} dnat ip to {}:{to_port} {}",
                    pf.port,
                    pf.to,
                    comment(&format!("port forward {}", pf.name)),
                ),
            );
        }
        let (Some(addr), Some(target)) = (wan.address, zone_of(pf.to)) else {
            continue;
        };
        let from: Vec<&str> = hairpin_zones(target)
            .iter()
            .map(|z| z.interface.as_str())
            .collect();
        for proto in each(pf.protocol) {
            o.line(
                2,
                format!(
                    "iifname {} ip daddr {} {proto} dport {} dnat ip to {}:{to_port} {}",
                    quoted_set(&from),
                    addr.addr(),
                    pf.port,
                    pf.to,
                    comment(&format!("hairpin {}", pf.name)),
                ),
            );
        }
    }
    o.line(1, "}");
    o.line(0, "");
    o.line(1, "chain postrouting {");
    o.line(
        2,
        "type nat hook postrouting priority srcnat; policy accept;",
    );
    if wan.address.is_some() {
        for pf in &forwards {
            let Some(target) = zone_of(pf.to) else {
                continue;
            };
            for proto in each(pf.protocol) {
                o.line(
                    2,
                    format!(
                        "iifname \"{if_}\" oifname \"{if_}\" ip daddr {} {proto} dport {} ct status dnat snat ip to {} {}",
                        pf.to,
                        pf.to_port.unwrap_or(pf.port),
                        target.router,
                        comment(&format!("hairpin {}", pf.name)),
                        if_ = target.interface,
                    ),
                );
            }
        }
    }
    o.line(
        2,
        format!("oifname \"{wan_if}\" meta nfproto ipv4 masquerade"),
    );
    o.line(1, "}");
    o.line(0, "}");
    Ok(Ruleset { text: o.text })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_protocols_match_as_one_set_with_ports() {
        assert_eq!(
            l4(Protocol::Both, &[53]),
            "meta l4proto { tcp, udp } th dport 53"
        );
        assert_eq!(l4(Protocol::Tcp, &[80, 443]), "tcp dport { 80, 443 }");
        assert_eq!(l4(Protocol::Udp, &[]), "meta l4proto udp");
    }

    #[test]
    fn comments_cannot_break_out_of_their_string() {
        assert_eq!(
            comment("a\"; flush ruleset"),
            "comment \"a_; flush ruleset\""
        );
        assert_eq!(comment("x\ny"), "comment \"x_y\"");
    }

    #[test]
    fn counter_names_are_identifiers() {
        assert_eq!(counter_name("kids-room", "in"), "zone_kids_room_in");
        assert_eq!(counter_name("wan", "out"), "wan_out");
    }

    #[test]
    fn hash_is_hex_sha256_of_the_text() {
        let r = Ruleset {
            text: String::new(),
        };
        assert_eq!(
            r.sha256(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
