//! Semantic checks of a settings file that deserialized cleanly. Each finding names the key it
//! is about; `Settings::from_toml` turns those into positioned diagnostics.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::settings::{Settings, WanMode, Zone};
use crate::source::KeyPath;
use crate::types::{is_domain_name, is_host_label};
use crate::views::SERVICES_MAX_PREFIX;

/// A finding: the key and what is wrong with it.
pub(crate) type Finding = (KeyPath, String);

/// Names that cannot be zone names: they mean something else in `reach` and interface names.
const RESERVED_ZONE_NAMES: [&str; 3] = ["wan", "svc", "lo"];

/// Runs every check; an empty result means the settings are usable.
pub(crate) fn validate(settings: &Settings) -> Vec<Finding> {
    let mut v = Validator::default();
    v.router(settings);
    v.wan(settings);
    v.services(settings);
    v.zones(settings);
    v.dns(settings);
    v.dhcp(settings);
    v.firewall(settings);
    v.mqtt(settings);
    v.web(settings);
    v.update(settings);
    v.wifi(settings);
    v.voip(settings);
    v.findings
}

#[derive(Default)]
struct Validator {
    findings: Vec<Finding>,
}

fn root() -> KeyPath {
    KeyPath::root()
}

impl Validator {
    fn error(&mut self, path: KeyPath, message: impl Into<String>) {
        self.findings.push((path, message.into()));
    }

    fn host_label(&mut self, path: KeyPath, name: &str) {
        if !is_host_label(name) {
            self.error(
                path,
                format!(
                    "`{name}` is not a valid host name: use letters, digits and inner hyphens, \
                     at most 63 characters"
                ),
            );
        }
    }

    fn zone_ref(&mut self, path: KeyPath, name: &str, s: &Settings, allow_wan: bool) {
        let known = s.zones.contains_key(name) || (allow_wan && name == "wan");
        if !known {
            let mut names: Vec<&str> = s.zones.keys().map(String::as_str).collect();
            if allow_wan {
                names.push("wan");
            }
            self.error(
                path,
                format!("no zone named `{name}` (known: {})", names.join(", ")),
            );
        }
    }

    fn router(&mut self, s: &Settings) {
        let at = root().key("router");
        self.host_label(at.key("hostname"), &s.router.hostname);
        if !is_domain_name(&s.router.domain) {
            self.error(
                at.key("domain"),
                format!("`{}` is not a valid domain name", s.router.domain),
            );
        }
        if let Some(ula) = s.router.ula_prefix {
            let path = at.key("ula_prefix");
            if ula.addr().segments()[0] >> 8 != 0xfd {
                self.error(
                    path,
                    format!(
                        "{ula} is not a locally assigned ULA prefix: it must be in fd00::/8 \
                         (RFC 4193); `roostctl config check` suggests a random one"
                    ),
                );
            } else if ula.prefix_len() != 48 {
                self.error(
                    path,
                    format!(
                        "{ula} is a /{}: the ULA prefix is a /48, so each zone gets a /64 of it",
                        ula.prefix_len()
                    ),
                );
            } else if ula.addr() != ula.network() {
                self.error(
                    path,
                    format!(
                        "write the network address: {} rather than {ula}",
                        ula.trunc()
                    ),
                );
            }
        }
    }

