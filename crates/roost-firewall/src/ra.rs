//! Router advertisements (RFC 4861 §4.2, §6.2), sans-IO: the message encoder, a bounded router
//! solicitation parser, and the schedule that says when to advertise on one zone. The IO (one
//! raw ICMPv6 socket per zone) is in [`crate::ra_io`].
//!
//! An advertisement carries the zone's /64 in a prefix information option with the on-link
//! (L) and autonomous (A) flags, so hosts form addresses by SLAAC; the link MTU; and the
//! router's link-layer address. Unsolicited advertisements go out every 200-600 s
//! (MinRtrAdvInterval/MaxRtrAdvInterval, uniformly jittered), the first three at most 16 s
//! apart (MAX_INITIAL_RTR_ADVERT_INTERVAL); a solicitation is answered to all-nodes after a
//! random 0-500 ms (MAX_RA_DELAY_TIME), never sooner than 3 s after the last multicast
//! advertisement (MIN_DELAY_BETWEEN_RAS).

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use ipnet::Ipv6Net;

use crate::jitter::Jitter;

/// ICMPv6 type of a router solicitation.
pub const ROUTER_SOLICITATION: u8 = 133;
/// ICMPv6 type of a router advertisement.
pub const ROUTER_ADVERTISEMENT: u8 = 134;

/// Longest interval between unsolicited advertisements.
pub const MAX_RTR_ADV_INTERVAL: Duration = Duration::from_secs(600);
/// Shortest interval between unsolicited advertisements (a third of the longest).
pub const MIN_RTR_ADV_INTERVAL: Duration = Duration::from_secs(200);
/// How many of the first advertisements are sent at most 16 s apart.
pub const MAX_INITIAL_RTR_ADVERTISEMENTS: u8 = 3;
/// The interval cap for the first advertisements.
pub const MAX_INITIAL_RTR_ADVERT_INTERVAL: Duration = Duration::from_secs(16);
/// Most a solicited advertisement is delayed (to spread answers to many hosts).
pub const MAX_RA_DELAY: Duration = Duration::from_millis(500);
/// Least time between two multicast advertisements.
pub const MIN_DELAY_BETWEEN_RAS: Duration = Duration::from_secs(3);

/// Lifetimes of a prefix the ISP delegated are capped (RFC 9096 §3: ND_PREFERRED_LIMIT and
/// ND_VALID_LIMIT), so hosts drop a prefix that went away with the ISP's next renumbering
/// within 90 minutes even if they miss the advertisement that deprecates it.
pub const DELEGATED_PREFERRED_LIMIT: Duration = Duration::from_secs(2_700);
/// See [`DELEGATED_PREFERRED_LIMIT`].
pub const DELEGATED_VALID_LIMIT: Duration = Duration::from_secs(5_400);

/// One prefix in an advertisement, with the lifetimes it has at the moment of sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixInfo {
    /// The /64 (prefix information, flags L and A).
    pub prefix: Ipv6Net,
    /// Valid lifetime, seconds.
    pub valid_lifetime: u32,
    /// Preferred lifetime, seconds (0: deprecated, hosts form no new connections from it).
    pub preferred_lifetime: u32,
}

impl PrefixInfo {
    /// A prefix of our own (the ULA) with radvd's default lifetimes: valid one day, preferred
    /// four hours.
    pub fn ula(prefix: Ipv6Net) -> Self {
        Self {
            prefix,
            valid_lifetime: 86_400,
            preferred_lifetime: 14_400,
        }
    }
}

/// What one zone's advertisements say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advert {
    /// The zone's prefixes: the ULA /64, the delegated /64 and any being deprecated.
    pub prefixes: Vec<PrefixInfo>,
    /// The router's MAC on the zone (source link-layer address option), if known.
    pub source_mac: Option<[u8; 6]>,
    /// The link MTU (MTU option), if known.
    pub mtu: Option<u32>,
    /// How long hosts may use the router as their default router, in seconds (0: not a
    /// default router). Three times MaxRtrAdvInterval by default.
    pub router_lifetime: u16,
    /// The O flag: hosts ask DHCPv6 for other configuration (stateless DHCPv6).
    pub other_config: bool,
    /// Recursive DNS servers (RFC 8106 RDNSS), valid for three times MaxRtrAdvInterval.
    pub dns_servers: Vec<Ipv6Addr>,
    /// DNS search domains (RFC 8106 DNSSL), names in presentation form.
    pub search: Vec<String>,
}

