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
use roost_lab::Lab;

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

/// `ip -j -6 ARGS` in namespace `netns` (inside the VM in a VM's namespace), parsed.
fn ip6_json(lab: &Lab, netns: &str, args: &[&str]) -> serde_json::Value {
    let mut argv = vec!["-j", "-6"];
    argv.extend_from_slice(args);
    let out = lab.run_in(netns, "ip", &argv).unwrap();
    serde_json::from_str(&out).unwrap_or(serde_json::Value::Null)
}

/// Addresses on `dev` in `netns` inside `net`, done with duplicate address detection.
fn addresses_in(lab: &Lab, netns: &str, dev: &str, net: Ipv6Net) -> Vec<Ipv6Addr> {
    let json = ip6_json(lab, netns, &["addr", "show", "dev", dev]);
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
        || addresses_in(&t.lab, &netns, "eth0", net).into_iter().next(),
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
    let fw_link_local = addresses_in(&t.lab, &fw, "lan", "fe80::/64".parse().unwrap());
    assert_eq!(fw_link_local.len(), 1, "{fw_link_local:?}");
    let client_ns = t.lab.netns("client-lan").unwrap();
    let routes = ip6_json(&t.lab, &client_ns, &["route", "show", "default"]);
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

/// The ISP's delegated prefix as the firewall reports it on `/state`, once it has one.
fn delegated_prefix(t: &TestLab) -> Ipv6Net {
    wait_for("a delegated prefix", Duration::from_secs(20), || {
        let (_, state) = t.lab.control_get(Service::Firewall, "/state").ok()?;
        let state: serde_json::Value = serde_json::from_str(&state).ok()?;
        state["ipv6"]["prefix"].as_str()?.parse().ok()
    })
}

/// The zone's /64 of the delegated prefix `prefix`.
fn global_subnet(t: &TestLab, zone: &str, prefix: Ipv6Net) -> Ipv6Net {
    t.lab
        .settings()
        .zone_ipv6(zone)
        .unwrap()
        .delegated_subnet(prefix)
        .unwrap()
}

fn global_address(t: &TestLab, name: &str, subnet: Ipv6Net) -> Ipv6Addr {
    let netns = t.lab.netns(name).unwrap();
    wait_for(
        &format!("an address in {subnet} in {netns}"),
        Duration::from_secs(40),
        || {
            addresses_in(&t.lab, &netns, "eth0", subnet)
                .into_iter()
                .next()
        },
    )
}

/// `GET /` of the ISP's IPv6 web server from `name`: the address it saw.
fn isp_sees(t: &TestLab, name: &str) -> Option<String> {
    let to = SocketAddr::V6(SocketAddrV6::new(roost_lab::plan::isp::HTTP6, 80, 0, 0));
    let (code, body) = t.lab.http_get(name, to, "/").ok()?;
    (code == 200).then(|| body.trim().to_owned())
}

#[test]
fn lab_ipv6_lan_client_gets_a_global_address_from_the_delegated_prefix_and_reaches_the_isp() {
    let t = TestLab::up("v6d");
    let prefix = delegated_prefix(&t);
    assert_eq!(
        prefix.to_string(),
        "2001:db8:1200::/56",
        "the first /56 of the ISP's pool"
    );
    let lan = global_subnet(&t, "lan", prefix);
    assert_eq!(
        lan.to_string(),
        "2001:db8:1200:1::/64",
        "index 1 of the prefix"
    );
    let client = global_address(&t, "client-lan", lan);
    // No NAT for IPv6: the ISP sees the client's own global address.
    let seen = wait_for("the ISP's v6 web server", Duration::from_secs(10), || {
        isp_sees(&t, "client-lan")
    });
    assert_eq!(seen, format!("client {client}"));
    // The router's WAN has the ISP's address (IA_NA) and the default route from its RA.
    let fw = t.lab.netns("fw").unwrap();
    let wan = addresses_in(&t.lab, &fw, "wan", "2001:db8:0:1::/64".parse().unwrap());
    assert_eq!(wan.len(), 1, "{wan:?}");
    let routes = ip6_json(&t.lab, &fw, &["route", "show", "default"]);
    assert_eq!(routes[0]["protocol"].as_str(), Some("ra"), "{routes}");
    // The dhcp VM, on the zone bridges, takes no advertisement: no SLAAC address, and its one
    // default route is its service link's.
    let dhcp = t.lab.netns("dhcp").unwrap();
    let dhcp_lan = addresses_in(&t.lab, &dhcp, "lan", "::/0".parse().unwrap());
    assert!(
        dhcp_lan.iter().all(|a| a.is_unicast_link_local()),
        "{dhcp_lan:?}"
    );
    let routes = ip6_json(&t.lab, &dhcp, &["route", "show", "default"]);
    assert_eq!(routes[0]["dev"].as_str(), Some("svc"), "{routes}");
    assert_eq!(routes.as_array().map(Vec::len), Some(1), "{routes}");
    // The rest of the /56 is unreachable, not sent back to the ISP (RFC 7084 WPD-5).
    let unreachable = ip6_json(&t.lab, &fw, &["route", "show", "type", "unreachable"]);
    assert_eq!(
        unreachable[0]["dst"].as_str(),
        Some("2001:db8:1200::/56"),
        "{unreachable}"
    );
    let unused = t
        .lab
        .run_in(&fw, "ip", &["-6", "route", "get", "2001:db8:1200:99::1"]);
    assert!(
        unused.is_err(),
        "a /64 no zone uses has a route: {unused:?}"
    );
    // The ULA address is kept for local traffic, and never leaves through the WAN.
    let ula = slaac_address(&t, "client-lan", "lan");
    let iot = slaac_address(&t, "client-iot", "iot");
    let _iot_listener = listen6(&t, "client-iot", iot, 8080);
    assert!(
        connects6(&t, "client-lan", iot, 8080, ALLOWED),
        "lan -> iot over ULA"
    );
    let client_ns = t.lab.netns("client-lan").unwrap();
    let from_ula = Command::new("ip")
        .args([
            "netns",
            "exec",
            &client_ns,
            "curl",
            "-s",
            "-m",
            "2",
            "--interface",
        ])
        .arg(ula.to_string())
        .arg(format!("http://[{}]/", roost_lab::plan::isp::HTTP6))
        .output()
        .unwrap();
    assert!(!from_ula.status.success(), "a ULA source reached the ISP");
}

#[test]
fn lab_ipv6_the_isp_cannot_open_a_connection_to_a_lan_client_that_can_open_one_to_the_isp() {
    let t = TestLab::up("v6e");
    let prefix = delegated_prefix(&t);
    let client = global_address(&t, "client-lan", global_subnet(&t, "lan", prefix));
    let _listener = listen6(&t, "client-lan", client, 8080);
    let isp_listener = listen6(&t, "isp", roost_lab::plan::isp::HTTP6, 8081);
    assert!(
        connects6(&t, "client-lan", roost_lab::plan::isp::HTTP6, 8081, ALLOWED),
        "lan -> isp"
    );
    assert!(
        !connects6(&t, "isp", client, 8080, DENIED),
        "the ISP opened a connection to a LAN client"
    );
    assert!(!pings6(&t, "isp", client), "the ISP pinged a LAN client");
    drop(isp_listener);
    // Garbage to the router's DHCPv6 client port is counted and dropped; the lease stays.
    let fw = t.lab.netns("fw").unwrap();
    let wan_ll = addresses_in(&t.lab, &fw, "wan", "fe80::/64".parse().unwrap())[0];
    let isp = t.lab.netns("isp").unwrap();
    let target = SocketAddr::V6(SocketAddrV6::new(wan_ll, 546, 0, 0));
    let out = Command::new("ip")
        .args(["-j", "-n", &isp, "link", "show", "dev", "isp0"])
        .output()
        .unwrap();
    let link: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let index = u32::try_from(link[0]["ifindex"].as_u64().unwrap()).unwrap();
    // From port 547 of a link-local address of its own (Kea has the ISP's).
    let status = Command::new("ip")
        .args([
            "-n",
            &isp,
            "addr",
            "add",
            "fe80::bad/64",
            "dev",
            "isp0",
            "nodad",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    in_netns(&isp, move || {
        let from = SocketAddrV6::new("fe80::bad".parse().unwrap(), 547, 0, index);
        let sock = std::net::UdpSocket::bind(from).unwrap();
        let SocketAddr::V6(mut to) = target else {
            unreachable!()
        };
        to.set_scope_id(index);
        for bytes in [&[7u8, 1, 2][..], &[0xff; 600], &[2, 0, 0, 1, 0, 1, 0, 200]] {
            sock.send_to(bytes, to).unwrap();
        }
    });
    let dropped = wait_for("dhcpv6 drops counted", Duration::from_secs(5), || {
        let (_, m) = t.lab.control_get(Service::Firewall, "/metrics").ok()?;
        let n = metric(&m, "roost_firewall_dhcpv6_dropped_total");
        (n >= 3).then_some(n)
    });
    assert!(dropped >= 3);
    // The next renewal (T1 is 10 s at the lab's ISP) still works: past T1, the client is
    // bound again once that exchange is done (under TCG it can still be renewing at T1 + 2 s).
    std::thread::sleep(Duration::from_secs(12));
    let bound = wait_for(
        "bound again after the renewal",
        Duration::from_secs(20),
        || {
            let (_, state) = t.lab.control_get(Service::Firewall, "/state").ok()?;
            let state: serde_json::Value = serde_json::from_str(&state).ok()?;
            (state["ipv6"]["dhcp6"].as_str() == Some("bound")).then_some(state)
        },
    );
    assert_eq!(
        bound["ipv6"]["prefix"].as_str(),
        Some(prefix.to_string().as_str()),
        "{bound}"
    );
}

#[test]
fn lab_ipv6_after_the_isp_renumbers_clients_move_to_the_new_prefix_and_the_old_is_deprecated() {
    let t = TestLab::up("v6f");
    let old_prefix = delegated_prefix(&t);
    let old_subnet = global_subnet(&t, "lan", old_prefix);
    let old = global_address(&t, "client-lan", old_subnet);
    t.lab.isp_renumber().unwrap();
    let renumbered = Instant::now();
    let new_prefix = wait_for("the new prefix", Duration::from_secs(30), || {
        let p = delegated_prefix(&t);
        (p != old_prefix).then_some(p)
    });
    assert_eq!(new_prefix.to_string(), "2001:db8:3400::/56");
    let new_subnet = global_subnet(&t, "lan", new_prefix);
    let new = global_address(&t, "client-lan", new_subnet);
    // Bounded: T1 (10 s) plus an advertisement within 3 s plus duplicate address detection.
    assert!(
        renumbered.elapsed() < Duration::from_secs(30),
        "{:?}",
        renumbered.elapsed()
    );
    // The old address is deprecated, not yet gone (its valid lifetime counts down).
    let client_ns = t.lab.netns("client-lan").unwrap();
    let addrs = ip6_json(&t.lab, &client_ns, &["addr", "show", "dev", "eth0"]);
    let old_info = addrs[0]["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["local"].as_str() == Some(old.to_string().as_str()))
        .cloned()
        .unwrap_or_else(|| panic!("the old address is gone at once: {addrs}"));
    assert_eq!(
        old_info["preferred_life_time"].as_u64(),
        Some(0),
        "{old_info}"
    );
    // New connections come from the new address, and traffic works again.
    let seen = wait_for(
        "the ISP's v6 web server again",
        Duration::from_secs(10),
        || isp_sees(&t, "client-lan"),
    );
    assert_eq!(seen, format!("client {new}"));
    let (_, state) = t.lab.control_get(Service::Firewall, "/state").unwrap();
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert_eq!(
        state["ipv6"]["deprecated"][0].as_str(),
        Some(old_prefix.to_string().as_str()),
        "{state}"
    );
    // The router no longer holds its address in the old /64.
    let fw = t.lab.netns("fw").unwrap();
    assert!(addresses_in(&t.lab, &fw, "lan", old_subnet).is_empty());
}

#[test]
fn lab_ipv6_lan_client_learns_the_resolver_from_ras_and_dhcpv6_and_resolves_over_ipv6() {
    let t = TestLab::up("v6g");
    let lan = t.lab.settings().zone_ipv6("lan").unwrap();
    slaac_address(&t, "client-lan", "lan");
    let netns = t.lab.netns("client-lan").unwrap();
    // The advertisement names the resolver (RDNSS) and the domain (DNSSL), and sets O.
    let ra = wait_for(
        "an advertisement with RDNSS",
        Duration::from_secs(20),
        || {
            let out = Command::new("ip")
                .args([
                    "netns", "exec", &netns, "rdisc6", "-1", "-w", "2000", "eth0",
                ])
                .output()
                .ok()?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.contains("Recursive DNS server").then_some(text)
        },
    );
    let line = |key: &str| {
        ra.lines()
            .find(|l| l.trim_start().starts_with(key))
            .map(|l| l.split_once(':').unwrap().1.trim().to_owned())
            .unwrap_or_else(|| panic!("no {key} in {ra}"))
    };
    assert_eq!(line("Recursive DNS server"), lan.router.to_string());
    assert_eq!(line("DNS search list"), "home.arpa");
    assert_eq!(line("Stateful other conf."), "Yes");
    // Stateless DHCPv6 says the same (dhclient -6 -S, as a desktop would ask after O).
    let dir = std::env::temp_dir().join(format!("roost-dhclient6-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("script");
    let env = dir.join("env");
    std::fs::write(&script, format!("#!/bin/sh\nenv >> {}\n", env.display())).unwrap();
    let mut mode = std::fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut mode, 0o755);
    std::fs::set_permissions(&script, mode).unwrap();
    let out = Command::new("ip")
        .args([
            "netns", "exec", &netns, "timeout", "20", "dhclient", "-6", "-S", "-1",
        ])
        .arg("-sf")
        .arg(&script)
        .arg("-lf")
        .arg(dir.join("leases"))
        .arg("-pf")
        .arg(dir.join("pid"))
        .arg("eth0")
        .output()
        .unwrap();
    let env_text = std::fs::read_to_string(&env).unwrap_or_default();
    assert!(
        env_text.contains(&format!("new_dhcp6_name_servers={}", lan.router)),
        "{env_text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        env_text.contains("new_dhcp6_domain_search=home.arpa."),
        "{env_text}"
    );
    let _ = Command::new("ip")
        .args(["netns", "exec", &netns, "dhclient", "-6", "-x", "-pf"])
        .arg(dir.join("pid"))
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    // The resolver answers on the router's v6 address: an AAAA from the ISP's zone, whose
    // address the client then reaches over IPv6.
    let dig = |name: &str, ty: &str| {
        let out = Command::new("ip")
            .args([
                "netns", "exec", &netns, "dig", "+short", "+time=2", "+tries=2",
            ])
            .arg(format!("@{}", lan.router))
            .args([name, ty])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let aaaa = wait_for("an AAAA over IPv6", Duration::from_secs(10), || {
        let a = dig("www.isp.test", "AAAA");
        (!a.is_empty()).then_some(a)
    });
    assert_eq!(aaaa, roost_lab::plan::isp::HTTP6.to_string());
    assert_eq!(
        dig("www.isp.test", "A"),
        roost_lab::plan::isp::HTTP.to_string()
    );
    // The same name over IPv4 gives the same answer (one resolver behind both).
    let v4 = Command::new("ip")
        .args(["netns", "exec", &netns, "dig", "+short", "+time=2"])
        .arg(format!("@{}", t.lab.settings().zones["lan"].router))
        .args(["www.isp.test", "AAAA"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&v4.stdout).trim(), aaaa);
}

#[test]
fn lab_ipv6_a_port_forward_with_an_ipv6_host_opens_a_pinhole_to_that_host_and_port_only() {
    let t = TestLab::up("v6h");
    let prefix = delegated_prefix(&t);
    let lan = global_subnet(&t, "lan", prefix);
    // The example forwards 8443 to the NAS's 443, with `ipv6_host = "::10"`.
    let nas = t
        .lab
        .add_host("nas", "lan", std::net::Ipv4Addr::new(192, 168, 1, 10))
        .unwrap();
    let nas6 = Ipv6Addr::from(u128::from(lan.network()) | 0x10);
    let status = Command::new("ip")
        .args([
            "-n",
            &nas,
            "addr",
            "add",
            &format!("{nas6}/64"),
            "dev",
            "eth0",
            "nodad",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let _https = listen6(&t, &nas, nas6, 443);
    let _other = listen6(&t, &nas, nas6, 8443);
    let client = global_address(&t, "client-lan", lan);
    let _client_https = listen6(&t, "client-lan", client, 443);
    // The router knows the NAS (it answered neighbour discovery) and the pinhole is open.
    let rules = wait_for(
        "the pinhole in the ruleset",
        Duration::from_secs(10),
        || {
            let text = t
                .lab
                .run_in("fw", "nft", &["list", "chain", "inet", "roost", "from_wan"])
                .ok()?;
            text.contains("pinhole").then_some(text)
        },
    );
    assert!(rules.contains(&nas6.to_string()), "{rules}");
    assert!(
        wait_for(
            "the ISP reaching the NAS over IPv6",
            Duration::from_secs(10),
            || { connects6(&t, "isp", nas6, 443, ALLOWED).then_some(true) }
        ),
        "isp -> nas:443"
    );
    // Only that port, only that host: no translation over IPv6, nothing else opens.
    assert!(
        !connects6(&t, "isp", nas6, 8443, DENIED),
        "isp reached nas:8443"
    );
    assert!(
        !connects6(&t, "isp", client, 443, DENIED),
        "isp reached another host"
    );
}

#[test]
fn lab_ipv6_the_ula_keeps_local_traffic_and_dns_working_with_the_wan_down() {
    let t = TestLab::up("v6i");
    delegated_prefix(&t);
    wait_for("the ISP over IPv6", Duration::from_secs(20), || {
        isp_sees(&t, "client-lan")
    });
    let iot = slaac_address(&t, "client-iot", "iot");
    let _iot_listener = listen6(&t, "client-iot", iot, 8080);
    let lan_router = t.lab.settings().zone_ipv6("lan").unwrap().router;
    // The ISP goes away: its end of the WAN link is down.
    let isp = t.lab.netns("isp").unwrap();
    let status = Command::new("ip")
        .args(["-n", &isp, "link", "set", "isp0", "down"])
        .status()
        .unwrap();
    assert!(status.success());
    wait_for("the Internet gone", Duration::from_secs(10), || {
        isp_sees(&t, "client-lan").is_none().then_some(())
    });
    // The zones still reach each other over their ULA addresses ...
    assert!(
        connects6(&t, "client-lan", iot, 8080, ALLOWED),
        "lan -> iot over the ULA with the WAN down"
    );
    // ... and the resolver answers local names at the router's ULA address.
    let netns = t.lab.netns("client-lan").unwrap();
    let out = Command::new("ip")
        .args([
            "netns", "exec", &netns, "dig", "+short", "+time=2", "+tries=2",
        ])
        .arg(format!("@{lan_router}"))
        .args(["roost.home.arpa", "A"])
        .output()
        .unwrap();
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(answer.lines().any(|l| l == "192.168.1.1"), "{answer}");
}

#[test]
fn lab_ipv6_a_lease_name_gets_aaaa_records_for_the_addresses_the_router_sees_its_host_use() {
    let t = TestLab::up("v6j");
    let prefix = delegated_prefix(&t);
    let netns = t.lab.netns("client-lan").unwrap();
    let ula = slaac_address(&t, "client-lan", "lan");
    let global = global_address(&t, "client-lan", global_subnet(&t, "lan", prefix));
    // A DHCP lease named `laptop` (dhclient sends the name; its script only records the lease).
    let dir = std::env::temp_dir().join(format!("roost-aaaa-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (conf, script, env) = (dir.join("conf"), dir.join("script"), dir.join("env"));
    std::fs::write(&conf, "send host-name \"laptop\";\n").unwrap();
    std::fs::write(&script, format!("#!/bin/sh\nenv >> {}\n", env.display())).unwrap();
    let mut mode = std::fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut mode, 0o755);
    std::fs::set_permissions(&script, mode).unwrap();
    let ok = Command::new("ip")
        .args([
            "netns", "exec", &netns, "timeout", "20", "dhclient", "-1", "-cf",
        ])
        .arg(&conf)
        .arg("-sf")
        .arg(&script)
        .arg("-lf")
        .arg(dir.join("leases"))
        .arg("-pf")
        .arg(dir.join("pid"))
        .arg("eth0")
        .status()
        .unwrap();
    assert!(ok.success());
    let env_text = std::fs::read_to_string(&env).unwrap();
    let leased = env_text
        .lines()
        .filter_map(|l| l.strip_prefix("new_ip_address="))
        .next_back()
        .unwrap_or_else(|| panic!("no lease in {env_text}"))
        .to_owned();
    let _ = std::fs::remove_dir_all(&dir);
    // The host uses that address and its IPv6 ones through the router, which learns them.
    let run = |args: &[&str]| {
        let out = Command::new("ip")
            .args(["netns", "exec", &netns])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["ip", "addr", "add", &format!("{leased}/24"), "dev", "eth0"]);
    run(&["ping", "-c1", "-W2", "-I", &leased, "192.168.1.1"]);
    let router6 = t
        .lab
        .settings()
        .zone_ipv6("lan")
        .unwrap()
        .router
        .to_string();
    run(&["ping", "-6", "-c1", "-W2", "-I", &ula.to_string(), &router6]);
    run(&[
        "ping",
        "-6",
        "-c1",
        "-W2",
        "-I",
        &global.to_string(),
        &roost_lab::plan::isp::HTTP6.to_string(),
    ]);
    // Another zone's client asks for the name: A and, within the firewall's next push, AAAA.
    let iot = t.lab.netns("client-iot").unwrap();
    let dig = |ty: &str| {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &iot,
                "dig",
                "+short",
                "+time=2",
                "@192.168.20.1",
            ])
            .args(["laptop.home.arpa", ty])
            .output()
            .unwrap();
        let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        lines.sort();
        lines
    };
    wait_for("the lease name", Duration::from_secs(10), || {
        (dig("A") == vec![leased.clone()]).then_some(())
    });
    let mut want = vec![global.to_string(), ula.to_string()];
    want.sort();
    let aaaa = wait_for("AAAA for the lease name", Duration::from_secs(30), || {
        let got = dig("AAAA");
        (got == want).then_some(got)
    });
    assert_eq!(aaaa, want);
}

/// Sends the ICMPv6 message `hex` to all-nodes on `dev` in namespace `name`, hop limit 255.
fn send_icmpv6(t: &TestLab, name: &str, dev: &str, hex: &str, times: u32) {
    let netns = t.lab.netns(name).unwrap();
    let script = format!(
        "import socket\n\
         s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)\n\
         idx = socket.if_nametoindex('{dev}')\n\
         s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)\n\
         s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, idx)\n\
         for _ in range({times}): s.sendto(bytes.fromhex('{hex}'), ('ff02::1', 0, 0, idx))\n"
    );
    let out = Command::new("ip")
        .args(["netns", "exec", &netns, "python3", "-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn firewall_metric(t: &TestLab, name: &str) -> u64 {
    let (_, m) = t.lab.control_get(Service::Firewall, "/metrics").unwrap();
    metric(&m, name)
}

#[test]
fn lab_ipv6_malformed_and_rogue_router_advertisements_are_counted_and_change_nothing() {
    // Malformed router solicitations too; malformed DHCPv6 messages are in
    // `lab_ipv6_the_isp_cannot_open_a_connection_to_a_lan_client_that_can_open_one_to_the_isp`.
    let t = TestLab::up("v6k");
    delegated_prefix(&t);
    wait_for(
        "the ISP's advertisements counted",
        Duration::from_secs(20),
        || {
            (firewall_metric(&t, "roost_firewall_wan_router_advertisements_total") >= 1)
                .then_some(())
        },
    );
    let fw = t.lab.netns("fw").unwrap();
    let default_route =
        || ip6_json(&t.lab, &fw, &["route", "show", "default"])[0]["gateway"].clone();
    let before = default_route();
    assert!(before.is_string(), "the ISP's default route");
    // From the ISP: an advertisement whose prefix option says length 0 (RFC 4861 §6.1.2).
    let zero_length = "86000000400007080000000000000000030000000000000000000000";
    send_icmpv6(&t, "isp", "isp0", zero_length, 3);
    wait_for(
        "malformed advertisements counted",
        Duration::from_secs(5),
        || {
            (firewall_metric(
                &t,
                "roost_firewall_wan_router_advertisements_malformed_total",
            ) >= 3)
                .then_some(())
        },
    );
    assert_eq!(default_route(), before, "the default route stays the ISP's");
    // From a LAN client: a valid advertisement of a prefix of its own (a rogue router).
    let rogue = "86000000400007080000000000000000\
                 030440c000015180000038400000000020010db800ba00000000000000000000";
    send_icmpv6(&t, "client-lan", "eth0", rogue, 2);
    wait_for("the rogue router counted", Duration::from_secs(5), || {
        (firewall_metric(&t, "roost_firewall_rogue_router_advertisements_total") >= 2).then_some(())
    });
    // A broken router solicitation (an option of length 0) from the LAN is counted too, and
    // the router still answers good ones.
    let sent_before = firewall_metric(&t, "roost_firewall_router_advertisements_sent_total");
    send_icmpv6(
        &t,
        "client-lan",
        "eth0",
        "85000000000000000100000000000000",
        2,
    );
    wait_for(
        "malformed solicitations counted",
        Duration::from_secs(5),
        || {
            (firewall_metric(&t, "roost_firewall_router_solicitations_malformed_total") >= 2)
                .then_some(())
        },
    );
    send_icmpv6(&t, "client-lan", "eth0", "8500000000000000", 1);
    wait_for("a solicited advertisement", Duration::from_secs(10), || {
        (firewall_metric(&t, "roost_firewall_router_advertisements_sent_total") > sent_before)
            .then_some(())
    });
    // The router takes nothing from the rogue: no address in its prefix, no route through it.
    assert!(addresses_in(&t.lab, &fw, "lan", "2001:db8:ba::/64".parse().unwrap()).is_empty());
    assert_eq!(default_route(), before);
    let routes = ip6_json(&t.lab, &fw, &["route", "show", "dev", "lan", "proto", "ra"]);
    assert_eq!(routes, serde_json::json!([]), "{routes}");
}

/// `curl -sk` in `name`: the status code and the redirect target.
fn curl6(t: &TestLab, name: &str, args: &[&str]) -> String {
    let netns = t.lab.netns(name).unwrap();
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &netns,
            "curl",
            "-sk",
            "-m",
            "5",
            "-o",
            "/dev/null",
        ])
        .args(["-w", "%{http_code} %{redirect_url}"])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn lab_ipv6_the_web_ui_answers_the_lan_at_the_routers_ula_address_and_refuses_guests() {
    let t = TestLab::up("v6l");
    let lan = t.lab.settings().zone_ipv6("lan").unwrap().router;
    let guest = t.lab.settings().zone_ipv6("guest").unwrap().router;
    slaac_address(&t, "client-lan", "lan");
    slaac_address(&t, "client-guest", "guest");
    // The first-run page over IPv6, and port 80 redirecting to HTTPS at the same address.
    let setup = wait_for("the web UI over IPv6", Duration::from_secs(10), || {
        let r = curl6(&t, "client-lan", &[&format!("https://[{lan}]/setup")]);
        r.starts_with("200").then_some(r)
    });
    assert_eq!(setup, "200");
    assert_eq!(
        curl6(&t, "client-lan", &[&format!("http://[{lan}]/dhcp")]),
        format!("308 https://[{lan}]/dhcp")
    );
    // A global source is in no zone (the LAN is known by its ULA /64): refused.
    let prefix = delegated_prefix(&t);
    let global = global_address(&t, "client-lan", global_subnet(&t, "lan", prefix));
    let from_global = curl6(
        &t,
        "client-lan",
        &[
            "--interface",
            &global.to_string(),
            &format!("https://[{lan}]/setup"),
        ],
    );
    assert!(!from_global.starts_with("200"), "{from_global}");
    // Guests reach neither their own router's web port nor the LAN's, over IPv6 as over IPv4;
    // their resolver at the same address answers (the positive twin).
    for port in [443, 80] {
        assert!(
            !connects6(&t, "client-guest", guest, port, DENIED),
            "guest :{port}"
        );
        assert!(
            !connects6(&t, "client-guest", lan, port, DENIED),
            "guest to lan :{port}"
        );
    }
    assert!(
        connects6(&t, "client-guest", guest, 53, ALLOWED),
        "guest dns over tcp"
    );
}
