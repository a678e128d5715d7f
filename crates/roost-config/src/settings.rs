//! The settings model: one `roost.toml` describes the whole router.
//!
//! Every field has a doc comment because these are what `examples/roost.toml` and the web UI
//! explain to users. Defaults are chosen so a minimal file (router, wan, one zone) is a working
//! router; security-relevant values (passwords) have no default at all.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use crate::types::{Generation, HumanDuration, MacAddr, PhcHash};

/// The whole router's settings, as written in `roost.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// The router itself.
    pub router: Router,
    /// The uplink to the Internet service provider.
    pub wan: Wan,
    /// The links between the firewall VM and the service VMs.
    #[serde(default)]
    pub services: Services,
    /// The household networks, by name (`lan`, `iot`, `guest`, or any name of your own).
    pub zones: BTreeMap<String, Zone>,
    /// The caching DNS resolver.
    #[serde(default)]
    pub dns: Dns,
    /// The DHCP server (pools live in each zone; reservations here).
    #[serde(default)]
    pub dhcp: Dhcp,
    /// Port forwards and extra firewall rules (the zone policy comes from `zones.*.reach`).
    #[serde(default)]
    pub firewall: Firewall,
    /// The MQTT broker for the home's IoT devices.
    #[serde(default)]
    pub mqtt: Mqtt,
    /// The web configuration UI.
    #[serde(default)]
    pub web: Web,
    /// Signed system updates.
    #[serde(default)]
    pub update: Update,
    /// The Wi-Fi access point (hostapd in its own VM, ADR 0013); none without this table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wifi: Option<crate::wifi::Wifi>,
    /// The VoIP registrar for the home's SIP phones (Kamailio in its own VM, ADR 0014); none
    /// without this table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voip: Option<crate::voip::Voip>,
}

/// The router's own identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Router {
    /// The router's host name (one DNS label).
    pub hostname: String,
    /// The local domain; clients are named `<hostname>.<domain>`. `home.arpa` is reserved for
    /// exactly this (RFC 8375).
    #[serde(default = "default_domain")]
    pub domain: String,
    /// The router's IPv6 Unique Local Address prefix: a /48 in `fd00::/8` (RFC 4193), chosen
    /// at random once and then kept, so addresses stay put across restarts and changes. Each
    /// zone with `ipv6` gets the /64 `<prefix>:<ipv6_index>::/64` of it, announced by router
    /// advertisements (SLAAC), and the router `<prefix>:<ipv6_index>::1`. Without it no zone
    /// has IPv6; `roostctl config check` prints a freshly generated prefix to paste here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ula_prefix: Option<Ipv6Net>,
}

fn default_domain() -> String {
    "home.arpa".to_owned()
}

/// How the router gets its Internet address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WanMode {
    /// Ask the ISP by DHCP (most cable and fibre lines).
    Dhcp,
    /// A fixed address from the ISP (`address` and `gateway`).
    Static,
    /// PPPoE (most DSL lines); credentials in `[wan.pppoe]`.
    Pppoe,
}

/// The uplink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Wan {
    /// `dhcp`, `static` or `pppoe`.
    pub mode: WanMode,
    /// The host NIC that is passed to the firewall VM as its WAN link.
    #[serde(default = "default_wan_interface")]
    pub interface: String,
    /// With `mode = "static"`: the router's address and prefix, e.g. `203.0.113.2/24`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Ipv4Net>,
    /// With `mode = "static"`: the ISP's gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Ipv4Addr>,
    /// Link MTU, when the ISP needs something other than 1500 (PPPoE uses 1492).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u16>,
    /// With `mode = "pppoe"`: the PPPoE session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pppoe: Option<Pppoe>,
    /// IPv6 from the ISP: with this table the firewall asks by DHCPv6 for an address and a
    /// delegated prefix, and each IPv6 zone also gets the /64 of that prefix at its index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<WanIpv6>,
}

/// The ISP's IPv6 (`[wan.ipv6]`): DHCPv6 prefix delegation (RFC 8415) on the uplink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WanIpv6 {
    /// The delegated prefix length to ask for (48..=64; ISPs hand out /56 most often, /60 or
    /// /48 too). Only a hint: the firewall takes what the ISP delegates.
    #[serde(default = "default_prefix_hint")]
    pub prefix_hint: u8,
}

fn default_prefix_hint() -> u8 {
    56
}

fn default_wan_interface() -> String {
    "eth0".to_owned()
}

