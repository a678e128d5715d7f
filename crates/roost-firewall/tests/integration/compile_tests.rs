use roost_config::Settings;
use roost_config::views::FirewallView;
use roost_firewall::{WanState, check, compile};

pub(crate) fn example_view() -> FirewallView {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/roost.toml");
    Settings::load(std::path::Path::new(path))
        .unwrap()
        .firewall_view()
}

pub(crate) fn example_wan() -> WanState {
    WanState {
        address: Some("203.0.113.2/24".parse().unwrap()),
        gateway: Some("203.0.113.1".parse().unwrap()),
        delegated: Some("2001:db8:1200::/56".parse().unwrap()),
    }
}

/// Compares `text` with the golden file `name`; `BLESS=1` rewrites it instead.
fn golden(name: &str, text: &str) {
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, text).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e} (run with BLESS=1 to create it)"));
    if want != text {
        let first = want
            .lines()
            .zip(text.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(want.lines().count().min(text.lines().count()));
        panic!(
            "ruleset differs from {path} at line {}:\n  golden: {:?}\n  now:    {:?}\n\
             (if the change is intended, run with BLESS=1 and review the diff)",
            first + 1,
            want.lines().nth(first),
            text.lines().nth(first)
        );
    }
}

#[test]
fn example_ruleset_matches_golden_file() {
    let r = compile(&example_view(), &example_wan()).unwrap();
    golden("example.nft", r.text());
}

#[test]
fn example_ruleset_without_wan_address_matches_golden_file() {
    let r = compile(&example_view(), &WanState::default()).unwrap();
    golden("example-no-wan.nft", r.text());
}

/// The example settings with a PPPoE uplink.
pub(crate) fn pppoe_settings() -> Settings {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/roost.toml");
    // DHCPv6 over PPPoE is refused by validation: no [wan.ipv6] here.
    let text = std::fs::read_to_string(path)
        .unwrap()
        .replacen("[wan.ipv6]\n", "", 1)
        .replacen("prefix_hint = 56\n", "", 1)
        .replacen(
            "mode = \"dhcp\"",
            "mode = \"pppoe\"\npppoe = { username = \"alice@isp\", password_file = \"/var/lib/roost/firewall/pppoe-password\", service_name = \"fiber\" }",
            1,
        );
    Settings::from_toml("roost.toml", &text).unwrap()
}

#[test]
fn pppoe_ruleset_uses_ppp0_as_the_wan_and_clamps_the_mss() {
    let r = compile(&pppoe_settings().firewall_view(), &example_wan()).unwrap();
    golden("example-pppoe.nft", r.text());
    let text = r.text();
    assert!(
        text.contains("oifname \"ppp0\" meta nfproto ipv4 masquerade"),
        "{text}"
    );
    assert!(text.contains("iifname \"ppp0\" jump from_wan"));
    assert!(
        !text.contains("udp sport 67 udp dport 68"),
        "no DHCP client over PPPoE"
    );
    assert!(text.contains("maxseg size set rt mtu"));
}

#[test]
fn compiling_is_deterministic() {
    let a = compile(&example_view(), &example_wan()).unwrap();
    let b = compile(&example_view(), &example_wan()).unwrap();
    assert_eq!(a.sha256(), b.sha256());
}

#[test]
fn wan_address_change_changes_the_ruleset_hash() {
    let a = compile(&example_view(), &example_wan()).unwrap();
    let mut wan = example_wan();
    wan.address = Some("203.0.113.9/24".parse().unwrap());
    let b = compile(&example_view(), &wan).unwrap();
    assert_ne!(a.sha256(), b.sha256());
    assert!(b.text().contains("ip daddr 203.0.113.9 tcp dport 8443"));
}

#[test]
fn iot_and_guest_chains_reach_only_wan_dns_and_mqtt() {
    let r = compile(&example_view(), &example_wan()).unwrap();
    for zone in ["iot", "guest"] {
        let chain = chain(r.text(), &format!("from_{zone}"));
        for line in chain.lines() {
            assert!(
                line.contains("oifname \"wan\" accept")
                    || line.contains("oifname \"svc-dns\" ip daddr 10.254.0.6 meta l4proto { tcp, udp } th dport 53 ct status dnat")
                    || line.contains("oifname \"svc-dns\" ip6 daddr fd12:3456:789a:ffff::6 meta l4proto { tcp, udp } th dport 53 ct status dnat")
                    || line.contains("oifname \"svc-mqtt\" ip daddr 10.254.0.18 tcp dport 1883 ct status dnat")
                    || line.contains("oifname \"svc-mqtt\" ip6 daddr fd12:3456:789a:ffff::12 tcp dport 1883 ct status dnat"),
                "{zone} may do more than allowed: {line}"
            );
        }
        assert!(!chain.contains("\"lan\""), "{zone} reaches lan");
        assert!(!chain.contains("9100"), "{zone} reaches a control api");
    }
}

#[test]
fn wan_gets_nothing_but_port_forwards() {
    let r = compile(&example_view(), &example_wan()).unwrap();
    let chain = chain(r.text(), "from_wan");
    let lines: Vec<&str> = chain.lines().collect();
    assert_eq!(lines.len(), 2, "{chain}");
    assert!(lines[0].contains("pinhole nas-https"));
    assert!(lines[1].contains("ct status dnat accept"));
}

