//! The sans-IO decision core: `(state, packet, now) -> (reply, lease changes)`.
//!
//! [`Core::handle`] takes the raw bytes of one packet, the interface it arrived on and the
//! current time (Unix seconds), and returns a [`Decision`]: the reply to send (if any) with
//! where to send it, and the lease records that changed. The caller must make the changes
//! durable before it sends the reply (the ACK promises the lease). No sockets, no clock, no
//! files: the unit tests below drive every message type with explicit time.
//!
//! Leases are keyed by address, one record per address, so the table is bounded by the pools
//! (plus reservations). A released or expired lease keeps its record, which is how a client gets
//! the same address back later while nobody else took it. Offers are kept in memory only
//! (a lost offer costs the client one retry).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;

use dhcproto::v4::{self, DhcpOption, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder};
use ipnet::Ipv4Net;
use roost_config::MacAddr;
use roost_config::views::DhcpView;
use serde::{Deserialize, Serialize};

/// Shortest packet that can be a DHCP message: the BOOTP header (236) and the magic cookie.
pub const MIN_PACKET: usize = 240;
/// Longest packet accepted: an Ethernet frame's worth of UDP payload.
pub const MAX_PACKET: usize = 1500;
/// How long an offered address is held for the client that was offered it.
pub const OFFER_HOLD_SECS: u64 = 60;
const MAGIC: [u8; 4] = [99, 130, 83, 99];
const SWEEP_EVERY_SECS: u64 = 10;

/// The view could not be turned into a server configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A reservation's client id is not hex.
    #[error("reservation for {ip}: client_id `{client_id}` is not hex bytes")]
    ClientId {
        /// The reserved address.
        ip: Ipv4Addr,
        /// What was given.
        client_id: String,
    },
    /// A reservation names a zone without a pool.
    #[error("reservation for {ip}: zone `{zone}` has no DHCP pool")]
    Zone {
        /// The reserved address.
        ip: Ipv4Addr,
        /// The zone.
        zone: String,
    },
}

/// One zone the server hands out addresses in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneConfig {
    /// Zone name.
    pub name: String,
    /// Interface the zone's broadcasts arrive on.
    pub interface: String,
    /// The zone's subnet.
    pub subnet: Ipv4Net,
    /// Gateway given to clients.
    pub router: Ipv4Addr,
    /// This server's address in the zone (server identifier).
    pub server: Ipv4Addr,
    /// DNS server given to clients.
    pub dns_server: Ipv4Addr,
    /// First pool address.
    pub pool_start: Ipv4Addr,
    /// Last pool address.
    pub pool_end: Ipv4Addr,
    /// Lease time in seconds.
    pub lease_secs: u32,
}

impl ZoneConfig {
    fn in_pool(&self, ip: Ipv4Addr) -> bool {
        (self.pool_start..=self.pool_end).contains(&ip) && self.is_host(ip)
    }

    fn is_host(&self, ip: Ipv4Addr) -> bool {
        self.subnet.contains(&ip)
            && ip != self.subnet.network()
            && ip != self.subnet.broadcast()
            && ip != self.router
            && ip != self.server
    }

    /// Addresses in the pool.
    pub fn pool_size(&self) -> u64 {
        u64::from(u32::from(self.pool_end)).saturating_sub(u64::from(u32::from(self.pool_start)))
            + 1
    }
}

/// A fixed address for one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationConfig {
    /// Zone.
    pub zone: String,
    /// Matched against the hardware address.
    pub mac: Option<[u8; 6]>,
    /// Matched against option 61.
    pub client_id: Option<Vec<u8>>,
    /// The address.
    pub ip: Ipv4Addr,
    /// Its host name.
    pub hostname: Option<String>,
}

/// Everything the core needs from the settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Zones with pools.
    pub zones: Vec<ZoneConfig>,
    /// Reservations.
    pub reservations: Vec<ReservationConfig>,
    /// Most leases (bound or offered) one MAC may hold at once.
    pub max_leases_per_client: u32,
    /// Most packets per second accepted from one MAC.
    pub rate_limit_per_mac: u32,
    /// How long a declined address stays out of the pool, in seconds.
    pub quarantine_secs: u64,
    /// Domain name given to clients.
    pub domain: String,
}

impl Config {
    /// The core's configuration from the dhcp view.
    pub fn from_view(view: &DhcpView) -> Result<Self, ConfigError> {
        let zones: Vec<ZoneConfig> = view
            .zones
            .iter()
            .map(|z| ZoneConfig {
                name: z.name.clone(),
                interface: z.interface.clone(),
                subnet: z.subnet,
                router: z.router,
                server: z.server,
                dns_server: z.dns_server,
                pool_start: z.pool_start,
                pool_end: z.pool_end,
                lease_secs: u32::try_from(z.lease_time.0.as_secs()).unwrap_or(u32::MAX),
            })
            .collect();
        let mut reservations = Vec::new();
        for r in &view.reservations {
            if !zones.iter().any(|z| z.name == r.zone) {
                return Err(ConfigError::Zone {
                    ip: r.ip,
                    zone: r.zone.clone(),
                });
            }
            let client_id = match &r.client_id {
                Some(hex) => Some(parse_hex(hex).ok_or_else(|| ConfigError::ClientId {
                    ip: r.ip,
                    client_id: hex.clone(),
                })?),
                None => None,
            };
            reservations.push(ReservationConfig {
                zone: r.zone.clone(),
                mac: r.mac.map(|m| m.0),
                client_id,
                ip: r.ip,
                hostname: r.hostname.clone(),
            });
        }
        Ok(Self {
            zones,
            reservations,
            max_leases_per_client: view.max_leases_per_client.max(1),
            rate_limit_per_mac: view.rate_limit_per_mac.max(1),
            quarantine_secs: view.decline_quarantine.0.as_secs(),
            domain: view.domain.clone(),
        })
    }
}

fn parse_hex(s: &str) -> Option<Vec<u8>> {
    let s: String = s.chars().filter(|c| *c != ':' && *c != '-').collect();
    if s.is_empty() || !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How a client is known: option 61 when it sends one, else `01` + its MAC (RFC 2132 §9.14's
/// convention, so a client that starts sending option 61 later is still the same client).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub Vec<u8>);

impl Serialize for ClientId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&to_hex(&self.0))
    }
}

impl<'de> Deserialize<'de> for ClientId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_hex(&s)
            .map(Self)
            .ok_or_else(|| serde::de::Error::custom("client id is not hex"))
    }
}

/// What a lease record says about its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeaseState {
    /// Acknowledged to the client, until `expires`.
    Bound,
    /// Given back by the client (RELEASE); the record stays for address affinity.
    Released,
    /// The client found the address in use (DECLINE); out of the pool until `expires`.
    Declined,
}

/// One lease record: the durable unit of the lease store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The address.
    pub ip: Ipv4Addr,
    /// Its zone.
    pub zone: String,
    /// Who holds it.
    pub client_id: ClientId,
    /// The holder's hardware address.
    pub mac: MacAddr,
    /// Option 12, as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Option 81's domain name, as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fqdn: Option<String>,
    /// Bound, released or declined.
    pub state: LeaseState,
    /// When it was last acknowledged (Unix seconds).
    pub starts: u64,
    /// When it ends (Unix seconds); for `Declined`, when the quarantine ends.
    pub expires: u64,
}

impl Lease {
    /// Whether the address is in use (bound and not expired, or quarantined) at `now`.
    pub fn is_active(&self, now: u64) -> bool {
        self.state != LeaseState::Released && self.expires > now
    }
}

/// Where a reply goes (RFC 2131 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// 255.255.255.255:68 on the interface the request came in on.
    Broadcast,
    /// The client's own address, port 68 (it has one: RENEW, INFORM).
    Unicast(Ipv4Addr),
    /// The relay agent (giaddr), port 67.
    Relay(Ipv4Addr),
}

/// A reply to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The message.
    pub message: Message,
    /// Where it goes.
    pub to: Destination,
}

impl Reply {
    /// The reply's message type.
    pub fn kind(&self) -> Option<MessageType> {
        self.message.opts().msg_type()
    }
}

/// What to do about one packet.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decision {
    /// The reply, if one is due.
    pub reply: Option<Reply>,
    /// Lease records that changed: make them durable before sending the reply.
    pub changes: Vec<Lease>,
}

/// Why a packet got no reply; each reason is a `/metrics` counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Drop {
    /// Shorter than a DHCP header.
    Truncated,
    /// Longer than [`MAX_PACKET`].
    Oversized,
    /// Not decodable, or without the magic cookie.
    Malformed,
    /// A BOOTREPLY sent to the server.
    WrongOpcode,
    /// Not Ethernet (htype 1, hlen 6).
    NotEthernet,
    /// No option 53 (plain BOOTP is not served).
    NoMessageType,
    /// A message type a server does not handle.
    UnsupportedType,
    /// Over the per-MAC rate limit.
    RateLimited,
    /// No zone for the interface or relay address.
    NoZone,
    /// The pool has no free address.
    PoolExhausted,
    /// The client already holds `max_leases_per_client` leases.
    ClientLimit,
    /// A REQUEST for another server's offer (not an error: the client chose it).
    OtherServer,
    /// A REQUEST that names no address.
    BadRequest,
    /// A RELEASE or DECLINE for a lease the client does not hold.
    UnknownLease,
}

