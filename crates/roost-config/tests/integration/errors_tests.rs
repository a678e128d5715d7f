//! Each class of mistake is reported with its key path and its line, all in one read.

use roost_config::{ConfigErrors, Settings};

use crate::{HASH_A, MINIMAL};

fn errors(text: &str) -> ConfigErrors {
    match Settings::from_toml("roost.toml", text) {
        Ok(_) => panic!("settings were accepted:\n{text}"),
        Err(e) => e,
    }
}

/// (key path, line) of every diagnostic.
fn found(e: &ConfigErrors) -> Vec<(String, usize)> {
    e.diagnostics
        .iter()
        .map(|d| (d.path.to_string(), d.position.map_or(0, |p| p.line)))
        .collect()
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("{needle} not in text"))
}

fn assert_reports(text: &str, path: &str, needle: &str, message_part: &str) {
    let e = errors(text);
    let line = line_of(text, needle);
    let d = e
        .diagnostics
        .iter()
        .find(|d| d.path.to_string() == path)
        .unwrap_or_else(|| panic!("no diagnostic for {path}: {e}"));
    assert_eq!(d.position.map(|p| p.line), Some(line), "{e}");
    assert!(d.message.contains(message_part), "{path}: {}", d.message);
    let shown = e.to_string();
    assert!(shown.contains(&format!("roost.toml:{line}:")), "{shown}");
    assert!(shown.contains(path), "{shown}");
}

#[test]
fn accepts_the_minimal_settings() {
    Settings::from_toml("roost.toml", MINIMAL).unwrap();
}

#[test]
fn reports_unknown_keys_with_path_and_line() {
    let text = MINIMAL.replace("mode = \"dhcp\"", "mode = \"dhcp\"\nmdoe = \"static\"");
    assert_reports(&text, "wan.mdoe", "mdoe", "unknown key");
    let text = format!("{MINIMAL}lease = \"1h\"\n");
    assert_reports(&text, "zones.lan.dhcp.lease", "lease =", "unknown key");
}

#[test]
fn reports_overlapping_subnets() {
    let text =
        format!("{MINIMAL}\n[zones.iot]\nsubnet = \"192.168.0.0/16\"\nrouter = \"192.168.50.1\"\n");
    let e = errors(&text);
    assert!(e.mentions("zones.lan.subnet"), "{e}");
    let text = MINIMAL.replace(
        "[router]",
        "[services]\nsubnet = \"192.168.1.0/26\"\n\n[router]",
    );
    assert_reports(&text, "services.subnet", "192.168.1.0/26", "overlaps");
}

#[test]
fn reports_router_address_outside_its_subnet() {
    let text = MINIMAL.replace("router = \"192.168.1.1\"", "router = \"192.168.2.1\"");
    assert_reports(
        &text,
        "zones.lan.router",
        "192.168.2.1",
        "outside the zone's subnet",
    );
}

#[test]
fn reports_pool_outside_its_subnet() {
    let text = MINIMAL.replace(
        "pool_end = \"192.168.1.200\"",
        "pool_end = \"192.168.2.20\"",
    );
    assert_reports(&text, "zones.lan.dhcp.pool_end", "pool_end", "outside");
}

#[test]
fn reports_reservation_outside_its_zone() {
    let text = format!(
        "{MINIMAL}\n[[dhcp.reservations]]\nzone = \"lan\"\nmac = \"52:54:00:00:00:01\"\nip = \"10.0.0.5\"\n"
    );
    assert_reports(
        &text,
        "dhcp.reservations[0].ip",
        "10.0.0.5",
        "not a client address",
    );
    let text = format!(
        "{MINIMAL}\n[[dhcp.reservations]]\nzone = \"cellar\"\nmac = \"52:54:00:00:00:01\"\nip = \"192.168.1.5\"\n"
    );
    assert_reports(
        &text,
        "dhcp.reservations[0].zone",
        "cellar",
        "no zone named",
    );
}

