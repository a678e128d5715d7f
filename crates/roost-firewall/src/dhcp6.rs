//! The WAN's DHCPv6 client (RFC 8415) for an address (IA_NA) and a delegated prefix (IA_PD,
//! RFC 8415 §6.3), as a sans-IO state machine over dhcproto's v6 messages: it takes `now` and
//! received bytes and returns [`Action`]s; [`Client::deadline`] says when to call
//! [`Client::poll`] next. The IO loop is in [`crate::dhcp6_io`].
//!
//! States: SOLICIT (retransmitted from 1 s doubling to 120 s, RFC 8415 §15: SOL_MAX_RT is an
//! hour, which would leave a household without IPv6 for that long after an ISP outage) → the
//! first ADVERTISE that offers an address or a prefix → REQUEST (1 s to 30 s, 10 tries, then
//! SOLICIT again) → BOUND → at T1 RENEW (10 s to 600 s, until T2) → at T2 REBIND (until the
//! last valid lifetime ends) → SOLICIT, dropping everything. A REPLY to RENEW or REBIND replaces
//! the lease: a prefix the ISP withdraws comes back with valid lifetime 0 (or not at all, RFC
//! 8415 §18.2.10.1) and is no longer in [`Lease::prefixes`], so the daemon deprecates it.
//!
//! The client's DUID is a DUID-LL of the WAN's MAC (RFC 8415 §11.4): stable across restarts
//! and reinstalls, so the ISP delegates the same prefix again.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use dhcproto::v6::{
    DhcpOption, DhcpOptions, IANA, IAPD, IAPrefix, Message, MessageType, ORO, OptionCode, Status,
};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use ipnet::Ipv6Net;

use crate::jitter::Jitter;

/// The IA_NA's identifier (one address for the router).
const IA_NA_ID: u32 = 1;
/// The IA_PD's identifier (one delegated prefix).
const IA_PD_ID: u32 = 2;
/// Longest message accepted (the IO reads at most this many bytes).
pub const MAX_MESSAGE: usize = 1500;
/// Most addresses or prefixes taken from one reply (the rest is ignored).
const MAX_LEASES: usize = 8;
/// Most name servers taken from one reply.
const MAX_DNS: usize = 4;

/// The phases of RFC 8415's client (§18).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Looking for a server.
    Soliciting,
    /// REQUEST sent for an ADVERTISE, waiting for the REPLY.
    Requesting,
    /// Holding a lease.
    Bound,
    /// Past T1: asking the leasing server to extend.
    Renewing,
    /// Past T2: asking any server to extend.
    Rebinding,
}

/// An address or prefix with its lifetimes, counted from [`Lease::obtained`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timed<T> {
    /// The address or prefix.
    pub value: T,
    /// Preferred lifetime.
    pub preferred: Duration,
    /// Valid lifetime.
    pub valid: Duration,
}

/// What the ISP leased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The router's WAN address (IA_NA), if the ISP gives one.
    pub address: Option<Timed<Ipv6Addr>>,
    /// The delegated prefixes still valid, longest valid lifetime first.
    pub prefixes: Vec<Timed<Ipv6Net>>,
    /// The ISP's DNS servers (informational: the dns VM has its own upstreams).
    pub dns: Vec<Ipv6Addr>,
    /// When the REPLY arrived.
    pub obtained: Instant,
    /// When to renew, from `obtained` (`None`: never).
    pub t1: Option<Duration>,
    /// When to rebind, from `obtained` (`None`: never).
    pub t2: Option<Duration>,
    /// The server's DUID.
    pub server: Vec<u8>,
}

impl Lease {
    /// When the last address or prefix stops being valid.
    pub fn expires(&self) -> Instant {
        let longest = self
            .prefixes
            .iter()
            .map(|p| p.valid)
            .chain(self.address.map(|a| a.valid))
            .max()
            .unwrap_or_default();
        self.obtained.checked_add(longest).unwrap_or(far_future())
    }

    /// The prefix in use: the one valid longest.
    pub fn prefix(&self) -> Option<Timed<Ipv6Net>> {
        self.prefixes.first().copied()
    }
}