/// Lifetime of the RDNSS and DNSSL options: 3 × MaxRtrAdvInterval (RFC 8106 §5.1).
pub const DNS_LIFETIME: u32 = 1_800;

impl Advert {
    /// An advertisement of `prefixes` with the usual router lifetime (1800 s) and nothing else.
    pub fn new(prefixes: Vec<PrefixInfo>) -> Self {
        Self {
            prefixes,
            source_mac: None,
            mtu: None,
            router_lifetime: 1800,
            other_config: false,
            dns_servers: Vec::new(),
            search: Vec::new(),
        }
    }

    /// The ICMPv6 message (checksum left zero: the kernel fills it in on raw ICMPv6 sockets,
    /// RFC 3542 §3.1).
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(16 + 8 + 8 + 32 * self.prefixes.len() + 64);
        // Type, code, checksum; current hop limit 64; flags M=0 O; router lifetime;
        // reachable time and retransmission timer unspecified (0).
        let flags = if self.other_config { 0x40 } else { 0 };
        b.extend_from_slice(&[ROUTER_ADVERTISEMENT, 0, 0, 0, 64, flags]);
        b.extend_from_slice(&self.router_lifetime.to_be_bytes());
        b.extend_from_slice(&[0; 8]);
        if let Some(mac) = self.source_mac {
            // Source link-layer address: type 1, length 1 (8 octets).
            b.extend_from_slice(&[1, 1]);
            b.extend_from_slice(&mac);
        }
        if let Some(mtu) = self.mtu {
            // MTU: type 5, length 1, reserved.
            b.extend_from_slice(&[5, 1, 0, 0]);
            b.extend_from_slice(&mtu.to_be_bytes());
        }
        for p in &self.prefixes {
            // Prefix information: type 3, length 4 (32 octets), prefix length, L|A,
            // lifetimes, reserved, prefix.
            b.extend_from_slice(&[3, 4, p.prefix.prefix_len(), 0xc0]);
            b.extend_from_slice(&p.valid_lifetime.to_be_bytes());
            b.extend_from_slice(&p.preferred_lifetime.to_be_bytes());
            b.extend_from_slice(&[0; 4]);
            b.extend_from_slice(&p.prefix.network().octets());
        }
        if !self.dns_servers.is_empty() {
            // RDNSS: type 25, length 1 + 2 per address, reserved, lifetime, addresses.
            let len = u8::try_from(1 + 2 * self.dns_servers.len()).unwrap_or(u8::MAX);
            b.extend_from_slice(&[25, len, 0, 0]);
            b.extend_from_slice(&DNS_LIFETIME.to_be_bytes());
            for a in &self.dns_servers {
                b.extend_from_slice(&a.octets());
            }
        }
        let names: Vec<u8> = self.search.iter().flat_map(|n| dns_name(n)).collect();
        if !names.is_empty() {
            // DNSSL: type 31, reserved, lifetime, the names in DNS wire form, padded with
            // zeros to a multiple of 8 octets.
            let padded = (8 + names.len()).div_ceil(8) * 8;
            b.extend_from_slice(&[31, u8::try_from(padded / 8).unwrap_or(u8::MAX), 0, 0]);
            b.extend_from_slice(&DNS_LIFETIME.to_be_bytes());
            b.extend_from_slice(&names);
            b.resize(b.len() + padded - 8 - names.len(), 0);
        }
        b
    }
}

/// A delegated /64 on a zone with its absolute lifetimes (from the ISP's lease, or from the
/// moment it was withdrawn).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delegated {
    /// The zone's /64 of the delegated prefix.
    pub prefix: Ipv6Net,
    /// Until when hosts may prefer it (in the past: deprecated).
    pub preferred_until: Instant,
    /// Until when it is valid.
    pub valid_until: Instant,
}