#[test]
fn reports_duplicated_reservations_by_mac_ip_and_hostname() {
    let reservation = |mac: &str, ip: &str, name: &str| {
        format!(
            "\n[[dhcp.reservations]]\nzone = \"lan\"\nmac = \"{mac}\"\nip = \"{ip}\"\nhostname = \"{name}\"\n"
        )
    };
    let text = format!(
        "{MINIMAL}{}{}{}{}",
        reservation("52:54:00:00:00:01", "192.168.1.5", "nas"),
        reservation("52:54:00:00:00:01", "192.168.1.6", "tv"),
        reservation("52:54:00:00:00:03", "192.168.1.5", "pi"),
        reservation("52:54:00:00:00:04", "192.168.1.8", "NAS"),
    );
    let e = errors(&text);
    let f = found(&e);
    let lines: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.starts_with("[[dhcp.reservations]]"))
        .map(|(i, _)| i + 1)
        .collect();
    assert!(
        f.contains(&("dhcp.reservations[1].mac".into(), lines[1] + 2)),
        "{e}"
    );
    assert!(
        f.contains(&("dhcp.reservations[2].ip".into(), lines[2] + 3)),
        "{e}"
    );
    assert!(
        f.contains(&("dhcp.reservations[3].hostname".into(), lines[3] + 4)),
        "{e}"
    );
    assert_eq!(f.len(), 3, "{e}");
    assert!(
        e.to_string()
            .contains("already used by dhcp.reservations[0].mac"),
        "{e}"
    );
}

#[test]
fn reports_port_forward_to_an_address_in_no_zone() {
    let text = format!(
        "{MINIMAL}\n[[firewall.port_forwards]]\nname = \"game\"\nprotocol = \"udp\"\nport = 3074\nto = \"172.16.0.9\"\n"
    );
    assert_reports(
        &text,
        "firewall.port_forwards[0].to",
        "172.16.0.9",
        "in no zone",
    );
}

#[test]
fn reports_invalid_host_names() {
    let text = MINIMAL.replace("hostname = \"roost\"", "hostname = \"my_router\"");
    assert_reports(
        &text,
        "router.hostname",
        "my_router",
        "not a valid host name",
    );
    let text = format!(
        "{MINIMAL}\n[[dhcp.reservations]]\nzone = \"lan\"\nmac = \"52:54:00:00:00:01\"\nip = \"192.168.1.5\"\nhostname = \"-tv\"\n"
    );
    assert_reports(
        &text,
        "dhcp.reservations[0].hostname",
        "-tv",
        "not a valid host name",
    );
}

#[test]
fn reports_plaintext_passwords_where_hashes_are_required() {
    let text = format!("{MINIMAL}\n[web.admin]\npassword_hash = \"correct horse battery\"\n");
    assert_reports(
        &text,
        "web.admin.password_hash",
        "correct horse",
        "plaintext",
    );
    let text = format!("{MINIMAL}\n[web.admin]\npassword = \"correct horse battery\"\n");
    assert_reports(&text, "web.admin.password", "password =", "roostctl passwd");
    let text = format!(
        "{MINIMAL}\n[[mqtt.users]]\nname = \"plug\"\npassword = \"hunter22\"\npassword_hash = \"{HASH_A}\"\n"
    );
    assert_reports(&text, "mqtt.users[0].password", "hunter22", "plaintext");
}

#[test]
fn reports_pinned_generation_that_is_not_a_number() {
    let text = format!("{MINIMAL}\n[update]\npinned_generation = \"latest\"\n");
    assert_reports(&text, "update.pinned_generation", "latest", "whole number");
    let text = format!("{MINIMAL}\n[update]\npinned_generation = 4.5\n");
    assert_reports(&text, "update.pinned_generation", "4.5", "whole number");
    let text = format!("{MINIMAL}\n[update]\npinned_generation = 42\n");
    let s = Settings::from_toml("roost.toml", &text).unwrap();
    assert_eq!(s.update.pinned_generation.map(|g| g.0), Some(42));
}