impl Drop {
    /// Every reason, for the metrics.
    pub const ALL: [Self; 14] = [
        Self::Truncated,
        Self::Oversized,
        Self::Malformed,
        Self::WrongOpcode,
        Self::NotEthernet,
        Self::NoMessageType,
        Self::UnsupportedType,
        Self::RateLimited,
        Self::NoZone,
        Self::PoolExhausted,
        Self::ClientLimit,
        Self::OtherServer,
        Self::BadRequest,
        Self::UnknownLease,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Truncated => "truncated",
            Self::Oversized => "oversized",
            Self::Malformed => "malformed",
            Self::WrongOpcode => "wrong_opcode",
            Self::NotEthernet => "not_ethernet",
            Self::NoMessageType => "no_message_type",
            Self::UnsupportedType => "unsupported_type",
            Self::RateLimited => "rate_limited",
            Self::NoZone => "no_zone",
            Self::PoolExhausted => "pool_exhausted",
            Self::ClientLimit => "client_limit",
            Self::OtherServer => "other_server",
            Self::BadRequest => "bad_request",
            Self::UnknownLease => "unknown_lease",
        }
    }
}

/// Counters of what the core saw and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Packets handed to the core.
    pub received: u64,
    /// Received, by message type name.
    pub by_type: BTreeMap<&'static str, u64>,
    /// Sent, by message type name.
    pub replies: BTreeMap<&'static str, u64>,
    /// Dropped, by reason.
    pub dropped: BTreeMap<Drop, u64>,
}

fn type_name(t: MessageType) -> &'static str {
    match t {
        MessageType::Discover => "discover",
        MessageType::Offer => "offer",
        MessageType::Request => "request",
        MessageType::Decline => "decline",
        MessageType::Ack => "ack",
        MessageType::Nak => "nak",
        MessageType::Release => "release",
        MessageType::Inform => "inform",
        _ => "other",
    }
}

#[derive(Debug, Clone)]
struct Offer {
    client: ClientId,
    mac: [u8; 6],
    expires: u64,
}

/// The pending offers, by address and by MAC: counting what one MAC holds (on every DISCOVER
/// and REQUEST) must not scan every offer, and a burst of clients that never REQUEST leaves
/// tens of thousands of them for [`OFFER_HOLD_SECS`].
#[derive(Debug, Default)]
struct Offers {
    by_ip: HashMap<Ipv4Addr, Offer>,
    by_mac: HashMap<[u8; 6], HashSet<Ipv4Addr>>,
}

impl Offers {
    fn get(&self, ip: &Ipv4Addr) -> Option<&Offer> {
        self.by_ip.get(ip)
    }

    fn contains_key(&self, ip: &Ipv4Addr) -> bool {
        self.by_ip.contains_key(ip)
    }

    fn unlink(&mut self, mac: [u8; 6], ip: Ipv4Addr) {
        if let Some(set) = self.by_mac.get_mut(&mac) {
            set.remove(&ip);
            if set.is_empty() {
                self.by_mac.remove(&mac);
            }
        }
    }

    fn insert(&mut self, ip: Ipv4Addr, offer: Offer) {
        let mac = offer.mac;
        if let Some(old) = self.by_ip.insert(ip, offer) {
            self.unlink(old.mac, ip);
        }
        self.by_mac.entry(mac).or_default().insert(ip);
    }

    fn remove(&mut self, ip: &Ipv4Addr) -> Option<Offer> {
        let old = self.by_ip.remove(ip)?;
        self.unlink(old.mac, *ip);
        Some(old)
    }

    /// Drops the offers that have expired at `now`.
    fn sweep(&mut self, now: u64) {
        let mut gone = Vec::new();
        self.by_ip.retain(|ip, o| {
            let keep = o.expires > now;
            if !keep {
                gone.push((o.mac, *ip));
            }
            keep
        });
        for (mac, ip) in gone {
            self.unlink(mac, ip);
        }
    }

    /// The offers made to `mac`.
    fn of_mac(&self, mac: [u8; 6]) -> impl Iterator<Item = (Ipv4Addr, &Offer)> {
        self.by_mac
            .get(&mac)
            .into_iter()
            .flatten()
            .filter_map(|ip| self.by_ip.get(ip).map(|o| (*ip, o)))
    }
}

/// The server's whole state: configuration, leases, offers, rate-limit windows, counters.
#[derive(Debug)]
pub struct Core {
    config: Config,
    leases: BTreeMap<Ipv4Addr, Lease>,
    by_client: HashMap<(String, ClientId), Ipv4Addr>,
    by_mac: HashMap<[u8; 6], HashSet<Ipv4Addr>>,
    offers: Offers,
    offer_by_client: HashMap<(String, ClientId), Ipv4Addr>,
    /// Per zone: where the search for a never-used address goes on.
    cursor: HashMap<String, u32>,
    rate: HashMap<[u8; 6], (u64, u32)>,
    next_sweep: u64,
    stats: Stats,
    /// A lease with a (possible) name changed since [`Core::take_names_changed`] last asked.
    names_changed: bool,
}

/// What the parsed request carries that the decisions need.
struct Request<'a> {
    msg: &'a Message,
    zone: usize,
    client: ClientId,
    mac: [u8; 6],
    hostname: Option<String>,
    fqdn: Option<String>,
}

