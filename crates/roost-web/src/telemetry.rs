//! The router's telemetry for home-automation dashboards: every [`PUBLISH_EVERY`] the web VM
//! (the only VM that reads every daemon) sums up what it knows and hands it to the broker's
//! `PUT /telemetry`, which publishes each topic retained under `roost/`, readable by every MQTT
//! user and writable by none. No new path between VMs is needed: web already reaches the
//! broker's control API.
//!
//! | topic | value |
//! | --- | --- |
//! | `roost/wan/address`, `roost/wan/gateway` | the WAN's address (CIDR) and gateway, or empty |
//! | `roost/wan/ipv6_address`, `roost/wan/ipv6_prefix` | the WAN's DHCPv6 address and delegated prefix, or empty |
//! | `roost/dhcp/leases`, `roost/dhcp/leases/<zone>` | active leases, in all and per zone |
//! | `roost/dns/queries_per_second`, `roost/dns/cache_hit_ratio` | over the last minute |
//! | `roost/services/<service>` | `ok`, or what is wrong |
//! | `roost/settings/version` | the settings version in force |

use std::collections::BTreeMap;
use std::time::Duration;

use crate::controller::PeerStatus;
use crate::stats::Point;

/// How often the telemetry is published.
pub const PUBLISH_EVERY: Duration = Duration::from_secs(15);

/// What the telemetry is made from; each part is optional, as each daemon may be down.
#[derive(Debug, Default)]
pub struct Inputs<'a> {
    /// The firewall's `/state`.
    pub firewall: Option<&'a serde_json::Value>,
    /// The DHCP server's `/state`.
    pub dhcp: Option<&'a serde_json::Value>,
    /// The last minute of DNS.
    pub dns: Option<Point>,
    /// What the last reconcile saw of each daemon.
    pub services: &'a [PeerStatus],
    /// The settings version in force.
    pub version: Option<u32>,
}

/// The topics and values to publish. A daemon that could not be asked contributes nothing, so
/// its last retained value stays rather than being overwritten with a guess.
pub fn topics(i: &Inputs<'_>) -> BTreeMap<String, String> {
    let mut t = BTreeMap::new();
    if let Some(fw) = i.firewall {
        for key in ["address", "gateway"] {
            let v = fw.pointer(&format!("/wan/{key}")).and_then(|v| v.as_str());
            t.insert(format!("roost/wan/{key}"), v.unwrap_or("").to_owned());
        }
        for key in ["address", "prefix"] {
            let v = fw.pointer(&format!("/ipv6/{key}")).and_then(|v| v.as_str());
            t.insert(format!("roost/wan/ipv6_{key}"), v.unwrap_or("").to_owned());
        }
    }
    if let Some(dhcp) = i.dhcp {
        let active = |l: &&serde_json::Value| {
            l.get("active").and_then(serde_json::Value::as_bool) == Some(true)
        };
        let leases: Vec<&serde_json::Value> = dhcp
            .get("leases")
            .and_then(|l| l.as_array())
            .map(|a| a.iter().filter(active).collect())
            .unwrap_or_default();
        t.insert("roost/dhcp/leases".to_owned(), leases.len().to_string());
        for zone in dhcp
            .get("zones")
            .and_then(|z| z.as_array())
            .into_iter()
            .flatten()
        {
            let Some(name) = zone
                .get("name")
                .and_then(|n| n.as_str())
                .filter(|n| is_level(n))
            else {
                continue;
            };
            let n = leases
                .iter()
                .filter(|l| l.get("zone").and_then(|z| z.as_str()) == Some(name))
                .count();
            t.insert(format!("roost/dhcp/leases/{name}"), n.to_string());
        }
    }
    if let Some(p) = i.dns {
        t.insert(
            "roost/dns/queries_per_second".to_owned(),
            format!("{:.1}", p.queries_per_second),
        );
        t.insert(
            "roost/dns/cache_hit_ratio".to_owned(),
            format!("{:.3}", p.hit_ratio),
        );
    }
    for s in i.services {
        let value = s.problem.clone().unwrap_or_else(|| "ok".to_owned());
        t.insert(
            format!("roost/services/{}", s.service.name()),
            value.chars().take(1024).collect(),
        );
    }
    if let Some(v) = i.version {
        t.insert("roost/settings/version".to_owned(), v.to_string());
    }
    t
}

/// Whether `s` can be one topic level (zone names are checked by roost-config; this keeps a
/// daemon's answer from smuggling `/`, `+` or `#` into a topic all the same).
fn is_level(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && !s.contains(['/', '+', '#', '\0'])
}

#[cfg(test)]
mod tests {
    use super::*;
    use roost_config::Service;

    #[test]
    fn topics_sum_up_the_daemons_states() {
        let fw = serde_json::json!({
            "wan": { "address": "203.0.113.10/24", "gateway": "203.0.113.1" },
            "ipv6": { "address": "2001:db8:0:1::1000", "prefix": "2001:db8:1200::/56" },
        });
        let dhcp = serde_json::json!({
            "zones": [{ "name": "lan" }, { "name": "iot" }, { "name": "bad/zone" }],
            "leases": [
                { "zone": "lan", "active": true }, { "zone": "lan", "active": false },
                { "zone": "iot", "active": true }, { "zone": "lan", "active": true },
            ],
        });
        let services = [
            PeerStatus {
                service: Service::Dns,
                healthy: true,
                problem: None,
            },
            PeerStatus {
                service: Service::Mqtt,
                healthy: false,
                problem: Some("mqtt unreachable".into()),
            },
        ];
        let t = topics(&Inputs {
            firewall: Some(&fw),
            dhcp: Some(&dhcp),
            dns: Some(Point {
                at: 60,
                queries_per_second: 12.25,
                hit_ratio: 0.5,
            }),
            services: &services,
            version: Some(7),
        });
        let get = |k: &str| t.get(k).map(String::as_str);
        assert_eq!(get("roost/wan/address"), Some("203.0.113.10/24"));
        assert_eq!(get("roost/wan/gateway"), Some("203.0.113.1"));
        assert_eq!(get("roost/wan/ipv6_prefix"), Some("2001:db8:1200::/56"));
        assert_eq!(get("roost/wan/ipv6_address"), Some("2001:db8:0:1::1000"));
        assert_eq!(get("roost/dhcp/leases"), Some("3"));
        assert_eq!(get("roost/dhcp/leases/lan"), Some("2"));
        assert_eq!(get("roost/dhcp/leases/iot"), Some("1"));
        assert!(
            !t.keys().any(|k| k.contains("bad")),
            "a zone name cannot split a topic"
        );
        assert_eq!(get("roost/dns/queries_per_second"), Some("12.2"));
        assert_eq!(get("roost/services/dns"), Some("ok"));
        assert_eq!(get("roost/services/mqtt"), Some("mqtt unreachable"));
        assert_eq!(get("roost/settings/version"), Some("7"));
    }

    #[test]
    fn a_daemon_that_could_not_be_asked_contributes_nothing() {
        let t = topics(&Inputs::default());
        assert!(t.is_empty(), "{t:?}");
    }
}