/// What one zone advertises, in absolute time; [`ZoneAdvert::advert`] gives the message's
/// lifetimes at the moment of sending.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZoneAdvert {
    /// The zone's ULA /64 (always there when the zone has IPv6).
    pub ula: Option<Ipv6Net>,
    /// The /64s of delegated prefixes: the current one, and withdrawn ones being deprecated.
    pub delegated: Vec<Delegated>,
    /// The O flag (the dhcp VM answers stateless DHCPv6 on this zone).
    pub other_config: bool,
    /// RDNSS.
    pub dns_servers: Vec<Ipv6Addr>,
    /// DNSSL.
    pub search: Vec<String>,
}

fn seconds_left(until: Instant, now: Instant, cap: Duration) -> u32 {
    let left = until.saturating_duration_since(now).min(cap);
    u32::try_from(left.as_secs()).unwrap_or(u32::MAX)
}

impl ZoneAdvert {
    /// The advertisement to send at `now`: delegated lifetimes count down and are capped
    /// ([`DELEGATED_VALID_LIMIT`]); a prefix no longer valid is left out.
    pub fn advert(&self, now: Instant) -> Advert {
        let mut prefixes: Vec<PrefixInfo> = self.ula.into_iter().map(PrefixInfo::ula).collect();
        for d in &self.delegated {
            let valid = seconds_left(d.valid_until, now, DELEGATED_VALID_LIMIT);
            if valid == 0 {
                continue;
            }
            prefixes.push(PrefixInfo {
                prefix: d.prefix,
                valid_lifetime: valid,
                preferred_lifetime: seconds_left(d.preferred_until, now, DELEGATED_PREFERRED_LIMIT)
                    .min(valid),
            });
        }
        let mut ad = Advert::new(prefixes);
        ad.other_config = self.other_config;
        ad.dns_servers.clone_from(&self.dns_servers);
        ad.search.clone_from(&self.search);
        ad
    }
}

/// `name` in DNS wire form (labels, then the root), or nothing for a name that does not fit
/// (the settings validate domains; this only keeps a bad one out of the packet).
fn dns_name(name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.trim_end_matches('.').split('.') {
        let Ok(len) = u8::try_from(label.len()) else {
            return Vec::new();
        };
        if len == 0 || len > 63 {
            return Vec::new();
        }
        out.push(len);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    if out.len() > 255 { Vec::new() } else { out }
}

/// A router solicitation (RFC 4861 §4.1) without options (checksum left to the kernel).
pub fn solicitation() -> [u8; 8] {
    [ROUTER_SOLICITATION, 0, 0, 0, 0, 0, 0, 0]
}

/// A router solicitation that passed validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Solicitation {
    /// The host's link-layer address, when it sent one.
    pub source_mac: Option<[u8; 6]>,
}

/// Why an ICMPv6 message is not a valid router solicitation (RFC 4861 §6.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadSolicitation {
    /// Another ICMPv6 type: not ours to look at (the raw socket sees every ICMPv6 message).
    #[error("icmpv6 type {0} is not a router solicitation")]
    OtherType(u8),
    /// Shorter than the 8-octet header, or an option runs past the end.
    #[error("truncated router solicitation")]
    Truncated,
    /// The code must be 0.
    #[error("router solicitation with code {0}")]
    Code(u8),
    /// An option of length 0 (which would loop for ever).
    #[error("router solicitation option of length 0")]
    ZeroLengthOption,
    /// A source link-layer address option from the unspecified address.
    #[error("source link-layer address from the unspecified address")]
    UnspecifiedWithAddress,
}

