//! The edge to the interfaces: addresses and routes through `ip -batch` (one process for the
//! whole plan, stopping at the first error), and IPv4 forwarding through `/proc/sys`. The plans
//! themselves are built sans-IO so tests read them. The daemon never creates interfaces: the VM
//! (or the lab) does; it addresses the ones that exist and reports the missing ones.

use std::process::Stdio;

use ipnet::Ipv4Net;
use roost_config::views::FirewallView;
use std::net::Ipv4Addr;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Configuring interfaces failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// `ip` could not be started.
    #[error("cannot run ip: {0}")]
    Run(#[source] std::io::Error),
    /// `ip` refused a command.
    #[error("ip -batch failed: {0}")]
    Refused(String),
    /// `ip -j link` printed something unexpected.
    #[error("cannot read ip's json output: {0}")]
    Json(#[source] serde_json::Error),
    /// An IPv6 sysctl could not be written.
    #[error("cannot set {path}: {source}")]
    Sysctl {
        /// The sysctl file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Forwarding could not be switched on.
    #[error("cannot enable forwarding ({path}): {source}")]
    Forwarding {
        /// The sysctl file.
        path: &'static str,
        /// Why.
        source: std::io::Error,
    },
}

/// `ip -batch` lines that address the zone and service-link interfaces present in `existing`,
/// plus the WAN's link settings. The WAN address is separate ([`wan_plan`]), since DHCP owns it.
pub fn inside_plan(view: &FirewallView, existing: &[String]) -> (Vec<String>, Vec<String>) {
    let mut plan = Vec::new();
    let mut missing = Vec::new();
    let mut want: Vec<(&str, String)> = view
        .zones
        .iter()
        .map(|z| {
            let net = Ipv4Net::new(z.router, z.subnet.prefix_len()).unwrap_or(z.subnet);
            (z.interface.as_str(), net.to_string())
        })
        .collect();
    want.extend(view.links.iter().map(|l| {
        let net =
            Ipv4Net::new(l.link.firewall, l.link.network.prefix_len()).unwrap_or(l.link.network);
        (l.interface.as_str(), net.to_string())
    }));
    for (iface, addr) in want {
        if existing.iter().any(|e| e == iface) {
            plan.push(format!("addr replace {addr} dev {iface}"));
            if let Some(v6) = view
                .zones
                .iter()
                .find(|z| z.interface == iface)
                .and_then(|z| z.ipv6)
            {
                plan.push(format!(
                    "addr replace {}/{} dev {iface}",
                    v6.router,
                    v6.subnet.prefix_len()
                ));
            }
            if let Some(v6) = view
                .links
                .iter()
                .find(|l| l.interface == iface)
                .and_then(|l| l.link.v6)
            {
                plan.push(format!(
                    "addr replace {}/{} dev {iface} nodad",
                    v6.firewall,
                    v6.network.prefix_len()
                ));
            }
            plan.push(format!("link set dev {iface} up"));
        } else {
            missing.push(iface.to_owned());
        }
    }
    let wan = &view.wan.interface;
    if existing.iter().any(|e| e == wan) {
        match view.wan.mtu {
            Some(mtu) => plan.push(format!("link set dev {wan} mtu {mtu} up")),
            None => plan.push(format!("link set dev {wan} up")),
        }
    } else {
        missing.push(wan.clone());
    }
    (plan, missing)
}

/// `ip -batch` lines that give `interface` exactly `address` (dropping any other global
/// address, e.g. an expired lease) and the default route through `gateway`.
pub fn wan_plan(
    interface: &str,
    address: Option<Ipv4Net>,
    gateway: Option<Ipv4Addr>,
) -> Vec<String> {
    // IPv4 only (`to 0.0.0.0/0`): the DHCPv6 lease's address stays.
    let mut plan = vec![format!(
        "addr flush dev {interface} scope global to 0.0.0.0/0"
    )];
    if let Some(a) = address {
        plan.push(format!("addr add {a} broadcast + dev {interface}"));
        if let Some(gw) = gateway {
            plan.push(format!("route replace default via {gw} dev {interface}"));
        }
    }
    plan
}

/// Runs `ip -batch -` with `plan`.
pub async fn run_plan(plan: &[String]) -> Result<(), NetError> {
    if plan.is_empty() {
        return Ok(());
    }
    let mut child = Command::new("ip")
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(NetError::Run)?;
    if let Some(mut input) = child.stdin.take() {
        let mut text = plan.join("\n");
        text.push('\n');
        input
            .write_all(text.as_bytes())
            .await
            .map_err(NetError::Run)?;
    }
    let out = child.wait_with_output().await.map_err(NetError::Run)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetError::Refused(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ))
    }
}

