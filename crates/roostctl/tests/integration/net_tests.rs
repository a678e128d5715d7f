use std::process::Command;

use roost_config::{Service, Settings};

use crate::example;

/// A namespace removed on drop, even when the test fails.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn net_apply_addresses_a_vm_from_its_view_needs_root() {
    let ns = Netns(format!("roost-t-net-{}", std::process::id()));
    ip(&["netns", "add", &ns.0]);
    // veth pairs: the kernel here has no dummy interfaces; the peers stay unused.
    for iface in ["svc", "lan", "iot", "guest"] {
        let peer = format!("{iface}-peer");
        ip(&[
            "-n", &ns.0, "link", "add", iface, "type", "veth", "peer", "name", &peer,
        ]);
        ip(&["-n", &ns.0, "link", "set", &peer, "up"]);
    }
    let settings = Settings::load(&example()).unwrap();
    let view = std::env::temp_dir().join(format!("roost-t-net-{}.toml", std::process::id()));
    std::fs::write(&view, settings.render_view(Service::Dhcp)).unwrap();
    let status = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.0,
            env!("CARGO_BIN_EXE_roostctl"),
            "net",
            "apply",
        ])
        .arg(&view)
        .status()
        .unwrap();
    std::fs::remove_file(&view).unwrap();
    assert!(status.success());
    let addrs = ip(&["-n", &ns.0, "-4", "-o", "addr", "show"]);
    let expected = settings.vm_network(Service::Dhcp).unwrap();
    for iface in &expected.interfaces {
        let line = format!("{}    inet {}", iface.name, iface.address);
        assert!(addrs.contains(&line), "{line} missing in:\n{addrs}");
    }
    assert!(addrs.contains("lan    inet 192.168.1.2/24"), "{addrs}");
    let routes = ip(&["-n", &ns.0, "route", "show", "default"]);
    assert!(
        routes.contains(&format!("via {}", expected.gateway)),
        "{routes}"
    );
}

#[test]
fn net_apply_refuses_a_view_without_network() {
    let view = std::env::temp_dir().join(format!("roost-t-nonet-{}.toml", std::process::id()));
    let settings = Settings::load(&example()).unwrap();
    std::fs::write(&view, settings.render_view(Service::Firewall)).unwrap();
    let out = crate::roostctl(&["net", "apply", view.to_str().unwrap()], "");
    std::fs::remove_file(&view).unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("[network]"));
}
