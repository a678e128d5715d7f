//! The lab's topology, derived from the settings without touching the system: which namespaces,
//! bridges, veth pairs, addresses and routes stand in for the router's VMs and networks.
//! `lab up` applies a plan; tests check it here first.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net};
use roost_config::{Service, Settings};

/// The ISP side: documentation addresses only (RFC 5737), never a real one.
pub mod isp {
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// The ISP's gateway on the WAN link.
    pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
    /// Prefix of the WAN link.
    pub const WAN_PREFIX: u8 = 24;
    /// Addresses the ISP's DHCP server hands out on the WAN link.
    pub const DHCP_RANGE: (Ipv4Addr, Ipv4Addr) = (
        Ipv4Addr::new(203, 0, 113, 10),
        Ipv4Addr::new(203, 0, 113, 99),
    );
    /// The ISP's DNS server (authoritative for [`ZONE`]).
    pub const DNS: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 53);
    /// The ISP's web server ("the Internet" for the tests); it answers with the client's address.
    pub const HTTP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 80);
    /// The test zone the ISP's DNS server is authoritative for.
    pub const ZONE: &str = "isp.test";
    /// Names in [`ZONE`] and their addresses.
    pub const NAMES: [(&str, Ipv4Addr); 2] = [("ns.isp.test", DNS), ("www.isp.test", HTTP)];
    /// A signed zone below [`ZONE`] whose DS in the parent matches none of its keys: every
    /// answer from it is bogus to a validating resolver (its `www` is [`HTTP`] too).
    pub const BOGUS_ZONE: &str = "bogus.isp.test";

    /// The ISP's router on the WAN link's IPv6 /64 (RFC 3849 documentation prefix).
    pub const GATEWAY6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 1);
    /// The WAN link's /64 (addresses by DHCPv6 only: the ISP's advertisements say M).
    pub const WAN6: &str = "2001:db8:0:1::/64";
    /// Addresses the ISP's DHCPv6 server hands out on the WAN link (IA_NA).
    pub const DHCP6_RANGE: (&str, &str) = ("2001:db8:0:1::1000", "2001:db8:0:1::1fff");
    /// The ISP's IPv6 web server (answers `client <address>` as [`HTTP`] does).
    pub const HTTP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 0x80);
    /// The pools the ISP delegates /56s from: the first at `up`, the second after
    /// `Lab::isp_renumber` (the ISP "changes the customer's prefix").
    pub const PD_POOLS: [(&str, u8); 2] = [("2001:db8:1200::", 40), ("2001:db8:3400::", 40)];
    /// The length of the delegated prefixes.
    pub const PD_LENGTH: u8 = 56;
}

/// One end of a veth pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct End {
    /// Namespace (full name).
    pub netns: String,
    /// Interface name inside it.
    pub ifname: String,
}

/// A veth pair; `bridge` enslaves end `b` to a bridge in its namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Veth {
    /// First end.
    pub a: End,
    /// Second end.
    pub b: End,
    /// Bridge in `b`'s namespace that `b` joins.
    pub bridge: Option<String>,
}

/// An address the lab puts on an interface (the firewall addresses its own; see below).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// Namespace.
    pub netns: String,
    /// Interface.
    pub ifname: String,
    /// Address with prefix (IPv6 ones are added without duplicate address detection).
    pub cidr: IpNet,
}

/// A default route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Namespace.
    pub netns: String,
    /// Gateway.
    pub via: IpAddr,
}

/// A household client namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// Namespace.
    pub netns: String,
    /// The zone it sits in.
    pub zone: String,
    /// Its static address (until it asks the router's DHCP server).
    pub address: Ipv4Addr,
}

/// The whole lab for one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Prefix of every namespace name (`roost` makes `roost-fw`, `roost-isp`, ...).
    pub prefix: String,
    /// Every namespace, in creation order.
    pub namespaces: Vec<String>,
    /// The namespace holding the zone bridges (the host's switch).
    pub switch: String,
    /// Bridges in `switch`.
    pub bridges: Vec<String>,
    /// Links.
    pub veths: Vec<Veth>,
    /// Addresses the lab assigns.
    pub addresses: Vec<Address>,
    /// Default routes the lab sets.
    pub routes: Vec<Route>,
    /// Client namespaces.
    pub clients: Vec<Client>,
}

/// The namespace that stands in for a service's VM.
pub fn service_netns(prefix: &str, service: Service) -> String {
    match service {
        Service::Firewall => format!("{prefix}-fw"),
        other => format!("{prefix}-{}", other.name()),
    }
}