/// Names of the interfaces in this namespace.
pub async fn interfaces() -> Result<Vec<String>, NetError> {
    let out = Command::new("ip")
        .args(["-j", "link", "show"])
        .output()
        .await
        .map_err(NetError::Run)?;
    if !out.status.success() {
        return Err(NetError::Refused(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ));
    }
    #[derive(serde::Deserialize)]
    struct Link {
        ifname: String,
    }
    let links: Vec<Link> = serde_json::from_slice(&out.stdout).map_err(NetError::Json)?;
    Ok(links.into_iter().map(|l| l.ifname).collect())
}

/// The IPv4 address of a point-to-point link and its peer, from `ip -j -4 addr show dev X`
/// output: how the daemon learns the address pppd got for `ppp0`.
pub fn parse_ptp_address(json: &[u8]) -> Result<Option<(Ipv4Net, Option<Ipv4Addr>)>, NetError> {
    #[derive(serde::Deserialize)]
    struct Info {
        family: String,
        local: Option<Ipv4Addr>,
        prefixlen: Option<u8>,
        address: Option<Ipv4Addr>,
    }
    #[derive(serde::Deserialize)]
    struct Link {
        #[serde(default)]
        addr_info: Vec<Info>,
    }
    let links: Vec<Link> = serde_json::from_slice(json).map_err(NetError::Json)?;
    Ok(links
        .iter()
        .flat_map(|l| &l.addr_info)
        .filter(|i| i.family == "inet")
        .find_map(|i| {
            let net = Ipv4Net::new(i.local?, i.prefixlen.unwrap_or(32)).ok()?;
            Some((net, i.address.filter(|peer| Some(*peer) != i.local)))
        }))
}

/// The address pppd holds on `ifname`, if the link is up.
pub async fn ptp_address(ifname: &str) -> Result<Option<(Ipv4Net, Option<Ipv4Addr>)>, NetError> {
    let out = Command::new("ip")
        .args(["-j", "-4", "addr", "show", "dev", ifname])
        .output()
        .await
        .map_err(NetError::Run)?;
    if !out.status.success() {
        // No such device: pppd has not brought the link up (yet).
        return Ok(None);
    }
    parse_ptp_address(&out.stdout)
}

/// Switches IPv4 forwarding on (in this namespace only: the sysctl is per namespace).
pub fn enable_forwarding() -> Result<(), NetError> {
    const PATH: &str = "/proc/sys/net/ipv4/ip_forward";
    std::fs::write(PATH, "1\n").map_err(|source| NetError::Forwarding { path: PATH, source })
}

/// The sysctls (path under `/proc/sys/net/ipv6/conf/`, value) for IPv6 on the zones of `view`
/// present in `existing`: forwarding on, and no router advertisements accepted on a zone
/// (the router sends them there). Empty when no zone has IPv6.
pub fn ipv6_sysctls(view: &FirewallView, existing: &[String]) -> Vec<(String, &'static str)> {
    let zones: Vec<&str> = view
        .zones
        .iter()
        .filter(|z| z.ipv6.is_some() && existing.contains(&z.interface))
        .map(|z| z.interface.as_str())
        .collect();
    if zones.is_empty() {
        return Vec::new();
    }
    let mut out = vec![("all/forwarding".to_owned(), "1")];
    out.extend(zones.iter().map(|z| (format!("{z}/accept_ra"), "0")));
    // The ISP's advertisements give the default route; a forwarding interface takes them
    // only with accept_ra = 2. The WAN alone, so no zone can announce a default route.
    let wan = view.wan.uplink();
    if view.wan.ipv6.is_some() && existing.iter().any(|e| e == wan) {
        out.push((format!("{wan}/accept_ra"), "2"));
    }
    out
}