/// Parses an ICMPv6 message from `source` as a router solicitation. Bounded: reads at most
/// `bytes.len()` octets, each option at least 8. The hop limit of 255 (§6.1.1) is enforced by
/// the ruleset, which drops router discovery with any other hop limit before delivery.
pub fn parse_solicitation(source: Ipv6Addr, bytes: &[u8]) -> Result<Solicitation, BadSolicitation> {
    let Some(&kind) = bytes.first() else {
        return Err(BadSolicitation::Truncated);
    };
    if kind != ROUTER_SOLICITATION {
        return Err(BadSolicitation::OtherType(kind));
    }
    if bytes.len() < 8 {
        return Err(BadSolicitation::Truncated);
    }
    if bytes[1] != 0 {
        return Err(BadSolicitation::Code(bytes[1]));
    }
    let mut source_mac = None;
    walk_options(&bytes[8..], |kind, option| {
        if kind == 1 && option.len() == 8 {
            let mut mac = [0u8; 6];
            mac.copy_from_slice(&option[2..8]);
            source_mac = Some(mac);
        }
    })
    .map_err(|e| match e {
        BadOptions::Truncated => BadSolicitation::Truncated,
        BadOptions::ZeroLength => BadSolicitation::ZeroLengthOption,
    })?;
    if source.is_unspecified() && source_mac.is_some() {
        return Err(BadSolicitation::UnspecifiedWithAddress);
    }
    Ok(Solicitation { source_mac })
}

/// Why a neighbour discovery option list is broken.
enum BadOptions {
    Truncated,
    ZeroLength,
}

/// Walks neighbour discovery options (type, length in 8-octet units, data), bounded by `rest`.
fn walk_options(mut rest: &[u8], mut each: impl FnMut(u8, &[u8])) -> Result<(), BadOptions> {
    while !rest.is_empty() {
        let [kind, len, ..] = *rest else {
            return Err(BadOptions::Truncated);
        };
        let octets = usize::from(len) * 8;
        if octets == 0 {
            return Err(BadOptions::ZeroLength);
        }
        let option = rest.get(..octets).ok_or(BadOptions::Truncated)?;
        each(kind, option);
        rest = &rest[octets..];
    }
    Ok(())
}

/// Why an ICMPv6 message is not a valid router advertisement (RFC 4861 §6.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadAdvertisement {
    /// Another ICMPv6 type.
    #[error("icmpv6 type {0} is not a router advertisement")]
    OtherType(u8),
    /// Shorter than the 16-octet header, or an option runs past the end.
    #[error("truncated router advertisement")]
    Truncated,
    /// The code must be 0.
    #[error("router advertisement with code {0}")]
    Code(u8),
    /// An option of length 0.
    #[error("router advertisement option of length 0")]
    ZeroLengthOption,
    /// A router advertises from its link-local address only.
    #[error("router advertisement from {0}, not a link-local address")]
    NotLinkLocal(Ipv6Addr),
}

/// Checks an ICMPv6 message from `source` as a router advertisement, bounded as
/// [`parse_solicitation`] is. The firewall only watches them (the kernel takes the WAN's; no
/// zone's is taken): a valid one on a zone is a rogue router, a broken one on the WAN is counted.
pub fn check_advertisement(source: Ipv6Addr, bytes: &[u8]) -> Result<(), BadAdvertisement> {
    let Some(&kind) = bytes.first() else {
        return Err(BadAdvertisement::Truncated);
    };
    if kind != ROUTER_ADVERTISEMENT {
        return Err(BadAdvertisement::OtherType(kind));
    }
    if bytes.len() < 16 {
        return Err(BadAdvertisement::Truncated);
    }
    if bytes[1] != 0 {
        return Err(BadAdvertisement::Code(bytes[1]));
    }
    if !source.is_unicast_link_local() {
        return Err(BadAdvertisement::NotLinkLocal(source));
    }
    walk_options(&bytes[16..], |_, _| {}).map_err(|e| match e {
        BadOptions::Truncated => BadAdvertisement::Truncated,
        BadOptions::ZeroLength => BadAdvertisement::ZeroLengthOption,
    })
}

/// When to advertise on one zone: drive it with [`Schedule::solicited`] and
/// [`Schedule::poll`], sleep until [`Schedule::deadline`].
#[derive(Debug, Clone)]
pub struct Schedule {
    next_unsolicited: Instant,
    solicited: Option<Instant>,
    last_multicast: Option<Instant>,
    initial_left: u8,
    rng: Jitter,
}