    fn wan(&mut self, s: &Settings) {
        let at = root().key("wan");
        let wan = &s.wan;
        interface_name(self, at.key("interface"), &wan.interface);
        let is_static = wan.mode == WanMode::Static;
        match (is_static, wan.address, wan.gateway) {
            (true, None, _) => self.error(at.key("address"), "static mode needs an address"),
            (true, _, None) => self.error(at.key("gateway"), "static mode needs a gateway"),
            (true, Some(net), Some(gw)) if !net.contains(&gw) || gw == net.addr() => self.error(
                at.key("gateway"),
                format!("gateway {gw} is not another address in {net}"),
            ),
            (false, Some(_), _) => {
                self.error(at.key("address"), "only used with mode = \"static\"")
            }
            (false, _, Some(_)) => {
                self.error(at.key("gateway"), "only used with mode = \"static\"")
            }
            _ => {}
        }
        if let Some(v6) = wan.ipv6 {
            if !(48..=64).contains(&v6.prefix_hint) {
                self.error(
                    at.key("ipv6").key("prefix_hint"),
                    format!(
                        "/{} is not a prefix length to delegate: use 48 to 64 (most ISPs give /56)",
                        v6.prefix_hint
                    ),
                );
            }
            if s.router.ula_prefix.is_none() {
                self.error(
                    at.key("ipv6"),
                    "needs router.ula_prefix: the zones' IPv6 starts from the ULA /48 \
                     (`roostctl config check` suggests one)",
                );
            }
            if wan.mode == WanMode::Pppoe {
                self.error(
                    at.key("ipv6"),
                    "DHCPv6 over PPPoE is not supported yet: remove [wan.ipv6] with mode = \"pppoe\"",
                );
            }
        }
        match (wan.mode, &wan.pppoe) {
            (WanMode::Pppoe, None) => self.error(
                at.key("pppoe"),
                "pppoe mode needs [wan.pppoe] with username and password_file",
            ),
            (WanMode::Pppoe, Some(p)) => {
                if p.username.is_empty() {
                    self.error(at.key("pppoe").key("username"), "must not be empty");
                } else if !pppd_word(&p.username) {
                    self.error(
                        at.key("pppoe").key("username"),
                        "printable characters only, without quotes, backslashes or spaces (it goes into pppd's options)",
                    );
                }
                if let Some(service) = &p.service_name
                    && !pppd_word(service)
                {
                    self.error(
                        at.key("pppoe").key("service_name"),
                        "printable characters only, without quotes, backslashes or spaces",
                    );
                }
                if !p.password_file.is_absolute() {
                    self.error(
                        at.key("pppoe").key("password_file"),
                        "must be an absolute path",
                    );
                }
            }
            (_, Some(_)) => self.error(at.key("pppoe"), "only used with mode = \"pppoe\""),
            (_, None) => {}
        }
        if let Some(mtu) = wan.mtu
            && !(576..=9000).contains(&mtu)
        {
            self.error(at.key("mtu"), format!("{mtu} is outside 576..=9000"));
        }
    }

    fn services(&mut self, s: &Settings) {
        let at = root().key("services");
        if s.services.subnet.prefix_len() > SERVICES_MAX_PREFIX {
            self.error(
                at.key("subnet"),
                format!(
                    "needs room for a /30 link per service VM: at most a /{SERVICES_MAX_PREFIX}"
                ),
            );
        }
        network_address(self, at.key("subnet"), s.services.subnet);
        if s.services.control_port == 0 {
            self.error(at.key("control_port"), "port 0 is not a port");
        }
        if !s.services.token_dir.is_absolute() {
            self.error(at.key("token_dir"), "must be an absolute path");
        }
    }