/// What the IO side must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this message to All_DHCP_Relay_Agents_and_Servers (`ff02::1:2`, port 547).
    Send(Vec<u8>),
    /// Configure (or keep) this lease.
    Configure(Lease),
    /// Everything leased is gone.
    Deconfigure,
}

/// Why a received message was dropped (counted, logged at debug).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Dropped {
    /// Not a DHCPv6 message.
    #[error("malformed dhcpv6 message")]
    Malformed,
    /// Longer than [`MAX_MESSAGE`].
    #[error("oversized dhcpv6 message")]
    Oversized,
    /// Not an answer to what is outstanding (type, transaction id or client id).
    #[error("dhcpv6 message that answers nothing outstanding")]
    Unexpected,
    /// An answer without a server id, or with an error status, or nothing usable in it.
    #[error("dhcpv6 answer without a usable lease")]
    Unusable,
}

/// Retransmission parameters of one exchange (RFC 8415 §15).
#[derive(Debug, Clone, Copy)]
struct Retransmit {
    initial: Duration,
    max: Duration,
    max_count: u32,
}

const SOLICIT: Retransmit = Retransmit {
    initial: Duration::from_secs(1),
    max: Duration::from_secs(120),
    max_count: 0,
};
const REQUEST: Retransmit = Retransmit {
    initial: Duration::from_secs(1),
    max: Duration::from_secs(30),
    max_count: 10,
};
const RENEW: Retransmit = Retransmit {
    initial: Duration::from_secs(10),
    max: Duration::from_secs(600),
    max_count: 0,
};

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 86_400)
}

/// The client.
#[derive(Debug)]
pub struct Client {
    duid: Vec<u8>,
    hint: u8,
    rng: Jitter,
    phase: Phase,
    xid: [u8; 3],
    /// The message being retransmitted, its parameters, tries so far and the current timeout.
    outstanding: Option<(MessageType, Vec<u8>)>,
    retransmit: Retransmit,
    tries: u32,
    timeout: Duration,
    exchange_started: Instant,
    next_send: Option<Instant>,
    /// The ADVERTISE being requested: its server and what it offered.
    offer: Option<(Vec<u8>, Option<Ipv6Addr>, Option<Ipv6Net>)>,
    lease: Option<Lease>,
    poll_now: bool,
}

impl Client {
    /// A client for the interface with `mac`, asking for a /`hint` prefix; `seed` feeds the
    /// transaction ids and the jitter.
    pub fn new(mac: [u8; 6], hint: u8, now: Instant, seed: u64) -> Self {
        let mut duid = vec![0, 3, 0, 1];
        duid.extend_from_slice(&mac);
        let mut c = Self {
            duid,
            hint,
            rng: Jitter::new(seed),
            phase: Phase::Soliciting,
            xid: [0; 3],
            outstanding: None,
            retransmit: SOLICIT,
            tries: 0,
            timeout: Duration::ZERO,
            exchange_started: now,
            next_send: None,
            offer: None,
            lease: None,
            poll_now: false,
        };
        // SOL_MAX_DELAY: the first SOLICIT waits 0-1 s, so routers powered on together by
        // one power cut do not all ask at once.
        let delay = c.rng.between(Duration::ZERO, Duration::from_secs(1));
        c.start(now, Phase::Soliciting, SOLICIT, Some(now + delay));
        c
    }

    /// Where the client is.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The lease held, if any.
    pub fn lease(&self) -> Option<&Lease> {
        self.lease.as_ref()
    }

    /// Whether [`Client::poll`] must be called before waiting.
    pub fn needs_poll(&self) -> bool {
        self.poll_now
    }

    /// When [`Client::poll`] must be called next.
    pub fn deadline(&self) -> Instant {
        let mut at = self.next_send.unwrap_or_else(far_future);
        if let Some(l) = &self.lease {
            at = at.min(l.expires());
            let timers = match self.phase {
                Phase::Bound => [l.t1, l.t2],
                Phase::Renewing => [None, l.t2],
                _ => [None, None],
            };
            for t in timers.into_iter().flatten() {
                if let Some(t) = l.obtained.checked_add(t) {
                    at = at.min(t);
                }
            }
        }
        at
    }