impl Schedule {
    /// Starts advertising at once; `seed` feeds the jitter.
    pub fn new(now: Instant, seed: u64) -> Self {
        Self {
            next_unsolicited: now,
            solicited: None,
            last_multicast: None,
            initial_left: MAX_INITIAL_RTR_ADVERTISEMENTS,
            rng: Jitter::new(seed),
        }
    }

    /// When the next advertisement is due.
    pub fn deadline(&self) -> Instant {
        self.solicited
            .map_or(self.next_unsolicited, |s| s.min(self.next_unsolicited))
    }

    /// A valid solicitation arrived at `now`: answer within 0-500 ms, but not sooner than
    /// 3 s after the last multicast advertisement.
    pub fn solicited(&mut self, now: Instant) {
        let mut at = now + self.rng.between(Duration::ZERO, MAX_RA_DELAY);
        if let Some(last) = self.last_multicast {
            at = at.max(last + MIN_DELAY_BETWEEN_RAS);
        }
        if self.deadline() > at {
            self.solicited = Some(at);
        }
    }

    /// Whether to send an advertisement now; if so, the next one is scheduled.
    pub fn poll(&mut self, now: Instant) -> bool {
        if now < self.deadline() {
            return false;
        }
        let mut interval = self.rng.between(MIN_RTR_ADV_INTERVAL, MAX_RTR_ADV_INTERVAL);
        if self.initial_left > 0 {
            self.initial_left -= 1;
            interval = interval.min(MAX_INITIAL_RTR_ADVERT_INTERVAL);
        }
        self.next_unsolicited = now + interval;
        self.solicited = None;
        self.last_multicast = Some(now);
        true
    }

    /// What the zone advertises changed (a new or withdrawn prefix): advertise it soon, not
    /// sooner than 3 s after the last multicast advertisement, and again as at start, so a
    /// host that misses one hears it within seconds.
    pub fn changed(&mut self, now: Instant) {
        let mut at = now;
        if let Some(last) = self.last_multicast {
            at = at.max(last + MIN_DELAY_BETWEEN_RAS);
        }
        self.next_unsolicited = self.next_unsolicited.min(at);
        self.initial_left = MAX_INITIAL_RTR_ADVERTISEMENTS;
    }

