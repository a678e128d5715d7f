//! The local zone: names the router answers itself and never sends upstream.
//!
//! - `<hostname>.<domain>` (and the bare `<hostname>`): the router address of the asker's zone
//!   (all router addresses for an asker in no zone).
//! - Static hosts from the settings (`dns.hosts`; a bare label is qualified with the domain, a
//!   full name is answered as is and overrides upstream).
//! - Lease names pushed by the DHCP server (`PUT /local-names`), always under the domain.
//! - PTR for all of them; reverse names of private, loopback and link-local IPv4 space are
//!   answered here too (RFC 6303), NXDOMAIN when unknown.
//! - Anything else under the domain, single-label names, `localhost` and `invalid` (RFC 6761)
//!   are answered here: NXDOMAIN or NODATA with an SOA.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::Ipv4Net;
use roost_config::views::{DnsView, ZoneNet};
use serde::{Deserialize, Serialize};

use crate::wire::{
    TYPE_A, TYPE_AAAA, TYPE_ANY, TYPE_PTR, encode_name, is_subdomain, labels, name_to_string,
    reverse_name_v4, reverse_name_v6, reverse_v4,
};

/// TTL of local answers (lease names change; keep clients' caches short).
pub const LOCAL_TTL: u32 = 60;

/// One name pushed by the DHCP server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalName {
    /// A host label (`laptop`) or a full name under the router's domain (`laptop.home.arpa`).
    pub name: String,
    /// Its address.
    pub address: IpAddr,
}

/// Body of `PUT /local-names`: the complete set of lease names (it replaces the previous one).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalNames {
    /// Every lease name.
    pub names: Vec<LocalName>,
}

/// A pushed or configured name that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocalNameError {
    /// Not a valid host name.
    #[error("`{0}` is not a valid host name")]
    Invalid(String),
    /// A lease name outside the router's domain (a DHCP client may not claim `www.bank.example`).
    #[error("`{name}` is not under the local domain `{domain}`")]
    OutsideDomain {
        /// The name.
        name: String,
        /// The domain.
        domain: String,
    },
}

/// What the local zone says about a question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Local {
    /// These addresses (already filtered by the question type).
    Addresses(Vec<IpAddr>),
    /// These PTR targets (wire names).
    Ptr(Vec<Vec<u8>>),
    /// The name exists but has no record of this type.
    NoData,
    /// The name does not exist.
    NxDomain,
}

/// An answer with the zone whose SOA goes into a negative reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalAnswer {
    /// The answer.
    pub answer: Local,
    /// The local zone it comes from (wire name), for the SOA of negative answers.
    pub zone: Vec<u8>,
}

/// The local zone.
#[derive(Debug, Clone)]
pub struct LocalZone {
    domain: Vec<u8>,
    domain_text: String,
    router_name: Vec<u8>,
    hostname: Vec<u8>,
    zones: Vec<ZoneNet>,
    statics: HashMap<Vec<u8>, Vec<IpAddr>>,
    leases: HashMap<Vec<u8>, Vec<IpAddr>>,
    ptr: HashMap<IpAddr, Vec<Vec<u8>>>,
    lease_list: Vec<LocalName>,
    /// The IPv6 addresses the firewall sees beside each IPv4 one (same MAC in its neighbour
    /// tables): a lease name gets AAAA records for them.
    neighbours: HashMap<Ipv4Addr, Vec<Ipv6Addr>>,
}

/// Body of `PUT /neighbours` (from the firewall): the hosts it sees with both an IPv4 and
/// IPv6 addresses. Replaces the previous set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Neighbours {
    /// Every host seen with both families.
    pub hosts: Vec<NeighbourHost>,
}

/// One host of [`Neighbours`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeighbourHost {
    /// Its IPv4 address (a lease's).
    pub ipv4: Ipv4Addr,
    /// Its global and ULA IPv6 addresses.
    pub ipv6: Vec<Ipv6Addr>,
}

/// Most hosts and addresses per host taken from one `PUT /neighbours`.
pub const MAX_NEIGHBOURS: usize = 4096;
/// See [`MAX_NEIGHBOURS`].
pub const MAX_ADDRESSES_PER_NEIGHBOUR: usize = 16;

fn private_v4(ip: Ipv4Addr) -> bool {
    ip.is_private() || ip.is_loopback() || ip.is_link_local()
}

