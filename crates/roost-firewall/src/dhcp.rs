//! The WAN's DHCP client (RFC 2131), as a sans-IO state machine over dhcproto: it takes `now`
//! and received bytes, and returns [`Action`]s (packets to send, a lease to configure or to drop).
//! [`Client::deadline`] says when to call [`Client::poll`] next. The IO loop is in
//! [`crate::dhcp_io`].
//!
//! States: INIT → SELECTING (DISCOVER, backing off 4 s to 64 s) → REQUESTING (REQUEST for the
//! first OFFER, 4 tries, then INIT) → BOUND → at T1 RENEWING (unicast REQUEST to the server) → at
//! T2 REBINDING (broadcast REQUEST) → at expiry INIT, dropping the address. A NAK sends it back to
//! INIT from anywhere. The broadcast flag is set whenever the client has no address yet, so
//! replies reach a UDP socket on an interface without an address.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use ipnet::Ipv4Net;

/// The phases of RFC 2131's client state diagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// No lease, nothing sent yet.
    Init,
    /// DISCOVER sent, waiting for an OFFER.
    Selecting,
    /// REQUEST sent for an OFFER, waiting for the ACK.
    Requesting,
    /// Holding a lease.
    Bound,
    /// Past T1: asking the leasing server to extend.
    Renewing,
    /// Past T2: asking any server to extend.
    Rebinding,
}

/// A lease held on the WAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Address and prefix.
    pub address: Ipv4Net,
    /// Default gateway (first router option).
    pub gateway: Option<Ipv4Addr>,
    /// The server that leased it.
    pub server: Ipv4Addr,
    /// DNS servers offered (informational: the dns VM has its own upstreams).
    pub dns: Vec<Ipv4Addr>,
    /// When the ACK arrived.
    pub obtained: Instant,
    /// Lease time (`None`: infinite).
    pub lease_time: Option<Duration>,
    /// Renewal time T1, from `obtained`.
    pub t1: Option<Duration>,
    /// Rebinding time T2, from `obtained`.
    pub t2: Option<Duration>,
}

impl Lease {
    fn at(&self, d: Option<Duration>) -> Option<Instant> {
        d.and_then(|d| self.obtained.checked_add(d))
    }

    /// When the lease runs out.
    pub fn expires(&self) -> Option<Instant> {
        self.at(self.lease_time)
    }
}

/// What the IO side must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Broadcast this packet on the interface (to 255.255.255.255:67).
    Broadcast(Vec<u8>),
    /// Send this packet to the server (to its port 67).
    Unicast(Ipv4Addr, Vec<u8>),
    /// Configure (or keep) this lease on the interface.
    Configure(Lease),
    /// Drop the address: the lease is gone.
    Deconfigure,
}

#[derive(Debug, Clone)]
enum State {
    Init,
    Selecting {
        tries: u32,
        next: Instant,
    },
    Requesting {
        address: Ipv4Addr,
        server: Ipv4Addr,
        tries: u32,
        next: Instant,
    },
    Bound(Lease),
    Renewing {
        lease: Lease,
        next: Instant,
    },
    Rebinding {
        lease: Lease,
        next: Instant,
    },
}

/// REQUEST retransmissions before giving an OFFER up.
const REQUEST_TRIES: u32 = 4;
/// Shortest wait between RENEWING/REBINDING retransmissions (RFC 2131 says 60 s; shorter leases
/// in labs need less).
const MIN_RETRANSMIT: Duration = Duration::from_secs(10);

/// The DHCP client of one interface.
#[derive(Debug, Clone)]
pub struct Client {
    mac: [u8; 6],
    xid: u32,
    state: State,
}

fn backoff(tries: u32) -> Duration {
    Duration::from_secs(4u64 << tries.min(4))
}

impl Client {
    /// A client for the interface with hardware address `mac`; `xid_seed` starts the transaction
    /// ids (give it something random in the daemon, a constant in tests).
    pub fn new(mac: [u8; 6], xid_seed: u32) -> Self {
        Self {
            mac,
            xid: xid_seed,
            state: State::Init,
        }
    }

    /// Where it is.
    pub fn phase(&self) -> Phase {
        match self.state {
            State::Init => Phase::Init,
            State::Selecting { .. } => Phase::Selecting,
            State::Requesting { .. } => Phase::Requesting,
            State::Bound(_) => Phase::Bound,
            State::Renewing { .. } => Phase::Renewing,
            State::Rebinding { .. } => Phase::Rebinding,
        }
    }

