//! The sans-IO stateless DHCPv6 core (RFC 8415 §6.1, RFC 3646): `(link, source, packet, now)
//! -> reply`.
//!
//! Zones with IPv6 get their addresses by SLAAC from the firewall's router advertisements
//! (ADR 0009); with the O flag in them (once DNS over IPv6 works) hosts ask here for the rest
//! with an INFORMATION-REQUEST. [`Core6::handle`] answers it with a REPLY that carries the client's
//! transaction id, our Server Identifier (a DUID-LL from the interface's MAC, [`duid_ll`]), the
//! client's Client Identifier when it sent one, the zone's resolver (option 23, the router's
//! v6 address in the zone), the domain search list (option 24, the view's `domain`) and an
//! Information Refresh Time (option 32, [`REFRESH_SECS`]).
//!
//! There is no stateful DHCPv6: SOLICIT, REQUEST, CONFIRM, RENEW, REBIND, RELEASE and DECLINE
//! are counted (by type and as the `stateful` drop) and not answered. RFC 8415 §18.3.1 lets a
//! server with nothing to assign answer a SOLICIT with an ADVERTISE holding only NoAddrsAvail,
//! but §18.2.9 makes clients ignore such an ADVERTISE anyway; silence costs them nothing more,
//! and a host only solicits when an RA says M, which ours never do.
//!
//! The request is parsed by a bounded walk of its own ([`MAX_PACKET`], [`MAX_OPTIONS`], every
//! option's length inside the message, DUIDs 3..=130 bytes, no option twice that may appear
//! once), not by dhcproto's decoder, which reads hostile lengths with unchecked arithmetic;
//! dhcproto builds and encodes the reply. Validation per RFC 8415 §16.12: an
//! INFORMATION-REQUEST with a Server Identifier that is not ours, or with any IA option, is
//! dropped. Sources must be link-local (§13.1: clients send from their link-local address);
//! the IO only hands over what arrived for ff02::1:2 on a zone interface.

use std::collections::BTreeMap;
use std::net::{Ipv6Addr, SocketAddrV6};

use dhcproto::v6::{DhcpOption, Message, MessageType};
use dhcproto::{Encodable, Encoder, Name};
use roost_config::views::DhcpView;

/// Shortest DHCPv6 message: message type and transaction id.
pub const MIN_PACKET: usize = 4;
/// Longest message accepted (an INFORMATION-REQUEST is a few dozen bytes).
pub const MAX_PACKET: usize = 1500;
/// Most options accepted in one message.
pub const MAX_OPTIONS: usize = 64;
/// Information Refresh Time given to clients (RFC 8415 §21.23: they ask again after it), 4 h:
/// the RA's preferred lifetime, so a changed resolver or domain reaches clients within hours.
pub const REFRESH_SECS: u32 = 4 * 3600;
/// Most replies per second on one interface; more requests are dropped and counted.
pub const REPLIES_PER_SEC: u32 = 200;
/// The DHCPv6 client port.
pub const CLIENT_PORT: u16 = 546;

const OPT_CLIENT_ID: u16 = 1;
const OPT_SERVER_ID: u16 = 2;
const OPT_IA_NA: u16 = 3;
const OPT_IA_TA: u16 = 4;
const OPT_IA_PD: u16 = 25;
/// Options that may appear at most once at the top of a client's message.
const SINGLETONS: [u16; 6] = [OPT_CLIENT_ID, OPT_SERVER_ID, 6, 8, 11, 14];
/// DUID: a 2-byte type and at least one byte, at most 128 bytes after the type (§11.1).
const DUID_LEN: std::ops::RangeInclusive<usize> = 3..=130;

/// One zone answered over DHCPv6.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone6 {
    /// Zone name.
    pub name: String,
    /// The dhcp VM's interface on the zone.
    pub interface: String,
    /// The resolver given to clients (option 23).
    pub dns: Ipv6Addr,
}

/// Everything the DHCPv6 core needs from the settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config6 {
    /// Zones with IPv6 (`DhcpZoneView.ipv6_dns`).
    pub zones: Vec<Zone6>,
    /// The domain search list (option 24): the view's `domain`; `None` if it is no DNS name.
    pub domain: Option<Name>,
}

