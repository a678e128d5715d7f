//! The lab itself: up, status, repair, down.

use std::process::Command;

use roost_config::Service;
use roost_lab::plan::isp;

use crate::TestLab;

fn netns_exists(name: &str) -> bool {
    std::path::Path::new("/run/netns").join(name).exists()
}

#[test]
fn lab_up_makes_every_namespace_and_every_daemon_is_healthy() {
    let t = TestLab::up("up");
    let status = t.lab.status().unwrap();
    assert_eq!(status.namespaces.len(), 11);
    assert!(status.namespaces.iter().all(|n| n.exists), "{status:#?}");
    let fw = status
        .processes
        .iter()
        .find(|p| p.name == "firewall")
        .unwrap();
    assert!(fw.pid.is_some() && fw.healthy == Some(true), "{fw:?}");
    for server in ["isp-dhcp", "isp-dns", "isp-http"] {
        let p = status.processes.iter().find(|p| p.name == server).unwrap();
        assert!(p.pid.is_some(), "{server} is not running");
    }
    // The JSON form carries the interfaces with their addresses.
    let json = serde_json::to_value(&status).unwrap();
    let lan = json["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"].as_str().unwrap().ends_with("-client-lan"))
        .unwrap();
    assert!(
        lan["interfaces"].to_string().contains("192.168.1.99"),
        "{lan}"
    );
}

#[test]
fn lab_up_again_restarts_a_killed_daemon_and_leaves_the_rest() {
    let t = TestLab::up("re");
    let before = t.lab.status().unwrap();
    let pid_of = |s: &roost_lab::Status, name: &str| {
        s.processes
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| p.pid)
    };
    let fw = pid_of(&before, "firewall").unwrap();
    let dns = pid_of(&before, "isp-dns").unwrap();
    assert!(
        Command::new("kill")
            .args(["-9", &fw.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let after = t.lab.up().unwrap();
    let fw_again = pid_of(&after, "firewall").expect("firewall restarted");
    assert_ne!(fw_again, fw);
    assert_eq!(
        pid_of(&after, "isp-dns"),
        Some(dns),
        "a live server must not be restarted"
    );
    assert_eq!(
        t.lab.control_get(Service::Firewall, "/health").unwrap().0,
        200
    );
}

#[test]
fn lab_down_cleans_up_a_half_made_lab_and_nothing_else() {
    let t = TestLab::up("dn");
    let prefix = t.lab.plan().prefix.clone();
    t.lab.down(false).unwrap();
    // A half-made lab: some namespaces, no record of them. And one that is not ours.
    let foreign = format!("{prefix}-foreign");
    for ns in [
        format!("{prefix}-fw"),
        format!("{prefix}-isp"),
        foreign.clone(),
    ] {
        assert!(
            Command::new("ip")
                .args(["netns", "add", &ns])
                .status()
                .unwrap()
                .success()
        );
    }
    t.lab.down(false).unwrap();
    assert!(!netns_exists(&format!("{prefix}-fw")));
    assert!(!netns_exists(&format!("{prefix}-isp")));
    assert!(
        netns_exists(&foreign),
        "down removed a namespace it did not make"
    );
    Command::new("ip")
        .args(["netns", "del", &foreign])
        .status()
        .unwrap();
    for ns in &t.lab.plan().namespaces {
        assert!(!netns_exists(ns), "{ns} left behind");
    }
}

#[test]
fn lab_firewall_gets_its_wan_address_from_the_isp_and_clients_resolve_isp_names() {
    let t = TestLab::up("wn");
    let wan = t.wan_address();
    let (first, last) = isp::DHCP_RANGE;
    assert!(
        (first..=last).contains(&wan),
        "WAN address {wan} is not from the ISP's pool"
    );
    // A LAN client asks the ISP's DNS server through NAT (UDP masquerade) with a real dig.
    let client = t.lab.netns("client-lan").unwrap();
    let out = Command::new("ip")
        .args([
            "netns", "exec", &client, "dig", "+short", "+time=2", "+tries=2",
        ])
        .arg(format!("@{}", isp::DNS))
        .arg("www.isp.test")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        isp::HTTP.to_string()
    );
}

#[test]
fn up_refuses_settings_whose_daemon_is_not_built_and_makes_nothing() {
    // Every daemon but roost-voip, for settings with [voip]: the lab must not come up as a
    // router without its registrar.
    let bin_dir = std::env::temp_dir().join(format!("roost-lab-bins-{}", std::process::id()));
    std::fs::create_dir_all(&bin_dir).unwrap();
    for service in Service::ALL.into_iter().filter(|s| *s != Service::Voip) {
        let name = format!("roost-{service}");
        let _ = std::os::unix::fs::symlink(crate::bin_dir().join(&name), bin_dir.join(&name));
    }
    let settings = bin_dir.join("roost.toml");
    std::fs::write(
        &settings,
        std::fs::read_to_string(crate::repo().join("examples/roost.toml")).unwrap()
            + "\n[voip.phones.kitchen]\nextension = \"101\"\npassword_file = \"/nonexistent\"\n",
    )
    .unwrap();
    let prefix = format!("rt{}nb", std::process::id() % 10_000);
    let lab = roost_lab::Lab::new(roost_lab::LabOptions {
        prefix: prefix.clone(),
        state_dir: bin_dir.join("state"),
        bin_dir: bin_dir.clone(),
        settings,
    })
    .unwrap();
    assert!(lab.daemons().contains(&Service::Voip));
    let err = lab.up().unwrap_err().to_string();
    assert!(
        err.contains("roost-voip") && err.contains("cargo build --workspace"),
        "{err}"
    );
    assert!(!err.contains("roost-dns"), "{err}");
    assert!(
        !netns_exists(&format!("{prefix}-fw")),
        "made namespaces anyway"
    );
    let _ = std::fs::remove_dir_all(&bin_dir);
}