/// PPPoE credentials, by reference: the password lives in a file, never in `roost.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pppoe {
    /// The user name the ISP gave you.
    pub username: String,
    /// A file holding only the password (readable by the pppoe VM alone).
    pub password_file: PathBuf,
    /// The access concentrator's service name, if the ISP requires one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
}

/// The service links and the daemons' control APIs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Services {
    /// Addresses of the service links: each service VM has a /30 link of its own to the firewall
    /// VM, cut from this subnet in a fixed order. At most a /27; must not overlap any zone.
    pub subnet: Ipv4Net,
    /// TCP port of every daemon's control API on its svc address.
    pub control_port: u16,
    /// Directory holding one token file per link (`<dir>/<service>`), provisioned by the host.
    pub token_dir: PathBuf,
}

impl Default for Services {
    fn default() -> Self {
        Self {
            subnet: Ipv4Net::new_assert(Ipv4Addr::new(10, 254, 0, 0), 24),
            control_port: 9100,
            token_dir: PathBuf::from("/run/roost/tokens"),
        }
    }
}

/// A household network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Zone {
    /// The host bridge carrying this zone; default `br-<zone>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
    /// 802.1Q VLAN id, when this zone arrives tagged on a trunk port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    /// The zone's IPv4 subnet, e.g. `192.168.1.0/24`.
    pub subnet: Ipv4Net,
    /// The router's address in this zone: clients' gateway, DNS server and web UI.
    pub router: Ipv4Addr,
    /// What this zone may open connections to: other zone names and `wan`. Replies are always
    /// allowed back; nothing else is.
    #[serde(default)]
    pub reach: Vec<String>,
    /// Address pool; without it the zone has no DHCP server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhcp: Option<ZoneDhcp>,
    /// IPv6 in this zone (with `router.ula_prefix` set): the router's address in the zone's
    /// /64 and router advertisements for SLAAC. The zone policy (`reach`) is the same for both.
    #[serde(default = "yes")]
    pub ipv6: bool,
    /// Which /64 of `router.ula_prefix` the zone gets (the fourth group of its addresses,
    /// 0..=65535). Default: the third number of the zone's IPv4 subnet (192.168.20.0/24 gives
    /// 20, i.e. `<prefix>:14::/64`), so it never moves when zones are added or removed. Set it
    /// when two zones' subnets share that number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_index: Option<u32>,
}

/// A zone's IPv6 addresses, derived from `router.ula_prefix` and the zone's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneIpv6 {
    /// The zone's /64.
    pub subnet: Ipv6Net,
    /// The router's address in it (`::1` of the /64).
    pub router: Ipv6Addr,
    /// Which /64 it is, of the ULA /48 and of a delegated prefix alike.
    pub index: u16,
}

/// Whether `a` is an interface identifier: only its last 64 bits set, not all zero.
pub fn is_interface_id(a: Ipv6Addr) -> bool {
    let v = u128::from(a);
    v != 0 && v >> 64 == 0
}

impl ZoneIpv6 {
    /// The zone's /64 of a delegated prefix `delegated` (a /48 to /64): the `index`-th, or
    /// `None` when the prefix holds fewer /64s than that.
    pub fn delegated_subnet(&self, delegated: Ipv6Net) -> Option<Ipv6Net> {
        let len = delegated.prefix_len();
        if !(48..=64).contains(&len) || u32::from(self.index) >> (64 - len) != 0 {
            return None;
        }
        let base = u128::from(delegated.network());
        let net = base | (u128::from(self.index) << 64);
        Some(Ipv6Net::new_assert(Ipv6Addr::from(net), 64))
    }
}

/// The router's own address (`::1`) in the /64 `subnet`.
pub fn router_address(subnet: Ipv6Net) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(subnet.network()) | 1)
}

impl Zone {
    /// The zone's /64 index: `ipv6_index`, or the third number of its IPv4 subnet.
    pub fn effective_ipv6_index(&self) -> u32 {
        self.ipv6_index
            .unwrap_or_else(|| u32::from(self.subnet.network().octets()[2]))
    }

