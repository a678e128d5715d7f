//! The real daemon in a firewall namespace, wired to a LAN client, an IoT client and an ISP by
//! veth pairs, with real TCP connections (`nc`, 2 s connect timeout for the ones that must fail).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use roost_config::View as _;
use roost_config::settings::WanMode;
use roost_config::views::FirewallView;

use crate::compile_tests::example_view;
use crate::netns::{Bg, Netns};

const TOKEN: &str = "lab-token-for-tests";

pub(crate) struct Lab {
    // Field order is drop order: the daemon stops before its namespace goes.
    daemon: Bg,
    pub(crate) log: Arc<Mutex<String>>,
    pub(crate) fw: Netns,
    pub(crate) lan: Netns,
    pub(crate) iot: Netns,
    pub(crate) isp: Netns,
    pub(crate) web: Netns,
    pub(crate) dir: PathBuf,
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.daemon.0.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The example view with a static WAN address and the token in `dir`.
pub(crate) fn lab_view(dir: &std::path::Path) -> FirewallView {
    let mut view = example_view();
    view.wan.mode = WanMode::Static;
    view.wan.address = Some("203.0.113.2/24".parse().unwrap());
    view.wan.gateway = Some("203.0.113.1".parse().unwrap());
    view.control.token_file = dir.join("token");
    view
}

impl Lab {
    pub(crate) fn up(tag: &str, view: impl FnOnce(&std::path::Path) -> FirewallView) -> Self {
        let fw = Netns::new(&format!("{tag}fw"));
        let lan = Netns::new(&format!("{tag}lan"));
        let iot = Netns::new(&format!("{tag}iot"));
        let isp = Netns::new(&format!("{tag}isp"));
        let web = Netns::new(&format!("{tag}web"));
        fw.veth("lan", None, &lan, "eth0", "192.168.1.10/24");
        lan.sh("ip route add default via 192.168.1.1");
        fw.veth("iot", None, &iot, "eth0", "192.168.20.10/24");
        iot.sh("ip route add default via 192.168.20.1");
        // The ISP has no route to the private zones: only NAT'd traffic gets answers.
        fw.veth("wan", None, &isp, "eth0", "203.0.113.1/24");
        // The web VM: the control API's only client.
        fw.veth("svc-web", None, &web, "eth0", "10.254.0.14/30");
        let dir = std::env::temp_dir().join(&fw.name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("token"), format!("{TOKEN}\n")).unwrap();
        let view = view(&dir);
        let config = dir.join("firewall.toml");
        std::fs::write(&config, view.render()).unwrap();
        let mut child = fw
            .cmd(env!("CARGO_BIN_EXE_roost-firewall"))
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let daemon = Bg(child);
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("listening on") {
                    let _ = tx.send(());
                }
                sink.lock().unwrap().push_str(&line);
                sink.lock().unwrap().push('\n');
            }
        });
        let lab = Self {
            daemon,
            log,
            fw,
            lan,
            iot,
            isp,
            web,
            dir,
        };
        if rx.recv_timeout(Duration::from_secs(30)).is_err() {
            panic!(
                "roost-firewall did not start listening; log:\n{}",
                lab.log.lock().unwrap()
            );
        }
        lab
    }

    /// `curl` against the control API from the web namespace; returns (status, body).
    pub(crate) fn api(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let mut line = format!(
            "curl -sS -m 5 -o - -w '\\n%{{http_code}}' -X {method} -H 'Authorization: Bearer {TOKEN}' "
        );
        if let Some(b) = body {
            let file = self.dir.join("body.toml");
            std::fs::write(&file, b).unwrap();
            line.push_str(&format!("--data-binary @{} ", file.display()));
        }
        line.push_str(&format!("http://10.254.0.13:9100{path}"));
        let out = self.web.sh(&line);
        let (body, code) = out.rsplit_once('\n').unwrap();
        (code.trim().parse().unwrap(), body.to_owned())
    }

    pub(crate) fn state(&self) -> serde_json::Value {
        let (code, body) = self.api("GET", "/state", None);
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }
}

/// Whether a TCP connection from `from` to `addr:port` opens within 2 s.
pub(crate) fn connects(from: &Netns, addr: &str, port: u16) -> bool {
    from.ok(&format!("nc -z -w 2 {addr} {port}"))
}

fn listen(ns: &Netns, port: u16) -> Bg {
    let bg = ns.spawn(&format!("nc -l -k {port}"));
    ns.wait_listening(port);
    bg
}

