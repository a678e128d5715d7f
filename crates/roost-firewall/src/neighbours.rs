//! IPv6 names for DHCP hosts: the firewall is the one VM that sees every host's IPv4 and IPv6
//! addresses side by side, in its neighbour tables (ARP and NDP, keyed by MAC), because it is
//! the router every host talks through. Every [`EVERY`] it reads both tables on the zone
//! interfaces, pairs each host's IPv4 address with its global and ULA IPv6 ones (same MAC,
//! same interface), and `PUT`s the set to dns's `/neighbours`, which adds AAAA records to the
//! lease names of those IPv4 addresses. SLAAC addresses, stable or temporary, thereby get
//! names without stateful DHCPv6. The set is pushed again every [`REPUSH`] even when
//! unchanged, so a restarted dns has it back.
//!
//! [`pair`] is the sans-IO part, over `ip -j neigh` output.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use roost_config::views::PeerView;
use serde::Serialize;

/// How often the tables are read.
pub const EVERY: Duration = Duration::from_secs(10);
/// How often an unchanged set is pushed again.
pub const REPUSH: Duration = Duration::from_secs(60);
/// Most hosts pushed (dns takes no more).
const MAX_HOSTS: usize = 4096;
/// Most IPv6 addresses pushed per host.
const MAX_V6: usize = 16;

/// One host with both families, as dns's `/neighbours` takes it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Host {
    /// Its IPv4 address.
    pub ipv4: Ipv4Addr,
    /// Its global and ULA IPv6 addresses.
    pub ipv6: Vec<Ipv6Addr>,
}

/// The body of `PUT /neighbours`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Neighbours {
    /// Every host seen with both families, sorted.
    pub hosts: Vec<Host>,
}

/// Pairs the entries of `ip -j neigh` (both families in one array, or the two arrays
/// concatenated) on `interfaces` by MAC and interface. Entries without a link-layer address
/// or whose state says it is not there (`FAILED`, `INCOMPLETE`) are left out, as are
/// link-local, multicast and unspecified IPv6 addresses.
pub fn pair(entries: &[serde_json::Value], interfaces: &[String]) -> Neighbours {
    type Key = (String, String);
    let mut v4: BTreeMap<Key, BTreeSet<Ipv4Addr>> = BTreeMap::new();
    let mut v6: BTreeMap<Key, BTreeSet<Ipv6Addr>> = BTreeMap::new();
    for e in entries {
        let (Some(dst), Some(dev), Some(mac)) =
            (e["dst"].as_str(), e["dev"].as_str(), e["lladdr"].as_str())
        else {
            continue;
        };
        if !interfaces.iter().any(|i| i == dev) {
            continue;
        }
        let absent = e["state"].as_array().is_some_and(|states| {
            states
                .iter()
                .any(|s| matches!(s.as_str(), Some("FAILED" | "INCOMPLETE")))
        });
        if absent {
            continue;
        }
        let key = (dev.to_owned(), mac.to_ascii_lowercase());
        match dst.parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) => {
                v4.entry(key).or_default().insert(a);
            }
            Ok(IpAddr::V6(a))
                if !(a.is_unspecified()
                    || a.is_loopback()
                    || a.is_multicast()
                    || a.is_unicast_link_local()) =>
            {
                v6.entry(key).or_default().insert(a);
            }
            _ => {}
        }
    }
    let mut hosts: Vec<Host> = v4
        .iter()
        .filter_map(|(key, v4s)| {
            let v6s = v6.get(key)?;
            Some(v4s.iter().map(|a| Host {
                ipv4: *a,
                ipv6: v6s.iter().take(MAX_V6).copied().collect(),
            }))
        })
        .flatten()
        .collect();
    hosts.sort();
    hosts.truncate(MAX_HOSTS);
    Neighbours { hosts }
}

async fn read_table(family: &str) -> Vec<serde_json::Value> {
    let out = tokio::process::Command::new("ip")
        .args(["-j", family, "neigh", "show"])
        .kill_on_drop(true)
        .output()
        .await;
    match out {
        Ok(o) if o.status.success() => serde_json::from_slice(&o.stdout).unwrap_or_default(),
        Ok(o) => {
            tracing::warn!(stderr = %String::from_utf8_lossy(&o.stderr).trim(), "ip neigh failed");
            Vec::new()
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot run ip neigh");
            Vec::new()
        }
    }
}