#[test]
fn reports_every_error_class_in_one_read() {
    let text = format!(
        r#"
[router]
hostname = "bad_name"

[wan]
mode = "dhcp"
colour = "blue"

[dns]
upstreams = [{{ address = "198.51.100.53" }}]

[zones.lan]
subnet = "192.168.1.0/24"
router = "192.168.9.1"

[zones.lan.dhcp]
pool_start = "192.168.1.100"
pool_end = "192.168.7.200"

[zones.iot]
subnet = "192.168.1.128/25"
router = "192.168.1.129"

[[dhcp.reservations]]
zone = "lan"
mac = "52:54:00:00:00:01"
ip = "192.168.50.5"

[[dhcp.reservations]]
zone = "lan"
mac = "52:54:00:00:00:01"
ip = "192.168.1.6"

[[firewall.port_forwards]]
name = "x"
protocol = "tcp"
port = 80
to = "8.8.8.8"

[web.admin]
password_hash = "letmein123"

[[mqtt.users]]
name = "u"
password_hash = "{HASH_A}"

[update]
pinned_generation = "newest"
"#
    );
    let e = errors(&text);
    let paths: Vec<String> = found(&e).into_iter().map(|(p, _)| p).collect();
    // Type errors (the bad hash, the bad generation) and unknown keys come in the same read.
    for expected in [
        "wan.colour",
        "web.admin.password_hash",
        "update.pinned_generation",
    ] {
        assert!(
            paths.contains(&expected.to_owned()),
            "{expected} missing: {e}"
        );
    }
    // Semantic findings need a file that deserializes; fix the type errors and read again.
    let text = text
        .replace("colour = \"blue\"\n", "")
        .replace(
            "password_hash = \"letmein123\"",
            &format!("password_hash = \"{HASH_A}\""),
        )
        .replace("pinned_generation = \"newest\"", "pinned_generation = 3");
    let e = errors(&text);
    let paths: Vec<String> = found(&e).into_iter().map(|(p, _)| p).collect();
    for expected in [
        "router.hostname",
        "zones.lan.router",
        "zones.lan.dhcp.pool_end",
        "zones.lan.subnet",
        "dhcp.reservations[0].ip",
        "dhcp.reservations[1].mac",
        "firewall.port_forwards[0].to",
    ] {
        assert!(
            paths.contains(&expected.to_owned()),
            "{expected} missing: {e}"
        );
    }
    // In file order, each with a line.
    let lines: Vec<usize> = found(&e).into_iter().map(|(_, l)| l).collect();
    assert!(lines.windows(2).all(|w| w[0] <= w[1]), "{e}");
    assert!(lines.iter().all(|l| *l > 0), "{e}");
}

#[test]
fn reports_static_wan_without_gateway_and_pppoe_without_credentials() {
    let text = MINIMAL.replace(
        "mode = \"dhcp\"",
        "mode = \"static\"\naddress = \"203.0.113.2/24\"",
    );
    assert_reports(&text, "wan.gateway", "[wan]", "needs a gateway");
    let text = MINIMAL.replace("mode = \"dhcp\"", "mode = \"pppoe\"");
    assert_reports(&text, "wan.pppoe", "[wan]", "username and password_file");
}

#[test]
fn reports_unknown_zone_in_reach_and_tls_listener_without_certificate() {
    let text = MINIMAL.replace("reach = [\"wan\"]", "reach = [\"wan\", \"lab\"]");
    assert_reports(
        &text,
        "zones.lan.reach[1]",
        "reach =",
        "no zone named `lab`",
    );
    let text = format!("{MINIMAL}\n[mqtt]\nlisteners = [{{ zone = \"lan\", tls = true }}]\n");
    assert_reports(
        &text,
        "mqtt.listeners[0].tls",
        "listeners",
        "needs [mqtt.tls]",
    );
}

