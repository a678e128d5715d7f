//! The Wi-Fi access point in the lab (ADR 0013): the Wi-Fi VM runs hostapd on the networks
//! `[wifi]` declares, on mac80211_hwsim's first radio; the lab's station is the second radio
//! in the VM's `station` namespace (the simulated air is one kernel's), driven through
//! wpa_cli. It joins with WPA3-SAE and through the WPS push button, and gets its lease from
//! roost-dhcp across the zone bridge, as a wired client does. The WPS button is pressed from
//! the web UI's API, which reaches roost-wifi's control API in the Wi-Fi VM (only the web VM
//! may). The Wi-Fi VM is a VM in both lab modes, so this test needs `scripts/vm-assets` in
//! both.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use roost_config::Service;

use crate::web_tests::Admin;
use crate::{ALLOWED, DENIED, TestLab};

const HOME_PASSPHRASE: &str = "correct horse battery";
const THINGS_PASSPHRASE: &str = "staple things 2026";

/// The example settings with two networks in the lan zone: `home` (WPA2/WPA3, WPS) and
/// `things` (WPA3 only), their passphrases in `dir`.
fn settings(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let home = dir.join("home");
    let things = dir.join("things");
    std::fs::write(&home, format!("{HOME_PASSPHRASE}\n")).unwrap();
    std::fs::write(&things, format!("{THINGS_PASSPHRASE}\n")).unwrap();
    let example = std::fs::read_to_string(crate::repo().join("examples/roost.toml")).unwrap();
    let path = dir.join("roost.toml");
    std::fs::write(
        &path,
        format!(
            "{example}
[wifi]
usb_radio = \"0bda:8812\"
country = \"DE\"

[wifi.networks.home]
ssid = \"Roost Home\"
zone = \"lan\"
passphrase_file = \"{}\"
wps = true

[wifi.networks.things]
ssid = \"Roost Things\"
zone = \"lan\"
security = \"wpa3\"
passphrase_file = \"{}\"
",
            home.display(),
            things.display()
        ),
    )
    .unwrap();
    path
}

/// `wpa_cli` on the station's interface; its output (an error when it exits non-zero).
fn wpa_cli(t: &TestLab, args: &[&str]) -> String {
    let mut argv = vec!["-p", "/run/wpa_supplicant", "-i", "wlan1"];
    argv.extend_from_slice(args);
    t.lab.run_in("wifi", "wpa_cli", &argv).unwrap()
}

/// Tells the station to join `ssid` with SAE and `passphrase` (protected management frames
/// required, as WPA3 has them).
fn join_sae(t: &TestLab, ssid: &str, passphrase: &str) {
    wpa_cli(t, &["remove_network", "all"]);
    let id = wpa_cli(t, &["add_network"]).trim().to_owned();
    for (key, value) in [
        ("ssid", format!("\"{ssid}\"")),
        ("key_mgmt", "SAE".to_owned()),
        ("sae_password", format!("\"{passphrase}\"")),
        ("ieee80211w", "2".to_owned()),
    ] {
        assert_eq!(
            wpa_cli(t, &["set_network", &id, key, &value]).trim(),
            "OK",
            "{key}"
        );
    }
    assert_eq!(wpa_cli(t, &["enable_network", &id]).trim(), "OK");
}

