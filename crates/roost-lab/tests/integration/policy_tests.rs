//! The routing core in the lab: NAT, port forwards, and the zone and compartment policy, each
//! negative check next to a positive one.

use std::net::Ipv4Addr;
use std::process::Command;

use roost_config::Service;
use roost_lab::plan::isp;

use crate::{ALLOWED, DENIED, TestLab, sock};

const LAN_CLIENT: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 99);
const IOT_CLIENT: Ipv4Addr = Ipv4Addr::new(192, 168, 20, 99);
const NAS: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);

#[test]
fn lab_lan_client_reaches_the_isp_through_nat_seen_as_the_wan_address() {
    let t = TestLab::up("nat");
    let wan = t.wan_address();
    let (code, body) = t
        .lab
        .http_get("client-lan", sock(isp::HTTP, 80), "/")
        .unwrap();
    assert_eq!(code, 200);
    assert_eq!(
        body.trim(),
        format!("client {wan}"),
        "the ISP must see the router, not the client"
    );
}

#[test]
fn lab_isp_cannot_open_a_connection_to_a_lan_client() {
    let mut t = TestLab::up("in");
    let wan = t.wan_address();
    t.listen("client-lan", sock(LAN_CLIENT, 8080));
    // A hostile ISP routes the private range at our WAN address.
    let isp_ns = t.lab.netns("isp").unwrap();
    let ok = Command::new("ip")
        .args([
            "-n",
            &isp_ns,
            "route",
            "add",
            "192.168.0.0/16",
            "via",
            &wan.to_string(),
        ])
        .status()
        .unwrap();
    assert!(ok.success());
    assert!(
        !t.connects("isp", sock(LAN_CLIENT, 8080), DENIED),
        "WAN reached a LAN client"
    );
    // The listener itself answers inside the LAN, and the WAN link carries traffic.
    t.lab
        .add_host("peer", "lan", Ipv4Addr::new(192, 168, 1, 11))
        .unwrap();
    assert!(t.connects("host-peer", sock(LAN_CLIENT, 8080), ALLOWED));
    assert!(t.connects("client-lan", sock(isp::HTTP, 80), ALLOWED));
}

#[test]
fn lab_port_forward_works_from_the_isp_and_from_the_lan_by_hairpin() {
    let mut t = TestLab::up("pf");
    let wan = t.wan_address();
    t.lab.add_host("nas", "lan", NAS).unwrap();
    t.listen("host-nas", sock(NAS, 443));
    // examples/roost.toml forwards tcp 8443 on the WAN address to 192.168.1.10:443.
    assert!(
        t.connects("isp", sock(wan, 8443), ALLOWED),
        "forward from the ISP"
    );
    assert!(
        t.connects("client-lan", sock(wan, 8443), ALLOWED),
        "hairpin from the LAN"
    );
    // Only the forwarded port: the NAS's other ports stay closed to the ISP.
    t.listen("host-nas", sock(NAS, 22));
    assert!(!t.connects("isp", sock(wan, 22), DENIED));
}

#[test]
fn lab_iot_reaches_neither_the_lan_nor_the_service_links() {
    let mut t = TestLab::up("iot");
    t.listen("client-lan", sock(LAN_CLIENT, 8080));
    t.listen("client-iot", sock(IOT_CLIENT, 8080));
    let dns_control = t.lab.settings().control_addr(Service::Dns);
    t.listen("dns", dns_control);
    // LAN may reach IoT (reach = ["wan", "iot"]) ...
    assert!(t.connects("client-lan", sock(IOT_CLIENT, 8080), ALLOWED));
    // ... but IoT reaches neither the LAN nor a service's control API.
    assert!(!t.connects("client-iot", sock(LAN_CLIENT, 8080), DENIED));
    assert!(!t.connects("client-iot", dns_control, DENIED));
    // And it does reach the Internet.
    assert!(t.connects("client-iot", sock(isp::HTTP, 80), ALLOWED));
}

#[test]
fn lab_guest_reaches_only_the_wan() {
    let mut t = TestLab::up("gst");
    t.listen("client-lan", sock(LAN_CLIENT, 8080));
    t.listen("client-iot", sock(IOT_CLIENT, 8080));
    assert!(t.connects("client-guest", sock(isp::HTTP, 80), ALLOWED));
    assert!(!t.connects("client-guest", sock(LAN_CLIENT, 8080), DENIED));
    assert!(!t.connects("client-guest", sock(IOT_CLIENT, 8080), DENIED));
}

#[test]
fn lab_compromised_dns_reaches_neither_the_web_control_api_nor_lan_clients() {
    let mut t = TestLab::up("cmp");
    let s = t.lab.settings().clone();
    let web_control = s.control_addr(Service::Web);
    let dhcp_control = s.control_addr(Service::Dhcp);
    t.listen("web", web_control);
    t.listen("dhcp", dhcp_control);
    t.listen("client-lan", sock(LAN_CLIENT, 8080));
    // The web VM is the control APIs' one client: it reaches dhcp's.
    assert!(t.connects("web", dhcp_control, ALLOWED));
    // A shell in the dns VM reaches neither the web's API, nor dhcp's, nor the LAN.
    assert!(!t.connects("dns", web_control, DENIED));
    assert!(!t.connects("dns", dhcp_control, DENIED));
    assert!(!t.connects("dns", sock(LAN_CLIENT, 8080), DENIED));
}
