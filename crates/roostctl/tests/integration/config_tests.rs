use std::fs;

use roost_config::View;
use roost_config::views::DnsView;

use crate::{example, roostctl};

#[test]
fn config_check_accepts_the_example() {
    let out = roostctl(&["config", "check", example().to_str().unwrap()], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn config_check_lists_every_error_with_key_and_line_and_exits_1() {
    let dir = std::env::temp_dir().join(format!("roostctl-check-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let file = dir.join("roost.toml");
    let text = fs::read_to_string(example())
        .unwrap()
        .replace("hostname = \"roost\"", "hostname = \"roost_1\"")
        .replace("router = \"192.168.20.1\"", "router = \"192.168.21.1\"")
        .replace("ip = \"192.168.1.10\"", "ip = \"192.168.99.10\"");
    fs::write(&file, &text).unwrap();
    let out = roostctl(&["config", "check", file.to_str().unwrap()], "");
    fs::remove_dir_all(&dir).unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    for (key, needle) in [
        ("router.hostname", "roost_1"),
        ("zones.iot.router", "192.168.21.1"),
        ("dhcp.reservations[0].ip", "192.168.99.10"),
    ] {
        let expected = format!("roost.toml:{}:", line(needle));
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(&expected) && l.contains(key)),
            "{key} at {expected} missing in:\n{stderr}"
        );
    }
    // Only those: a bad router address does not cascade into its derived DHCP server address.
    assert!(stderr.contains("3 errors"), "{stderr}");
}

#[test]
fn config_check_of_a_missing_file_fails_with_its_name() {
    let out = roostctl(&["config", "check", "/nonexistent/roost.toml"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/roost.toml"));
}

#[test]
fn config_show_prints_a_view_the_daemon_can_load() {
    let out = roostctl(
        &[
            "config",
            "show",
            "--service",
            "dns",
            example().to_str().unwrap(),
        ],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let view = DnsView::from_toml("dns.toml", &text).unwrap();
    assert_eq!(view.domain, "home.arpa");
    assert!(!text.contains("reservations"), "{text}");
}

#[test]
fn config_show_refuses_an_unknown_service() {
    let out = roostctl(
        &[
            "config",
            "show",
            "--service",
            "ftp",
            example().to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no service `ftp`"));
}

#[test]
fn config_pppd_prints_the_peer_file_for_a_pppoe_uplink_only() {
    let dir = std::env::temp_dir().join(format!("roostctl-pppd-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let file = dir.join("roost.toml");
    // No [wan.ipv6]: DHCPv6 over PPPoE is refused by validation for now.
    let text = fs::read_to_string(example())
        .unwrap()
        .replacen("[wan.ipv6]\n", "", 1)
        .replacen("prefix_hint = 56\n", "", 1)
        .replacen(
            "mode = \"dhcp\"",
            "mode = \"pppoe\"\npppoe = { username = \"alice@isp\", password_file = \"/var/lib/roost/firewall/pppoe-password\" }",
            1,
        );
    fs::write(&file, &text).unwrap();
    let out = roostctl(&["config", "pppd", file.to_str().unwrap()], "");
    let peer = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(peer.lines().any(|l| l == "user \"alice@isp\""), "{peer}");
    // A user name that would break out of pppd's quoting is refused by validation.
    fs::write(
        &file,
        text.replace("alice@isp", "a\\\" plugin evil.so \\\""),
    )
    .unwrap();
    let out = roostctl(&["config", "pppd", file.to_str().unwrap()], "");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("wan.pppoe.username"));
    // Not PPPoE: nothing to print, exit 1.
    let out = roostctl(&["config", "pppd", example().to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(1));
    fs::remove_dir_all(&dir).unwrap();
}

/// Runs Debian's hostapd on a configuration: Ok(its output) when it read the file without
/// error and went on to set up the radio (which fails here: no wireless device, no nl80211).
fn hostapd_reads(conf: &std::path::Path) -> Result<String, String> {
    let out = std::process::Command::new("timeout")
        .args(["10", "hostapd"])
        .arg(conf)
        .output()
        .expect("hostapd is installed (apt-get install hostapd; scripts/test does)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if text.contains("errors found in configuration file") || text.contains("Line ") {
        return Err(text);
    }
    // Past the configuration, at the driver: what a machine without a radio says.
    assert!(
        text.contains("nl80211") || text.contains("Could not"),
        "hostapd stopped somewhere unexpected: {text}"
    );
    Ok(text)
}

#[test]
fn config_wifi_and_wifi_hostapd_render_a_configuration_hostapd_accepts() {
    let dir = std::env::temp_dir().join(format!("roostctl-wifi-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let secret = |name: &str, value: &str| {
        let path = dir.join(name);
        fs::write(&path, value).unwrap();
        path.display().to_string()
    };
    let wifi = format!(
        r#"
[wifi]
usb_radio = "0bda:8812"
country = "DE"

[wifi.networks.home]
ssid = "Roost Home"
zone = "lan"
passphrase_file = "{home}"
wps = true

[wifi.networks.things]
ssid = "Roost Things"
zone = "iot"
security = "wpa2"
passphrase_file = "{things}"

[wifi.networks.visitors]
ssid = "Roost Guest"
zone = "guest"
security = "wpa3"
passphrase_file = "{visitors}"
"#,
        home = secret("home", "correct horse battery\n"),
        things = secret("things", "iot-devices-only"),
        visitors = secret("visitors", "welcome, friends"),
    );
    let file = dir.join("roost.toml");
    let settings = fs::read_to_string(example()).unwrap() + &wifi;
    fs::write(&file, &settings).unwrap();
    let out = roostctl(&["config", "wifi", file.to_str().unwrap()], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let view = dir.join("wifi.toml");
    fs::write(&view, &out.stdout).unwrap();
    // The view names the passphrase files, never a passphrase.
    assert!(!String::from_utf8_lossy(&out.stdout).contains("horse"));

    let conf = dir.join("hostapd.conf");
    let render = || {
        let (view, conf) = (view.to_str().unwrap(), conf.to_str().unwrap());
        roostctl(&["wifi", "hostapd", view, "--out", conf], "")
    };
    let out = render();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&conf).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = fs::read_to_string(&conf).unwrap();
    assert!(
        text.contains("wpa_passphrase=correct horse battery\n"),
        "{text}"
    );
    hostapd_reads(&conf).unwrap_or_else(|e| panic!("hostapd refused {text}: {e}"));
    // hostapd's own checks do fail on a bad file (so the positive check can fail).
    fs::write(&conf, text.replace("hw_mode=g", "hw_mode=z")).unwrap();
    assert!(hostapd_reads(&conf).is_err());

    // An unusable passphrase: exit 1, the network and file named, nothing written.
    fs::remove_file(&conf).unwrap();
    secret("things", "short");
    let out = render();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("network things") && stderr.contains("8 to 63"),
        "{stderr}"
    );
    assert!(!conf.exists());
    // No [wifi]: exit 1.
    let out = roostctl(&["config", "wifi", example().to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(1));
    fs::remove_dir_all(&dir).unwrap();
}

/// Runs Debian's Kamailio's configuration check (`kamailio -c`) on a configuration.
fn kamailio_accepts(cfg: &std::path::Path) -> Result<String, String> {
    let out = std::process::Command::new("kamailio")
        .args(["-c", "-f"])
        .arg(cfg)
        .output()
        .expect("kamailio is installed (apt-get install kamailio; scripts/test does)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

#[test]
fn config_voip_and_voip_kamailio_render_a_configuration_kamailio_accepts() {
    let dir = std::env::temp_dir().join(format!("roostctl-voip-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let secret = |name: &str, value: &str| {
        let path = dir.join(name);
        fs::write(&path, value).unwrap();
        path.display().to_string()
    };
    let voip = format!(
        r#"
[voip.phones.kitchen]
extension = "101"
password_file = "{kitchen}"

[voip.phones.office]
extension = "102"
password_file = "{office}"
"#,
        kitchen = secret("kitchen", "kitchen phone secret\n"),
        office = secret("office", "office-phone-secret"),
    );
    let file = dir.join("roost.toml");
    fs::write(&file, fs::read_to_string(example()).unwrap() + &voip).unwrap();
    for args in [
        vec!["config", "voip", file.to_str().unwrap()],
        vec![
            "config",
            "show",
            "--service",
            "voip",
            file.to_str().unwrap(),
        ],
    ] {
        let out = roostctl(&args, "");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        fs::write(dir.join("voip.toml"), &out.stdout).unwrap();
    }
    let view = dir.join("voip.toml");
    let cfg = dir.join("kamailio.cfg");
    let render = || {
        roostctl(
            &[
                "voip",
                "kamailio",
                view.to_str().unwrap(),
                "--out",
                cfg.to_str().unwrap(),
            ],
            "",
        )
    };
    let out = render();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&cfg).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = fs::read_to_string(&cfg).unwrap();
    assert!(
        !text.contains("phone secret") && !text.contains("phone-secret"),
        "{text}"
    );
    kamailio_accepts(&cfg).unwrap_or_else(|e| panic!("kamailio refused {text}: {e}"));
    // Kamailio's check does fail on a broken file (so the positive check can fail).
    fs::write(&cfg, text.replace("request_route {", "request_route {{")).unwrap();
    assert!(kamailio_accepts(&cfg).is_err());

    // An unusable password: exit 1, the phone and file named, nothing written.
    fs::remove_file(&cfg).unwrap();
    secret("office", "short");
    let out = render();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("phone office") && stderr.contains("12 to 128"),
        "{stderr}"
    );
    assert!(!cfg.exists());
    // No [voip]: exit 1.
    let out = roostctl(&["config", "voip", example().to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(1));
    fs::remove_dir_all(&dir).unwrap();
}
