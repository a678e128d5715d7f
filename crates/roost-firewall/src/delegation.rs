//! What the ISP's DHCPv6 lease means for the router, sans-IO: the delegated prefix in use, the
//! withdrawn ones still being deprecated, and from them each zone's /64, what its router
//! advertisements say and the `ip` commands that address the router.
//!
//! On a prefix change (RFC 9096): the new prefix is used at once; the old one stays on the
//! zones' advertisements with preferred lifetime 0 and a valid lifetime counting down from at
//! most two hours (hosts never cut a valid lifetime below two hours from an unauthenticated
//! advertisement anyway, RFC 4862 §5.5.3 e), so hosts stop opening connections from it at
//! once and drop it when it runs out. The router's own address in the old /64 goes at once:
//! the ISP no longer routes it.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use ipnet::Ipv6Net;
use roost_config::settings::router_address;
use roost_config::views::FirewallView;

use crate::dhcp6::{Lease, Timed};
use crate::ra::{Delegated, ZoneAdvert};

/// How long a withdrawn prefix is still advertised (deprecated) at most.
pub const DEPRECATED_FOR: Duration = Duration::from_secs(2 * 3600);

/// A delegated prefix and its lifetimes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    /// The prefix the ISP delegated (a /48 to /64).
    pub net: Ipv6Net,
    /// Until when it is preferred.
    pub preferred_until: Instant,
    /// Until when it is valid.
    pub valid_until: Instant,
}

/// The WAN's IPv6 as leased.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wan6 {
    /// The router's WAN address and its lifetimes.
    pub address: Option<Timed<Ipv6Addr>>,
    /// When `address` was leased (its lifetimes count from here).
    pub obtained: Option<Instant>,
    /// The prefix in use.
    pub current: Option<Prefix>,
    /// Withdrawn prefixes, deprecated until they run out.
    pub deprecated: Vec<Prefix>,
}

impl Wan6 {
    /// Takes a new lease (or its loss, `None`) at `now`; returns whether the prefix in use
    /// changed (the ruleset and the zone addresses follow it).
    pub fn update(&mut self, lease: Option<&Lease>, now: Instant) -> bool {
        self.address = lease.and_then(|l| l.address);
        self.obtained = lease.map(|l| l.obtained);
        let new = lease.and_then(|l| {
            let p = l.prefix()?;
            Some(Prefix {
                net: p.value,
                preferred_until: l.obtained + p.preferred,
                valid_until: l.obtained + p.valid,
            })
        });
        let changed = new.map(|p| p.net) != self.current.map(|p| p.net);
        if changed && let Some(old) = self.current.take() {
            self.deprecated.retain(|d| d.net != old.net);
            self.deprecated.push(Prefix {
                net: old.net,
                preferred_until: now,
                valid_until: old.valid_until.min(now + DEPRECATED_FOR),
            });
        }
        if let Some(p) = new {
            self.deprecated.retain(|d| d.net != p.net);
        }
        self.current = new;
        self.expire(now);
        changed
    }

    /// Forgets deprecated prefixes that ran out.
    pub fn expire(&mut self, now: Instant) {
        self.deprecated.retain(|d| d.valid_until > now);
    }

    /// The prefix in use, if any.
    pub fn prefix(&self) -> Option<Ipv6Net> {
        self.current.map(|p| p.net)
    }

    /// What each IPv6 zone interface advertises.
    pub fn adverts(&self, view: &FirewallView) -> std::collections::BTreeMap<String, ZoneAdvert> {
        view.zones
            .iter()
            .filter_map(|z| {
                let v6 = z.ipv6?;
                let delegated = self
                    .current
                    .iter()
                    .chain(&self.deprecated)
                    .filter_map(|p| {
                        Some(Delegated {
                            prefix: v6.delegated_subnet(p.net)?,
                            preferred_until: p.preferred_until,
                            valid_until: p.valid_until,
                        })
                    })
                    .collect();
                Some((
                    z.interface.clone(),
                    ZoneAdvert {
                        ula: Some(v6.subnet),
                        delegated,
                        other_config: z.dhcpv6,
                        // The resolver at the router's ULA address, when DNS is offered over
                        // IPv6 there (RFC 8106; hosts without DHCPv6, such as Android, need it).
                        dns_servers: view
                            .published
                            .iter()
                            .any(|p| p.port == 53 && p.to6.is_some() && p.zones.contains(&z.name))
                            .then_some(v6.router)
                            .into_iter()
                            .collect(),
                        search: (!view.domain.is_empty())
                            .then(|| view.domain.clone())
                            .into_iter()
                            .collect(),
                    },
                ))
            })
            .collect()
    }