/// The ISP namespace.
pub fn isp_netns(prefix: &str) -> String {
    format!("{prefix}-isp")
}

/// The client namespace of a zone.
pub fn client_netns(prefix: &str, zone: &str) -> String {
    format!("{prefix}-client-{zone}")
}

/// Every namespace name an instance may own, made or not: what `down` may remove.
pub fn owned_namespaces(prefix: &str, settings: &Settings) -> Vec<String> {
    plan(prefix, settings).namespaces
}

pub use roost_config::views::SERVICE_LINK_IFNAME;
/// The ISP's end of the WAN link.
pub const ISP_WAN_IFNAME: &str = "isp0";
/// A client's interface.
pub const CLIENT_IFNAME: &str = "eth0";

/// Derives the lab for `settings`.
pub fn plan(prefix: &str, settings: &Settings) -> Plan {
    let fw = service_netns(prefix, Service::Firewall);
    let isp = isp_netns(prefix);
    let switch = format!("{prefix}-sw");
    let view = settings.firewall_view();
    let mut namespaces = vec![switch.clone(), isp.clone()];
    namespaces.extend(
        settings
            .services()
            .iter()
            .map(|s| service_netns(prefix, *s)),
    );
    let mut veths = Vec::new();
    let mut addresses = Vec::new();
    let mut routes = Vec::new();
    let mut clients = Vec::new();
    let mut bridges = Vec::new();

    // WAN: the firewall's `wan` to the ISP; the firewall addresses its end itself.
    veths.push(Veth {
        a: End {
            netns: fw.clone(),
            ifname: view.wan.interface.clone(),
        },
        b: End {
            netns: isp.clone(),
            ifname: ISP_WAN_IFNAME.to_owned(),
        },
        bridge: None,
    });
    addresses.push(Address {
        netns: isp.clone(),
        ifname: ISP_WAN_IFNAME.to_owned(),
        cidr: Ipv4Net::new_assert(isp::GATEWAY, isp::WAN_PREFIX).into(),
    });
    for server in [isp::DNS, isp::HTTP] {
        addresses.push(Address {
            netns: isp.clone(),
            ifname: "lo".to_owned(),
            cidr: Ipv4Net::new_assert(server, 32).into(),
        });
    }

    // Zones: a bridge each, with the firewall, the dhcp VM (if the zone has a pool) and a
    // client on it.
    let dhcp_view = settings.dhcp_view();
    for zone in &view.zones {
        let bridge = format!("br-{}", zone.name);
        bridges.push(bridge.clone());
        let port = |who: &str| End {
            netns: switch.clone(),
            ifname: format!("{who}-{}", zone.name),
        };
        veths.push(Veth {
            a: End {
                netns: fw.clone(),
                ifname: zone.interface.clone(),
            },
            b: port("fw"),
            bridge: Some(bridge.clone()),
        });
        if let Some(dz) = dhcp_view.zones.iter().find(|d| d.name == zone.name) {
            let dhcp = service_netns(prefix, Service::Dhcp);
            veths.push(Veth {
                a: End {
                    netns: dhcp,
                    ifname: dz.interface.clone(),
                },
                b: port("dhcp"),
                bridge: Some(bridge.clone()),
            });
        }
        let client = client_netns(prefix, &zone.name);
        let address = client_address(settings, &zone.name);
        namespaces.push(client.clone());
        veths.push(Veth {
            a: End {
                netns: client.clone(),
                ifname: CLIENT_IFNAME.to_owned(),
            },
            b: port("cl"),
            bridge: Some(bridge),
        });
        addresses.push(Address {
            netns: client.clone(),
            ifname: CLIENT_IFNAME.to_owned(),
            cidr: Ipv4Net::new_assert(address, zone.subnet.prefix_len()).into(),
        });
        routes.push(Route {
            netns: client.clone(),
            via: zone.router.into(),
        });
        clients.push(Client {
            netns: client,
            zone: zone.name.clone(),
            address,
        });
    }

    // The Wi-Fi VM: a NIC on each zone bridge one of its networks joins, named after the zone
    // (its bridge inside the VM takes the networks' interfaces: ADR 0013).
    if let Some(wifi) = &settings.wifi {
        let ns = service_netns(prefix, Service::Wifi);
        let zones: std::collections::BTreeSet<&str> =
            wifi.networks.values().map(|n| n.zone.as_str()).collect();
        for zone in zones {
            veths.push(Veth {
                a: End {
                    netns: ns.clone(),
                    ifname: zone.to_owned(),
                },
                b: End {
                    netns: switch.clone(),
                    ifname: format!("wifi-{zone}"),
                },
                bridge: Some(format!("br-{zone}")),
            });
        }
    }

    // Service links: point to point, the firewall end addressed by the firewall. The service
    // VMs' addresses come from their views' `network`, exactly as a VM applies them.
    for link in &view.links {
        let netns = service_netns(prefix, link.service);
        veths.push(Veth {
            a: End {
                netns: fw.clone(),
                ifname: link.interface.clone(),
            },
            b: End {
                netns: netns.clone(),
                ifname: SERVICE_LINK_IFNAME.to_owned(),
            },
            bridge: None,
        });
        if let Some(network) = settings.vm_network(link.service) {
            for iface in network.interfaces {
                if let Some(v6) = iface.address6 {
                    addresses.push(Address {
                        netns: netns.clone(),
                        ifname: iface.name.clone(),
                        cidr: v6.into(),
                    });
                }
                addresses.push(Address {
                    netns: netns.clone(),
                    ifname: iface.name,
                    cidr: iface.address.into(),
                });
            }
            routes.extend(network.gateway6.map(|via| Route {
                netns: netns.clone(),
                via: via.into(),
            }));
            routes.push(Route {
                netns,
                via: network.gateway.into(),
            });
        }
    }

    Plan {
        prefix: prefix.to_owned(),
        namespaces,
        switch,
        bridges,
        veths,
        addresses,
        routes,
        clients,
    }
}

