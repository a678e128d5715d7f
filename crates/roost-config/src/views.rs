//! Per-service views: each daemon gets only the part of the settings it needs, as its own TOML
//! file (`/etc/roost/<service>.toml`). The dns VM never sees the admin hash or the MQTT users;
//! only the web VM, which edits the settings, holds all of them.
//!
//! Addresses the daemons use are derived here, once, so the firewall's rules, the Nix modules and
//! the lab agree: each service VM has its own point-to-point link to the firewall VM, a /30 cut
//! from `services.subnet` (see `docs/adr/0001-service-links.md`).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::path::PathBuf;
use std::str::FromStr;

use ipnet::{Ipv4Net, Ipv6Net};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::settings::{
    Dns, MqttLimits, MqttListener, MqttUser, PortForward, Protocol, Reservation, Rule, Settings,
    TlsFiles, Update, WanIpv6, WanMode, ZoneIpv6,
};
use crate::source::{ConfigErrors, Source};
use crate::types::HumanDuration;
use crate::validate::dhcp_zones;

/// A Roost daemon, each in its own VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    /// Routing, NAT and the zone policy; the only router between zones.
    Firewall,
    /// The caching resolver.
    Dns,
    /// The DHCP server.
    Dhcp,
    /// The web UI and settings controller.
    Web,
    /// The MQTT broker.
    Mqtt,
    /// The update agent.
    Update,
    /// The Wi-Fi access point (hostapd, and roost-wifi for its control API): only with
    /// `[wifi]` (ADR 0013).
    Wifi,
    /// The VoIP registrar (Kamailio, and roost-voip for its control API): only with `[voip]`
    /// (ADR 0014).
    Voip,
}

impl Service {
    /// Every service, in start order. A router runs [`Settings::services`].
    pub const ALL: [Self; 8] = [
        Self::Firewall,
        Self::Dns,
        Self::Dhcp,
        Self::Mqtt,
        Self::Update,
        Self::Wifi,
        Self::Voip,
        Self::Web,
    ];

    /// The lowercase name used for files, units, namespaces and VMs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Firewall => "firewall",
            Self::Dns => "dns",
            Self::Dhcp => "dhcp",
            Self::Web => "web",
            Self::Mqtt => "mqtt",
            Self::Update => "update",
            Self::Wifi => "wifi",
            Self::Voip => "voip",
        }
    }

    /// Which /30 of `services.subnet` links this service to the firewall (the firewall has none).
    fn link_index(self) -> Option<u32> {
        match self {
            Self::Firewall => None,
            Self::Dns => Some(1),
            Self::Dhcp => Some(2),
            Self::Web => Some(3),
            Self::Mqtt => Some(4),
            Self::Update => Some(5),
            Self::Wifi => Some(6),
            Self::Voip => Some(7),
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Service {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|svc| svc.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|s| s.name()).collect();
                format!("no service `{s}` (known: {})", names.join(", "))
            })
    }
}

/// A service VM's point-to-point link to the firewall VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceLink {
    /// The /30.
    pub network: Ipv4Net,
    /// The firewall's end: the service's gateway.
    pub firewall: Ipv4Addr,
    /// The service's end.
    pub service: Ipv4Addr,
    /// Its IPv6, with `router.ula_prefix`: a /126 of the ULA's last /64 (`<ula>:ffff::/64`,
    /// which no zone may take), numbered like the IPv4 /30s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v6: Option<ServiceLink6>,
}

/// A service link's IPv6 addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceLink6 {
    /// The /126.
    pub network: Ipv6Net,
    /// The firewall's end: the service's IPv6 gateway.
    pub firewall: Ipv6Addr,
    /// The service's end.
    pub service: Ipv6Addr,
}

/// The /64 of `router.ula_prefix` the service links' /126s come from (its last one).
pub fn service_links6(ula: Ipv6Net) -> Ipv6Net {
    let net = u128::from(ula.network()) | (0xffff_u128 << 64);
    Ipv6Net::new_assert(Ipv6Addr::from(net), 64)
}

