//! Each service view holds what its daemon needs and nothing it must not see.

use roost_config::views::{DhcpView, DnsView, FirewallView, MqttView, UpdateView, WebView};
use roost_config::{Service, Settings, View};

use crate::{HASH_A, HASH_B, MINIMAL};

/// Settings with a secret of every kind, each a unique marker string.
fn with_secrets() -> Settings {
    let text = MINIMAL.replace("mode = \"dhcp\"", "mode = \"pppoe\"\nmtu = 1492")
        + &format!(
            r#"
[wan.pppoe]
username = "pppoe-user-marker"
password_file = "/run/secrets/pppoe-password-marker"

[[dhcp.reservations]]
zone = "lan"
mac = "52:54:00:ab:cd:ef"
ip = "192.168.1.10"
hostname = "nas"

[mqtt]
listeners = [{{ zone = "lan" }}]

[[mqtt.users]]
name = "mqtt-user-marker"
password_hash = "{HASH_A}"
publish = ["home/#"]

[web.admin]
user = "admin-marker"
password_hash = "{HASH_B}"
"#
        );
    Settings::from_toml("secrets.toml", &text).unwrap()
}

const ADMIN: [&str; 2] = [HASH_B, "admin-marker"];
const MQTT_USERS: [&str; 2] = [HASH_A, "mqtt-user-marker"];
const PPPOE: [&str; 2] = ["pppoe-user-marker", "pppoe-password-marker"];
const MAC: &str = "52:54:00:ab:cd:ef";

fn assert_excludes(service: Service, forbidden: &[&str]) {
    let text = with_secrets().render_view(service);
    for secret in forbidden {
        assert!(
            !text.contains(secret),
            "{service} view contains {secret}:\n{text}"
        );
    }
}

#[test]
fn dns_view_holds_no_credentials_nor_macs() {
    assert_excludes(
        Service::Dns,
        &[&ADMIN[..], &MQTT_USERS, &PPPOE, &[MAC]].concat(),
    );
}

#[test]
fn dhcp_view_holds_no_credentials() {
    assert_excludes(Service::Dhcp, &[&ADMIN[..], &MQTT_USERS, &PPPOE].concat());
    // It does hold what it needs: the reservation.
    assert!(with_secrets().render_view(Service::Dhcp).contains(MAC));
}

#[test]
fn firewall_view_holds_no_credentials() {
    assert_excludes(
        Service::Firewall,
        &[&ADMIN[..], &MQTT_USERS, &PPPOE, &[MAC]].concat(),
    );
}

#[test]
fn mqtt_view_holds_only_mqtt_users() {
    assert_excludes(Service::Mqtt, &[&ADMIN[..], &PPPOE, &[MAC]].concat());
    assert!(with_secrets().render_view(Service::Mqtt).contains(HASH_A));
}

#[test]
fn update_view_holds_no_credentials_nor_macs() {
    assert_excludes(
        Service::Update,
        &[&ADMIN[..], &MQTT_USERS, &PPPOE, &[MAC]].concat(),
    );
}

#[test]
fn web_view_holds_the_whole_settings_it_edits() {
    let s = with_secrets();
    let view = WebView::from_toml("web.toml", &s.render_view(Service::Web)).unwrap();
    assert_eq!(view.settings, s);
    assert!(!view.peers.iter().any(|p| p.service == Service::Web));
}

#[test]
fn update_view_asks_only_the_web_vm_for_the_routers_health() {
    let s = with_secrets();
    let view = UpdateView::from_toml("update.toml", &s.render_view(Service::Update)).unwrap();
    assert_eq!(view.hostname, s.router.hostname);
    // The update VM holds no other daemon's token: web answers for all of them.
    let peers: Vec<Service> = view.peers.iter().map(|p| p.service).collect();
    assert_eq!(peers, [Service::Web]);
    assert_eq!(
        view.peers[0].url,
        format!("http://{}", s.control_addr(Service::Web))
    );
    assert!(view.peers[0].token_file.ends_with("web"));
    // And the firewall lets it reach exactly that.
    let fw = s.firewall_view();
    let to_web: Vec<_> = fw
        .flows
        .iter()
        .filter(|f| {
            f.from == Service::Update
                && f.to == roost_config::views::FlowTarget::Service(Service::Web)
        })
        .collect();
    assert_eq!(to_web.len(), 1);
    assert_eq!(to_web[0].ports, [s.services.control_port]);
}