#[test]
fn recursion_takes_root_hints_and_refuses_forwarders_beside_it() {
    let recursive = MINIMAL.replace(
        "upstreams = [{ address = \"198.51.100.53\" }]",
        "recursion = true\nroot_hints = [\"198.51.100.53\"]",
    );
    let s = roost_config::Settings::from_toml("roost.toml", &recursive).unwrap();
    assert!(s.dns.recursion);
    assert_eq!(
        s.dns.root_hints,
        ["198.51.100.53".parse::<std::net::IpAddr>().unwrap()]
    );
    // Forwarders would be silently unused: refused.
    let both = MINIMAL.replace(
        "upstreams = [{ address = \"198.51.100.53\" }]",
        "upstreams = [{ address = \"198.51.100.53\" }]\nrecursion = true",
    );
    assert_reports(
        &both,
        "dns.upstreams",
        "upstreams =",
        "not used while dns.recursion is on",
    );
    // Root hints without recursion would be too.
    let hints = MINIMAL.replace(
        "upstreams = [{ address = \"198.51.100.53\" }]",
        "upstreams = [{ address = \"198.51.100.53\" }]\nroot_hints = [\"198.51.100.1\"]",
    );
    assert_reports(
        &hints,
        "dns.root_hints",
        "root_hints",
        "only with dns.recursion",
    );
    // Neither forwarders nor recursion: nothing could be resolved.
    let none = MINIMAL.replace(
        "upstreams = [{ address = \"198.51.100.53\" }]",
        "upstreams = []",
    );
    assert_reports(
        &none,
        "dns.upstreams",
        "upstreams = []",
        "nothing could be resolved",
    );
}

#[test]
fn reports_publish_permission_on_router_telemetry() {
    let text = format!(
        "{MINIMAL}\n[[mqtt.users]]\nname = \"plug\"\npassword_hash = \"{HASH_A}\"\npublish = [\"roost/wan\"]\n"
    );
    assert_reports(
        &text,
        "mqtt.users[0].publish[0]",
        "roost/wan",
        "only the router",
    );
}

#[test]
fn reports_syntax_errors_with_position() {
    let e = errors("[router]\nhostname = \"roost\n");
    assert_eq!(e.diagnostics.len(), 1);
    assert_eq!(e.diagnostics[0].position.map(|p| p.line), Some(2), "{e}");
    assert!(e.diagnostics[0].message.contains("invalid TOML"), "{e}");
}

#[test]
fn reports_relative_trust_anchor_and_tls_ca_paths() {
    let text = MINIMAL.replace(
        "upstreams = [{ address = \"198.51.100.53\" }]",
        "upstreams = [{ address = \"198.51.100.53\" }]\ntrust_anchor = \"anchors.txt\"\ntls_ca_file = \"ca.pem\"",
    );
    assert_reports(&text, "dns.trust_anchor", "trust_anchor", "absolute path");
    assert_reports(&text, "dns.tls_ca_file", "tls_ca_file", "absolute path");
    let ok = text
        .replace("\"anchors.txt\"", "\"/etc/roost/anchors.txt\"")
        .replace("\"ca.pem\"", "\"/etc/roost/ca.pem\"");
    let s = Settings::from_toml("roost.toml", &ok).unwrap();
    assert_eq!(
        s.dns.tls_ca_file.as_deref(),
        Some(std::path::Path::new("/etc/roost/ca.pem"))
    );
}

/// MINIMAL with `ula` as the router's ULA prefix.
fn with_ula(ula: &str) -> String {
    MINIMAL.replace(
        "hostname = \"roost\"",
        &format!("hostname = \"roost\"\nula_prefix = \"{ula}\""),
    )
}

#[test]
fn accepts_a_ula_prefix() {
    Settings::from_toml("roost.toml", &with_ula("fd12:3456:789a::/48")).unwrap();
}

#[test]
fn reports_a_ula_prefix_outside_fd00_or_not_a_48() {
    for (ula, part) in [
        ("2001:db8:1::/48", "fd00::/8"),
        ("fc00:1:2::/48", "fd00::/8"),
        ("fd12:3456::/32", "is a /32"),
        ("fd12:3456:789a:1::/64", "is a /64"),
        ("fd12:3456:789a::1/48", "write the network address"),
    ] {
        assert_reports(&with_ula(ula), "router.ula_prefix", "ula_prefix", part);
    }
}

#[test]
fn reports_an_ipv6_index_out_of_range() {
    let text = with_ula("fd12:3456:789a::/48")
        .replace("reach = [\"wan\"]", "reach = [\"wan\"]\nipv6_index = 65535");
    assert_reports(&text, "zones.lan.ipv6_index", "ipv6_index", "0..=65534");
}