    /// `base` jittered by RAND in -0.1..=0.1 (RFC 8415 §15), or 0..=0.1 when `positive`.
    fn jitter(&mut self, base: Duration, positive: bool) -> Duration {
        let tenth = base / 10;
        let r = self.rng.between(Duration::ZERO, tenth * 2);
        if positive {
            base + r / 2
        } else {
            base - tenth + r
        }
    }

    /// Begins an exchange: a new transaction id, the first transmission at `first` (now when
    /// `None`).
    fn start(
        &mut self,
        now: Instant,
        phase: Phase,
        retransmit: Retransmit,
        first: Option<Instant>,
    ) {
        let r = self.rng.next().to_be_bytes();
        self.xid = [r[0], r[1], r[2]];
        self.phase = phase;
        self.retransmit = retransmit;
        self.tries = 0;
        self.timeout = Duration::ZERO;
        self.exchange_started = now;
        self.outstanding = None;
        self.next_send = Some(first.unwrap_or(now));
        self.poll_now = first.is_none();
    }

    /// Timers: retransmissions, T1, T2 and the end of the lease.
    pub fn poll(&mut self, now: Instant) -> Vec<Action> {
        self.poll_now = false;
        let mut actions = Vec::new();
        if let Some(l) = &self.lease {
            if now >= l.expires() {
                tracing::info!("dhcpv6 lease expired");
                self.lease = None;
                actions.push(Action::Deconfigure);
                self.start(now, Phase::Soliciting, SOLICIT, None);
            } else if let Some(t2) = l.t2.and_then(|t| l.obtained.checked_add(t))
                && now >= t2
                && matches!(self.phase, Phase::Bound | Phase::Renewing)
            {
                self.start(now, Phase::Rebinding, RENEW, None);
            } else if let Some(t1) = l.t1.and_then(|t| l.obtained.checked_add(t))
                && now >= t1
                && self.phase == Phase::Bound
            {
                self.start(now, Phase::Renewing, RENEW, None);
            }
        }
        if let Some(at) = self.next_send
            && now >= at
        {
            if self.retransmit.max_count > 0 && self.tries >= self.retransmit.max_count {
                // REQUEST unanswered: look for a server again.
                self.offer = None;
                self.start(now, Phase::Soliciting, SOLICIT, None);
            }
            actions.push(Action::Send(self.transmit(now)));
        }
        actions
    }

    /// Builds the current exchange's message (again, with the elapsed time) and schedules the
    /// retransmission.
    fn transmit(&mut self, now: Instant) -> Vec<u8> {
        let first = self.tries == 0;
        if first {
            self.exchange_started = now;
        }
        self.tries += 1;
        self.timeout = if first {
            let positive = self.phase == Phase::Soliciting;
            self.jitter(self.retransmit.initial, positive)
        } else {
            let doubled = self.timeout * 2;
            if doubled > self.retransmit.max {
                self.jitter(self.retransmit.max, false)
            } else {
                self.jitter(doubled, false)
            }
        };
        let mut next = now + self.timeout;
        // RENEW stops at T2 and REBIND at the end of the lease: `poll` moves on from there.
        if let Some(l) = &self.lease {
            next = next.min(l.expires());
        }
        self.next_send = Some(next);
        let ty = match self.phase {
            Phase::Soliciting => MessageType::Solicit,
            Phase::Requesting => MessageType::Request,
            Phase::Renewing => MessageType::Renew,
            Phase::Rebinding => MessageType::Rebind,
            Phase::Bound => unreachable!("nothing is sent while bound"),
        };
        let elapsed = (now - self.exchange_started).as_millis() / 10;
        let bytes = self.message(ty, u16::try_from(elapsed).unwrap_or(u16::MAX));
        self.outstanding = Some((ty, bytes.clone()));
        bytes
    }