impl LocalZone {
    /// The local zone of a view; static hosts that are not valid names are skipped (the
    /// settings validator rejects them before they get here).
    pub fn new(view: &DnsView) -> Self {
        let domain = encode_name(&view.domain).unwrap_or_else(|| vec![0]);
        let hostname = encode_name(&view.hostname).unwrap_or_else(|| vec![0]);
        let router_name = qualify(&hostname, &domain);
        let mut statics: HashMap<Vec<u8>, Vec<IpAddr>> = HashMap::new();
        for h in &view.dns.hosts {
            let Some(w) = encode_name(&h.name) else {
                tracing::warn!(name = %h.name, "static host name is not valid; skipped");
                continue;
            };
            let full = if labels(&w).count() == 1 {
                qualify(&w, &domain)
            } else {
                w
            };
            statics.entry(full).or_default().push(h.address);
        }
        let mut zone = Self {
            domain_text: name_to_string(&domain),
            domain,
            router_name,
            hostname,
            zones: view.zones.clone(),
            statics,
            leases: HashMap::new(),
            ptr: HashMap::new(),
            lease_list: Vec::new(),
            neighbours: HashMap::new(),
        };
        zone.rebuild_ptr();
        zone
    }

    /// Replaces the lease names; on error nothing changes.
    pub fn set_leases(&mut self, names: &LocalNames) -> Result<(), LocalNameError> {
        let mut leases: HashMap<Vec<u8>, Vec<IpAddr>> = HashMap::new();
        for n in &names.names {
            let w = encode_name(&n.name).ok_or_else(|| LocalNameError::Invalid(n.name.clone()))?;
            let full = if labels(&w).count() == 1 {
                qualify(&w, &self.domain)
            } else if is_subdomain(&w, &self.domain) && w != self.domain {
                w
            } else {
                return Err(LocalNameError::OutsideDomain {
                    name: n.name.clone(),
                    domain: self.domain_text.clone(),
                });
            };
            let addrs = leases.entry(full).or_default();
            if !addrs.contains(&n.address) {
                addrs.push(n.address);
            }
        }
        self.leases = leases;
        self.lease_list = names.names.clone();
        self.add_neighbours();
        self.rebuild_ptr();
        Ok(())
    }

    /// Replaces the firewall's neighbours: lease names get AAAA records for the IPv6
    /// addresses of their IPv4 address's host. Link-local, multicast and unspecified addresses
    /// are left out; at most [`MAX_NEIGHBOURS`] hosts and [`MAX_ADDRESSES_PER_NEIGHBOUR`]
    /// addresses each are taken.
    pub fn set_neighbours(&mut self, n: &Neighbours) {
        let usable = |a: &&Ipv6Addr| {
            !(a.is_unspecified()
                || a.is_loopback()
                || a.is_multicast()
                || a.is_unicast_link_local())
        };
        self.neighbours = n
            .hosts
            .iter()
            .take(MAX_NEIGHBOURS)
            .map(|h| {
                let v6 = h
                    .ipv6
                    .iter()
                    .filter(usable)
                    .take(MAX_ADDRESSES_PER_NEIGHBOUR);
                (h.ipv4, v6.copied().collect())
            })
            .collect();
        let names = LocalNames {
            names: self.lease_list.clone(),
        };
        // The lease names were accepted before; rebuilding them cannot fail.
        let _ = self.set_leases(&names);
    }

    fn add_neighbours(&mut self) {
        for addrs in self.leases.values_mut() {
            let v6: Vec<IpAddr> = addrs
                .iter()
                .filter_map(|a| match a {
                    IpAddr::V4(v4) => self.neighbours.get(v4),
                    IpAddr::V6(_) => None,
                })
                .flatten()
                .map(|a| IpAddr::V6(*a))
                .collect();
            for a in v6 {
                if !addrs.contains(&a) {
                    addrs.push(a);
                }
            }
        }
    }

    /// Carries the lease names over from the previous zone (after a config change).
    pub fn keep_leases_from(&mut self, old: &Self) {
        self.neighbours.clone_from(&old.neighbours);
        let names = LocalNames {
            names: old.lease_list.clone(),
        };
        if self.set_leases(&names).is_err() {
            tracing::warn!("lease names do not fit the new domain; dropped");
        }
    }

    /// The lease names, for `/state`.
    pub fn lease_names(&self) -> &[LocalName] {
        &self.lease_list
    }

    /// Every local name with its addresses, for `/state`.
    pub fn names(&self) -> BTreeMap<String, Vec<IpAddr>> {
        let mut out = BTreeMap::new();
        for (k, v) in self.statics.iter().chain(self.leases.iter()) {
            out.entry(name_to_string(k))
                .or_insert_with(Vec::new)
                .extend(v.iter().copied());
        }
        out.insert(
            name_to_string(&self.router_name),
            self.zones.iter().map(|z| IpAddr::V4(z.router)).collect(),
        );
        out
    }