#[test]
fn disabled_port_forward_is_not_compiled() {
    let mut view = example_view();
    view.port_forwards[0].enabled = false;
    let r = compile(&view, &example_wan()).unwrap();
    assert!(!r.text().contains("8443"));
}

#[test]
fn invalid_views_are_refused_with_every_problem() {
    let mut view = example_view();
    view.zones[0].interface = "lan; flush ruleset".to_owned();
    view.zones[1].reach.push("nowhere".to_owned());
    view.port_forwards[0].to = "10.9.9.9".parse().unwrap();
    let err = check(&view).unwrap_err();
    assert_eq!(err.0.len(), 3, "{err}");
    assert!(compile(&view, &example_wan()).is_err());
}

#[test]
fn rendered_view_round_trips_to_the_same_ruleset() {
    use roost_config::View as _;
    let view = example_view();
    let back = FirewallView::from_toml("t", &view.render()).unwrap();
    assert_eq!(
        compile(&view, &example_wan()).unwrap(),
        compile(&back, &example_wan()).unwrap()
    );
}

/// The body of `chain NAME { ... }`.
pub(crate) fn chain(text: &str, name: &str) -> String {
    let start = text
        .find(&format!("chain {name} {{"))
        .unwrap_or_else(|| panic!("no chain {name}"));
    let body = &text[start..];
    let end = body.find("\n\t}").unwrap();
    body[..end]
        .lines()
        .skip(1)
        .map(|l| format!("{}\n", l.trim()))
        .collect()
}

#[test]
fn ipv6_sources_must_be_in_the_zone_64_and_a_zone_without_ipv6_forwards_none() {
    let mut view = example_view();
    let guest = view.zones.iter_mut().find(|z| z.name == "guest").unwrap();
    guest.ipv6 = None;
    let r = compile(&view, &example_wan()).unwrap();
    let forward = chain(r.text(), "forward");
    // The zone's ULA /64 and its /64 of the delegated prefix (index 1 of 2001:db8:1200::/56).
    assert!(
        forward.contains(
            "iifname \"lan\" ip6 saddr != { fd12:3456:789a:1::/64, 2001:db8:1200:1::/64 } drop"
        ),
        "{forward}"
    );
    // Before a prefix is delegated, the ULA /64 alone.
    let no_prefix = WanState {
        delegated: None,
        ..example_wan()
    };
    let forward_ula = chain(compile(&view, &no_prefix).unwrap().text(), "forward").to_owned();
    assert!(
        forward_ula.contains("iifname \"lan\" ip6 saddr != fd12:3456:789a:1::/64 drop"),
        "{forward_ula}"
    );
    // ULA sources never leave through the WAN, refused so hosts fall back at once.
    assert!(
        forward.contains("oifname \"wan\" ip6 saddr fc00::/7 reject with icmpv6 type policy-fail")
    );
    assert!(forward.contains("iifname \"guest\" meta nfproto ipv6 drop"));
    // Each check comes before the zone's jump, so no v6 packet gets to `reach` unchecked.
    let check = forward
        .find("iifname \"guest\" meta nfproto ipv6 drop")
        .unwrap();
    assert!(check < forward.find("jump from_guest").unwrap());
}

#[test]
fn nat_and_port_forwards_stay_ipv4_and_the_wan_opens_nothing_over_ipv6() {
    let r = compile(&example_view(), &example_wan()).unwrap();
    assert!(
        r.text()
            .contains("oifname \"wan\" meta nfproto ipv4 masquerade")
    );
    // Over IPv6 the WAN opens only the example's pinhole: the NAS's port 443 at `::10` of
    // the LAN's delegated /64.
    for line in chain(r.text(), "from_wan").lines() {
        assert!(
            line.contains(" ip daddr ")
                || line.contains(
                    "oifname \"lan\" ip6 daddr 2001:db8:1200:1::10 tcp dport 443 accept comment \"pinhole nas-https\""
                ),
            "not v4-only: {line}"
        );
    }
    let no_prefix = WanState {
        delegated: None,
        ..example_wan()
    };
    let r = compile(&example_view(), &no_prefix).unwrap();
    assert!(
        !chain(r.text(), "from_wan").contains("ip6"),
        "no pinhole without a prefix"
    );
    // Router discovery and neighbour discovery only from on-link (hop limit 255).
    let input = chain(r.text(), "input");
    let nd = input
        .lines()
        .find(|l| l.contains("nd-router-solicit"))
        .unwrap();
    assert!(nd.contains("ip6 hoplimit 255 accept"), "{nd}");
    assert!(input.contains("packet-too-big"));
}

#[test]
fn pppoe_peer_file_names_the_nic_the_user_and_the_service_but_no_password() {
    let s = pppoe_settings();
    let peer = s.pppd_peer().unwrap();
    for line in [
        "plugin pppoe.so",
        "nic-eth0",
        "ifname ppp0",
        "user \"alice@isp\"",
        "rp_pppoe_service \"fiber\"",
        "persist",
        "maxfail 0",
        "mtu 1492",
    ] {
        assert!(peer.lines().any(|l| l == line), "{line} missing:\n{peer}");
    }
    assert!(
        !peer.lines().any(|l| l.starts_with("password")),
        "the password never goes into the peer file"
    );
    // Not PPPoE: no peer file.
    assert!(
        roost_config::Settings::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/roost.toml"
        )))
        .unwrap()
        .pppd_peer()
        .is_none()
    );
}