    fn zones(&mut self, s: &Settings) {
        let at = root().key("zones");
        if s.zones.is_empty() {
            self.error(at.clone(), "at least one zone is needed");
        }
        let mut bridges = Unique::new("bridge");
        let mut vlans = Unique::new("VLAN id");
        let mut ipv6_indices = Unique::new("IPv6 index");
        for (name, zone) in &s.zones {
            let z = at.key(name.clone());
            self.zone_name(z.clone(), name);
            let bridge = zone.bridge.clone().unwrap_or_else(|| format!("br-{name}"));
            interface_name(self, z.key("bridge"), &bridge);
            bridges.check(self, z.key("bridge"), bridge);
            if let Some(vlan) = zone.vlan {
                if !(1..=4094).contains(&vlan) {
                    self.error(z.key("vlan"), format!("{vlan} is outside 1..=4094"));
                }
                vlans.check(self, z.key("vlan"), vlan);
            }
            network_address(self, z.key("subnet"), zone.subnet);
            if !is_host_address(zone.subnet, zone.router) {
                self.error(
                    z.key("router"),
                    format!(
                        "{} is outside the zone's subnet {} (or is its network or broadcast \
                         address)",
                        zone.router, zone.subnet
                    ),
                );
            }
            for (i, target) in zone.reach.iter().enumerate() {
                self.zone_ref(z.key("reach").index(i), target, s, true);
                if target == name {
                    self.error(
                        z.key("reach").index(i),
                        "a zone always reaches itself; remove it",
                    );
                }
            }
            let index = zone.effective_ipv6_index();
            if index >= u32::from(u16::MAX) {
                self.error(
                    z.key("ipv6_index"),
                    format!(
                        "{index} is outside 0..=65534 (a /48 holds 65536 /64s; the last one, \
                         ffff, is the service links')"
                    ),
                );
            } else if zone.ipv6 && s.router.ula_prefix.is_some() {
                // A derived index is reported too: two subnets may share their third number.
                let how = if zone.ipv6_index.is_some() {
                    ""
                } else {
                    " (derived from the subnet: set ipv6_index to another number)"
                };
                let before = self.findings.len();
                ipv6_indices.check(self, z.key("ipv6_index"), index);
                if let Some((_, message)) = self.findings.get_mut(before) {
                    message.push_str(how);
                }
            }
            self.pool(z, zone);
        }
        self.overlaps(s);
    }

    fn zone_name(&mut self, path: KeyPath, name: &str) {
        let ok = name.len() <= 10
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !ok {
            self.error(
                path,
                format!(
                    "zone name `{name}` must be 1-10 lowercase letters, digits or hyphens, \
                     starting with a letter (it names interfaces)"
                ),
            );
        } else if RESERVED_ZONE_NAMES.contains(&name) {
            self.error(path, format!("`{name}` is reserved and cannot name a zone"));
        }
    }

    fn pool(&mut self, z: KeyPath, zone: &Zone) {
        let Some(dhcp) = &zone.dhcp else { return };
        let at = z.key("dhcp");
        for (key, addr) in [("pool_start", dhcp.pool_start), ("pool_end", dhcp.pool_end)] {
            if !is_host_address(zone.subnet, addr) {
                self.error(
                    at.key(key),
                    format!("{addr} is outside the zone's subnet {}", zone.subnet),
                );
            }
        }
        if dhcp.pool_start > dhcp.pool_end {
            self.error(at.key("pool_end"), "the pool ends before it starts");
        } else if (dhcp.pool_start..=dhcp.pool_end).contains(&zone.router) {
            self.error(
                at.key("pool_start"),
                format!("the pool contains the router address {}", zone.router),
            );
        }
        // A derived server address follows the router's; a bad router address is reported
        // already and must not cascade.
        let server = dhcp.server_address(zone.router);
        let router_ok = is_host_address(zone.subnet, zone.router);
        if (dhcp.server.is_some() || router_ok)
            && (!is_host_address(zone.subnet, server) || server == zone.router)
        {
            self.error(
                at.key("server"),
                format!(
                    "the DHCP server address {server} is not a free host address in {} \
                     (set `server` to one)",
                    zone.subnet
                ),
            );
        } else if (dhcp.pool_start..=dhcp.pool_end).contains(&server) {
            self.error(
                at.key("server"),
                format!("the pool contains the DHCP server's own address {server}"),
            );
        }
        let secs = dhcp.lease_time.0.as_secs();
        if !(60..=365 * 86_400).contains(&secs) {
            self.error(
                at.key("lease_time"),
                "lease time must be between one minute and one year",
            );
        }
    }

    /// No two networks the router routes between may overlap: zones, svc, and a static WAN.
    fn overlaps(&mut self, s: &Settings) {
        let mut nets: Vec<(KeyPath, Ipv4Net)> = s
            .zones
            .iter()
            .map(|(name, z)| {
                (
                    root().key("zones").key(name.clone()).key("subnet"),
                    z.subnet,
                )
            })
            .collect();
        nets.push((root().key("services").key("subnet"), s.services.subnet));
        if let Some(net) = s.wan.address {
            nets.push((root().key("wan").key("address"), net.trunc()));
        }
        for (i, (path_a, a)) in nets.iter().enumerate() {
            for (path_b, b) in &nets[i + 1..] {
                if a.trunc().contains(&b.trunc()) || b.trunc().contains(&a.trunc()) {
                    self.error(path_b.clone(), format!("{b} overlaps {a} of {path_a}"));
                }
            }
        }
    }

