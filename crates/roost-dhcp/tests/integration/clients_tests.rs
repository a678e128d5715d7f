//! Real DHCP clients against the real binary: dhclient (isc-dhcp-client), udhcpc (busybox)
//! and dhcpcd, each in a client namespace on one zone.

use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::{Net, wait_until};

const LAN_GATEWAY: &str = "192.168.1.1";
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// A hook script for all three clients that appends one line per event: reason, address,
/// gateway and DNS, from whichever variables the client sets.
fn capture_script(net: &Net) -> (PathBuf, PathBuf) {
    let out = net.dir.path().join("events");
    let script = net.dir.path().join("capture.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"reason=${{reason:-$1}} ip=${{ip:-$new_ip_address}} \
             router=${{router:-$new_routers}} dns=${{dns:-$new_domain_name_servers}}\" >> {}\n\
             # dhclient leaves configuring to its script: do it, so it can renew by unicast.\n\
             [ \"$reason\" = BOUND ] && ip addr add \"$new_ip_address/24\" dev \"$interface\" 2>/dev/null\n\
             exit 0\n",
            out.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, out)
}

/// Event lines whose reason is one of `reasons`.
fn events(out: &PathBuf, reasons: &[&str]) -> Vec<Event> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .filter_map(Event::parse)
        .filter(|e| reasons.iter().any(|r| e.reason.eq_ignore_ascii_case(r)))
        .collect()
}

#[derive(Debug, Clone)]
struct Event {
    reason: String,
    ip: Ipv4Addr,
    router: String,
    dns: String,
}

impl Event {
    fn parse(line: &str) -> Option<Self> {
        let field = |k: &str| {
            line.split(' ')
                .find_map(|f| f.strip_prefix(k)?.strip_prefix('='))
                .unwrap_or("")
                .to_owned()
        };
        Some(Self {
            reason: field("reason"),
            ip: field("ip").parse().ok()?,
            router: field("router"),
            dns: field("dns"),
        })
    }
}

fn udhcpc(net: &Net, zone: &str, script: &PathBuf) -> std::process::Output {
    let c = net.client(zone);
    Command::new("timeout")
        .args(["30", "ip", "netns", "exec", &c.netns, "busybox", "udhcpc"])
        .args([
            "-n", "-q", "-f", "-t", "5", "-T", "1", "-i", &c.ifname, "-s",
        ])
        .arg(script)
        .output()
        .unwrap()
}

fn assert_lan_config(e: &Event) {
    assert!(
        (Ipv4Addr::new(192, 168, 1, 100)..=Ipv4Addr::new(192, 168, 1, 250)).contains(&e.ip),
        "{e:?}"
    );
    assert_eq!(e.router, LAN_GATEWAY, "{e:?}");
    assert_eq!(e.dns, LAN_GATEWAY, "{e:?}");
}

#[test]
fn needs_root_udhcpc_gets_an_address_gateway_and_dns_and_the_lease_is_in_state() {
    let mut net = Net::new("u", "1h");
    net.start();
    let (script, out) = capture_script(&net);
    let o = udhcpc(&net, "lan", &script);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bound = events(&out, &["bound"]);
    assert_eq!(bound.len(), 1, "{bound:?}");
    assert_lan_config(&bound[0]);
    let lease = net.lease(bound[0].ip).expect("lease in /state");
    assert_eq!(lease["state"], "bound");
    assert_eq!(lease["active"], true);
    assert_eq!(lease["zone"], "lan");
    // The same client again (INIT-REBOOT style with -r): the same address.
    let c = net.client("lan");
    let o = Command::new("timeout")
        .args(["30", "ip", "netns", "exec", &c.netns, "busybox", "udhcpc"])
        .args([
            "-n", "-q", "-f", "-t", "5", "-T", "1", "-i", &c.ifname, "-r",
        ])
        .arg(bound[0].ip.to_string())
        .arg("-s")
        .arg(&script)
        .output()
        .unwrap();
    assert!(o.status.success());
    let again = events(&out, &["bound"]);
    assert_eq!(again.last().unwrap().ip, bound[0].ip);
    assert_eq!(net.metric("roost_dhcp_leases_active{zone=\"lan\"}"), 1);
}