    /// The router could not send (no usable link-local address yet): try again in a second.
    pub fn retry_soon(&mut self, now: Instant) {
        self.next_unsolicited = now + Duration::from_secs(1);
        self.solicited = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix() -> Ipv6Net {
        "fd12:3456:789a:1::/64".parse().unwrap()
    }

    #[test]
    fn advertisement_bytes_decode_to_prefix_mtu_and_router_lifetime() {
        let mut ad = Advert::new(vec![PrefixInfo::ula(prefix())]);
        ad.source_mac = Some([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        ad.mtu = Some(1500);
        let b = ad.encode();
        assert_eq!(b.len(), 16 + 8 + 8 + 32);
        assert_eq!((b[0], b[1]), (ROUTER_ADVERTISEMENT, 0));
        assert_eq!(b[4], 64, "current hop limit");
        assert_eq!(b[5], 0, "no M or O flag: addresses by SLAAC only");
        assert_eq!(u16::from_be_bytes([b[6], b[7]]), 1800, "router lifetime");
        assert_eq!(
            &b[8..16],
            &[0; 8],
            "reachable time and retrans timer unspecified"
        );
        // Source link-layer address.
        assert_eq!(&b[16..24], &[1, 1, 0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        // MTU.
        assert_eq!(&b[24..28], &[5, 1, 0, 0]);
        assert_eq!(u32::from_be_bytes(b[28..32].try_into().unwrap()), 1500);
        // Prefix information.
        let pi = &b[32..64];
        assert_eq!((pi[0], pi[1], pi[2]), (3, 4, 64));
        assert_eq!(pi[3], 0xc0, "on-link and autonomous");
        assert_eq!(u32::from_be_bytes(pi[4..8].try_into().unwrap()), 86_400);
        assert_eq!(u32::from_be_bytes(pi[8..12].try_into().unwrap()), 14_400);
        let p: [u8; 16] = pi[16..32].try_into().unwrap();
        assert_eq!(
            Ipv6Addr::from(p),
            "fd12:3456:789a:1::".parse::<Ipv6Addr>().unwrap()
        );
    }

    #[test]
    fn advertisement_without_mac_or_mtu_has_only_the_prefix_option() {
        let b = Advert::new(vec![PrefixInfo::ula(prefix())]).encode();
        assert_eq!(b.len(), 16 + 32);
        assert_eq!(b[16], 3);
    }

    #[test]
    fn advertisements_are_checked_like_solicitations_and_must_come_from_link_local() {
        let ours = Advert::new(vec![PrefixInfo::ula(prefix())]).encode();
        assert_eq!(check_advertisement(ll(), &ours), Ok(()));
        assert_eq!(
            check_advertisement("2001:db8::1".parse().unwrap(), &ours),
            Err(BadAdvertisement::NotLinkLocal(
                "2001:db8::1".parse().unwrap()
            ))
        );
        let mut zero = ours.clone();
        zero[17] = 0;
        assert_eq!(
            check_advertisement(ll(), &zero),
            Err(BadAdvertisement::ZeroLengthOption)
        );
        let mut long = ours.clone();
        long[17] = 9;
        assert_eq!(
            check_advertisement(ll(), &long),
            Err(BadAdvertisement::Truncated)
        );
        assert_eq!(
            check_advertisement(ll(), &ours[..10]),
            Err(BadAdvertisement::Truncated)
        );
        let mut code = ours.clone();
        code[1] = 1;
        assert_eq!(
            check_advertisement(ll(), &code),
            Err(BadAdvertisement::Code(1))
        );
        assert_eq!(
            check_advertisement(ll(), &solicitation()),
            Err(BadAdvertisement::OtherType(ROUTER_SOLICITATION))
        );
    }

    #[test]
    fn our_solicitation_passes_our_own_validation() {
        assert_eq!(
            parse_solicitation(ll(), &solicitation()),
            Ok(Solicitation { source_mac: None })
        );
    }

    #[test]
    fn several_prefixes_the_o_flag_rdnss_and_dnssl_are_encoded() {
        let mut ad = Advert::new(vec![
            PrefixInfo::ula(prefix()),
            PrefixInfo {
                prefix: "2001:db8:12:1::/64".parse().unwrap(),
                valid_lifetime: 5_400,
                preferred_lifetime: 2_700,
            },
            PrefixInfo {
                prefix: "2001:db8:34:1::/64".parse().unwrap(),
                valid_lifetime: 600,
                preferred_lifetime: 0,
            },
        ]);
        ad.other_config = true;
        ad.dns_servers = vec!["fd12:3456:789a:1::1".parse().unwrap()];
        ad.search = vec!["home.arpa".to_owned()];
        let b = ad.encode();
        assert_eq!(b[5], 0x40, "O flag only");
        let mut options = Vec::new();
        let mut at = 16;
        while at < b.len() {
            let (ty, len) = (b[at], usize::from(b[at + 1]) * 8);
            assert!(len > 0 && at + len <= b.len(), "option {ty} fits");
            options.push((ty, b[at..at + len].to_vec()));
            at += len;
        }
        assert_eq!(at, b.len());
        let pios: Vec<&Vec<u8>> = options.iter().filter(|o| o.0 == 3).map(|o| &o.1).collect();
        assert_eq!(pios.len(), 3);
        let deprecated = pios[2];
        assert_eq!(
            u32::from_be_bytes(deprecated[4..8].try_into().unwrap()),
            600
        );
        assert_eq!(u32::from_be_bytes(deprecated[8..12].try_into().unwrap()), 0);
        let rdnss = &options.iter().find(|o| o.0 == 25).unwrap().1;
        assert_eq!(rdnss.len(), 24);
        assert_eq!(
            u32::from_be_bytes(rdnss[4..8].try_into().unwrap()),
            DNS_LIFETIME
        );
        let a: [u8; 16] = rdnss[8..24].try_into().unwrap();
        assert_eq!(Ipv6Addr::from(a).to_string(), "fd12:3456:789a:1::1");
        let dnssl = &options.iter().find(|o| o.0 == 31).unwrap().1;
        assert_eq!(dnssl.len(), 24, "8 + 11 octets of name, padded to 24");
        assert_eq!(&dnssl[8..19], b"\x04home\x04arpa\x00");
        assert!(dnssl[19..].iter().all(|&z| z == 0));
    }

    #[test]
    fn delegated_lifetimes_count_down_are_capped_and_a_withdrawn_prefix_is_deprecated() {
        let now = Instant::now();
        let zone = ZoneAdvert {
            ula: Some(prefix()),
            delegated: vec![
                Delegated {
                    prefix: "2001:db8:12:1::/64".parse().unwrap(),
                    preferred_until: now + Duration::from_secs(10_000),
                    valid_until: now + Duration::from_secs(20_000),
                },
                Delegated {
                    prefix: "2001:db8:34:1::/64".parse().unwrap(),
                    preferred_until: now - Duration::from_secs(5),
                    valid_until: now + Duration::from_secs(600),
                },
                Delegated {
                    prefix: "2001:db8:56:1::/64".parse().unwrap(),
                    preferred_until: now - Duration::from_secs(9),
                    valid_until: now - Duration::from_secs(1),
                },
            ],
            ..ZoneAdvert::default()
        };
        let ad = zone.advert(now);
        let got: Vec<(String, u32, u32)> = ad
            .prefixes
            .iter()
            .map(|p| (p.prefix.to_string(), p.valid_lifetime, p.preferred_lifetime))
            .collect();
        assert_eq!(
            got,
            vec![
                ("fd12:3456:789a:1::/64".to_owned(), 86_400, 14_400),
                ("2001:db8:12:1::/64".to_owned(), 5_400, 2_700),
                ("2001:db8:34:1::/64".to_owned(), 600, 0),
            ]
        );
        let later = zone.advert(now + Duration::from_secs(9_000));
        assert_eq!(later.prefixes[1].preferred_lifetime, 1_000);
        assert_eq!(later.prefixes.len(), 2, "the deprecated one ran out");
    }

    #[test]
    fn a_change_brings_the_next_advertisement_forward_but_not_within_3_s_of_the_last() {
        let now = Instant::now();
        let mut s = Schedule::new(now, 3);
        for _ in 0..4 {
            let at = s.deadline();
            assert!(s.poll(at));
        }
        assert!(
            s.deadline() - now > Duration::from_secs(100),
            "in the slow phase"
        );
        let sent_at = {
            let at = s.deadline();
            assert!(s.poll(at));
            at
        };
        s.changed(sent_at + Duration::from_secs(1));
        assert_eq!(s.deadline(), sent_at + MIN_DELAY_BETWEEN_RAS);
        // Then the initial burst again: at most 16 s apart.
        assert!(s.poll(s.deadline()));
        assert!(
            s.deadline() - (sent_at + MIN_DELAY_BETWEEN_RAS) <= MAX_INITIAL_RTR_ADVERT_INTERVAL
        );
    }

    fn ll() -> Ipv6Addr {
        "fe80::1234".parse().unwrap()
    }

    #[test]
    fn parses_a_solicitation_with_and_without_its_link_layer_address() {
        let bare = [133, 0, 0xab, 0xcd, 0, 0, 0, 0];
        assert_eq!(
            parse_solicitation(Ipv6Addr::UNSPECIFIED, &bare),
            Ok(Solicitation { source_mac: None })
        );
        let mut with = bare.to_vec();
        with.extend_from_slice(&[1, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(
            parse_solicitation(ll(), &with),
            Ok(Solicitation {
                source_mac: Some([2, 3, 4, 5, 6, 7])
            })
        );
        // Not from the unspecified address (RFC 4861 §6.1.1).
        assert_eq!(
            parse_solicitation(Ipv6Addr::UNSPECIFIED, &with),
            Err(BadSolicitation::UnspecifiedWithAddress)
        );
        // Unknown options are skipped.
        let mut unknown = bare.to_vec();
        unknown.extend_from_slice(&[200, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(parse_solicitation(ll(), &unknown).is_ok());
    }

    #[test]
    fn refuses_malformed_solicitations() {
        let cases: [(&[u8], BadSolicitation); 6] = [
            (&[], BadSolicitation::Truncated),
            (&[133, 0, 0], BadSolicitation::Truncated),
            (&[128, 0, 0, 0, 0, 0, 0, 0], BadSolicitation::OtherType(128)),
            (&[133, 1, 0, 0, 0, 0, 0, 0], BadSolicitation::Code(1)),
            (
                &[133, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0],
                BadSolicitation::ZeroLengthOption,
            ),
            (
                &[133, 0, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0],
                BadSolicitation::Truncated,
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(parse_solicitation(ll(), bytes), Err(want), "{bytes:?}");
        }
    }

    #[test]
    fn garbage_never_panics_and_is_mostly_refused() {
        // Deterministic pseudo-random inputs of every length up to 64, RS-typed half the time.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut accepted = 0;
        for i in 0..20_000usize {
            let len = i % 65;
            let mut bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            if i % 2 == 0 && !bytes.is_empty() {
                bytes[0] = ROUTER_SOLICITATION;
                if bytes.len() > 1 {
                    bytes[1] = 0;
                }
            }
            if parse_solicitation(ll(), &bytes).is_ok() {
                accepted += 1;
                assert!(bytes.len() >= 8 && bytes[0] == 133 && bytes[1] == 0);
            }
        }
        assert!(accepted < 20_000 / 2, "accepted {accepted}");
    }

    #[test]
    fn first_adverts_come_at_most_16_s_apart_then_every_200_to_600_s() {
        let t0 = Instant::now();
        let mut s = Schedule::new(t0, 42);
        assert!(s.poll(t0), "the first advertisement goes out at once");
        let mut now = t0;
        // The intervals after each of the first three are capped at 16 s.
        for _ in 0..3 {
            let gap = s.deadline() - now;
            assert!(gap <= MAX_INITIAL_RTR_ADVERT_INTERVAL, "{gap:?}");
            now = s.deadline();
            assert!(!s.poll(now - Duration::from_millis(1)));
            assert!(s.poll(now));
        }
        for _ in 0..50 {
            let gap = s.deadline() - now;
            assert!(
                (MIN_RTR_ADV_INTERVAL..=MAX_RTR_ADV_INTERVAL).contains(&gap),
                "{gap:?}"
            );
            now = s.deadline();
            assert!(s.poll(now));
        }
    }

    #[test]
    fn intervals_are_jittered() {
        let t0 = Instant::now();
        let mut s = Schedule::new(t0, 7);
        let mut now = t0;
        let mut gaps = std::collections::BTreeSet::new();
        for _ in 0..20 {
            assert!(s.poll(now));
            gaps.insert(s.deadline() - now);
            now = s.deadline();
        }
        assert!(gaps.len() > 10, "{gaps:?}");
    }

    #[test]
    fn solicitation_is_answered_within_half_a_second_but_not_within_3_s_of_the_last() {
        let t0 = Instant::now();
        let mut s = Schedule::new(t0, 1);
        assert!(s.poll(t0));
        // Right after a multicast advertisement: held back to 3 s after it.
        s.solicited(t0 + Duration::from_millis(100));
        assert_eq!(s.deadline(), t0 + MIN_DELAY_BETWEEN_RAS);
        // Drain the initial ones, then solicit in a quiet period.
        let mut now = t0;
        for _ in 0..3 {
            now = s.deadline();
            assert!(s.poll(now));
        }
        let quiet = now + Duration::from_secs(60);
        s.solicited(quiet);
        let due = s.deadline();
        assert!(
            due >= quiet && due <= quiet + MAX_RA_DELAY,
            "{:?}",
            due - quiet
        );
        assert!(!s.poll(quiet - Duration::from_millis(1)));
        assert!(s.poll(due));
        // A second solicitation right away waits for MIN_DELAY_BETWEEN_RAS.
        s.solicited(due + Duration::from_millis(10));
        assert!(s.deadline() >= due + MIN_DELAY_BETWEEN_RAS);
    }
}
