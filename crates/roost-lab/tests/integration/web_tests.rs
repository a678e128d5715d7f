//! roost-web in the lab: the UI answers the LAN on its router address over HTTPS (port 80
//! redirects) and nobody else — not the guest zone, not the WAN; a change made through its API
//! reaches the daemons (a reservation a real DHCP client then gets, a port forward in the
//! firewall's ruleset).

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;

use roost_config::Service;

use crate::dhcp_tests::{capture_script, last_bound, set_mac, udhcpc};
use crate::{ALLOWED, DENIED, TestLab, sock};

const LAN_ROUTER: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
const GUEST_ROUTER: Ipv4Addr = Ipv4Addr::new(192, 168, 30, 1);
const PASSWORD: &str = "correct horse battery";

/// curl in a namespace, keeping cookies in `jar`; the status and the body.
fn curl(netns: &str, jar: &std::path::Path, args: &[&str]) -> (u16, String) {
    let out = Command::new("ip")
        .args(["netns", "exec", netns, "curl", "-sk", "-m", "10", "-b"])
        .arg(jar)
        .arg("-c")
        .arg(jar)
        .args(["-w", "\n%{http_code}"])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// A logged-in API client in the LAN client's namespace.
pub(crate) struct Admin {
    netns: String,
    jar: PathBuf,
    csrf: String,
}

impl Admin {
    /// Sets the first password (the lab starts without one) and keeps the session.
    pub(crate) fn first_run(t: &TestLab) -> Self {
        let netns = t.lab.netns("client-lan").unwrap();
        let jar = std::env::temp_dir().join(format!("roost-lab-web-{netns}.jar"));
        let _ = std::fs::remove_file(&jar);
        let body = format!(r#"{{"password":"{PASSWORD}"}}"#);
        let (code, answer) = curl(
            &netns,
            &jar,
            &[
                "-X",
                "POST",
                "-H",
                "content-type: application/json",
                "-d",
                &body,
                "https://192.168.1.1/api/setup",
            ],
        );
        assert_eq!(code, 200, "{answer}");
        let csrf = serde_json::from_str::<serde_json::Value>(&answer).unwrap()["csrf"]
            .as_str()
            .unwrap()
            .to_owned();
        Self { netns, jar, csrf }
    }

    pub(crate) fn get(&self, path: &str) -> (u16, String) {
        curl(
            &self.netns,
            &self.jar,
            &[&format!("https://192.168.1.1{path}")],
        )
    }

    pub(crate) fn send(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let csrf = format!("x-csrf-token: {}", self.csrf);
        let url = format!("https://192.168.1.1{path}");
        curl(
            &self.netns,
            &self.jar,
            &[
                "-X",
                method,
                "-H",
                "content-type: application/json",
                "-H",
                &csrf,
                "-d",
                body,
                &url,
            ],
        )
    }
}

impl Drop for Admin {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.jar);
    }
}

#[test]
fn lab_web_answers_the_lan_and_refuses_guest_and_wan() {
    let t = TestLab::up("wa");
    let lan = t.lab.netns("client-lan").unwrap();
    let guest = t.lab.netns("client-guest").unwrap();
    let jar = std::env::temp_dir().join(format!("roost-lab-web-{lan}.jar"));
    // From the LAN, HTTPS on the router address: the first-run page, since no password is set.
    let (code, _) = curl(&lan, &jar, &["https://192.168.1.1/"]);
    assert_eq!(code, 303);
    let (code, page) = curl(&lan, &jar, &["https://192.168.1.1/setup"]);
    assert_eq!(code, 200);
    assert!(page.contains("Set the administrator password"), "{page}");
    // Port 80 only redirects to HTTPS, keeping the path.
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lan,
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
        ])
        .arg("http://192.168.1.1/dhcp")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "308 https://192.168.1.1/dhcp"
    );

    // The guest zone reaches the WAN (the positive twin) but neither its own router address
    // nor the LAN's on 443 or 80.
    let wan = t.wan_address();
    for port in [443, 80] {
        assert!(
            t.connects(&lan, sock(LAN_ROUTER, port), ALLOWED),
            "lan :{port}"
        );
        assert!(
            !t.connects(&guest, sock(GUEST_ROUTER, port), DENIED),
            "guest own router :{port}"
        );
        assert!(
            !t.connects(&guest, sock(LAN_ROUTER, port), DENIED),
            "guest to lan router :{port}"
        );
    }
    assert!(
        t.connects(&guest, sock(roost_lab::plan::isp::HTTP, 80), ALLOWED),
        "guest reaches the ISP"
    );

    // From the WAN (the ISP's namespace): the WAN address does not answer on 443 or 80, nor
    // does the web VM's link address.
    let isp = t.lab.netns("isp").unwrap();
    for port in [443, 80] {
        assert!(!t.connects(&isp, sock(wan, port), DENIED), "wan :{port}");
        assert!(
            !t.connects(&isp, sock(Ipv4Addr::new(10, 254, 0, 14), port), DENIED),
            "web link :{port}"
        );
    }
    let _ = std::fs::remove_file(&jar);
}