/// Smallest `services.subnet` that holds every service link.
pub const SERVICES_MAX_PREFIX: u8 = 27;

impl Settings {
    /// The services this router runs, in start order: every one, but the Wi-Fi VM only with
    /// `[wifi]` and the VoIP VM only with `[voip]`.
    pub fn services(&self) -> Vec<Service> {
        Service::ALL
            .into_iter()
            .filter(|s| match s {
                Service::Wifi => self.wifi.is_some(),
                Service::Voip => self.voip.is_some(),
                _ => true,
            })
            .collect()
    }

    /// The link of `service`, or `None` for the firewall itself.
    pub fn service_link(&self, service: Service) -> Option<ServiceLink> {
        let index = service.link_index()?;
        let base = u32::from(self.services.subnet.network()) + index * 4;
        let v6 = self
            .router
            .ula_prefix
            .filter(|u| u.prefix_len() == 48)
            .map(|ula| {
                let base = u128::from(service_links6(ula).network()) + u128::from(index) * 4;
                ServiceLink6 {
                    network: Ipv6Net::new_assert(Ipv6Addr::from(base), 126),
                    firewall: Ipv6Addr::from(base + 1),
                    service: Ipv6Addr::from(base + 2),
                }
            });
        Some(ServiceLink {
            network: Ipv4Net::new_assert(Ipv4Addr::from(base), 30),
            firewall: Ipv4Addr::from(base + 1),
            service: Ipv4Addr::from(base + 2),
            v6,
        })
    }

    /// Where `service`'s control API listens. The firewall's listens on its end of the web
    /// link, so only the web VM reaches it.
    pub fn control_addr(&self, service: Service) -> SocketAddrV4 {
        let ip = match self.service_link(service) {
            Some(link) => link.service,
            None => self.web_link().firewall,
        };
        SocketAddrV4::new(ip, self.services.control_port)
    }

    fn web_link(&self) -> ServiceLink {
        // Web always has a link index, so this never falls back.
        self.service_link(Service::Web).unwrap_or(ServiceLink {
            network: self.services.subnet,
            firewall: self.services.subnet.network(),
            service: self.services.subnet.network(),
            v6: None,
        })
    }

    fn control(&self, service: Service) -> ControlView {
        ControlView {
            listen: self.control_addr(service),
            token_file: self.services.token_dir.join(service.name()),
        }
    }

    fn peer(&self, service: Service) -> PeerView {
        PeerView {
            service,
            url: format!("http://{}", self.control_addr(service)),
            token_file: self.services.token_dir.join(service.name()),
        }
    }

    /// Zone `name`'s IPv6 /64 and router address, when it has IPv6 (see `router.ula_prefix`).
    pub fn zone_ipv6(&self, name: &str) -> Option<ZoneIpv6> {
        self.zones.get(name)?.ipv6_addresses(self.router.ula_prefix)
    }

    fn zone_nets(&self) -> Vec<ZoneNet> {
        self.zones
            .iter()
            .map(|(name, z)| ZoneNet {
                name: name.clone(),
                subnet: z.subnet,
                router: z.router,
                subnet6: self.zone_ipv6(name).map(|v6| v6.subnet),
            })
            .collect()
    }

    /// The interfaces of `service`'s VM: its service link and, for dhcp, one interface per
    /// zone with a pool. `None` for the firewall, which addresses its own.
    pub fn vm_network(&self, service: Service) -> Option<NetworkView> {
        let link = self.service_link(service)?;
        let mut interfaces = vec![InterfaceAddress {
            name: SERVICE_LINK_IFNAME.to_owned(),
            address: Ipv4Net::new_assert(link.service, 30),
            address6: link.v6.map(|v6| Ipv6Net::new_assert(v6.service, 126)),
        }];
        if service == Service::Dhcp {
            for (name, zone) in dhcp_zones(&self.zones) {
                if let Some(pool) = &zone.dhcp {
                    interfaces.push(InterfaceAddress {
                        name: name.clone(),
                        address: Ipv4Net::new_assert(
                            pool.server_address(zone.router),
                            zone.subnet.prefix_len(),
                        ),
                        address6: None,
                    });
                }
            }
        }
        Some(NetworkView {
            interfaces,
            gateway: link.firewall,
            gateway6: link.v6.map(|v6| v6.firewall),
        })
    }

