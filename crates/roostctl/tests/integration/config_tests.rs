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
