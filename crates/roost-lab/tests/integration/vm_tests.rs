//! The lab's VM mode (ADR 0010): every service (the update agent once its test starts it) boots
//! in its own aarch64 VM inside its namespace, and the state disks outlive the lab. The
//! VM-only test needs `ROOST_LAB_VM=1` (after `scripts/vm-assets`) and fails without it
//! (`scripts/test` runs it in its VM pass only); missing assets fail it like every other lab
//! test.

use std::process::Command;

use roost_config::Service;
use roost_lab::{VM_SERVICES, service_netns};

use crate::TestLab;
use crate::dhcp_tests::{capture_script, last_bound, lease, set_mac, udhcpc};

/// A VM-only test fails, rather than passes, when the lab is not in VM mode.
fn require_vm_mode() {
    assert!(
        crate::vm_mode(),
        "VM mode only: run it with ROOST_LAB_VM=1 after scripts/vm-assets"
    );
}

/// IPv4 addresses in namespace `ns` on interfaces other than loopback.
fn ipv4_addresses(ns: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["-j", "-4", "-n", ns, "addr", "show"])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    json.as_array()
        .unwrap()
        .iter()
        .filter(|i| i["ifname"] != "lo")
        .flat_map(|i| i["addr_info"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["local"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn vm_mode_boots_each_vm_service_in_its_own_vm_and_status_shows_boot_time_and_memory() {
    require_vm_mode();
    let t = TestLab::up("vm");
    let status = t.lab.status().unwrap();
    // This router's services (no Wi-Fi in the example), all but the update agent, which its
    // test starts (update_tests).
    let ours = t.lab.settings().services();
    for service in VM_SERVICES
        .iter()
        .filter(|s| ours.contains(s) && **s != Service::Update)
    {
        let p = status
            .processes
            .iter()
            .find(|p| p.name == service.name())
            .unwrap_or_else(|| panic!("{service} is not in the status"));
        let pid = p
            .pid
            .unwrap_or_else(|| panic!("{service}'s VM is not running"));
        assert_eq!(p.healthy, Some(true), "{p:?}");
        // The process in the namespace is qemu, not the daemon.
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
        assert!(
            exe.to_string_lossy().ends_with("qemu-system-aarch64"),
            "{service}: {exe:?}"
        );
        let vm =
            p.vm.unwrap_or_else(|| panic!("{service} has no VM figures"));
        assert!(vm.boot_ms.is_some(), "{service}: {vm:?}");
        let rss = vm.rss_kib.unwrap_or_else(|| panic!("{service}: no RSS"));
        assert!(rss > 0 && rss < 1024 * 1024, "{service}: RSS {rss} KiB");
        assert!(vm.memory_mib <= 256, "{service}: {vm:?}");
        // The guest owns the addresses: its namespace is only the wire.
        let ns = service_netns(&t.lab.plan().prefix, *service);
        assert_eq!(ipv4_addresses(&ns), Vec::<String>::new(), "{ns}");
    }
    // The firewall VM's own nft holds its ruleset (the NAT of the WAN included), and its WAN
    // has the ISP's address: read inside the VM, by its probe.
    let ruleset = t
        .lab
        .run_in("fw", "nft", &["list", "table", "inet", "roost"])
        .unwrap();
    assert!(ruleset.contains("masquerade"), "{ruleset}");
    let wan = t.wan_address();
    let shown = t
        .lab
        .run_in("fw", "ip", &["-4", "addr", "show", "dev", "wan"])
        .unwrap();
    assert!(shown.contains(&wan.to_string()), "{shown}");
}

/// Both modes: the dhcp daemon's state (its directory, or in VM mode its state disk) is kept
/// by `down` without `--purge`, so a lease survives a whole new lab (and VM).
#[test]
fn lease_survives_lab_down_and_up_again() {
    let t = TestLab::up("ld");
    let ns = t.lab.netns("client-lan").unwrap();
    let dir = std::env::temp_dir().join(format!("roost-lab-dhcp-{ns}"));
    let (script, out) = capture_script(&dir);
    set_mac(&ns, "02:00:00:00:04:01");
    udhcpc(&ns, &script);
    let got = last_bound(&out).ip;

    t.lab.down(false).unwrap();
    t.lab.up().unwrap();
    let l = lease(&t, got);
    assert_eq!(l["mac"], "02:00:00:00:04:01", "{l}");
    assert_eq!(l["state"], "bound", "{l}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// What `https://192.168.1.1/` answers a LAN client: status and redirect target.
fn web_root(ns: &str) -> String {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "curl",
            "-sk",
            "-m",
            "10",
            "-o",
            "/dev/null",
        ])
        .args(["-w", "%{http_code} %{redirect_url}", "https://192.168.1.1/"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The SHA-256 fingerprint of the certificate the web UI presents to a LAN client.
fn web_certificate(ns: &str) -> String {
    let script = "openssl s_client -connect 192.168.1.1:443 </dev/null 2>/dev/null \
                  | openssl x509 -noout -fingerprint -sha256";
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "sh", "-c", script])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(text.contains("Fingerprint="), "no certificate: {text}");
    text
}

/// Both modes: the web daemon's state (in VM mode its state disk) is kept by `down` without
/// `--purge`: the password set on the first-run page (a settings version in its store) and
/// its self-signed certificate are still there in a whole new lab (and VM).
#[test]
fn web_password_and_certificate_survive_lab_down_and_up_again() {
    let t = TestLab::up("wd");
    let lan = t.lab.netns("client-lan").unwrap();
    assert_eq!(web_root(&lan), "303 https://192.168.1.1/setup");
    drop(crate::web_tests::Admin::first_run(&t));
    assert_eq!(web_root(&lan), "303 https://192.168.1.1/login");
    let certificate = web_certificate(&lan);

    t.lab.down(false).unwrap();
    t.lab.up().unwrap();
    assert_eq!(web_root(&lan), "303 https://192.168.1.1/login");
    assert_eq!(web_certificate(&lan), certificate);
}