#[test]
fn every_view_parses_back_to_itself() {
    let s = with_secrets();
    assert_eq!(
        DnsView::from_toml("dns", &s.dns_view().render()).unwrap(),
        s.dns_view()
    );
    assert_eq!(
        DhcpView::from_toml("dhcp", &s.dhcp_view().render()).unwrap(),
        s.dhcp_view()
    );
    assert_eq!(
        FirewallView::from_toml("fw", &s.firewall_view().render()).unwrap(),
        s.firewall_view()
    );
    assert_eq!(
        MqttView::from_toml("mqtt", &s.mqtt_view().render()).unwrap(),
        s.mqtt_view()
    );
    assert_eq!(
        UpdateView::from_toml("update", &s.update_view().render()).unwrap(),
        s.update_view()
    );
}

#[test]
fn view_loader_rejects_unknown_keys() {
    let text = with_secrets().dns_view().render() + "\nsurprise = 1\n";
    let e = DnsView::from_toml("dns.toml", &text).unwrap_err();
    assert!(
        e.diagnostics
            .iter()
            .any(|d| d.path.to_string().ends_with("surprise") && d.message.contains("unknown key")),
        "{e}"
    );
}

#[test]
fn service_links_are_distinct_30s_inside_the_services_subnet() {
    let s = with_secrets();
    let mut seen = Vec::new();
    for service in Service::ALL {
        let control = s.control_addr(service);
        assert!(s.services.subnet.contains(control.ip()), "{service}");
        assert!(!seen.contains(control.ip()), "{service} shares {control}");
        seen.push(*control.ip());
        if let Some(link) = s.service_link(service) {
            assert_eq!(link.network.prefix_len(), 30);
            assert!(link.network.contains(&link.firewall) && link.network.contains(&link.service));
        }
    }
    // The firewall's control API sits on the web link, so only the web VM reaches it.
    let web = s.service_link(Service::Web).unwrap();
    assert_eq!(*s.control_addr(Service::Firewall).ip(), web.firewall);
}

#[test]
fn firewall_view_publishes_dns_everywhere_and_web_only_where_allowed() {
    let text = MINIMAL.to_owned()
        + "\n[zones.guest]\nsubnet = \"192.168.30.0/24\"\nrouter = \"192.168.30.1\"\nreach = [\"wan\"]\n";
    let s = Settings::from_toml("t", &text).unwrap();
    let fw = s.firewall_view();
    let dns = fw
        .published
        .iter()
        .find(|p| p.service == Service::Dns)
        .unwrap();
    assert_eq!(dns.zones, ["guest", "lan"]);
    let web: Vec<_> = fw
        .published
        .iter()
        .filter(|p| p.service == Service::Web)
        .collect();
    assert_eq!(web.len(), 2);
    assert!(web.iter().all(|p| p.zones == ["lan"]));
}

const ULA_ZONES: &str = r#"
[router]
hostname = "roost"
ula_prefix = "fd12:3456:789a::/48"

[wan]
mode = "dhcp"

[dns]
upstreams = [{ address = "198.51.100.53" }]

[zones.lan]
subnet = "192.168.1.0/24"
router = "192.168.1.1"
reach = ["wan", "iot"]

[zones.iot]
subnet = "192.168.20.0/24"
router = "192.168.20.1"
reach = ["wan"]

[zones.guest]
subnet = "192.168.30.0/24"
router = "192.168.30.1"
ipv6 = false
"#;

fn fw_zone(
    view: &roost_config::views::FirewallView,
    name: &str,
) -> roost_config::views::FirewallZone {
    view.zones.iter().find(|z| z.name == name).unwrap().clone()
}