impl Config6 {
    /// The DHCPv6 configuration from the dhcp view: every zone that has `ipv6_dns`.
    pub fn from_view(view: &DhcpView) -> Self {
        let zones = view
            .zones
            .iter()
            .filter_map(|z| {
                Some(Zone6 {
                    name: z.name.clone(),
                    interface: z.interface.clone(),
                    dns: z.ipv6_dns?,
                })
            })
            .collect();
        Self {
            zones,
            domain: domain_name(&view.domain),
        }
    }
}

/// `domain` as a fully qualified DNS name, or `None` when it is not one (nothing to search).
pub fn domain_name(domain: &str) -> Option<Name> {
    let domain = domain.trim_end_matches('.');
    if domain.is_empty() {
        return None;
    }
    let mut name = Name::from_ascii(domain).ok()?;
    name.set_fqdn(true);
    Some(name)
}

/// A DUID-LL (RFC 8415 §11.4): type 3, hardware type 1 (Ethernet), the MAC. Stable as long as
/// the interface's MAC is (the VMs' MACs are fixed in their configuration).
pub fn duid_ll(mac: [u8; 6]) -> Vec<u8> {
    let mut duid = vec![0, 3, 0, 1];
    duid.extend_from_slice(&mac);
    duid
}

/// The interface a message arrived on, as the IO knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link6 {
    /// Interface name.
    pub interface: String,
    /// Our DUID on it (the Server Identifier).
    pub duid: Vec<u8>,
}

/// A reply to send out of the interface the request came in on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply6 {
    /// The encoded message.
    pub bytes: Vec<u8>,
    /// The client's link-local address (with the interface's scope) and port 546.
    pub to: SocketAddrV6,
}

/// Why a message got no reply; each reason is a `/metrics` counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Drop6 {
    /// Shorter than [`MIN_PACKET`].
    Truncated,
    /// Longer than [`MAX_PACKET`].
    Oversized,
    /// Options that overrun the message, a DUID of a bad length, or a single option twice.
    Malformed,
    /// More than [`MAX_OPTIONS`] options.
    TooManyOptions,
    /// A message only servers or relays send (ADVERTISE, REPLY, ...), or an unknown type.
    NotFromClient,
    /// RELAY-FORW: the server is on every zone's link and serves no relays.
    Relayed,
    /// SOLICIT, REQUEST, RENEW, ...: no stateful DHCPv6 (addresses come from SLAAC).
    Stateful,
    /// The source is not a link-local address.
    NotLinkLocal,
    /// The interface is not a zone with IPv6.
    NoZone,
    /// A Server Identifier that is not ours (RFC 8415 §16.12).
    OtherServer,
    /// An IA option in an INFORMATION-REQUEST (RFC 8415 §16.12).
    HasIa,
    /// Over [`REPLIES_PER_SEC`] on the interface.
    RateLimited,
    /// The reply could not be encoded.
    Encode,
}

impl Drop6 {
    /// Every reason, for the metrics.
    pub const ALL: [Self; 13] = [
        Self::Truncated,
        Self::Oversized,
        Self::Malformed,
        Self::TooManyOptions,
        Self::NotFromClient,
        Self::Relayed,
        Self::Stateful,
        Self::NotLinkLocal,
        Self::NoZone,
        Self::OtherServer,
        Self::HasIa,
        Self::RateLimited,
        Self::Encode,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Truncated => "truncated",
            Self::Oversized => "oversized",
            Self::Malformed => "malformed",
            Self::TooManyOptions => "too_many_options",
            Self::NotFromClient => "not_from_client",
            Self::Relayed => "relayed",
            Self::Stateful => "stateful",
            Self::NotLinkLocal => "not_link_local",
            Self::NoZone => "no_zone",
            Self::OtherServer => "other_server",
            Self::HasIa => "has_ia",
            Self::RateLimited => "rate_limited",
            Self::Encode => "encode",
        }
    }
}

/// Counters of what the DHCPv6 core saw and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats6 {
    /// Messages handed to the core.
    pub received: u64,
    /// Received, by message type name (only messages that parsed).
    pub by_type: BTreeMap<&'static str, u64>,
    /// REPLYs sent.
    pub replies: u64,
    /// Dropped, by reason.
    pub dropped: BTreeMap<Drop6, u64>,
}