    fn network(&self, service: Service) -> NetworkView {
        self.vm_network(service).unwrap_or(NetworkView {
            interfaces: Vec::new(),
            gateway: Ipv4Addr::UNSPECIFIED,
            gateway6: None,
        })
    }

    /// The view of `service`, rendered as TOML.
    pub fn render_view(&self, service: Service) -> String {
        match service {
            Service::Firewall => self.firewall_view().render(),
            Service::Dns => self.dns_view().render(),
            Service::Dhcp => self.dhcp_view().render(),
            Service::Web => self.web_view().render(),
            Service::Mqtt => self.mqtt_view().render(),
            Service::Update => self.update_view().render(),
            // Only asked for a router with Wi-Fi; without, an empty view (no networks).
            Service::Wifi => self.wifi_view().map(|v| v.render()).unwrap_or_default(),
            Service::Voip => self.voip_view().map(|v| v.render()).unwrap_or_default(),
        }
    }

    /// What the DNS resolver gets.
    pub fn dns_view(&self) -> DnsView {
        let mut clients: Vec<Ipv4Net> = self.zones.values().map(|z| z.subnet).collect();
        clients.push(self.services.subnet);
        // Over IPv6 the zones ask from their ULA /64s: the resolver's address is the router's
        // ULA address of each zone, and RFC 6724 hosts pick the matching ULA source for it.
        let mut clients6: Vec<Ipv6Net> = self
            .zones
            .keys()
            .filter_map(|name| Some(self.zone_ipv6(name)?.subnet))
            .collect();
        clients6.extend(self.router.ula_prefix.map(service_links6));
        DnsView {
            control: self.control(Service::Dns),
            network: self.network(Service::Dns),
            hostname: self.router.hostname.clone(),
            domain: self.router.domain.clone(),
            clients,
            clients6,
            zones: self.zone_nets(),
            dns: self.dns.clone(),
        }
    }

    /// What the DHCP server gets.
    pub fn dhcp_view(&self) -> DhcpView {
        let zones = dhcp_zones(&self.zones)
            .filter_map(|(name, z)| {
                let pool = z.dhcp.as_ref()?;
                Some(DhcpZoneView {
                    name: name.clone(),
                    interface: name.clone(),
                    subnet: z.subnet,
                    router: z.router,
                    server: pool.server_address(z.router),
                    dns_server: z.router,
                    pool_start: pool.pool_start,
                    pool_end: pool.pool_end,
                    lease_time: pool.lease_time,
                    ipv6_dns: self.zone_ipv6(name).map(|v6| v6.router),
                })
            })
            .collect();
        DhcpView {
            control: self.control(Service::Dhcp),
            network: self.network(Service::Dhcp),
            domain: self.router.domain.clone(),
            zones,
            reservations: self.dhcp.reservations.clone(),
            max_leases_per_client: self.dhcp.max_leases_per_client,
            rate_limit_per_mac: self.dhcp.rate_limit_per_mac,
            decline_quarantine: self.dhcp.decline_quarantine,
            dns_peer: self.peer(Service::Dns),
        }
    }

