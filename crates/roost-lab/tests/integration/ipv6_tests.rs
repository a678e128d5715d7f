//! IPv6 on the zones: clients configure themselves by SLAAC from the firewall's router
//! advertisements (the example's ULA prefix, one /64 per zone), and the zone policy holds for
//! IPv6 as for IPv4. Client namespaces keep Linux's defaults (accept_ra=1, autoconf=1), as a
//! household device would. Each negative check has a positive twin, so it can fail.

use std::fs::File;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use ipnet::Ipv6Net;
use nix::sched::{CloneFlags, setns};
use roost_config::Service;

use crate::{ALLOWED, DENIED, TestLab};

/// Runs `f` on a thread inside namespace `netns`, so sockets it opens live there.
fn in_netns<T: Send + 'static>(netns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let file = File::open(format!("/run/netns/{netns}")).unwrap();
    std::thread::spawn(move || {
        setns(&file, CloneFlags::CLONE_NEWNET).unwrap();
        f()
    })
    .join()
    .unwrap()
}

/// `ip -j -6 ARGS` in `netns`, parsed.
fn ip6_json(netns: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new("ip")
        .args(["-j", "-6", "-n", netns])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

/// Addresses on `dev` in `netns` inside `net`, done with duplicate address detection.
fn addresses_in(netns: &str, dev: &str, net: Ipv6Net) -> Vec<Ipv6Addr> {
    let json = ip6_json(netns, &["addr", "show", "dev", dev]);
    json.get(0)
        .and_then(|l| l["addr_info"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter(|a| a.get("tentative").is_none())
        .filter_map(|a| a["local"].as_str()?.parse().ok())
        .filter(|a| net.contains(a))
        .collect()
}

fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The address namespace `name` (short or full) formed by SLAAC in `zone`'s /64.
fn slaac_address(t: &TestLab, name: &str, zone: &str) -> Ipv6Addr {
    let netns = t.lab.netns(name).unwrap();
    let net = t.lab.settings().zone_ipv6(zone).unwrap().subnet;
    // Clients solicit at link-up; the router answers within half a second, or its first
    // unsolicited advertisements (at most 16 s apart) reach a client that solicited too early.
    wait_for(
        &format!("a SLAAC address in {net} in {netns}"),
        Duration::from_secs(40),
        || addresses_in(&netns, "eth0", net).into_iter().next(),
    )
}

/// A TCP listener on `[addr]:port` inside `name` (it accepts in the kernel's backlog, which
/// is all a connect needs). Dropped at the end of the test.
fn listen6(t: &TestLab, name: &str, addr: Ipv6Addr, port: u16) -> TcpListener {
    let netns = t.lab.netns(name).unwrap();
    in_netns(&netns, move || {
        TcpListener::bind(SocketAddr::V6(SocketAddrV6::new(addr, port, 0, 0))).unwrap()
    })
}

fn connects6(t: &TestLab, from: &str, to: Ipv6Addr, port: u16, timeout: Duration) -> bool {
    let netns = t.lab.netns(from).unwrap();
    let to = SocketAddr::V6(SocketAddrV6::new(to, port, 0, 0));
    in_netns(&netns, move || {
        TcpStream::connect_timeout(&to, timeout).is_ok()
    })
}

fn pings6(t: &TestLab, from: &str, to: Ipv6Addr) -> bool {
    let netns = t.lab.netns(from).unwrap();
    Command::new("ip")
        .args([
            "netns",
            "exec",
            &netns,
            "ping",
            "-6",
            "-c1",
            "-W1",
            &to.to_string(),
        ])
        .output()
        .unwrap()
        .status
        .success()
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

#[test]
fn lab_ipv6_lan_client_gets_a_slaac_address_and_a_default_route_via_the_router() {
    let t = TestLab::up("v6a");
    let lan = t.lab.settings().zone_ipv6("lan").unwrap();
    assert_eq!(lan.subnet.to_string(), "fd12:3456:789a:1::/64");
    let client = slaac_address(&t, "client-lan", "lan");
    assert!(lan.subnet.contains(&client));
    // The default route goes to the firewall's link-local address on the LAN, learned from
    // its advertisement (proto ra).
    let fw = t.lab.netns("fw").unwrap();
    let fw_link_local = addresses_in(&fw, "lan", "fe80::/64".parse().unwrap());
    assert_eq!(fw_link_local.len(), 1, "{fw_link_local:?}");
    let client_ns = t.lab.netns("client-lan").unwrap();
    let routes = ip6_json(&client_ns, &["route", "show", "default"]);
    let route = &routes[0];
    assert_eq!(
        route["gateway"].as_str(),
        Some(fw_link_local[0].to_string().as_str())
    );
    assert_eq!(route["protocol"].as_str(), Some("ra"), "{routes}");
    // The router answers on its own address in the zone.
    wait_for(
        "a ping to the router's v6 address",
        Duration::from_secs(10),
        || pings6(&t, "client-lan", lan.router).then_some(()),
    );
    // The firewall counts what it advertised and the solicitations it answered.
    let (code, metrics) = t.lab.control_get(Service::Firewall, "/metrics").unwrap();
    assert_eq!(code, 200);
    assert!(metric(&metrics, "roost_firewall_router_advertisements_sent_total") >= 1);
    assert_eq!(
        metric(
            &metrics,
            "roost_firewall_router_solicitations_malformed_total"
        ),
        0
    );
}

#[test]
fn lab_ipv6_iot_cannot_open_a_connection_to_the_lan_while_the_lan_reaches_iot() {
    let t = TestLab::up("v6b");
    let lan = slaac_address(&t, "client-lan", "lan");
    let iot = slaac_address(&t, "client-iot", "iot");
    let _lan_listener = listen6(&t, "client-lan", lan, 8080);
    let _iot_listener = listen6(&t, "client-iot", iot, 8080);
    // LAN may reach IoT (reach = ["wan", "iot"]) over IPv6 as over IPv4 ...
    assert!(
        connects6(&t, "client-lan", iot, 8080, ALLOWED),
        "lan -> iot"
    );
    // ... IoT may not open a connection to the LAN ...
    assert!(
        !connects6(&t, "client-iot", lan, 8080, DENIED),
        "iot reached lan"
    );
    assert!(!pings6(&t, "client-iot", lan), "iot pinged lan");
    // ... though the LAN client's listener answers inside its own zone.
    let peer = t
        .lab
        .add_host("peer", "lan", std::net::Ipv4Addr::new(192, 168, 1, 11))
        .unwrap();
    slaac_address(&t, &peer, "lan");
    assert!(connects6(&t, &peer, lan, 8080, ALLOWED), "peer -> lan");
}

#[test]
fn lab_ipv6_guest_reaches_neither_the_lan_nor_iot() {
    let t = TestLab::up("v6c");
    let lan = slaac_address(&t, "client-lan", "lan");
    let iot = slaac_address(&t, "client-iot", "iot");
    let guest_router = t.lab.settings().zone_ipv6("guest").unwrap().router;
    slaac_address(&t, "client-guest", "guest");
    let _lan_listener = listen6(&t, "client-lan", lan, 8080);
    let _iot_listener = listen6(&t, "client-iot", iot, 8080);
    // The guest client has working IPv6 to its router ...
    wait_for(
        "a ping from guest to its router",
        Duration::from_secs(10),
        || pings6(&t, "client-guest", guest_router).then_some(()),
    );
    // ... but opens no connection to IoT or the LAN,
    assert!(
        !connects6(&t, "client-guest", iot, 8080, DENIED),
        "guest reached iot"
    );
    assert!(
        !connects6(&t, "client-guest", lan, 8080, DENIED),
        "guest reached lan"
    );
    // whose listeners answer those allowed: the LAN reaches IoT's, a LAN peer the LAN's.
    assert!(
        connects6(&t, "client-lan", iot, 8080, ALLOWED),
        "lan -> iot"
    );
    let peer = t
        .lab
        .add_host("peer", "lan", std::net::Ipv4Addr::new(192, 168, 1, 11))
        .unwrap();
    slaac_address(&t, &peer, "lan");
    assert!(connects6(&t, &peer, lan, 8080, ALLOWED), "peer -> lan");
}