/// The message type's name in the metrics; `None` for types a client does not send.
fn client_type_name(t: u8) -> Option<&'static str> {
    Some(match t {
        1 => "solicit",
        3 => "request",
        4 => "confirm",
        5 => "renew",
        6 => "rebind",
        8 => "release",
        9 => "decline",
        11 => "information_request",
        12 => "relay_forw",
        _ => return None,
    })
}

/// The options of a message that parsed: (code, data), in order.
type Options<'a> = Vec<(u16, &'a [u8])>;

/// Walks the options after the 4-byte header: every length inside the message, at most
/// [`MAX_OPTIONS`] of them.
fn walk_options(mut rest: &[u8]) -> Result<Options<'_>, Drop6> {
    let mut out = Vec::new();
    while !rest.is_empty() {
        if out.len() == MAX_OPTIONS {
            return Err(Drop6::TooManyOptions);
        }
        let (Some(code), Some(len)) = (rest.get(0..2), rest.get(2..4)) else {
            return Err(Drop6::Malformed);
        };
        let code = u16::from_be_bytes([code[0], code[1]]);
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let Some(data) = rest.get(4..4 + len) else {
            return Err(Drop6::Malformed);
        };
        out.push((code, data));
        rest = &rest[4 + len..];
    }
    Ok(out)
}

/// The stateless DHCPv6 server's state: its configuration, the per-interface reply budget and
/// the counters.
#[derive(Debug)]
pub struct Core6 {
    config: Config6,
    /// Per interface: the second of the budget and the replies sent in it.
    budget: BTreeMap<String, (u64, u32)>,
    stats: Stats6,
}

impl Core6 {
    /// A core for `config`.
    pub fn new(config: Config6) -> Self {
        Self {
            config,
            budget: BTreeMap::new(),
            stats: Stats6::default(),
        }
    }