    fn dns(&mut self, s: &Settings) {
        let at = root().key("dns");
        let dns = &s.dns;
        if dns.recursion && !dns.upstreams.is_empty() {
            self.error(
                at.key("upstreams"),
                "forwarders are not used while dns.recursion is on: remove them, or turn recursion off",
            );
        } else if !dns.recursion && !dns.root_hints.is_empty() {
            self.error(
                at.key("root_hints"),
                "root hints are used only with dns.recursion = true",
            );
        } else if !dns.recursion && dns.upstreams.is_empty() {
            self.error(
                at.key("upstreams"),
                "no upstream and recursion off: nothing could be resolved",
            );
        }
        for (i, up) in dns.upstreams.iter().enumerate() {
            if let Some(name) = &up.tls_name
                && !is_domain_name(name)
            {
                self.error(
                    at.key("upstreams").index(i).key("tls_name"),
                    format!("`{name}` is not a valid domain name"),
                );
            }
            if up.port == Some(0) {
                self.error(
                    at.key("upstreams").index(i).key("port"),
                    "port 0 is not a port",
                );
            }
        }
        for (key, path) in [
            ("trust_anchor", &dns.trust_anchor),
            ("tls_ca_file", &dns.tls_ca_file),
        ] {
            if path.as_ref().is_some_and(|p| !p.is_absolute()) {
                self.error(at.key(key), "must be an absolute path");
            }
        }
        if dns.cache_entries == 0 || dns.cache_bytes < 4096 {
            self.error(
                at.key("cache_entries"),
                "the cache needs at least one entry and 4 KiB",
            );
        }
        let mut names = Unique::new("block list name");
        for (i, list) in dns.blocklists.iter().enumerate() {
            names.check(
                self,
                at.key("blocklists").index(i).key("name"),
                list.name.clone(),
            );
            if !list.path.is_absolute() {
                self.error(
                    at.key("blocklists").index(i).key("path"),
                    "must be an absolute path",
                );
            }
        }
        let mut hosts = Unique::new("host record");
        for (i, host) in dns.hosts.iter().enumerate() {
            let path = at.key("hosts").index(i).key("name");
            if !is_domain_name(&host.name) {
                self.error(
                    path.clone(),
                    format!("`{}` is not a valid host name", host.name),
                );
            }
            hosts.check(self, path, (host.name.to_ascii_lowercase(), host.address));
        }
    }

    fn dhcp(&mut self, s: &Settings) {
        let at = root().key("dhcp");
        let mut macs = Unique::new("MAC address");
        let mut ids = Unique::new("client id");
        let mut ips = Unique::new("address");
        let mut names = Unique::new("host name");
        for (i, r) in s.dhcp.reservations.iter().enumerate() {
            let at = at.key("reservations").index(i);
            match s.zones.get(&r.zone) {
                None => self.zone_ref(at.key("zone"), &r.zone, s, false),
                Some(zone) if zone.dhcp.is_none() => self.error(
                    at.key("zone"),
                    format!("zone `{}` has no DHCP pool", r.zone),
                ),
                Some(zone)
                    if !is_host_address(zone.subnet, r.ip)
                        || r.ip == zone.router
                        || zone.dhcp.as_ref().map(|d| d.server_address(zone.router))
                            == Some(r.ip) =>
                {
                    self.error(
                        at.key("ip"),
                        format!(
                            "{} is not a client address in zone `{}` ({}, router {}, not the \
                             DHCP server's address)",
                            r.ip, r.zone, zone.subnet, zone.router
                        ),
                    );
                }
                Some(_) => {}
            }
            match (&r.mac, &r.client_id) {
                (None, None) => self.error(at.clone(), "needs a mac or a client_id"),
                (_, Some(id)) if !is_hex_bytes(id) => self.error(
                    at.key("client_id"),
                    "client_id is hex bytes, e.g. 01aabbccddeeff",
                ),
                _ => {}
            }
            if let Some(mac) = r.mac {
                macs.check(self, at.key("mac"), mac);
            }
            if let Some(id) = &r.client_id {
                ids.check(self, at.key("client_id"), id.to_ascii_lowercase());
            }
            ips.check(self, at.key("ip"), r.ip);
            if let Some(name) = &r.hostname {
                self.host_label(at.key("hostname"), name);
                names.check(self, at.key("hostname"), name.to_ascii_lowercase());
            }
        }
        if s.dhcp.max_leases_per_client == 0 {
            self.error(at.key("max_leases_per_client"), "must be at least 1");
        }
        if s.dhcp.rate_limit_per_mac == 0 {
            self.error(at.key("rate_limit_per_mac"), "must be at least 1");
        }
    }