/// Applies [`ipv6_sysctls`] (in this namespace only). A value already in place is not
/// written again, so a VM that sets them at boot can keep /proc/sys read-only for the daemon.
pub fn enable_ipv6(view: &FirewallView, existing: &[String]) -> Result<(), NetError> {
    for (key, value) in ipv6_sysctls(view, existing) {
        let path = format!("/proc/sys/net/ipv6/conf/{key}");
        if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == value) {
            continue;
        }
        match std::fs::write(&path, format!("{value}\n")) {
            Ok(()) => {}
            // A forwarding interface ignores advertisements unless accept_ra is 2, so on the
            // zones this is a second line of defence, not a reason to stop.
            Err(e) if key.ends_with("/accept_ra") && value == "0" => {
                tracing::warn!(%path, error = %e, "cannot switch off accept_ra");
            }
            Err(source) => return Err(NetError::Sysctl { path, source }),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example_view() -> FirewallView {
        let text = include_str!("../../../examples/roost.toml");
        roost_config::Settings::from_toml("roost.toml", text)
            .unwrap()
            .firewall_view()
    }

    #[test]
    fn zones_get_their_ipv6_router_address_and_forwarding_without_ras_accepted_but_the_wan_does() {
        let mut view = example_view();
        view.zones.retain(|z| z.name != "guest");
        let existing = vec!["lan".to_owned(), "wan".to_owned()];
        let (plan, missing) = inside_plan(&view, &existing);
        assert!(plan.contains(&"addr replace 192.168.1.1/24 dev lan".to_owned()));
        assert!(
            plan.contains(&"addr replace fd12:3456:789a:1::1/64 dev lan".to_owned()),
            "{plan:?}"
        );
        assert!(missing.contains(&"iot".to_owned()));
        assert_eq!(
            ipv6_sysctls(&view, &existing),
            [
                ("all/forwarding".to_owned(), "1"),
                ("lan/accept_ra".to_owned(), "0"),
                ("wan/accept_ra".to_owned(), "2"),
            ]
        );
        let mut no_wan_v6 = view.clone();
        no_wan_v6.wan.ipv6 = None;
        assert!(
            !ipv6_sysctls(&no_wan_v6, &existing)
                .iter()
                .any(|(k, _)| k.starts_with("wan/"))
        );
        for z in &mut view.zones {
            z.ipv6 = None;
        }
        assert!(ipv6_sysctls(&view, &existing).is_empty());
    }

    #[test]
    fn wan_plan_replaces_the_old_address_and_the_default_route() {
        let plan = wan_plan(
            "wan",
            Some("203.0.113.7/24".parse().unwrap()),
            Some("203.0.113.1".parse().unwrap()),
        );
        assert_eq!(
            plan,
            [
                "addr flush dev wan scope global to 0.0.0.0/0",
                "addr add 203.0.113.7/24 broadcast + dev wan",
                "route replace default via 203.0.113.1 dev wan",
            ]
        );
        assert_eq!(
            wan_plan("wan", None, None),
            ["addr flush dev wan scope global to 0.0.0.0/0"]
        );
    }
}

#[cfg(test)]
mod ptp_tests {
    use super::*;

    #[test]
    fn reads_the_address_and_peer_pppd_set() {
        let json = br#"[{"ifindex":9,"ifname":"ppp0","flags":["POINTOPOINT","UP"],"addr_info":[{"family":"inet","local":"203.0.113.77","address":"203.0.113.1","prefixlen":32,"scope":"global"}]}]"#;
        let (net, peer) = parse_ptp_address(json).unwrap().unwrap();
        assert_eq!(net, "203.0.113.77/32".parse().unwrap());
        assert_eq!(peer, Some("203.0.113.1".parse().unwrap()));
        assert_eq!(
            parse_ptp_address(br#"[{"ifname":"ppp0","addr_info":[]}]"#).unwrap(),
            None
        );
        assert!(parse_ptp_address(b"not json").is_err());
    }
}
