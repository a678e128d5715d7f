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

/// What one zone's advertisements say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advert {
    /// The zone's /64 (prefix information, flags L and A).
    pub prefix: Ipv6Net,
    /// The router's MAC on the zone (source link-layer address option), if known.
    pub source_mac: Option<[u8; 6]>,
    /// The link MTU (MTU option), if known.
    pub mtu: Option<u32>,
    /// How long hosts may use the router as their default router, in seconds (0: not a
    /// default router). Three times MaxRtrAdvInterval by default.
    pub router_lifetime: u16,
    /// Valid lifetime of the prefix, in seconds.
    pub valid_lifetime: u32,
    /// Preferred lifetime of the prefix, in seconds.
    pub preferred_lifetime: u32,
}

impl Advert {
    /// The advertisement for `prefix` with the usual lifetimes (router 1800 s, prefix valid one
    /// day and preferred four hours, as radvd's defaults).
    pub fn for_prefix(prefix: Ipv6Net) -> Self {
        Self {
            prefix,
            source_mac: None,
            mtu: None,
            router_lifetime: 1800,
            valid_lifetime: 86_400,
            preferred_lifetime: 14_400,
        }
    }

    /// The ICMPv6 message (checksum left zero: the kernel fills it in on raw ICMPv6 sockets,
    /// RFC 3542 §3.1).
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(16 + 8 + 8 + 32);
        // Type, code, checksum; current hop limit 64; flags M=0 O=0; router lifetime;
        // reachable time and retransmission timer unspecified (0).
        b.extend_from_slice(&[ROUTER_ADVERTISEMENT, 0, 0, 0, 64, 0]);
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
        // Prefix information: type 3, length 4 (32 octets), prefix length, L|A, lifetimes,
        // reserved, prefix.
        b.extend_from_slice(&[3, 4, self.prefix.prefix_len(), 0xc0]);
        b.extend_from_slice(&self.valid_lifetime.to_be_bytes());
        b.extend_from_slice(&self.preferred_lifetime.to_be_bytes());
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(&self.prefix.network().octets());
        b
    }
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
    let mut rest = &bytes[8..];
    while !rest.is_empty() {
        let [kind, len, ..] = *rest else {
            return Err(BadSolicitation::Truncated);
        };
        let octets = usize::from(len) * 8;
        if octets == 0 {
            return Err(BadSolicitation::ZeroLengthOption);
        }
        let Some(option) = rest.get(..octets) else {
            return Err(BadSolicitation::Truncated);
        };
        if kind == 1 && octets == 8 {
            let mut mac = [0u8; 6];
            mac.copy_from_slice(&option[2..8]);
            source_mac = Some(mac);
        }
        rest = &rest[octets..];
    }
    if source.is_unspecified() && source_mac.is_some() {
        return Err(BadSolicitation::UnspecifiedWithAddress);
    }
    Ok(Solicitation { source_mac })
}

/// When to advertise on one zone: drive it with [`Schedule::solicited`] and
/// [`Schedule::poll`], sleep until [`Schedule::deadline`].
#[derive(Debug, Clone)]
pub struct Schedule {
    next_unsolicited: Instant,
    solicited: Option<Instant>,
    last_multicast: Option<Instant>,
    initial_left: u8,
    rng: u64,
}

impl Schedule {
    /// Starts advertising at once; `seed` feeds the jitter.
    pub fn new(now: Instant, seed: u64) -> Self {
        Self {
            next_unsolicited: now,
            solicited: None,
            last_multicast: None,
            initial_left: MAX_INITIAL_RTR_ADVERTISEMENTS,
            rng: seed | 1,
        }
    }

    fn random(&mut self) -> u64 {
        // xorshift64: jitter only, nothing secret.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// A uniformly random duration in `lo..=hi`, at millisecond resolution.
    fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = u64::try_from((hi - lo).as_millis()).unwrap_or(u64::MAX);
        lo + Duration::from_millis(self.random() % (span + 1))
    }

    /// When the next advertisement is due.
    pub fn deadline(&self) -> Instant {
        self.solicited
            .map_or(self.next_unsolicited, |s| s.min(self.next_unsolicited))
    }

    /// A valid solicitation arrived at `now`: answer within 0-500 ms, but not sooner than
    /// 3 s after the last multicast advertisement.
    pub fn solicited(&mut self, now: Instant) {
        let mut at = now + self.between(Duration::ZERO, MAX_RA_DELAY);
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
        let mut interval = self.between(MIN_RTR_ADV_INTERVAL, MAX_RTR_ADV_INTERVAL);
        if self.initial_left > 0 {
            self.initial_left -= 1;
            interval = interval.min(MAX_INITIAL_RTR_ADVERT_INTERVAL);
        }
        self.next_unsolicited = now + interval;
        self.solicited = None;
        self.last_multicast = Some(now);
        true
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
        let mut ad = Advert::for_prefix(prefix());
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
        let b = Advert::for_prefix(prefix()).encode();
        assert_eq!(b.len(), 16 + 32);
        assert_eq!(b[16], 3);
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