#[test]
fn needs_root_dhclient_gets_a_lease_renews_it_unicast_and_releases_it() {
    // A ten-second lease: dhclient renews (unicast RENEW) after five.
    let mut net = Net::new("d", "10s");
    net.start();
    let (script, out) = capture_script(&net);
    let c = net.client("lan");
    let leases = net.dir.path().join("dhclient.leases");
    let pid = net.dir.path().join("dhclient.pid");
    let dhclient = |extra: &[&str]| {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &c.netns, "dhclient"])
            .args(extra)
            .arg("-sf")
            .arg(&script)
            .arg("-lf")
            .arg(&leases)
            .arg("-pf")
            .arg(&pid)
            .arg(&c.ifname);
        cmd
    };
    net.spawn(
        dhclient(&["-d", "-v"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    );
    let bound = wait_until(CLIENT_TIMEOUT, "dhclient BOUND", || {
        events(&out, &["BOUND"]).first().cloned()
    });
    assert_lan_config(&bound);
    let renewed = wait_until(CLIENT_TIMEOUT, "dhclient RENEW", || {
        events(&out, &["RENEW"]).first().cloned()
    });
    assert_eq!(renewed.ip, bound.ip, "renew keeps the address");
    assert!(net.metric("roost_dhcp_replies_total{type=\"ack\"}") >= 2);
    // Release (dhclient -r also stops the running one).
    let o = dhclient(&["-r", "-v"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    wait_until(
        Duration::from_secs(10),
        "the lease released in /state",
        || (net.lease(bound.ip)?["state"] == "released").then_some(()),
    );
    assert_eq!(net.lease(bound.ip).unwrap()["active"], false);
}

#[test]
fn needs_root_dhcpcd_gets_an_address_gateway_and_dns() {
    let mut net = Net::new("p", "1h");
    net.start();
    let (script, out) = capture_script(&net);
    let c = net.client("lan");
    let o = Command::new("timeout")
        .args(["40", "ip", "netns", "exec", &c.netns, "dhcpcd"])
        .args(["-4", "-1", "-B", "-A", "-t", "20", "-f", "/dev/null"])
        // Without a config file dhcpcd asks for no DNS server; the server only sends what
        // is asked for.
        .args(["-o", "domain_name_servers", "-c"])
        .arg(&script)
        .arg(&c.ifname)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let bound = events(&out, &["BOUND"]);
    assert_eq!(bound.len(), 1, "{bound:?}");
    assert_lan_config(&bound[0]);
    assert_eq!(net.lease(bound[0].ip).unwrap()["state"], "bound");
}

#[test]
fn needs_root_iot_client_gets_an_iot_address() {
    let mut net = Net::new("i", "1h");
    net.start();
    let (script, out) = capture_script(&net);
    assert!(udhcpc(&net, "iot", &script).status.success());
    let e = events(&out, &["bound"]).pop().unwrap();
    assert!(
        (Ipv4Addr::new(192, 168, 20, 100)..=Ipv4Addr::new(192, 168, 20, 250)).contains(&e.ip),
        "{e:?}"
    );
    assert_eq!(e.router, "192.168.20.1");
    assert_eq!(net.lease(e.ip).unwrap()["zone"], "iot");
}

#[test]
fn needs_root_reserved_mac_gets_its_address() {
    let mut net = Net::new("r", "1h");
    net.start();
    let (script, out) = capture_script(&net);
    let c = net.client("lan");
    // The example reserves 192.168.1.10 for 52:54:00:12:34:56 ("nas").
    let status = Command::new("ip")
        .args([
            "-n",
            &c.netns,
            "link",
            "set",
            &c.ifname,
            "address",
            "52:54:00:12:34:56",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(udhcpc(&net, "lan", &script).status.success());
    let e = events(&out, &["bound"]).pop().unwrap();
    assert_eq!(e.ip, Ipv4Addr::new(192, 168, 1, 10));
    let lease = net.lease(e.ip).unwrap();
    assert_eq!(lease["mac"], "52:54:00:12:34:56");
}