    fn message(&self, ty: MessageType, elapsed: u16) -> Vec<u8> {
        let mut m = Message::new_with_id(ty, self.xid);
        let opts = m.opts_mut();
        opts.insert(DhcpOption::ClientId(self.duid.clone()));
        opts.insert(DhcpOption::ElapsedTime(elapsed));
        opts.insert(DhcpOption::ORO(ORO {
            opts: vec![OptionCode::DomainNameServers],
        }));
        let (server, address, prefix) = match (ty, &self.offer, &self.lease) {
            (MessageType::Request, Some((s, a, p)), _) => (Some(s.clone()), *a, *p),
            (MessageType::Renew | MessageType::Rebind, _, Some(l)) => (
                (ty == MessageType::Renew).then(|| l.server.clone()),
                l.address.map(|a| a.value),
                l.prefix().map(|p| p.value),
            ),
            _ => (None, None, None),
        };
        if let Some(s) = server {
            opts.insert(DhcpOption::ServerId(s));
        }
        let mut na = DhcpOptions::new();
        if let Some(a) = address {
            na.insert(DhcpOption::IAAddr(dhcproto::v6::IAAddr {
                addr: a,
                preferred_life: 0,
                valid_life: 0,
                opts: DhcpOptions::new(),
            }));
        }
        opts.insert(DhcpOption::IANA(IANA {
            id: IA_NA_ID,
            t1: 0,
            t2: 0,
            opts: na,
        }));
        // The prefix held, or the length we would like (RFC 8415 §18.2.1: `::/hint`).
        let (prefix_ip, prefix_len) = prefix.map_or((Ipv6Addr::UNSPECIFIED, self.hint), |p| {
            (p.addr(), p.prefix_len())
        });
        let mut pd = DhcpOptions::new();
        pd.insert(DhcpOption::IAPrefix(IAPrefix {
            preferred_lifetime: 0,
            valid_lifetime: 0,
            prefix_len,
            prefix_ip,
            opts: DhcpOptions::new(),
        }));
        opts.insert(DhcpOption::IAPD(IAPD {
            id: IA_PD_ID,
            t1: 0,
            t2: 0,
            opts: pd,
        }));
        let mut buf = Vec::with_capacity(128);
        // Encoding into a Vec only fails on values dhcproto cannot represent, which we never
        // build.
        let _ = m.encode(&mut Encoder::new(&mut buf));
        buf
    }

    /// A message arrived.
    pub fn handle(&mut self, now: Instant, bytes: &[u8]) -> Result<Vec<Action>, Dropped> {
        if bytes.len() > MAX_MESSAGE {
            return Err(Dropped::Oversized);
        }
        // dhcproto's decoder trusts option lengths (a 1-byte status code underflows it), so it
        // only ever sees options whose lengths were checked here.
        let checked = sanitize(bytes)?;
        let msg = Message::decode(&mut Decoder::new(&checked)).map_err(|_| Dropped::Malformed)?;
        let Some((sent, _)) = self.outstanding else {
            return Err(Dropped::Unexpected);
        };
        let answers = match msg.msg_type() {
            MessageType::Advertise => sent == MessageType::Solicit,
            MessageType::Reply => matches!(
                sent,
                MessageType::Request | MessageType::Renew | MessageType::Rebind
            ),
            _ => false,
        };
        let ours = matches!(msg.opts().get(OptionCode::ClientId),
            Some(DhcpOption::ClientId(id)) if *id == self.duid);
        if !answers || msg.xid() != self.xid || !ours {
            return Err(Dropped::Unexpected);
        }
        let Some(DhcpOption::ServerId(server)) = msg.opts().get(OptionCode::ServerId) else {
            return Err(Dropped::Unusable);
        };
        let server = server.clone();
        if status_failed(msg.opts()) {
            return Err(Dropped::Unusable);
        }
        let offered = Offered::from(msg.opts());
        if msg.msg_type() == MessageType::Advertise {
            if offered.address.is_none() && offered.prefixes.is_empty() {
                return Err(Dropped::Unusable);
            }
            tracing::info!(
                prefix = ?offered.prefixes.first().map(|p| p.value),
                address = ?offered.address.map(|a| a.value),
                "dhcpv6 advertise"
            );
            self.offer = Some((
                server,
                offered.address.map(|a| a.value),
                offered.prefixes.first().map(|p| p.value),
            ));
            self.start(now, Phase::Requesting, REQUEST, None);
            return Ok(self.poll(now));
        }
        // A REPLY to REQUEST, RENEW or REBIND.
        self.offer = None;
        if offered.address.is_none() && offered.prefixes.is_empty() {
            // NoBinding, NoAddrsAvail and NoPrefixAvail all end here: start over, keeping what
            // is held until it expires (the SOLICIT's REPLY replaces it).
            self.start(now, Phase::Soliciting, SOLICIT, None);
            return Err(Dropped::Unusable);
        }
        let shortest_preferred = offered
            .prefixes
            .iter()
            .map(|p| p.preferred)
            .chain(offered.address.map(|a| a.preferred))
            .min()
            .unwrap_or_default();
        let (t1, t2) = offered.timers;
        // T1/T2 of 0 leave the choice to the client (§21.4): half and 0.8 of the shortest
        // preferred lifetime; infinity (0xffffffff) means never.
        let pick = |t: Option<u32>, share: u32| match t {
            Some(u32::MAX) => None,
            Some(t) if t > 0 => Some(Duration::from_secs(u64::from(t))),
            _ => Some(shortest_preferred * share / 10),
        };
        let (mut t1, t2) = (pick(t1, 5), pick(t2, 8));
        if let (Some(a), Some(b)) = (t1, t2)
            && a > b
        {
            t1 = Some(b);
        }
        let lease = Lease {
            address: offered.address,
            prefixes: offered.prefixes,
            dns: offered.dns,
            obtained: now,
            t1,
            t2,
            server,
        };
        self.lease = Some(lease.clone());
        self.phase = Phase::Bound;
        self.outstanding = None;
        self.next_send = None;
        Ok(vec![Action::Configure(lease)])
    }
}