    /// The lease held, if any.
    pub fn lease(&self) -> Option<&Lease> {
        match &self.state {
            State::Bound(l)
            | State::Renewing { lease: l, .. }
            | State::Rebinding { lease: l, .. } => Some(l),
            _ => None,
        }
    }

    /// When [`poll`](Self::poll) must be called next; `None` means only a packet can change
    /// anything (an infinite lease). In INIT it is "now": any `Instant` in the past.
    pub fn deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Init => None,
            State::Selecting { next, .. } | State::Requesting { next, .. } => Some(*next),
            State::Bound(l) => l.at(l.t1),
            State::Renewing { lease, next } => {
                Some(lease.at(lease.t2).map_or(*next, |t| t.min(*next)))
            }
            State::Rebinding { lease, next } => {
                Some(lease.expires().map_or(*next, |t| t.min(*next)))
            }
        }
    }

    /// Whether the client wants [`poll`](Self::poll) right away (it is in INIT).
    pub fn needs_poll(&self) -> bool {
        matches!(self.state, State::Init)
    }

    /// Runs the timers at `now`.
    pub fn poll(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        match std::mem::replace(&mut self.state, State::Init) {
            State::Init => self.discover(now, 0, &mut out),
            State::Selecting { tries, next } if now >= next => {
                self.discover(now, tries + 1, &mut out);
            }
            State::Requesting {
                address,
                server,
                tries,
                next,
            } if now >= next => {
                if tries + 1 >= REQUEST_TRIES {
                    self.discover(now, 0, &mut out);
                } else {
                    out.push(Action::Broadcast(self.request(
                        Some((address, server)),
                        None,
                        true,
                    )));
                    self.state = State::Requesting {
                        address,
                        server,
                        tries: tries + 1,
                        next: now + backoff(tries + 1),
                    };
                }
            }
            State::Bound(lease) if lease.at(lease.t1).is_some_and(|t| now >= t) => {
                self.xid = self.xid.wrapping_add(1);
                out.push(Action::Unicast(
                    lease.server,
                    self.request(None, Some(lease.address.addr()), false),
                ));
                let next = retransmit(now, lease.at(lease.t2));
                self.state = State::Renewing { lease, next };
            }
            State::Renewing { lease, next } => {
                if lease.at(lease.t2).is_some_and(|t| now >= t) {
                    self.xid = self.xid.wrapping_add(1);
                    out.push(Action::Broadcast(self.request(
                        None,
                        Some(lease.address.addr()),
                        false,
                    )));
                    let next = retransmit(now, lease.expires());
                    self.state = State::Rebinding { lease, next };
                } else if now >= next {
                    out.push(Action::Unicast(
                        lease.server,
                        self.request(None, Some(lease.address.addr()), false),
                    ));
                    let next = retransmit(now, lease.at(lease.t2));
                    self.state = State::Renewing { lease, next };
                } else {
                    self.state = State::Renewing { lease, next };
                }
            }
            State::Rebinding { lease, next } => {
                if lease.expires().is_some_and(|t| now >= t) {
                    out.push(Action::Deconfigure);
                    self.discover(now, 0, &mut out);
                } else if now >= next {
                    out.push(Action::Broadcast(self.request(
                        None,
                        Some(lease.address.addr()),
                        false,
                    )));
                    let next = retransmit(now, lease.expires());
                    self.state = State::Rebinding { lease, next };
                } else {
                    self.state = State::Rebinding { lease, next };
                }
            }
            other => self.state = other,
        }
        out
    }

    /// Handles a packet received on port 68 at `now`; anything not for this client is ignored.
    pub fn handle(&mut self, now: Instant, bytes: &[u8]) -> Vec<Action> {
        let Ok(msg) = Message::decode(&mut Decoder::new(bytes)) else {
            return Vec::new();
        };
        if msg.opcode() != Opcode::BootReply
            || msg.xid() != self.xid
            || msg.chaddr().get(..6) != Some(&self.mac[..])
        {
            return Vec::new();
        }
        let server = match msg.opts().get(OptionCode::ServerIdentifier) {
            Some(DhcpOption::ServerIdentifier(ip)) => Some(*ip),
            _ => None,
        };
        let mut out = Vec::new();
        match (
            msg.opts().msg_type(),
            std::mem::replace(&mut self.state, State::Init),
        ) {
            (Some(MessageType::Offer), State::Selecting { .. }) if server.is_some() => {
                let address = msg.yiaddr();
                let server = server.unwrap_or(Ipv4Addr::UNSPECIFIED);
                out.push(Action::Broadcast(self.request(
                    Some((address, server)),
                    None,
                    true,
                )));
                self.state = State::Requesting {
                    address,
                    server,
                    tries: 0,
                    next: now + backoff(0),
                };
            }
            (
                Some(MessageType::Ack),
                prev
                @ (State::Requesting { .. } | State::Renewing { .. } | State::Rebinding { .. }),
            ) => {
                let fallback = match &prev {
                    State::Requesting { server, .. } => *server,
                    State::Renewing { lease, .. } | State::Rebinding { lease, .. } => lease.server,
                    _ => Ipv4Addr::UNSPECIFIED,
                };
                match lease_from(&msg, now, server.unwrap_or(fallback)) {
                    Some(lease) => {
                        out.push(Action::Configure(lease.clone()));
                        self.state = State::Bound(lease);
                    }
                    None => self.state = prev,
                }
            }
            (
                Some(MessageType::Nak),
                prev
                @ (State::Requesting { .. } | State::Renewing { .. } | State::Rebinding { .. }),
            ) => {
                if !matches!(prev, State::Requesting { .. }) {
                    out.push(Action::Deconfigure);
                }
                self.discover(now, 0, &mut out);
            }
            (_, prev) => self.state = prev,
        }
        out
    }

    fn discover(&mut self, now: Instant, tries: u32, out: &mut Vec<Action>) {
        if tries == 0 {
            self.xid = self.xid.wrapping_add(1);
        }
        let mut msg = self.message(Ipv4Addr::UNSPECIFIED, true);
        msg.opts_mut()
            .insert(DhcpOption::MessageType(MessageType::Discover));
        out.push(Action::Broadcast(encode(&msg)));
        self.state = State::Selecting {
            tries,
            next: now + backoff(tries),
        };
    }

    /// A REQUEST: `selected` = (offered address, server) when answering an OFFER; `ciaddr`
    /// when renewing or rebinding.
    fn request(
        &self,
        selected: Option<(Ipv4Addr, Ipv4Addr)>,
        ciaddr: Option<Ipv4Addr>,
        broadcast: bool,
    ) -> Vec<u8> {
        let mut msg = self.message(ciaddr.unwrap_or(Ipv4Addr::UNSPECIFIED), broadcast);
        let opts = msg.opts_mut();
        opts.insert(DhcpOption::MessageType(MessageType::Request));
        if let Some((address, server)) = selected {
            opts.insert(DhcpOption::RequestedIpAddress(address));
            opts.insert(DhcpOption::ServerIdentifier(server));
        }
        encode(&msg)
    }

    fn message(&self, ciaddr: Ipv4Addr, broadcast: bool) -> Message {
        let unspecified = Ipv4Addr::UNSPECIFIED;
        let mut msg = Message::new_with_id(
            self.xid,
            ciaddr,
            unspecified,
            unspecified,
            unspecified,
            &self.mac,
        );
        if broadcast {
            msg.set_flags(Flags::default().set_broadcast());
        }
        let mut client_id = vec![1u8];
        client_id.extend_from_slice(&self.mac);
        let opts = msg.opts_mut();
        opts.insert(DhcpOption::ClientIdentifier(client_id));
        opts.insert(DhcpOption::ParameterRequestList(vec![
            OptionCode::SubnetMask,
            OptionCode::Router,
            OptionCode::DomainNameServer,
            OptionCode::AddressLeaseTime,
            OptionCode::Renewal,
            OptionCode::Rebinding,
        ]));
        msg
    }
}