    /// The zone's IPv6 /64 and router address under `ula` (a /48), or `None` when the zone has
    /// IPv6 off, there is no prefix, or the index does not fit.
    pub fn ipv6_addresses(&self, ula: Option<Ipv6Net>) -> Option<ZoneIpv6> {
        let ula = ula?;
        if !self.ipv6 || ula.prefix_len() != 48 {
            return None;
        }
        let index = u16::try_from(self.effective_ipv6_index()).ok()?;
        let mut segments = ula.network().segments();
        segments[3] = index;
        let net = Ipv6Addr::new(
            segments[0],
            segments[1],
            segments[2],
            segments[3],
            0,
            0,
            0,
            0,
        );
        let subnet = Ipv6Net::new_assert(net, 64);
        Some(ZoneIpv6 {
            subnet,
            router: router_address(subnet),
            index,
        })
    }
}

/// A zone's DHCP pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZoneDhcp {
    /// First address handed out.
    pub pool_start: Ipv4Addr,
    /// Last address handed out.
    pub pool_end: Ipv4Addr,
    /// How long a lease lasts before the client must renew.
    #[serde(default = "default_lease_time")]
    pub lease_time: HumanDuration,
    /// The DHCP VM's own address in the zone; default the address after `router`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<Ipv4Addr>,
}

impl ZoneDhcp {
    /// The DHCP server's address in a zone whose router address is `router`.
    pub fn server_address(&self, router: Ipv4Addr) -> Ipv4Addr {
        self.server
            .unwrap_or_else(|| Ipv4Addr::from(u32::from(router).wrapping_add(1)))
    }
}

fn default_lease_time() -> HumanDuration {
    HumanDuration::secs(12 * 3600)
}

/// The DNS resolver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Dns {
    /// Forwarders, tried in order (at least one, unless `recursion` is on).
    pub upstreams: Vec<Upstream>,
    /// Resolve from the root servers instead of forwarding (then `upstreams` must be empty).
    pub recursion: bool,
    /// The root servers recursion starts from; default the IANA root servers' IPv4
    /// addresses. Only these may be asked although they lie in a private or documentation
    /// range (a lab's own root).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub root_hints: Vec<IpAddr>,
    /// Validate DNSSEC: AD bit on validated answers, SERVFAIL for bogus ones.
    pub dnssec: bool,
    /// DNSSEC trust anchors: a file of DNSKEY records (zone-file lines, any owner). Default
    /// the root zone's KSKs built into the resolver; the lab and tests name a test root here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trust_anchor: Option<PathBuf>,
    /// Extra CA certificates (PEM) trusted for DNS-over-TLS upstreams, besides the system
    /// roots: for a home or test server with its own CA.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_ca_file: Option<PathBuf>,
    /// Cache size bound, in entries.
    pub cache_entries: u32,
    /// Cache size bound, in bytes.
    pub cache_bytes: u64,
    /// Answer from expired cache entries when no upstream answers (RFC 8767).
    pub serve_stale: bool,
    /// Queries per second answered per client address before rate limiting.
    pub client_rate_limit: u32,
    /// Block lists loaded from files.
    pub blocklists: Vec<Blocklist>,
    /// How a blocked name is answered.
    pub block_response: BlockResponse,
    /// Static host records answered locally, e.g. `{ name = "nas", address = "192.168.1.10" }`.
    pub hosts: Vec<HostRecord>,
}

impl Default for Dns {
    fn default() -> Self {
        Self {
            upstreams: Vec::new(),
            recursion: false,
            root_hints: Vec::new(),
            dnssec: true,
            trust_anchor: None,
            tls_ca_file: None,
            cache_entries: 10_000,
            cache_bytes: 32 << 20,
            serve_stale: true,
            client_rate_limit: 200,
            blocklists: Vec::new(),
            block_response: BlockResponse::Nxdomain,
            hosts: Vec::new(),
        }
    }
}

/// An upstream DNS server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Upstream {
    /// The server's address.
    pub address: IpAddr,
    /// Port; default 53, or 853 with `tls_name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Use DNS-over-TLS and check the server's certificate for this name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_name: Option<String>,
}

impl Upstream {
    /// The port in use, with the protocol default applied.
    pub fn effective_port(&self) -> u16 {
        self.port
            .unwrap_or(if self.tls_name.is_some() { 853 } else { 53 })
    }
}

/// A block list file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Blocklist {
    /// A short name shown in the UI.
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// `hosts` (`0.0.0.0 name` lines) or `domains` (one name a line).
    pub format: BlocklistFormat,
    /// Switch a list off without removing it.
    #[serde(default = "yes")]
    pub enabled: bool,
}

/// Block list file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlocklistFormat {
    /// `/etc/hosts` style lines.
    Hosts,
    /// One domain a line.
    Domains,
}