    /// `ip -batch` lines that put the lease in place on interfaces in `existing`: the WAN
    /// address, an unreachable route for the whole delegated prefix (RFC 7084 WPD-5: the /64s
    /// no zone uses must not loop back to the ISP), and the router's `::1` in each zone's /64,
    /// with the lease's lifetimes so the kernel drops them by itself if the daemon cannot.
    pub fn plan(&self, view: &FirewallView, existing: &[String], now: Instant) -> Vec<String> {
        let mut plan = Vec::new();
        let wan = &view.wan.interface;
        let secs = |until: Instant| until.saturating_duration_since(now).as_secs().max(1);
        if let (Some(a), Some(obtained)) = (self.address, self.obtained)
            && existing.contains(wan)
        {
            plan.push(format!(
                "addr replace {}/128 dev {wan} valid_lft {} preferred_lft {}",
                a.value,
                secs(obtained + a.valid),
                secs(obtained + a.preferred).min(secs(obtained + a.valid))
            ));
        }
        if let Some(p) = self.current {
            plan.push(format!("route replace unreachable {}", p.net));
            for z in &view.zones {
                let Some(subnet) = z.ipv6.and_then(|v6| v6.delegated_subnet(p.net)) else {
                    continue;
                };
                if existing.contains(&z.interface) {
                    // `nodad`: the prefix is ours alone; a tentative address would leave the
                    // zone unrouted for a second after every renumbering.
                    plan.push(format!(
                        "addr replace {}/64 dev {} valid_lft {} preferred_lft {} nodad",
                        router_address(subnet),
                        z.interface,
                        secs(p.valid_until),
                        secs(p.preferred_until).min(secs(p.valid_until))
                    ));
                }
            }
        }
        plan
    }