/// A client's static address: just below the zone's DHCP pool (so DHCP never hands it out),
/// or the tenth address after the router in a zone without a pool.
pub fn client_address(settings: &Settings, zone: &str) -> Ipv4Addr {
    let Some(z) = settings.zones.get(zone) else {
        return Ipv4Addr::UNSPECIFIED;
    };
    match &z.dhcp {
        Some(pool) => Ipv4Addr::from(u32::from(pool.pool_start).saturating_sub(1)),
        None => Ipv4Addr::from(u32::from(z.router).saturating_add(10)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Settings {
        Settings::from_toml("roost.toml", include_str!("../../../examples/roost.toml")).unwrap()
    }

    #[test]
    fn makes_a_namespace_per_service_the_isp_the_switch_and_each_zone_client() {
        let p = plan("roost", &example());
        for ns in [
            "roost-sw",
            "roost-isp",
            "roost-fw",
            "roost-dns",
            "roost-dhcp",
            "roost-web",
            "roost-mqtt",
            "roost-update",
            "roost-client-lan",
            "roost-client-iot",
            "roost-client-guest",
        ] {
            assert!(p.namespaces.contains(&ns.to_owned()), "{ns} missing");
        }
        assert_eq!(p.namespaces.len(), 11);
    }

    #[test]
    fn interface_names_fit_the_kernel_limit() {
        let p = plan("roost", &example());
        for v in &p.veths {
            for end in [&v.a, &v.b] {
                assert!(end.ifname.len() <= 15, "{}", end.ifname);
            }
        }
    }

    #[test]
    fn every_service_has_its_own_link_to_the_firewall() {
        let s = example();
        let p = plan("roost", &s);
        for service in s.services().into_iter().filter(|s| *s != Service::Firewall) {
            let ns = service_netns("roost", service);
            let link: Vec<&Veth> = p.veths.iter().filter(|v| v.b.netns == ns).collect();
            assert_eq!(link.len(), 1, "{service}");
            assert_eq!(link[0].a.netns, "roost-fw");
            assert!(
                link[0].bridge.is_none(),
                "{service} must not share a bridge"
            );
            // A default route each way, both via the firewall's end of the link.
            let link = s.service_link(service).unwrap();
            let mut vias: Vec<IpAddr> = p
                .routes
                .iter()
                .filter(|r| r.netns == ns)
                .map(|r| r.via)
                .collect();
            vias.sort();
            assert_eq!(
                vias,
                vec![
                    IpAddr::from(link.firewall),
                    IpAddr::from(link.v6.unwrap().firewall)
                ]
            );
        }
    }

    #[test]
    fn clients_sit_outside_the_pool_on_their_zone_bridge() {
        let s = example();
        let p = plan("roost", &s);
        let lan = p.clients.iter().find(|c| c.zone == "lan").unwrap();
        assert_eq!(lan.address, Ipv4Addr::new(192, 168, 1, 99));
        let port = p.veths.iter().find(|v| v.a.netns == lan.netns).unwrap();
        assert_eq!(port.bridge.as_deref(), Some("br-lan"));
    }
}