#[test]
fn firewall_view_gives_each_ipv6_zone_its_64_and_the_router_its_1() {
    let s = Settings::from_toml("t", ULA_ZONES).unwrap();
    let fw = s.firewall_view();
    let lan = fw_zone(&fw, "lan").ipv6.unwrap();
    assert_eq!(lan.subnet.to_string(), "fd12:3456:789a:1::/64");
    assert_eq!(lan.router.to_string(), "fd12:3456:789a:1::1");
    // The index defaults to the subnet's third number: 20 is 0x14.
    let iot = fw_zone(&fw, "iot").ipv6.unwrap();
    assert_eq!(iot.subnet.to_string(), "fd12:3456:789a:14::/64");
    assert_eq!(s.zone_ipv6("iot"), Some(iot));
    // `ipv6 = false` and a missing prefix both mean no IPv6.
    assert_eq!(fw_zone(&fw, "guest").ipv6, None);
    let v4 = Settings::from_toml("t", &ULA_ZONES.replace("ula_prefix", "# ula_prefix")).unwrap();
    assert!(v4.firewall_view().zones.iter().all(|z| z.ipv6.is_none()));
}

#[test]
fn ipv6_prefixes_stay_put_when_a_zone_is_added_or_the_index_is_set() {
    let s = Settings::from_toml("t", ULA_ZONES).unwrap();
    let more = ULA_ZONES.to_owned()
        + "\n[zones.cam]\nsubnet = \"192.168.5.0/24\"\nrouter = \"192.168.5.1\"\n";
    let t = Settings::from_toml("t", &more).unwrap();
    for zone in ["lan", "iot"] {
        assert_eq!(s.zone_ipv6(zone), t.zone_ipv6(zone), "{zone} moved");
    }
    assert_eq!(
        t.zone_ipv6("cam").unwrap().subnet.to_string(),
        "fd12:3456:789a:5::/64"
    );
    let explicit = ULA_ZONES.replace(
        "router = \"192.168.20.1\"",
        "router = \"192.168.20.1\"\nipv6_index = 0x200",
    );
    let u = Settings::from_toml("t", &explicit).unwrap();
    assert_eq!(
        u.zone_ipv6("iot").unwrap().router.to_string(),
        "fd12:3456:789a:200::1"
    );
}

#[test]
fn firewall_view_with_ipv6_parses_back_to_itself() {
    use roost_config::View as _;
    let fw = Settings::from_toml("t", ULA_ZONES).unwrap().firewall_view();
    let back = roost_config::views::FirewallView::from_toml("t", &fw.render()).unwrap();
    assert_eq!(back, fw);
}

#[test]
fn dhcp_view_gives_each_ipv6_zone_the_routers_v6_address_as_its_resolver() {
    use roost_config::View as _;
    let pools = "\n[zones.lan.dhcp]\npool_start = \"192.168.1.100\"\npool_end = \"192.168.1.200\"\n\
        [zones.guest.dhcp]\npool_start = \"192.168.30.100\"\npool_end = \"192.168.30.200\"\n";
    let s = Settings::from_toml("t", &(ULA_ZONES.to_owned() + pools)).unwrap();
    let view = s.dhcp_view();
    let zone = |name: &str| view.zones.iter().find(|z| z.name == name).unwrap();
    assert_eq!(
        zone("lan").ipv6_dns.unwrap().to_string(),
        "fd12:3456:789a:1::1"
    );
    assert_eq!(zone("lan").ipv6_dns, s.zone_ipv6("lan").map(|v6| v6.router));
    // `ipv6 = false`: no DHCPv6 in the zone, and nothing in the rendered view.
    assert_eq!(zone("guest").ipv6_dns, None);
    let text = view.render();
    assert_eq!(text.matches("ipv6_dns").count(), 1, "{text}");
    assert_eq!(DhcpView::from_toml("t", &text).unwrap(), view);
    // Without a prefix no zone has it.
    let v4 = ULA_ZONES.replace("ula_prefix", "# ula_prefix") + pools;
    let v4 = Settings::from_toml("t", &v4).unwrap().dhcp_view();
    assert!(v4.zones.iter().all(|z| z.ipv6_dns.is_none()));
}