    /// What the firewall gets: zones, the service links, the ports it publishes, forwards.
    pub fn firewall_view(&self) -> FirewallView {
        let links = self
            .services()
            .into_iter()
            .filter_map(|svc| {
                self.service_link(svc).map(|link| FirewallLink {
                    service: svc,
                    interface: format!("svc-{}", svc.name()),
                    link,
                })
            })
            .collect();
        FirewallView {
            control: self.control(Service::Firewall),
            wan: WanView {
                mode: self.wan.mode,
                interface: "wan".to_owned(),
                address: self.wan.address,
                gateway: self.wan.gateway,
                mtu: self.wan.mtu,
                ipv6: self.wan.ipv6,
            },
            zones: self
                .zones
                .iter()
                .map(|(name, z)| FirewallZone {
                    name: name.clone(),
                    interface: name.clone(),
                    subnet: z.subnet,
                    router: z.router,
                    ipv6: z.ipv6_addresses(self.router.ula_prefix),
                    reach: z.reach.clone(),
                    dhcpv6: z.dhcp.is_some() && self.zone_ipv6(name).is_some(),
                })
                .collect(),
            links,
            published: self.published_ports(),
            flows: self.service_flows(),
            port_forwards: self.firewall.port_forwards.clone(),
            rules: self.firewall.rules.clone(),
            domain: self.router.domain.clone(),
            dns_peer: self
                .zones
                .keys()
                .any(|z| self.zone_ipv6(z).is_some())
                .then(|| self.peer(Service::Dns)),
        }
    }

    /// Ports on each zone's router address that lead to a service VM.
    fn published_ports(&self) -> Vec<PublishedPort> {
        let all_zones: Vec<String> = self.zones.keys().cloned().collect();
        let to = |svc: Service, port: u16| {
            let ip = self
                .service_link(svc)
                .map_or(Ipv4Addr::UNSPECIFIED, |l| l.service);
            SocketAddrV4::new(ip, port)
        };
        let mut out = vec![PublishedPort {
            service: Service::Dns,
            protocol: Protocol::Both,
            port: 53,
            to: to(Service::Dns, 53),
            // Every published port is offered over IPv6 too, at the zone's router ULA address.
            to6: self
                .service_link(Service::Dns)
                .and_then(|l| l.v6)
                .map(|v6| SocketAddrV6::new(v6.service, 53, 0, 0)),
            zones: all_zones,
        }];
        for port in [self.web.http_port, self.web.https_port] {
            out.push(PublishedPort {
                service: Service::Web,
                protocol: Protocol::Tcp,
                port,
                to: to(Service::Web, port),
                to6: self
                    .service_link(Service::Web)
                    .and_then(|l| l.v6)
                    .map(|v6| SocketAddrV6::new(v6.service, port, 0, 0)),
                zones: self.web.zones.clone(),
            });
        }
        if self.mqtt.enabled {
            for l in &self.mqtt.listeners {
                let port = l.effective_port();
                match out
                    .iter_mut()
                    .find(|p| p.service == Service::Mqtt && p.port == port)
                {
                    Some(p) => p.zones.push(l.zone.clone()),
                    None => out.push(PublishedPort {
                        service: Service::Mqtt,
                        protocol: Protocol::Tcp,
                        port,
                        to: to(Service::Mqtt, port),
                        to6: self
                            .service_link(Service::Mqtt)
                            .and_then(|l| l.v6)
                            .map(|v6| SocketAddrV6::new(v6.service, port, 0, 0)),
                        zones: vec![l.zone.clone()],
                    }),
                }
            }
        }
        // SIP for the phones' zone. (The VoIP VM reaches a phone only over the flow its
        // REGISTER opened: it has no flow of its own.)
        if let Some(voip) = &self.voip {
            out.push(PublishedPort {
                service: Service::Voip,
                protocol: Protocol::Both,
                port: crate::voip::SIP_PORT,
                to: to(Service::Voip, crate::voip::SIP_PORT),
                to6: None,
                zones: vec![voip.zone.clone()],
            });
        }
        out
    }