fn with_wan_ipv6(text: &str, table: &str) -> String {
    text.replace(
        "mode = \"dhcp\"\n",
        &format!("mode = \"dhcp\"\n\n[wan.ipv6]\n{table}\n"),
    )
}

#[test]
fn accepts_wan_ipv6_with_a_ula_prefix_and_defaults_the_hint_to_56() {
    let s = Settings::from_toml(
        "roost.toml",
        &with_wan_ipv6(&with_ula("fd12:3456:789a::/48"), ""),
    )
    .unwrap();
    assert_eq!(s.wan.ipv6.unwrap().prefix_hint, 56);
    assert_eq!(s.firewall_view().wan.ipv6, s.wan.ipv6);
}

#[test]
fn reports_a_prefix_hint_out_of_range() {
    let text = with_wan_ipv6(&with_ula("fd12:3456:789a::/48"), "prefix_hint = 72");
    assert_reports(&text, "wan.ipv6.prefix_hint", "prefix_hint", "48 to 64");
}

#[test]
fn reports_wan_ipv6_without_a_ula_prefix() {
    let text = with_wan_ipv6(MINIMAL, "prefix_hint = 60");
    assert_reports(&text, "wan.ipv6", "[wan.ipv6]", "router.ula_prefix");
}

#[test]
fn reports_duplicate_ipv6_indices_explicit_and_derived() {
    // Explicit: iot claims lan's index 1.
    let iot =
        "\n[zones.iot]\nsubnet = \"192.168.20.0/24\"\nrouter = \"192.168.20.1\"\nipv6_index = 1\n";
    let text = with_ula("fd12:3456:789a::/48") + iot;
    assert_reports(
        &text,
        "zones.lan.ipv6_index",
        "[zones.lan]",
        "duplicate IPv6 index",
    );
    // Derived: 10.1.1.0/24 and 192.168.1.0/24 share their third number.
    let other = "\n[zones.other]\nsubnet = \"10.1.1.0/24\"\nrouter = \"10.1.1.1\"\n";
    let text = with_ula("fd12:3456:789a::/48") + other;
    let e = errors(&text);
    let d = e
        .diagnostics
        .iter()
        .find(|d| d.path.to_string().ends_with("ipv6_index"))
        .unwrap_or_else(|| panic!("{e}"));
    assert!(d.message.contains("set ipv6_index"), "{}", d.message);
    // The same two zones are fine once one is given its own index, or has IPv6 off, or
    // there is no ULA prefix at all.
    let fixed = text.replace(
        "router = \"10.1.1.1\"",
        "router = \"10.1.1.1\"\nipv6_index = 7",
    );
    Settings::from_toml("roost.toml", &fixed).unwrap();
    let off = text.replace(
        "router = \"10.1.1.1\"",
        "router = \"10.1.1.1\"\nipv6 = false",
    );
    Settings::from_toml("roost.toml", &off).unwrap();
    Settings::from_toml("roost.toml", &(MINIMAL.to_owned() + other)).unwrap();
}

fn with_forward(text: &str, ipv6_host: &str) -> String {
    format!(
        "{text}\n[[firewall.port_forwards]]\nname = \"nas\"\nprotocol = \"tcp\"\nport = 8443\nto = \"192.168.1.10\"\nipv6_host = \"{ipv6_host}\"\n"
    )
}

#[test]
fn accepts_a_port_forward_with_an_interface_identifier() {
    let s = Settings::from_toml(
        "roost.toml",
        &with_forward(&with_ula("fd12:3456:789a::/48"), "::10"),
    )
    .unwrap();
    assert_eq!(
        s.firewall.port_forwards[0].ipv6_host,
        Some("::10".parse().unwrap())
    );
}

#[test]
fn reports_an_ipv6_host_that_is_a_whole_address_or_in_a_zone_without_ipv6() {
    let text = with_forward(&with_ula("fd12:3456:789a::/48"), "2001:db8::10");
    assert_reports(
        &text,
        "firewall.port_forwards[0].ipv6_host",
        "ipv6_host",
        "interface identifier",
    );
    let text = with_forward(MINIMAL, "::10");
    assert_reports(
        &text,
        "firewall.port_forwards[0].ipv6_host",
        "ipv6_host",
        "has no IPv6",
    );
}