    /// Replaces the configuration; counters are kept.
    pub fn set_config(&mut self, config: Config6) {
        self.budget
            .retain(|iface, _| config.zones.iter().any(|z| &z.interface == iface));
        self.config = config;
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config6 {
        &self.config
    }

    /// The counters.
    pub fn stats(&self) -> &Stats6 {
        &self.stats
    }

    fn drop_packet(&mut self, why: Drop6) -> Option<Reply6> {
        *self.stats.dropped.entry(why).or_default() += 1;
        tracing::debug!(reason = why.label(), "dropped dhcpv6 message");
        None
    }

    /// Decides what to do about `packet`, received on `link` from `from` at `now` (Unix
    /// seconds): the reply to send, if one is due.
    pub fn handle(
        &mut self,
        link: &Link6,
        from: SocketAddrV6,
        packet: &[u8],
        now: u64,
    ) -> Option<Reply6> {
        self.stats.received += 1;
        if packet.len() < MIN_PACKET {
            return self.drop_packet(Drop6::Truncated);
        }
        if packet.len() > MAX_PACKET {
            return self.drop_packet(Drop6::Oversized);
        }
        let kind = packet[0];
        let Some(name) = client_type_name(kind) else {
            return self.drop_packet(Drop6::NotFromClient);
        };
        if kind == 12 {
            *self.stats.by_type.entry(name).or_default() += 1;
            return self.drop_packet(Drop6::Relayed);
        }
        let options = match walk_options(&packet[MIN_PACKET..]) {
            Ok(o) => o,
            Err(why) => return self.drop_packet(why),
        };
        *self.stats.by_type.entry(name).or_default() += 1;
        for code in SINGLETONS {
            if options.iter().filter(|(c, _)| *c == code).count() > 1 {
                return self.drop_packet(Drop6::Malformed);
            }
        }
        let find = |code| options.iter().find(|(c, _)| *c == code).map(|(_, d)| *d);
        let client_id = find(OPT_CLIENT_ID);
        let server_id = find(OPT_SERVER_ID);
        if [client_id, server_id]
            .into_iter()
            .flatten()
            .any(|d| !DUID_LEN.contains(&d.len()))
        {
            return self.drop_packet(Drop6::Malformed);
        }
        if kind != 11 {
            return self.drop_packet(Drop6::Stateful);
        }
        if !from.ip().is_unicast_link_local() {
            return self.drop_packet(Drop6::NotLinkLocal);
        }
        let Some(zone) = self
            .config
            .zones
            .iter()
            .find(|z| z.interface == link.interface)
        else {
            return self.drop_packet(Drop6::NoZone);
        };
        let dns = zone.dns;
        if server_id.is_some_and(|id| id != link.duid.as_slice()) {
            return self.drop_packet(Drop6::OtherServer);
        }
        if options
            .iter()
            .any(|(c, _)| matches!(*c, OPT_IA_NA | OPT_IA_TA | OPT_IA_PD))
        {
            return self.drop_packet(Drop6::HasIa);
        }
        if !self.within_budget(&link.interface, now) {
            return self.drop_packet(Drop6::RateLimited);
        }
        let mut reply = Message::new_with_id(MessageType::Reply, [packet[1], packet[2], packet[3]]);
        let opts = reply.opts_mut();
        opts.insert(DhcpOption::ServerId(link.duid.clone()));
        if let Some(id) = client_id {
            opts.insert(DhcpOption::ClientId(id.to_vec()));
        }
        opts.insert(DhcpOption::DomainNameServers(vec![dns]));
        if let Some(domain) = &self.config.domain {
            opts.insert(DhcpOption::DomainSearchList(vec![domain.clone()]));
        }
        opts.insert(DhcpOption::InformationRefreshTime(REFRESH_SECS));
        let mut bytes = Vec::with_capacity(128);
        if reply.encode(&mut Encoder::new(&mut bytes)).is_err() {
            return self.drop_packet(Drop6::Encode);
        }
        self.stats.replies += 1;
        let to = SocketAddrV6::new(*from.ip(), CLIENT_PORT, 0, from.scope_id());
        Some(Reply6 { bytes, to })
    }

    fn within_budget(&mut self, interface: &str, now: u64) -> bool {
        let entry = self.budget.entry(interface.to_owned()).or_insert((now, 0));
        if entry.0 != now {
            *entry = (now, 0);
        }
        if entry.1 >= REPLIES_PER_SEC {
            return false;
        }
        entry.1 += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use dhcproto::v6::OptionCode;
    use dhcproto::{Decodable, Decoder};

    use super::*;

    const SERVER_MAC: [u8; 6] = [0x52, 0x54, 0, 0, 0, 2];
    const CLIENT_DUID: [u8; 14] = [0, 1, 0, 1, 0x2c, 0x1d, 0x3e, 0x4f, 0x52, 0x54, 0, 0, 0, 9];

    fn core() -> Core6 {
        Core6::new(Config6 {
            zones: vec![Zone6 {
                name: "lan".into(),
                interface: "lan".into(),
                dns: "fd12:3456:789a:1::1".parse().unwrap(),
            }],
            domain: domain_name("home.arpa"),
        })
    }

    fn link(interface: &str) -> Link6 {
        Link6 {
            interface: interface.into(),
            duid: duid_ll(SERVER_MAC),
        }
    }

    fn client() -> SocketAddrV6 {
        SocketAddrV6::new("fe80::5054:ff:fe00:9".parse().unwrap(), 546, 0, 7)
    }

    fn opt(code: u16, data: &[u8]) -> Vec<u8> {
        let mut v = code.to_be_bytes().to_vec();
        v.extend_from_slice(&u16::try_from(data.len()).unwrap().to_be_bytes());
        v.extend_from_slice(data);
        v
    }

    /// What `dhclient -6 -S` sends: Client Identifier, Option Request (23, 24, 32), Elapsed
    /// Time.
    fn info_request(extra: &[Vec<u8>]) -> Vec<u8> {
        let mut p = vec![11, 0xab, 0xcd, 0xef];
        p.extend(opt(OPT_CLIENT_ID, &CLIENT_DUID));
        p.extend(opt(6, &[0, 23, 0, 24, 0, 32]));
        p.extend(opt(8, &[0, 0]));
        for e in extra {
            p.extend_from_slice(e);
        }
        p
    }

    fn decode(reply: &Reply6) -> Message {
        Message::decode(&mut Decoder::new(&reply.bytes)).unwrap()
    }

    fn dropped(core: &Core6, why: Drop6) -> u64 {
        core.stats().dropped.get(&why).copied().unwrap_or(0)
    }

    #[test]
    fn answers_information_request_with_dns_domain_and_refresh_time() {
        let mut core = core();
        let reply = core
            .handle(&link("lan"), client(), &info_request(&[]), 100)
            .unwrap();
        // To the client's link-local address and port 546, in its scope.
        assert_eq!(reply.to, client());
        let msg = decode(&reply);
        assert_eq!(msg.msg_type(), MessageType::Reply);
        assert_eq!(msg.xid(), [0xab, 0xcd, 0xef]);
        let opts = msg.opts();
        assert_eq!(
            opts.get(OptionCode::ServerId),
            Some(&DhcpOption::ServerId(vec![
                0, 3, 0, 1, 0x52, 0x54, 0, 0, 0, 2
            ]))
        );
        assert_eq!(
            opts.get(OptionCode::ClientId),
            Some(&DhcpOption::ClientId(CLIENT_DUID.to_vec()))
        );
        assert_eq!(
            opts.get(OptionCode::DomainNameServers),
            Some(&DhcpOption::DomainNameServers(vec![
                "fd12:3456:789a:1::1".parse().unwrap()
            ]))
        );
        // dhcproto decodes option 32 as unknown: check its bytes.
        let raw = walk_options(&reply.bytes[MIN_PACKET..]).unwrap();
        let refresh = raw.iter().find(|(c, _)| *c == 32).unwrap().1;
        assert_eq!(refresh, REFRESH_SECS.to_be_bytes());
        assert!(opts.get(OptionCode::DomainSearchList).is_some());
        // Option 24 in DNS wire format, uncompressed (RFC 3646 §4).
        let wire = b"\x00\x18\x00\x0b\x04home\x04arpa\x00";
        assert!(
            reply.bytes.windows(wire.len()).any(|w| w == wire),
            "{:02x?}",
            reply.bytes
        );
        assert_eq!(core.stats().replies, 1);
        assert_eq!(core.stats().by_type.get("information_request"), Some(&1));
    }

    #[test]
    fn answers_without_client_identifier_and_with_our_server_identifier() {
        let mut core = core();
        let bare = [11, 1, 2, 3];
        let msg = decode(&core.handle(&link("lan"), client(), &bare, 1).unwrap());
        assert!(msg.opts().get(OptionCode::ClientId).is_none());
        let ours = info_request(&[opt(OPT_SERVER_ID, &duid_ll(SERVER_MAC))]);
        assert!(core.handle(&link("lan"), client(), &ours, 1).is_some());
    }

    #[test]
    fn leaves_out_the_search_list_without_a_domain() {
        let mut core = core();
        let mut config = core.config().clone();
        config.domain = domain_name("");
        core.set_config(config);
        let msg = decode(
            &core
                .handle(&link("lan"), client(), &info_request(&[]), 1)
                .unwrap(),
        );
        assert!(msg.opts().get(OptionCode::DomainSearchList).is_none());
        assert!(msg.opts().get(OptionCode::DomainNameServers).is_some());
    }

    #[test]
    fn drops_information_request_for_another_server() {
        let mut core = core();
        let other = info_request(&[opt(OPT_SERVER_ID, &duid_ll([2, 0, 0, 0, 0, 1]))]);
        assert_eq!(core.handle(&link("lan"), client(), &other, 1), None);
        assert_eq!(dropped(&core, Drop6::OtherServer), 1);
    }

    #[test]
    fn drops_information_request_with_an_ia() {
        let mut core = core();
        let ia = [0u8; 12];
        for code in [OPT_IA_NA, OPT_IA_TA, OPT_IA_PD] {
            let p = info_request(&[opt(code, &ia)]);
            assert_eq!(core.handle(&link("lan"), client(), &p, 1), None);
        }
        assert_eq!(dropped(&core, Drop6::HasIa), 3);
    }

    #[test]
    fn ignores_stateful_messages_but_counts_them() {
        let mut core = core();
        for kind in [1u8, 3, 4, 5, 6, 8, 9] {
            let mut p = info_request(&[]);
            p[0] = kind;
            assert_eq!(core.handle(&link("lan"), client(), &p, 1), None);
        }
        assert_eq!(dropped(&core, Drop6::Stateful), 7);
        assert_eq!(core.stats().by_type.get("solicit"), Some(&1));
        assert_eq!(core.stats().by_type.get("renew"), Some(&1));
        assert_eq!(core.stats().replies, 0);
    }

    #[test]
    fn drops_server_messages_relays_and_unknown_types() {
        let mut core = core();
        for kind in [2u8, 7, 10, 13, 0, 200] {
            let mut p = info_request(&[]);
            p[0] = kind;
            assert_eq!(core.handle(&link("lan"), client(), &p, 1), None);
        }
        assert_eq!(dropped(&core, Drop6::NotFromClient), 6);
        let mut relay = info_request(&[]);
        relay[0] = 12;
        assert_eq!(core.handle(&link("lan"), client(), &relay, 1), None);
        assert_eq!(dropped(&core, Drop6::Relayed), 1);
    }

    #[test]
    fn drops_requests_on_zones_without_ipv6_and_from_non_link_local_sources() {
        let mut core = core();
        assert_eq!(
            core.handle(&link("guest"), client(), &info_request(&[]), 1),
            None
        );
        assert_eq!(dropped(&core, Drop6::NoZone), 1);
        let ula = SocketAddrV6::new("fd12:3456:789a:1::9".parse().unwrap(), 546, 0, 0);
        assert_eq!(core.handle(&link("lan"), ula, &info_request(&[]), 1), None);
        assert_eq!(dropped(&core, Drop6::NotLinkLocal), 1);
    }

    #[test]
    fn drops_malformed_messages_without_panicking() {
        let mut core = core();
        let good = info_request(&[]);
        let mut cases: Vec<(Vec<u8>, Drop6)> = vec![
            (vec![11, 0, 0], Drop6::Truncated),
            (vec![11; MAX_PACKET + 1], Drop6::Oversized),
            // An option whose length runs past the end, and a lone half header.
            (good[..good.len() - 1].to_vec(), Drop6::Malformed),
            ([&good[..], &[0, 8][..]].concat(), Drop6::Malformed),
            // Two Client Identifiers; a DUID of 2 bytes; one of 131.
            (
                info_request(&[opt(OPT_CLIENT_ID, &CLIENT_DUID)]),
                Drop6::Malformed,
            ),
            (
                [&[11, 0, 0, 1][..], &opt(OPT_CLIENT_ID, &[0, 1])].concat(),
                Drop6::Malformed,
            ),
            (
                [&[11, 0, 0, 1][..], &opt(OPT_SERVER_ID, &[0; 131])].concat(),
                Drop6::Malformed,
            ),
        ];
        let mut many = vec![11, 0, 0, 1];
        for _ in 0..=MAX_OPTIONS {
            many.extend(opt(8, &[0, 0]));
        }
        cases.push((many, Drop6::TooManyOptions));
        for (p, why) in cases {
            let before = dropped(&core, why);
            assert_eq!(core.handle(&link("lan"), client(), &p, 1), None, "{p:02x?}");
            assert_eq!(dropped(&core, why), before + 1, "{why:?} for {p:02x?}");
        }
        // Short and odd option payloads that dhcproto's decoder would trip on are only data
        // here: a 0-length status code and vendor class in an otherwise fine request.
        let odd = info_request(&[opt(13, &[]), opt(16, &[1])]);
        assert!(core.handle(&link("lan"), client(), &odd, 1).is_some());
    }

    #[test]
    fn limits_replies_per_interface_and_second() {
        let mut core = core();
        let p = info_request(&[]);
        let sent = (0..REPLIES_PER_SEC + 10)
            .filter(|_| core.handle(&link("lan"), client(), &p, 5).is_some())
            .count();
        assert_eq!(sent, REPLIES_PER_SEC as usize);
        assert_eq!(dropped(&core, Drop6::RateLimited), 10);
        assert!(core.handle(&link("lan"), client(), &p, 6).is_some());
    }

    #[test]
    fn takes_the_zones_with_ipv6_dns_from_the_view() {
        let settings = roost_config::Settings::from_toml(
            "roost.toml",
            include_str!("../../../examples/roost.toml"),
        )
        .unwrap();
        let view = settings.dhcp_view();
        let config = Config6::from_view(&view);
        let with_v6 = view.zones.iter().filter(|z| z.ipv6_dns.is_some()).count();
        assert!(with_v6 > 0);
        assert_eq!(config.zones.len(), with_v6);
        for z in &config.zones {
            assert_eq!(Some(z.dns), settings.zone_ipv6(&z.name).map(|v6| v6.router));
        }
        assert_eq!(config.domain, domain_name(&view.domain));
    }
}