#[test]
fn lab_web_reservation_is_applied_by_dhcp() {
    let t = TestLab::up("wr");
    let admin = Admin::first_run(&t);
    let (code, answer) = admin.send(
        "POST",
        "/api/reservations",
        r#"{"zone":"lan","mac":"02:00:00:00:00:50","ip":"192.168.1.50","hostname":"printer2"}"#,
    );
    assert_eq!(code, 200, "{answer}");
    assert!(answer.contains("\"dhcp\""), "pushed to dhcp: {answer}");
    // roost-dhcp has it in force...
    let (code, body) = t.lab.control_get(Service::Dhcp, "/state").unwrap();
    assert_eq!(code, 200);
    let state: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        state["reservations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["ip"] == "192.168.1.50" && r["mac"] == "02:00:00:00:00:50"),
        "{body}"
    );
    // ...and a real client with that MAC gets the address.
    let lan = t.lab.netns("client-lan").unwrap();
    let dir = std::env::temp_dir().join(format!("roost-lab-web-dhcp-{lan}"));
    let (script, out) = capture_script(&dir);
    set_mac(&lan, "02:00:00:00:00:50");
    udhcpc(&lan, &script);
    assert_eq!(last_bound(&out).ip, Ipv4Addr::new(192, 168, 1, 50));
    // Removing it through the API takes it out of dhcp again.
    let (code, answer) = admin.send("DELETE", "/api/reservations/192.168.1.50", "{}");
    assert_eq!(code, 200, "{answer}");
    let (_, body) = t.lab.control_get(Service::Dhcp, "/state").unwrap();
    let state: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        !state["reservations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["ip"] == "192.168.1.50")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn lab_web_port_forward_reaches_the_firewall_ruleset() {
    let mut t = TestLab::up("wf");
    let admin = Admin::first_run(&t);
    let wan = t.wan_address();
    let lan = t.lab.netns("client-lan").unwrap();
    let isp = t.lab.netns("isp").unwrap();
    // A service on the LAN client, closed from the Internet until the forward exists.
    let client = Ipv4Addr::new(192, 168, 1, 99);
    t.listen(&lan, sock(client, 8022));
    assert!(!t.connects(&isp, sock(wan, 2222), DENIED), "no forward yet");
    let body =
        format!(r#"{{"name":"ssh","protocol":"tcp","port":2222,"to":"{client}","to_port":8022}}"#);
    let (code, answer) = admin.send("POST", "/api/port-forwards", &body);
    assert_eq!(code, 200, "{answer}");
    let ruleset = t.lab.run_in("fw", "nft", &["list", "ruleset"]).unwrap();
    assert!(
        ruleset.contains(&format!("tcp dport 2222 dnat ip to {client}:8022")),
        "{ruleset}"
    );
    // And it works: the ISP opens a connection to the WAN address and reaches the client.
    assert!(
        t.connects(&isp, sock(wan, 2222), ALLOWED),
        "the forward carries traffic"
    );
    // A forward the firewall cannot take... is refused by validation before it is pushed:
    // the same outside port twice.
    let (code, answer) = admin.send(
        "POST",
        "/api/port-forwards",
        &body.replace("\"ssh\"", "\"ssh2\""),
    );
    assert_eq!(code, 422, "{answer}");
}