    /// What service VMs may open, beyond answering: the compartment policy of design.md.
    fn service_flows(&self) -> Vec<ServiceFlow> {
        let control = self.services.control_port;
        let mut flows = Vec::new();
        for svc in [
            Service::Firewall,
            Service::Dns,
            Service::Dhcp,
            Service::Mqtt,
            Service::Update,
        ] {
            flows.push(ServiceFlow {
                from: Service::Web,
                to: FlowTarget::Service(svc),
                protocol: Protocol::Tcp,
                ports: vec![control],
            });
        }
        // The web UI's Wi-Fi page (stations, the WPS button) and phones page.
        for svc in [Service::Wifi, Service::Voip] {
            if self.services().contains(&svc) {
                flows.push(ServiceFlow {
                    from: Service::Web,
                    to: FlowTarget::Service(svc),
                    protocol: Protocol::Tcp,
                    ports: vec![control],
                });
            }
        }
        flows.push(ServiceFlow {
            from: Service::Dhcp,
            to: FlowTarget::Service(Service::Dns),
            protocol: Protocol::Tcp,
            ports: vec![control],
        });
        // The update agent's health check after a switch: web's `/peers/health`.
        flows.push(ServiceFlow {
            from: Service::Update,
            to: FlowTarget::Service(Service::Web),
            protocol: Protocol::Tcp,
            ports: vec![control],
        });
        flows.push(ServiceFlow {
            from: Service::Dns,
            to: FlowTarget::Wan,
            protocol: Protocol::Both,
            ports: vec![53],
        });
        flows.push(ServiceFlow {
            from: Service::Dns,
            to: FlowTarget::Wan,
            protocol: Protocol::Tcp,
            ports: vec![853],
        });
        flows.push(ServiceFlow {
            from: Service::Update,
            to: FlowTarget::Service(Service::Dns),
            protocol: Protocol::Both,
            ports: vec![53],
        });
        flows.push(ServiceFlow {
            from: Service::Update,
            to: FlowTarget::Wan,
            protocol: Protocol::Tcp,
            ports: vec![80, 443],
        });
        flows
    }

    /// What the MQTT broker gets.
    pub fn mqtt_view(&self) -> MqttView {
        MqttView {
            control: self.control(Service::Mqtt),
            network: self.network(Service::Mqtt),
            enabled: self.mqtt.enabled,
            zones: self.zone_nets(),
            listeners: self.mqtt.listeners.clone(),
            tls: self.mqtt.tls.clone(),
            users: self.mqtt.users.clone(),
            limits: self.mqtt.limits.clone(),
        }
    }

    /// What the web UI gets: everything, since it is where the settings are edited, plus the
    /// daemons it pushes them to.
    pub fn web_view(&self) -> WebView {
        WebView {
            control: self.control(Service::Web),
            network: self.network(Service::Web),
            peers: self
                .services()
                .into_iter()
                .filter(|s| *s != Service::Web)
                .map(|s| self.peer(s))
                .collect(),
            settings: self.clone(),
        }
    }

    /// What the Wi-Fi VM gets (ADR 0013): its control API and link, and the `[wifi]` table;
    /// `None` without Wi-Fi.
    pub fn wifi_view(&self) -> Option<crate::wifi::WifiView> {
        Some(crate::wifi::WifiView {
            control: self.control(Service::Wifi),
            network: self.network(Service::Wifi),
            wifi: self.wifi.clone()?,
        })
    }

    /// What the VoIP VM gets (ADR 0014): its control API and link, where the phones reach it,
    /// and the `[voip]` table; `None` without VoIP.
    pub fn voip_view(&self) -> Option<crate::voip::VoipView> {
        let voip = self.voip.clone()?;
        Some(crate::voip::VoipView {
            control: self.control(Service::Voip),
            network: self.network(Service::Voip),
            router: self
                .zones
                .get(&voip.zone)
                .map_or(Ipv4Addr::UNSPECIFIED, |z| z.router),
            fqdn: format!("{}.{}", self.router.hostname, self.router.domain),
            realm: self.router.hostname.clone(),
            voip,
        })
    }