impl Core {
    /// A core with no leases.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            leases: BTreeMap::new(),
            by_client: HashMap::new(),
            by_mac: HashMap::new(),
            offers: Offers::default(),
            offer_by_client: HashMap::new(),
            cursor: HashMap::new(),
            rate: HashMap::new(),
            next_sweep: 0,
            stats: Stats::default(),
            names_changed: true,
        }
    }

    /// Puts lease records back (from the store at start); later records win.
    pub fn restore(&mut self, leases: impl IntoIterator<Item = Lease>) {
        for lease in leases {
            self.put(lease);
        }
    }

    /// Replaces the configuration, keeping every lease and offer.
    pub fn set_config(&mut self, config: Config) {
        self.config = config;
        self.cursor.clear();
        // Reservations' names may have changed.
        self.names_changed = true;
    }

    /// Whether the set of lease names may have changed since the last call (a lease with a
    /// name, or a reservation with one, was bound, renewed, released or declined, or the
    /// configuration was replaced). Expiry is not reported here: see [`Core::local_names`].
    pub fn take_names_changed(&mut self) -> bool {
        std::mem::take(&mut self.names_changed)
    }

    /// The name `lease` is published under in the local domain, if any: its reservation's
    /// `hostname` (which wins over what the client claims), else the client's option 81 or
    /// option 12 name made one DNS label, unless that is a reserved name of another device.
    pub fn lease_name(&self, lease: &Lease) -> Option<String> {
        let own = self.config.reservations.iter().find(|r| {
            r.ip == lease.ip
                && r.zone == lease.zone
                && (r.mac == Some(lease.mac.0)
                    || r.client_id.as_deref() == Some(&lease.client_id.0[..]))
        });
        self.publish_name(own, lease.fqdn.as_deref(), lease.hostname.as_deref())
    }

    fn publish_name(
        &self,
        own: Option<&ReservationConfig>,
        fqdn: Option<&str>,
        hostname: Option<&str>,
    ) -> Option<String> {
        if let Some(name) = own.and_then(|r| r.hostname.as_deref()).and_then(host_label) {
            return Some(name);
        }
        let claimed = fqdn
            .and_then(host_label)
            .or_else(|| hostname.and_then(host_label))?;
        let reserved = self.config.reservations.iter().any(|r| {
            !own.is_some_and(|o| std::ptr::eq(o, r))
                && r.hostname.as_deref().and_then(host_label).as_deref() == Some(&claimed[..])
        });
        (!reserved).then_some(claimed)
    }

    /// The names of the bound, unexpired leases at `now`, sorted by name, each with its
    /// address (a name claimed by two leases goes to the one acknowledged last), and the next
    /// time (Unix seconds) one of them expires, when the set changes without a packet.
    pub fn local_names(&self, now: u64) -> (Vec<(String, Ipv4Addr)>, Option<u64>) {
        let mut names: BTreeMap<String, &Lease> = BTreeMap::new();
        let mut next_expiry: Option<u64> = None;
        for lease in self.leases.values() {
            if lease.state != LeaseState::Bound || lease.expires <= now {
                continue;
            }
            let Some(name) = self.lease_name(lease) else {
                continue;
            };
            next_expiry = Some(next_expiry.map_or(lease.expires, |e| e.min(lease.expires)));
            match names.get(&name) {
                Some(other) if (other.starts, other.ip) > (lease.starts, lease.ip) => {}
                _ => {
                    names.insert(name, lease);
                }
            }
        }
        let names = names.into_iter().map(|(n, l)| (n, l.ip)).collect();
        (names, next_expiry)
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Every lease record, by address.
    pub fn leases(&self) -> impl Iterator<Item = &Lease> {
        self.leases.values()
    }

    /// Number of lease records.
    pub fn lease_count(&self) -> usize {
        self.leases.len()
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    fn put(&mut self, lease: Lease) {
        let named = |l: &Lease| {
            l.hostname.is_some()
                || l.fqdn.is_some()
                || self
                    .config
                    .reservations
                    .iter()
                    .any(|r| r.ip == l.ip && r.hostname.is_some())
        };
        if named(&lease) || self.leases.get(&lease.ip).is_some_and(named) {
            self.names_changed = true;
        }
        if let Some(old) = self.leases.get(&lease.ip) {
            let key = (old.zone.clone(), old.client_id.clone());
            if self.by_client.get(&key) == Some(&old.ip) {
                self.by_client.remove(&key);
            }
            if let Some(set) = self.by_mac.get_mut(&old.mac.0) {
                set.remove(&old.ip);
                if set.is_empty() {
                    self.by_mac.remove(&old.mac.0);
                }
            }
        }
        if lease.state != LeaseState::Declined {
            self.by_client
                .insert((lease.zone.clone(), lease.client_id.clone()), lease.ip);
        }
        self.by_mac.entry(lease.mac.0).or_default().insert(lease.ip);
        self.leases.insert(lease.ip, lease);
    }

    fn drop_packet(&mut self, why: Drop) -> Decision {
        *self.stats.dropped.entry(why).or_default() += 1;
        tracing::debug!(reason = why.label(), "dropped dhcp packet");
        Decision::default()
    }

    /// Decides what to do about `packet`, received on `interface` at `now` (Unix seconds).
    pub fn handle(&mut self, interface: &str, packet: &[u8], now: u64) -> Decision {
        self.stats.received += 1;
        if now >= self.next_sweep {
            self.sweep(now);
        }
        if packet.len() < MIN_PACKET {
            return self.drop_packet(Drop::Truncated);
        }
        if packet.len() > MAX_PACKET {
            return self.drop_packet(Drop::Oversized);
        }
        if packet.get(236..240) != Some(&MAGIC[..]) {
            return self.drop_packet(Drop::Malformed);
        }
        if !options_well_formed(&packet[MIN_PACKET..]) {
            return self.drop_packet(Drop::Malformed);
        }
        // dhcproto is not written for hostile input (it has debug assertions on option
        // lengths, found by the fuzzer); a panic in it must cost one packet, not the server.
        let decoded = std::panic::catch_unwind(|| Message::decode(&mut Decoder::new(packet)));
        let msg = match decoded {
            Ok(Ok(m)) => m,
            Ok(Err(_)) | Err(_) => return self.drop_packet(Drop::Malformed),
        };
        if msg.opcode() != Opcode::BootRequest {
            return self.drop_packet(Drop::WrongOpcode);
        }
        if msg.htype() != v4::HType::Eth || msg.hlen() != 6 {
            return self.drop_packet(Drop::NotEthernet);
        }
        let Some(kind) = msg.opts().msg_type() else {
            return self.drop_packet(Drop::NoMessageType);
        };
        *self.stats.by_type.entry(type_name(kind)).or_default() += 1;
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&msg.chaddr()[..6]);
        if !self.within_rate(mac, now) {
            return self.drop_packet(Drop::RateLimited);
        }
        let Some(zone) = self.zone_for(interface, &msg) else {
            return self.drop_packet(Drop::NoZone);
        };
        let client = match msg.opts().get(OptionCode::ClientIdentifier) {
            Some(DhcpOption::ClientIdentifier(id)) if !id.is_empty() => ClientId(id.clone()),
            _ => {
                let mut id = vec![1u8];
                id.extend_from_slice(&mac);
                ClientId(id)
            }
        };
        let hostname = match msg.opts().get(OptionCode::Hostname) {
            Some(DhcpOption::Hostname(h)) => Some(clean_name(h)),
            _ => None,
        };
        let fqdn = match msg.opts().get(OptionCode::ClientFQDN) {
            Some(DhcpOption::ClientFQDN(f)) => Some(clean_name(&f.domain().to_string())),
            _ => None,
        };
        let req = Request {
            msg: &msg,
            zone,
            client,
            mac,
            hostname,
            fqdn,
        };
        let decision = match kind {
            MessageType::Discover => self.discover(&req, now),
            MessageType::Request => self.request(&req, now),
            MessageType::Decline => self.decline(&req, now),
            MessageType::Release => self.release(&req, now),
            MessageType::Inform => Ok(self.inform(&req)),
            _ => Err(Drop::UnsupportedType),
        };
        match decision {
            Ok(d) => {
                if let Some(kind) = d.reply.as_ref().and_then(Reply::kind) {
                    *self.stats.replies.entry(type_name(kind)).or_default() += 1;
                }
                d
            }
            Err(why) => self.drop_packet(why),
        }
    }

    fn sweep(&mut self, now: u64) {
        self.next_sweep = now + SWEEP_EVERY_SECS;
        self.offers.sweep(now);
        let offers = &self.offers;
        self.offer_by_client.retain(|_, ip| offers.contains_key(ip));
        self.rate.retain(|_, (second, _)| *second + 1 >= now);
    }

    fn within_rate(&mut self, mac: [u8; 6], now: u64) -> bool {
        let limit = self.config.rate_limit_per_mac;
        let entry = self.rate.entry(mac).or_insert((now, 0));
        if entry.0 != now {
            *entry = (now, 0);
        }
        entry.1 += 1;
        entry.1 <= limit
    }

    fn zone_for(&self, interface: &str, msg: &Message) -> Option<usize> {
        let giaddr = msg.giaddr();
        if !giaddr.is_unspecified() {
            // Relayed: the relay's address on the client's network picks the zone.
            return self
                .config
                .zones
                .iter()
                .position(|z| z.subnet.contains(&giaddr));
        }
        self.config
            .zones
            .iter()
            .position(|z| z.interface == interface)
    }

    fn reservation_for(&self, req: &Request<'_>) -> Option<&ReservationConfig> {
        let zone = &self.config.zones[req.zone].name;
        self.config.reservations.iter().find(|r| {
            &r.zone == zone
                && (r.mac == Some(req.mac) || r.client_id.as_deref() == Some(&req.client.0[..]))
        })
    }

    fn reserved_for_other(&self, ip: Ipv4Addr, req: &Request<'_>) -> bool {
        self.config.reservations.iter().any(|r| {
            r.ip == ip
                && r.mac != Some(req.mac)
                && r.client_id.as_deref() != Some(&req.client.0[..])
        })
    }

    /// Whether `ip` may be given to the requesting client at `now`.
    fn available(&self, ip: Ipv4Addr, req: &Request<'_>, now: u64) -> bool {
        let zone = &self.config.zones[req.zone];
        let reserved_here = self.reservation_for(req).map(|r| r.ip) == Some(ip);
        if !(zone.in_pool(ip) || (reserved_here && zone.is_host(ip))) {
            return false;
        }
        if self.reserved_for_other(ip, req) {
            return false;
        }
        if let Some(o) = self.offers.get(&ip)
            && o.client != req.client
            && o.expires > now
        {
            return false;
        }
        match self.leases.get(&ip) {
            None => true,
            Some(l) if l.state == LeaseState::Declined => l.expires <= now,
            Some(l) if l.client_id == req.client => true,
            Some(l) => !l.is_active(now),
        }
    }

    /// Leases (active) and offers (pending) that `mac` holds, other than `except`.
    fn held_by_mac(&self, mac: [u8; 6], except: Option<Ipv4Addr>, now: u64) -> u32 {
        let leases = self.by_mac.get(&mac).map_or(0, |set| {
            set.iter()
                .filter(|ip| Some(**ip) != except)
                .filter(|ip| {
                    self.leases
                        .get(ip)
                        .is_some_and(|l| l.state == LeaseState::Bound && l.expires > now)
                })
                .count()
        });
        let offers = self
            .offers
            .of_mac(mac)
            .filter(|(ip, o)| {
                o.expires > now
                    && Some(*ip) != except
                    && self
                        .leases
                        .get(ip)
                        .is_none_or(|l| !(l.state == LeaseState::Bound && l.expires > now))
            })
            .count();
        u32::try_from(leases + offers).unwrap_or(u32::MAX)
    }

    /// The address to offer: reservation, then the client's own lease or offer, then the
    /// requested address, then a never-used one, then the longest-free one.
    fn choose(&mut self, req: &Request<'_>, now: u64) -> Result<Ipv4Addr, Drop> {
        let zone_name = self.config.zones[req.zone].name.clone();
        let key = (zone_name.clone(), req.client.clone());
        if let Some(r) = self.reservation_for(req) {
            return Ok(r.ip);
        }
        for ip in [
            self.by_client.get(&key).copied(),
            self.offer_by_client.get(&key).copied(),
        ]
        .into_iter()
        .flatten()
        {
            if self.available(ip, req, now) {
                return Ok(ip);
            }
        }
        if self.held_by_mac(req.mac, None, now) >= self.config.max_leases_per_client {
            return Err(Drop::ClientLimit);
        }
        if let Some(DhcpOption::RequestedIpAddress(ip)) =
            req.msg.opts().get(OptionCode::RequestedIpAddress)
            && self.available(*ip, req, now)
        {
            return Ok(*ip);
        }
        let zone = &self.config.zones[req.zone];
        let (start, end) = (u32::from(zone.pool_start), u32::from(zone.pool_end));
        if start > end {
            return Err(Drop::PoolExhausted);
        }
        let size = end - start + 1;
        let cursor = self.cursor.get(&zone_name).copied().unwrap_or(0) % size;
        for step in 0..size {
            let offset = (cursor + step) % size;
            let ip = Ipv4Addr::from(start + offset);
            if !self.leases.contains_key(&ip) && self.available(ip, req, now) {
                self.cursor.insert(zone_name, offset + 1);
                return Ok(ip);
            }
        }
        // Every address has been used once: take the one free the longest.
        let oldest = self
            .leases
            .range(zone.pool_start..=zone.pool_end)
            .filter(|(ip, _)| self.available(**ip, req, now))
            .min_by_key(|(_, l)| l.expires)
            .map(|(ip, _)| *ip);
        oldest.ok_or(Drop::PoolExhausted)
    }

    fn discover(&mut self, req: &Request<'_>, now: u64) -> Result<Decision, Drop> {
        let ip = self.choose(req, now)?;
        let zone_name = self.config.zones[req.zone].name.clone();
        if let Some(old) = self
            .offer_by_client
            .insert((zone_name, req.client.clone()), ip)
            && old != ip
        {
            self.offers.remove(&old);
        }
        self.offers.insert(
            ip,
            Offer {
                client: req.client.clone(),
                mac: req.mac,
                expires: now + OFFER_HOLD_SECS,
            },
        );
        let reply = self.reply(req, MessageType::Offer, ip, true);
        Ok(Decision {
            reply: Some(reply),
            changes: Vec::new(),
        })
    }

    fn request(&mut self, req: &Request<'_>, now: u64) -> Result<Decision, Drop> {
        let zone = &self.config.zones[req.zone];
        let server_id = match req.msg.opts().get(OptionCode::ServerIdentifier) {
            Some(DhcpOption::ServerIdentifier(id)) => Some(*id),
            _ => None,
        };
        let requested = match req.msg.opts().get(OptionCode::RequestedIpAddress) {
            Some(DhcpOption::RequestedIpAddress(ip)) => Some(*ip),
            _ => None,
        };
        let ciaddr = req.msg.ciaddr();
        if let Some(id) = server_id
            && id != zone.server
        {
            // SELECTING, and the client chose another server: free our offer.
            let key = (zone.name.clone(), req.client.clone());
            if let Some(ip) = self.offer_by_client.remove(&key) {
                self.offers.remove(&ip);
            }
            return Err(Drop::OtherServer);
        }
        let ip = match (requested, ciaddr.is_unspecified()) {
            (Some(ip), _) => ip,
            (None, false) => ciaddr,
            (None, true) => return Err(Drop::BadRequest),
        };
        // A client with a reservation gets only that address.
        let reserved = self.reservation_for(req).map(|r| r.ip);
        let ok = reserved.is_none_or(|r| r == ip) && self.available(ip, req, now) && {
            let already = self
                .leases
                .get(&ip)
                .is_some_and(|l| l.client_id == req.client);
            already
                || reserved == Some(ip)
                || self.held_by_mac(req.mac, Some(ip), now) < self.config.max_leases_per_client
        };
        if !ok {
            return Ok(Decision {
                reply: Some(self.nak(req)),
                changes: Vec::new(),
            });
        }
        let zone = &self.config.zones[req.zone];
        let hostname = req.hostname.clone().or_else(|| {
            self.config
                .reservations
                .iter()
                .find(|r| r.ip == ip)
                .and_then(|r| r.hostname.clone())
        });
        let lease = Lease {
            ip,
            zone: zone.name.clone(),
            client_id: req.client.clone(),
            mac: MacAddr(req.mac),
            hostname,
            fqdn: req.fqdn.clone(),
            state: LeaseState::Bound,
            starts: now,
            expires: now + u64::from(zone.lease_secs),
        };
        let key = (zone.name.clone(), req.client.clone());
        if let Some(offered) = self.offer_by_client.remove(&key) {
            self.offers.remove(&offered);
        }
        self.offers.remove(&ip);
        self.put(lease.clone());
        Ok(Decision {
            reply: Some(self.reply(req, MessageType::Ack, ip, true)),
            changes: vec![lease],
        })
    }

    fn decline(&mut self, req: &Request<'_>, now: u64) -> Result<Decision, Drop> {
        let zone = &self.config.zones[req.zone];
        if let Some(DhcpOption::ServerIdentifier(id)) =
            req.msg.opts().get(OptionCode::ServerIdentifier)
            && *id != zone.server
        {
            return Err(Drop::OtherServer);
        }
        let Some(DhcpOption::RequestedIpAddress(ip)) =
            req.msg.opts().get(OptionCode::RequestedIpAddress)
        else {
            return Err(Drop::BadRequest);
        };
        let Some(lease) = self.leases.get(ip).filter(|l| l.client_id == req.client) else {
            return Err(Drop::UnknownLease);
        };
        let mut lease = lease.clone();
        tracing::warn!(ip = %lease.ip, mac = %lease.mac, "address declined: in use by someone else, quarantined");
        lease.state = LeaseState::Declined;
        lease.expires = now + self.config.quarantine_secs;
        self.put(lease.clone());
        Ok(Decision {
            reply: None,
            changes: vec![lease],
        })
    }

    fn release(&mut self, req: &Request<'_>, now: u64) -> Result<Decision, Drop> {
        let ip = req.msg.ciaddr();
        let Some(lease) = self
            .leases
            .get(&ip)
            .filter(|l| l.client_id == req.client && l.state == LeaseState::Bound)
        else {
            return Err(Drop::UnknownLease);
        };
        let mut lease = lease.clone();
        lease.state = LeaseState::Released;
        lease.expires = now;
        self.put(lease.clone());
        Ok(Decision {
            reply: None,
            changes: vec![lease],
        })
    }

    fn inform(&self, req: &Request<'_>) -> Decision {
        Decision {
            reply: Some(self.reply(req, MessageType::Ack, Ipv4Addr::UNSPECIFIED, false)),
            changes: Vec::new(),
        }
    }

    fn nak(&self, req: &Request<'_>) -> Reply {
        let zone = &self.config.zones[req.zone];
        let mut msg = reply_header(req.msg, Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED);
        let opts = msg.opts_mut();
        opts.insert(DhcpOption::MessageType(MessageType::Nak));
        opts.insert(DhcpOption::ServerIdentifier(zone.server));
        opts.insert(DhcpOption::Message("address not available".to_owned()));
        let giaddr = req.msg.giaddr();
        let to = if giaddr.is_unspecified() {
            Destination::Broadcast
        } else {
            msg.set_flags(msg.flags().set_broadcast());
            Destination::Relay(giaddr)
        };
        Reply { message: msg, to }
    }

    /// RFC 4702 §4's answer to option 81. When the lease gets a name, the server publishes
    /// its A and PTR records itself (through roost-dns): S set, N clear, O set when the client
    /// had asked to do the A record itself, and the name is the one published,
    /// `<label>.<domain>`. Otherwise (no valid name, or a reserved one) no records are
    /// published: S clear, N set, O set when the client had asked for S, its name echoed.
    fn fqdn_answer(&self, req: &Request<'_>, fqdn: &v4::fqdn::ClientFQDN) -> v4::fqdn::ClientFQDN {
        let asked = fqdn.flags();
        let name = self.publish_name(
            self.reservation_for(req),
            req.fqdn.as_deref(),
            req.hostname.as_deref(),
        );
        let full = name.and_then(|label| {
            let text = if self.config.domain.is_empty() {
                format!("{label}.")
            } else {
                format!("{label}.{}.", self.config.domain)
            };
            text.parse::<dhcproto::Name>().ok()
        });
        let mut answer = fqdn.clone();
        match full {
            Some(full) => {
                answer.set_domain(full);
                answer.set_flags(asked.set_s(true).set_n(false).set_o(!asked.s()));
            }
            None => {
                answer.set_flags(asked.set_s(false).set_n(true).set_o(asked.s()));
            }
        }
        answer.set_r1(255).set_r2(255);
        answer
    }

    /// An OFFER or ACK (`with_lease`) or an INFORM's ACK (without).
    fn reply(
        &self,
        req: &Request<'_>,
        kind: MessageType,
        yiaddr: Ipv4Addr,
        with_lease: bool,
    ) -> Reply {
        let zone = &self.config.zones[req.zone];
        let ciaddr = if kind == MessageType::Offer {
            Ipv4Addr::UNSPECIFIED
        } else {
            req.msg.ciaddr()
        };
        let mut msg = reply_header(req.msg, ciaddr, yiaddr);
        let prl: Option<&[OptionCode]> = match req.msg.opts().get(OptionCode::ParameterRequestList)
        {
            Some(DhcpOption::ParameterRequestList(list)) => Some(list),
            _ => None,
        };
        let wants = |code: OptionCode| prl.is_none_or(|l| l.contains(&code));
        let opts = msg.opts_mut();
        opts.insert(DhcpOption::MessageType(kind));
        opts.insert(DhcpOption::ServerIdentifier(zone.server));
        if with_lease {
            let secs = zone.lease_secs;
            opts.insert(DhcpOption::AddressLeaseTime(secs));
            opts.insert(DhcpOption::Renewal(secs / 2));
            opts.insert(DhcpOption::Rebinding(
                u32::try_from(u64::from(secs) * 7 / 8).unwrap_or(secs),
            ));
        }
        // Mask and router are what make the address usable; they go to every client.
        opts.insert(DhcpOption::SubnetMask(zone.subnet.netmask()));
        opts.insert(DhcpOption::Router(vec![zone.router]));
        if wants(OptionCode::DomainNameServer) {
            opts.insert(DhcpOption::DomainNameServer(vec![zone.dns_server]));
        }
        if wants(OptionCode::DomainName) && !self.config.domain.is_empty() {
            opts.insert(DhcpOption::DomainName(self.config.domain.clone()));
        }
        if wants(OptionCode::BroadcastAddr) {
            opts.insert(DhcpOption::BroadcastAddr(zone.subnet.broadcast()));
        }
        if let Some(DhcpOption::ClientFQDN(fqdn)) = req.msg.opts().get(OptionCode::ClientFQDN) {
            opts.insert(DhcpOption::ClientFQDN(self.fqdn_answer(req, fqdn)));
        }
        let giaddr = req.msg.giaddr();
        let ciaddr = req.msg.ciaddr();
        let to = if !giaddr.is_unspecified() {
            Destination::Relay(giaddr)
        } else if !ciaddr.is_unspecified() {
            Destination::Unicast(ciaddr)
        } else {
            // The client has no address yet: unicast would need an ARP entry we cannot
            // write portably, so broadcast (RFC 2131 §4.1 allows it).
            Destination::Broadcast
        };
        Reply { message: msg, to }
    }
}