/// The next retransmission: half the time left until `until`, at least [`MIN_RETRANSMIT`].
fn retransmit(now: Instant, until: Option<Instant>) -> Instant {
    let half = until.map_or(Duration::from_secs(3600), |t| {
        t.saturating_duration_since(now) / 2
    });
    now + half.max(MIN_RETRANSMIT)
}

fn encode(msg: &Message) -> Vec<u8> {
    let mut buf = Vec::with_capacity(300);
    // Encoding into a Vec only fails on values dhcproto cannot represent, which we never build.
    let _ = msg.encode(&mut Encoder::new(&mut buf));
    buf
}

fn secs(msg: &Message, code: OptionCode) -> Option<u32> {
    match msg.opts().get(code) {
        Some(
            DhcpOption::AddressLeaseTime(s) | DhcpOption::Renewal(s) | DhcpOption::Rebinding(s),
        ) => Some(*s),
        _ => None,
    }
}

fn lease_from(msg: &Message, now: Instant, server: Ipv4Addr) -> Option<Lease> {
    let address = msg.yiaddr();
    if address.is_unspecified() {
        return None;
    }
    let prefix = match msg.opts().get(OptionCode::SubnetMask) {
        Some(DhcpOption::SubnetMask(mask)) => u32::from(*mask).count_ones() as u8,
        _ => 24,
    };
    let gateway = match msg.opts().get(OptionCode::Router) {
        Some(DhcpOption::Router(r)) => r.first().copied(),
        _ => None,
    };
    let dns = match msg.opts().get(OptionCode::DomainNameServer) {
        Some(DhcpOption::DomainNameServer(d)) => d.clone(),
        _ => Vec::new(),
    };
    let finite = |s: u32| (s != u32::MAX).then(|| Duration::from_secs(u64::from(s)));
    let lease_time =
        secs(msg, OptionCode::AddressLeaseTime).map_or(Some(Duration::from_secs(3600)), finite);
    let t1 = secs(msg, OptionCode::Renewal)
        .map(finite)
        .unwrap_or_else(|| lease_time.map(|l| l / 2));
    let t2 = secs(msg, OptionCode::Rebinding)
        .map(finite)
        .unwrap_or_else(|| lease_time.map(|l| l * 7 / 8));
    Some(Lease {
        address: Ipv4Net::new(address, prefix.min(32)).ok()?,
        gateway,
        server,
        dns,
        obtained: now,
        lease_time,
        t1,
        t2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x52, 0x54, 0, 0xab, 0xcd, 0xef];
    const SERVER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
    const ADDR: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 50);

    fn decode(bytes: &[u8]) -> Message {
        Message::decode(&mut Decoder::new(bytes)).unwrap()
    }

    fn sent(actions: &[Action]) -> Message {
        match actions.iter().find_map(|a| match a {
            Action::Broadcast(b) | Action::Unicast(_, b) => Some(b),
            _ => None,
        }) {
            Some(b) => decode(b),
            None => panic!("nothing sent: {actions:?}"),
        }
    }

    /// A server reply to `req` of type `kind`, lease 1000 s.
    fn reply(req: &Message, kind: MessageType) -> Vec<u8> {
        let mut m = Message::new_with_id(
            req.xid(),
            Ipv4Addr::UNSPECIFIED,
            ADDR,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            &MAC,
        );
        m.set_opcode(Opcode::BootReply);
        let o = m.opts_mut();
        o.insert(DhcpOption::MessageType(kind));
        o.insert(DhcpOption::ServerIdentifier(SERVER));
        o.insert(DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)));
        o.insert(DhcpOption::Router(vec![SERVER]));
        o.insert(DhcpOption::AddressLeaseTime(1000));
        encode(&m)
    }

    /// A client bound at `t0`, and the REQUEST it last sent.
    fn bound(t0: Instant) -> Client {
        let mut c = Client::new(MAC, 7);
        let discover = sent(&c.poll(t0));
        let request = sent(&c.handle(t0, &reply(&discover, MessageType::Offer)));
        let acts = c.handle(t0, &reply(&request, MessageType::Ack));
        assert!(
            matches!(acts.as_slice(), [Action::Configure(_)]),
            "{acts:?}"
        );
        c
    }

    #[test]
    fn discovers_with_broadcast_flag_from_init() {
        let mut c = Client::new(MAC, 7);
        assert_eq!(c.phase(), Phase::Init);
        let acts = c.poll(Instant::now());
        assert!(matches!(acts.as_slice(), [Action::Broadcast(_)]));
        let m = sent(&acts);
        assert_eq!(m.opts().msg_type(), Some(MessageType::Discover));
        assert!(m.flags().broadcast());
        assert_eq!(&m.chaddr()[..6], &MAC);
        assert_eq!(c.phase(), Phase::Selecting);
    }

    #[test]
    fn requests_the_offered_address_from_the_offering_server() {
        let t0 = Instant::now();
        let mut c = Client::new(MAC, 7);
        let d = sent(&c.poll(t0));
        let r = sent(&c.handle(t0, &reply(&d, MessageType::Offer)));
        assert_eq!(r.opts().msg_type(), Some(MessageType::Request));
        assert_eq!(
            r.opts().get(OptionCode::RequestedIpAddress),
            Some(&DhcpOption::RequestedIpAddress(ADDR))
        );
        assert_eq!(
            r.opts().get(OptionCode::ServerIdentifier),
            Some(&DhcpOption::ServerIdentifier(SERVER))
        );
        assert_eq!(c.phase(), Phase::Requesting);
    }

    #[test]
    fn ack_binds_with_address_gateway_and_timers() {
        let t0 = Instant::now();
        let c = bound(t0);
        assert_eq!(c.phase(), Phase::Bound);
        let l = c.lease().unwrap();
        assert_eq!(l.address, "203.0.113.50/24".parse::<Ipv4Net>().unwrap());
        assert_eq!(l.gateway, Some(SERVER));
        assert_eq!(l.t1, Some(Duration::from_secs(500)));
        assert_eq!(l.t2, Some(Duration::from_secs(875)));
        assert_eq!(c.deadline(), Some(t0 + Duration::from_secs(500)));
    }

    #[test]
    fn ignores_replies_for_another_transaction_or_client() {
        let t0 = Instant::now();
        let mut c = Client::new(MAC, 7);
        let d = sent(&c.poll(t0));
        let mut other = d.clone();
        other.set_xid(d.xid().wrapping_add(99));
        assert!(c.handle(t0, &reply(&other, MessageType::Offer)).is_empty());
        let mut m = decode(&reply(&d, MessageType::Offer));
        m.set_chaddr(&[1, 2, 3, 4, 5, 6]);
        assert!(c.handle(t0, &encode(&m)).is_empty());
        assert!(c.handle(t0, b"garbage").is_empty());
        assert_eq!(c.phase(), Phase::Selecting);
    }

    #[test]
    fn retransmits_discover_with_backoff_and_not_before() {
        let t0 = Instant::now();
        let mut c = Client::new(MAC, 7);
        c.poll(t0);
        assert!(c.poll(t0 + Duration::from_secs(3)).is_empty());
        assert_eq!(c.poll(t0 + Duration::from_secs(4)).len(), 1);
        assert_eq!(c.deadline(), Some(t0 + Duration::from_secs(12)));
    }

    #[test]
    fn gives_up_an_unanswered_offer_and_discovers_again() {
        let t0 = Instant::now();
        let mut c = Client::new(MAC, 7);
        let d = sent(&c.poll(t0));
        c.handle(t0, &reply(&d, MessageType::Offer));
        let mut now = t0;
        for _ in 0..REQUEST_TRIES {
            now = c.deadline().unwrap();
            c.poll(now);
        }
        assert_eq!(c.phase(), Phase::Selecting);
        assert!(now > t0);
    }

    #[test]
    fn renews_by_unicast_at_t1_and_rebinds_by_broadcast_at_t2() {
        let t0 = Instant::now();
        let mut c = bound(t0);
        assert!(c.poll(t0 + Duration::from_secs(499)).is_empty());
        let acts = c.poll(t0 + Duration::from_secs(500));
        assert!(
            matches!(acts.as_slice(), [Action::Unicast(SERVER, _)]),
            "{acts:?}"
        );
        let r = sent(&acts);
        assert_eq!(r.ciaddr(), ADDR);
        assert!(r.opts().get(OptionCode::ServerIdentifier).is_none());
        assert_eq!(c.phase(), Phase::Renewing);
        let acts = c.poll(t0 + Duration::from_secs(875));
        assert!(
            matches!(acts.as_slice(), [Action::Broadcast(_)]),
            "{acts:?}"
        );
        assert_eq!(c.phase(), Phase::Rebinding);
    }

    #[test]
    fn renewal_ack_extends_the_lease_from_now() {
        let t0 = Instant::now();
        let mut c = bound(t0);
        let t1 = t0 + Duration::from_secs(500);
        let r = sent(&c.poll(t1));
        let acts = c.handle(t1, &reply(&r, MessageType::Ack));
        assert!(matches!(acts.as_slice(), [Action::Configure(l)] if l.obtained == t1));
        assert_eq!(c.phase(), Phase::Bound);
        assert_eq!(c.deadline(), Some(t1 + Duration::from_secs(500)));
    }

    #[test]
    fn expiry_drops_the_address_and_starts_over() {
        let t0 = Instant::now();
        let mut c = bound(t0);
        c.poll(t0 + Duration::from_secs(500));
        c.poll(t0 + Duration::from_secs(875));
        let acts = c.poll(t0 + Duration::from_secs(1000));
        assert_eq!(acts.first(), Some(&Action::Deconfigure));
        assert_eq!(sent(&acts).opts().msg_type(), Some(MessageType::Discover));
        assert_eq!(c.phase(), Phase::Selecting);
        assert!(c.lease().is_none());
    }

    #[test]
    fn nak_while_renewing_drops_the_lease() {
        let t0 = Instant::now();
        let mut c = bound(t0);
        let r = sent(&c.poll(t0 + Duration::from_secs(500)));
        let acts = c.handle(t0 + Duration::from_secs(501), &reply(&r, MessageType::Nak));
        assert_eq!(acts.first(), Some(&Action::Deconfigure));
        assert_eq!(c.phase(), Phase::Selecting);
    }
}