    /// What the update agent gets.
    pub fn update_view(&self) -> UpdateView {
        UpdateView {
            control: self.control(Service::Update),
            network: self.network(Service::Update),
            dns_server: self
                .service_link(Service::Dns)
                .map_or(Ipv4Addr::UNSPECIFIED, |l| l.service),
            hostname: self.router.hostname.clone(),
            // The update VM reaches no daemon but web, which answers for all of them.
            peers: vec![self.peer(Service::Web)],
            update: self.update.clone(),
        }
    }
}

/// Reading and writing a view file. Views are written by `roostctl config show` (or the Nix
/// host module through it) and read by the daemon; unknown keys are errors either way.
pub trait View: Serialize + DeserializeOwned {
    /// The service this view is for.
    const SERVICE: Service;

    /// The view as TOML, with a header saying where it came from.
    fn render(&self) -> String {
        let body =
            toml::to_string_pretty(self).unwrap_or_else(|e| format!("# unrenderable: {e}\n"));
        format!(
            "# Roost settings view for the {} service, rendered from roost.toml by\n\
             # `roostctl config show --service {}`. Edit roost.toml, not this file.\n\n{body}",
            Self::SERVICE,
            Self::SERVICE,
        )
    }

    /// Parses a rendered view; `origin` names the file in errors.
    fn from_toml(origin: &str, text: &str) -> Result<Self, ConfigErrors> {
        Source::parse(origin, text)?.deserialize()
    }

    /// Reads a view file.
    fn load(path: &std::path::Path) -> Result<Self, crate::LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| crate::LoadError::Read {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self::from_toml(&path.display().to_string(), &text)?)
    }
}

/// The addresses of a service VM's interfaces and its default gateway: applied by the VM's
/// network step (`roostctl net apply`) and by the lab, so both address VMs the same way. The
/// firewall has none: it addresses its own interfaces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkView {
    /// Interfaces and their addresses.
    pub interfaces: Vec<InterfaceAddress>,
    /// Default gateway: the firewall's end of the service link.
    pub gateway: Ipv4Addr,
    /// IPv6 default gateway: the firewall's end of the link's /126.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway6: Option<Ipv6Addr>,
}

impl NetworkView {
    /// The VM's IPv6 address on its service link, if the link has IPv6.
    pub fn link_address6(&self) -> Option<Ipv6Addr> {
        self.interfaces
            .iter()
            .find(|i| i.name == SERVICE_LINK_IFNAME)?
            .address6
            .map(|a| a.addr())
    }
}

/// One interface's address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InterfaceAddress {
    /// Interface name inside the VM.
    pub name: String,
    /// Address with prefix.
    pub address: Ipv4Net,
    /// IPv6 address with prefix (service links with IPv6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address6: Option<Ipv6Net>,
}

/// The service side of every service link is called this inside the service's VM.
pub const SERVICE_LINK_IFNAME: &str = "svc";

/// Where a daemon's control API listens and the token its callers present.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlView {
    /// Listen address (the daemon's end of its service link).
    pub listen: SocketAddrV4,
    /// File holding the bearer token for this link.
    pub token_file: PathBuf,
}

/// Another daemon's control API, as its callers see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerView {
    /// Which daemon.
    pub service: Service,
    /// Base URL, e.g. `http://10.254.0.6:9100`.
    pub url: String,
    /// File holding the bearer token for that link.
    pub token_file: PathBuf,
}

/// A zone's name and addresses, for daemons that tell clients apart by source address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZoneNet {
    /// Zone name.
    pub name: String,
    /// Its subnet.
    pub subnet: Ipv4Net,
    /// The router's address in it.
    pub router: Ipv4Addr,
    /// Its ULA /64, when it has IPv6 (v6 clients are told apart by it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<Ipv6Net>,
}

/// `/etc/roost/dns.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DnsView {
    /// Control API.
    pub control: ControlView,
    /// The VM's interfaces and gateway.
    pub network: NetworkView,
    /// The router's host name, answered with the router address of the asker's zone.
    pub hostname: String,
    /// Local domain; names under it never go upstream.
    pub domain: String,
    /// Networks whose queries are answered; all others are refused.
    pub clients: Vec<Ipv4Net>,
    /// The same over IPv6 (the zones' ULA /64s and the service links').
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clients6: Vec<Ipv6Net>,
    /// Zones, to answer the router's own name with the address of the asker's zone.
    pub zones: Vec<ZoneNet>,
    /// Resolver settings.
    pub dns: Dns,
}