/// Most options read at one level of a message.
const MAX_OPTIONS: usize = 64;

/// The options a client reads, with the least length each must have (`exact`: that length
/// only) and how many bytes of fixed fields precede options nested in it (`None`: none).
fn option_shape(code: u16) -> Option<(usize, bool, Option<usize>)> {
    Some(match code {
        1 | 2 => (1, false, None),       // client and server id: a DUID
        3 | 25 => (12, false, Some(12)), // IA_NA, IA_PD: IAID, T1, T2, options
        5 => (24, false, Some(24)),      // IA address: address, lifetimes, options
        26 => (25, false, Some(25)),     // IA prefix: lifetimes, length, prefix, options
        7 => (1, true, None),            // preference
        12 => (16, true, None),          // server unicast
        13 => (2, false, None),          // status code: code, message
        23 => (16, false, None),         // DNS servers: addresses
        _ => return None,
    })
}

/// Rebuilds `bytes` as an ADVERTISE or REPLY holding only the options the client reads, each
/// with a plausible length, nested options checked the same way; everything else is left out.
/// A message whose framing does not add up is malformed.
fn sanitize(bytes: &[u8]) -> Result<Vec<u8>, Dropped> {
    let (header, options) = bytes.split_at_checked(4).ok_or(Dropped::Malformed)?;
    if !matches!(header[0], 2 | 7) {
        return Err(Dropped::Unexpected);
    }
    let mut out = header.to_vec();
    out.extend(checked_options(options, 0)?);
    Ok(out)
}

fn checked_options(mut bytes: &[u8], depth: u8) -> Result<Vec<u8>, Dropped> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut count = 0;
    while !bytes.is_empty() {
        count += 1;
        if count > MAX_OPTIONS || depth > 2 {
            return Err(Dropped::Malformed);
        }
        let (head, rest) = bytes.split_at_checked(4).ok_or(Dropped::Malformed)?;
        let code = u16::from_be_bytes([head[0], head[1]]);
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let (body, rest) = rest.split_at_checked(len).ok_or(Dropped::Malformed)?;
        bytes = rest;
        let Some((least, exact, nested)) = option_shape(code) else {
            continue;
        };
        let fits = if exact { len == least } else { len >= least };
        let fits = fits && (code != 23 || len % 16 == 0);
        if !fits {
            return Err(Dropped::Malformed);
        }
        let body = match nested {
            Some(fixed) => {
                let mut b = body[..fixed].to_vec();
                b.extend(checked_options(&body[fixed..], depth + 1)?);
                b
            }
            None => body.to_vec(),
        };
        let len = u16::try_from(body.len()).map_err(|_| Dropped::Malformed)?;
        out.extend_from_slice(&code.to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&body);
    }
    Ok(out)
}