/// Reads the tables and pushes the pairs to `peer` for ever.
pub async fn run(peer: PeerView, interfaces: Vec<String>) {
    let mut last: Option<(Neighbours, Instant)> = None;
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tick.tick().await;
        let mut entries = read_table("-4").await;
        entries.extend(read_table("-6").await);
        let now = pair(&entries, &interfaces);
        let due = last
            .as_ref()
            .is_none_or(|(sent, at)| *sent != now || at.elapsed() >= REPUSH);
        if !due {
            continue;
        }
        let body = serde_json::to_vec(&now).unwrap_or_default();
        match roost_control::peer::put_json(
            &peer.url,
            "/neighbours",
            &peer.token_file,
            &body,
            Duration::from_secs(5),
        )
        .await
        {
            Ok(()) => {
                tracing::debug!(hosts = now.hosts.len(), "neighbours pushed to dns");
                last = Some((now, Instant::now()));
            }
            Err(e) => tracing::warn!(error = %e, "cannot push neighbours to dns"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<serde_json::Value> {
        serde_json::from_str(
            r#"[
            {"dst":"192.168.1.50","dev":"lan","lladdr":"02:00:00:00:00:50","state":["REACHABLE"]},
            {"dst":"192.168.1.51","dev":"lan","lladdr":"02:00:00:00:00:51","state":["STALE"]},
            {"dst":"192.168.20.7","dev":"iot","lladdr":"02:00:00:00:00:07","state":["STALE"]},
            {"dst":"203.0.113.1","dev":"wan","lladdr":"02:00:00:00:00:01","state":["REACHABLE"]},
            {"dst":"fd12:3456:789a:1::50","dev":"lan","lladdr":"02:00:00:00:00:50","state":["STALE"]},
            {"dst":"2001:db8:1200:1:50::1","dev":"lan","lladdr":"02:00:00:00:00:50","state":["DELAY"]},
            {"dst":"fe80::50","dev":"lan","lladdr":"02:00:00:00:00:50","router":null,"state":["STALE"]},
            {"dst":"fd12:3456:789a:1::51","dev":"lan","state":["FAILED"]},
            {"dst":"fd12:3456:789a:1::52","dev":"lan","lladdr":"02:00:00:00:00:51","state":["INCOMPLETE"]},
            {"dst":"fd12:3456:789a:14::7","dev":"lan","lladdr":"02:00:00:00:00:07","state":["STALE"]},
            {"dst":"2001:db8:0:1::1","dev":"wan","lladdr":"02:00:00:00:00:01","state":["REACHABLE"]}
        ]"#,
        )
        .unwrap()
    }

    #[test]
    fn hosts_are_paired_by_mac_on_the_same_zone_interface_without_link_local() {
        let zones = vec!["lan".to_owned(), "iot".to_owned()];
        let n = pair(&entries(), &zones);
        assert_eq!(
            n.hosts,
            vec![Host {
                ipv4: "192.168.1.50".parse().unwrap(),
                ipv6: vec![
                    "2001:db8:1200:1:50::1".parse().unwrap(),
                    "fd12:3456:789a:1::50".parse().unwrap(),
                ],
            }],
            "51 has no usable IPv6, iot's host shows its v6 on another interface, wan is not a zone"
        );
        assert_eq!(
            serde_json::to_string(&n).unwrap(),
            r#"{"hosts":[{"ipv4":"192.168.1.50","ipv6":["2001:db8:1200:1:50::1","fd12:3456:789a:1::50"]}]}"#
        );
    }

    #[test]
    fn garbage_from_ip_gives_nothing() {
        let junk: Vec<serde_json::Value> = serde_json::from_str(
            r#"[1, "x", {"dst": 5}, {"dst":"nope","dev":"lan","lladdr":"a"}]"#,
        )
        .unwrap();
        assert!(pair(&junk, &["lan".to_owned()]).hosts.is_empty());
    }
}