impl View for DnsView {
    const SERVICE: Service = Service::Dns;
}

/// One zone the DHCP server serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DhcpZoneView {
    /// Zone name.
    pub name: String,
    /// The DHCP VM's interface on this zone's bridge.
    pub interface: String,
    /// Subnet (mask and broadcast for clients).
    pub subnet: Ipv4Net,
    /// Default gateway given to clients.
    pub router: Ipv4Addr,
    /// The DHCP VM's own address on the zone (server identifier).
    pub server: Ipv4Addr,
    /// DNS server given to clients.
    pub dns_server: Ipv4Addr,
    /// First pool address.
    pub pool_start: Ipv4Addr,
    /// Last pool address.
    pub pool_end: Ipv4Addr,
    /// Lease time.
    pub lease_time: HumanDuration,
    /// The resolver's IPv6 address for the zone's clients (the router's `::1` of the zone's
    /// /64, which the firewall forwards to dns), given by stateless DHCPv6 (RFC 3646); `None`:
    /// the zone has no IPv6 and the server does not listen for DHCPv6 on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_dns: Option<Ipv6Addr>,
}

/// `/etc/roost/dhcp.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DhcpView {
    /// Control API.
    pub control: ControlView,
    /// The VM's interfaces and gateway.
    pub network: NetworkView,
    /// Domain name given to clients.
    pub domain: String,
    /// Zones with a pool.
    pub zones: Vec<DhcpZoneView>,
    /// Reserved addresses.
    pub reservations: Vec<Reservation>,
    /// Leases one client may hold.
    pub max_leases_per_client: u32,
    /// Packets per second per MAC.
    pub rate_limit_per_mac: u32,
    /// How long a declined address stays out of the pool.
    pub decline_quarantine: HumanDuration,
    /// Where lease changes are pushed (local host names).
    pub dns_peer: PeerView,
}

impl View for DhcpView {
    const SERVICE: Service = Service::Dhcp;
}

/// The interface pppd makes for the PPPoE uplink inside the firewall VM (ADR 0011).
pub const PPPOE_INTERFACE: &str = "ppp0";

/// The firewall's view of the uplink (no PPPoE credentials: only pppd, beside the daemon in the
/// firewall VM, reads those).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WanView {
    /// How the address is obtained.
    pub mode: WanMode,
    /// The WAN interface inside the firewall VM.
    pub interface: String,
    /// Static address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Ipv4Net>,
    /// Static gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Ipv4Addr>,
    /// MTU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u16>,
    /// DHCPv6 address and prefix delegation on the uplink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<WanIpv6>,
}

impl WanView {
    /// The interface traffic to and from the Internet crosses: `ppp0` over PPPoE (which runs
    /// on `interface`), else `interface` itself.
    pub fn uplink(&self) -> &str {
        match self.mode {
            WanMode::Pppoe => PPPOE_INTERFACE,
            _ => &self.interface,
        }
    }
}

/// A zone as the firewall routes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FirewallZone {
    /// Zone name.
    pub name: String,
    /// The firewall VM's interface on the zone.
    pub interface: String,
    /// Subnet.
    pub subnet: Ipv4Net,
    /// The firewall's address in it.
    pub router: Ipv4Addr,
    /// The zone's IPv6 /64 and the firewall's address in it (router advertisements announce
    /// the /64); `None`: no IPv6 in this zone, and the firewall drops any from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<ZoneIpv6>,
    /// Zones and `wan` this zone may open connections to.
    pub reach: Vec<String>,
    /// The dhcp VM answers stateless DHCPv6 here (the O flag in advertisements).
    #[serde(default)]
    pub dhcpv6: bool,
}