    fn firewall(&mut self, s: &Settings) {
        let at = root().key("firewall");
        let mut names = Unique::new("port forward name");
        let mut taken: Vec<(usize, crate::settings::Protocol, u16)> = Vec::new();
        for (i, pf) in s.firewall.port_forwards.iter().enumerate() {
            let at = at.key("port_forwards").index(i);
            names.check(self, at.key("name"), pf.name.clone());
            if pf.port == 0 || pf.to_port == Some(0) {
                self.error(at.key("port"), "port 0 is not a port");
            }
            let zone = s
                .zones
                .iter()
                .find(|(_, z)| is_host_address(z.subnet, pf.to));
            match zone {
                None => self.error(
                    at.key("to"),
                    format!(
                        "{} is in no zone: a forward must reach a host inside",
                        pf.to
                    ),
                ),
                Some((name, z)) if z.router == pf.to => self.error(
                    at.key("to"),
                    format!("{} is the router's own address in zone `{name}`", pf.to),
                ),
                Some(_) => {}
            }
            if let Some(iid) = pf.ipv6_host {
                if !crate::settings::is_interface_id(iid) {
                    self.error(
                        at.key("ipv6_host"),
                        format!(
                            "{iid} is not an interface identifier: give the last 64 bits only, \
                             e.g. `::10` (the prefix is the ISP's, and changes)"
                        ),
                    );
                } else if let Some((name, _)) = zone
                    && s.zone_ipv6(name).is_none()
                {
                    self.error(
                        at.key("ipv6_host"),
                        format!("zone `{name}` has no IPv6 (`router.ula_prefix`, `ipv6`)"),
                    );
                }
            }
            if pf.enabled {
                if let Some((j, _, _)) = taken
                    .iter()
                    .find(|(_, proto, port)| *port == pf.port && proto.overlaps(pf.protocol))
                {
                    self.error(
                        at.key("port"),
                        format!(
                            "port {} is already forwarded by port_forwards[{j}]",
                            pf.port
                        ),
                    );
                }
                taken.push((i, pf.protocol, pf.port));
            }
        }
        let mut names = Unique::new("rule name");
        for (i, rule) in s.firewall.rules.iter().enumerate() {
            let at = at.key("rules").index(i);
            names.check(self, at.key("name"), rule.name.clone());
            self.zone_ref(at.key("from"), &rule.from, s, true);
            self.zone_ref(at.key("to"), &rule.to, s, true);
            if rule.ports.contains(&0) {
                self.error(at.key("ports"), "port 0 is not a port");
            }
        }
    }