    fn rebuild_ptr(&mut self) {
        let mut ptr: HashMap<IpAddr, Vec<Vec<u8>>> = HashMap::new();
        for z in &self.zones {
            ptr.entry(IpAddr::V4(z.router))
                .or_default()
                .push(self.router_name.clone());
        }
        for (name, addrs) in self.statics.iter().chain(self.leases.iter()) {
            for a in addrs {
                let names = ptr.entry(*a).or_default();
                if !names.contains(name) {
                    names.push(name.clone());
                }
            }
        }
        self.ptr = ptr;
    }

    fn router_addresses(&self, client: IpAddr) -> Vec<IpAddr> {
        let v4 = match client {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(a) => a.to_ipv4_mapped(),
        };
        if let Some(z) = v4.and_then(|c| self.zones.iter().find(|z| z.subnet.contains(&c))) {
            return vec![IpAddr::V4(z.router)];
        }
        self.zones.iter().map(|z| IpAddr::V4(z.router)).collect()
    }

    /// What the local zone answers for `name` (lowercased wire) / `qtype`, asked by `client`;
    /// `None` means the name is not local and may go upstream.
    pub fn lookup(&self, name: &[u8], qtype: u16, client: IpAddr) -> Option<LocalAnswer> {
        let reverse = encode_name("in-addr.arpa").unwrap_or_default();
        if is_subdomain(name, &reverse) {
            return self.lookup_reverse_v4(name, qtype, reverse);
        }
        let ip6_reverse = encode_name("ip6.arpa").unwrap_or_default();
        if is_subdomain(name, &ip6_reverse) {
            let hit = self
                .ptr
                .iter()
                .find(|(a, _)| matches!(a, IpAddr::V6(v6) if reverse_name_v6(*v6) == name));
            return hit.map(|(_, names)| LocalAnswer {
                answer: filter_ptr(names, qtype),
                zone: ip6_reverse,
            });
        }
        let answer_for = |addrs: &[IpAddr]| LocalAnswer {
            answer: filter_addresses(addrs, qtype),
            zone: self.domain.clone(),
        };
        if let Some(addrs) = self.statics.get(name) {
            return Some(answer_for(addrs));
        }
        let single = labels(name).count() == 1;
        let full = if single {
            qualify(name, &self.domain)
        } else {
            name.to_vec()
        };
        if single && name == self.hostname.as_slice() || full == self.router_name {
            return Some(answer_for(&self.router_addresses(client)));
        }
        if let Some(addrs) = self.statics.get(&full).or_else(|| self.leases.get(&full)) {
            return Some(answer_for(addrs));
        }
        let localhost = encode_name("localhost").unwrap_or_default();
        if is_subdomain(name, &localhost) {
            let addrs = [
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ];
            return Some(LocalAnswer {
                answer: filter_addresses(&addrs, qtype),
                zone: localhost,
            });
        }
        let invalid = encode_name("invalid").unwrap_or_default();
        if is_subdomain(name, &invalid) {
            return Some(LocalAnswer {
                answer: Local::NxDomain,
                zone: invalid,
            });
        }
        if name == self.domain.as_slice() {
            return Some(LocalAnswer {
                answer: Local::NoData,
                zone: self.domain.clone(),
            });
        }
        if single || is_subdomain(name, &self.domain) {
            return Some(LocalAnswer {
                answer: Local::NxDomain,
                zone: self.domain.clone(),
            });
        }
        None
    }

    fn lookup_reverse_v4(&self, name: &[u8], qtype: u16, zone: Vec<u8>) -> Option<LocalAnswer> {
        if let Some(ip) = reverse_v4(name) {
            if let Some(names) = self.ptr.get(&IpAddr::V4(ip)) {
                return Some(LocalAnswer {
                    answer: filter_ptr(names, qtype),
                    zone,
                });
            }
            let ours = private_v4(ip) || self.zones.iter().any(|z| z.subnet.contains(&ip));
            return ours.then_some(LocalAnswer {
                answer: Local::NxDomain,
                zone,
            });
        }
        // A reverse name above the addresses (`168.192.in-addr.arpa`): an empty non-terminal
        // when it lies inside private space.
        let octets: Vec<u8> = labels(name)
            .take_while(|l| !l.eq_ignore_ascii_case(b"in-addr"))
            .filter_map(|l| std::str::from_utf8(l).ok()?.parse().ok())
            .collect();
        let prefix = octets.len();
        if prefix == 0 || prefix > 3 {
            return None;
        }
        let mut o = [0u8; 4];
        for (i, v) in octets.iter().rev().enumerate() {
            o[i] = *v;
        }
        let net = Ipv4Net::new(Ipv4Addr::from(o), (prefix * 8) as u8).ok()?;
        let private = [
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "127.0.0.0/8",
        ]
        .iter()
        .filter_map(|p| p.parse::<Ipv4Net>().ok())
        .any(|p| p.contains(&net) || net.contains(&p));
        private.then_some(LocalAnswer {
            answer: Local::NoData,
            zone,
        })
    }

