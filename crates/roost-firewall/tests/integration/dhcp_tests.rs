//! The WAN DHCP client against a real server (dnsmasq in the ISP namespace).

use std::time::Duration;

use roost_config::settings::WanMode;

use crate::netns::wait_until;
use crate::traffic_tests::{Lab, connects, lab_view};

#[test]
fn needs_root_wan_gets_its_address_by_dhcp_and_lan_reaches_isp_through_it() {
    let lab = Lab::up("f", |dir| {
        let mut v = lab_view(dir);
        v.wan.mode = WanMode::Dhcp;
        v.wan.address = None;
        v.wan.gateway = None;
        v
    });
    assert_eq!(lab.state()["wan"]["address"], serde_json::Value::Null);
    let _dnsmasq = lab.isp.spawn(&format!(
        "dnsmasq --no-daemon --conf-file=/dev/null --port=0 --interface=eth0 --bind-interfaces \
         --dhcp-range=203.0.113.50,203.0.113.50,255.255.255.0,2m \
         --dhcp-option=option:router,203.0.113.1 --dhcp-leasefile={}/leases --pid-file={}/dnsmasq.pid",
        lab.dir.display(),
        lab.dir.display()
    ));
    wait_until(Duration::from_secs(30), || {
        lab.state()["wan"]["address"] == "203.0.113.50/24"
    });
    let state = lab.state();
    assert_eq!(state["wan"]["gateway"], "203.0.113.1");
    assert_eq!(state["wan"]["dhcp"], "bound");
    // The lease is on the interface and the default route goes through the ISP.
    assert!(
        lab.fw
            .sh("ip -4 addr show dev wan")
            .contains("203.0.113.50/24")
    );
    assert!(
        lab.fw
            .sh("ip route show default")
            .contains("via 203.0.113.1 dev wan")
    );
    // Hairpin now uses the leased address.
    assert!(
        lab.fw
            .sh("nft list chain inet roost prerouting")
            .contains("ip daddr 203.0.113.50")
    );
    let _isp = lab.isp.spawn("nc -l -k 8080");
    lab.isp.wait_listening(8080);
    assert!(
        connects(&lab.lan, "203.0.113.1", 8080),
        "lan cannot reach the isp via the lease"
    );
}