/// The station's `wpa_cli status` once it is associated and keyed (`wpa_state=COMPLETED`),
/// or `None` when it is not within `within`.
fn completed(t: &TestLab, within: Duration) -> Option<String> {
    let deadline = Instant::now() + within;
    loop {
        let status = wpa_cli(t, &["status"]);
        if status.lines().any(|l| l == "wpa_state=COMPLETED") {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
}

#[test]
fn lab_wifi_station_joins_with_wpa3_and_wps_and_gets_a_lease() {
    let dir = std::env::temp_dir().join(format!("roost-wifi-test-{}", std::process::id()));
    let t = TestLab::up_with("wifi", &settings(&dir));

    // A wrong passphrase does not get in; the right one, on the same steps, does.
    join_sae(&t, "Roost Things", "not the passphrase");
    assert!(
        completed(&t, Duration::from_secs(10)).is_none(),
        "joined with a wrong passphrase"
    );
    join_sae(&t, "Roost Things", THINGS_PASSPHRASE);
    let status = completed(&t, Duration::from_secs(60)).expect("the station did not join");
    assert_eq!(field(&status, "ssid"), Some("Roost Things"), "{status}");
    assert_eq!(field(&status, "key_mgmt"), Some("SAE"), "{status}");
    assert_eq!(field(&status, "pmf"), Some("2"), "{status}");
    let mac = field(&status, "address").unwrap().to_owned();

    // Its lease comes from roost-dhcp through the Wi-Fi VM's bridge into the lan zone.
    let out = t
        .lab
        .run_in(
            "wifi",
            "ip",
            &[
                "netns",
                "exec",
                "station",
                "udhcpc",
                "-i",
                "wlan1",
                "-n",
                "-q",
                "-t",
                "10",
                "-T",
                "2",
                "-s",
                "/etc/udhcpc/default.script",
            ],
        )
        .unwrap();
    let addr: Ipv4Addr = t
        .lab
        .run_in(
            "wifi",
            "ip",
            &["-n", "station", "-4", "-o", "addr", "show", "dev", "wlan1"],
        )
        .unwrap()
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|cidr| cidr.split('/').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no address after udhcpc: {out}"));
    let lan = &t.lab.settings().zones["lan"];
    assert!(lan.subnet.contains(&addr), "{addr} is not in lan");
    let (code, body) = t.lab.control_get(Service::Dhcp, "/state").unwrap();
    assert_eq!(code, 200, "{body}");
    let state: serde_json::Value = serde_json::from_str(&body).unwrap();
    let lease = state["leases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["ip"] == addr.to_string())
        .unwrap_or_else(|| panic!("no lease for {addr}: {body}"))
        .clone();
    assert_eq!(lease["mac"], mac.as_str(), "{lease}");
    // The firewall routes it like any lan client: its router answers.
    let router = lan.router.to_string();
    t.lab
        .run_in(
            "wifi",
            "ip",
            &[
                "netns", "exec", "station", "ping", "-c", "1", "-W", "5", &router,
            ],
        )
        .unwrap();

    // Only the web VM may call the Wi-Fi VM's control API.
    let control = t.lab.settings().control_addr(Service::Wifi);
    assert!(t.connects("web", control, ALLOWED), "web -> wifi control");
    assert!(!t.connects("dns", control, DENIED), "dns -> wifi control");

    // The web UI shows the station on its network.
    let admin = Admin::first_run(&t);
    let (code, body) = admin.get("/api/wifi");
    assert_eq!(code, 200, "{body}");
    let wifi: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(wifi["state"], "ENABLED", "{wifi}");
    let network = |name: &str| {
        wifi["networks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == name)
            .unwrap_or_else(|| panic!("no network {name}: {wifi}"))
            .clone()
    };
    assert_eq!(network("things")["stations"], 1, "{wifi}");
    assert_eq!(network("home")["stations"], 0, "{wifi}");
    assert_eq!(network("home")["wps_button"], "disabled", "{wifi}");
    let (code, page) = admin.get("/wifi");
    assert_eq!(code, 200, "{page}");
    for text in [
        "Roost Things",
        "Roost Home",
        "Press the WPS button",
        r#"href="/wifi""#,
    ] {
        assert!(page.contains(text), "{text}: {page}");
    }

    // WPS: the web UI's button and the station's; the station gets the home network's
    // credentials and joins it.
    wpa_cli(&t, &["remove_network", "all"]);
    let (code, body) = admin.send("POST", "/api/wifi/wps", "");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("Roost Home"), "{body}");
    let (_, body) = admin.get("/api/wifi");
    assert!(body.contains(r#""wps_button":"active""#), "{body}");
    assert_eq!(wpa_cli(&t, &["wps_pbc"]).trim(), "OK");
    let status = completed(&t, Duration::from_secs(90)).expect("WPS did not join the station");
    assert_eq!(field(&status, "ssid"), Some("Roost Home"), "{status}");
    assert_eq!(field(&status, "key_mgmt"), Some("WPA2-PSK"), "{status}");

    // The same button inside the Wi-Fi VM, for an administrator at its console.
    let pressed = t
        .lab
        .run_in("wifi", "roostctl", &["wifi", "wps", "/etc/roost/wifi.toml"])
        .unwrap();
    assert!(
        pressed.contains("push button pressed on network home"),
        "{pressed}"
    );

    let _ = std::fs::remove_dir_all(&dir);
}