    /// `ip -batch` lines that remove what `before` put in place and this lease no longer has
    /// (run on their own, failures only logged: the kernel may have expired them already).
    pub fn removals(&self, before: &Self, view: &FirewallView) -> Vec<String> {
        let mut plan = Vec::new();
        let wan = &view.wan.interface;
        if let Some(old) = before.address
            && self.address.map(|a| a.value) != Some(old.value)
        {
            plan.push(format!("addr del {}/128 dev {wan}", old.value));
        }
        if let Some(old) = before.current
            && self.prefix() != Some(old.net)
        {
            plan.push(format!("route del unreachable {}", old.net));
            for z in &view.zones {
                if let Some(subnet) = z.ipv6.and_then(|v6| v6.delegated_subnet(old.net)) {
                    plan.push(format!(
                        "addr del {}/64 dev {}",
                        router_address(subnet),
                        z.interface
                    ));
                }
            }
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> FirewallView {
        let text = include_str!("../../../examples/roost.toml");
        roost_config::Settings::from_toml("roost.toml", text)
            .unwrap()
            .firewall_view()
    }

    fn lease(now: Instant, prefix: &str) -> Lease {
        Lease {
            address: Some(Timed {
                value: "2001:db8:0:1::1000".parse().unwrap(),
                preferred: Duration::from_secs(3000),
                valid: Duration::from_secs(4000),
            }),
            prefixes: vec![Timed {
                value: prefix.parse().unwrap(),
                preferred: Duration::from_secs(3000),
                valid: Duration::from_secs(40_000),
            }],
            dns: Vec::new(),
            obtained: now,
            t1: None,
            t2: None,
            server: Vec::new(),
        }
    }

    fn existing() -> Vec<String> {
        ["wan", "lan", "iot", "guest"].map(str::to_owned).to_vec()
    }

    #[test]
    fn each_zone_gets_the_slash_64_at_its_index_of_the_delegated_prefix() {
        let now = Instant::now();
        let mut w = Wan6::default();
        assert!(w.update(Some(&lease(now, "2001:db8:1200::/56")), now));
        let plan = w.plan(&view(), &existing(), now);
        assert_eq!(
            plan[0],
            "addr replace 2001:db8:0:1::1000/128 dev wan valid_lft 4000 preferred_lft 3000"
        );
        assert!(plan.contains(&"route replace unreachable 2001:db8:1200::/56".to_owned()));
        // lan is index 1, iot 20, guest 30 in the example (their IPv4 subnets' third number).
        for (zone, subnet) in [
            ("lan", "2001:db8:1200:1::1/64"),
            ("iot", "2001:db8:1200:14::1/64"),
            ("guest", "2001:db8:1200:1e::1/64"),
        ] {
            let line = format!(
                "addr replace {subnet} dev {zone} valid_lft 40000 preferred_lft 3000 nodad"
            );
            assert!(plan.contains(&line), "{line} in {plan:#?}");
        }
        let ads = w.adverts(&view());
        let lan = &ads["lan"];
        assert_eq!(lan.ula.unwrap().to_string(), "fd12:3456:789a:1::/64");
        assert_eq!(
            lan.dns_servers,
            vec!["fd12:3456:789a:1::1".parse::<Ipv6Addr>().unwrap()]
        );
        assert_eq!(lan.search, vec!["home.arpa".to_owned()]);
        assert!(
            lan.other_config,
            "the lan has a dhcp pool: stateless DHCPv6"
        );
        assert_eq!(lan.delegated[0].prefix.to_string(), "2001:db8:1200:1::/64");
    }

    #[test]
    fn a_zone_whose_index_the_prefix_cannot_hold_keeps_only_its_ula() {
        let now = Instant::now();
        let mut w = Wan6::default();
        // A /60 holds 16 /64s: lan (1) fits, iot (20) and guest (30) do not.
        w.update(Some(&lease(now, "2001:db8:1200:10::/60")), now);
        let ads = w.adverts(&view());
        assert_eq!(ads["lan"].delegated.len(), 1);
        assert_eq!(
            ads["lan"].delegated[0].prefix.to_string(),
            "2001:db8:1200:11::/64"
        );
        assert!(ads["iot"].delegated.is_empty());
        assert!(ads["guest"].delegated.is_empty());
        let plan = w.plan(&view(), &existing(), now);
        assert!(!plan.iter().any(|l| l.contains("dev iot")), "{plan:#?}");
    }

    #[test]
    fn a_new_prefix_is_used_at_once_and_the_old_one_deprecated_for_at_most_two_hours() {
        let now = Instant::now();
        let mut w = Wan6::default();
        w.update(Some(&lease(now, "2001:db8:1200::/56")), now);
        let before = w.clone();
        let later = now + Duration::from_secs(60);
        // Renewed, same prefix: nothing changes.
        assert!(!w.update(Some(&lease(later, "2001:db8:1200::/56")), later));
        assert!(w.removals(&before, &view()).is_empty());
        let before = w.clone();
        assert!(w.update(Some(&lease(later, "2001:db8:3400::/56")), later));
        assert_eq!(w.prefix().unwrap().to_string(), "2001:db8:3400::/56");
        assert_eq!(w.deprecated.len(), 1);
        assert_eq!(w.deprecated[0].preferred_until, later);
        assert_eq!(w.deprecated[0].valid_until, later + DEPRECATED_FOR);
        let ads = w.adverts(&view());
        let lan = ads["lan"].advert(later);
        let got: Vec<(String, u32)> = lan
            .prefixes
            .iter()
            .map(|p| (p.prefix.to_string(), p.preferred_lifetime))
            .collect();
        assert_eq!(
            got,
            vec![
                ("fd12:3456:789a:1::/64".to_owned(), 14_400),
                ("2001:db8:3400:1::/64".to_owned(), 2_700),
                ("2001:db8:1200:1::/64".to_owned(), 0),
            ]
        );
        let removals = w.removals(&before, &view());
        assert!(removals.contains(&"route del unreachable 2001:db8:1200::/56".to_owned()));
        assert!(removals.contains(&"addr del 2001:db8:1200:1::1/64 dev lan".to_owned()));
        assert!(!removals.iter().any(|l| l.contains("3400")));
        // Two hours on, the old one is gone.
        w.expire(later + DEPRECATED_FOR);
        assert!(w.deprecated.is_empty());
    }

    #[test]
    fn losing_the_lease_deprecates_the_prefix_and_a_returning_prefix_is_current_again() {
        let now = Instant::now();
        let mut w = Wan6::default();
        w.update(Some(&lease(now, "2001:db8:1200::/56")), now);
        assert!(w.update(None, now));
        assert_eq!(w.prefix(), None);
        assert_eq!(w.deprecated.len(), 1);
        assert!(w.plan(&view(), &existing(), now).is_empty());
        assert!(w.update(Some(&lease(now, "2001:db8:1200::/56")), now));
        assert!(
            w.deprecated.is_empty(),
            "not deprecated and current at once"
        );
    }
}