    fn mqtt(&mut self, s: &Settings) {
        let at = root().key("mqtt");
        let mqtt = &s.mqtt;
        let mut listeners = Unique::new("listener");
        for (i, l) in mqtt.listeners.iter().enumerate() {
            let at = at.key("listeners").index(i);
            self.zone_ref(at.key("zone"), &l.zone, s, false);
            if l.tls && mqtt.tls.is_none() {
                self.error(
                    at.key("tls"),
                    "a TLS listener needs [mqtt.tls] cert and key",
                );
            }
            if l.port == Some(0) {
                self.error(at.key("port"), "port 0 is not a port");
            }
            listeners.check(self, at.key("port"), (l.zone.clone(), l.effective_port()));
        }
        let mut names = Unique::new("user");
        for (i, user) in mqtt.users.iter().enumerate() {
            let at = at.key("users").index(i);
            if user.name.is_empty() || user.name.len() > 64 || user.name.contains(char::is_control)
            {
                self.error(at.key("name"), "user names are 1-64 printable characters");
            }
            names.check(self, at.key("name"), user.name.clone());
            for (key, filters) in [("publish", &user.publish), ("subscribe", &user.subscribe)] {
                for (j, filter) in filters.iter().enumerate() {
                    if let Err(why) = topic_filter(filter) {
                        self.error(at.key(key).index(j), why);
                    } else if key == "publish" && reaches_router_topics(filter) {
                        self.error(
                            at.key(key).index(j),
                            format!(
                                "`{filter}` reaches roost/, which only the router publishes to"
                            ),
                        );
                    }
                }
            }
        }
        let l = &mqtt.limits;
        let at = at.key("limits");
        for (key, value) in [
            ("max_connections", u64::from(l.max_connections)),
            (
                "max_connections_per_address",
                u64::from(l.max_connections_per_address),
            ),
            ("max_message_bytes", u64::from(l.max_message_bytes)),
            ("max_inflight", u64::from(l.max_inflight)),
        ] {
            if value == 0 {
                self.error(at.key(key), "must be at least 1");
            }
        }
    }

    fn web(&mut self, s: &Settings) {
        let at = root().key("web");
        let web = &s.web;
        if web.admin.user.is_empty() || !web.admin.user.chars().all(|c| c.is_ascii_graphic()) {
            self.error(
                at.key("admin").key("user"),
                "the admin user name is printable ASCII without spaces",
            );
        }
        for (i, zone) in web.zones.iter().enumerate() {
            self.zone_ref(at.key("zones").index(i), zone, s, false);
        }
        if web.https_port == 0 || web.http_port == 0 || web.https_port == web.http_port {
            self.error(at.key("https_port"), "needs two different, non-zero ports");
        }
        if web.session_idle > web.session_max {
            self.error(
                at.key("session_idle"),
                "the idle timeout is longer than the session itself",
            );
        }
    }

    fn wifi(&mut self, s: &Settings) {
        let Some(wifi) = &s.wifi else {
            return;
        };
        for (keys, message) in wifi.findings(|zone| s.zones.contains_key(zone)) {
            let at = keys.into_iter().fold(root().key("wifi"), |at, k| at.key(k));
            self.error(at, message);
        }
    }

    fn voip(&mut self, s: &Settings) {
        let Some(voip) = &s.voip else {
            return;
        };
        for (keys, message) in voip.findings(|zone| s.zones.contains_key(zone)) {
            let at = keys.into_iter().fold(root().key("voip"), |at, k| at.key(k));
            self.error(at, message);
        }
    }

    fn update(&mut self, s: &Settings) {
        let at = root().key("update");
        let u = &s.update;
        if let Some(url) = &u.repository
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            self.error(
                at.key("repository"),
                "the repository is an http(s) URL (its metadata is signed either way)",
            );
        }
        if !is_host_label(&u.channel) {
            self.error(
                at.key("channel"),
                "a channel name is one word of letters, digits and hyphens",
            );
        }
        if let Some(window) = &u.window
            && parse_window(window).is_none()
        {
            self.error(at.key("window"), "a window looks like 03:00-05:00");
        }
    }
}

/// Reports the second and later keys that repeat a value.
struct Unique<T> {
    what: &'static str,
    seen: HashMap<T, KeyPath>,
}

impl<T: Eq + Hash> Unique<T> {
    fn new(what: &'static str) -> Self {
        Self {
            what,
            seen: HashMap::new(),
        }
    }

    fn check(&mut self, v: &mut Validator, path: KeyPath, value: T) {
        if let Some(first) = self.seen.get(&value) {
            let message = format!("duplicate {}: already used by {first}", self.what);
            v.error(path, message);
        } else {
            self.seen.insert(value, path);
        }
    }
}