/// The answer to a blocked name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockResponse {
    /// The name does not exist.
    Nxdomain,
    /// `0.0.0.0` / `::`.
    Null,
}

/// A static host record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostRecord {
    /// A host label (qualified with the router's domain) or a full name.
    pub name: String,
    /// Its address.
    pub address: IpAddr,
}

/// DHCP server settings shared by all zones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Dhcp {
    /// Fixed addresses for known devices.
    pub reservations: Vec<Reservation>,
    /// Most leases one client (MAC) may hold at once, against pool starvation.
    pub max_leases_per_client: u32,
    /// Most DHCP packets per second accepted from one MAC.
    pub rate_limit_per_mac: u32,
    /// How long an address a client declined (RFC 2131 DECLINE) is kept out of the pool.
    pub decline_quarantine: HumanDuration,
}

impl Default for Dhcp {
    fn default() -> Self {
        Self {
            reservations: Vec::new(),
            max_leases_per_client: 2,
            rate_limit_per_mac: 10,
            decline_quarantine: HumanDuration::secs(600),
        }
    }
}

/// A reserved address for one device, known by MAC or by DHCP client identifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reservation {
    /// The zone the device lives in.
    pub zone: String,
    /// The device's MAC address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    /// The device's DHCP client identifier (option 61), as hex bytes, e.g. `01aabbccddeeff`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The address it always gets.
    pub ip: Ipv4Addr,
    /// Its name in the local domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

/// Port forwards and extra rules.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Firewall {
    /// Connections from the Internet to a port of the WAN address, sent to a host inside.
    pub port_forwards: Vec<PortForward>,
    /// Extra accept or drop rules between zones, beyond `reach`.
    pub rules: Vec<Rule>,
}

/// Transport protocols a rule can match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// Both TCP and UDP.
    Both,
}

impl Protocol {
    /// Whether the two overlap (share TCP or UDP).
    pub fn overlaps(self, other: Self) -> bool {
        self == other || self == Self::Both || other == Self::Both
    }
}

/// A port forward (DNAT) from the WAN address to a host in a zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortForward {
    /// A short name shown in the UI.
    pub name: String,
    /// `tcp`, `udp` or `both`.
    pub protocol: Protocol,
    /// The port on the WAN address.
    pub port: u16,
    /// The inside host.
    pub to: Ipv4Addr,
    /// The port on the inside host; default the same as `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_port: Option<u16>,
    /// Open it over IPv6 too: the host's interface identifier, the last 64 bits of its IPv6
    /// address (e.g. `::10`; give the host a SLAAC token, `ip token set ::10 dev eth0`, or a
    /// static address). The forward then also lets the Internet open `to_port` (no
    /// translation over IPv6: the host's own port) at `<the zone's delegated /64>:<this>`,
    /// which follows the ISP's prefix changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_host: Option<Ipv6Addr>,
    /// Switch a forward off without removing it.
    #[serde(default = "yes")]
    pub enabled: bool,
}

/// An extra firewall rule between zones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// A short name shown in the UI.
    pub name: String,
    /// Source zone, or `wan`.
    pub from: String,
    /// Destination zone, or `wan`.
    pub to: String,
    /// `tcp`, `udp` or `both`.
    pub protocol: Protocol,
    /// Destination ports; empty means every port.
    #[serde(default)]
    pub ports: Vec<u16>,
    /// `accept` or `drop`.
    pub action: RuleAction,
}

/// What a rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleAction {
    /// Let it through.
    Accept,
    /// Drop it silently.
    Drop,
}

/// The MQTT broker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Mqtt {
    /// Run the broker at all.
    pub enabled: bool,
    /// Which zones reach the broker, on which port.
    pub listeners: Vec<MqttListener>,
    /// Certificate and key for TLS listeners.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFiles>,
    /// Accounts; a device logs in with one of these.
    pub users: Vec<MqttUser>,
    /// Bounds that keep one device from taking the broker down.
    pub limits: MqttLimits,
}

impl Default for Mqtt {
    fn default() -> Self {
        Self {
            enabled: true,
            listeners: Vec::new(),
            tls: None,
            users: Vec::new(),
            limits: MqttLimits::default(),
        }
    }
}

