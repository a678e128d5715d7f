//! roost-dhcp in the lab: real DHCP clients (udhcpc, dhclient, dhcpcd) in the zone client
//! namespaces get addresses from the dhcp daemon's namespace across the zone bridges, and its
//! leases survive a kill -9.

use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use roost_config::Service;
use roost_lab::plan::CLIENT_IFNAME;

use crate::TestLab;

/// A hook script for all three clients that records reason, address, gateway and DNS.
pub(crate) fn capture_script(dir: &Path) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let out = dir.join("events");
    let script = dir.join("capture.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"reason=${{reason:-$1}} ip=${{ip:-$new_ip_address}} \
             router=${{router:-$new_routers}} dns=${{dns:-$new_domain_name_servers}}\" >> {}\nexit 0\n",
            out.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, out)
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Event {
    pub(crate) reason: String,
    pub(crate) ip: Ipv4Addr,
    pub(crate) router: String,
    pub(crate) dns: String,
}

fn events(out: &Path) -> Vec<Event> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let field = |k: &str| {
                line.split(' ')
                    .find_map(|f| f.strip_prefix(k)?.strip_prefix('='))
                    .unwrap_or("")
                    .to_owned()
            };
            Some(Event {
                reason: field("reason").to_ascii_lowercase(),
                ip: field("ip").parse().ok()?,
                router: field("router"),
                dns: field("dns"),
            })
        })
        .collect()
}

pub(crate) fn last_bound(out: &Path) -> Event {
    events(out)
        .into_iter()
        .rev()
        .find(|e| ["bound", "reboot", "renew"].contains(&e.reason.as_str()))
        .unwrap_or_else(|| panic!("no lease event in {}", out.display()))
}