    /// The local domain (wire).
    pub fn domain(&self) -> &[u8] {
        &self.domain
    }

    /// The PTR name of an address, for tests and `/state`.
    pub fn reverse_of(addr: IpAddr) -> Vec<u8> {
        match addr {
            IpAddr::V4(a) => reverse_name_v4(a),
            IpAddr::V6(a) => reverse_name_v6(a),
        }
    }
}

fn qualify(label: &[u8], domain: &[u8]) -> Vec<u8> {
    let mut full = label[..label.len().saturating_sub(1)].to_vec();
    full.extend_from_slice(domain);
    full
}

fn filter_addresses(addrs: &[IpAddr], qtype: u16) -> Local {
    let picked: Vec<IpAddr> = addrs
        .iter()
        .copied()
        .filter(|a| match qtype {
            TYPE_A => a.is_ipv4(),
            TYPE_AAAA => a.is_ipv6(),
            TYPE_ANY => true,
            _ => false,
        })
        .collect();
    if picked.is_empty() {
        Local::NoData
    } else {
        Local::Addresses(picked)
    }
}

fn filter_ptr(names: &[Vec<u8>], qtype: u16) -> Local {
    if qtype == TYPE_PTR || qtype == TYPE_ANY {
        Local::Ptr(names.to_vec())
    } else {
        Local::NoData
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roost_config::Settings;
    use roost_config::settings::HostRecord;

    fn zone() -> LocalZone {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/roost.toml"
        ))
        .unwrap();
        let mut view = Settings::from_toml("roost.toml", &text).unwrap().dns_view();
        view.dns.hosts.push(HostRecord {
            name: "nas.example.org".into(),
            address: "192.168.1.10".parse().unwrap(),
        });
        LocalZone::new(&view)
    }

    fn w(n: &str) -> Vec<u8> {
        encode_name(n).unwrap()
    }

    fn full(z: &LocalZone, label: &str) -> Vec<u8> {
        qualify(&w(label), z.domain())
    }

    #[test]
    fn router_name_answers_the_askers_zone_address() {
        let z = zone();
        let lan: IpAddr = "192.168.1.99".parse().unwrap();
        let name = z.router_name.clone();
        let a = z.lookup(&name, TYPE_A, lan).unwrap();
        assert_eq!(
            a.answer,
            Local::Addresses(vec!["192.168.1.1".parse().unwrap()])
        );
        let iot_router = z.zones.iter().find(|n| n.name == "iot").unwrap().router;
        let iot_client = IpAddr::V4(Ipv4Addr::from(u32::from(iot_router) + 50));
        let a = z.lookup(&name, TYPE_A, iot_client).unwrap();
        assert_eq!(a.answer, Local::Addresses(vec![IpAddr::V4(iot_router)]));
        assert_eq!(
            z.lookup(&name, TYPE_AAAA, lan).unwrap().answer,
            Local::NoData
        );
    }

    #[test]
    fn static_hosts_and_their_ptr_are_local() {
        let z = zone();
        let lan: IpAddr = "192.168.1.99".parse().unwrap();
        let printer = full(&z, "printer");
        assert_eq!(
            z.lookup(&printer, TYPE_A, lan).unwrap().answer,
            Local::Addresses(vec!["192.168.1.20".parse().unwrap()])
        );
        assert_eq!(
            z.lookup(&w("printer"), TYPE_A, lan).unwrap().answer,
            Local::Addresses(vec!["192.168.1.20".parse().unwrap()])
        );
        let rev = reverse_name_v4("192.168.1.20".parse().unwrap());
        assert_eq!(
            z.lookup(&rev, TYPE_PTR, lan).unwrap().answer,
            Local::Ptr(vec![printer])
        );
        assert!(z.lookup(&w("nas.example.org"), TYPE_A, lan).is_some());
    }

    #[test]
    fn a_lease_name_gets_aaaa_records_for_its_hosts_ipv6_addresses_in_either_order() {
        let mut z = zone();
        let lan: IpAddr = "192.168.1.99".parse().unwrap();
        let neighbours = Neighbours {
            hosts: vec![NeighbourHost {
                ipv4: "192.168.1.50".parse().unwrap(),
                ipv6: vec![
                    "fd12:3456:789a:1::50".parse().unwrap(),
                    "fe80::50".parse().unwrap(),
                    "2001:db8:1200:1::50".parse().unwrap(),
                ],
            }],
        };
        // Neighbours first, the lease after: the AAAA appear once the name does.
        z.set_neighbours(&neighbours);
        z.set_leases(&LocalNames {
            names: vec![LocalName {
                name: "laptop".into(),
                address: "192.168.1.50".parse().unwrap(),
            }],
        })
        .unwrap();
        let laptop = full(&z, "laptop");
        let want: Vec<IpAddr> = vec![
            "fd12:3456:789a:1::50".parse().unwrap(),
            "2001:db8:1200:1::50".parse().unwrap(),
        ];
        assert_eq!(
            z.lookup(&laptop, TYPE_AAAA, lan).unwrap().answer,
            Local::Addresses(want.clone()),
            "link-local left out"
        );
        assert_eq!(
            z.lookup(&laptop, TYPE_A, lan).unwrap().answer,
            Local::Addresses(vec!["192.168.1.50".parse().unwrap()])
        );
        // PTR for the v6 address too.
        let IpAddr::V6(v6) = want[1] else {
            unreachable!()
        };
        assert_eq!(
            z.lookup(&reverse_name_v6(v6), TYPE_PTR, lan)
                .unwrap()
                .answer,
            Local::Ptr(vec![laptop.clone()])
        );
        // The firewall stops seeing the host: the AAAA go, the A stays.
        z.set_neighbours(&Neighbours::default());
        assert_eq!(
            z.lookup(&laptop, TYPE_AAAA, lan).unwrap().answer,
            Local::NoData
        );
        assert!(matches!(
            z.lookup(&laptop, TYPE_A, lan).unwrap().answer,
            Local::Addresses(a) if a.len() == 1
        ));
    }

    #[test]
    fn leases_replace_each_other_and_must_stay_in_the_domain() {
        let mut z = zone();
        let lan: IpAddr = "192.168.1.99".parse().unwrap();
        let push = |n: &str, a: &str| LocalNames {
            names: vec![LocalName {
                name: n.into(),
                address: a.parse().unwrap(),
            }],
        };
        z.set_leases(&push("laptop", "192.168.1.50")).unwrap();
        let laptop = full(&z, "laptop");
        assert!(matches!(
            z.lookup(&laptop, TYPE_A, lan).unwrap().answer,
            Local::Addresses(_)
        ));
        z.set_leases(&push("phone", "192.168.1.51")).unwrap();
        assert_eq!(
            z.lookup(&laptop, TYPE_A, lan).unwrap().answer,
            Local::NxDomain
        );
        let err = z.set_leases(&push("www.bank.example", "192.168.1.52"));
        assert!(matches!(err, Err(LocalNameError::OutsideDomain { .. })));
        assert!(z.set_leases(&push("bad name", "192.168.1.52")).is_err());
        assert!(
            matches!(
                z.lookup(&full(&z, "phone"), TYPE_A, lan).unwrap().answer,
                Local::Addresses(_)
            ),
            "a rejected push changes nothing"
        );
    }

    #[test]
    fn unknown_local_and_private_reverse_names_never_go_upstream() {
        let z = zone();
        let lan: IpAddr = "192.168.1.99".parse().unwrap();
        assert_eq!(
            z.lookup(&full(&z, "nothing"), TYPE_A, lan).unwrap().answer,
            Local::NxDomain
        );
        assert_eq!(
            z.lookup(&w("nothing"), TYPE_A, lan).unwrap().answer,
            Local::NxDomain
        );
        let rev = reverse_name_v4("10.1.2.3".parse().unwrap());
        assert_eq!(
            z.lookup(&rev, TYPE_PTR, lan).unwrap().answer,
            Local::NxDomain
        );
        assert_eq!(
            z.lookup(&w("168.192.in-addr.arpa"), TYPE_PTR, lan)
                .unwrap()
                .answer,
            Local::NoData
        );
        assert!(z.lookup(&w("www.isp.test"), TYPE_A, lan).is_none());
        let public = reverse_name_v4("198.51.100.53".parse().unwrap());
        assert!(z.lookup(&public, TYPE_PTR, lan).is_none());
        assert!(matches!(
            z.lookup(&w("localhost"), TYPE_A, lan).unwrap().answer,
            Local::Addresses(_)
        ));
    }
}