fn interface_name(v: &mut Validator, path: KeyPath, name: &str) {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        v.error(
            path,
            format!("`{name}` is not an interface name (1-15 letters, digits, -, _ or .)"),
        );
    }
}

fn network_address(v: &mut Validator, path: KeyPath, net: Ipv4Net) {
    if net.addr() != net.network() {
        v.error(
            path,
            format!(
                "write the network address: {} rather than {net}",
                net.trunc()
            ),
        );
    }
}

/// Whether `addr` is an address a host can hold in `net` (not network or broadcast).
pub(crate) fn is_host_address(net: Ipv4Net, addr: Ipv4Addr) -> bool {
    let net = net.trunc();
    net.contains(&addr)
        && (net.prefix_len() >= 31 || (addr != net.network() && addr != net.broadcast()))
}

fn is_hex_bytes(s: &str) -> bool {
    !s.is_empty()
        && s.len().is_multiple_of(2)
        && s.len() <= 510
        && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// Checks an MQTT topic filter (MQTT 5 §4.7): `#` only as the last level, `+` only as a whole level.
fn topic_filter(filter: &str) -> Result<(), String> {
    if filter.is_empty() || filter.len() > 65_535 || filter.contains('\0') {
        return Err("a topic filter is 1-65535 bytes without NUL".to_owned());
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        let wild = level.contains(['+', '#']);
        if wild && level.len() != 1 {
            return Err(format!("`{filter}`: + and # stand alone in their level"));
        }
        if *level == "#" && i + 1 != levels.len() {
            return Err(format!("`{filter}`: # may only be the last level"));
        }
    }
    Ok(())
}

/// Whether a publish filter names the router's telemetry tree `roost/` outright. (Wildcards such
/// as `#` are allowed here; the broker itself keeps `roost/` read-only for every user.)
fn reaches_router_topics(filter: &str) -> bool {
    filter.split('/').next() == Some("roost")
}

/// Parses `HH:MM-HH:MM` into minutes after midnight.
pub fn parse_window(window: &str) -> Option<(u16, u16)> {
    let minutes = |t: &str| {
        let (h, m) = t.split_once(':')?;
        if h.len() != 2 || m.len() != 2 {
            return None;
        }
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60).then_some(h * 60 + m)
    };
    let (start, end) = window.split_once('-')?;
    let (start, end) = (minutes(start.trim())?, minutes(end.trim())?);
    (start != end).then_some((start, end))
}

/// Zones with a DHCP pool, in name order (used by views too).
pub(crate) fn dhcp_zones(zones: &BTreeMap<String, Zone>) -> impl Iterator<Item = (&String, &Zone)> {
    zones.iter().filter(|(_, z)| z.dhcp.is_some())
}

/// Whether `s` can be written inside double quotes in a pppd options file as it is.
fn pppd_word(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\' && c != '#')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_topic_filters() {
        for ok in ["a/b", "a/+/c", "a/#", "#", "+"] {
            assert!(topic_filter(ok).is_ok(), "{ok}");
        }
        for bad in ["a/#/c", "a+/b", "a/b#", ""] {
            assert!(topic_filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_update_windows() {
        assert_eq!(parse_window("03:00-05:30"), Some((180, 330)));
        assert_eq!(parse_window("23:00-01:00"), Some((1380, 60)));
        for bad in ["3:00-5:00", "25:00-01:00", "03:00", "03:00-03:00"] {
            assert_eq!(parse_window(bad), None, "{bad}");
        }
    }

    #[test]
    fn knows_host_addresses() {
        let net: Ipv4Net = "192.168.1.0/24".parse().unwrap();
        assert!(is_host_address(net, Ipv4Addr::new(192, 168, 1, 1)));
        assert!(!is_host_address(net, Ipv4Addr::new(192, 168, 1, 0)));
        assert!(!is_host_address(net, Ipv4Addr::new(192, 168, 1, 255)));
        assert!(!is_host_address(net, Ipv4Addr::new(192, 168, 2, 1)));
    }
}