pub(crate) fn set_mac(netns: &str, mac: &str) {
    let ok = Command::new("ip")
        .args(["-n", netns, "link", "set", CLIENT_IFNAME, "address", mac])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

pub(crate) fn in_ns(netns: &str, program: &str) -> Command {
    let mut cmd = Command::new("timeout");
    cmd.args(["40", "ip", "netns", "exec", netns, program]);
    cmd
}

pub(crate) fn check(cmd: &mut Command) {
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

pub(crate) fn udhcpc(netns: &str, script: &Path) {
    check(
        in_ns(netns, "busybox")
            .args([
                "udhcpc",
                "-n",
                "-q",
                "-f",
                "-t",
                "5",
                "-T",
                "1",
                "-i",
                CLIENT_IFNAME,
                "-s",
            ])
            .arg(script),
    );
}

/// The dhcp daemon's leases, from `/state`.
pub(crate) fn leases(t: &TestLab) -> Vec<serde_json::Value> {
    let (code, body) = t.lab.control_get(Service::Dhcp, "/state").unwrap();
    assert_eq!(code, 200, "{body}");
    let state: serde_json::Value = serde_json::from_str(&body).unwrap();
    state["leases"].as_array().unwrap().clone()
}

pub(crate) fn lease(t: &TestLab, ip: Ipv4Addr) -> serde_json::Value {
    leases(t)
        .into_iter()
        .find(|l| l["ip"] == ip.to_string())
        .unwrap_or_else(|| panic!("no lease for {ip} in /state"))
}

fn assert_lan(e: &Event) {
    assert!(
        (Ipv4Addr::new(192, 168, 1, 100)..=Ipv4Addr::new(192, 168, 1, 250)).contains(&e.ip),
        "{e:?}"
    );
    assert_eq!(e.router, "192.168.1.1", "{e:?}");
    assert_eq!(e.dns, "192.168.1.1", "{e:?}");
}

#[test]
fn lab_dhcp_each_client_type_gets_address_gateway_and_dns_renews_and_releases() {
    let t = TestLab::up("dh");
    let ns = t.lab.netns("client-lan").unwrap();
    let dir = std::env::temp_dir().join(format!("roost-lab-dhcp-{ns}"));
    let (script, out) = capture_script(&dir);

    // udhcpc, then again asking for its address: the same one.
    set_mac(&ns, "02:00:00:00:01:01");
    udhcpc(&ns, &script);
    let u = last_bound(&out);
    assert_lan(&u);
    check(
        in_ns(&ns, "busybox")
            .args([
                "udhcpc",
                "-n",
                "-q",
                "-f",
                "-t",
                "5",
                "-T",
                "1",
                "-i",
                CLIENT_IFNAME,
            ])
            .arg("-r")
            .arg(u.ip.to_string())
            .arg("-s")
            .arg(&script),
    );
    assert_eq!(last_bound(&out).ip, u.ip, "udhcpc renew keeps the address");

    // dhclient: bound, stopped without release, started again (INIT-REBOOT): same address;
    // then released.
    set_mac(&ns, "02:00:00:00:01:02");
    let lf = dir.join("dhclient.leases");
    let pf = dir.join("dhclient.pid");
    let dhclient = |flags: &[&str]| {
        let mut cmd = in_ns(&ns, "dhclient");
        cmd.args(flags)
            .arg("-sf")
            .arg(&script)
            .arg("-lf")
            .arg(&lf)
            .arg("-pf")
            .arg(&pf)
            .arg(CLIENT_IFNAME);
        cmd
    };
    check(&mut dhclient(&["-1"]));
    let d = last_bound(&out);
    assert_lan(&d);
    assert_ne!(d.ip, u.ip, "another MAC, another address");
    check(&mut dhclient(&["-x"]));
    check(&mut dhclient(&["-1"]));
    assert_eq!(
        last_bound(&out).ip,
        d.ip,
        "dhclient renew keeps the address"
    );
    assert_eq!(lease(&t, d.ip)["state"], "bound");
    check(&mut dhclient(&["-r"]));
    let deadline = Instant::now() + Duration::from_secs(10);
    while lease(&t, d.ip)["state"] != "released" {
        assert!(Instant::now() < deadline, "release did not free {}", d.ip);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(lease(&t, d.ip)["active"], false);

    // dhcpcd, one-shot (never -T: it crashes and leaves processes behind).
    set_mac(&ns, "02:00:00:00:01:03");
    check(
        in_ns(&ns, "dhcpcd")
            .args(["-4", "-1", "-B", "-A", "-t", "20", "-f", "/dev/null"])
            .args(["-o", "domain_name_servers", "-c"])
            .arg(&script)
            .arg(CLIENT_IFNAME),
    );
    let p = last_bound(&out);
    assert_lan(&p);
    assert_ne!(p.ip, u.ip, "{p:?}");
    assert_eq!(lease(&t, p.ip)["mac"], "02:00:00:00:01:03");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn lab_dhcp_iot_client_gets_an_iot_address_and_a_reserved_mac_its_address() {
    let t = TestLab::up("dz");
    let iot = t.lab.netns("client-iot").unwrap();
    let dir = std::env::temp_dir().join(format!("roost-lab-dhcp-{iot}"));
    let (script, out) = capture_script(&dir);
    udhcpc(&iot, &script);
    let e = last_bound(&out);
    assert!(
        (Ipv4Addr::new(192, 168, 20, 100)..=Ipv4Addr::new(192, 168, 20, 250)).contains(&e.ip),
        "{e:?}"
    );
    assert_eq!(e.router, "192.168.20.1");
    assert_eq!(lease(&t, e.ip)["zone"], "iot");

    // The example settings reserve 192.168.1.10 for the NAS's MAC.
    let lan = t.lab.netns("client-lan").unwrap();
    set_mac(&lan, "52:54:00:12:34:56");
    udhcpc(&lan, &script);
    let e = last_bound(&out);
    assert_eq!(e.ip, Ipv4Addr::new(192, 168, 1, 10));
    assert_eq!(lease(&t, e.ip)["hostname"], "nas");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn lab_dhcp_kill_9_and_up_again_keeps_every_lease() {
    let t = TestLab::up("dk");
    let dir = std::env::temp_dir().join(format!("roost-lab-dhcp-{}", t.lab.plan().prefix));
    let (script, out) = capture_script(&dir);
    let mut got = Vec::new();
    for (zone, macs) in [("lan", 1..=3u8), ("iot", 4..=5), ("guest", 6..=6)] {
        let ns = t.lab.netns(&format!("client-{zone}")).unwrap();
        for m in macs {
            set_mac(&ns, &format!("02:00:00:00:02:{m:02x}"));
            udhcpc(&ns, &script);
            got.push((last_bound(&out).ip, format!("02:00:00:00:02:{m:02x}")));
        }
    }
    let before = leases(&t);
    assert_eq!(before.len(), got.len(), "{before:#?}");

    let status = t.lab.status().unwrap();
    let pid = status
        .processes
        .iter()
        .find(|p| p.name == "dhcp")
        .and_then(|p| p.pid)
        .expect("dhcp runs");
    assert!(
        Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let after = t.lab.up().unwrap();
    let again = after
        .processes
        .iter()
        .find(|p| p.name == "dhcp")
        .and_then(|p| p.pid)
        .expect("dhcp restarted");
    assert_ne!(again, pid);
    for (ip, mac) in &got {
        let l = lease(&t, *ip);
        assert_eq!(&l["mac"], mac.as_str(), "{l}");
        assert_eq!(l["state"], "bound");
        assert_eq!(l["active"], true);
    }
    assert_eq!(leases(&t), before, "every lease exactly as before");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `dig +short ARGS` from namespace `ns` (full name).
fn dig_short(ns: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "dig", "+time=2", "+tries=1", "+short"])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Polls `dig` until its answer satisfies `want`, or panics after 15 s.
fn wait_for_answer(ns: &str, args: &[&str], what: &str, want: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = dig_short(ns, args);
        if want(&got) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: dig {args:?} says {got:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn lab_lan_client_host_name_resolves_for_other_clients_until_released() {
    let t = TestLab::up("dn");
    let lan = t.lab.netns("client-lan").unwrap();
    let iot = t.lab.netns("client-iot").unwrap();
    let dir = std::env::temp_dir().join(format!("roost-lab-dhcp-{lan}"));
    let (script, out) = capture_script(&dir);
    // dhclient sends option 12 from its config file.
    let conf = dir.join("dhclient.conf");
    std::fs::write(&conf, "send host-name \"laptop\";\n").unwrap();
    set_mac(&lan, "02:00:00:00:03:01");
    let dhclient = |flags: &[&str]| {
        let mut cmd = in_ns(&lan, "dhclient");
        cmd.args(flags)
            .arg("-cf")
            .arg(&conf)
            .arg("-sf")
            .arg(&script)
            .arg("-lf")
            .arg(dir.join("dhclient.leases"))
            .arg("-pf")
            .arg(dir.join("dhclient.pid"))
            .arg(CLIENT_IFNAME);
        cmd
    };
    check(&mut dhclient(&["-1"]));
    let bound = last_bound(&out);
    assert_lan(&bound);
    let addr = bound.ip.to_string();

    // Another client (IoT, through its own router address) resolves the name and the PTR.
    wait_for_answer(
        &iot,
        &["@192.168.20.1", "laptop.home.arpa"],
        "laptop's A record",
        |a| a == addr,
    );
    wait_for_answer(
        &iot,
        &["@192.168.20.1", "-x", &addr],
        "laptop's PTR record",
        |a| a == "laptop.home.arpa.",
    );
    // The LAN side sees it too, and /state says under which name it is published.
    assert_eq!(dig_short(&lan, &["@192.168.1.1", "laptop.home.arpa"]), addr);
    assert_eq!(lease(&t, bound.ip)["name"], "laptop");

    // Released: the name is gone (NXDOMAIN, no address), and so is the PTR.
    check(&mut dhclient(&["-r"]));
    wait_for_answer(
        &iot,
        &["@192.168.20.1", "laptop.home.arpa"],
        "laptop's name after release",
        str::is_empty,
    );
    let status = Command::new("ip")
        .args(["netns", "exec", &iot, "dig", "+time=2", "+tries=1"])
        .args(["@192.168.20.1", "laptop.home.arpa"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("status: NXDOMAIN"),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );
    assert_eq!(dig_short(&iot, &["@192.168.20.1", "-x", &addr]), "");
    let _ = std::fs::remove_dir_all(&dir);
}
