//! roost-mqtt in the lab: devices reach the broker at their zone's router address, port 1883
//! (the firewall DNATs it to the mqtt namespace and keeps the source, so the broker knows the
//! zone). An IoT sensor publishes, a LAN dashboard subscribed sees it; the guest zone has no
//! listener, so a guest cannot even connect.

use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use roost_config::Service;

use crate::TestLab;

const SENSOR_PW: &str = "sensor-password";
const DASH_PW: &str = "dashboard-password";

/// A process in a lab namespace, killed when dropped.
struct InNs(Child);

impl Drop for InNs {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cmd_in(t: &TestLab, ns: &str, program: &str, args: &[&str]) -> Command {
    let netns = t.lab.netns(ns).unwrap();
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &netns, program]).args(args);
    c
}

/// An argon2id hash made by `roostctl passwd`, as a user would make it.
fn passwd(password: &str) -> String {
    let roostctl = crate::bin_dir().join("roostctl");
    let mut child = Command::new(roostctl)
        .arg("passwd")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn up_with_users(name: &str) -> (TestLab, Scratch) {
    let dir =
        Scratch(std::env::temp_dir().join(format!("roost-mqtt-lab-{}-{name}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let example = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/roost.toml"),
    )
    .unwrap();
    let anchor = "[mqtt]\n";
    assert!(
        example.contains(anchor),
        "examples/roost.toml lost its [mqtt] table"
    );
    let users = format!(
        "{anchor}users = [\n  {{ name = \"sensor\", password_hash = \"{}\", publish = [\"sensors/#\"] }},\n  \
         {{ name = \"dashboard\", password_hash = \"{}\", subscribe = [\"sensors/#\"] }},\n]\n",
        passwd(SENSOR_PW),
        passwd(DASH_PW)
    );
    let settings = example.replacen(anchor, &users, 1);
    let path = dir.0.join("roost.toml");
    std::fs::write(&path, settings).unwrap();
    (TestLab::up_with(name, &path), dir)
}

#[test]
fn lab_iot_sensor_publishes_and_lan_dashboard_receives_while_guests_cannot_connect() {
    let (t, _dir) = up_with_users("mq");
    let mut sub = InNs(
        cmd_in(
            &t,
            "client-lan",
            "mosquitto_sub",
            &[
                "-h",
                "192.168.1.1",
                "-p",
                "1883",
                "-u",
                "dashboard",
                "-P",
                DASH_PW,
                "-i",
                "dashboard",
                "-t",
                "sensors/#",
                "-C",
                "1",
                "-v",
                "-W",
                "30",
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap(),
    );
    // Publish until the subscriber (which may still be connecting) has its message.
    let deadline = Instant::now() + Duration::from_secs(25);
    loop {
        let o = cmd_in(
            &t,
            "client-iot",
            "mosquitto_pub",
            &[
                "-h",
                "192.168.20.1",
                "-p",
                "1883",
                "-u",
                "sensor",
                "-P",
                SENSOR_PW,
                "-t",
                "sensors/kitchen/temp",
                "-m",
                "21.5",
            ],
        )
        .output()
        .unwrap();
        assert!(
            o.status.success(),
            "iot publish: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        if sub.0.try_wait().unwrap().is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the lan subscriber never got the message"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut out = String::new();
    std::io::Read::read_to_string(sub.0.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert_eq!(out, "sensors/kitchen/temp 21.5\n");
    // The guest zone: no listener, no forward. Its twin above (iot) connected.
    let o = cmd_in(
        &t,
        "client-guest",
        "timeout",
        &[
            "5",
            "mosquitto_pub",
            "-h",
            "192.168.30.1",
            "-p",
            "1883",
            "-u",
            "sensor",
            "-P",
            SENSOR_PW,
            "-t",
            "sensors/x",
            "-m",
            "no",
        ],
    )
    .output()
    .unwrap();
    assert!(!o.status.success(), "a guest reached the broker");
    let (code, metrics) = t.lab.control_get(Service::Mqtt, "/metrics").unwrap();
    assert_eq!(code, 200);
    assert!(
        metrics.contains("roost_mqtt_messages_in_total"),
        "{metrics}"
    );
}

/// The retained value of `topic` as the LAN dashboard reads it, if any within 3 s.
fn retained(t: &TestLab, topic: &str) -> Option<String> {
    let o = cmd_in(
        t,
        "client-lan",
        "mosquitto_sub",
        &[
            "-h",
            "192.168.1.1",
            "-p",
            "1883",
            "-u",
            "dashboard",
            "-P",
            DASH_PW,
            "-t",
            topic,
            "-C",
            "1",
            "-W",
            "3",
        ],
    )
    .output()
    .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    (o.status.success() && !out.is_empty()).then_some(out)
}

#[test]
fn lab_mqtt_dashboard_reads_the_router_telemetry_that_no_device_can_write() {
    let (t, _dir) = up_with_users("mt");
    let wan = t.wan_address().to_string();
    // The web VM publishes every 15 s through the broker's control API; the WAN address shows
    // once the firewall has its lease.
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        if retained(&t, "roost/wan/address").is_some_and(|v| v.starts_with(&format!("{wan}/"))) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no WAN address under roost/wan/address"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while retained(&t, "roost/services/dhcp").as_deref() != Some("ok") {
        assert!(
            Instant::now() < deadline,
            "dhcp's health is not under roost/services/dhcp"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // A device cannot write there: the sensor's publish is not taken, the value stays.
    let o = cmd_in(
        &t,
        "client-iot",
        "mosquitto_pub",
        &[
            "-h",
            "192.168.20.1",
            "-p",
            "1883",
            "-u",
            "sensor",
            "-P",
            SENSOR_PW,
            "-t",
            "roost/wan/address",
            "-r",
            "-m",
            "198.51.100.66/24",
        ],
    )
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = retained(&t, "roost/wan/address").unwrap();
    assert!(
        v.starts_with(&format!("{wan}/")),
        "a device overwrote telemetry: {v}"
    );
}

/// Waits for `ns`'s SLAAC address in `zone`'s ULA /64.
fn wait_for_ula(t: &TestLab, ns: &str, zone: &str) {
    let net = t.lab.settings().zone_ipv6(zone).unwrap().subnet;
    let prefix = net.network().to_string();
    let prefix = prefix.trim_end_matches("::");
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let out = cmd_in(t, ns, "ip", &["-6", "-o", "addr", "show", "-tentative"])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stdout).contains(prefix) {
            return;
        }
        assert!(Instant::now() < deadline, "no address in {net} in {ns}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn lab_mqtt_over_ipv6_at_each_zones_router_ula_address_while_guests_cannot_connect() {
    let (t, _dir) = up_with_users("m6");
    let router = |zone: &str| t.lab.settings().zone_ipv6(zone).unwrap().router.to_string();
    wait_for_ula(&t, "client-lan", "lan");
    wait_for_ula(&t, "client-iot", "iot");
    wait_for_ula(&t, "client-guest", "guest");
    let lan = router("lan");
    let mut sub = InNs(
        cmd_in(
            &t,
            "client-lan",
            "mosquitto_sub",
            &[
                "-h",
                &lan,
                "-p",
                "1883",
                "-u",
                "dashboard",
                "-P",
                DASH_PW,
                "-i",
                "dash6",
                "-t",
                "sensors/#",
                "-C",
                "1",
                "-v",
                "-W",
                "30",
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap(),
    );
    let iot = router("iot");
    let deadline = Instant::now() + Duration::from_secs(25);
    loop {
        let o = cmd_in(
            &t,
            "client-iot",
            "mosquitto_pub",
            &[
                "-h",
                &iot,
                "-p",
                "1883",
                "-u",
                "sensor",
                "-P",
                SENSOR_PW,
                "-t",
                "sensors/cellar/humidity",
                "-m",
                "61",
            ],
        )
        .output()
        .unwrap();
        assert!(
            o.status.success(),
            "iot publish over ipv6: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        if sub.0.try_wait().unwrap().is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the lan subscriber never got the message"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut out = String::new();
    std::io::Read::read_to_string(sub.0.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert_eq!(out, "sensors/cellar/humidity 61\n");
    // The guest zone has no listener over IPv6 either; its twin above (iot) connected.
    let o = cmd_in(
        &t,
        "client-guest",
        "timeout",
        &[
            "5",
            "mosquitto_pub",
            "-h",
            &router("guest"),
            "-p",
            "1883",
            "-u",
            "sensor",
            "-P",
            SENSOR_PW,
            "-t",
            "sensors/x",
            "-m",
            "no",
        ],
    )
    .output()
    .unwrap();
    assert!(!o.status.success(), "a guest reached the broker over ipv6");
}