/// One broker listener, reachable from one zone at its router address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MqttListener {
    /// The zone whose clients use it.
    pub zone: String,
    /// TCP port; default 1883, 8883 with `tls`, 9001 with `websocket`, 9443 with both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Require TLS (uses `mqtt.tls`).
    #[serde(default)]
    pub tls: bool,
    /// MQTT over WebSocket (subprotocol `mqtt`, for browser dashboards) instead of plain TCP.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub websocket: bool,
    /// Let clients in without a user name. Off unless you switch it on.
    #[serde(default)]
    pub allow_anonymous: bool,
}

impl MqttListener {
    /// The port in use, with the protocol default applied.
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(match (self.tls, self.websocket) {
            (false, false) => 1883,
            (true, false) => 8883,
            (false, true) => 9001,
            (true, true) => 9443,
        })
    }
}

/// A certificate chain and its private key, as PEM files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TlsFiles {
    /// The certificate chain.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

/// An MQTT account with its topic permissions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MqttUser {
    /// The login name.
    pub name: String,
    /// argon2id PHC hash of the password (`roostctl passwd` makes one).
    pub password_hash: PhcHash,
    /// Topic filters this user may publish to (`+` one level, `#` the rest).
    #[serde(default)]
    pub publish: Vec<String>,
    /// Topic filters this user may subscribe to.
    #[serde(default)]
    pub subscribe: Vec<String>,
}

/// Broker limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MqttLimits {
    /// Connections in all.
    pub max_connections: u32,
    /// Connections from one client address.
    pub max_connections_per_address: u32,
    /// Largest message accepted, in bytes.
    pub max_message_bytes: u32,
    /// Unacknowledged QoS 1/2 messages per client.
    pub max_inflight: u16,
    /// Total size of retained messages, in bytes.
    pub max_retained_bytes: u64,
}

impl Default for MqttLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_connections_per_address: 16,
            max_message_bytes: 256 << 10,
            max_inflight: 32,
            max_retained_bytes: 16 << 20,
        }
    }
}

/// The web UI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Web {
    /// The administrator account.
    pub admin: Admin,
    /// Zones whose clients may open the UI (never the WAN).
    pub zones: Vec<String>,
    /// HTTPS port.
    pub https_port: u16,
    /// HTTP port, which only redirects to HTTPS.
    pub http_port: u16,
    /// Certificate and key; without them a self-signed certificate is made on first start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFiles>,
    /// A session ends after this long without a request.
    pub session_idle: HumanDuration,
    /// A session ends this long after login, whatever happens.
    pub session_max: HumanDuration,
}

impl Default for Web {
    fn default() -> Self {
        Self {
            admin: Admin::default(),
            zones: vec!["lan".to_owned()],
            https_port: 443,
            http_port: 80,
            tls: None,
            session_idle: HumanDuration::secs(30 * 60),
            session_max: HumanDuration::secs(12 * 3600),
        }
    }
}

/// The administrator. There is no default password: without `password_hash` the UI shows only
/// the first-run page (from the LAN) that sets one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Admin {
    /// Login name.
    pub user: String,
    /// argon2id PHC hash of the password (`roostctl passwd` makes one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<PhcHash>,
}

impl Default for Admin {
    fn default() -> Self {
        Self {
            user: "admin".to_owned(),
            password_hash: None,
        }
    }
}

/// Signed updates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Update {
    /// The TUF repository (https URL) that publishes generations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// The release channel followed, e.g. `stable` or `testing`.
    pub channel: String,
    /// Install new generations by itself (inside `window`).
    pub auto: bool,
    /// Local time window for automatic updates, `HH:MM-HH:MM` (may wrap past midnight).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// Stay on this generation: auto-update never passes it and it is never collected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinned_generation: Option<Generation>,
}

impl Default for Update {
    fn default() -> Self {
        Self {
            repository: None,
            channel: "stable".to_owned(),
            auto: true,
            window: Some("03:00-05:00".to_owned()),
            pinned_generation: None,
        }
    }
}

fn yes() -> bool {
    true
}

/// The ULA /48 `fd<global id>::/48` for a 40-bit Global ID (RFC 4193 §3.2): pass five random
/// bytes, once; the prefix is then kept in `router.ula_prefix`.
pub fn ula_prefix(global_id: [u8; 5]) -> Ipv6Net {
    let g = global_id;
    let addr = Ipv6Addr::new(
        0xfd00 | u16::from(g[0]),
        u16::from_be_bytes([g[1], g[2]]),
        u16::from_be_bytes([g[3], g[4]]),
        0,
        0,
        0,
        0,
        0,
    );
    Ipv6Net::new_assert(addr, 48)
}