/// The firewall's end of one service link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FirewallLink {
    /// The service at the other end.
    pub service: Service,
    /// The firewall VM's interface for this link.
    pub interface: String,
    /// Addresses.
    pub link: ServiceLink,
}

/// A port on every listed zone's router address that is sent on to a service VM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishedPort {
    /// The service behind it.
    pub service: Service,
    /// Protocol.
    pub protocol: Protocol,
    /// Port on the router address.
    pub port: u16,
    /// Where it goes.
    pub to: SocketAddrV4,
    /// Where it goes over IPv6 (from the zone's router ULA address), if it is offered so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to6: Option<SocketAddrV6>,
    /// The zones it is offered in.
    pub zones: Vec<String>,
}

/// Where a service flow goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowTarget {
    /// The Internet.
    Wan,
    /// Another service VM (its control API or service port).
    #[serde(untagged)]
    Service(Service),
}

/// A connection a service VM may open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceFlow {
    /// The opener.
    pub from: Service,
    /// The other end.
    pub to: FlowTarget,
    /// Protocol.
    pub protocol: Protocol,
    /// Destination ports.
    pub ports: Vec<u16>,
}

/// `/etc/roost/firewall.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FirewallView {
    /// Control API.
    pub control: ControlView,
    /// Uplink.
    pub wan: WanView,
    /// Household zones.
    pub zones: Vec<FirewallZone>,
    /// Links to the service VMs.
    pub links: Vec<FirewallLink>,
    /// Service ports offered on router addresses.
    pub published: Vec<PublishedPort>,
    /// Connections service VMs may open.
    pub flows: Vec<ServiceFlow>,
    /// Port forwards from the WAN address.
    pub port_forwards: Vec<PortForward>,
    /// Extra rules.
    pub rules: Vec<Rule>,
    /// The router's domain (DNSSL in router advertisements).
    #[serde(default)]
    pub domain: String,
    /// Where the firewall pushes its neighbours (IPv4 and IPv6 addresses of each host it
    /// sees), so dns answers AAAA for lease names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_peer: Option<PeerView>,
}

impl View for FirewallView {
    const SERVICE: Service = Service::Firewall;
}

/// `/etc/roost/mqtt.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MqttView {
    /// Control API.
    pub control: ControlView,
    /// The VM's interfaces and gateway.
    pub network: NetworkView,
    /// Run the broker at all.
    pub enabled: bool,
    /// Zones, to tell which listener rules apply to a client by its source address.
    pub zones: Vec<ZoneNet>,
    /// Listeners.
    pub listeners: Vec<MqttListener>,
    /// TLS files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFiles>,
    /// Accounts.
    pub users: Vec<MqttUser>,
    /// Limits.
    pub limits: MqttLimits,
}

impl View for MqttView {
    const SERVICE: Service = Service::Mqtt;
}

/// `/etc/roost/web.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebView {
    /// Control API of the web VM itself (health for the update agent).
    pub control: ControlView,
    /// The VM's interfaces and gateway.
    pub network: NetworkView,
    /// The daemons the controller pushes settings to.
    pub peers: Vec<PeerView>,
    /// The full settings.
    pub settings: Settings,
}

impl View for WebView {
    const SERVICE: Service = Service::Web;
}

/// `/etc/roost/update.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateView {
    /// Control API.
    pub control: ControlView,
    /// The VM's interfaces and gateway.
    pub network: NetworkView,
    /// Resolver used to find the repository.
    pub dns_server: Ipv4Addr,
    /// The router's host name: generations are published as `<hostname>/<channel>/<N>.json`.
    pub hostname: String,
    /// Who must answer healthy after a switch, or the agent rolls back: the web VM, whose
    /// `/peers/health` checks every other daemon (the update VM reaches no other).
    pub peers: Vec<PeerView>,
    /// Update settings.
    pub update: Update,
}

impl View for UpdateView {
    const SERVICE: Service = Service::Update;
}