#[test]
fn needs_root_lan_reaches_isp_through_nat_but_isp_cannot_open_a_connection_to_lan() {
    let lab = Lab::up("a", lab_view);
    let _isp = listen(&lab.isp, 8080);
    let _lan = listen(&lab.lan, 8081);
    // The ISP has no route to 192.168.1.0/24, so this works only through masquerade.
    assert!(
        connects(&lab.lan, "203.0.113.1", 8080),
        "lan cannot reach the isp"
    );
    // Give the ISP a route to the LAN: the firewall still must not let it in.
    lab.isp.sh("ip route add 192.168.1.0/24 via 203.0.113.2");
    assert!(
        !connects(&lab.isp, "192.168.1.10", 8081),
        "isp opened a connection to lan"
    );
    // The negative check can fail: without the ruleset the same connection opens.
    lab.fw.sh("nft delete table inet roost");
    assert!(
        connects(&lab.isp, "192.168.1.10", 8081),
        "check above was vacuous"
    );
}

#[test]
fn needs_root_iot_cannot_reach_lan_but_lan_reaches_iot() {
    let lab = Lab::up("b", lab_view);
    let _lan = listen(&lab.lan, 8081);
    let _iot = listen(&lab.iot, 8082);
    assert!(
        connects(&lab.lan, "192.168.20.10", 8082),
        "lan cannot reach iot"
    );
    assert!(!connects(&lab.iot, "192.168.1.10", 8081), "iot reached lan");
    assert!(
        !connects(&lab.iot, "10.254.0.13", 9100),
        "iot reached the control api"
    );
}

#[test]
fn needs_root_port_forward_works_from_isp_and_by_hairpin_from_lan() {
    let lab = Lab::up("c", lab_view);
    let _nas = listen(&lab.lan, 443);
    assert!(
        connects(&lab.isp, "203.0.113.2", 8443),
        "port forward from the isp"
    );
    assert!(
        connects(&lab.lan, "203.0.113.2", 8443),
        "hairpin from the lan"
    );
    assert!(
        !connects(&lab.iot, "203.0.113.2", 8443),
        "iot reached lan by hairpin"
    );
    assert!(
        !connects(&lab.isp, "203.0.113.2", 443),
        "unforwarded port open"
    );
}

#[test]
fn needs_root_put_invalid_config_keeps_the_old_ruleset() {
    let lab = Lab::up("d", lab_view);
    let _nas = listen(&lab.lan, 443);
    let before = lab.state();
    let hash = before["ruleset_sha256"].as_str().unwrap().to_owned();
    assert_eq!(hash.len(), 64);
    assert_eq!(before["wan"]["address"], "203.0.113.2/24");

    // Not TOML at all, then valid TOML naming a zone that does not exist.
    let (code, body) = lab.api("PUT", "/config", Some("this is = = not toml"));
    assert_eq!(code, 400, "{body}");
    let mut bad = lab_view(&lab.dir);
    bad.zones[0].reach.push("nowhere".to_owned());
    let (code, body) = lab.api("PUT", "/config", Some(&bad.render()));
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("nowhere"), "{body}");
    assert_eq!(lab.state()["ruleset_sha256"], hash.as_str());
    assert!(connects(&lab.isp, "203.0.113.2", 8443), "old ruleset gone");

    // A valid change is applied, and takes effect.
    let mut good = lab_view(&lab.dir);
    good.port_forwards[0].enabled = false;
    let (code, body) = lab.api("PUT", "/config", Some(&good.render()));
    assert_eq!(code, 200, "{body}");
    assert_ne!(lab.state()["ruleset_sha256"], hash.as_str());
    assert!(
        !connects(&lab.isp, "203.0.113.2", 8443),
        "disabled forward still works"
    );
}

#[test]
fn needs_root_metrics_count_traffic_per_zone_and_need_the_token() {
    let lab = Lab::up("e", lab_view);
    let _isp = listen(&lab.isp, 8080);
    assert!(connects(&lab.lan, "203.0.113.1", 8080));
    let (code, metrics) = lab.api("GET", "/metrics", None);
    assert_eq!(code, 200);
    let line = metrics
        .lines()
        .find(|l| l.starts_with("roost_firewall_zone_packets_total{zone=\"lan\",direction=\"in\"}"))
        .unwrap_or_else(|| panic!("no lan counter in:\n{metrics}"));
    let n: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n > 0, "{line}");
    let (code, _) = lab.api("GET", "/health", None);
    assert_eq!(code, 200);
    let denied = lab
        .web
        .sh("curl -s -o /dev/null -w '%{http_code}' http://10.254.0.13:9100/health");
    assert_eq!(denied.trim(), "401");
}