/// Whether a top-level status code says the request failed (absent means success).
fn status_failed(opts: &DhcpOptions) -> bool {
    matches!(opts.get(OptionCode::StatusCode),
        Some(DhcpOption::StatusCode(s)) if s.status != Status::Success)
}

/// What one ADVERTISE or REPLY offers, validated.
struct Offered {
    address: Option<Timed<Ipv6Addr>>,
    prefixes: Vec<Timed<Ipv6Net>>,
    dns: Vec<Ipv6Addr>,
    /// The smallest T1 and T2 of the IAs that carry something (`None`: no such IA).
    timers: (Option<u32>, Option<u32>),
}

fn lifetimes(preferred: u32, valid: u32) -> Option<(Duration, Duration)> {
    // §21.6, §21.22: preferred above valid makes the lease invalid; valid 0 withdraws it.
    (valid > 0 && preferred <= valid).then(|| {
        (
            Duration::from_secs(u64::from(preferred)),
            Duration::from_secs(u64::from(valid)),
        )
    })
}

impl From<&DhcpOptions> for Offered {
    fn from(opts: &DhcpOptions) -> Self {
        let mut o = Self {
            address: None,
            prefixes: Vec::new(),
            dns: Vec::new(),
            timers: (None, None),
        };
        let timer = |t1: u32, t2: u32, timers: &mut (Option<u32>, Option<u32>)| {
            timers.0 = Some(timers.0.map_or(t1, |t: u32| t.min(t1)));
            timers.1 = Some(timers.1.map_or(t2, |t: u32| t.min(t2)));
        };
        for opt in opts.iter() {
            match opt {
                DhcpOption::IANA(ia) if ia.id == IA_NA_ID && !status_failed(&ia.opts) => {
                    for a in ia.opts.iter().take(MAX_LEASES) {
                        if let DhcpOption::IAAddr(a) = a
                            && o.address.is_none()
                            && is_global(a.addr)
                            && let Some((preferred, valid)) =
                                lifetimes(a.preferred_life, a.valid_life)
                        {
                            o.address = Some(Timed {
                                value: a.addr,
                                preferred,
                                valid,
                            });
                            timer(ia.t1, ia.t2, &mut o.timers);
                        }
                    }
                }
                DhcpOption::IAPD(ia) if ia.id == IA_PD_ID && !status_failed(&ia.opts) => {
                    for p in ia.opts.iter().take(MAX_LEASES) {
                        let DhcpOption::IAPrefix(p) = p else { continue };
                        let Ok(net) = Ipv6Net::new(p.prefix_ip, p.prefix_len) else {
                            continue;
                        };
                        if !(48..=64).contains(&p.prefix_len)
                            || net.trunc() != net
                            || !is_global(p.prefix_ip)
                        {
                            tracing::warn!(prefix = %net, "delegated prefix refused: not a global /48 to /64");
                            continue;
                        }
                        if let Some((preferred, valid)) =
                            lifetimes(p.preferred_lifetime, p.valid_lifetime)
                        {
                            o.prefixes.push(Timed {
                                value: net,
                                preferred,
                                valid,
                            });
                        }
                    }
                    if !o.prefixes.is_empty() {
                        timer(ia.t1, ia.t2, &mut o.timers);
                    }
                }
                DhcpOption::DomainNameServers(servers) => {
                    o.dns.extend(servers.iter().take(MAX_DNS));
                }
                _ => {}
            }
        }
        o.prefixes.sort_by_key(|p| std::cmp::Reverse(p.valid));
        o
    }
}

/// A global unicast address (2000::/3): a delegated prefix or WAN address elsewhere (ULA,
/// link-local, multicast, loopback) is a misconfigured or hostile server.
fn is_global(a: Ipv6Addr) -> bool {
    a.segments()[0] & 0xe000 == 0x2000
}

#[cfg(test)]
#[path = "dhcp6_tests.rs"]
mod tests;