/// Whether the options area is a well-formed TLV list whose fixed-size options have their
/// size (what dhcproto only checks with debug assertions). Overlong lists, truncated options
/// and wrong sizes are malformed.
fn options_well_formed(mut opts: &[u8]) -> bool {
    loop {
        match opts {
            [] | [255, ..] => return true,
            [0, rest @ ..] => opts = rest,
            [code, len, rest @ ..] => {
                let len = usize::from(*len);
                if rest.len() < len {
                    return false;
                }
                let size_ok = match code {
                    80 => len == 0,
                    94 => len == 3,
                    81 => len >= 3,
                    152..=155 => len == 4,
                    _ => true,
                };
                if !size_ok {
                    return false;
                }
                opts = &rest[len..];
            }
            [_] => return false,
        }
    }
}

/// The one DNS label a client's claimed name (option 12 or 81) is published under: the part
/// before the first dot, lower-cased, spaces and underscores made hyphens; `None` unless it is
/// then 1 to 63 letters, digits and hyphens, not starting or ending with a hyphen.
pub fn host_label(claimed: &str) -> Option<String> {
    let first = claimed.trim().split('.').next()?;
    let label: String = first
        .chars()
        .map(|c| match c {
            ' ' | '_' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    let valid = (1..=63).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-');
    valid.then_some(label)
}

/// Strips a name to printable ASCII without spaces, at most 253 bytes.
fn clean_name(name: &str) -> String {
    name.trim_end_matches('.')
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(253)
        .collect()
}

fn reply_header(req: &Message, ciaddr: Ipv4Addr, yiaddr: Ipv4Addr) -> Message {
    let mut msg = Message::new_with_id(
        req.xid(),
        ciaddr,
        yiaddr,
        Ipv4Addr::UNSPECIFIED,
        req.giaddr(),
        req.chaddr(),
    );
    msg.set_opcode(Opcode::BootReply)
        .set_htype(req.htype())
        .set_flags(req.flags());
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use dhcproto::{Encodable, Encoder};

    const T0: u64 = 1_700_000_000;
    const LAN_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
    const NAS_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn zone(name: &str, third: u8, pool: (u8, u8)) -> ZoneConfig {
        ZoneConfig {
            name: name.to_owned(),
            interface: name.to_owned(),
            subnet: format!("192.168.{third}.0/24").parse().unwrap(),
            router: Ipv4Addr::new(192, 168, third, 1),
            server: Ipv4Addr::new(192, 168, third, 2),
            dns_server: Ipv4Addr::new(192, 168, third, 1),
            pool_start: Ipv4Addr::new(192, 168, third, pool.0),
            pool_end: Ipv4Addr::new(192, 168, third, pool.1),
            lease_secs: 3600,
        }
    }

    fn config() -> Config {
        Config {
            zones: vec![zone("lan", 1, (100, 103)), zone("iot", 20, (100, 200))],
            reservations: vec![
                ReservationConfig {
                    zone: "lan".into(),
                    mac: Some(NAS_MAC),
                    client_id: None,
                    ip: ip("192.168.1.10"),
                    hostname: Some("nas".into()),
                },
                ReservationConfig {
                    zone: "lan".into(),
                    mac: None,
                    client_id: Some(b"printer".to_vec()),
                    ip: ip("192.168.1.11"),
                    hostname: None,
                },
            ],
            max_leases_per_client: 2,
            rate_limit_per_mac: 10,
            quarantine_secs: 600,
            domain: "home.arpa".into(),
        }
    }

    fn core() -> Core {
        Core::new(config())
    }

    fn mac(n: u8) -> [u8; 6] {
        [0x02, 0, 0, 0, 0, n]
    }

    /// A client request, built like a real one and encoded to bytes.
    struct Pkt {
        msg: Message,
    }

    impl Pkt {
        fn new(kind: MessageType, mac: [u8; 6]) -> Self {
            let mut msg = Message::new_with_id(
                0x1234,
                Ipv4Addr::UNSPECIFIED,
                Ipv4Addr::UNSPECIFIED,
                Ipv4Addr::UNSPECIFIED,
                Ipv4Addr::UNSPECIFIED,
                &mac,
            );
            msg.opts_mut().insert(DhcpOption::MessageType(kind));
            Self { msg }
        }
        fn opt(mut self, o: DhcpOption) -> Self {
            self.msg.opts_mut().insert(o);
            self
        }
        fn requested(self, a: Ipv4Addr) -> Self {
            self.opt(DhcpOption::RequestedIpAddress(a))
        }
        fn server(self, a: Ipv4Addr) -> Self {
            self.opt(DhcpOption::ServerIdentifier(a))
        }
        fn ciaddr(mut self, a: Ipv4Addr) -> Self {
            self.msg.set_ciaddr(a);
            self
        }
        fn giaddr(mut self, a: Ipv4Addr) -> Self {
            self.msg.set_giaddr(a);
            self
        }
        fn bytes(&self) -> Vec<u8> {
            let mut buf = Vec::new();
            self.msg.encode(&mut Encoder::new(&mut buf)).unwrap();
            buf
        }
    }

    fn send(core: &mut Core, iface: &str, p: Pkt, now: u64) -> Decision {
        core.handle(iface, &p.bytes(), now)
    }

    fn kind(d: &Decision) -> Option<MessageType> {
        d.reply.as_ref().and_then(Reply::kind)
    }

    fn yiaddr(d: &Decision) -> Ipv4Addr {
        d.reply.as_ref().unwrap().message.yiaddr()
    }

    /// DISCOVER, then REQUEST of the offer: returns the bound address.
    fn bind(core: &mut Core, iface: &str, m: [u8; 6], now: u64) -> Ipv4Addr {
        let offer = send(core, iface, Pkt::new(MessageType::Discover, m), now);
        assert_eq!(kind(&offer), Some(MessageType::Offer), "{offer:?}");
        let a = yiaddr(&offer);
        let server = core
            .config
            .zones
            .iter()
            .find(|z| z.interface == iface)
            .unwrap()
            .server;
        let ack = send(
            core,
            iface,
            Pkt::new(MessageType::Request, m)
                .requested(a)
                .server(server),
            now,
        );
        assert_eq!(kind(&ack), Some(MessageType::Ack), "{ack:?}");
        assert_eq!(ack.changes.len(), 1);
        a
    }

    #[test]
    fn discover_gets_an_offer_from_the_zone_pool_with_its_options() {
        let mut c = core();
        let p =
            Pkt::new(MessageType::Discover, LAN_MAC).opt(DhcpOption::ParameterRequestList(vec![
                OptionCode::SubnetMask,
                OptionCode::Router,
                OptionCode::DomainNameServer,
                OptionCode::DomainName,
            ]));
        let d = send(&mut c, "lan", p, T0);
        assert!(d.changes.is_empty(), "an offer is not a lease");
        let reply = d.reply.unwrap();
        assert_eq!(reply.to, Destination::Broadcast);
        let m = &reply.message;
        assert_eq!(m.opcode(), Opcode::BootReply);
        assert_eq!(m.xid(), 0x1234);
        assert_eq!(m.yiaddr(), ip("192.168.1.100"));
        let o = m.opts();
        assert_eq!(o.msg_type(), Some(MessageType::Offer));
        assert_eq!(
            o.get(OptionCode::ServerIdentifier),
            Some(&DhcpOption::ServerIdentifier(ip("192.168.1.2")))
        );
        assert_eq!(
            o.get(OptionCode::SubnetMask),
            Some(&DhcpOption::SubnetMask(ip("255.255.255.0")))
        );
        assert_eq!(
            o.get(OptionCode::Router),
            Some(&DhcpOption::Router(vec![ip("192.168.1.1")]))
        );
        assert_eq!(
            o.get(OptionCode::DomainNameServer),
            Some(&DhcpOption::DomainNameServer(vec![ip("192.168.1.1")]))
        );
        assert_eq!(
            o.get(OptionCode::DomainName),
            Some(&DhcpOption::DomainName("home.arpa".into()))
        );
        assert_eq!(
            o.get(OptionCode::AddressLeaseTime),
            Some(&DhcpOption::AddressLeaseTime(3600))
        );
        assert_eq!(o.get(OptionCode::Renewal), Some(&DhcpOption::Renewal(1800)));
        assert_eq!(
            o.get(OptionCode::Rebinding),
            Some(&DhcpOption::Rebinding(3150))
        );
        // Not asked for: left out.
        assert!(o.get(OptionCode::BroadcastAddr).is_none());
    }

    #[test]
    fn request_for_the_offer_is_acked_and_the_lease_recorded() {
        let mut c = core();
        let p = Pkt::new(MessageType::Discover, LAN_MAC).opt(DhcpOption::Hostname("laptop".into()));
        let a = yiaddr(&send(&mut c, "lan", p, T0));
        let d = send(
            &mut c,
            "lan",
            Pkt::new(MessageType::Request, LAN_MAC)
                .requested(a)
                .server(ip("192.168.1.2"))
                .opt(DhcpOption::Hostname("laptop".into())),
            T0,
        );
        assert_eq!(kind(&d), Some(MessageType::Ack));
        assert_eq!(yiaddr(&d), a);
        let lease = &d.changes[0];
        assert_eq!(lease.ip, a);
        assert_eq!(lease.zone, "lan");
        assert_eq!(lease.mac, MacAddr(LAN_MAC));
        assert_eq!(lease.hostname.as_deref(), Some("laptop"));
        assert_eq!(lease.state, LeaseState::Bound);
        assert_eq!(lease.expires, T0 + 3600);
        assert_eq!(c.leases().count(), 1);
    }

    #[test]
    fn two_clients_get_different_addresses() {
        let mut c = core();
        let a = bind(&mut c, "lan", mac(1), T0);
        let b = bind(&mut c, "lan", mac(2), T0);
        assert_ne!(a, b);
    }

    #[test]
    fn iot_interface_gets_an_iot_address() {
        let mut c = core();
        let a = bind(&mut c, "iot", mac(1), T0);
        assert!(ip("192.168.20.0").octets()[..3] == a.octets()[..3], "{a}");
    }

    #[test]
    fn offers_reserved_address_to_known_mac_and_never_to_others() {
        let mut c = core();
        let a = bind(&mut c, "lan", NAS_MAC, T0);
        assert_eq!(a, ip("192.168.1.10"));
        assert_eq!(c.leases().next().unwrap().hostname.as_deref(), Some("nas"));
        // Another client asking for the reserved address is refused.
        let d = send(
            &mut c,
            "lan",
            Pkt::new(MessageType::Request, mac(7)).requested(ip("192.168.1.10")),
            T0 + 5,
        );
        assert_eq!(kind(&d), Some(MessageType::Nak));
        let o = send(
            &mut c,
            "lan",
            Pkt::new(MessageType::Discover, mac(7)).requested(ip("192.168.1.10")),
            T0 + 5,
        );
        assert_ne!(yiaddr(&o), ip("192.168.1.10"));
    }

    #[test]
    fn reservation_by_client_id_is_honoured_over_the_mac() {
        let mut c = core();
        let p = Pkt::new(MessageType::Discover, mac(9))
            .opt(DhcpOption::ClientIdentifier(b"printer".to_vec()));
        assert_eq!(yiaddr(&send(&mut c, "lan", p, T0)), ip("192.168.1.11"));
    }

    #[test]
    fn client_id_identifies_the_client_across_mac_changes() {
        let mut c = core();
        let id = DhcpOption::ClientIdentifier(vec![0xff, 1, 2, 3]);
        let a = yiaddr(&send(
            &mut c,
            "lan",
            Pkt::new(MessageType::Discover, mac(1)).opt(id.clone()),
            T0,
        ));
        let d = send(
            &mut c,
            "lan",
            Pkt::new(MessageType::Request, mac(1))
                .opt(id.clone())
                .requested(a)
                .server(ip("192.168.1.2")),
            T0,
        );
        assert_eq!(kind(&d), Some(MessageType::Ack));
        // Same client id on another NIC: same address.
        let o = send(
            &mut c,
            "lan",
            Pkt::new(MessageType::Discover, mac(2)).opt(id),
            T0 + 1,
        );
        assert_eq!(yiaddr(&o), a);
    }

    #[test]
    fn reserved_client_requesting_another_address_is_naked() {
        let mut c = core();
        let d = send(
            &mut c,
            "lan",
            Pkt::new(MessageType::Request, NAS_MAC).requested(ip("192.168.1.100")),
            T0,
        );
        assert_eq!(kind(&d), Some(MessageType::Nak));
    }

    #[test]
    fn init_reboot_with_own_address_is_acked_and_foreign_address_is_naked() {
        let mut c = core();
        let a = bind(&mut c, "lan", mac(1), T0);
        // INIT-REBOOT: requested address, no server id.
        let d = send(
            &mut c,
            "lan",
            Pkt::new(MessageType::Request, mac(1)).requested(a),
            T0 + 100,
        );
        assert_eq!(kind(&d), Some(MessageType::Ack));
        assert_eq!(d.changes[0].expires, T0 + 100 + 3600);
        // An address of another subnet (the client moved networks).
        let d = send(
            &mut c,
            "lan",
            Pkt::new(MessageType::Request, mac(1)).requested(ip("10.0.0.5")),
            T0 + 100,
        );
        assert_eq!(kind(&d), Some(MessageType::Nak));
        assert_eq!(d.reply.unwrap().to, Destination::Broadcast);
        // Another client's bound address.
        let d = send(
            &mut c,
            "lan",
            Pkt::new(MessageType::Request, mac(2)).requested(a),
            T0 + 100,
        );
        assert_eq!(kind(&d), Some(MessageType::Nak));
        assert!(d.changes.is_empty());
    }

    #[test]
    fn request_naming_our_server_but_a_different_address_is_naked() {
        let mut c = core();
        let a = yiaddr(&send(
            &mut c,
            "lan",
            Pkt::new(MessageType::Discover, mac(1)),
            T0,
        ));
        bind(&mut c, "lan", mac(2), T0);
        let taken = c.leases().find(|l| l.mac == MacAddr(mac(2))).unwrap().ip;
        assert_ne!(a, taken);
        let d = send(
            &mut c,
            "lan",
            Pkt::new(MessageType::Request, mac(1))
                .requested(taken)
                .server(ip("192.168.1.2")),
            T0,
        );
        assert_eq!(kind(&d), Some(MessageType::Nak));
    }

    #[test]
    fn request_for_another_servers_offer_frees_ours_silently() {
        let mut c = core();
        let a = yiaddr(&send(
            &mut c,
            "lan",
            Pkt::new(MessageType::Discover, mac(1)),
            T0,
        ));
        let d = send(
            &mut c,
            "lan",
            Pkt::new(MessageType::Request, mac(1))
                .requested(ip("192.168.1.50"))
                .server(ip("192.168.1.254")),
            T0,
        );
        assert!(d.reply.is_none() && d.changes.is_empty());
        assert_eq!(c.stats().dropped.get(&Drop::OtherServer), Some(&1));
        // The offered address is free for the next client at once.
        let o = send(
            &mut c,
            "lan",
            Pkt::new(MessageType::Discover, mac(2)).requested(a),
            T0,
        );
        assert_eq!(yiaddr(&o), a);
    }

    #[test]
    fn renew_extends_the_lease_and_is_unicast_to_the_client() {
        let mut c = core();
        let a = bind(&mut c, "lan", mac(1), T0);
        let d = send(
            &mut c,
            "lan",
            Pkt::new(MessageType::Request, mac(1)).ciaddr(a),
            T0 + 1800,
        );
        assert_eq!(kind(&d), Some(MessageType::Ack));
        let r = d.reply.as_ref().unwrap();
        assert_eq!(r.to, Destination::Unicast(a));
        assert_eq!(r.message.ciaddr(), a);
        assert_eq!(r.message.yiaddr(), a);
        assert_eq!(d.changes[0].expires, T0 + 1800 + 3600);
    }

    #[test]
    fn renew_of_an_address_held_by_another_client_is_naked() {
        let mut c = core();
        let a = bind(&mut c, "lan", mac(1), T0);
        let d = send(
            &mut c,
            "lan",
            Pkt::new(MessageType::Request, mac(2)).ciaddr(a),
            T0 + 10,
        );
        assert_eq!(kind(&d), Some(MessageType::Nak));
    }

    #[test]
    fn request_without_any_address_is_dropped() {
        let mut c = core();
        let d = send(&mut c, "lan", Pkt::new(MessageType::Request, mac(1)), T0);
        assert!(d.reply.is_none());
        assert_eq!(c.stats().dropped.get(&Drop::BadRequest), Some(&1));
    }

    #[test]
    fn release_frees_the_address_and_the_client_gets_it_back_later() {
        let mut c = core();
        let a = bind(&mut c, "lan", mac(1), T0);
        let d = send(
            &mut c,
            "lan",
            Pkt::new(MessageType::Release, mac(1)).ciaddr(a),
            T0 + 10,
        );
        assert!(d.reply.is_none(), "RELEASE gets no reply");
        assert_eq!(d.changes[0].state, LeaseState::Released);
        assert!(!d.changes[0].is_active(T0 + 10));
        // Same client, later: same address.
        assert_eq!(bind(&mut c, "lan", mac(1), T0 + 20), a);
    }

    #[test]
    fn release_of_someone_elses_lease_is_ignored() {
        let mut c = core();
        let a = bind(&mut c, "lan", mac(1), T0);
        let d = send(
            &mut c,
            "lan",
            Pkt::new(MessageType::Release, mac(2)).ciaddr(a),
            T0 + 10,
        );
        assert!(d.changes.is_empty());
        assert!(c.leases().next().unwrap().is_active(T0 + 10));
    }

    #[test]
    fn expired_lease_returns_to_its_client_while_free_then_goes_to_others_when_the_pool_is_full() {
        let mut c = core();
        // The lan pool has four addresses.
        let mine = bind(&mut c, "lan", mac(1), T0);
        let later = T0 + 3600 + 1;
        assert_eq!(
            bind(&mut c, "lan", mac(1), later),
            mine,
            "same address after expiry"
        );
        let expired = T0 + 2 * 3600 + 10;
        for n in 2..=4 {
            bind(&mut c, "lan", mac(n), expired);
        }
        // Pool now: mac(1) expired at `expired - ...`, three fresh leases. A fifth client
        // takes the expired one.
        let after = T0 + 3 * 3600;
        let _ = after;
        let fifth = bind(&mut c, "lan", mac(5), expired);
        assert_eq!(fifth, mine, "the only free address is the expired one");
    }

    #[test]
    fn exhausted_pool_gets_no_offer() {
        let mut c = core();
        for n in 1..=4 {
            bind(&mut c, "lan", mac(n), T0);
        }
        let d = send(&mut c, "lan", Pkt::new(MessageType::Discover, mac(5)), T0);
        assert!(d.reply.is_none());
        assert_eq!(c.stats().dropped.get(&Drop::PoolExhausted), Some(&1));
    }

    #[test]
    fn decline_quarantines_the_address_until_the_quarantine_ends() {
        let mut c = core();
        let a = bind(&mut c, "lan", mac(1), T0);
        let d = send(
            &mut c,
            "lan",
            Pkt::new(MessageType::Decline, mac(1))
                .requested(a)
                .server(ip("192.168.1.2")),
            T0 + 1,
        );
        assert!(d.reply.is_none());
        assert_eq!(d.changes[0].state, LeaseState::Declined);
        assert_eq!(d.changes[0].expires, T0 + 1 + 600);
        // Nobody, not even the decliner, gets it during the quarantine.
        for n in [1, 2] {
            let o = send(
                &mut c,
                "lan",
                Pkt::new(MessageType::Discover, mac(n)).requested(a),
                T0 + 2,
            );
            assert_ne!(yiaddr(&o), a);
        }
        let d = send(
            &mut c,
            "lan",
            Pkt::new(MessageType::Request, mac(3)).requested(a),
            T0 + 3,
        );
        assert_eq!(kind(&d), Some(MessageType::Nak));
        // After it, the address is back in the pool.
        let d = send(
            &mut c,
            "lan",
            Pkt::new(MessageType::Request, mac(3)).requested(a),
            T0 + 700,
        );
        assert_eq!(kind(&d), Some(MessageType::Ack));
    }

    #[test]
    fn inform_gets_options_without_a_lease_unicast() {
        let mut c = core();
        let p = Pkt::new(MessageType::Inform, mac(1)).ciaddr(ip("192.168.1.50"));
        let d = send(&mut c, "lan", p, T0);
        assert!(d.changes.is_empty());
        let r = d.reply.unwrap();
        assert_eq!(r.kind(), Some(MessageType::Ack));
        assert_eq!(r.to, Destination::Unicast(ip("192.168.1.50")));
        assert_eq!(r.message.yiaddr(), Ipv4Addr::UNSPECIFIED);
        assert!(r.message.opts().get(OptionCode::AddressLeaseTime).is_none());
        assert!(r.message.opts().get(OptionCode::Router).is_some());
    }

    #[test]
    fn relayed_discover_uses_the_relay_zone_and_goes_back_to_the_relay() {
        let mut c = core();
        // Arrives on the lan interface, but relayed from the iot network.
        let p = Pkt::new(MessageType::Discover, mac(1)).giaddr(ip("192.168.20.1"));
        let d = send(&mut c, "lan", p, T0);
        let r = d.reply.unwrap();
        assert_eq!(r.to, Destination::Relay(ip("192.168.20.1")));
        assert_eq!(r.message.giaddr(), ip("192.168.20.1"));
        assert_eq!(r.message.yiaddr().octets()[2], 20);
        // From a network we do not serve: dropped.
        let p = Pkt::new(MessageType::Discover, mac(2)).giaddr(ip("10.9.9.1"));
        assert!(send(&mut c, "lan", p, T0).reply.is_none());
        assert_eq!(c.stats().dropped.get(&Drop::NoZone), Some(&1));
    }

    #[test]
    fn relayed_nak_goes_to_the_relay_with_the_broadcast_bit() {
        let mut c = core();
        let p = Pkt::new(MessageType::Request, mac(1))
            .requested(ip("10.0.0.1"))
            .giaddr(ip("192.168.20.1"));
        let r = send(&mut c, "lan", p, T0).reply.unwrap();
        assert_eq!(r.kind(), Some(MessageType::Nak));
        assert_eq!(r.to, Destination::Relay(ip("192.168.20.1")));
        assert!(r.message.flags().broadcast());
    }

    #[test]
    fn client_fqdn_is_recorded_and_answered() {
        let mut c = core();
        let name: dhcproto::Name = "tv.home.arpa.".parse().unwrap();
        let fqdn = v4::fqdn::ClientFQDN::new(v4::fqdn::FqdnFlags::new(0x05), name);
        let d = send(
            &mut c,
            "lan",
            Pkt::new(MessageType::Discover, mac(1)).opt(DhcpOption::ClientFQDN(fqdn.clone())),
            T0,
        );
        let a = yiaddr(&d);
        assert!(
            d.reply
                .unwrap()
                .message
                .opts()
                .get(OptionCode::ClientFQDN)
                .is_some()
        );
        let d = send(
            &mut c,
            "lan",
            Pkt::new(MessageType::Request, mac(1))
                .requested(a)
                .opt(DhcpOption::ClientFQDN(fqdn)),
            T0,
        );
        assert_eq!(d.changes[0].fqdn.as_deref(), Some("tv.home.arpa"));
        // The server publishes the name itself (RFC 4702 §4): S set, N clear, O clear (the
        // client asked for S), the published name in the answer, RCODEs 255.
        let Some(DhcpOption::ClientFQDN(answer)) = d
            .reply
            .unwrap()
            .message
            .opts()
            .get(OptionCode::ClientFQDN)
            .cloned()
        else {
            panic!("no option 81 in the ack");
        };
        let flags = answer.flags();
        assert!(flags.s() && !flags.n() && !flags.o(), "{flags:?}");
        assert_eq!(answer.domain().to_string(), "tv.home.arpa.");
        assert_eq!((answer.r1(), answer.r2()), (255, 255));
        assert_eq!(c.local_names(T0).0, vec![("tv".to_owned(), a)]);
    }

    fn fqdn_answer_for(c: &mut Core, m: [u8; 6], name: &str, flags: u8) -> v4::fqdn::ClientFQDN {
        let labels: Vec<&[u8]> = name
            .split('.')
            .filter(|l| !l.is_empty())
            .map(str::as_bytes)
            .collect();
        let name = dhcproto::Name::from_labels(labels).unwrap();
        let fqdn = v4::fqdn::ClientFQDN::new(v4::fqdn::FqdnFlags::new(flags), name);
        let d = send(
            c,
            "lan",
            Pkt::new(MessageType::Discover, m).opt(DhcpOption::ClientFQDN(fqdn)),
            T0,
        );
        match d.reply.unwrap().message.opts().get(OptionCode::ClientFQDN) {
            Some(DhcpOption::ClientFQDN(a)) => a.clone(),
            other => panic!("no option 81 answer: {other:?}"),
        }
    }

    #[test]
    fn client_fqdn_answer_says_who_publishes_the_name() {
        let mut c = core();
        // The client wants to do its A record itself (S clear): the server overrides (O set).
        let a = fqdn_answer_for(&mut c, mac(1), "laptop.example.com.", 0x04);
        assert!(a.flags().s() && a.flags().o() && !a.flags().n());
        assert_eq!(
            a.domain().to_string(),
            "laptop.home.arpa.",
            "one label, our domain"
        );
        // A name that is no DNS label is not published: S clear, N set, O set (asked S).
        let a = fqdn_answer_for(&mut c, mac(2), "-bad.", 0x05);
        assert!(
            !a.flags().s() && a.flags().o() && a.flags().n(),
            "{:?}",
            a.flags()
        );
        // A reserved name claimed by another device is not published either.
        let a = fqdn_answer_for(&mut c, mac(3), "nas.", 0x05);
        assert!(!a.flags().s() && a.flags().n());
        // The reserved device gets its reserved name whatever it claims.
        let a = fqdn_answer_for(&mut c, NAS_MAC, "whatever.", 0x05);
        assert!(a.flags().s() && !a.flags().n());
        assert_eq!(a.domain().to_string(), "nas.home.arpa.");
    }

    /// DISCOVER and REQUEST with option 12 `name`: the bound address.
    fn bind_named(c: &mut Core, m: [u8; 6], name: &str, now: u64) -> Ipv4Addr {
        let host = DhcpOption::Hostname(name.to_owned());
        let d = send(
            c,
            "lan",
            Pkt::new(MessageType::Discover, m).opt(host.clone()),
            now,
        );
        let a = yiaddr(&d);
        let d = send(
            c,
            "lan",
            Pkt::new(MessageType::Request, m)
                .requested(a)
                .server(ip("192.168.1.2"))
                .opt(host),
            now,
        );
        assert_eq!(kind(&d), Some(MessageType::Ack), "{d:?}");
        a
    }

    #[test]
    fn host_label_makes_one_dns_label_or_none() {
        assert_eq!(host_label("Laptop").as_deref(), Some("laptop"));
        assert_eq!(host_label("my_pc").as_deref(), Some("my-pc"));
        assert_eq!(host_label("tv.home.arpa").as_deref(), Some("tv"));
        assert_eq!(host_label("phone-2").as_deref(), Some("phone-2"));
        for bad in ["", ".", "-x", "x-", "bob's", "caf\u{e9}", &"a".repeat(64)] {
            assert_eq!(host_label(bad), None, "{bad:?}");
        }
        assert!(host_label(&"a".repeat(63)).is_some());
    }

    #[test]
    fn bound_lease_with_a_hostname_is_a_local_name_until_released() {
        let mut c = core();
        assert!(
            c.take_names_changed(),
            "a new core pushes its (empty) set once"
        );
        assert!(!c.take_names_changed());
        let a = bind_named(&mut c, mac(1), "Laptop", T0);
        assert!(c.take_names_changed());
        let (names, next) = c.local_names(T0);
        assert_eq!(names, vec![("laptop".to_owned(), a)]);
        assert_eq!(
            next,
            Some(T0 + 3600),
            "the set changes when the lease expires"
        );
        // An unnamed client changes nothing.
        bind(&mut c, "lan", mac(2), T0);
        assert!(!c.take_names_changed());
        send(
            &mut c,
            "lan",
            Pkt::new(MessageType::Release, mac(1)).ciaddr(a),
            T0 + 5,
        );
        assert!(c.take_names_changed());
        assert_eq!(c.local_names(T0 + 5), (vec![], None));
    }

    #[test]
    fn expired_and_declined_leases_lose_their_names() {
        let mut c = core();
        let a = bind_named(&mut c, mac(1), "laptop", T0);
        let b = bind_named(&mut c, mac(2), "phone", T0 + 10);
        assert_eq!(c.local_names(T0 + 10).0.len(), 2);
        c.take_names_changed();
        send(
            &mut c,
            "lan",
            Pkt::new(MessageType::Decline, mac(2))
                .requested(b)
                .server(ip("192.168.1.2")),
            T0 + 20,
        );
        assert!(c.take_names_changed());
        assert_eq!(
            c.local_names(T0 + 20),
            (vec![("laptop".to_owned(), a)], Some(T0 + 3600)),
            "phone declined its address"
        );
        assert_eq!(
            c.local_names(T0 + 3600),
            (vec![], None),
            "laptop's lease expired"
        );
    }

    #[test]
    fn reserved_hostname_wins_and_no_other_client_takes_it() {
        let mut c = core();
        // The NAS claims another name; its reservation's name wins.
        let d = send(
            &mut c,
            "lan",
            Pkt::new(MessageType::Request, NAS_MAC)
                .requested(ip("192.168.1.10"))
                .opt(DhcpOption::Hostname("diskstation".into())),
            T0,
        );
        assert_eq!(kind(&d), Some(MessageType::Ack));
        // Another client claims `nas`: it gets an address but not the name.
        let other = bind_named(&mut c, mac(1), "NAS", T0);
        let (names, _) = c.local_names(T0);
        assert_eq!(names, vec![("nas".to_owned(), ip("192.168.1.10"))]);
        assert!(names.iter().all(|(_, a)| *a != other));
    }

    #[test]
    fn name_claimed_twice_goes_to_the_newest_lease() {
        let mut c = core();
        bind_named(&mut c, mac(1), "laptop", T0);
        let newer = bind_named(&mut c, mac(2), "laptop", T0 + 30);
        assert_eq!(c.local_names(T0 + 30).0, vec![("laptop".to_owned(), newer)]);
    }

    #[test]
    fn no_client_holds_more_than_the_limit() {
        let mut c = core();
        // Two leases under two client ids from one MAC; the third is refused.
        for id in [1u8, 2] {
            let cid = DhcpOption::ClientIdentifier(vec![id]);
            let o = send(
                &mut c,
                "lan",
                Pkt::new(MessageType::Discover, mac(1)).opt(cid.clone()),
                T0,
            );
            let a = yiaddr(&o);
            let ack = send(
                &mut c,
                "lan",
                Pkt::new(MessageType::Request, mac(1)).opt(cid).requested(a),
                T0,
            );
            assert_eq!(kind(&ack), Some(MessageType::Ack));
        }
        let cid = DhcpOption::ClientIdentifier(vec![3]);
        let d = send(
            &mut c,
            "lan",
            Pkt::new(MessageType::Discover, mac(1)).opt(cid.clone()),
            T0,
        );
        assert!(d.reply.is_none());
        assert_eq!(c.stats().dropped.get(&Drop::ClientLimit), Some(&1));
        let d = send(
            &mut c,
            "lan",
            Pkt::new(MessageType::Request, mac(1))
                .opt(cid)
                .requested(ip("192.168.1.103")),
            T0,
        );
        assert_eq!(kind(&d), Some(MessageType::Nak));
    }

    #[test]
    fn offers_stay_indexed_by_mac_through_reoffer_removal_and_sweep() {
        let offer = |m: u8, expires| Offer {
            client: ClientId(vec![1, m]),
            mac: mac(m),
            expires,
        };
        let mut o = Offers::default();
        o.insert(ip("192.168.1.100"), offer(1, 10));
        o.insert(ip("192.168.1.101"), offer(1, 20));
        // The same address offered again, to another MAC: it leaves the first MAC's set.
        o.insert(ip("192.168.1.100"), offer(2, 30));
        let of = |o: &Offers, m| {
            let mut v: Vec<_> = o.of_mac(mac(m)).map(|(ip, _)| ip).collect();
            v.sort();
            v
        };
        assert_eq!(of(&o, 1), vec![ip("192.168.1.101")]);
        assert_eq!(of(&o, 2), vec![ip("192.168.1.100")]);
        o.sweep(20);
        assert!(of(&o, 1).is_empty());
        assert!(!o.by_mac.contains_key(&mac(1)));
        assert!(o.remove(&ip("192.168.1.100")).is_some());
        assert!(o.by_mac.is_empty() && o.by_ip.is_empty());
    }

    #[test]
    fn flood_from_one_mac_is_rate_limited_per_second_and_others_are_served() {
        let mut c = core();
        let mut offers = 0;
        for _ in 0..50 {
            if send(&mut c, "lan", Pkt::new(MessageType::Discover, mac(1)), T0)
                .reply
                .is_some()
            {
                offers += 1;
            }
        }
        assert_eq!(offers, 10);
        assert_eq!(c.stats().dropped.get(&Drop::RateLimited), Some(&40));
        assert!(
            send(&mut c, "lan", Pkt::new(MessageType::Discover, mac(2)), T0)
                .reply
                .is_some()
        );
        // The next second, the flooder is served again.
        assert!(
            send(
                &mut c,
                "lan",
                Pkt::new(MessageType::Discover, mac(1)),
                T0 + 1
            )
            .reply
            .is_some()
        );
    }

    #[test]
    fn bad_input_is_counted_and_dropped() {
        let mut c = core();
        let good = Pkt::new(MessageType::Discover, mac(1)).bytes();
        assert!(c.handle("lan", &good[..100], T0).reply.is_none());
        assert!(c.handle("lan", &vec![0u8; 2000], T0).reply.is_none());
        let mut no_magic = good.clone();
        no_magic[236] = 0;
        assert!(c.handle("lan", &no_magic, T0).reply.is_none());
        let mut reply_op = good.clone();
        reply_op[0] = 2;
        assert!(c.handle("lan", &reply_op, T0).reply.is_none());
        let mut bad_opt = good[..240].to_vec();
        bad_opt.extend_from_slice(&[53, 200]); // option 53 claims 200 bytes
        assert!(c.handle("lan", &bad_opt, T0).reply.is_none());
        let mut bootp = good[..240].to_vec();
        bootp.push(255);
        assert!(c.handle("lan", &bootp, T0).reply.is_none());
        let mut token_ring = good.clone();
        token_ring[1] = 6;
        assert!(c.handle("lan", &token_ring, T0).reply.is_none());
        let offer = Pkt::new(MessageType::Offer, mac(1));
        assert!(send(&mut c, "lan", offer, T0).reply.is_none());
        assert!(
            send(&mut c, "wan", Pkt::new(MessageType::Discover, mac(1)), T0)
                .reply
                .is_none()
        );
        let d = &c.stats().dropped;
        for (why, n) in [
            (Drop::Truncated, 1),
            (Drop::Oversized, 1),
            (Drop::WrongOpcode, 1),
            (Drop::NoMessageType, 1),
            (Drop::NotEthernet, 1),
            (Drop::UnsupportedType, 1),
            (Drop::NoZone, 1),
        ] {
            assert_eq!(d.get(&why), Some(&n), "{why:?}: {d:?}");
        }
        // No magic cookie, and an option claiming more bytes than follow.
        assert_eq!(d.get(&Drop::Malformed), Some(&2));
        // And it still serves.
        assert!(c.handle("lan", &good, T0).reply.is_some());
    }

    #[test]
    fn options_with_the_wrong_size_are_malformed_not_a_panic() {
        // Found by the fuzzer: option 94 must be 3 bytes; dhcproto only debug-asserts it.
        let mut c = core();
        let good = Pkt::new(MessageType::Discover, mac(1)).bytes();
        for bad in [
            &[94u8, 1, 0][..],
            &[80, 1, 0],
            &[81, 1, 0],
            &[152, 2, 0, 0],
            &[12, 9, 1],
        ] {
            let mut p = good[..240].to_vec();
            p.extend_from_slice(&[53, 1, 1]);
            p.extend_from_slice(bad);
            assert!(c.handle("lan", &p, T0).reply.is_none(), "{bad:?}");
        }
        assert_eq!(c.stats().dropped.get(&Drop::Malformed), Some(&5));
        assert!(c.handle("lan", &good, T0).reply.is_some());
    }

    #[test]
    fn unknown_options_are_ignored() {
        let mut c = core();
        let p = Pkt::new(MessageType::Discover, mac(1)).opt(DhcpOption::Unknown(
            v4::UnknownOption::new(OptionCode::Unknown(250), vec![1, 2, 3]),
        ));
        assert_eq!(kind(&send(&mut c, "lan", p, T0)), Some(MessageType::Offer));
    }

    #[test]
    fn restored_leases_are_kept_and_honoured() {
        let mut c = core();
        let a = bind(&mut c, "lan", mac(1), T0);
        let saved: Vec<Lease> = c.leases().cloned().collect();
        let mut fresh = core();
        fresh.restore(saved);
        let d = send(
            &mut fresh,
            "lan",
            Pkt::new(MessageType::Discover, mac(1)),
            T0 + 5,
        );
        assert_eq!(yiaddr(&d), a);
        let d = send(
            &mut fresh,
            "lan",
            Pkt::new(MessageType::Request, mac(2)).requested(a),
            T0 + 5,
        );
        assert_eq!(kind(&d), Some(MessageType::Nak));
    }

    #[test]
    fn new_config_keeps_existing_leases() {
        let mut c = core();
        let a = bind(&mut c, "lan", mac(1), T0);
        let mut cfg = config();
        cfg.zones[0].pool_end = ip("192.168.1.150");
        c.set_config(cfg);
        assert_eq!(c.leases().next().unwrap().ip, a);
        let d = send(
            &mut c,
            "lan",
            Pkt::new(MessageType::Request, mac(1)).ciaddr(a),
            T0 + 10,
        );
        assert_eq!(kind(&d), Some(MessageType::Ack));
    }

    #[test]
    fn config_from_the_example_view_has_every_zone_and_reservation() {
        let settings = roost_config::Settings::from_toml(
            "roost.toml",
            include_str!("../../../examples/roost.toml"),
        )
        .unwrap();
        let cfg = Config::from_view(&settings.dhcp_view()).unwrap();
        assert_eq!(cfg.zones.len(), 3);
        assert_eq!(cfg.reservations[0].mac, Some(NAS_MAC));
        assert_eq!(
            cfg.zones
                .iter()
                .find(|z| z.name == "lan")
                .unwrap()
                .lease_secs,
            12 * 3600
        );
    }

    #[test]
    fn client_id_serializes_as_hex() {
        let id = ClientId(vec![1, 0xab]);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"01ab\"");
        assert_eq!(serde_json::from_str::<ClientId>(&json).unwrap(), id);
    }
}
